"""Retraining jobs and model versions: dedupe, lifecycle, activation, rollback, failures."""

from __future__ import annotations

import shutil
import time
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from service_helpers import ADMIN, post_generated_ratings, train, wait_for_job
from sqlalchemy import update

from recommender import store
from recommender.service import Settings


def _sessions(url: str):
    engine = store.make_engine(url)
    return engine, store.make_session_factory(engine)


def test_retrain_while_a_job_is_open_returns_that_job(make_client) -> None:
    with make_client(run_worker=False) as client:
        first = client.post("/v1/admin/retrain", headers=ADMIN)
        assert first.status_code == 202
        assert first.json() == {
            "job_id": first.json()["job_id"],
            "status": "queued",
            "created": True,
        }
        again = client.post("/v1/admin/retrain", json={"config": {"epochs": 5}}, headers=ADMIN)
        assert again.status_code == 202
        assert again.json() == {
            "job_id": first.json()["job_id"],
            "status": "queued",
            "created": False,
        }
        job = client.get(f"/v1/admin/jobs/{first.json()['job_id']}", headers=ADMIN).json()
        assert job["status"] == "queued" and job["progress"] == {"epoch": 0, "epochs": 0}


def test_bad_overrides_are_refused_when_queued(client: TestClient) -> None:
    response = client.post("/v1/admin/retrain", json={"config": {"n_hiden": 5}}, headers=ADMIN)
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["field"] == "config.n_hiden" and "n_hiden=5" in error["message"]
    response = client.post("/v1/admin/retrain", json={"config": {"n_hidden": -3}}, headers=ADMIN)
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["field"] == "config.n_hidden" and "-3" in error["message"]
    response = client.post("/v1/admin/retrain", json={"epochs": 3}, headers=ADMIN)
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "epochs"
    assert client.get("/v1/admin/models", headers=ADMIN).json() == {
        "active_version": None,
        "models": [],
    }


def test_a_job_runs_to_an_active_model(client: TestClient) -> None:
    by_user = post_generated_ratings(client)
    n_ratings = sum(len(items) for items in by_user.values())
    job = train(client)
    assert job["status"] == "succeeded", job["error"]
    assert job["progress"] == {"epoch": 3, "epochs": 3}
    assert {"precision", "recall", "ndcg", "map", "like_accuracy", "coverage"} <= set(
        job["metrics"]
    )
    assert job["error"] is None and job["started_at"] and job["finished_at"]
    version = job["model_version"]
    models = client.get("/v1/admin/models", headers=ADMIN).json()
    assert models["active_version"] == version
    (model,) = models["models"]
    assert model["active"] and model["job_id"] == job["job_id"]
    assert (model["n_users"], model["n_items"], model["n_ratings"]) == (40, 30, n_ratings)
    assert model["params"]["n_hidden"] == 8 and model["metrics"] == job["metrics"]
    recs = client.get("/v1/users/u0/recommendations").json()
    assert recs["strategy"] == "rbm" and recs["model_version"] == version
    assert (
        f'recommender_active_model_info{{version="{version}"}} 1.0' in client.get("/metrics").text
    )
    assert client.get("/readyz").json()["model_version"] == version
    assert client.get("/v1/admin/jobs/999", headers=ADMIN).status_code == 404


def test_roll_back_and_forward_between_versions(client: TestClient) -> None:
    post_generated_ratings(client)
    v1 = train(client)["model_version"]
    time.sleep(1.1)  # version names carry the second
    v2 = train(client, n_hidden=6)["model_version"]
    assert v1 != v2
    assert client.get("/v1/admin/models", headers=ADMIN).json()["active_version"] == v2
    response = client.post(f"/v1/admin/models/{v1}/activate", headers=ADMIN)
    assert response.status_code == 200 and response.json() == {"active_version": v1}
    assert client.get("/v1/users/u1/recommendations").json()["model_version"] == v1
    models = client.get("/v1/admin/models", headers=ADMIN).json()
    assert models["active_version"] == v1
    assert {m["version"]: m["active"] for m in models["models"]} == {v1: True, v2: False}
    assert client.post("/v1/admin/models/nope/activate", headers=ADMIN).status_code == 404


def test_a_broken_artifact_is_not_activated(client: TestClient, settings: Settings) -> None:
    post_generated_ratings(client)
    v1 = train(client)["model_version"]
    time.sleep(1.1)
    v2 = train(client)["model_version"]
    client.post(f"/v1/admin/models/{v1}/activate", headers=ADMIN)
    shutil.rmtree(Path(settings.model_dir) / v2)
    response = client.post(f"/v1/admin/models/{v2}/activate", headers=ADMIN)
    assert response.status_code == 409
    assert "nothing changed" in response.json()["detail"]
    assert client.get("/v1/admin/models", headers=ADMIN).json()["active_version"] == v1
    assert client.get("/v1/users/u1/recommendations").json()["model_version"] == v1


def test_a_failed_job_leaves_the_previous_model_serving(make_client) -> None:
    with make_client() as client:
        by_user = post_generated_ratings(client)
        v1 = train(client)["model_version"]
    n_ratings = sum(len(items) for items in by_user.values())
    with make_client(min_ratings_to_train=100_000) as client:
        job = train(client)
        assert job["status"] == "failed"
        assert "not enough ratings" in job["error"] and f"ratings={n_ratings}" in job["error"]
        assert job["model_version"] is None
        assert client.get("/v1/admin/models", headers=ADMIN).json()["active_version"] == v1
        assert client.get("/v1/users/u0/recommendations").json()["model_version"] == v1
        again = client.post("/v1/admin/retrain", headers=ADMIN).json()
        assert again["created"] and again["job_id"] != job["job_id"]


def test_a_job_left_running_by_a_dead_process_is_failed_at_startup(
    make_client, db_url: str
) -> None:
    engine, sessions = _sessions(db_url)
    try:
        with sessions() as session:
            job, _ = store.enqueue_job(session, params={})
            store.claim_next_job(session, worker_id="dead-host:1234")
            session.execute(
                update(store.TrainingJob)
                .where(store.TrainingJob.id == job.id)
                .values(heartbeat_at=store.models.utcnow() - timedelta(minutes=10))
            )
            session.commit()
    finally:
        engine.dispose()
    with make_client(run_worker=False) as client:
        body = client.get(f"/v1/admin/jobs/{job.id}", headers=ADMIN).json()
        assert body["status"] == "failed" and "heartbeat" in body["error"]
        fresh = client.post("/v1/admin/retrain", headers=ADMIN).json()
        assert fresh["created"] and fresh["job_id"] != job.id


def test_every_serving_process_follows_the_active_version(make_client, db_url: str) -> None:
    """Two apps on one database (as two processes would be): B has no worker, and picks up
    the model A trained, and a rollback made through A, by polling the active-version row."""
    with make_client() as a, make_client(run_worker=False) as b:
        post_generated_ratings(a)
        v1 = train(a)["model_version"]
        _eventually(lambda: b.get("/v1/users/u0/recommendations").json().get("model_version"), v1)
        time.sleep(1.1)
        v2 = train(a)["model_version"]
        _eventually(lambda: b.get("/v1/users/u0/recommendations").json()["model_version"], v2)
        a.post(f"/v1/admin/models/{v1}/activate", headers=ADMIN)
        _eventually(lambda: b.get("/v1/users/u0/recommendations").json()["model_version"], v1)


def test_a_failed_load_keeps_the_previous_model(
    make_client, settings: Settings, db_url: str
) -> None:
    with make_client() as a, make_client(run_worker=False) as b:
        post_generated_ratings(a)
        v1 = train(a)["model_version"]
        time.sleep(1.1)
        v2 = train(a)["model_version"]
        a.post(f"/v1/admin/models/{v1}/activate", headers=ADMIN)
        _eventually(lambda: b.get("/v1/users/u0/recommendations").json()["model_version"], v1)
        # Another process activates a version whose artifact this host cannot read.
        shutil.rmtree(Path(settings.model_dir) / v2)
        engine, sessions = _sessions(db_url)
        try:
            with sessions() as session:
                store.activate_model(session, version=v2)
        finally:
            engine.dispose()
        time.sleep(0.6)  # several polls
        assert b.get("/v1/users/u0/recommendations").json()["model_version"] == v1
        ready = b.get("/readyz").json()
        assert ready["model_version"] == v1 and v2 in ready["model_error"]


def _eventually(probe, expected, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while (value := probe()) != expected:
        assert time.monotonic() < deadline, f"still {value!r}, expected {expected!r}"
        time.sleep(0.05)


def test_training_on_an_empty_store_fails_with_the_reason(client: TestClient) -> None:
    job = client.post("/v1/admin/retrain", headers=ADMIN).json()
    body = wait_for_job(client, job["job_id"])
    assert body["status"] == "failed"
    assert body["error"] == (
        "ValueError: not enough ratings to train: need at least 1. Received: ratings=0"
    )
