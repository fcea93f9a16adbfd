"""Prometheus metrics, one registry per app (so tests can build many apps in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Request latency buckets, seconds: fine-grained below 50 ms where the targets are.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class ServiceMetrics:
    """Every metric the service exports, registered on its own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.request_duration = Histogram(
            "recommender_request_duration_seconds",
            "HTTP request latency by route template, method and status code.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ratings_stored = Gauge(
            "recommender_ratings", "Ratings in the store (counted at scrape time).", registry=r
        )
        self.ratings_received = Counter(
            "recommender_ratings_received", "Ratings accepted by POST /v1/ratings.", registry=r
        )
        self.recommendations = Counter(
            "recommender_recommendations",
            "Recommendation lists served, by strategy.",
            ["strategy"],
            registry=r,
        )
        self.recommendation_batch = Histogram(
            "recommender_recommendation_batch_size",
            "Recommendation requests scored together in one call (micro-batching).",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=r,
        )
        self.active_model = Gauge(
            "recommender_active_model_info",
            "1 for the model version this process serves.",
            ["version"],
            registry=r,
        )
        self.model_loads = Counter(
            "recommender_model_loads", "Model artifact loads, by outcome.", ["outcome"], registry=r
        )
        self.model_metric = Gauge(
            "recommender_model_metric",
            "Held-out metrics of the model this process serves.",
            ["metric"],
            registry=r,
        )
        self.training_duration = Histogram(
            "recommender_training_duration_seconds",
            "Wall time of training jobs run by this process (snapshot to activation).",
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600),
            registry=r,
        )
        self.training_jobs = Counter(
            "recommender_training_jobs",
            "Training jobs finished by this process, by outcome.",
            ["status"],
            registry=r,
        )

    def set_active_model(self, version: str | None, metrics: dict[str, float] | None) -> None:
        """Point the active-model gauges at ``version`` and its held-out metrics."""
        self.active_model.clear()
        if version is not None:
            self.active_model.labels(version=version).set(1)
        self.model_metric.clear()
        for name, value in (metrics or {}).items():
            self.model_metric.labels(metric=name).set(value)
