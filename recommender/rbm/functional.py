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
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# The sparse products below use CSR tensors, which torch still labels "beta" with a warning on
# first use; they are a stable part of torch.sparse.mm on CPU and CUDA.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta",
                        category=UserWarning)


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
    CD draws one per mini-batch (shared by every user of it), not one per user."""
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
    inv = 1.0 / batch
    dW = torch.addmm(x0.t() @ ph0, xk.t(), ph, beta=inv, alpha=-inv)
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

    def dense(self, n_columns: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        out = torch.zeros(self.size, n_columns, dtype=dtype, device=self.cols.device)
        out[self.row_of, self.cols] = 1.0
        return out


def hidden_input_sparse(batch: SparseBatch, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``b + x0 W`` for indicator data: a sum of W's rows per user (an embedding bag)."""
    # One bag per offset, empty bags (users without entries) included: (batch, hidden)
    return F.embedding_bag(batch.cols, W, batch.offsets, mode="sum") + b


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
    bag = F.embedding_bag(flat_cols, W_cols, batch.offsets * n_states, mode="sum",
                          per_sample_weights=weights)  # (batch, |columns|)
    phk = torch.sigmoid(bag + b[columns])
    ph0c = ph0[:, columns]
    dW = torch.zeros_like(W_cols).index_add_(0, batch.cols, ph0c[batch.row_of])
    dW.index_add_(0, flat_cols, -weights.unsqueeze(1) * phk[flat_rows])
    return dW / n, (ph0c - phk).mean(dim=0)


# -- the structured model's fast CD-1 ----------------------------------------------------------
# The recommender's RBM (``rbm.model``) has ternary units (S = 2) and two hidden groups:
# engagement units whose weights are tied across the two rated states, stored once per item as
# ``W_e: (n_items, n_e)``, and preference units with free weights ``W_p: (n_items * 2, n_p)``
# trained by the conditional chain. ``cd_k_sparse`` + ``conditional_cd_sparse`` on the full
# ``W = [W_e repeated per state | W_p]`` are the reference; ``structured_cd1`` computes the
# same statistics with a fraction of the work:
#
# * tied weights: the engagement logits are one ``(batch, items)`` product shared by both
#   states, and their hidden input and statistics only need p(rated) = p(disliked) + p(liked);
# * the joint chain's statistics of the preference columns are never used (the conditional
#   chain trains them), so its hidden probabilities are computed for the engagement units only;
# * the conditional chain uses the joint chain's hidden sample, so its like-vs-dislike logit
#   at each rated entry is read off the joint logits (no product of its own), and everything
#   else it does touches only the rated entries (an embedding bag and one sparse product);
# * optionally the dense products run in bfloat16 (fp32 master weights, cast per step), which
#   CPUs with AVX512-BF16/AMX and GPUs run several times faster than fp32.
#
# Dense products per step: batch x items x (3 n_e + 2 n_p) multiply-adds, against
# batch x items x 2 x 3 (n_e + n_p) (+ items x 2 x n_p for the conditional chain) in the
# reference. ``tests/rbm/test_functional.py`` checks it against the reference.


@dataclass
class StructuredStatistics:
    """CD ascent directions of the structured model's parameters."""

    dW_e: torch.Tensor  # (n_items, n_e): the joint dW averaged over each item's two state rows
    dW_p: torch.Tensor  # (n_items * 2, n_p): the conditional chain's dW
    da: torch.Tensor  # (n_items * 2,): joint
    db: torch.Tensor  # (n_e + n_p,): joint for the engagement units, conditional for the rest
    reconstruction_error: torch.Tensor  # scalar, as ``cd_k_sparse`` reports it


def _transposed_product(out_rows: torch.Tensor, in_rows: torch.Tensor,
                        values: torch.Tensor | None, n_out: int, dense: torch.Tensor,
                        ) -> torch.Tensor:
    """``S @ dense`` for the sparse ``S: (n_out, dense.shape[0])`` with entries
    ``S[out_rows[e], in_rows[e]] = values[e]`` (1 when ``values`` is None; the (out, in) pairs
    are distinct): the scatter-add of dense's rows as one sparse product, several times
    faster than a per-entry ``index_add_`` on a CPU. The CSR structure is built directly (one
    sort of the entries), not through a COO ``coalesce``."""
    if values is None:
        values = torch.ones(out_rows.numel(), dtype=dense.dtype, device=dense.device)
    order = torch.argsort(out_rows, stable=True)  # keeps each row's columns in order
    crow = torch.zeros(n_out + 1, dtype=torch.int64, device=out_rows.device)
    torch.cumsum(torch.bincount(out_rows, minlength=n_out), 0, out=crow[1:])
    S = torch.sparse_csr_tensor(crow, in_rows.index_select(0, order),
                                values.index_select(0, order), (n_out, dense.shape[0]),
                                check_invariants=False)
    return torch.sparse.mm(S, dense)


def _with_bias_columns(W: torch.Tensor, bias: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``[W | hi | lo]`` in ``dtype`` with ``hi + lo == bias`` to ~2^-16 relative: a product
    with ``[h | 1 | 1]`` adds the bias inside the matrix product (no pass over its output),
    at nearly fp32 precision even in bfloat16."""
    out = torch.empty(W.shape[0], W.shape[1] + 2, dtype=dtype, device=W.device)
    out[:, :-2] = W
    out[:, -2] = bias
    out[:, -1] = bias - out[:, -2].to(bias.dtype)
    return out


def structured_cd1(batch: SparseBatch, W_e: torch.Tensor, W_p: torch.Tensor, a: torch.Tensor,
                   b: torch.Tensor, *, sample_hidden_units: bool = True,
                   matmul_dtype: torch.dtype | None = None,
                   generator: torch.Generator | None = None) -> StructuredStatistics:
    """CD-1 of the structured ternary RBM with mean-field reconstructions, from sparse data.

    ``batch`` holds indicator columns ``item * 2 + state`` (state 0 disliked, 1 liked).
    ``matmul_dtype`` (e.g. ``torch.bfloat16``) is the dtype of the dense products and of the
    elementwise passes over their ``(batch, items)`` outputs; the statistics, the sparse
    parts and the weights stay in the weights' dtype. Equal, with
    ``matmul_dtype=None``, to the reference: ``cd_k_sparse`` (k=1, n_states=2) on
    ``W = [W_e per state | W_p]`` for ``dW_e`` (each item's two rows averaged), ``da`` and the
    engagement part of ``db``, and ``conditional_cd_sparse`` given the same hidden sample for
    ``dW_p`` and the rest of ``db``.
    """
    n, n_e, n_p = batch.size, W_e.shape[1], W_p.shape[1]
    n_items = a.numel() // 2
    n_cols = 2 * n_items
    inv = 1.0 / n
    dtype = matmul_dtype or W_e.dtype
    W_p3 = W_p.view(n_items, 2, n_p)  # (items, [disliked, liked], n_p)
    a2 = a.view(n_items, 2)

    items = torch.div(batch.cols, 2, rounding_mode="floor")  # (nnz,)
    state = batch.cols - 2 * items  # (nnz,) 0 disliked, 1 liked
    # Positive phase: p(h | x0), both groups, from the rated entries: (n, n_e + n_p)
    ph0 = torch.sigmoid(torch.cat([F.embedding_bag(items, W_e, batch.offsets, mode="sum"),
                                   F.embedding_bag(batch.cols, W_p, batch.offsets, mode="sum")],
                                  dim=1) + b)
    h = sample_bernoulli(ph0, generator) if sample_hidden_units else ph0
    h1 = torch.cat([h, h.new_ones(n, 2)], dim=1).to(dtype)  # (n, hidden + 2): [h | 1 | 1]
    # Each item's disliked logit z_d = a_d + h_e W_e + h_p W_p,disliked and its liked-vs-
    # disliked logit z_l - z_d = (a_l - a_d) + h_p (W_p,liked - W_p,disliked) (the tied
    # engagement part cancels): two products, biases inside. (n, items) each.
    W_d = _with_bias_columns(torch.cat([W_e, W_p3[:, 0]], dim=1), a2[:, 0], dtype)
    W_diff = _with_bias_columns(W_p3[:, 1] - W_p3[:, 0], a2[:, 1] - a2[:, 0], dtype)
    disliked_logit = torch.mm(h1, W_d.t())
    like_logit = torch.mm(h1[:, n_e:], W_diff.t())
    # p(rated) = sigmoid(log(e^z_d + e^z_l)) = sigmoid(z_d + softplus(z_l - z_d)) and
    # q = p(liked | rated) = sigmoid(z_l - z_d): the joint chain's reconstruction is
    # (p_rated (1 - q), p_rated q) per item. These (n, items) passes stay in the products'
    # dtype, in place where they can: in bfloat16 they run 3-8x faster than in fp32 (half
    # the memory, no fresh fp32 pages), and the products take p_rated as it is.
    p_rated = F.softplus(like_logit).add_(disliked_logit).sigmoid_()
    del disliked_logit
    q = like_logit.sigmoid_()  # in place: the logit is not needed again
    p_liked = p_rated * q
    # Engagement units: tied weights see x_disliked + x_liked; their statistics are half the
    # sum of the two state rows'.
    ph_e = torch.sigmoid(torch.mm(p_rated, W_d[:, :n_e]).to(b.dtype) + b[:n_e])  # (n, n_e)
    dW_e = torch.mm(p_rated.t(), (ph_e * (-0.5 * inv)).to(dtype)).to(W_e.dtype)
    if n_e:
        dW_e.add_(_transposed_product(items, batch.row_of, None, n_items, ph0[:, :n_e]),
                  alpha=0.5 * inv)
    db = torch.empty_like(b)
    db[:n_e] = (ph0[:, :n_e] - ph_e).mean(dim=0)
    # (Reductions accumulate in fp32 whatever the dtype; asking for an fp32 result instead
    # would first copy the whole input to fp32.)
    sum_rated = p_rated.sum(dim=0).to(a.dtype)
    sum_liked = p_liked.sum(dim=0).to(a.dtype)
    count = torch.bincount(batch.cols, minlength=n_cols).to(a.dtype).view(n_items, 2)
    da = (count - torch.stack([sum_rated - sum_liked, sum_liked], dim=1)) * inv
    # Reconstruction error: ||x0 - xk||^2 = sum xk^2 - 2 sum_{entries} xk + nnz.
    p_disliked = p_rated - p_liked
    squares = (torch.linalg.vector_norm(p_liked).to(a.dtype).square()
               + torch.linalg.vector_norm(p_disliked).to(a.dtype).square())
    at = batch.row_of * n_items + items  # (nnz,) each entry's place in (n, items)
    r_at = p_rated.view(-1).index_select(0, at).to(a.dtype)
    q_at = q.view(-1).index_select(0, at).to(a.dtype)
    recon_at_data = r_at * torch.where(state == 1, q_at, 1.0 - q_at)
    nnz = batch.cols.numel()
    rec = (squares - 2 * recon_at_data.sum() + nnz) / (n * n_cols)
    # Preference units: the conditional chain keeps each rated item rated and resamples liked
    # vs disliked with p(liked | rated, h) = q at the rated entries.
    if n_p:
        weights = torch.stack([1.0 - q_at, q_at], dim=1).view(-1)  # (2 nnz,) disliked, liked
        both = (2 * items).unsqueeze(1) + torch.arange(2, device=items.device)  # (nnz, 2)
        phk = torch.sigmoid(F.embedding_bag(both.view(-1), W_p, batch.offsets * 2, mode="sum",
                                            per_sample_weights=weights) + b[n_e:])
        # dW_p = (x0^T ph0 - xc^T phk) / n as one sparse product over [ph0_p; phk]
        rows = torch.cat([batch.cols, both.view(-1)])
        sources = torch.cat([batch.row_of, n + batch.row_of.repeat_interleave(2)])
        values = torch.cat([torch.full((nnz,), inv, dtype=W_p.dtype, device=W_p.device),
                            weights * -inv])
        dW_p = _transposed_product(rows, sources, values, n_cols,
                                   torch.cat([ph0[:, n_e:], phk]))
        db[n_e:] = (ph0[:, n_e:] - phk).mean(dim=0)
    else:
        dW_p = W_p.new_zeros(W_p.shape)
    return StructuredStatistics(dW_e=dW_e, dW_p=dW_p, da=da.reshape(-1), db=db,
                                reconstruction_error=rec)
