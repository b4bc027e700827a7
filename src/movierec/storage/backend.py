"""The session store's database adapters: what :class:`~movierec.storage.sessions.SessionStore`
needs from a database (:class:`StoreBackend`), SQLite's adapter (:class:`SqliteBackend`), and
opening the right one for a connection, a path or a database URL (:func:`open_backend`).
PostgreSQL's adapter is :class:`~movierec.storage.postgres.PostgresBackend`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from movierec.storage import db

__all__ = ["SqliteBackend", "StoreBackend", "open_backend", "sqlite_url_path"]


def sqlite_url_path(url: str) -> str:
    """The file of a ``sqlite://`` URL, as SQLAlchemy reads it; ``":memory:"`` for an in-memory one.

    ``sqlite:///relative/file.sqlite3`` (three slashes: relative to the working
    directory), ``sqlite:////srv/movierec/sessions.sqlite3`` (four: absolute),
    ``sqlite://`` or ``sqlite:///:memory:`` (in memory).

    Raises
    ------
    ValueError
        ``url`` is not a ``sqlite://`` URL of one of these forms.
    """
    text = url.strip()
    if not text.lower().startswith("sqlite://"):
        raise ValueError(f"not a sqlite:// URL: {url!r}")
    rest = text[len("sqlite://") :]
    if rest in ("", "/", "/:memory:"):
        return ":memory:"
    if not rest.startswith("/") or rest == "//":
        raise ValueError(f"bad SQLite URL {url!r}: use sqlite:///relative/path or sqlite:////absolute/path")
    return rest[1:]


class StoreBackend(Protocol):
    """What :class:`~movierec.storage.sessions.SessionStore` needs from a database: portable SQL in, rows (tuples) out.

    ``execute`` takes SQL with ``?`` placeholders and returns a cursor
    (``fetchone``, ``fetchall``, iteration, ``rowcount``); ``encode`` gives
    the bound form of a ``session_items.value``; ``transaction(write=True)``
    is a write transaction that later statements in it may rely on (locks
    taken by its first ``UPDATE`` hold to the end), ``write=False`` one
    consistent read snapshot.
    """

    name: str

    @property
    def conn(self) -> Any: ...

    @property
    def in_transaction(self) -> bool: ...

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any: ...

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None: ...

    def encode(self, value: int | str) -> int | str: ...

    def transaction(self, *, write: bool) -> AbstractContextManager[None]: ...

    def migrate(self) -> int: ...

    def integrity_check(self) -> bool: ...

    def close(self) -> None: ...

    def reader(self) -> StoreBackend:
        """A second adapter on the same database for reads (``self`` where there can be none)."""
        ...

    def ensure_open(self) -> None:
        """Reopen the connection if it is known to be closed or broken."""
        ...

    def set_wait(self, seconds: float) -> None:
        """Wait at most this long for the database's locks in the next statements."""
        ...

    def is_unavailable(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the database cannot be used now (locked, unreachable, full)
        rather than a mistake in the call."""
        ...


#: SQLite errors that mean "not now" (another process holds the lock, the disk is full or
#: failing), as opposed to a wrong statement
_SQLITE_UNAVAILABLE = ("locked", "busy", "full", "disk i/o", "unable to open")


class SqliteBackend:
    """The session store's adapter for an SQLite connection (:func:`movierec.storage.db.connect`).

    Parameters
    ----------
    conn:
        The connection; closed by :meth:`close` only if ``owns``.
    owns:
        Whether this adapter opened ``conn``.
    """

    name = "sqlite"

    def __init__(self, conn: sqlite3.Connection, *, owns: bool) -> None:
        self._conn = conn
        self._owns = owns

    @property
    def conn(self) -> sqlite3.Connection:
        return self._conn

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        return self._conn.execute(sql, params)

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        self._conn.executemany(sql, rows)

    def encode(self, value: int | str) -> int | str:
        return value  # the column has no affinity: ints stay ints, tags stay text

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[None]:
        with db.transaction(self._conn, immediate=write):
            yield

    def migrate(self) -> int:
        return db.migrate(self._conn)

    def integrity_check(self) -> bool:
        return db.integrity_check(self._conn)

    def close(self) -> None:
        if self._owns:
            self._conn.close()

    def reader(self) -> StoreBackend:
        row = self._conn.execute("PRAGMA database_list").fetchone()
        path = row[2] if row is not None else ""
        if not path:  # in memory: one connection holds the whole database
            return self
        reader = SqliteBackend(db.connect(path), owns=True)
        reader._conn.execute(f"PRAGMA busy_timeout = {int(self._timeout_ms())}")
        return reader

    def _timeout_ms(self) -> int:
        return int(self._conn.execute("PRAGMA busy_timeout").fetchone()[0])

    def ensure_open(self) -> None:
        pass  # a local file does not drop its connection

    def set_wait(self, seconds: float) -> None:
        self._conn.execute(f"PRAGMA busy_timeout = {max(0, int(seconds * 1000))}")

    def is_unavailable(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.OperationalError) and any(
            word in str(exc).lower() for word in _SQLITE_UNAVAILABLE
        )


def open_backend(target: sqlite3.Connection | Path | str) -> StoreBackend:
    """The adapter for an open SQLite connection (not owned), a database path, or a database URL."""
    if isinstance(target, sqlite3.Connection):
        return SqliteBackend(target, owns=False)
    if isinstance(target, str):
        from movierec.storage import postgres

        if postgres.is_postgres_url(target):
            return postgres.PostgresBackend(target)
        if target.strip().lower().startswith("sqlite:"):
            return SqliteBackend(db.connect(sqlite_url_path(target)), owns=True)
        if "://" in target:
            raise ValueError(
                f"unsupported database URL scheme in {target.split('://', 1)[0]!r}://...: "
                "use postgresql://user@host:5432/db or sqlite:///path"
            )
    return SqliteBackend(db.connect(target), owns=True)
