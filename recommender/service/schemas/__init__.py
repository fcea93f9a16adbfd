"""Request and response bodies, one module per resource. Requests reject unknown fields; ids
are :data:`~recommender.service.validation.Id` (1-128 characters, no NUL, no lone surrogate,
no "/"); ratings must be finite (the configured scale is checked by the routes). Every request
body documents its fields and carries an example; every error is a :class:`Problem`.

Every name is re-exported here (``from recommender.service.schemas import Problem``), in the
``import X as X`` form that type checkers read as an explicit re-export."""

from .admin import MIN_TEST_FRACTION as MIN_TEST_FRACTION
from .admin import Activated as Activated
from .admin import JobAccepted as JobAccepted
from .admin import JobOut as JobOut
from .admin import ModelList as ModelList
from .admin import ModelOut as ModelOut
from .admin import Progress as Progress
from .admin import PublishRequest as PublishRequest
from .admin import RetrainRequest as RetrainRequest
from .common import ID_TEXT as ID_TEXT
from .common import MAX_BATCH as MAX_BATCH
from .common import FiniteRating as FiniteRating
from .common import Received as Received
from .common import RequestModel as RequestModel
from .common import ShownTitle as ShownTitle
from .common import Timestamp as Timestamp
from .common import examples as examples
from .items import ItemBatch as ItemBatch
from .items import ItemEntry as ItemEntry
from .items import ItemIn as ItemIn
from .items import ItemList as ItemList
from .items import ItemOut as ItemOut
from .items import ItemRetired as ItemRetired
from .items import ItemsPage as ItemsPage
from .items import ListedItem as ListedItem
from .items import SimilarItems as SimilarItems
from .problems import FieldProblem as FieldProblem
from .problems import Problem as Problem
from .problems import Readiness as Readiness
from .ratings import BODY_TAGS as BODY_TAGS
from .ratings import RatingBatch as RatingBatch
from .ratings import RatingIn as RatingIn
from .ratings import RatingsBody as RatingsBody
from .recommendations import AnonymousRating as AnonymousRating
from .recommendations import AnonymousRequest as AnonymousRequest
from .recommendations import Because as Because
from .recommendations import Prediction as Prediction
from .recommendations import Predictions as Predictions
from .recommendations import Recommendations as Recommendations
from .recommendations import ScoredItem as ScoredItem
from .users import GenreShare as GenreShare
from .users import HiddenUnit as HiddenUnit
from .users import LoadingItem as LoadingItem
from .users import RatingDeleted as RatingDeleted
from .users import UserDeleted as UserDeleted
from .users import UserProfile as UserProfile
from .users import UserRating as UserRating
from .users import UserRatingsPage as UserRatingsPage
