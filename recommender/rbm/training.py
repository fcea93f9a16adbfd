"""Training: CD-k over mini-batches of users, the epoch loop, warm start.

:meth:`TrainingMixin.fit` encodes the ratings, :meth:`~TrainingMixin.initialize` creates the
parameters and the training state in one place, then each epoch walks shuffled mini-batches
(:meth:`~TrainingMixin.run_epoch`, :meth:`~TrainingMixin.train_step`). The statistics are
the fused ``structured.structured_cd1`` for plain CD-1 and the reference ``cd_k_sparse`` +
``conditional_cd_sparse`` of ``rbm/functional.py`` otherwise (k > 1, sampled visible units,
hidden dropout). See ``docs/rbm.md`` for the model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core import backend, optimizers, regularizers
from ..core import callbacks as callbacks_module
from ..data.ratings import Ratings, deduplicate, validate_ratings
from . import functional as Fn
from .distributed import Shard
from .encoding import N_STATES, SparseRatings
from .ranking import ranking_metrics
from .scoring import ScoringMixin
from .structured import structured_cd1

if TYPE_CHECKING:
    from .model import RBMRecommender

FORMAT_VERSION = 1


def resolve_matmul_dtype(name: str, device: torch.device) -> torch.dtype | None:
    """``RBMConfig.matmul_dtype`` -> the dtype of the training's dense products (None: the
    weights' own, float32). ``"auto"`` is bfloat16 on a CPU where bf16 products measure
    clearly faster than fp32 ones (``backend.cpu_has_fast_bfloat16``: with AMX, 5x) and
    float32 elsewhere, including CUDA, where fit turns on tf32 instead."""
    if name == "float32":
        return None
    if name == "bfloat16":
        return torch.bfloat16
    if device.type == "cpu" and backend.cpu_has_fast_bfloat16():
        return torch.bfloat16
    return None



class TrainingMixin(ScoringMixin):  # ScoringMixin: the validation metrics score with it
    # -- training ---------------------------------------------------------------------------
    def initialize(self, data: SparseRatings, n_users: int, generator: torch.Generator,
                   initial_model: RBMRecommender | None = None) -> Self:
        """Give the parameters and the training state their starting values (skorch-style:
        ``__init__`` declares every attribute, this sets them before the first epoch).

        ``data``: the encoded training rows (this rank's, when distributed); ``n_users``: all
        users. Parameters start cold (:meth:`_init_parameters`), then take ``initial_model``'s
        where it knows the items (:meth:`_warm_start_from`). The optimizer, the two groups'
        l2 regularizers and the dtype of the dense products come from the config.
        """
        cfg = self.config
        self._init_parameters(data, n_users, generator)
        if initial_model is not None:
            self._warm_start_from(initial_model)
        self._optimizer = optimizers.get(cfg.optimizer)
        self._optimizer = type(self._optimizer).from_config(
            {**self._optimizer.get_config(), "learning_rate": cfg.learning_rate,
             **({"momentum": cfg.momentum} if "momentum" in self._optimizer.get_config() else {})})
        self._reg_engagement = regularizers.l2(cfg.weight_decay)
        self._reg_preference = regularizers.l2(cfg.preference_decay)
        self._make_training_weights()
        self._matmul_dtype = resolve_matmul_dtype(cfg.matmul_dtype, self.device)
        if self.device.type == "cpu":
            backend.configure_threads()
        return self

    def _init_parameters(self, data: SparseRatings, n_users: int,
                         generator: torch.Generator) -> None:
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
    def _make_training_weights(self) -> None:
        h_e = self.config.n_hidden
        W3 = self.W.view(-1, N_STATES, self.W.shape[1])  # (items, 2, hidden)
        self._W_e = W3[:, 0, :h_e].contiguous()  # (items, n_hidden)
        self._W_p = self.W[:, h_e:].contiguous()  # (items * 2, n_preference_hidden)

    def _load_training_weights(self) -> None:
        # In place: the optimizer's state (momentum) is keyed by these tensors.
        h_e = self.config.n_hidden
        W3 = self.W.view(-1, N_STATES, self.W.shape[1])  # (items, 2, hidden)
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
        reg_e, reg_p = self._reg_engagement, self._reg_preference
        assert reg_e is not None and reg_p is not None, "initialize() makes the regularizers"
        return (reg_e.add_gradient_(dW_e.neg_(), self._W_e),
                reg_p.add_gradient_(dW_p.neg_(), self._W_p))

    def _statistics(self, batch: Fn.SparseBatch, k: int, generator: torch.Generator,
                    ) -> list[torch.Tensor]:
        """[dW_e, dW_p, da, db, reconstruction error]: CD ascent directions of the training
        weights (see ``structured.structured_cd1``)."""
        cfg = self.config
        if batch.size == 0:  # a rank with no rows in this global batch still joins the reduce
            return [torch.zeros_like(self._W_e), torch.zeros_like(self._W_p),
                    torch.zeros_like(self.a), torch.zeros_like(self.b),
                    torch.zeros((), device=self.device)]
        if k == 1 and not cfg.sample_visible and cfg.hidden_dropout == 0:
            s = structured_cd1(batch, self._W_e, self._W_p, self.a, self.b,
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
        # Tied engagement weights take the *mean* of the two states' statistics, not the
        # textbook sum: half its step (the defaults were tuned so; docs/rbm.md).
        dW_e = stats.dW.view(-1, N_STATES, W.shape[1])[:, :, :h_e].mean(dim=1)
        dW_p, db = torch.zeros_like(self._W_p), stats.db
        if cfg.n_preference_hidden:
            dW_p, cond_db = Fn.conditional_cd_sparse(
                batch, W, self.a, self.b, stats.h_0, n_states=N_STATES,
                columns=slice(h_e, None), sample_hidden_units=cfg.sample_hidden,
                generator=generator)
            db = torch.cat([db[:h_e], cond_db])
        return [dW_e, dW_p, stats.da, db, stats.reconstruction_error]

    def train_step(self, batch: Fn.SparseBatch, k: int, generator: torch.Generator,
                   ) -> torch.Tensor:
        """One CD-k update of the training weights from a sparse batch of users; returns the
        reconstruction error (a 0-d tensor, so that the loop does not wait on it)."""
        statistics = self._statistics(batch, k, generator)
        if self._shard is not None:
            # Data-parallel: every rank holds batch-means over its own rows; weight them by
            # the rows, sum over ranks, divide by the global batch. Same update on every rank.
            statistics = self._shard.average(statistics, local_rows=batch.size)
        dW_e, dW_p, da, db, rec = statistics
        grad_e, grad_p = self._group_gradient(dW_e, dW_p)
        assert self._optimizer is not None, "initialize() makes the optimizer"
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
            self._shard = Shard.from_process_group(len(users))
            # Global user u lives on rank u % world_size, at local row u // world_size.
            user_index = {u: i // self._shard.world_size for i, u in enumerate(users)
                          if self._shard.owns(i)}
            self.local_users = [u for i, u in enumerate(users) if self._shard.owns(i)]
        else:
            user_index = {u: i for i, u in enumerate(users)}
        data, _ = self.encode(train, user_index)
        self.initialize(data, len(users), generator, initial_model)

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
        k = self.config.eval_k
        rows_with_val = torch.nonzero(val.indptr[1:] > val.indptr[:-1]).flatten()
        sums = {"precision": 0.0, "ndcg": 0.0}
        fe_train, fe_val = 0.0, 0.0
        for start in range(0, rows_with_val.numel(), 256):
            rows = rows_with_val[start:start + 256]
            x = data.dense(rows)
            xv = val.dense(rows)
            scores, _ = self.scores_from_dense(x)
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

