"""Ranking metrics at k and like/dislike accuracy (defined in ``rbm.ranking``, one layer down,
so that the RBM's training can report held-out metrics without importing ``evaluation``)."""

from ..rbm.ranking import like_accuracy, ranking_metrics

__all__ = ["like_accuracy", "ranking_metrics"]
