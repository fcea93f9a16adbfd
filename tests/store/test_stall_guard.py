"""StallGuard: a guarded session's statement that runs past the timeout is cut (PostgreSQL:
the socket is shut down and the pool discards the connection; SQLite: the statement is
interrupted), unguarded sessions on the same engine are left alone, nothing stays checked
out, and the engine serves the next session normally."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from recommender.store import make_engine, make_session_factory
from recommender.store.engine import StallGuard

# Statements that run for minutes unless cut.
ENDLESS = {
    "sqlite": "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) "
    "SELECT count(*) FROM n WHERE x < 0",
    "postgresql": "SELECT pg_sleep(600)",
}


def test_a_guarded_statement_past_the_timeout_is_cut(db_url: str) -> None:
    engine = make_engine(db_url, busy_timeout_s=5, pre_ping=False)
    guard = StallGuard(engine, timeout_s=0.5)
    guarded = guard.watch(make_session_factory(engine))
    plain = make_session_factory(engine)
    try:
        started = time.monotonic()
        with pytest.raises(OperationalError), guarded() as session:
            session.execute(text(ENDLESS[engine.dialect.name]))
        # Cut after the timeout plus a watchdog tick; generous for a loaded machine (without
        # the guard the statement runs for minutes).
        assert time.monotonic() - started < 30
        assert guard.cut == 1 and guard.held() == 0
        assert engine.pool.checkedout() == 0

        # The engine goes on serving, guarded or not; a quick session is never cut.
        with guarded() as session:
            assert session.execute(text("SELECT 1")).scalar() == 1
        with plain() as session:
            session.execute(text("SELECT 1"))
            assert guard.held() == 0  # unguarded sessions are not watched
        assert guard.cut == 1
    finally:
        guard.close()
        engine.dispose()


def test_timeout_must_be_positive(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}", pre_ping=False)
    try:
        with pytest.raises(ValueError, match="timeout_s must be > 0. Received: timeout_s=0"):
            StallGuard(engine, timeout_s=0)
    finally:
        engine.dispose()
