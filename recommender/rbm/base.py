"""The state every part of the RBM reads: each attribute created, with its type, in one place.

:class:`RBMBase` is the root of the mixins that :class:`~.model.RBMRecommender` is built
from. Its ``__init__`` creates every attribute the mixins read or write (skorch-style:
:meth:`.TrainingMixin.initialize` and :meth:`.PersistenceMixin.load` give them values, they
create none). The parameters ``W``, ``a``, ``b`` and the training weights ``_W_e``, ``_W_p``
are tensors from the start, empty until then, so that every reader of a trained model sees a
``torch.Tensor``; :attr:`is_fitted` tells an empty model apart and the public methods that
need parameters call :meth:`_require_fitted`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from ..core import regularizers
from ..core.optimizers import Optimizer
from .config import RBMConfig
from .distributed import Shard


class ServingWeights(NamedTuple):
    """The weights rearranged for scoring (``ScoringMixin._serving_weights`` says how)."""

    n_tied: int
    W_tied: torch.Tensor  # (items, n_tied)
    W_states: torch.Tensor  # (2 * items, rest), state-major
    a_states: torch.Tensor  # (2, items)
    # The candidate search's (``ScoringMixin._top_log_odds``); None where bf16 is not fast:
    W_tied16: torch.Tensor | None  # W_tied in bfloat16
    W_states16: torch.Tensor | None  # W_states in bfloat16
    norms: torch.Tensor | None  # (2, items): ||W_tied[j]||, max_s ||W_states[s, j]||
    # The full products' operands where numpy's BLAS is the faster (None elsewhere):
    W_tied_T: np.ndarray | None = None  # (n_tied, items), W_tied transposed, contiguous
    W_states_T: np.ndarray | None = None  # (rest, 2 * items), W_states transposed


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available")
    return torch.device(device)


class RBMBase:
    def __init__(self, config: RBMConfig | None = None, **overrides: Any) -> None:
        config = config or RBMConfig()
        self.config = config.replace(**overrides) if overrides else config
        self.device = resolve_device(self.config.device)
        # -- what a trained model is (saved by ``save``); empty until ``initialize``/``load`` --
        self.item_ids: list[str] = []  # sorted; item j owns visible columns 2j, 2j + 1
        self._item_index: dict[str, int] = {}  # item id -> j
        self.W = torch.empty(0, 0, device=self.device)  # (n_items * 2, n_hidden + n_pref.)
        self.a = torch.empty(0, device=self.device)  # (n_items * 2,)
        self.b = torch.empty(0, device=self.device)  # (n_hidden + n_preference_hidden,)
        # (n_items,) the population's log-odds of rating each item (training frequencies);
        # ranking shrinks users with few ratings toward it (config.prior_strength). None in
        # artifacts saved before it existed.
        self.prior: torch.Tensor | None = None
        self.history: dict[str, list[float]] = {}
        self.metadata: dict[str, Any] = {}
        # -- training state (given its values by ``initialize``) --
        self.stop_training = False  # a callback sets it to end ``fit`` after this epoch
        self._shard: Shard | None = None  # set while training data-parallel
        self.local_users: list[str] = []  # this rank's users while training data-parallel
        self._optimizer: Optimizer | None = None
        self._reg_engagement: regularizers.Regularizer | None = None
        self._reg_preference: regularizers.Regularizer | None = None
        # The training weights (``TrainingMixin._load_training_weights``): the engagement
        # weights once per item W_e (n_items, n_hidden), they are tied across the two states;
        # the preference weights W_p (n_items * 2, n_preference_hidden).
        self._W_e = torch.empty(0, 0, device=self.device)
        self._W_p = torch.empty(0, 0, device=self.device)
        self._matmul_dtype: torch.dtype | None = None  # of the dense products; None: W's own
        # -- serving cache (``ScoringMixin._serving_weights``): (key, serving weights) --
        self._serving: tuple[tuple[int, int, int], ServingWeights] | None = None

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def is_fitted(self) -> bool:
        return self.W.numel() > 0  # n_hidden >= 1: a trained W is never empty

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise ValueError("This RBMRecommender is not trained yet: call fit() or load().")
