"""The RBM recommender: CD-k on binarized ratings, scoring with fold-in, save/load.

Design (the issue asked us to write down which route we took and why)
-----------------------------------------------------------------------
Every item is one *ternary softmax* visible unit with the states unrated (-1), disliked (0)
and liked (1). "Unrated" is the reference state: it carries no weights and no bias, so an
unrated item adds nothing to the hidden input, exactly as in the textbook model, while the
model still learns *which* items a user engages with (liked + disliked) as well as *whether*
they like them (liked vs disliked). We chose this over the conditional RBM of Salakhutdinov,
Mnih & Hinton (2007) because the conditional RBM only conditions the hidden units on the
rated/unrated pattern and never generates it: it has no score for "will this user engage with
this item", and ranking by p(like) promotes rarely rated items (P@10 0.09 on MovieLens-100k,
``../shared/data/README.md``). The ternary unit gives p(rated) and p(like | rated) from one
energy function.

The hidden layer has two groups of units, one weight matrix ``W: (n_items * 2, hidden)``:

* **engagement units** (``n_hidden``): their weights are tied across the two rated states
  (``W_like = W_dislike``), so they respond to which items were rated. They are trained by the
  joint CD-k on the ternary units: the chain reconstructs all three states of every item.
* **preference units** (``n_preference_hidden``): free weights per state. They are trained by
  the conditional CD of the textbook like/dislike RBM, with unrated items masked out: the
  chain keeps each user's rated/unrated pattern and only resamples liked vs disliked, so
  unrated entries give these weights no update.

Why two groups, measured on MovieLens-100k (per-user 75/25 split): one group of free units
trained by the joint CD ranks well (P@10 0.39) but predicts like/dislike poorly (0.69, below
a user+item bias model's 0.704), because the joint gradient of the like-vs-dislike direction
is dominated by the engagement signal and over-fits; the conditional CD alone predicts
like/dislike well (0.71) but ranks like the popularity list. The structured RBM gets both
(P@10 0.39, nDCG@10 0.45, like/dislike 0.71). Weight decay is a core ``l2`` regularizer per
group, the stronger one on the sparse preference signal.

Ranking uses p(rated | user) = p(liked) + p(disliked) under mean-field hidden activations,
its log-odds shrunk toward the population's log-odds of rating each item for users with few
ratings (``config.prior_strength``: a user with one rating is ranked by the population first,
where the RBM alone did worse than the most-popular list); the rating-prediction view is
p(like | rated) = p(liked) / (p(liked) + p(disliked)).

Ratings live on the device as a CSR structure; only a mini-batch of users is ever densified.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from itertools import chain, repeat
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from ..core import backend, optimizers, regularizers
from ..core import callbacks as callbacks_module
from ..data.ratings import Ratings, deduplicate, validate_ratings
from . import functional as Fn
from .config import RBMConfig

N_STATES = 2  # weighted states per item: 0 = disliked, 1 = liked (unrated = reference)
FORMAT_VERSION = 1


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available")
    return torch.device(device)


def resolve_matmul_dtype(name: str, device: torch.device) -> torch.dtype | None:
    """``RBMConfig.matmul_dtype`` -> the dtype of the training's dense products (None: the
    weights' own, float32). ``"auto"`` is bfloat16 on a CPU that runs bf16 products natively
    (AVX512-BF16 or AMX: several times the fp32 rate) and float32 elsewhere, including CUDA,
    where fit turns on tf32 instead."""
    if name == "float32":
        return None
    if name == "bfloat16":
        return torch.bfloat16
    if device.type == "cpu" and backend.cpu_has_fast_bfloat16():
        return torch.bfloat16
    return None


class SparseRatings:
    """Users' binarized ratings as CSR on a device; rows densify batch by batch.

    ``columns`` holds ``item * 2 + state`` (state 0 disliked, 1 liked), so a dense row is
    directly the ``(n_items * 2,)`` indicator vector the RBM consumes.
    """

    def __init__(self, indptr: torch.Tensor, columns: torch.Tensor, n_columns: int) -> None:
        self.indptr = indptr  # (n_users + 1,) int64
        self.columns = columns  # (nnz,) int64
        self.n_columns = n_columns

    @property
    def n_rows(self) -> int:
        return self.indptr.numel() - 1

    @classmethod
    def from_indices(cls, rows: np.ndarray, items: np.ndarray, liked: np.ndarray, n_rows: int,
                     n_items: int, device: torch.device) -> SparseRatings:
        key = rows.astype(np.int64) * max(n_items, 1) + items  # (n,) row-major position
        if len(key) > 1 and not (key[1:] >= key[:-1]).all():  # store snapshots come sorted
            order = np.argsort(key, kind="stable")  # = lexsort((items, rows)), one key
            rows, items, liked = rows[order], items[order], liked[order]
        counts = np.bincount(rows, minlength=n_rows)
        indptr = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        columns = items.astype(np.int64) * N_STATES + liked.astype(np.int64)
        return cls(torch.from_numpy(indptr).to(device), torch.from_numpy(columns).to(device),
                   n_items * N_STATES)

    def batch(self, rows: torch.Tensor) -> Fn.SparseBatch:
        """The COO entries of these rows, grouped by row, built on the device."""
        starts = self.indptr[rows]
        lengths = self.indptr[rows + 1] - starts
        first = torch.cumsum(lengths, 0) - lengths  # (batch,) offsets into the entries
        total = int(lengths.sum())
        row_of = torch.repeat_interleave(torch.arange(rows.numel(), device=rows.device), lengths,
                                         output_size=total)
        within = torch.arange(total, device=rows.device) - first[row_of]
        cols = self.columns[starts[row_of] + within]
        return Fn.SparseBatch(row_of=row_of, cols=cols, offsets=first, size=rows.numel())

    def dense(self, rows: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Indicator matrix ``(len(rows), n_items * 2)`` for these rows, built on the device."""
        return self.batch(rows).dense(self.n_columns, dtype)


class RBMRecommender:
    """A ternary-unit RBM over items; see the module docstring for the design."""

    def __init__(self, config: RBMConfig | None = None, **overrides: Any) -> None:
        config = config or RBMConfig()
        self.config = config.replace(**overrides) if overrides else config
        self.device = resolve_device(self.config.device)
        self.item_ids: list[str] = []
        self._item_index: dict[str, int] = {}
        self.W: torch.Tensor | None = None  # (n_items * 2, n_hidden)
        self.a: torch.Tensor | None = None  # (n_items * 2,)
        self.b: torch.Tensor | None = None  # (n_hidden,)
        # (n_items,) the population's log-odds of rating each item (training frequencies);
        # ranking shrinks users with few ratings toward it (config.prior_strength).
        self.prior: torch.Tensor | None = None
        self.history: dict[str, list[float]] = {}
        self.metadata: dict[str, Any] = {}
        self.stop_training = False
        self._shard = None  # a distributed.Shard while training data-parallel

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

    # -- data -------------------------------------------------------------------------------
    def _liked(self, values: np.ndarray) -> np.ndarray:
        return (values >= self.config.like_threshold).astype(np.int64)

    def encode(self, ratings: Ratings, user_index: Mapping[str, int] | None = None,
               ) -> tuple[SparseRatings, list[str]]:
        """Ratings -> CSR over this model's items (unknown items dropped) and the user list.

        Ids are looked up once per distinct id (``pandas.Index.get_indexer`` over the id
        categories), then mapped to every rating through its integer codes: no per-rating
        dictionary lookup. ``user_index`` gives each user's row (users absent from it are
        dropped); by default every user of ``ratings``, rows in id order.
        """
        import pandas as pd

        if user_index is None:
            used = np.flatnonzero(np.bincount(ratings.user_codes,
                                              minlength=len(ratings.user_ids)))
            users = ratings.user_ids[used].tolist()
            row_of_code = np.full(len(ratings.user_ids), -1, dtype=np.int64)
            row_of_code[used] = np.arange(len(used))
        else:
            users = sorted(user_index, key=user_index.__getitem__)
            known_rows = np.fromiter(user_index.values(), dtype=np.int64, count=len(user_index))
            position = pd.Index(list(user_index)).get_indexer(ratings.user_ids)
            row_of_code = np.where(position >= 0, known_rows[position], -1)
        col_of_code = pd.Index(self.item_ids).get_indexer(ratings.item_ids)  # -1: unknown
        rows = row_of_code[ratings.user_codes]  # (n,) int64
        cols = col_of_code[ratings.item_codes]  # (n,) int64
        keep = (rows >= 0) & (cols >= 0)
        if keep.all():
            keep = slice(None)  # no copies of the columns when every rating is kept
        sparse = SparseRatings.from_indices(rows[keep], cols[keep],
                                            self._liked(ratings.values[keep]), len(users),
                                            self.n_items, self.device)
        return sparse, users

    def _encode_entries(self, users_ratings: Sequence[Mapping[str, float]]) -> Fn.SparseBatch:
        """``[{item: rating}, ...]`` -> the COO entries of their indicator rows.

        Items unknown to the model are ignored. One pass over the whole batch (the serving
        hot path): the item lookups run in C (``map`` over ``dict.get``) and every array
        operation happens once per batch, not once per user.
        """
        lengths = np.fromiter(map(len, users_ratings), dtype=np.int64, count=len(users_ratings))
        total = int(lengths.sum())
        keys = chain.from_iterable(users_ratings)
        index = np.fromiter(map(self._item_index.get, keys, repeat(-1)), dtype=np.int64,
                            count=total)
        values = np.fromiter(chain.from_iterable(m.values() for m in users_ratings),
                             dtype=np.float64, count=total)
        if not np.isfinite(values).all():
            bad = int(np.argmax(~np.isfinite(values)))
            user = int(np.searchsorted(np.cumsum(lengths), bad, side="right"))
            item = list(users_ratings[user])[bad - int(lengths[:user].sum())]
            raise ValueError(f"rating must be a finite number. Received: "
                             f"rating={float(values[bad])!r} (item={item!r})")
        unknown = np.flatnonzero(index < 0)
        if len(unknown):  # ids given as non-strings (e.g. ints): look them up as text
            keys = list(chain.from_iterable(users_ratings))
            for position in unknown:
                index[position] = self._item_index.get(str(keys[position]), -1)
        user_of = np.repeat(np.arange(len(lengths)), lengths)
        known = index >= 0
        cols = index[known] * N_STATES + (values[known] >= self.config.like_threshold)
        counts = torch.from_numpy(np.bincount(user_of[known], minlength=len(lengths)))
        return Fn.SparseBatch(row_of=torch.from_numpy(user_of[known]).to(self.device),
                              cols=torch.from_numpy(cols).to(self.device),
                              offsets=(torch.cumsum(counts, 0) - counts).to(self.device),
                              size=len(lengths))

    def encode_mappings(self, users_ratings: Sequence[Mapping[str, float]]) -> torch.Tensor:
        """``[{item: rating}, ...] -> (users, n_items * 2)`` indicators; unknown items ignored."""
        return self._encode_entries(users_ratings).dense(self.n_items * N_STATES)

    # -- training ---------------------------------------------------------------------------
    def _init_parameters(self, data: SparseRatings, n_users: int, generator: torch.Generator):
        cfg = self.config
        counts = torch.bincount(data.columns, minlength=data.n_columns).float()  # per column
        if self._shard is not None:
            counts = self._shard.sum(counts)
        per_item = counts.view(-1, N_STATES)
        p_state = (per_item + 0.5) / (n_users + 1.5)  # smoothed state frequencies
        p_ref = (1.0 - p_state.sum(dim=1, keepdim=True)).clamp_min(1e-3)
        # Log-odds against the reference state: the biases of a weightless model.
        self.a = torch.log(p_state / p_ref).reshape(-1).to(self.device)
        self.prior = torch.log(p_state.sum(dim=1) / p_ref[:, 0]).to(self.device)
        n_total = cfg.n_hidden + cfg.n_preference_hidden
        W = torch.randn(data.n_columns, n_total, generator=generator,
                        device=self.device) * cfg.init_std
        W3 = W.view(-1, N_STATES, n_total)  # (items, 2, hidden)
        W3[:, 1, :cfg.n_hidden] = W3[:, 0, :cfg.n_hidden]  # engagement weights tied
        self.W = W
        self.b = torch.zeros(n_total, device=self.device)

    @torch.no_grad()
    def _warm_start_from(self, initial: RBMRecommender) -> int:
        """Carry a trained model's parameters over to this model's item index (warm start).

        Called by ``fit`` right after the cold initialisation: an item ``initial`` knows gets
        its rows of ``W`` and ``a`` back exactly, wherever it now sits in the (sorted) item
        index; a new item keeps the rows a cold fit gives it; the hidden biases ``b`` are
        copied. Items only ``initial`` knows (all their ratings gone) are dropped. Users need
        nothing: the RBM has no per-user parameters. The ranking prior stays the one computed
        from the new data (a statistic of it, not a learned parameter). Returns how many
        items were carried over.
        """
        initial._require_fitted()
        for name in ("n_hidden", "n_preference_hidden", "like_threshold"):
            mine, theirs = getattr(self.config, name), getattr(initial.config, name)
            if mine != theirs:
                raise ValueError(f"initial_model must have the same {name} as this model (its "
                                 f"weights are copied). Received: {name}={theirs!r} in "
                                 f"initial_model, {name}={mine!r} here")
        n_total = self.W.shape[1]
        old_rows = np.fromiter((initial._item_index.get(item, -1) for item in self.item_ids),
                               dtype=np.int64, count=self.n_items)
        new = torch.from_numpy(np.flatnonzero(old_rows >= 0)).to(self.device)
        old = torch.from_numpy(old_rows[old_rows >= 0]).to(initial.W.device)
        W_old = initial.W.view(-1, N_STATES, n_total)[old]  # (carried items, 2, hidden)
        self.W.view(-1, N_STATES, n_total)[new] = W_old.to(self.device, self.W.dtype)
        a_old = initial.a.view(-1, N_STATES)[old]  # (carried items, 2)
        self.a.view(-1, N_STATES)[new] = a_old.to(self.device, self.a.dtype)
        self.b.copy_(initial.b.to(self.device, self.b.dtype))
        return int(new.numel())

    # The training loop updates the weights in their compact form: the engagement weights once
    # per item ``W_e: (n_items, n_hidden)`` (they are tied across the two states) and the
    # preference weights ``W_p: (n_items * 2, n_preference_hidden)``. ``self.W`` is rebuilt
    # from them at the end of every epoch (and read back at the start of the next, so a
    # callback that sets weights is honoured): a quarter fewer weights to update, and the
    # tying holds by construction.
    def _load_training_weights(self) -> None:
        h_e = self.config.n_hidden
        W3 = self.W.view(-1, N_STATES, self.W.shape[1])  # (items, 2, hidden)
        if getattr(self, "_W_e", None) is None or self._W_e.shape[0] != W3.shape[0]:
            self._W_e = W3[:, 0, :h_e].contiguous()  # (items, n_hidden)
            self._W_p = self.W[:, h_e:].contiguous()  # (items * 2, n_preference_hidden)
        else:  # in place: the optimizer's state (momentum) is keyed by these tensors
            self._W_e.copy_(W3[:, 0, :h_e])
            self._W_p.copy_(self.W[:, h_e:])

    def _store_training_weights(self) -> None:
        h_e = self.config.n_hidden
        W3 = self.W.view(-1, N_STATES, self.W.shape[1])
        W3[:, :, :h_e] = self._W_e.unsqueeze(1)
        self.W[:, h_e:] = self._W_p

    def _full_weights(self) -> torch.Tensor:
        """``W`` assembled from the training weights: ``(n_items * 2, hidden)``."""
        return torch.cat([self._W_e.repeat_interleave(N_STATES, dim=0), self._W_p], dim=1)

    def _group_gradient(self, dW_e: torch.Tensor, dW_p: torch.Tensor,
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """The descent gradients of ``W_e`` and ``W_p``: minus each group's CD statistics (in
        place) plus its l2."""
        return (self._reg_engagement.add_gradient_(dW_e.neg_(), self._W_e),
                self._reg_preference.add_gradient_(dW_p.neg_(), self._W_p))

    def _statistics(self, batch: Fn.SparseBatch, k: int, generator: torch.Generator) -> list:
        """[dW_e, dW_p, da, db, reconstruction error]: CD ascent directions of the training
        weights (see ``Fn.structured_cd1``)."""
        cfg = self.config
        if batch.size == 0:  # a rank with no rows in this global batch still joins the reduce
            return [torch.zeros_like(self._W_e), torch.zeros_like(self._W_p),
                    torch.zeros_like(self.a), torch.zeros_like(self.b),
                    torch.zeros((), device=self.device)]
        if k == 1 and not cfg.sample_visible and cfg.hidden_dropout == 0:
            s = Fn.structured_cd1(batch, self._W_e, self._W_p, self.a, self.b,
                                  sample_hidden_units=cfg.sample_hidden,
                                  matmul_dtype=self._matmul_dtype, generator=generator)
            return [s.dW_e, s.dW_p, s.da, s.db, s.reconstruction_error]
        # The general chain (k > 1, sampled visible units, hidden dropout): the reference
        # functions on the full W, each group's statistics taken from them.
        h_e = cfg.n_hidden
        W = self._full_weights()
        stats = Fn.cd_k_sparse(batch, W, self.a, self.b, k=k, n_states=N_STATES,
                               sample_visible_units=cfg.sample_visible,
                               sample_hidden_units=cfg.sample_hidden,
                               hidden_dropout=cfg.hidden_dropout, generator=generator)
        dW_e = stats.dW.view(-1, N_STATES, W.shape[1])[:, :, :h_e].mean(dim=1)
        dW_p, db = torch.zeros_like(self._W_p), stats.db
        if cfg.n_preference_hidden:
            dW_p, cond_db = Fn.conditional_cd_sparse(
                batch, W, self.a, self.b, stats.h_0, n_states=N_STATES,
                columns=slice(h_e, None), sample_hidden_units=cfg.sample_hidden,
                generator=generator)
            db = torch.cat([db[:h_e], cond_db])
        return [dW_e, dW_p, stats.da, db, stats.reconstruction_error]

    def train_step(self, batch: Fn.SparseBatch, k: int, generator: torch.Generator) -> float:
        """One CD-k update of the training weights from a sparse batch of users; returns the
        reconstruction error (a 0-d tensor, so that the loop does not wait on it)."""
        statistics = self._statistics(batch, k, generator)
        if self._shard is not None:
            # Data-parallel: every rank holds batch-means over its own rows; weight them by
            # the rows, sum over ranks, divide by the global batch. Same update on every rank.
            statistics = self._shard.average(statistics, local_rows=batch.size)
        dW_e, dW_p, da, db, rec = statistics
        grad_e, grad_p = self._group_gradient(dW_e, dW_p)
        # CD statistics are ascent directions of the log-likelihood; optimizers descend.
        self._optimizer.apply_gradients([(grad_e, self._W_e), (grad_p, self._W_p),
                                         (da.neg_(), self.a), (db.neg_(), self.b)])
        return rec

    def run_epoch(self, data: SparseRatings, epoch: int, generator: torch.Generator,
                  progress: Any = None) -> float:
        """One pass over the users in shuffled mini-batches.

        The shuffle comes from a CPU generator seeded by (seed, epoch), so every rank of a
        distributed run walks the same *global* batches; a rank trains on the rows of each
        global batch that belong to its shard.
        """
        cfg = self.config
        k = cfg.k_at(epoch)
        n_global = data.n_rows if self._shard is None else self._shard.n_global
        batch_size = cfg.batch_size_for(n_global)
        shuffle = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        order = torch.randperm(n_global, generator=shuffle)
        self._load_training_weights()
        total, batches = torch.zeros((), device=self.device), 0
        for start in range(0, n_global, batch_size):
            rows = order[start:start + batch_size]
            if self._shard is not None:
                rows = self._shard.local_rows(rows)
            total += self.train_step(data.batch(rows.to(self.device)), k, generator)
            batches += 1
            if progress is not None:
                progress.update(min(batch_size, n_global - start))
        self._store_training_weights()
        return float(total) / max(batches, 1)

    def fit(self, train: Ratings, validation: Ratings | None = None,
            callbacks: Sequence[callbacks_module.Callback] | None = None, verbose: int = 1,
            on_epoch: Callable[[int, int, dict[str, float]], None] | None = None,
            distributed: bool = False, initial_model: RBMRecommender | None = None,
            ) -> callbacks_module.History:
        """Train on ``train``; with ``validation`` (held-out ratings of the same users) log the
        held-out precision/nDCG@eval_k and free-energy gap each epoch.

        ``on_epoch(epoch, epochs, logs)`` is called after each epoch (1-based), e.g. for a job's
        progress row. Returns a ``History`` (``history.history["val_ndcg"]``, ...).
        ``distributed=True`` trains data-parallel over the initialised torch.distributed group
        (see ``rbm.distributed``): this rank densifies only its shard of the users.
        ``initial_model`` (a trained model with the same hidden layout): warm start, see
        :meth:`_warm_start_from`; ``config.epochs`` then counts the epochs added to it.
        """
        cfg = self.config
        validate_ratings(train, rating_min=cfg.rating_min, rating_max=cfg.rating_max)
        train = deduplicate(train)
        items = train.used_item_ids().tolist()  # sorted distinct ids, from the codes
        users = train.used_user_ids().tolist()
        if len(items) < 2:
            raise ValueError(f"training data must rate at least 2 distinct items. Received: "
                             f"{len(items)} item(s)")
        if len(users) < 2:
            raise ValueError(f"training data must come from at least 2 distinct users. "
                             f"Received: {len(users)} user(s)")
        torch.manual_seed(cfg.seed)
        generator = torch.Generator(device=self.device)
        generator.manual_seed(cfg.seed)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
        self.item_ids = items
        self._item_index = {item: j for j, item in enumerate(items)}
        self._shard = None
        if distributed:
            if validation is not None:
                raise ValueError("validation is not supported with distributed=True: evaluate "
                                 "the saved model instead")
            from .distributed import Shard

            self._shard = Shard.from_process_group(len(users))
            # Global user u lives on rank u % world_size, at local row u // world_size.
            user_index = {u: i // self._shard.world_size for i, u in enumerate(users)
                          if self._shard.owns(i)}
            self.local_users = [u for i, u in enumerate(users) if self._shard.owns(i)]
        else:
            user_index = {u: i for i, u in enumerate(users)}
        data, _ = self.encode(train, user_index)
        self._init_parameters(data, len(users), generator)
        if initial_model is not None:
            self._warm_start_from(initial_model)

        self._optimizer = optimizers.get(cfg.optimizer)
        self._optimizer = type(self._optimizer).from_config(
            {**self._optimizer.get_config(), "learning_rate": cfg.learning_rate,
             **({"momentum": cfg.momentum} if "momentum" in self._optimizer.get_config() else {})})
        self._reg_engagement = regularizers.l2(cfg.weight_decay)
        self._reg_preference = regularizers.l2(cfg.preference_decay)
        self._W_e = self._W_p = None  # the training weights, made from W by run_epoch
        self._matmul_dtype = resolve_matmul_dtype(cfg.matmul_dtype, self.device)
        if self.device.type == "cpu":
            backend.configure_threads()

        val_data = None
        if validation is not None and len(validation):
            validation = deduplicate(validation)
            val_data, _ = self.encode(validation, user_index)

        history = callbacks_module.History()
        cb = callbacks_module.CallbackList([*(callbacks or []), history], model=self,
                                           params={"epochs": cfg.epochs})
        self.stop_training = False
        cb.on_train_begin()
        started = time.perf_counter()
        progress = None
        if verbose and (self._shard is None or self._shard.rank == 0):
            from tqdm.auto import tqdm
            progress = tqdm(total=cfg.epochs * len(users), unit="user", desc="RBM CD training",
                            leave=False)
        try:
            for epoch in range(cfg.epochs):
                cb.on_epoch_begin(epoch)
                t0, cpu0 = time.perf_counter(), time.process_time()
                logs = {"reconstruction_error": self.run_epoch(data, epoch, generator, progress),
                        "cd_k": float(cfg.k_at(epoch))}
                logs["epoch_seconds"] = time.perf_counter() - t0
                # CPU seconds of this process (all its threads): on a shared machine a steadier
                # measure of the work than the wall clock.
                logs["epoch_cpu_seconds"] = time.process_time() - cpu0
                if val_data is not None:
                    logs.update(self._validation_logs(data, val_data))
                if progress is not None:
                    progress.set_postfix({k: round(v, 4) for k, v in logs.items()
                                          if k in ("reconstruction_error", "val_ndcg")})
                cb.on_epoch_end(epoch, logs)
                if on_epoch is not None:
                    on_epoch(epoch + 1, cfg.epochs, logs)
                if self.stop_training:
                    break
        finally:
            if progress is not None:
                progress.close()
        cb.on_train_end()
        self.history = history.history
        self.metadata = {
            "format_version": FORMAT_VERSION,
            "training": {
                "n_users": len(users), "n_items": len(items), "n_ratings": len(train),
                "fingerprint": train.fingerprint(),
                "seconds": time.perf_counter() - started,
                "epochs_run": len(history.epoch),
                "device": str(self.device),
                "world_size": 1 if self._shard is None else self._shard.world_size,
            },
        }
        self._shard = None
        return history

    @torch.no_grad()
    def _validation_logs(self, data: SparseRatings, val: SparseRatings) -> dict[str, float]:
        """Held-out precision/nDCG@eval_k and mean free energies.

        ``free_energy_train`` averages F over the users' training vectors and
        ``free_energy_val`` over their held-out vectors. With a per-user split the two vectors
        differ in size, so the gap's level means little (it sits below zero); its *trend* is
        the over-fitting monitor of Hinton's guide: a widening gap means the model fits the
        training vectors better than data it never saw. (The guide compares held-out *users*;
        the service and the protocol hold out ratings of every user instead.)
        """
        # Imported here: evaluation depends on rbm, not the other way round.
        from ..evaluation.metrics import ranking_metrics

        k = self.config.eval_k
        rows_with_val = torch.nonzero(val.indptr[1:] > val.indptr[:-1]).flatten()
        sums = {"precision": 0.0, "ndcg": 0.0}
        fe_train, fe_val = 0.0, 0.0
        for start in range(0, rows_with_val.numel(), 256):
            rows = rows_with_val[start:start + 256]
            x = data.dense(rows)
            xv = val.dense(rows)
            scores, _ = self._scores_from_dense(x)
            top = scores.topk(min(k, self.n_items), dim=1).indices
            relevant = xv.view(rows.numel(), -1, N_STATES).sum(dim=-1) > 0
            m = ranking_metrics(top, relevant)
            for key in sums:
                sums[key] += float(m[key].sum())
            fe_train += float(Fn.free_energy(x, self.W, self.a, self.b).sum())
            fe_val += float(Fn.free_energy(xv, self.W, self.a, self.b).sum())
        n = max(rows_with_val.numel(), 1)
        return {"val_precision": sums["precision"] / n, "val_ndcg": sums["ndcg"] / n,
                "free_energy_train": fe_train / n, "free_energy_val": fe_val / n,
                "free_energy_gap": (fe_val - fe_train) / n}

    # -- scoring ----------------------------------------------------------------------------
    def _state_probs(self, x: torch.Tensor | Fn.SparseBatch) -> torch.Tensor:
        """(users, items, 2): p(disliked), p(liked) from mean-field hidden activations."""
        if isinstance(x, Fn.SparseBatch):
            ph = torch.sigmoid(Fn.hidden_input_sparse(x, self.W, self.b))
            n = x.size
        else:
            ph = Fn.hidden_probs(x, self.W, self.b)
            n = x.shape[0]
        return Fn.visible_probs(ph, self.W, self.a, N_STATES).view(n, -1, N_STATES)

    def _scores_from_dense(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Ranking scores (p(rated), shrunk toward the population's for users with few
        ratings: :meth:`_shrink`) with the user's rated items set to -inf, and the state
        probabilities they come from: ``(users, items)``, ``(users, items, 2)``."""
        n = x.shape[0]
        logits = Fn.visible_logits(Fn.hidden_probs(x, self.W, self.b), self.W, self.a)
        probs = Fn.state_probs(logits, N_STATES).view(n, -1, N_STATES)
        rated = x.view(n, -1, N_STATES).sum(dim=-1) > 0
        log_odds = self._shrink(Fn.rated_log_odds(logits.view(n, -1, N_STATES)), rated.sum(dim=1))
        return torch.sigmoid(log_odds).masked_fill(rated, float("-inf")), probs

    def _shrink(self, log_odds: torch.Tensor, n_known: torch.Tensor) -> torch.Tensor:
        """``(n * log_odds + c * prior) / (n + c)`` per user (``n_known``: their ratings the
        model knows; ``c = config.prior_strength``): the ranking's shrinkage toward the
        population for users with few ratings. In place; unchanged when ``c`` is 0 or the
        model has no prior (artifacts saved before it existed)."""
        c = self.config.prior_strength
        if c == 0 or self.prior is None:
            return log_odds
        n = n_known.to(log_odds.dtype).unsqueeze(1)
        return log_odds.mul_(n).add_(self.prior, alpha=c).div_(n + c)

    def _serving_weights(self) -> tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The weights rearranged for scoring, rebuilt whenever W or a change.

        Returns ``(n_tied, W_tied, W_states, a_states)``: ``W_tied (items, n_tied)`` holds the
        engagement weights once (they are equal for both states, so their share of the
        logits is computed once per item: a quarter fewer multiply-adds), ``W_states
        (2 * items, rest)`` the other columns in state-major order and ``a_states (2, items)``
        the biases, so that each state's logits come out as one contiguous block (element-
        wise work on interleaved columns is several times slower). Engagement columns whose
        weights are not tied (e.g. set by hand with ``set_weights``) are treated like the
        rest.
        """
        key = (self.W.data_ptr(), self.W._version, self.a._version)  # in-place updates count
        cached = getattr(self, "_serving", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        W3 = self.W.view(-1, N_STATES, self.W.shape[1])  # (items, state, hidden)
        n_tied = self.config.n_hidden
        if not torch.equal(W3[:, 0, :n_tied], W3[:, 1, :n_tied]):
            n_tied = 0
        n_items, _, n_total = W3.shape
        weights = (n_tied, W3[:, 0, :n_tied].contiguous(),
                   W3[:, :, n_tied:].transpose(0, 1).reshape(N_STATES * n_items, n_total - n_tied),
                   self.a.view(-1, N_STATES).t().contiguous())
        self._serving = (key, weights)
        return weights

    def _rated_log_odds(self, batch: Fn.SparseBatch) -> torch.Tensor:
        """(users, items) log-odds that the user rates each item, ``-inf`` where they have.

        ``p(rated) = sigmoid(log-odds)``, the sum of the two rated states' probabilities, and
        the log-odds are ``log(exp(z_disliked) + exp(z_liked))`` of the two states' logits
        (``Fn.rated_log_odds``), shrunk toward the population's for users with few ratings
        (:meth:`_shrink`). The serving hot path: ``recommend`` ranks by the log-odds
        and applies the sigmoid to the top ``k`` only. It reads only the serving weights,
        which stay in the caches better than W and them both.
        """
        n_tied, W_tied, W_states, a_states = self._serving_weights()
        # The hidden input from the same rearranged weights (not from W): one copy of the
        # weights per batch goes through the caches instead of two.
        items = torch.div(batch.cols, N_STATES, rounding_mode="floor")
        state_major = (batch.cols - items * N_STATES) * self.n_items + items
        ph = torch.sigmoid(torch.cat([
            F.embedding_bag(items, W_tied, batch.offsets, mode="sum"),
            F.embedding_bag(state_major, W_states, batch.offsets, mode="sum")], dim=1) + self.b)
        n = batch.size
        # Logits z_s = a_s + h_tied W_tied + h_rest W_s: the tied part is shared by both states.
        rest = torch.mm(ph[:, n_tied:], W_states.t()).view(n, N_STATES, self.n_items) + a_states
        log_odds = Fn.rated_log_odds(rest, dim=1)
        if n_tied:
            log_odds.addmm_(ph[:, :n_tied], W_tied.t())
        self._shrink(log_odds, batch.offsets.diff(append=batch.offsets.new_tensor([len(items)])))
        log_odds.view(-1).index_fill_(0, batch.row_of * self.n_items + items, float("-inf"))
        return log_odds

    @torch.no_grad()
    def score_items(self, users_ratings: Sequence[Mapping[str, float]]) -> torch.Tensor:
        """(users, n_items) ranking scores p(rated); -inf for items the user rated."""
        self._require_fitted()
        log_odds = self._rated_log_odds(self._encode_entries(users_ratings))
        return torch.sigmoid(log_odds).masked_fill_(log_odds == float("-inf"), float("-inf"))

    @torch.no_grad()
    def recommend(self, users_ratings: Sequence[Mapping[str, float]], k: int = 10,
                  allowed: torch.Tensor | None = None) -> list[list[tuple[str, float]]]:
        """Top-``k`` unseen items per user, best first, as ``(item_id, score)`` where the
        score is p(rated): how likely the user is to rate (engage with) the item.

        Each mapping is a user's *current* ratings (fold-in: no retraining needed); items the
        model has never seen are ignored, and an item in the mapping is never returned.
        ``allowed``: a bool mask ``(n_items,)`` or ``(users, n_items)``; items it marks False
        are never returned (applied before the top-k: a filtered list still has ``k`` items
        when ``k`` allowed items exist).
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer. Received: k={k!r}")
        if isinstance(users_ratings, Mapping):
            raise ValueError("recommend() takes a sequence of {item: rating} mappings, one per "
                             "user. Received a single mapping: wrap it in a list")
        if len(users_ratings) == 0:
            return []
        self._require_fitted()
        log_odds = self._rated_log_odds(self._encode_entries(users_ratings))
        if allowed is not None:
            log_odds.masked_fill_(~allowed, float("-inf"))
        top = log_odds.topk(min(k, self.n_items), dim=1)
        values = torch.sigmoid(top.values).cpu().tolist()
        seen = (top.values == float("-inf")).cpu().tolist()
        indices = top.indices.cpu().tolist()
        ids = self.item_ids
        return [[(ids[j], s) for s, j, rated in zip(vs, js, rs, strict=True) if not rated]
                for vs, js, rs in zip(values, indices, seen, strict=True)]

    @torch.no_grad()
    def predict_like(self, user_ratings: Mapping[str, float], item_ids: Sequence[str],
                     ) -> list[float | None]:
        """p(like | the user rates the item) for each item; ``None`` for unknown items."""
        self._require_fitted()
        probs = self._state_probs(self._encode_entries([user_ratings]))[0]  # (items, 2)
        p_like = (probs[:, 1] / probs.sum(dim=-1)).cpu().tolist()
        out: list[float | None] = []
        for item in item_ids:
            j = self._item_index.get(str(item))
            out.append(None if j is None else float(p_like[j]))
        return out

    @torch.no_grad()
    def hidden_activations(self, users_ratings: Sequence[Mapping[str, float]]) -> torch.Tensor:
        """(users, n_hidden) p(h=1 | ratings): the users' latent factors."""
        self._require_fitted()
        return torch.sigmoid(Fn.hidden_input_sparse(self._encode_entries(users_ratings), self.W,
                                                     self.b))

    # -- persistence ------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """``weights.safetensors`` (W, a, b, prior) plus ``metadata.json`` in ``directory``."""
        self._require_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {"W": self.W.detach().cpu().contiguous(), "a": self.a.detach().cpu(),
                   "b": self.b.detach().cpu()}
        if self.prior is not None:
            tensors["prior"] = self.prior.detach().cpu()
        save_file(tensors, str(directory / "weights.safetensors"))
        meta = {
            **self.metadata,
            "format_version": FORMAT_VERSION,
            "model": "ternary-softmax RBM",
            "binarization": {"liked": f">= {self.config.like_threshold:g}",
                             "disliked": f"< {self.config.like_threshold:g}",
                             "unrated": -1, "like_threshold": self.config.like_threshold},
            "config": self.config.to_dict(),
            "history": self.history,
            "item_ids": self.item_ids,
        }
        (directory / "metadata.json").write_text(json.dumps(meta, default=float))
        return directory

    @classmethod
    def load(cls, directory: str | Path, device: str = "auto") -> RBMRecommender:
        """Load a saved model onto ``device`` (a GPU-trained model loads on CPU too)."""
        directory = Path(directory)
        meta_path = directory / "metadata.json"
        if not meta_path.exists():
            raise ValueError(f"No saved model in {str(directory)!r}: metadata.json is missing")
        meta = json.loads(meta_path.read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"Unsupported model format_version "
                             f"{meta.get('format_version')!r}; expected {FORMAT_VERSION}")
        config = RBMConfig.from_dict({**meta["config"], "device": device})
        model = cls(config)
        tensors = load_file(str(directory / "weights.safetensors"), device=str(model.device))
        model.W, model.a, model.b = tensors["W"], tensors["a"], tensors["b"]
        model.prior = tensors.get("prior")  # absent from artifacts saved before it existed
        model.item_ids = list(meta["item_ids"])
        model._item_index = {item: j for j, item in enumerate(model.item_ids)}
        model.history = meta.get("history", {})
        model.metadata = {k: v for k, v in meta.items()
                          if k not in ("item_ids", "history", "config")}
        return model
