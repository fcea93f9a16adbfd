"""The structured model's fast CD-1: the statistics of ``functional.cd_k_sparse`` +
``functional.conditional_cd_sparse`` on the recommender's two hidden groups, with a fraction of
the work. ``tests/rbm/test_functional.py`` checks it against those reference functions.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .functional import SparseBatch, bag_sum, sample_bernoulli

# The sparse products below use CSR tensors, which torch still labels "beta" with a warning on
# first use; they are a stable part of torch.sparse.mm on CPU and CUDA.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta",
                        category=UserWarning)

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
    ph0 = torch.sigmoid(torch.cat([bag_sum(items, W_e, batch.offsets),
                                   bag_sum(batch.cols, W_p, batch.offsets)], dim=1) + b)
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
    # sum of the two state rows' (the mean, not the textbook sum of a tied weight: docs/rbm.md).
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
        phk = torch.sigmoid(bag_sum(both.view(-1), W_p, batch.offsets * 2,
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
