"""The RBM collaborative-filtering engine (see ``docs/rbm.md`` for the design)."""

from . import functional
from .config import RBMConfig
from .model import RBMRecommender, SparseRatings, resolve_device

__all__ = ["RBMConfig", "RBMRecommender", "SparseRatings", "functional", "resolve_device"]
