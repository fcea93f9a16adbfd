"""The RBM recommender: a ternary-unit RBM over items, trained by CD-k, scored with fold-in.

``RBMRecommender`` is assembled from one mixin per concept:

* :mod:`.base` - the attributes every mixin reads, created with their types in one place;
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

import torch

from .base import RBMBase, resolve_device
from .encoding import N_STATES, EncodingMixin, SparseRatings
from .persistence import PersistenceMixin
from .scoring import ScoringMixin
from .training import FORMAT_VERSION, TrainingMixin, resolve_matmul_dtype

__all__ = ["FORMAT_VERSION", "N_STATES", "RBMBase", "RBMRecommender", "SparseRatings",
           "resolve_device", "resolve_matmul_dtype"]


# Each mixin derives from the ones it uses (RBMBase <- EncodingMixin <- ScoringMixin <-
# TrainingMixin; RBMBase <- PersistenceMixin), so the type checker sees every attribute and
# method a mixin reads; they are listed here all the same, to show what the model is made of.
class RBMRecommender(TrainingMixin, ScoringMixin, EncodingMixin, PersistenceMixin):
    """A ternary-unit RBM over items with engagement and preference hidden units.

    ``RBMRecommender(config, **overrides)``: every attribute is created, with its type, by
    :class:`~.base.RBMBase`; :meth:`initialize` (called by ``fit``) or :meth:`load` gives the
    parameters and the training state their values.
    """

    # -- parameters (the Keras-style weight API) -------------------------------------------
    def get_weights(self) -> list[torch.Tensor]:
        self._require_fitted()
        return [t.detach().clone() for t in (self.W, self.a, self.b)]

    def set_weights(self, weights: Sequence[torch.Tensor]) -> None:
        self._require_fitted()
        if len(weights) != 3:
            raise ValueError(f"set_weights expects [W, a, b]. Received {len(weights)} arrays")
        for name, new in zip(("W", "a", "b"), weights, strict=True):
            old: torch.Tensor = getattr(self, name)
            new = torch.as_tensor(new, dtype=old.dtype, device=old.device)
            if new.shape != old.shape:
                raise ValueError(f"{name} must have shape {tuple(old.shape)}. Received: "
                                 f"{tuple(new.shape)}")
            old.copy_(new)
