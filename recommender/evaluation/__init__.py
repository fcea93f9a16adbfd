"""Ranking metrics, baselines and the evaluation protocol."""

from .metrics import like_accuracy, ranking_metrics
from .protocol import (
    evaluate_cold_start,
    evaluate_model,
    evaluate_popularity,
    format_table,
    run_protocol,
)

__all__ = ["evaluate_cold_start", "evaluate_model", "evaluate_popularity", "format_table",
           "like_accuracy", "ranking_metrics", "run_protocol"]
