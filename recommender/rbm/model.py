"""The RBM recommender: a ternary-unit RBM over items, trained by CD-k, scored with fold-in.

``RBMRecommender`` is assembled from one mixin per concept:

* :mod:`.encoding` - ratings -> CSR indicator rows and the id maps (``encode``);
* :mod:`.training` - ``initialize``, ``fit``, the epoch and step loop, warm start;
* :mod:`.scoring` - ranking scores (a textbook reference and the fast serving path),
  ``recommend``, ``predict_like``, ``hidden_activations``;
* :mod:`.persistence` - ``save`` / ``load``.

The mathematics are the pure functions of :mod:`.functional`. ``docs/rbm.md`` explains the
model: why ternary units, why two hidden groups, and where it departs from the usual recipe.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..core import regularizers
from ..core.optimizers import Optimizer
from .config import RBMConfig
from .distributed import Shard
from .encoding import N_STATES, EncodingMixin, SparseRatings
from .persistence import PersistenceMixin
from .scoring import ScoringMixin
from .training import FORMAT_VERSION, TrainingMixin, resolve_matmul_dtype

__all__ = ["FORMAT_VERSION", "N_STATES", "RBMRecommender", "SparseRatings", "resolve_device",
           "resolve_matmul_dtype"]


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available")
    return torch.device(device)


class RBMRecommender(EncodingMixin, TrainingMixin, ScoringMixin, PersistenceMixin):
    """A ternary-unit RBM over items with engagement and preference hidden units.

    Every attribute is created here; :meth:`initialize` (called by ``fit``) gives the
    parameters and the training state their values.
    """

    def __init__(self, config: RBMConfig | None = None, **overrides: Any) -> None:
        config = config or RBMConfig()
        self.config = config.replace(**overrides) if overrides else config
        self.device = resolve_device(self.config.device)
        # -- what a trained model is (saved by ``save``) --
        self.item_ids: list[str] = []
        self._item_index: dict[str, int] = {}
        self.W: torch.Tensor | None = None  # (n_items * 2, n_hidden + n_preference_hidden)
        self.a: torch.Tensor | None = None  # (n_items * 2,)
        self.b: torch.Tensor | None = None  # (n_hidden + n_preference_hidden,)
        # (n_items,) the population's log-odds of rating each item (training frequencies);
        # ranking shrinks users with few ratings toward it (config.prior_strength).
        self.prior: torch.Tensor | None = None
        self.history: dict[str, list[float]] = {}
        self.metadata: dict[str, Any] = {}
        # -- training state (set by ``initialize``) --
        self.stop_training = False
        self._shard: Shard | None = None  # set while training data-parallel
        self.local_users: list[str] = []  # this rank's users while training data-parallel
        self._optimizer: Optimizer | None = None
        self._reg_engagement: regularizers.Regularizer | None = None
        self._reg_preference: regularizers.Regularizer | None = None
        # The training weights: W_e (n_items, n_hidden), W_p (n_items * 2, n_preference_hidden).
        self._W_e: torch.Tensor | None = None
        self._W_p: torch.Tensor | None = None
        self._matmul_dtype: torch.dtype | None = None
        # -- serving cache (``ScoringMixin._serving_weights``) --
        self._serving: tuple | None = None

    # -- parameters -----------------------------------------------------------------------
    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def is_fitted(self) -> bool:
        return self.W is not None

    def get_weights(self) -> list[torch.Tensor]:
        return [t.detach().clone() for t in (self.W, self.a, self.b)]

    def set_weights(self, weights: Sequence[torch.Tensor]) -> None:
        if len(weights) != 3:
            raise ValueError(f"set_weights expects [W, a, b]. Received {len(weights)} arrays")
        for name, new in zip(("W", "a", "b"), weights, strict=True):
            old = getattr(self, name)
            new = torch.as_tensor(new, dtype=old.dtype, device=old.device)
            if new.shape != old.shape:
                raise ValueError(f"{name} must have shape {tuple(old.shape)}. Received: "
                                 f"{tuple(new.shape)}")
            old.copy_(new)

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise ValueError("This RBMRecommender is not trained yet: call fit() or load().")
