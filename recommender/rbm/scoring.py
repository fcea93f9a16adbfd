"""Scoring: ranking scores, like/dislike predictions and hidden activations of users.

Two paths compute the same ranking scores. :meth:`ScoringMixin.scores_from_dense` is the
reference, written with the textbook functions of ``rbm/functional.py`` on dense indicator
rows (evaluation and the training's validation use it); :meth:`ScoringMixin.score_items` and
:meth:`ScoringMixin.recommend` serve from sparse rows through rearranged weights
(:meth:`~ScoringMixin._rated_log_odds`); ``tests/rbm/test_model.py`` checks one against the
other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from . import functional as Fn
from .encoding import N_STATES, EncodingMixin


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

