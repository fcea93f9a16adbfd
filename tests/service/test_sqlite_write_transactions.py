"""On SQLite a transaction that reads and then writes cannot wait for the write lock: if another
connection commits in between, its snapshot is stale and SQLite answers "database is locked"
at once (no busy wait). Routes and job steps that check before they write take the write lock
first (``store.begin_write``). Each test here has another connection hold the write lock and
commit while the request is under way; each fails (503) without its fix."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from service_helpers import ADMIN, offline_model
from sqlalchemy import update
from sqlalchemy.engine import make_url

from recommender import store
from recommender.data import generate_ratings
from recommender.rbm import RBMRecommender
from recommender.service import Settings
from recommender.service.serving import LoadedModel


@pytest.fixture
def sqlite_url(db_url: str) -> str:
    if not db_url.startswith("sqlite"):
        pytest.skip("SQLite only: PostgreSQL row locks wait")
    return db_url


def _while_another_writer_commits(db_url: str, call: Callable[[], Response]) -> Response:
    """``call()`` while another connection holds the write lock, committing 0.5 s later."""
    other = sqlite3.connect(make_url(db_url).database, isolation_level=None,
                            check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock ...
    other.execute("INSERT INTO ratings (user_id, item_id, value, timestamp) "
                  "VALUES ('v', 'b', 3, 0)")

    def commit_later() -> None:  # ... and commits while the request is under way
        time.sleep(0.5)
        other.execute("COMMIT")

    thread = threading.Thread(target=commit_later)
    thread.start()
    try:
        return call()
    finally:
        thread.join()
        other.close()


def test_retiring_an_item_waits_for_another_writer_instead_of_failing(make_client,
                                                                      sqlite_url: str) -> None:
    with make_client(run_worker=False) as client:
        assert client.post("/v1/ratings", json={"user_id": "u", "item_id": "a",
                                                "rating": 4}).status_code == 200
        response = _while_another_writer_commits(sqlite_url,
                                                 lambda: client.delete("/v1/items/a"))
        assert response.status_code == 200, response.text
        assert response.json()["active"] is False
        assert client.get("/v1/items/a").json()["active"] is False


def _an_active_model(db_url: str) -> str:
    """A registered, active model version (a row is all the retrain route checks)."""
    engine = store.make_engine(db_url)
    try:
        with store.unit_of_work(store.make_session_factory(engine)) as session:
            store.register_model(session, version="v-active", params={}, metrics={},
                                 n_users=1, n_items=1, n_ratings=1, training_seconds=0.0,
                                 activate=True)
    finally:
        engine.dispose()
    return "v-active"


def test_a_warm_start_retrain_waits_for_another_writer_instead_of_failing(
    make_client, sqlite_url: str
) -> None:
    _an_active_model(sqlite_url)
    with make_client(run_worker=False) as client:
        response = _while_another_writer_commits(
            sqlite_url,
            lambda: client.post("/v1/admin/retrain", json={"warm_start": True}, headers=ADMIN),
        )
        assert response.status_code == 202, response.text
        assert response.json()["created"] is True
        job = client.get(f"/v1/admin/jobs/{response.json()['job_id']}", headers=ADMIN).json()
        assert job["status"] == "queued" and job["params"]["warm_start"] is True


def test_activating_a_version_waits_for_another_writer_instead_of_failing(
    client: TestClient, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = _an_active_model(sqlite_url)
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    monkeypatch.setattr(runtime.models, "load",  # no artifact needed
                        lambda v: LoadedModel(version=v, model=object()))
    monkeypatch.setattr(runtime.models, "install", lambda loaded: None)
    response = _while_another_writer_commits(
        sqlite_url,
        lambda: client.post(f"/v1/admin/models/{version}/activate", headers=ADMIN),
    )
    assert response.status_code == 200, response.text


def test_the_stale_job_sweep_waits_for_another_writer_instead_of_failing(
    make_client, sqlite_url: str
) -> None:
    """The sweep finds the stale jobs and fails them: one write, not a read then a write."""
    # A long stale_after: the background sweep (every stale_after / 5, at most 10 s) stays
    # out of the way; the job's heartbeat is an hour old.
    with make_client(run_worker=False, job_stale_after_s=600) as client:
        _sweep_a_stale_job(client, sqlite_url)


def _sweep_a_stale_job(client: TestClient, sqlite_url: str) -> None:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    with store.unit_of_work(runtime.sessions) as session:
        job, _ = store.enqueue_job(session, params={})
        store.claim_next_job(session, worker_id="dead-host:1")
        session.execute(update(store.TrainingJob).values(
            heartbeat_at=store.models.utcnow() - timedelta(hours=1)))
    swept: list[int] = []

    def sweep() -> Response:
        swept.extend(runtime.sweep_stale_jobs())
        return Response(200)

    _while_another_writer_commits(sqlite_url, sweep)
    assert swept == [job.id]
    assert client.get(f"/v1/admin/jobs/{job.id}", headers=ADMIN).json()["status"] == "failed"


def test_publishing_a_model_waits_for_another_writer_instead_of_failing(
    make_client, settings: Settings, sqlite_url: str
) -> None:
    model = RBMRecommender(n_hidden=4, n_preference_hidden=2, epochs=1, device="cpu")
    model.fit(generate_ratings(n_users=10, n_items=8, ratings_per_user=4, seed=1), verbose=0)
    model.save(settings.model_dir / "offline-1")
    with make_client(run_worker=False) as client:
        response = _while_another_writer_commits(
            sqlite_url,
            lambda: client.post("/v1/admin/models", json={"version": "offline-1",
                                                         "activate": True}, headers=ADMIN),
        )
        assert response.status_code == 201, response.text
        assert client.get("/v1/admin/models", headers=ADMIN).json()["active_version"] == (
            "offline-1")


def test_publishing_with_activate_waits_for_the_swap_lock_before_taking_the_write_lock(
    make_client, sqlite_url: str, settings: Settings
) -> None:
    """While a model load holds the swap lock, a publish with ``activate`` waits for it
    without holding SQLite's write lock, so other writers of the process go on. (It used
    to take the write lock first: a rating posted meanwhile waited db_timeout_s, then 503.)"""
    offline_model(Path(settings.model_dir) / "offline-1")
    with make_client(run_worker=False, db_timeout_s=1.0) as client:
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        swap = runtime.models.swapping()
        answers: list[Response] = []
        with swap:  # a refresh loading a large artifact holds it
            publish = threading.Thread(target=lambda: answers.append(client.post(
                "/v1/admin/models", json={"version": "offline-1", "activate": True},
                headers=ADMIN)))
            publish.start()
            publish.join(timeout=1.5)  # it waits for the lock before it reads or writes
            assert publish.is_alive() and not answers
            rated: list[Response] = []
            writer = threading.Thread(target=lambda: rated.append(client.post(
                "/v1/ratings", json={"user_id": "u", "item_id": "i1", "rating": 4})))
            writer.start()
            writer.join(timeout=10)  # (it waited for ever behind the publish before)
            assert rated and rated[0].status_code == 200, rated and rated[0].text
        publish.join(30)
        writer.join(30)
        assert answers and answers[0].status_code == 201, answers and answers[0].text
        served = client.get("/v1/users/u/recommendations").json()
        assert served["model_version"] == "offline-1"
