"""Training jobs and model versions: dedupe, exclusive claims, heartbeats, activation."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from recommender import store
from recommender.store import JobStatus, TrainingJob


def _finish(session: Session, job_id: int, version: str) -> None:
    store.finish_job(
        session,
        job_id=job_id,
        version=version,
        params={"n_hidden": 8},
        metrics={"ndcg": 0.25},
        n_users=3,
        n_items=4,
        n_ratings=5,
        training_seconds=1.5,
    )


def _succeeded_model(session: Session, version: str) -> int:
    job, _ = store.enqueue_job(session, params={})
    claimed = store.claim_next_job(session, worker_id="w")
    assert claimed is not None and claimed.id == job.id
    _finish(session, job.id, version)
    return job.id


def test_an_open_job_is_returned_instead_of_a_second_one(session: Session) -> None:
    first, created = store.enqueue_job(session, params={"config": {"epochs": 2}})
    again, created_again = store.enqueue_job(session, params={"config": {"epochs": 9}})
    assert created and not created_again
    assert again.id == first.id and again.params == {"config": {"epochs": 2}}
    store.claim_next_job(session, worker_id="w")
    running, created = store.enqueue_job(session, params={})
    assert not created and running.id == first.id and running.status == JobStatus.RUNNING


def test_the_database_itself_refuses_two_open_jobs(session: Session) -> None:
    store.enqueue_job(session, params={})
    session.add(TrainingJob(kind="retrain", params={}, created_at=store.models.utcnow()))
    with pytest.raises(IntegrityError):
        session.commit()


def test_concurrent_retrain_requests_queue_exactly_one_job(
    sessions: sessionmaker[Session],
) -> None:
    ids: list[int] = []
    barrier = threading.Barrier(6)

    def request() -> None:
        barrier.wait()
        with store.unit_of_work(sessions) as session:
            job, _ = store.enqueue_job(session, params={})
            ids.append(job.id)

    threads = [threading.Thread(target=request) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 6 and len(set(ids)) == 1


def test_each_job_is_claimed_by_exactly_one_worker(sessions: sessionmaker[Session]) -> None:
    with store.unit_of_work(sessions) as session:
        store.enqueue_job(session, params={})
    claims: list[int] = []
    barrier = threading.Barrier(5)

    def worker(n: int) -> None:
        barrier.wait()
        with store.unit_of_work(sessions) as session:
            job = store.claim_next_job(session, worker_id=f"w{n}")
            if job is not None:
                claims.append(job.id)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(claims) == 1


def test_progress_then_success_activates_the_version_in_one_step(session: Session) -> None:
    job, _ = store.enqueue_job(session, params={})
    claimed = store.claim_next_job(session, worker_id="host:1")
    assert claimed is not None and claimed.status == JobStatus.RUNNING
    assert claimed.worker_id == "host:1" and claimed.started_at is not None
    store.record_progress(session, job_id=job.id, epoch=2, epochs=5)
    assert (store.get_job(session, job_id=job.id).epoch, 5) == (2, 5)
    _finish(session, job.id, "v1")
    done = store.get_job(session, job_id=job.id)
    assert done.status == JobStatus.SUCCEEDED
    assert done.model_version == "v1" and done.metrics == {"ndcg": 0.25}
    assert done.epoch == done.epochs == 5 and done.finished_at is not None
    assert store.active_version(session) == "v1"
    (model,) = store.list_models(session)
    assert (model.version, model.job_id, model.n_ratings) == ("v1", job.id, 5)


def test_a_failed_job_leaves_the_active_version_alone(session: Session) -> None:
    _succeeded_model(session, "v1")
    job, _ = store.enqueue_job(session, params={})
    store.claim_next_job(session, worker_id="w")
    store.fail_job(session, job_id=job.id, error="ValueError: boom")
    failed = store.get_job(session, job_id=job.id)
    assert failed.status == JobStatus.FAILED and failed.error == "ValueError: boom"
    assert store.active_version(session) == "v1"
    _, created = store.enqueue_job(session, params={})
    assert created  # a failed job does not block the next one


def test_finishing_a_job_marked_failed_meanwhile_writes_nothing(
    sessions: sessionmaker[Session],
) -> None:
    """finish_job writes the version row and the active version before it finds the job no
    longer running: the caller's unit of work rolls both back (store functions never commit,
    so nothing of it was committed)."""
    with store.unit_of_work(sessions) as session:
        _succeeded_model(session, "v1")
        job, _ = store.enqueue_job(session, params={})
        store.claim_next_job(session, worker_id="w")
    with store.unit_of_work(sessions) as session:
        store.fail_job(session, job_id=job.id, error="stale")
    with pytest.raises(RuntimeError, match="no longer running"):
        with store.unit_of_work(sessions) as session:
            _finish(session, job.id, "v2")
    with sessions() as session:
        assert store.active_version(session) == "v1"
        assert store.get_model(session, version="v2") is None
        assert [m.version for m in store.list_models(session)] == ["v1"]
        failed = store.get_job(session, job_id=job.id)
        assert failed is not None
        assert (failed.status, failed.model_version) == (JobStatus.FAILED, None)


def _finish_from(session: Session, job_id: int, version: str, start) -> None:
    store.finish_job(session, job_id=job_id, version=version, active_at_start=start,
                     params={"n_hidden": 8}, metrics={}, n_users=3, n_items=4, n_ratings=5,
                     training_seconds=1.5)


def _claimed_job(sessions: sessionmaker[Session]) -> int:
    with store.unit_of_work(sessions) as session:
        job, _ = store.enqueue_job(session, params={})
        store.claim_next_job(session, worker_id="w")
        return job.id


def test_a_job_leaves_an_activation_made_while_it_trained(sessions: sessionmaker[Session]):
    """An operator rolls back (or activates another model) while a job trains: the job's
    model is recorded and the job succeeds, but the operator's choice stays active. The same
    version activated again counts as a choice too; with no change the job's model serves."""
    with store.unit_of_work(sessions) as session:
        _succeeded_model(session, "v1")
        store.register_model(session, version="v0", params={}, metrics={}, n_users=1,
                             n_items=1, n_ratings=1, training_seconds=0.0)
    for rolled_back_to, new in (("v0", "v2"), ("v0", "v3")):  # the second: v0 again
        job_id = _claimed_job(sessions)
        with sessions() as session:
            start = store.active_stamp(session)
        with store.unit_of_work(sessions) as session:
            store.activate_model(session, version=rolled_back_to)
        with store.unit_of_work(sessions) as session:
            _finish_from(session, job_id, new, start)
        with sessions() as session:
            assert store.active_version(session) == rolled_back_to
            job = store.get_job(session, job_id=job_id)
            assert job is not None
            assert (job.status, job.model_version) == (JobStatus.SUCCEEDED, new)
            row = store.get_model(session, version=new)
            assert row is not None and row.params["n_hidden"] == 8
            assert row.params["activation"] == (
                "skipped: the active model changed while the job trained "
                f"(from {start[0]!r} to {rolled_back_to!r})")
    job_id = _claimed_job(sessions)
    with sessions() as session:
        start = store.active_stamp(session)
    with store.unit_of_work(sessions) as session:
        _finish_from(session, job_id, "v4", start)
    with sessions() as session:
        assert store.active_version(session) == "v4"
        row = store.get_model(session, version="v4")
        assert row is not None and "activation" not in row.params


def test_a_first_model_activates_when_none_was_active(sessions: sessionmaker[Session]):
    job_id = _claimed_job(sessions)
    with sessions() as session:
        assert store.active_stamp(session) is None
    with store.unit_of_work(sessions) as session:
        _finish_from(session, job_id, "v1", None)
    with sessions() as session:
        stamp = store.active_stamp(session)
        assert stamp is not None and stamp[0] == "v1"


def test_a_duplicate_version_from_a_job_writes_nothing(sessions: sessionmaker[Session]) -> None:
    """The version row of a finishing job clashes with a published one: the job stays
    running (the worker then fails it) and the active version is unchanged."""
    with store.unit_of_work(sessions) as session:
        store.register_model(session, version="v1", params={}, metrics={}, n_users=1,
                             n_items=1, n_ratings=1, training_seconds=0.0, activate=True)
        job, _ = store.enqueue_job(session, params={})
        store.claim_next_job(session, worker_id="w")
    with pytest.raises(store.VersionExistsError, match="Received: version='v1'"):
        with store.unit_of_work(sessions) as session:
            _finish(session, job.id, "v1")
    with sessions() as session:
        running = store.get_job(session, job_id=job.id)
        assert running is not None and running.status == JobStatus.RUNNING
        assert store.active_version(session) == "v1"
        (model,) = store.list_models(session)
        assert model.job_id is None


def test_running_jobs_without_a_recent_heartbeat_are_failed(session: Session) -> None:
    old, _ = store.enqueue_job(session, params={})
    store.claim_next_job(session, worker_id="dead")
    session.execute(
        update(TrainingJob)
        .where(TrainingJob.id == old.id)
        .values(heartbeat_at=store.models.utcnow() - timedelta(minutes=5))
    )
    session.commit()
    assert store.fail_stale_jobs(session, stale_after=timedelta(seconds=30)) == [old.id]
    job = store.get_job(session, job_id=old.id)
    assert job.status == JobStatus.FAILED and "heartbeat" in job.error
    fresh, created = store.enqueue_job(session, params={})
    assert created
    store.claim_next_job(session, worker_id="alive")
    assert store.fail_stale_jobs(session, stale_after=timedelta(seconds=30)) == []
    assert store.get_job(session, job_id=fresh.id).status == JobStatus.RUNNING


def test_activate_rolls_back_and_unknown_versions_are_refused(session: Session) -> None:
    _succeeded_model(session, "v1")
    _succeeded_model(session, "v2")
    assert store.active_version(session) == "v2"
    store.activate_model(session, version="v1")
    assert store.active_version(session) == "v1"
    with pytest.raises(store.NotFoundError, match="'nope'"):
        store.activate_model(session, version="nope")
    assert store.active_version(session) == "v1"
    assert [m.version for m in store.list_models(session)] in (["v2", "v1"], ["v1", "v2"])


def test_items_upsert_and_titles(session: Session) -> None:
    store.upsert_items(
        session,
        items=[store.ItemRow("a", "Alpha", {"year": 1999}), store.ItemRow("b", None, None)],
    )
    session.commit()
    store.upsert_items(session, items=[store.ItemRow("a", "Alpha (1999)", {"year": 1999})])
    session.commit()
    assert store.item_titles(session, item_ids=["a", "b", "zz"]) == {"a": "Alpha (1999)"}
    item = store.get_item(session, item_id="a")
    assert item is not None and item.meta == {"year": 1999}


def test_progress_can_carry_the_resolved_params_and_early_metrics(session: Session) -> None:
    job, _ = store.enqueue_job(session, params={"config": {}})
    store.claim_next_job(session, worker_id="w")
    store.record_progress(session, job_id=job.id, epoch=0, epochs=6,
                          params={"config": {}, "phases": [["evaluation", 3], ["final", 3]]})
    store.record_progress(session, job_id=job.id, epoch=3, epochs=6, metrics={"ndcg": 0.5})
    store.record_progress(session, job_id=job.id, epoch=4, epochs=6)
    row = store.get_job(session, job_id=job.id)
    assert (row.epoch, row.epochs, row.metrics) == (4, 6, {"ndcg": 0.5})
    assert row.params == {"config": {}, "phases": [["evaluation", 3], ["final", 3]]}


def test_a_published_model_is_registered_once(session: Session) -> None:
    kwargs = dict(params={"source": "published"}, metrics={}, n_users=3, n_items=4,
                  n_ratings=5, training_seconds=1.0)
    row = store.register_model(session, version="offline-1", **kwargs)
    assert row.job_id is None and store.active_version(session) is None
    store.register_model(session, version="offline-2", activate=True, **kwargs)
    assert store.active_version(session) == "offline-2"
    with pytest.raises(store.VersionExistsError, match="Received: version='offline-1'"):
        store.register_model(session, version="offline-1", activate=True, **kwargs)
    assert store.active_version(session) == "offline-2"
    assert [m.version for m in store.list_models(session)] == ["offline-2", "offline-1"]
