"""Helpers for the service tests (fixtures are in conftest.py)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from fastapi.testclient import TestClient

from recommender.service import Settings, create_app

ADMIN_TOKEN = "test-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# Small enough that a training job takes well under two seconds on a CPU.
TINY_RBM = {"n_hidden": 8, "n_preference_hidden": 8, "epochs": 3, "batch_size": 16, "device": "cpu"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def live_server(settings: Settings) -> Iterator[str]:
    """The app under a real uvicorn server on a free loopback port; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def wait_for_job(client: TestClient, job_id: int, timeout: float = 60.0) -> dict:
    """Poll the job until it finishes; returns its final body."""
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/v1/admin/jobs/{job_id}", headers=ADMIN).json()
        if body["status"] in ("succeeded", "failed"):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {body['status']} after {timeout} s")
        time.sleep(0.05)


def post_generated_ratings(client: TestClient, **kwargs) -> dict[str, dict[str, float]]:
    """Post a small generated rating set; returns it as ``{user: {item: rating}}``."""
    from recommender.data import generate_ratings

    kwargs = {"n_users": 40, "n_items": 30, "ratings_per_user": 10, "seed": 0} | kwargs
    ratings = generate_ratings(**kwargs)
    body = {
        "ratings": [
            {"user_id": u, "item_id": i, "rating": float(v), "timestamp": int(t)}
            for u, i, v, t in zip(
                ratings.users, ratings.items, ratings.values, ratings.timestamps, strict=True
            )
        ]
    }
    response = client.post("/v1/ratings", json=body)
    assert response.status_code == 200, response.text
    return ratings.by_user()


def train(client: TestClient, **config) -> dict:
    """Queue a retrain, wait for it and for this app to serve its model; return the job.

    The job row says "succeeded" as soon as the new version is active in the database; the
    process loads the artifact just after, so a request in between still sees the previous
    model. Waiting for /readyz to name the version removes that race from the tests.
    """
    response = client.post("/v1/admin/retrain", json={"config": config}, headers=ADMIN)
    assert response.status_code == 202, response.text
    job = wait_for_job(client, response.json()["job_id"])
    if job["status"] == "succeeded":
        wait_for_model(client, job["model_version"])
    return job


def wait_for_model(client, version: str, timeout: float = 15.0) -> None:
    """Poll /readyz until the app serves ``version`` (``client``: TestClient or httpx.Client)."""
    deadline = time.monotonic() + timeout
    while client.get("/readyz").json().get("model_version") != version:
        if time.monotonic() > deadline:
            raise AssertionError(f"model {version} not served after {timeout} s")
        time.sleep(0.02)


def offline_model(directory: Path, *, n_items: int = 20):
    """A model as `recommender train` writes it, saved into ``directory``."""
    from recommender.data import generate_ratings
    from recommender.rbm import RBMRecommender

    model = RBMRecommender(n_hidden=4, n_preference_hidden=2, epochs=1, device="cpu")
    model.fit(generate_ratings(n_users=30, n_items=n_items, ratings_per_user=6, seed=1),
              verbose=0)
    model.save(directory)
    return model
