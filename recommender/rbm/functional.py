"""The RBM's mathematics as pure functions on torch tensors.

Visible units are *categorical*: unit ``i`` is in one of ``S + 1`` states, state 0 being a
reference state that carries no weights and no bias (energy 0). A unit is stored as ``S``
indicator columns, all zero for the reference state, so a batch of visible vectors is a
``(batch, n_units * S)`` matrix ``x`` and the weights are ``W: (n_units * S, n_hidden)``.

* ``S = 1`` is the textbook Bernoulli RBM: the indicator is the binary value v_i itself, and
  p(v_i=1|h) = sigmoid(a_i + sum_j h_j w_ij).
* ``S = 2`` is the recommender's ternary unit: reference = "unrated", then "disliked",
  "liked" (see ``docs/rbm.md`` for why).

Energy  E(x, h) = -x.a - h.b - x W h^T
p(h_j = 1 | x) = sigmoid(b_j + (x W)_j)
p(unit i in state s | h) = exp(a_is + (h W^T)_is) / (1 + sum_s' exp(a_is' + (h W^T)_is'))
Free energy F(x) = -x.a - sum_j softplus(b_j + (x W)_j)

An optional ``mask: (batch, n_units)`` marks observed units (1) and missing ones (0). Missing
units contribute nothing to the hidden input (their indicators are zero in the data), are
clamped to "nothing" in reconstructions, and so receive no update: the textbook treatment of
unrated items in a like/dislike RBM.

The fused CD-1 of the recommender's structured model, an optimisation of ``cd_k_sparse`` +
``conditional_cd_sparse`` tested against them, is in ``rbm/structured.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def hidden_probs(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """p(h=1 | x): ``(batch, n_units*S) -> (batch, n_hidden)``."""
    return torch.sigmoid(torch.addmm(b, x, W))


def visible_logits(h: torch.Tensor, W: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Logits of the weighted states: ``(batch, n_hidden) -> (batch, n_units*S)``."""
    return torch.addmm(a, h, W.t())


def visible_probs(h: torch.Tensor, W: torch.Tensor, a: torch.Tensor, n_states: int) -> torch.Tensor:
    """p(state s of each unit | h) for the S weighted states: ``(batch, n_units*S)``.

    The reference state's probability is ``1 - sum`` over a unit's S columns.
    """
    return state_probs(visible_logits(h, W, a), n_states)


def state_probs(logits: torch.Tensor, n_states: int) -> torch.Tensor:
    """``visible_probs`` from the logits: ``(batch, n_units*S) -> (batch, n_units*S)``."""
    if n_states == 1:
        return torch.sigmoid(logits)
    batch = logits.shape[0]
    z = logits.view(batch, -1, n_states)  # (batch, units, S)
    # Softmax over [0, z_1, ..., z_S] without materialising the reference column.
    m = z.amax(dim=-1, keepdim=True).clamp_min(0.0)
    e = torch.exp(z - m)
    p = e / (torch.exp(-m) + e.sum(dim=-1, keepdim=True))
    return p.view(batch, -1)


def rated_log_odds(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Logits of a unit's S weighted states along ``dim`` -> the log-odds that the unit is in
    any of them rather than the reference state: ``log sum_s exp(z_s)``, so that
    ``p(not reference) = sigmoid(log-odds)`` (the sum of ``visible_probs``' S columns)."""
    if logits.shape[dim] == 2:  # ternary units: logaddexp is several times faster
        disliked, liked = logits.unbind(dim)
        return torch.logaddexp(disliked, liked)
    return torch.logsumexp(logits, dim=dim)


def sample_bernoulli(p: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    return (torch.rand(p.shape, generator=generator, device=p.device, dtype=p.dtype) < p).to(
        p.dtype)


def sample_visible(p: torch.Tensor, n_states: int,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """One categorical draw per unit from ``visible_probs`` output; indicator columns out."""
    if n_states == 1:
        return sample_bernoulli(p, generator)
    batch = p.shape[0]
    probs = p.view(batch, -1, n_states)
    cdf = probs.cumsum(dim=-1)
    u = torch.rand(probs.shape[:-1] + (1,), generator=generator, device=p.device,
                   dtype=p.dtype)
    # State s is chosen when cdf[s-1] <= u < cdf[s]; u >= cdf[-1] means the reference state.
    upper = u < cdf
    lower = torch.cat([torch.zeros_like(upper[..., :1]), upper[..., :-1]], dim=-1)
    return (upper & ~lower).to(p.dtype).view(batch, -1)


def energy(x: torch.Tensor, h: torch.Tensor, W: torch.Tensor, a: torch.Tensor,
           b: torch.Tensor) -> torch.Tensor:
    """E(x, h) per row: ``-x.a - h.b - x W h``."""
    return -(x @ a) - (h @ b) - ((x @ W) * h).sum(dim=-1)


def free_energy(x: torch.Tensor, W: torch.Tensor, a: torch.Tensor,
                b: torch.Tensor) -> torch.Tensor:
    """F(x) = -log sum_h exp(-E(x, h)) per row."""
    return -(x @ a) - F.softplus(torch.addmm(b, x, W)).sum(dim=-1)


def expand_mask(mask: torch.Tensor, n_states: int) -> torch.Tensor:
    """``(batch, n_units) -> (batch, n_units*S)``: each unit's mask repeated over its columns."""
    if n_states == 1:
        return mask
    return mask.repeat_interleave(n_states, dim=1)


def dropout_mask(b: torch.Tensor, hidden_dropout: float,
                 generator: torch.Generator | None = None) -> torch.Tensor | None:
    """A 0/1 keep-mask over the hidden units, or ``None`` without dropout. One mask per call:
    CD draws one per mini-batch, shared by every user of it through the whole chain; a
    departure from Srivastava et al., who draw one per training case (``docs/rbm.md``)."""
    if hidden_dropout <= 0:
        return None
    keep = 1.0 - hidden_dropout
    return (torch.rand(b.shape[0], generator=generator, device=b.device) < keep).to(b.dtype)


def gibbs_chain(ph0: torch.Tensor, W: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *,
                k: int, n_states: int, col_mask: torch.Tensor | None = None,
                drop: torch.Tensor | None = None, sample_visible_units: bool = False,
                sample_hidden_units: bool = True, generator: torch.Generator | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``k`` steps h -> x -> h of block Gibbs sampling from p(h | x0) = ``ph0``.

    Each step samples h ~ p(h | x) (or keeps the probabilities: mean field), computes
    p(x | h) and samples x from it (or keeps the probabilities), zeroes the masked columns
    (``col_mask``) and recomputes p(h | x), times the dropout mask ``drop``. Returns the last
    visible state and its hidden probabilities ``(x_k, p(h | x_k))``.
    """
    ph = ph0
    xk = ph0.new_zeros(0)
    for _ in range(k):
        h = sample_bernoulli(ph, generator) if sample_hidden_units else ph
        pv = visible_probs(h, W, a, n_states)
        xk = sample_visible(pv, n_states, generator) if sample_visible_units else pv
        if col_mask is not None:
            xk = xk * col_mask
        ph = hidden_probs(xk, W, b)
        if drop is not None:
            ph = ph * drop
    return xk, ph


@dataclass
class CDStatistics:
    """What one CD-k step measured: the gradient estimates (ascent directions) and monitors."""

    dW: torch.Tensor  # (n_units*S, n_hidden): <x h>_data - <x h>_model
    da: torch.Tensor  # (n_units*S,)
    db: torch.Tensor  # (n_hidden,)
    reconstruction_error: torch.Tensor  # scalar: mean squared error over observed columns
    h_0: torch.Tensor  # p(h | x0)
    x_k: torch.Tensor  # the chain's last visible state
    h_k: torch.Tensor  # p(h | x_k)


def cd_k(x0: torch.Tensor, W: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *, k: int = 1,
         n_states: int = 1, mask: torch.Tensor | None = None, sample_visible_units: bool = False,
         sample_hidden_units: bool = True, hidden_dropout: float = 0.0,
         generator: torch.Generator | None = None) -> CDStatistics:
    """Contrastive divergence with a Gibbs chain of ``k`` steps started at the data.

    dW = (x0^T p(h|x0) - xk^T p(h|xk)) / batch, da = mean(x0 - xk), db = mean(p(h|x0) - p(h|xk)).
    Hidden states are sampled on the way down (``sample_hidden_units=False`` uses their
    probabilities: deterministic, "mean-field" CD); visible states are sampled when
    ``sample_visible_units`` and otherwise replaced by their probabilities (mean field, the
    lower-variance choice of Hinton's practical guide); the statistics always use p(h|x).
    Masked (unobserved) units have zero indicators in x0 and are zeroed in every
    reconstruction, so they neither feed the hidden units nor get an update.
    ``hidden_dropout``: the rate of one keep-mask over the hidden units for the whole batch
    (:func:`dropout_mask`), applied to p(h|x0) and to every p(h|x) of the chain.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1. Received: k={k}")
    batch = x0.shape[0]
    col_mask = expand_mask(mask, n_states).to(x0.dtype) if mask is not None else None
    drop = dropout_mask(b, hidden_dropout, generator)
    ph0 = hidden_probs(x0, W, b)
    if drop is not None:
        ph0 = ph0 * drop
    xk, ph = gibbs_chain(ph0, W, a, b, k=k, n_states=n_states, col_mask=col_mask, drop=drop,
                         sample_visible_units=sample_visible_units,
                         sample_hidden_units=sample_hidden_units, generator=generator)
    dW = (x0.t() @ ph0 - xk.t() @ ph) / batch  # <x h>_data - <x h>_model
    da = (x0 - xk).mean(dim=0)
    db = (ph0 - ph).mean(dim=0)
    diff = (x0 - xk) if col_mask is None else (x0 - xk) * col_mask
    denom = x0.numel() if col_mask is None else col_mask.sum().clamp_min(1.0)
    rec = diff.square().sum() / denom
    return CDStatistics(dW=dW, da=da, db=db, reconstruction_error=rec, h_0=ph0, x_k=xk, h_k=ph)


# -- sparse data: the same statistics without densifying the data ------------------------------
# A batch of users' data rows is given as COO entries of the indicator matrix x0 (all ones):
# ``row_of`` (nnz,) batch row of each entry, ``cols`` (nnz,) its column, ``offsets`` (batch,)
# where each row's entries start (entries are grouped by row). The reconstructions stay dense:
# the model's distribution covers every item.


@dataclass
class SparseBatch:
    row_of: torch.Tensor  # (nnz,) int64
    cols: torch.Tensor  # (nnz,) int64
    offsets: torch.Tensor  # (batch,) int64
    size: int  # rows in the batch

    def rows(self, start: int, stop: int) -> SparseBatch:
        """Rows ``[start, stop)`` as a batch of their own (the entries come grouped by row,
        in row order: ``offsets`` is where each row's begin)."""
        nnz = len(self.cols)
        first = int(self.offsets[start]) if start < self.size else nnz
        last = int(self.offsets[stop]) if stop < self.size else nnz
        return SparseBatch(row_of=self.row_of[first:last] - start, cols=self.cols[first:last],
                           offsets=self.offsets[start:stop] - first, size=stop - start)

    def dense(self, n_columns: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        out = torch.zeros(self.size, n_columns, dtype=dtype, device=self.cols.device)
        out[self.row_of, self.cols] = 1.0
        return out


def bag_sum(indices: torch.Tensor, W: torch.Tensor, offsets: torch.Tensor,
            per_sample_weights: torch.Tensor | None = None) -> torch.Tensor:
    """``(bags, W.shape[1])``: the (weighted) sum of ``W[indices]`` rows in each bag that
    ``offsets`` starts, empty bags included (an embedding bag in sum mode).

    ``W`` without columns (no preference units, or untied engagement weights) answers zeros
    without calling the kernel: torch 2.13's CPU ``embedding_bag`` on a width-0 weight raises
    ``Expected i < index_size`` whenever it runs on more than one thread.
    """
    if W.shape[1] == 0:
        return W.new_zeros(offsets.numel(), 0)
    return F.embedding_bag(indices, W, offsets, mode="sum", per_sample_weights=per_sample_weights)


def hidden_input_sparse(batch: SparseBatch, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``b + x0 W`` for indicator data: a sum of W's rows per user (an embedding bag)."""
    # One bag per offset, empty bags (users without entries) included: (batch, hidden)
    return bag_sum(batch.cols, W, batch.offsets) + b


def cd_k_sparse(batch: SparseBatch, W: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *,
                k: int = 1, n_states: int = 1, sample_visible_units: bool = False,
                sample_hidden_units: bool = True, hidden_dropout: float = 0.0,
                generator: torch.Generator | None = None) -> CDStatistics:
    """``cd_k`` for sparse data (no mask: every unit observed). Same random draws, same result.

    The positive phase costs O(nnz * hidden) instead of O(batch * columns * hidden).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1. Received: k={k}")
    n = batch.size
    drop = dropout_mask(b, hidden_dropout, generator)
    ph0 = torch.sigmoid(hidden_input_sparse(batch, W, b))
    if drop is not None:
        ph0 = ph0 * drop
    xk, ph = gibbs_chain(ph0, W, a, b, k=k, n_states=n_states, drop=drop,
                         sample_visible_units=sample_visible_units,
                         sample_hidden_units=sample_hidden_units, generator=generator)
    inv = 1.0 / n
    # dW = (x0^T ph0 - xk^T ph) / n, the sparse positive term added in place (one W-sized
    # allocation: at Netflix scale W is 35,540 x hidden and W-sized passes dominate a step).
    dW = torch.mm(xk.t(), ph).mul_(-inv)
    dW.index_add_(0, batch.cols, ph0[batch.row_of], alpha=inv)
    counts = torch.bincount(batch.cols, minlength=W.shape[0]).to(W.dtype)
    da = (counts - xk.sum(dim=0)) * inv
    db = (ph0 - ph).mean(dim=0)
    # ||x0 - xk||^2 = sum xk^2 - 2 sum_{entries} xk + nnz
    sq = xk.square().sum() - 2 * xk[batch.row_of, batch.cols].sum() + batch.cols.numel()
    rec = sq / xk.numel()
    return CDStatistics(dW=dW, da=da, db=db, reconstruction_error=rec, h_0=ph0, x_k=xk, h_k=ph)


def conditional_cd_sparse(batch: SparseBatch, W: torch.Tensor, a: torch.Tensor,
                          b: torch.Tensor, ph0: torch.Tensor, *, n_states: int,
                          columns: slice = slice(None), sample_hidden_units: bool = True,
                          generator: torch.Generator | None = None,
                          hidden_sample: torch.Tensor | None = None,
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """CD-1 of the *conditional* model: each rated unit keeps "rated" and only its rated state
    is resampled (like vs dislike); unrated units are masked out entirely.

    Returns ``(dW[:, columns], db[columns])``. Units no user in the batch rated get exactly no
    update. ``ph0`` is p(h | x0) from the joint statistics; ``hidden_sample``, a hidden state
    to start the chain from instead of a fresh sample of ``ph0`` (e.g. the joint chain's).
    """
    if n_states < 2:
        raise ValueError(f"the conditional chain needs n_states >= 2 (a rated state to keep). "
                         f"Received: n_states={n_states}")
    n = batch.size
    hidden = W.shape[1]
    if hidden_sample is not None:
        h = hidden_sample
    else:
        h = sample_bernoulli(ph0, generator) if sample_hidden_units else ph0
    units = batch.cols // n_states  # (nnz,) the rated unit of each entry
    state_cols = units.unsqueeze(1) * n_states + torch.arange(n_states, device=units.device)
    if n_states == 2:
        # p(liked | rated, h) = sigmoid of the logit difference: one dense product of the
        # sampled hidden units with W_liked - W_disliked, read at the rated units only.
        W3 = W.view(-1, 2, hidden)
        diff = torch.addmm(a.view(-1, 2)[:, 1] - a.view(-1, 2)[:, 0], h,
                           (W3[:, 1] - W3[:, 0]).t())  # (batch, units)
        p_like = torch.sigmoid(diff[batch.row_of, units])
        q = torch.stack([1.0 - p_like, p_like], dim=1)  # (nnz, 2)
    else:
        Wg = W[state_cols.reshape(-1)].view(-1, n_states, hidden)  # (nnz, S, hidden)
        logits = torch.einsum("esh,eh->es", Wg, h[batch.row_of]) + a[state_cols]
        q = torch.softmax(logits, dim=1)  # p(state | rated, h), renormalised over rated states
    flat_cols = state_cols.reshape(-1)
    flat_rows = batch.row_of.repeat_interleave(n_states)
    weights = q.reshape(-1)
    W_cols = W[:, columns]
    bag = bag_sum(flat_cols, W_cols, batch.offsets * n_states,
                  per_sample_weights=weights)  # (batch, |columns|)
    phk = torch.sigmoid(bag + b[columns])
    ph0c = ph0[:, columns]
    dW = torch.zeros_like(W_cols).index_add_(0, batch.cols, ph0c[batch.row_of])
    dW.index_add_(0, flat_cols, -weights.unsqueeze(1) * phk[flat_rows])
    return dW / n, (ph0c - phk).mean(dim=0)
