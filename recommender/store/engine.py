"""Engines and sessions for SQLite (the embedded default) and PostgreSQL."""

from __future__ import annotations

import importlib.util
import logging
import math
import select
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    CursorResult,
    Engine,
    Executable,
    String,
    any_,
    bindparam,
    create_engine,
    event,
    exc,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_DATABASE_URL = "sqlite:///./recommender.db"

log = logging.getLogger(__name__)


def make_engine(
    url: str,
    *,
    busy_timeout_s: float = 5.0,
    pool_size: int = 10,
    pre_ping: bool = True,
    **kwargs: Any,
) -> Engine:
    """Create an engine for ``url`` with the settings this service relies on.

    SQLite: WAL journal (readers never block the writer), foreign keys on, and a busy timeout
    so concurrent writers wait for the lock instead of failing at once. The driver's implicit
    transaction handling is replaced by an explicit ``BEGIN`` (the SQLAlchemy-documented
    recipe), so a transaction covers every statement in it, reads included.

    PostgreSQL: ``psycopg`` 3, a pool checked with a ping so a restarted server is survived
    (``pre_ping=False`` when a :class:`StallGuard` pings instead). ``busy_timeout_s`` bounds
    the connect (libpq: whole seconds, 2 at least) and the wait for a pooled connection; TCP
    keepalives and ``tcp_user_timeout`` drop a connection whose peer vanished. None of these
    bounds a server or proxy that accepts bytes and never answers: :class:`StallGuard` does.
    """
    parsed = make_url(url)
    if "poolclass" not in kwargs:
        kwargs.update(
            pool_size=pool_size, max_overflow=2 * pool_size, pool_timeout=busy_timeout_s
        )
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
    if parsed.drivername == "postgresql+psycopg":
        _require_psycopg()
    return create_engine(
        parsed,
        pool_pre_ping=pre_ping,
        connect_args={
            "connect_timeout": max(1, math.ceil(busy_timeout_s)),
            # Probe an idle connection after this many seconds, then every second, 3 times.
            "keepalives": 1,
            "keepalives_idle": max(1, math.ceil(busy_timeout_s)),
            "keepalives_interval": 1,
            "keepalives_count": 3,
            # Sent data unacknowledged this long: the peer is gone (a long query is fine:
            # the server acknowledges at once, it only answers late).
            "tcp_user_timeout": max(1000, math.ceil(busy_timeout_s * 1000)),
        },
        **kwargs,
    )


def _require_psycopg() -> None:
    """psycopg 3 is the ``postgres`` extra of the package: without it, say how to install it
    (SQLAlchemy's own error is a bare "No module named 'psycopg'")."""
    if importlib.util.find_spec("psycopg") is None:
        raise ModuleNotFoundError(
            "a postgresql:// database needs the psycopg driver, which is not installed: "
            "pip install 'recommender[postgres]'",
            name="psycopg",
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
    full_busy_ms = int(busy_timeout_s * 1000)

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
        busy_ms = full_busy_ms
        if mode == "IMMEDIATE":
            start = time.monotonic()
            if not write_lock.acquire(timeout=busy_timeout_s):
                raise exc.OperationalError(
                    "BEGIN IMMEDIATE",
                    None,
                    sqlite3.OperationalError(
                        "database is locked: another writer in this process held it for "
                        f"{busy_timeout_s:g} s"
                    ),
                )
            connection.info["holds_write_lock"] = True
            # The whole wait for the write lock stays within the busy timeout: SQLite's own
            # wait (another process's writer) gets what this process's queue left of it.
            waited_ms = int((time.monotonic() - start) * 1000)
            busy_ms = max(1, full_busy_ms - waited_ms) if waited_ms > 1 else full_busy_ms
        try:
            if connection.info.get("busy_ms", full_busy_ms) != busy_ms:
                connection.connection.driver_connection.execute(f"PRAGMA busy_timeout={busy_ms}")
                connection.info["busy_ms"] = busy_ms
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


@contextmanager
def unit_of_work(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A session for one unit of work (a job step, a CLI command): committed when the block
    ends, rolled back when it raises, so a failure half way writes nothing.

    ``with unit_of_work(sessions) as session:`` rather than ``sessions.begin()``: that one
    opens the transaction before the first statement, which :func:`begin_write` needs to do.
    """
    with sessions() as session:
        yield session
        session.commit()


def begin_write(session: Session) -> None:
    """Declare that the session's transaction will write; call before its first statement.

    On SQLite this begins the transaction with ``BEGIN IMMEDIATE``; elsewhere it is a no-op.
    """
    if not session.in_transaction() and session.get_bind().dialect.name == "sqlite":
        session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})


def execute_dml(session: Session, statement: Executable) -> int:
    """Run an UPDATE or DELETE; returns how many rows it matched. (``Session.execute`` is
    typed to return a plain ``Result``; for these statements it is a ``CursorResult``.)"""
    result = session.execute(statement)
    if not isinstance(result, CursorResult):
        raise TypeError(f"expected an UPDATE or DELETE. Received: statement={statement!r}")
    return int(result.rowcount or 0)


def is_postgresql(session_or_engine: Session | Engine) -> bool:
    bind = (
        session_or_engine.get_bind()
        if isinstance(session_or_engine, Session)
        else session_or_engine
    )
    return bind.dialect.name == "postgresql"


def one_of(column: Any, name: str, dialect: str) -> ColumnElement[bool]:
    """``column`` is one of the list bound as ``name`` (a string column).

    On PostgreSQL one array parameter (``= ANY``): the same index scan as an IN list,
    without binding, sending and parsing one parameter per value. For 32 user ids (a
    recommendation batch of the 10M set) 3.2-3.4 -> 3.0 ms; for item titles, 320 ids 3.1 ->
    0.5 ms and 3,000 ids 24.5 -> 2.1 ms. Elsewhere an expanding IN list.
    """
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(String)))
    return column.in_(bindparam(name, expanding=True))


def dialect_insert(session: Session) -> Any:
    """The session's dialect ``insert`` (PostgreSQL's or SQLite's), whose statements take
    ``on_conflict_do_update`` / ``on_conflict_do_nothing``: an upsert in one statement."""
    return postgresql.insert if is_postgresql(session) else sqlite.insert


class _Held:
    """A connection a guarded caller holds, and since when it waits on the database."""

    __slots__ = ("aborted", "connection", "waiting_since")

    def __init__(self, connection: Any, waiting_since: float | None = None) -> None:
        self.connection = connection  # the DBAPI connection
        # time.monotonic() when the current statement (or ping, commit, rollback) was sent;
        # None between statements (the caller is working, not waiting).
        self.waiting_since = waiting_since
        self.aborted = False


class StallGuard:
    """Cut database connections whose statement gets no answer within ``timeout_s``.

    A server (or a proxy, or a network path) that accepts bytes and never answers leaves a
    thread blocked in a socket read: no driver timeout fires, because the socket is healthy.
    For the sessions of a :meth:`watch`-ed factory, a statement, commit or rollback still
    unanswered ``timeout_s`` after it was sent is cut: its socket is shut down (PostgreSQL:
    the blocked read fails at once with "server closed the connection", the pool discards
    the connection) or it is interrupted (SQLite). The caller gets an ``OperationalError``,
    which the service answers with 503.

    What counts is the wait for the database, not the request's own work between statements;
    and on PostgreSQL a statement whose answer has arrived (the socket is readable) is not
    cut, however late its thread gets round to reading it: a busy machine is not a stall.

    Other sessions on the same engine stay unguarded, for work that legitimately waits long
    (a training job reading every rating). The ping at checkout (what ``pool_pre_ping`` does;
    build the engine with ``pre_ping=False``) is guarded for every caller.

    One watchdog thread ticks a few times a second; a statement costs two event calls.
    """

    def __init__(self, engine: Engine, *, timeout_s: float, ping: bool | None = None) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0. Received: timeout_s={timeout_s!r}")
        self.timeout_s = timeout_s
        self.cut = 0  # connections cut so far
        self._dialect = engine.dialect
        self._ping = engine.dialect.name == "postgresql" if ping is None else ping
        self._held: dict[_Held, None] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        # The watchdog looks this often: a stalled connection is cut within timeout_s plus
        # one tick. Ticking (a few wake-ups a second) keeps the request path free of any.
        self._tick = min(0.25, timeout_s / 4)
        event.listen(engine.pool, "connect", self._on_connect)
        event.listen(engine.pool, "checkout", self._on_checkout)
        event.listen(engine.pool, "checkin", self._on_checkin)
        event.listen(engine, "before_cursor_execute", self._on_send)
        event.listen(engine, "commit", self._on_commit_or_rollback)
        event.listen(engine, "rollback", self._on_commit_or_rollback)
        event.listen(engine, "after_cursor_execute", self._on_answer)
        event.listen(engine, "handle_error", self._on_error)
        self._thread = threading.Thread(target=self._watch, name="db-stall-guard", daemon=True)
        self._thread.start()

    def watch(self, sessions: sessionmaker[Session]) -> sessionmaker[Session]:
        """Guard the connections of the sessions ``sessions`` makes (from the start of their
        transaction until the connection goes back to the pool); returns ``sessions``.

        A session-level mark, not an engine with execution options: SQLAlchemy dispatches
        every connection event of such an engine through a slower joined dispatcher.
        """
        event.listen(sessions, "after_begin", self._on_session_begin)
        return sessions

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5)

    def held(self) -> int:
        """Guarded connections out of the pool now."""
        with self._lock:
            return len(self._held)

    # -- pool and engine events --------------------------------------------------------------

    def _on_connect(self, _dbapi_connection: Any, record: Any) -> None:
        record.info["stall_guard_fresh"] = True  # no ping needed on its first checkout

    def _on_checkout(self, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if not self._ping or record.info.pop("stall_guard_fresh", False):
            return
        entry = self._hold(dbapi_connection, waiting=True)
        try:
            alive = self._dialect.do_ping(dbapi_connection)
        except Exception:  # noqa: BLE001 - a ping that fails in any way: a dead connection
            alive = False
        finally:
            self._release(entry)
        if entry.aborted:
            # Raising anything but DisconnectionError discards this connection without
            # trying another: a second try would stall as long again.
            raise exc.TimeoutError(
                f"the database did not answer a ping within {self.timeout_s:g} s "
                "(RECOMMENDER_DB_TIMEOUT_S)"
            )
        if not alive:
            # What pool_pre_ping does: this one and every older pooled one are discarded
            # (a restarted server killed them all), and the pool connects anew.
            raise exc.InvalidatePoolError()

    def _on_session_begin(self, _session: Any, _transaction: Any, connection: Any) -> None:
        fairy = connection.connection
        if "stall_guard" not in fairy.info:
            fairy.info["stall_guard"] = self._hold(fairy.dbapi_connection)

    def _on_send(self, connection: Any, *_args: Any) -> None:
        entry = self._entry(connection)
        if entry is not None:
            entry.waiting_since = time.monotonic()

    def _on_commit_or_rollback(self, connection: Any) -> None:
        # Fired before the round trip; what follows is the connection's return to the pool
        # (which ends the watch) or its next statement (which restarts the clock).
        self._on_send(connection)

    def _on_answer(self, connection: Any, *_args: Any) -> None:
        entry = self._entry(connection)
        if entry is not None:
            entry.waiting_since = None

    def _on_error(self, context: Any) -> None:
        if context.connection is not None:
            self._on_answer(context.connection)

    @staticmethod
    def _entry(connection: Any) -> _Held | None:
        # An invalidated or closed Connection would try to reconnect for its ``info``.
        if connection.invalidated or connection.closed:
            return None
        return connection.info.get("stall_guard")

    def _on_checkin(self, _dbapi_connection: Any, record: Any) -> None:
        entry = record.info.pop("stall_guard", None)
        if entry is not None:
            self._release(entry)

    # -- the watchdog ------------------------------------------------------------------------

    def _hold(self, dbapi_connection: Any, *, waiting: bool = False) -> _Held:
        entry = _Held(dbapi_connection, time.monotonic() if waiting else None)
        with self._lock:
            self._held[entry] = None
        return entry

    def _release(self, entry: _Held) -> None:
        with self._lock:
            self._held.pop(entry, None)

    def _watch(self) -> None:
        while not self._closed.wait(self._tick):
            cutoff = time.monotonic() - self.timeout_s
            with self._lock:
                late = [
                    entry
                    for entry in self._held
                    if (since := entry.waiting_since) is not None and since < cutoff
                ]
            for entry in late:
                if _answered(entry.connection):
                    continue  # the answer is there; the thread has not read it yet
                with self._lock:
                    if self._held.pop(entry, "gone") is not None:
                        continue  # released meanwhile
                entry.aborted = True
                self.cut += 1
                _cut(entry.connection, self.timeout_s)


def _answered(dbapi_connection: Any) -> bool:
    """Whether a network connection has bytes waiting to be read (False for SQLite)."""
    if hasattr(dbapi_connection, "interrupt"):
        return False
    try:
        readable, _, _ = select.select([dbapi_connection.fileno()], [], [], 0)
    except Exception:  # noqa: BLE001 - closed meanwhile
        return False
    return bool(readable)


def _cut(dbapi_connection: Any, timeout_s: float) -> None:
    """Make a thread blocked on ``dbapi_connection`` fail now."""
    try:
        interrupt = getattr(dbapi_connection, "interrupt", None)
        if interrupt is not None:  # sqlite3: abort the running statement
            interrupt()
        else:  # a network connection: shut the socket down (the driver still owns the fd)
            sock = socket.socket(fileno=dbapi_connection.fileno())
            try:
                sock.shutdown(socket.SHUT_RDWR)
            finally:
                sock.detach()
        log.warning(
            "cut a database connection held over %g s (RECOMMENDER_DB_TIMEOUT_S): "
            "the database stalled",
            timeout_s,
        )
    except Exception as error:  # noqa: BLE001 - closed meanwhile: nothing to cut
        log.debug("cutting a stalled database connection failed: %s", error)
