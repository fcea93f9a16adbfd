"""Engines and sessions for SQLite (the embedded default) and PostgreSQL."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_DATABASE_URL = "sqlite:///./recommender.db"


def make_engine(
    url: str, *, busy_timeout_s: float = 5.0, pool_size: int = 10, **kwargs: Any
) -> Engine:
    """Create an engine for ``url`` with the settings this service relies on.

    SQLite: WAL journal (readers never block the writer), foreign keys on, and a busy timeout
    so concurrent writers wait for the lock instead of failing at once. The driver's implicit
    transaction handling is replaced by an explicit ``BEGIN`` (the SQLAlchemy-documented
    recipe), so a transaction covers every statement in it, reads included.

    PostgreSQL: ``psycopg`` 3, a pool checked with a ping so a restarted server is survived.
    """
    parsed = make_url(url)
    if "poolclass" not in kwargs:
        kwargs.update(pool_size=pool_size, max_overflow=2 * pool_size)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": busy_timeout_s},
            **kwargs,
        )
        _configure_sqlite(engine, busy_timeout_s)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(
        parsed,
        pool_pre_ping=True,
        connect_args={"connect_timeout": max(1, int(busy_timeout_s))},
        **kwargs,
    )


def _configure_sqlite(engine: Engine, busy_timeout_s: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see below)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable across app crashes in WAL mode
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cursor.close()

    # Writers in this process queue on a lock instead of SQLite's busy-wait polling, which is
    # unfair under load (a waiting writer can time out while others keep winning). Writers in
    # other processes still meet the busy timeout.
    write_lock = threading.Lock()

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _on_end(connection: Any) -> None:
        if connection.info.pop("holds_write_lock", False):
            write_lock.release()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # DEFERRED by default so readers run side by side; a transaction that reads and then
        # writes asks for IMMEDIATE (see ``begin_write``), taking the write lock up front,
        # because SQLite cannot wait to upgrade a read lock (it fails with "locked").
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        if mode == "IMMEDIATE" and write_lock.acquire(timeout=busy_timeout_s):
            connection.info["holds_write_lock"] = True
        try:
            connection.exec_driver_sql(f"BEGIN {mode}")
        except BaseException:
            if connection.info.pop("holds_write_lock", False):
                write_lock.release()
            raise


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit (API responses read them)."""
    return sessionmaker(engine, expire_on_commit=False)


def make_reader_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for work that only reads, one statement at a time (the recommendation path).

    On PostgreSQL they run in autocommit mode: each statement is its own snapshot and no
    BEGIN / ROLLBACK round trips wrap it (two of the three a batch would otherwise cost).
    SQLite's transactions are in-process and cheap: plain sessions there.
    """
    if engine.dialect.name == "postgresql":
        engine = engine.execution_options(isolation_level="AUTOCOMMIT")
    return make_session_factory(engine)


def begin_write(session: Session) -> None:
    """Declare that the session's transaction will write; call before its first statement.

    On SQLite this begins the transaction with ``BEGIN IMMEDIATE``; elsewhere it is a no-op.
    """
    if not session.in_transaction() and session.get_bind().dialect.name == "sqlite":
        session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})


def is_postgresql(session_or_engine: Session | Engine) -> bool:
    bind = (
        session_or_engine.get_bind()
        if isinstance(session_or_engine, Session)
        else session_or_engine
    )
    return bind.dialect.name == "postgresql"
