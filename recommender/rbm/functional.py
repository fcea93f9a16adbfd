"""The RBM's mathematics as pure functions on torch tensors.

Visible units are *categorical*: unit ``i`` is in one of ``S + 1`` states, state 0 being a
reference state that carries no weights and no bias (energy 0). A unit is stored as ``S``
indicator columns, all zero for the reference state, so a batch of visible vectors is a
``(batch, n_units * S)`` matrix ``x`` and the weights are ``W: (n_units * S, n_hidden)``.

* ``S = 1`` is the textbook Bernoulli RBM: the indicator is the binary value v_i itself, and
  p(v_i=1|h) = sigmoid(a_i + sum_j h_j w_ij).
* ``S = 2`` is the recommender's ternary unit: reference = "unrated", then "disliked",
  "liked" (see ``rbm.model`` for why).

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
    logits = visible_logits(h, W, a)
    if n_states == 1:
        return torch.sigmoid(logits)
    batch = logits.shape[0]
    z = logits.view(batch, -1, n_states)  # (batch, units, S)
    # Softmax over [0, z_1, ..., z_S] without materialising the reference column.
    m = z.amax(dim=-1, keepdim=True).clamp_min(0.0)
    e = torch.exp(z - m)
    p = e / (torch.exp(-m) + e.sum(dim=-1, keepdim=True))
    return p.view(batch, -1)


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
         hidden_dropout: float = 0.0,
         generator: torch.Generator | None = None) -> CDStatistics:
    """Contrastive divergence with a Gibbs chain of ``k`` steps started at the data.

    dW = (x0^T p(h|x0) - xk^T p(h|xk)) / batch, da = mean(x0 - xk), db = mean(p(h|x0) - p(h|xk)).
    Hidden states are sampled on the way down; visible states are sampled when
    ``sample_visible_units`` and otherwise replaced by their probabilities (mean field, the
    lower-variance choice of Hinton's practical guide); the statistics always use p(h|x).
    Masked (unobserved) units have zero indicators in x0 and are zeroed in every
    reconstruction, so they neither feed the hidden units nor get an update.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1. Received: k={k}")
    batch = x0.shape[0]
    col_mask = expand_mask(mask, n_states).to(x0.dtype) if mask is not None else None
    drop = None
    if hidden_dropout > 0:
        keep = 1.0 - hidden_dropout
        drop = (torch.rand(b.shape[0], generator=generator, device=b.device) < keep).to(b.dtype)
    ph0 = hidden_probs(x0, W, b)
    if drop is not None:
        ph0 = ph0 * drop
    ph = ph0
    xk = x0
    for _ in range(k):
        h = sample_bernoulli(ph, generator)
        pv = visible_probs(h, W, a, n_states)
        xk = sample_visible(pv, n_states, generator) if sample_visible_units else pv
        if col_mask is not None:
            xk = xk * col_mask
        ph = hidden_probs(xk, W, b)
        if drop is not None:
            ph = ph * drop
    inv = 1.0 / batch
    dW = torch.addmm(x0.t() @ ph0, xk.t(), ph, beta=inv, alpha=-inv)
    da = (x0 - xk).mean(dim=0)
    db = (ph0 - ph).mean(dim=0)
    diff = (x0 - xk) if col_mask is None else (x0 - xk) * col_mask
    denom = x0.numel() if col_mask is None else col_mask.sum().clamp_min(1.0)
    rec = diff.square().sum() / denom
    return CDStatistics(dW=dW, da=da, db=db, reconstruction_error=rec, h_0=ph0, x_k=xk, h_k=ph)
