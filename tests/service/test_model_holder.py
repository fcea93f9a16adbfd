"""ModelHolder: the served model follows the active-version row, also when a load and an
activation overlap (a finished job loading its model while an operator rolls back)."""

from __future__ import annotations

import threading
from pathlib import Path

from recommender import store
from recommender.service.serving import LoadedModel, ModelHolder

FIELDS = {"params": {}, "metrics": {}, "n_users": 1, "n_items": 1, "n_ratings": 1,
          "training_seconds": 0.0}


def _register(sessions, model_dir: Path, *versions: str) -> None:
    """Each version registered (the last one active) with an artifact folder."""
    with sessions() as session:
        for version in versions:
            store.register_model(session, version=version, activate=True, **FIELDS)
            (model_dir / version).mkdir()
        session.commit()


def test_an_activation_during_a_slow_load_is_served_and_not_overwritten(db_url: str,
                                                                        tmp_path: Path) -> None:
    """A refresh reads v2 (a job's new model) and loads it slowly; meanwhile v1 is activated.
    The database and the process end on v1: the refresh's install of v2 comes first, or
    the activation waits for it (before, the activation installed v1 at once and the
    refresh then installed v2 over it, until the next poll)."""
    engine = store.make_engine(db_url)
    sessions = store.make_session_factory(engine)
    try:
        _register(sessions, tmp_path, "v1", "v2")
        entered, go = threading.Event(), threading.Event()

        def loader(path: Path) -> str:  # stands in for RBMRecommender.load: the version
            if path.name == "v2":
                entered.set()
                assert go.wait(30)
            return path.name

        holder = ModelHolder(sessions, tmp_path, loader=loader)
        holder.install(holder.load("v1"))  # serving v1; the job just made v2 active
        refresh = threading.Thread(target=holder.refresh, kwargs={"force": True})
        refresh.start()
        assert entered.wait(30)  # the refresh read v2 and is loading it
        rollback = holder.load("v1")

        def activate() -> None:
            with sessions() as session:
                holder.activate(session, rollback)

        activation = threading.Thread(target=activate)
        activation.start()
        activation.join(timeout=0.5)  # it waits for the load (before: it was done by now)
        go.set()
        refresh.join(30)
        activation.join(30)
        assert not refresh.is_alive() and not activation.is_alive()
        with sessions() as session:
            assert store.active_version(session) == "v1"
        assert holder.current is not None and holder.current.version == "v1"
        assert holder.current is rollback
        assert holder.refresh() is rollback  # nothing left to follow
    finally:
        engine.dispose()


def test_a_refresh_that_waited_reads_the_version_again(db_url: str, tmp_path: Path) -> None:
    """A refresh that read v2 and then waited while v1 was activated and installed does not
    load v2 afterwards: it reads the row again under the lock."""
    engine = store.make_engine(db_url)
    sessions = store.make_session_factory(engine)
    try:
        _register(sessions, tmp_path, "v1", "v2")
        loads: list[str] = []

        def loader(path: Path) -> str:
            loads.append(path.name)
            return path.name

        holder = ModelHolder(sessions, tmp_path, loader=loader)
        holder.install(holder.load("v1"))
        v1 = holder.current
        assert v1 is not None
        read = threading.Event()
        reads = 0
        active_version = holder._active_version

        def first_read_then_activation() -> str | None:
            nonlocal reads
            reads += 1
            version = active_version()
            if reads == 1:  # the activation lands between the refresh's two reads
                with sessions() as session:
                    holder.activate(session, LoadedModel(version="v1", model="v1"))
                read.set()
            return version

        holder._active_version = first_read_then_activation  # type: ignore[method-assign]
        served = holder.refresh()
        assert read.is_set() and reads == 2
        assert served is not None and served.version == "v1"
        assert loads == ["v1"]  # v2 was never loaded
    finally:
        engine.dispose()
