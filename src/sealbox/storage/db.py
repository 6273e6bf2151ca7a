"""The metadata database: engine, connection settings, transactions, migrations.

SQLite (the embedded default) runs in WAL mode with synchronous=FULL, so a commit is
durable before the client sees a response, and with secure_delete, so destroyed key
material is overwritten rather than left in free pages. Write transactions take
SQLite's write lock up front (BEGIN IMMEDIATE): with several worker processes a
deferred transaction that later upgrades its lock can fail with SQLITE_BUSY instead of
waiting for the busy timeout. PostgreSQL runs write transactions at READ COMMITTED:
the audit chain head is taken with SELECT ... FOR UPDATE (which then waits and reads
the newest head), and rows that are read, changed and written back are guarded
optimistically by their row_version (ConcurrentUpdate). Conflicts are retried.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import NullPool

T = TypeVar("T")
_MIGRATIONS = Path(__file__).parent / "migrations"
_WRITE = "sealbox_write"


class ConcurrentUpdate(Exception):
    """A row changed between being read and being written back: retry the transaction."""


def _is_retryable(exc: Exception) -> bool:
    if isinstance(exc, ConcurrentUpdate):
        return True
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    # Serialization failure or deadlock, whether SQLAlchemy wrapped the driver's error
    # or it came from a statement run on the driver connection directly.
    if getattr(orig, "sqlstate", None) in ("40001", "40P01"):
        return True
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


class FastConnection:
    """A driver connection inside fast_transaction; SQL uses `?` placeholders."""

    def __init__(self, conn: Any, is_sqlite: bool) -> None:
        self._conn = conn
        self.is_sqlite = is_sqlite

    def _sql(self, sql: str) -> str:
        return sql if self.is_sqlite else sql.replace("?", "%s")

    def fetchone(self, sql: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        row = self._conn.execute(self._sql(sql), params).fetchone()
        return None if row is None else tuple(row)

    def fetchall(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self._conn.execute(self._sql(sql), params).fetchall()]

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        self._conn.execute(self._sql(sql), params)

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if self.is_sqlite:
            self._conn.executemany(sql, rows)
        else:
            with self._conn.cursor() as cur:
                cur.executemany(self._sql(sql), rows)


class Database:
    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        self._init_writer_lock(url)
        self._fast = threading.local()
        self._fast_lock = threading.Lock()
        self._fast_connections: list[Any] = []
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.engine: Engine = create_engine(
                url,
                connect_args={"timeout": 30, "check_same_thread": False},
                pool_size=pool_size,
                max_overflow=pool_size,
            )
            event.listen(self.engine, "connect", _sqlite_on_connect)
            event.listen(self.engine, "begin", _sqlite_on_begin)
        else:
            self.engine = create_engine(
                url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
            )

    @classmethod
    def for_migrations(cls, url: str) -> Database:
        db = cls.__new__(cls)
        db._init_writer_lock(url)
        db._fast = threading.local()
        db._fast_lock = threading.Lock()
        db._fast_connections = []
        db.url = url
        db.is_sqlite = url.startswith("sqlite")
        db.engine = create_engine(url, poolclass=NullPool)
        if db.is_sqlite:
            event.listen(db.engine, "connect", _sqlite_on_connect)
            event.listen(db.engine, "begin", _sqlite_on_begin)
        return db

    def _init_writer_lock(self, url: str) -> None:
        self._writer_thread_lock = threading.Lock()
        self._writer_lock_fd: int | None = None
        self._writer_lock_path: str | None = None
        database = make_url(url).database
        if url.startswith("sqlite") and database and database != ":memory:":
            self._writer_lock_path = database + ".writer-lock"

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def _writer_turn(self) -> Iterator[None]:
        """SQLite only: queue for the write lock in the kernel, not in SQLite.

        SQLite's busy handler waits for a held write lock by sleeping 1, 2, 5, 10...
        ms and retrying, which put tens of milliseconds into p99 latency when two
        worker processes commit audit batches at once. An exclusive flock on a file
        beside the database wakes the next writer the moment the lock is free. The
        busy timeout stays as the backstop for any writer that is not a Sealbox
        process.
        """
        if self._writer_lock_path is None:
            yield
            return
        with self._writer_thread_lock:
            if self._writer_lock_fd is None:
                self._writer_lock_fd = os.open(
                    self._writer_lock_path, os.O_RDWR | os.O_CREAT, 0o600
                )
            fcntl.flock(self._writer_lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._writer_lock_fd, fcntl.LOCK_UN)

    @contextmanager
    def _write_once(self) -> Iterator[Connection]:
        with self._writer_turn(), self.engine.connect() as conn:
            if self.is_sqlite:
                conn = conn.execution_options(**{_WRITE: True})
            with conn.begin():
                yield conn

    def write(self, work: Callable[[Connection], T], attempts: int = 5) -> T:
        """Run work in one write transaction, retrying serialization failures."""
        for attempt in range(attempts):
            try:
                with self._write_once() as conn:
                    return work(conn)
            except Exception as exc:
                if attempt + 1 == attempts or not _is_retryable(exc):
                    raise
                time.sleep(0.005 * 2**attempt)
        raise AssertionError("unreachable")

    def fast_row(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """One row from a plain SELECT on this thread's own autocommit DBAPI connection.

        For hot-path lookups of plain columns (ints, strings) only: it skips
        SQLAlchemy's execution machinery (about 25x cheaper here) and applies no
        type processing. `sql` uses `?` placeholders.
        """
        conn = getattr(self._fast, "conn", None)
        if conn is None:
            conn = self._fast.conn = self._fast_connection()
        if not self.is_sqlite:
            sql = sql.replace("?", "%s")
        try:
            row = conn.execute(sql, params).fetchone()
        except Exception:
            self._fast.conn = None
            with contextlib.suppress(Exception):
                conn.close()
            raise
        return None if row is None else tuple(row)

    def fast_transaction(self, work: Callable[[FastConnection], T]) -> T:
        """Run work in one durable write transaction on this thread's driver connection.

        The hot-path twin of `write` for a few plain statements (the audit group
        commit): no SQLAlchemy connection, event or pool bookkeeping per call.
        """
        conn = getattr(self._fast, "conn", None)
        if conn is None:
            conn = self._fast.conn = self._fast_connection()
        fast = FastConnection(conn, self.is_sqlite)
        try:
            if self.is_sqlite:
                with self._writer_turn():
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        result = work(fast)
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                    conn.execute("COMMIT")
                    return result
            with conn.transaction():
                return work(fast)
        except Exception:
            self._fast.conn = None
            with contextlib.suppress(Exception):
                conn.close()
            raise

    def _fast_connection(self) -> Any:
        pooled = self.engine.raw_connection()
        driver: Any = pooled.driver_connection
        pooled.detach()  # ours for this thread's lifetime, not the pool's
        if not self.is_sqlite:
            driver.autocommit = True  # never sit idle inside a transaction
        with self._fast_lock:
            self._fast_connections.append(driver)
        return driver

    def dispose(self) -> None:
        with self._fast_lock:
            for conn in self._fast_connections:
                with contextlib.suppress(Exception):
                    conn.close()
            self._fast_connections.clear()
        self._fast = threading.local()
        if self._writer_lock_fd is not None:
            os.close(self._writer_lock_fd)
            self._writer_lock_fd = None
        self.engine.dispose()


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's implicit BEGIN
    # is deferred and can't be made IMMEDIATE).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA secure_delete=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_on_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get(_WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
