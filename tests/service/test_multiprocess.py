"""Several serving processes against one PostgreSQL (issue 6): real `recommender serve`
processes on loopback ports, one of them with two uvicorn workers.

* a rating posted to one process is reflected at once by another's recommendations;
* a model activated anywhere (a retrain job finishing in one process's worker, or an admin
  roll-back through another) is served by every process within 5 s, without a restart
  (each process polls the active-version row every RECOMMENDER_MODEL_POLL_INTERVAL_S,
  2 s by default: this test keeps the default).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from service_helpers import ADMIN, ADMIN_TOKEN, TINY_RBM, free_port

from recommender import store
from recommender.service import Settings
from recommender.service.jobs import JobWorker
from recommender.store import testing

pytestmark = pytest.mark.postgres

# The bound the issue asks for; the default poll interval (2 s) must fit in it.
PICKUP_BOUND_S = 5.0
# Fresh connections per check: the kernel spreads them over a server's worker processes.
PROBES = 12


@dataclass
class Served:
    name: str
    base: str
    process: subprocess.Popen
    log: Path


@dataclass
class Cluster:
    url: str
    a: Served  # `recommender serve --workers 2`, no training worker
    b: Served  # `recommender serve`, runs the training worker
    first_version: str
    users: dict[str, dict[str, float]]


def _fill_and_train(url: str, model_dir: Path) -> tuple[str, dict[str, dict[str, float]]]:
    from recommender.data import generate_ratings

    ratings = generate_ratings(n_users=40, n_items=30, ratings_per_user=10, seed=0)
    engine = store.make_engine(url)
    sessions = store.make_session_factory(engine)
    try:
        with sessions() as session:
            store.upsert_ratings(
                session,
                ratings=store.rating_rows(ratings),
            )
            job, _ = store.enqueue_job(session, params={})
            session.commit()
        settings = Settings(
            database_url=url, model_dir=model_dir, train_config=TINY_RBM, min_ratings_to_train=1
        )
        JobWorker(sessions, settings).run_once()
        with sessions() as session:
            finished = store.get_job(session, job_id=job.id)
            assert finished.status == "succeeded", finished.error
            return finished.model_version, ratings.by_user()
    finally:
        engine.dispose()


def _start(name: str, url: str, model_dir: Path, tmp: Path, *, workers: int, train: bool) -> Served:
    port = free_port()
    env = os.environ | {
        "RECOMMENDER_DATABASE_URL": url,
        "RECOMMENDER_MODEL_DIR": str(model_dir),
        "RECOMMENDER_ADMIN_TOKEN": ADMIN_TOKEN,
        "RECOMMENDER_RUN_WORKER": "true" if train else "false",
        "RECOMMENDER_TRAIN_CONFIG": json.dumps(TINY_RBM),
        "RECOMMENDER_MIN_RATINGS_TO_TRAIN": "1",
        "RECOMMENDER_JOB_POLL_INTERVAL_S": "0.2",
        "RECOMMENDER_POPULAR_CACHE_S": "0",
    }
    env.pop("RECOMMENDER_MODEL_POLL_INTERVAL_S", None)  # the default is what is checked
    log = tmp / f"{name}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "recommender",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Served(name, f"http://127.0.0.1:{port}", process, log)


def _stop(servers: list[Served]) -> None:
    for served in servers:  # all at once: each takes a moment to shut down gracefully
        served.process.terminate()
    for served in servers:
        try:
            served.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            served.process.kill()
            served.process.wait(timeout=10)


def _versions(served: Served) -> set[str | None]:
    """The model version each of ``PROBES`` fresh connections is served by."""
    seen = set()
    for _ in range(PROBES):
        seen.add(httpx.get(served.base + "/readyz", timeout=5).json().get("model_version"))
    return seen


def _wait_ready(served: Served, version: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if served.process.poll() is not None:
            raise AssertionError(f"{served.name} exited:\n{served.log.read_text()[-3000:]}")
        try:
            if _versions(served) == {version}:
                return
        except (httpx.HTTPError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{served.name} not ready:\n{served.log.read_text()[-3000:]}")
        time.sleep(0.2)


def _wait_everywhere(cluster: Cluster, version: str, since: float) -> float:
    """Seconds from ``since`` until every process of the cluster serves ``version``."""
    deadline = since + PICKUP_BOUND_S
    while True:
        if all(_versions(served) == {version} for served in (cluster.a, cluster.b)):
            return time.monotonic() - since
        if time.monotonic() > deadline:
            seen = {s.name: _versions(s) for s in (cluster.a, cluster.b)}
            raise AssertionError(
                f"model {version} not served everywhere within {PICKUP_BOUND_S} s: {seen}"
            )
        time.sleep(0.1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    testing.require_postgres()
    tmp = tmp_path_factory.mktemp("multiprocess")
    model_dir = tmp / "models"  # the shared volume every process reads artifacts from
    url = testing.create_postgres_database("recommender_multiprocess")
    started: list[Served] = []
    try:
        version, users = _fill_and_train(url, model_dir)
        started.append(_start("a", url, model_dir, tmp, workers=2, train=False))
        started.append(_start("b", url, model_dir, tmp, workers=1, train=True))
        for served in started:
            _wait_ready(served, version)
        yield Cluster(url, started[0], started[1], version, users)
    finally:
        _stop(started)
        testing.drop_postgres_database(url)


def _recommendations(served: Served, user_id: str) -> dict:
    response = httpx.get(
        f"{served.base}/v1/users/{user_id}/recommendations", params={"k": 5}, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_a_rating_posted_to_one_process_is_reflected_by_another(cluster: Cluster) -> None:
    assert _recommendations(cluster.a, "newcomer")["strategy"] == "popular"
    rated = {"i0": 5.0, "i1": 5.0, "i2": 1.0}
    response = httpx.post(
        cluster.b.base + "/v1/ratings",
        json={
            "ratings": [
                {"user_id": "newcomer", "item_id": i, "rating": r} for i, r in rated.items()
            ]
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    # Every worker of A, at once: no cache stands between the store and the fold-in.
    for _ in range(PROBES):
        body = httpx.get(
            f"{cluster.a.base}/v1/users/newcomer/recommendations", params={"k": 5}, timeout=10
        ).json()
        assert body["strategy"] == "rbm"
        assert body["model_version"] == cluster.first_version
        assert not set(rated) & {item["item_id"] for item in body["items"]}
    # And an existing user's new rating takes the item out of their list on A.
    user, known = next(iter(cluster.users.items()))
    top = _recommendations(cluster.a, user)["items"][0]["item_id"]
    assert top not in known
    httpx.post(
        cluster.b.base + "/v1/ratings",
        json={"user_id": user, "item_id": top, "rating": 1},
        timeout=10,
    ).raise_for_status()
    for _ in range(PROBES):
        assert top not in {i["item_id"] for i in _recommendations(cluster.a, user)["items"]}


def test_a_model_activated_anywhere_is_served_everywhere_within_the_bound(
    cluster: Cluster,
) -> None:
    # A retrain job run by B's worker activates a new version; A follows without a restart.
    response = httpx.post(cluster.b.base + "/v1/admin/retrain", headers=ADMIN, timeout=10)
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    deadline = time.monotonic() + 60
    while True:
        job = httpx.get(f"{cluster.b.base}/v1/admin/jobs/{job_id}", headers=ADMIN).json()
        if job["status"] in ("succeeded", "failed"):
            break
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']}"
        time.sleep(0.05)
    finished = time.monotonic()
    assert job["status"] == "succeeded", job["error"]
    second = job["model_version"]
    assert second != cluster.first_version
    took = _wait_everywhere(cluster, second, since=finished)
    # The probes may all have reached one of A's two workers (the kernel need not spread
    # them); once the bound has passed, every worker must serve the new version.
    time.sleep(max(0.0, finished + PICKUP_BOUND_S - time.monotonic()))
    assert _versions(cluster.a) == {second}
    assert _recommendations(cluster.a, "u1")["model_version"] == second
    print(f"retrained model served everywhere {took:.2f} s after the job finished")

    # Roll back through A's admin route: B (and A's other worker) follow.
    response = httpx.post(
        f"{cluster.a.base}/v1/admin/models/{cluster.first_version}/activate",
        headers=ADMIN,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    took = _wait_everywhere(cluster, cluster.first_version, since=time.monotonic())
    assert _recommendations(cluster.b, "u1")["model_version"] == cluster.first_version
    print(f"rolled-back model served everywhere {took:.2f} s after the activation")
