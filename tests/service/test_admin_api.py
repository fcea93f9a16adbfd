"""Retraining jobs and model versions: dedupe, lifecycle, activation, rollback, failures."""

from __future__ import annotations

import json
import shutil
import time
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from service_helpers import ADMIN, offline_model, post_generated_ratings, train, wait_for_job
from sqlalchemy import update

from recommender import store
from recommender.service import Settings


def _errors(response) -> list[dict]:
    """The field errors of a 422 (``errors`` of a problem+json body, or the older
    ``detail`` list)."""
    body = response.json()
    return body["errors"] if "errors" in body else body["detail"]


def _version(job: dict) -> str:
    """The model version of a job that must have succeeded (its error otherwise)."""
    assert job["status"] == "succeeded", job["error"]
    return job["model_version"]


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
        assert job["status"] == "queued"
        assert job["progress"] == {"epoch": 0, "epochs": 0, "phase": None}
        assert job["params"] == {"config": {}, "test_fraction": 0.2}


def test_bad_overrides_are_refused_when_queued(client: TestClient) -> None:
    response = client.post("/v1/admin/retrain", json={"config": {"n_hiden": 5}}, headers=ADMIN)
    assert response.status_code == 422
    (error,) = _errors(response)
    assert error["field"] == "config.n_hiden" and "n_hiden=5" in error["message"]
    response = client.post("/v1/admin/retrain", json={"config": {"n_hidden": -3}}, headers=ADMIN)
    assert response.status_code == 422
    (error,) = _errors(response)
    assert error["field"] == "config.n_hidden" and "-3" in error["message"]
    response = client.post("/v1/admin/retrain", json={"epochs": 3}, headers=ADMIN)
    assert response.status_code == 422 and _errors(response)[0]["field"] == "epochs"
    assert client.get("/v1/admin/models", headers=ADMIN).json() == {
        "active_version": None,
        "models": [],
    }


def test_a_job_runs_to_an_active_model(client: TestClient) -> None:
    by_user = post_generated_ratings(client)
    n_ratings = sum(len(items) for items in by_user.values())
    job = train(client)
    assert job["status"] == "succeeded", job["error"]
    # Two fits of 3 epochs: the evaluation fit, then the final fit on every rating.
    assert job["progress"] == {"epoch": 6, "epochs": 6, "phase": None}
    assert job["params"]["phases"] == [["evaluation", 3], ["final", 3]]
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
    v1 = _version(train(client))
    time.sleep(1.1)  # version names carry the second
    v2 = _version(train(client, n_hidden=6))
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
    v1 = _version(train(client))
    time.sleep(1.1)
    v2 = _version(train(client))
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
        v1 = _version(train(client))
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
        with store.unit_of_work(sessions) as session:
            job, _ = store.enqueue_job(session, params={})
            store.claim_next_job(session, worker_id="dead-host:1234")
            session.execute(
                update(store.TrainingJob)
                .where(store.TrainingJob.id == job.id)
                .values(heartbeat_at=store.models.utcnow() - timedelta(minutes=10))
            )
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
        v1 = _version(train(a))
        _eventually(lambda: b.get("/v1/users/u0/recommendations").json().get("model_version"), v1)
        time.sleep(1.1)
        v2 = _version(train(a))
        _eventually(lambda: b.get("/v1/users/u0/recommendations").json()["model_version"], v2)
        a.post(f"/v1/admin/models/{v1}/activate", headers=ADMIN)
        _eventually(lambda: b.get("/v1/users/u0/recommendations").json()["model_version"], v1)


def test_a_failed_load_keeps_the_previous_model(
    make_client, settings: Settings, db_url: str
) -> None:
    with make_client() as a, make_client(run_worker=False) as b:
        post_generated_ratings(a)
        v1 = _version(train(a))
        time.sleep(1.1)
        v2 = _version(train(a))
        a.post(f"/v1/admin/models/{v1}/activate", headers=ADMIN)
        _eventually(lambda: b.get("/v1/users/u0/recommendations").json()["model_version"], v1)
        # Another process activates a version whose artifact this host cannot read.
        shutil.rmtree(Path(settings.model_dir) / v2)
        engine, sessions = _sessions(db_url)
        try:
            with store.unit_of_work(sessions) as session:
                store.activate_model(session, version=v2)
        finally:
            engine.dispose()
        # B's poller tries v2 and fails (however long a loaded machine takes to get there).
        _eventually(lambda: v2 in (b.get("/readyz").json()["model_error"] or ""), True)
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


# -- the served model saw every rating (issue 13, item 5) --------------------------------------


def _served_artifact(settings: Settings, version: str):
    from recommender.rbm import RBMRecommender

    return RBMRecommender.load(Path(settings.model_dir) / version, device="cpu")


def test_the_served_model_is_fitted_on_every_rating(client: TestClient, settings: Settings) -> None:
    by_user = post_generated_ratings(client)
    # An item only one user rated: with 90 % of each user's ratings held out it falls in the
    # held-out part, and a model fitted on the training split could never recommend it.
    rare = {"ratings": [{"user_id": "u0", "item_id": "rare", "rating": 5}]}
    assert client.post("/v1/ratings", json=rare).status_code == 200
    n_ratings = sum(len(items) for items in by_user.values()) + 1
    response = client.post("/v1/admin/retrain", json={"test_fraction": 0.9}, headers=ADMIN)
    job = wait_for_job(client, response.json()["job_id"])
    assert job["status"] == "succeeded", job["error"]
    assert {"precision", "ndcg"} <= set(job["metrics"])  # the evaluation fit's, held out
    model = _served_artifact(settings, job["model_version"])
    training = model.metadata["training"]
    assert (training["n_ratings"], training["n_users"]) == (n_ratings, 40)
    assert set(model.item_ids) == {f"i{j}" for j in range(30)} | {"rare"}
    (row,) = client.get("/v1/admin/models", headers=ADMIN).json()["models"]
    assert row["params"]["trained_on"] == "every rating"
    assert row["params"]["evaluation"] == "cold fit on the training split"
    assert row["params"]["test_fraction"] == 0.9 and row["metrics"] == job["metrics"]


def test_test_fraction_zero_means_no_evaluation(client: TestClient, settings: Settings) -> None:
    by_user = post_generated_ratings(client)
    response = client.post("/v1/admin/retrain", json={"test_fraction": 0}, headers=ADMIN)
    assert response.status_code == 202
    job = wait_for_job(client, response.json()["job_id"])
    assert job["status"] == "succeeded", job["error"]
    assert job["metrics"] == {}
    assert job["params"]["test_fraction"] == 0 and job["params"]["phases"] == [["final", 3]]
    assert job["progress"] == {"epoch": 3, "epochs": 3, "phase": None}
    (row,) = client.get("/v1/admin/models", headers=ADMIN).json()["models"]
    assert row["metrics"] == {} and row["params"]["evaluation"] == "none (test_fraction=0)"
    model = _served_artifact(settings, job["model_version"])
    assert model.metadata["training"]["n_ratings"] == sum(map(len, by_user.values()))


def test_progress_over_http_covers_both_phases(make_client, settings: Settings) -> None:
    """Each epoch, the job as GET /v1/admin/jobs/{id} shows it: epochs of both fits in one
    count, and the phase (the worker runs in this thread; the probe is its epoch hook)."""
    from recommender.service.jobs import JobWorker

    with make_client(run_worker=False) as client:
        post_generated_ratings(client)
        job_id = client.post("/v1/admin/retrain", headers=ADMIN).json()["job_id"]
        seen = []

        def probe(epoch: int, epochs: int, _logs) -> None:
            body = client.get(f"/v1/admin/jobs/{job_id}", headers=ADMIN).json()
            seen.append((epoch, epochs, body["progress"], body["metrics"] is not None))

        engine, sessions = _sessions(settings.database_url)
        try:
            assert JobWorker(sessions, settings, on_epoch=probe).run_once()
        finally:
            engine.dispose()
        assert [(e, n) for e, n, _, _ in seen] == [(e, 6) for e in range(1, 7)]
        assert [p for _, _, p, _ in seen] == [
            {"epoch": e, "epochs": 6, "phase": "evaluation" if e <= 3 else "final"}
            for e in range(1, 7)
        ]
        # The held-out metrics are on the job while the final fit runs.
        assert [has for *_, has in seen] == [False, False, False, True, True, True]
        assert client.get(f"/v1/admin/jobs/{job_id}", headers=ADMIN).json()["status"] == (
            "succeeded"
        )


def test_a_rollback_while_a_retrain_runs_is_not_undone_by_it(make_client,
                                                              settings: Settings) -> None:
    """The operator activates another model while a retrain trains (its first epoch): the
    job succeeds and its model is listed, with why it is not active, and the operator's
    choice stays the active version (before, the job's model replaced it on finishing)."""
    from recommender.service.jobs import JobWorker

    with make_client(run_worker=False) as client:
        post_generated_ratings(client)
        engine, sessions = _sessions(settings.database_url)
        try:
            with store.unit_of_work(sessions) as session:
                store.register_model(session, version="operator-choice", params={},
                                     metrics={}, n_users=1, n_items=1, n_ratings=1,
                                     training_seconds=0.0)
            job_id = client.post("/v1/admin/retrain", json={"test_fraction": 0},
                                 headers=ADMIN).json()["job_id"]

            def rollback(epoch: int, _epochs: int, _logs) -> None:
                if epoch == 1:
                    with store.unit_of_work(sessions) as session:
                        store.activate_model(session, version="operator-choice")

            assert JobWorker(sessions, settings, on_epoch=rollback).run_once()
        finally:
            engine.dispose()
        job = client.get(f"/v1/admin/jobs/{job_id}", headers=ADMIN).json()
        assert job["status"] == "succeeded", job["error"]
        models = {m["version"]: m for m in
                  client.get("/v1/admin/models", headers=ADMIN).json()["models"]}
        ours = models[job["model_version"]]
        assert ours["active"] is False and models["operator-choice"]["active"] is True
        assert ours["params"]["activation"] == (
            "skipped: the active model changed while the job trained "
            "(from None to 'operator-choice')")


def test_a_held_out_part_that_is_empty_skips_the_evaluation(client: TestClient) -> None:
    post_generated_ratings(client)  # 10 ratings per user: round(10 * 0.01) = 0 held out
    response = client.post("/v1/admin/retrain", json={"test_fraction": 0.01}, headers=ADMIN)
    job = wait_for_job(client, response.json()["job_id"])
    assert job["status"] == "succeeded", job["error"]
    assert job["metrics"] == {} and job["params"]["phases"] == [["final", 3]]
    (row,) = client.get("/v1/admin/models", headers=ADMIN).json()["models"]
    assert row["params"]["evaluation"].startswith("skipped: test_fraction=0.01 holds out no")


# -- non-finite numbers and unstorable text in the retrain request (issue 10) ------------------


@pytest.mark.parametrize(
    ("body", "field", "received"),
    [
        ('{"config": {"extra": {"x": NaN}}}', "config.extra.x", "x=nan"),
        ('{"config": {"extra": {"x": [1, 1e400]}}}', "config.extra.x[1]", "x[1]=inf"),
        ('{"config": {"extra": {"x": -Infinity}}}', "config.extra.x", "x=-inf"),
        ('{"config": {"cd_k_schedule": [[1e400, 1]]}}', "config.cd_k_schedule[0][0]", "=inf"),
        ('{"config": {"learning_rate": NaN}}', "config.learning_rate", "learning_rate=nan"),
        ('{"config": {"extra": {"note": "a\\u0000b"}}}', "config.extra.note", "note='a\\x00b'"),
        ('{"config": {"extra": {"\\ud800": 1}}}', "config.extra.\ud800", "Received"),
        ('{"test_fraction": 5e-324}', "test_fraction", "5e-324"),
        ('{"test_fraction": NaN}', "test_fraction", "nan"),
        ('{"test_fraction": 1e400}', "test_fraction", "inf"),
    ],
)
def test_unstorable_retrain_requests_get_422_naming_the_field(
    client: TestClient, db_url: str, body: str, field: str, received: str
) -> None:
    response = client.post(
        "/v1/admin/retrain",
        content=body,
        headers={**ADMIN, "content-type": "application/json"},
    )
    assert response.status_code == 422, response.text
    (error,) = _errors(response)
    assert error["field"] == field and received in error["message"], error
    engine, sessions = _sessions(db_url)
    try:
        with sessions() as session:  # nothing was queued
            assert store.open_job(session) is None
    finally:
        engine.dispose()


def test_cd_k_schedule_entries_must_be_whole_numbers(client: TestClient) -> None:
    for schedule in ([[1.5, 1]], [[0, 0]], [["0", 1]], [[0]], 3):
        response = client.post(
            "/v1/admin/retrain", json={"config": {"cd_k_schedule": schedule}}, headers=ADMIN
        )
        assert response.status_code == 422, (schedule, response.text)
        assert _errors(response)[0]["field"] == "config.cd_k_schedule"
    good = client.post(
        "/v1/admin/retrain", json={"config": {"cd_k_schedule": [[0, 1], [2, 2.0]]}}, headers=ADMIN
    )
    assert good.status_code == 202


def test_warm_start_epochs_need_warm_start(client: TestClient) -> None:
    response = client.post("/v1/admin/retrain", json={"warm_start_epochs": 3}, headers=ADMIN)
    assert response.status_code == 422
    assert "warm_start_epochs is only used with warm_start" in _errors(response)[0]["message"]


# -- warm start over HTTP (issue 13, item 6) ---------------------------------------------------


def test_warm_start_continues_the_active_model(client: TestClient, settings: Settings) -> None:
    assert client.post("/v1/admin/retrain", json={"warm_start": True},
                       headers=ADMIN).status_code == 409  # nothing to start from yet
    post_generated_ratings(client)
    v1 = _version(train(client, n_hidden=5))
    new = {"ratings": [{"user_id": "newcomer", "item_id": "i-new", "rating": 4},
                       {"user_id": "newcomer", "item_id": "i3", "rating": 2}]}
    assert client.post("/v1/ratings", json=new).status_code == 200
    time.sleep(1.1)  # version names carry the second
    response = client.post("/v1/admin/retrain", json={"warm_start": True,
                                                      "warm_start_epochs": 2}, headers=ADMIN)
    assert response.status_code == 202
    job = wait_for_job(client, response.json()["job_id"])
    assert job["status"] == "succeeded", job["error"]
    assert job["params"]["warm_start"] and job["params"]["warm_start_epochs"] == 2
    # No evaluation unless asked (the warm start is the quick path), 2 epochs.
    assert job["params"]["phases"] == [["final", 2]] and job["metrics"] == {}
    model = _served_artifact(settings, job["model_version"])
    # The active model's hidden layout (n_hidden=5), not the service default (8).
    assert model.config.n_hidden == 5 and model.config.epochs == 2
    assert "i-new" in model.item_ids and model.metadata["training"]["n_users"] == 41
    row = next(m for m in client.get("/v1/admin/models", headers=ADMIN).json()["models"]
               if m["version"] == job["model_version"])
    assert row["params"]["warm_start_from"] == v1 and row["active"]


# -- publishing a model trained offline (issue 13, item 7) -------------------------------------


def test_publish_an_offline_model_and_every_process_serves_it(
    make_client, settings: Settings
) -> None:
    offline_model(Path(settings.model_dir) / "offline-1")
    with make_client() as a, make_client(run_worker=False) as b:
        response = a.post("/v1/admin/models", json={"version": "offline-1"}, headers=ADMIN)
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["version"] == "offline-1" and not body["active"] and body["job_id"] is None
        assert (body["n_items"], body["n_users"]) == (20, 30)
        assert body["params"]["source"] == "published" and body["params"]["n_hidden"] == 4
        assert a.get("/v1/users/u0/recommendations").json()["strategy"] == "popular"
        response = a.post("/v1/admin/models/offline-1/activate", headers=ADMIN)
        assert response.status_code == 200
        assert a.get("/v1/users/u0/recommendations").json()["model_version"] == "offline-1"
        # Another serving process follows within its poll interval.
        _eventually(lambda: b.get("/v1/users/u0/recommendations").json()["model_version"],
                    "offline-1")
        offline_model(Path(settings.model_dir) / "offline-2", n_items=22)
        response = a.post("/v1/admin/models", json={"version": "offline-2", "activate": True},
                          headers=ADMIN)
        assert response.status_code == 201 and response.json()["active"]
        assert a.get("/v1/users/u0/recommendations").json()["model_version"] == "offline-2"
        _eventually(lambda: b.get("/v1/users/u0/recommendations").json()["model_version"],
                    "offline-2")
        again = a.post("/v1/admin/models", json={"version": "offline-2"}, headers=ADMIN)
        assert again.status_code == 409 and "already exists" in again.json()["detail"]


def _tamper(directory: Path, change) -> None:
    meta = json.loads((directory / "metadata.json").read_text())
    change(meta)
    (directory / "metadata.json").write_text(json.dumps(meta))


def test_publish_refuses_paths_and_broken_artifacts(client: TestClient, settings: Settings,
                                                    tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    root = Path(settings.model_dir)
    good = root / "good"
    offline_model(good)

    def publish(version):
        return client.post("/v1/admin/models", json={"version": version}, headers=ADMIN)

    for version, reason in [
        ("../good", "version must be 1-64 letters"),
        ("a/b", "version must be 1-64 letters"),
        (".hidden", "version must be 1-64 letters"),
        ("absent", "no artifact folder 'absent'"),
    ]:
        response = publish(version)
        assert response.status_code == 422, response.text
        (error,) = _errors(response)
        assert error["field"] == "version" and reason in error["message"], error
    # A link out of the model directory is refused even when its target is a good model.
    offline_model(tmp_path / "elsewhere")
    (root / "linked").symlink_to(tmp_path / "elsewhere")
    assert "links are refused" in _errors(publish("linked"))[0]["message"]
    broken = {
        "duplicate": (lambda m: m["item_ids"].__setitem__(1, m["item_ids"][0]),
                      "lists an id twice"),
        "empty": (lambda m: m.update(item_ids=[]), "item map is empty"),
        "long": (lambda m: m["item_ids"].__setitem__(0, "x" * 129), "1-128 characters, got 129"),
        "nul": (lambda m: m["item_ids"].__setitem__(0, "a\x00b"), "NUL"),
        "short": (lambda m: m["item_ids"].pop(), "W must have shape (38, 6)"),
        "format": (lambda m: m.update(format_version=99), "does not load"),
    }
    for version, (change, reason) in broken.items():
        shutil.copytree(good, root / version)
        _tamper(root / version, change)
        response = publish(version)
        assert response.status_code == 422, (version, response.text)
        assert reason in _errors(response)[0]["message"], (version, _errors(response))
    shutil.copytree(good, root / "nan")
    tensors = load_file(str(root / "nan" / "weights.safetensors"))
    tensors["b"][0] = float("nan")
    save_file(tensors, str(root / "nan" / "weights.safetensors"))
    assert "b holds NaN" in _errors(publish("nan"))[0]["message"]
    assert client.get("/v1/admin/models", headers=ADMIN).json() == {
        "active_version": None, "models": []}
    no_auth = client.post("/v1/admin/models", json={"version": "good"})
    assert no_auth.status_code == 401
    assert publish("good").status_code == 201


def test_a_retrain_serves_ids_with_a_slash_that_an_import_stored(
    client: TestClient, db_url: str
) -> None:
    """HTTP refuses ids with "/", but `recommender import` writes straight to the store: the
    retrain's artifact check must not fail every retrain of such a store."""
    post_generated_ratings(client)
    engine, sessions = _sessions(db_url)
    try:
        with sessions() as session:
            store.upsert_ratings(session, ratings=[
                store.RatingRow("u1", "https://example.org/item/1", 5.0, 1),
                store.RatingRow("u2", "https://example.org/item/1", 4.0, 1)])
            session.commit()
    finally:
        engine.dispose()
    job = train(client)
    assert job["status"] == "succeeded", job["error"]
