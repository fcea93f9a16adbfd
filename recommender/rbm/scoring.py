"""Scoring: ranking scores, like/dislike predictions and hidden activations of users.

Two paths compute the same ranking scores. :meth:`ScoringMixin.scores_from_dense` is the
reference, written with the textbook functions of ``rbm/functional.py`` on dense indicator
rows (evaluation and the training's validation use it); :meth:`ScoringMixin.score_items` and
:meth:`ScoringMixin.recommend` serve from sparse rows through rearranged weights
(:meth:`~ScoringMixin._rated_log_odds`); ``tests/rbm/test_model.py`` checks one against the
other. On a large catalogue ``recommend`` ranks without the full fp32 products: bfloat16
products bound every item's score, and only each user's best candidates are scored exactly
(:meth:`~ScoringMixin._top_log_odds`, a certified top k; ``tests/rbm/test_candidate_search.py``
checks it against brute force). On CPUs where numpy's BLAS runs these skinny products faster than
torch's (``backend.numpy_products_are_faster``: MKL on AMD), the full products go through it on
transposed weights; a batch's products can be shared by several threads, each taking a block
of items (:meth:`~ScoringMixin._in_item_blocks`, ``backend.set_scoring_threads``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..core import backend
from . import functional as Fn
from .base import ServingWeights
from .encoding import N_STATES, EncodingMixin

# recommend() on a large catalogue (ScoringMixin._top_log_odds): each user's top CANDIDATES
# items by an upper bound from bfloat16 products are rescored exactly. The search runs on
# catalogues of at least CANDIDATE_SHARE times as many items as it rescores, on CPUs where bf16
# products measure fast (backend.cpu_has_fast_bfloat16): with AMX a 32-user batch, k=10, on 2
# cores took 2.8 ms vs 1.8 ms for the full fp32 products at 1,682 items, 4.0 vs 4.7 at 3,706 and
# 9.8 vs 15.4 at 10,677 (MovieLens-100k, -1M and -10M's shapes). Without AMX (AVX512-BF16 only)
# bf16 products ran slower than fp32 and the search lost: 14.9 vs 9.0-9.8 ms at 10,677.
CANDIDATES = 32
CANDIDATE_SHARE = 100
# The scoring threads (backend.set_scoring_threads) share a batch's exact products by items,
# each taking a block of at least MIN_BLOCK_ITEMS items (for fewer the hand-off costs more than
# it saves); the candidate search shares its users, in blocks of at least MIN_BLOCK_ROWS.
MIN_BLOCK_ITEMS = 256
MIN_BLOCK_ROWS = 4
# The bf16 products' error is at most BF16_ERROR * ||h|| * ||w|| (_upper_log_odds): three
# unit roundoffs of bf16 (3 * 2**-8 = 0.0117) with room for the second-order and fp32 terms.
BF16_ERROR = 0.0125


class ScoringMixin(EncodingMixin):
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

    def scores_from_dense(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The public scoring API on dense indicator rows ``x: (users, n_items * 2)``, and the
        textbook reference of the serving path: ranking scores p(rated), shrunk toward the
        population's for users with few ratings (:meth:`_shrink`), with the user's rated items
        set to -inf, and the state probabilities they come from: ``(users, items)``,
        ``(users, items, 2)``."""
        n = x.shape[0]
        logits = Fn.visible_logits(Fn.hidden_probs(x, self.W, self.b), self.W, self.a)
        probs = Fn.state_probs(logits, N_STATES).view(n, -1, N_STATES)
        rated = x.view(n, -1, N_STATES).sum(dim=-1) > 0
        log_odds = self._shrink(Fn.rated_log_odds(logits.view(n, -1, N_STATES)), rated.sum(dim=1))
        return torch.sigmoid(log_odds).masked_fill(rated, float("-inf")), probs

    def _shrink(self, log_odds: torch.Tensor, n_known: torch.Tensor,
                prior: torch.Tensor | None = None) -> torch.Tensor:
        """``(n * log_odds + c * prior) / (n + c)`` per user (``n_known``: their ratings the
        model knows; ``c = config.prior_strength``): the ranking's shrinkage toward the
        population for users with few ratings. In place; unchanged when ``c`` is 0 or the
        model has no prior (artifacts saved before it existed). ``prior``: the population's
        log-odds of the columns of ``log_odds`` when they are not every item's."""
        c = self.config.prior_strength
        if c == 0 or self.prior is None:
            return log_odds
        n = n_known.to(log_odds.dtype).unsqueeze(1)
        return log_odds.mul_(n).add_(self.prior if prior is None else prior, alpha=c).div_(n + c)

    def _serving_weights(self) -> ServingWeights:
        """The weights rearranged for scoring, rebuilt whenever W or a change.

        ``W_tied (items, n_tied)`` holds the engagement weights once (they are equal for both
        states, so their share of the logits is computed once per item: a quarter fewer
        multiply-adds), ``W_states (2 * items, rest)`` the other columns in state-major order
        and ``a_states (2, items)`` the biases, so that each state's logits come out as one
        contiguous block (element-wise work on interleaved columns is several times slower).
        Engagement columns whose weights are not tied (e.g. set by hand with
        ``set_weights``) are treated like the rest. On a CPU with fast bfloat16 products,
        also their bf16 copies and per-item norms, for the candidate search of
        :meth:`_top_log_odds`.
        """
        key = (self.W.data_ptr(), self.W._version, self.a._version)  # in-place updates count
        cached = self._serving
        if cached is not None and cached[0] == key:
            return cached[1]
        W3 = self.W.view(-1, N_STATES, self.W.shape[1])  # (items, state, hidden)
        n_tied = self.config.n_hidden
        if not torch.equal(W3[:, 0, :n_tied], W3[:, 1, :n_tied]):
            n_tied = 0
        n_items, _, n_total = W3.shape
        W_tied = W3[:, 0, :n_tied].contiguous()
        W_states = W3[:, :, n_tied:].transpose(0, 1).reshape(N_STATES * n_items,
                                                             n_total - n_tied)
        W_tied16 = W_states16 = norms = W_tied_T = W_states_T = None
        if self.W.device.type == "cpu" and backend.cpu_has_fast_bfloat16():
            W_tied16, W_states16 = W_tied.bfloat16(), W_states.bfloat16()
            norms = torch.stack([W_tied.norm(dim=1),
                                 W_states.norm(dim=1).view(N_STATES, n_items).amax(dim=0)])
        if self.W.device.type == "cpu" and backend.numpy_products_are_faster():
            W_tied_T = W_tied.t().contiguous().numpy()
            W_states_T = W_states.t().contiguous().numpy()
        weights = ServingWeights(n_tied, W_tied, W_states,
                                 self.a.view(-1, N_STATES).t().contiguous(),
                                 W_tied16, W_states16, norms, W_tied_T, W_states_T)
        self._serving = (key, weights)
        return weights

    def _hidden_of(self, batch: Fn.SparseBatch, w: ServingWeights,
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(ph (users, hidden), items (entries,), n_known (users,))``: the mean-field hidden
        activations from the serving weights (not from W: one copy of the weights per batch
        goes through the caches instead of two), the item of each entry, ratings per user."""
        items = torch.div(batch.cols, N_STATES, rounding_mode="floor")
        state_major = (batch.cols - items * N_STATES) * self.n_items + items
        ph = torch.sigmoid(torch.cat([
            Fn.bag_sum(items, w.W_tied, batch.offsets),
            Fn.bag_sum(state_major, w.W_states, batch.offsets)], dim=1) + self.b)
        n_known = batch.offsets.diff(append=batch.offsets.new_tensor([len(items)]))
        return ph, items, n_known

    def _log_odds_of_hidden(self, ph: torch.Tensor, n_known: torch.Tensor, w: ServingWeights,
                            start: int = 0, stop: int | None = None) -> torch.Tensor:
        """(users, items) shrunk log-odds of rating each item of ``[start, stop)`` (all by
        default), rated items not masked yet.

        Logits ``z_s = a_s + h_tied W_tied + h_rest W_s``: the tied part is shared by both
        states, so it is added once, to ``log(exp(z_0 - tied) + exp(z_1 - tied))``."""
        n_items = self.n_items
        stop = n_items if stop is None else stop
        rest = ph[:, w.n_tied:]
        if w.W_states_T is not None:  # numpy's BLAS, on the transposed weights
            h = rest.numpy()
            z0, z1 = (torch.from_numpy(np.matmul(h, w.W_states_T[:, s * n_items + start:
                                                                s * n_items + stop]))
                      .add_(w.a_states[s, start:stop]) for s in (0, 1))  # the two states
        else:  # the biases ride in the product (addmm): one pass over the logits fewer
            z0, z1 = (torch.addmm(w.a_states[s, start:stop], rest,
                                  w.W_states[s * n_items + start:s * n_items + stop].t())
                      for s in (0, 1))
        log_odds = torch.logaddexp(z0, z1)  # Fn.rated_log_odds of the two states
        if w.n_tied and w.W_tied_T is not None:
            log_odds.add_(torch.from_numpy(np.matmul(ph[:, :w.n_tied].numpy(),
                                                     w.W_tied_T[:, start:stop])))
        elif w.n_tied:
            log_odds.addmm_(ph[:, :w.n_tied], w.W_tied[start:stop].t())
        prior = None if self.prior is None or (start, stop) == (0, n_items) else \
            self.prior[start:stop]
        return self._shrink(log_odds, n_known, prior)

    def _rated_log_odds_of(self, ph: torch.Tensor, n_known: torch.Tensor, row_of: torch.Tensor,
                           items: torch.Tensor, w: ServingWeights, start: int, stop: int,
                           ) -> torch.Tensor:
        """:meth:`_log_odds_of_hidden` of ``[start, stop)`` with each user's rated items (the
        entries ``row_of``, ``items``) at ``-inf``."""
        log_odds = self._log_odds_of_hidden(ph, n_known, w, start, stop)
        if (start, stop) != (0, self.n_items):
            inside = (items >= start) & (items < stop)
            row_of, items = row_of[inside], items[inside] - start
        log_odds.view(-1).index_fill_(0, row_of * (stop - start) + items, float("-inf"))
        return log_odds

    def _top_of_items(self, ph: torch.Tensor, n_known: torch.Tensor, row_of: torch.Tensor,
                      items: torch.Tensor, allowed: torch.Tensor | None, k: int, w: ServingWeights,
                      start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(values, indices)``: each user's top ``k`` (at most ``stop - start``) of the items
        ``[start, stop)`` by :meth:`_rated_log_odds_of`, those ``allowed`` rules out at
        ``-inf``; indices into the whole catalogue."""
        log_odds = self._rated_log_odds_of(ph, n_known, row_of, items, w, start, stop)
        if allowed is not None:
            log_odds.masked_fill_(~allowed[..., start:stop], float("-inf"))
        top = log_odds.topk(min(k, stop - start), dim=1)
        return top.values, top.indices + start if start else top.indices

    def _in_item_blocks(self, score: Callable[[int, int], Any]) -> list[Any]:
        """``[score(start, stop), ...]`` over consecutive item blocks that cover the catalogue:
        one block, or one per scoring thread (``backend.set_scoring_threads``, CPU only) with
        at least ``MIN_BLOCK_ITEMS`` items each, computed at once.

        By items, not by users: each thread streams its share of the weights, where blocks
        of users would each stream all of them. For a 32-user batch of the 10M-shape model
        (10,677 items, 2 x 200 hidden units) on 2 vCPUs the products took 3.0 ms on two
        threads by items, 3.7 ms by users and 5.9 ms on one; in the service at 32 clients the
        server's CPU per request fell from 670-683 to 595-625 us. The products and
        element-wise steps release the GIL. ``score`` must not itself split (a pool thread
        waiting on the pool could wait forever).
        """
        threads, pool = backend.scoring_threads()
        blocks = min(threads, self.n_items // MIN_BLOCK_ITEMS)
        if pool is None or blocks < 2 or self.W.device.type != "cpu":
            return [score(0, self.n_items)]
        edges = [self.n_items * i // blocks for i in range(blocks + 1)]
        outs = _on_pool(pool, score, list(zip(edges, edges[1:], strict=False)))
        return [score(0, self.n_items)] if outs is None else outs

    def _rated_log_odds(self, batch: Fn.SparseBatch) -> torch.Tensor:
        """(users, items) log-odds that the user rates each item, ``-inf`` where they have.

        ``p(rated) = sigmoid(log-odds)``, the sum of the two rated states' probabilities, and
        the log-odds are ``log(exp(z_disliked) + exp(z_liked))`` of the two states' logits
        (``Fn.rated_log_odds``), shrunk toward the population's for users with few ratings
        (:meth:`_shrink`). The exact serving path: ``score_items`` returns it, and
        ``recommend`` ranks by it (through :meth:`_top_log_odds`), applying the sigmoid to
        the top ``k`` only.
        """
        w = self._serving_weights()
        ph, items, n_known = self._hidden_of(batch, w)
        blocks = self._in_item_blocks(functools.partial(self._rated_log_odds_of, ph, n_known,
                                                        batch.row_of, items, w))
        return blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=1)

    def _in_row_blocks(self, score: Callable[..., tuple[torch.Tensor, torch.Tensor]],
                       batch: Fn.SparseBatch, allowed: torch.Tensor | None = None,
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """``score(batch, allowed)``, whose results are two tensors with a row per user,
        computed in row blocks on the scoring threads at once where
        ``backend.set_scoring_threads`` gave more than one (CPU only): the candidate search's
        split (its per-user candidates do not split by items).

        Each block is a whole call on its own users (their entries, their rows of a
        per-user ``allowed``), so every user gets the rows the whole batch gives. The caller
        builds the serving weights first (blocks finding the cache cold would each build
        them). ``score`` must not itself split (a pool thread waiting on the pool could wait
        forever).
        """
        threads, pool = backend.scoring_threads()
        blocks = min(threads, batch.size // MIN_BLOCK_ROWS)
        if pool is None or blocks < 2 or batch.cols.device.type != "cpu":
            return score(batch, allowed)
        edges = [batch.size * i // blocks for i in range(blocks + 1)]
        parts = [(batch.rows(start, stop),
                  allowed[start:stop] if allowed is not None and allowed.dim() == 2 else allowed)
                 for start, stop in zip(edges, edges[1:], strict=False)]
        outs = _on_pool(pool, score, parts)
        if outs is None:
            return score(batch, allowed)
        values, indices = (torch.cat(column) for column in zip(*outs, strict=True))
        return values, indices

    def _top_log_odds(self, batch: Fn.SparseBatch, k: int, allowed: torch.Tensor | None,
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(values, indices)``, each ``(users, k)``: the top ``k`` of :meth:`_rated_log_odds`
        with the items ``allowed`` rules out at ``-inf``; what ``recommend`` ranks by.

        Exact products in item blocks on the scoring threads (:meth:`_in_item_blocks`), each
        block's top ``k`` merged; or, on a large catalogue where bfloat16 products are fast,
        the candidate search (:meth:`_search_top`) in row blocks (:meth:`_in_row_blocks`).
        """
        w = self._serving_weights()  # built here, once, before any block needs them
        if w.W_states16 is not None and max(CANDIDATES, 2 * k) * CANDIDATE_SHARE <= self.n_items:
            return self._in_row_blocks(functools.partial(self._search_top, k=k), batch, allowed)
        ph, items, n_known = self._hidden_of(batch, w)
        tops = self._in_item_blocks(functools.partial(self._top_of_items, ph, n_known,
                                                      batch.row_of, items, allowed, k, w))
        if len(tops) == 1:
            return tops[0]
        values = torch.cat([v for v, _ in tops], dim=1)
        top = values.topk(k, dim=1)
        return top.values, torch.cat([i for _, i in tops], dim=1).gather(1, top.indices)

    def _search_top(self, batch: Fn.SparseBatch, allowed: torch.Tensor | None, k: int,
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`_top_log_odds` by the candidate search.

        On a large catalogue, where bfloat16 products are fast, the full fp32 products are
        not needed. Candidate search: the log-odds of every item come from bf16 products,
        plus the error bound of :meth:`_upper_log_odds`: an upper bound of each exact
        value. Each user's top ``m = max(CANDIDATES, 2 k)`` items by that bound are scored
        exactly in fp32 (:meth:`_log_odds_at`), and the top ``k`` of them is the top ``k``
        of all items whenever its ``k``-th value beats the ``m``-th candidate's bound: an
        item left out has an exact value at most its own bound, which is at most that one.
        A user whose list fails this check is scored exactly in full.

        The values come from a gather and a batched product, not the full product, so they
        can differ from :meth:`_rated_log_odds`' in the last bits of fp32 (a relative 1e-6):
        two items that close may come out in either order, as they may across BLAS builds.
        """
        w = self._serving_weights()
        m = max(CANDIDATES, 2 * k)
        ph, items, n_known = self._hidden_of(batch, w)
        rated = batch.row_of * self.n_items + items
        upper = self._upper_log_odds(ph, n_known, w)
        upper.view(-1).index_fill_(0, rated, float("-inf"))
        if allowed is not None:
            upper.masked_fill_(~allowed, float("-inf"))
        candidates = upper.topk(m, dim=1)  # (users, m)
        exact = self._log_odds_at(ph, n_known, candidates.indices, w)
        exact.masked_fill_(candidates.values == float("-inf"), float("-inf"))
        top = exact.topk(k, dim=1)
        values, indices = top.values, candidates.indices.gather(1, top.indices)
        bound = candidates.values[:, -1]  # no item left out can exceed it
        # The margin covers the fp32 rounding of either path (a relative 1e-6 or less).
        certain = (bound == float("-inf")) | (values[:, -1] > bound + 1e-4 * (1 + bound.abs()))
        if not bool(certain.all()):
            unsure = torch.nonzero(~certain).squeeze(1)
            full = self._log_odds_of_hidden(ph[unsure], n_known[unsure], w)
            row = torch.full((batch.size,), -1, dtype=torch.long, device=ph.device)
            row[unsure] = torch.arange(len(unsure), device=ph.device)
            theirs = row[batch.row_of] >= 0
            full.view(-1).index_fill_(0, row[batch.row_of[theirs]] * self.n_items
                                      + items[theirs], float("-inf"))
            if allowed is not None:
                full.masked_fill_(~(allowed[unsure] if allowed.dim() == 2 else allowed),
                                  float("-inf"))
            redo = full.topk(k, dim=1)
            values[unsure], indices[unsure] = redo.values, redo.indices
        return values, indices

    def _upper_log_odds(self, ph: torch.Tensor, n_known: torch.Tensor, w: ServingWeights,
                        ) -> torch.Tensor:
        """(users, items): an upper bound of each exact log-odds (rated items not masked),
        from bfloat16 products.

        Error bound: rounding ``h`` and ``w`` to bf16 (unit roundoff ``u = 2**-8``), summing
        their products in fp32 (``K * 2**-24`` for K terms) and rounding the result to bf16
        move ``h . w`` by at most ``(3 u + O(u**2 + K 2**-24)) sum |h_i w_i|``, and
        ``sum |h_i w_i| <= ||h|| ||w||`` (Cauchy-Schwarz): ``BF16_ERROR ||h|| ||w||``. The
        log-odds ``log(exp(z_0) + exp(z_1)) + tied`` move by at most the larger error of
        ``z_0``, ``z_1`` plus the tied part's (log-sum-exp is 1-Lipschitz in the max norm),
        and the shrinkage scales that by ``n / (n + c)``. With the per-item norms
        ``(||W_tied[j]||, max_s ||W_states[s, j]||)`` the bound is one rank-2 product.
        """
        assert w.W_tied16 is not None and w.W_states16 is not None and w.norms is not None
        n = ph.shape[0]
        ph16 = ph.bfloat16()
        rest = torch.mm(ph16[:, w.n_tied:], w.W_states16.t()).view(n, N_STATES, self.n_items)
        log_odds = Fn.rated_log_odds(rest.float().add_(w.a_states), dim=1)
        if w.n_tied:
            log_odds.add_(torch.mm(ph16[:, :w.n_tied], w.W_tied16.t()))
        self._shrink(log_odds, n_known)
        known = n_known.to(ph.dtype)
        c = self.config.prior_strength if self.prior is not None else 0.0
        scale = BF16_ERROR * known / (known + c) if c else torch.full_like(known, BF16_ERROR)
        norms = torch.stack([ph[:, :w.n_tied].norm(dim=1), ph[:, w.n_tied:].norm(dim=1)], 1)
        return log_odds.addmm_(norms * scale.unsqueeze(1), w.norms)

    def _log_odds_at(self, ph: torch.Tensor, n_known: torch.Tensor, idx: torch.Tensor,
                     w: ServingWeights) -> torch.Tensor:
        """(users, m): the exact (fp32) shrunk log-odds of the items ``idx (users, m)``: the
        formula of :meth:`_log_odds_of_hidden` on gathered weight rows."""
        n, m = idx.shape
        h_tied, h_rest = ph[:, :w.n_tied].unsqueeze(1), ph[:, w.n_tied:].unsqueeze(1)
        # (users, m, hidden) rows times (users, 1, hidden), summed: for these shapes several
        # times faster than a batched product.
        z = torch.stack([(w.W_states[idx + s * self.n_items] * h_rest).sum(dim=-1)
                         + w.a_states[s][idx] for s in range(N_STATES)], dim=1)
        log_odds = Fn.rated_log_odds(z, dim=1)  # (users, m)
        if w.n_tied:
            log_odds.add_((w.W_tied[idx] * h_tied).sum(dim=-1))
        return self._shrink(log_odds, n_known, None if self.prior is None else self.prior[idx])

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
        top_values, top_indices = self._top_log_odds(self._encode_entries(users_ratings),
                                                     min(k, self.n_items), allowed)
        values = torch.sigmoid(top_values).cpu().tolist()
        seen = (top_values == float("-inf")).cpu().tolist()
        indices = top_indices.cpu().tolist()
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


def _on_pool(pool: Any, score: Callable[..., Any], parts: Sequence[tuple[Any, ...]],
             ) -> list[Any] | None:
    """``[score(*part) for part in parts]``, computed at once: the first part on this thread,
    the others on the scoring pool's; None when the pool was replaced meanwhile (it refuses
    work: the caller scores in one piece)."""
    try:
        rest = [pool.submit(_without_grad, score, *part) for part in parts[1:]]
    except RuntimeError:
        return None
    return [score(*parts[0]), *(future.result() for future in rest)]


def _without_grad(score: Callable[..., Any], *args: object) -> Any:
    """``score(*args)`` on a pool thread with autograd off (its mode is per thread)."""
    with torch.no_grad():
        return score(*args)
