"""Anonymous sessions: ordered liked / disliked movies and tags, filters, favourites.

A session is identified by an unguessable token. Each list keeps the order
in which the user gave feedback: the last item is the most important one.

Two backends hold the same schema behind one :class:`SessionStore`:

* **SQLite** (the default: the catalogue's file, or ``sqlite:///path``).
  Every write is one ``BEGIN IMMEDIATE`` transaction, committed before the
  method returns; with WAL and ``synchronous=NORMAL`` an acknowledged write
  survives a crash of the process (a power loss may roll back the last few).
  SQLite's write lock serialises writers in other processes of one machine.
* **PostgreSQL** (``postgresql://user@host:5432/db``, :mod:`movierec.storage.postgres`),
  shared by any number of workers on any number of machines. Every write is
  one ``READ COMMITTED`` transaction that first locks the session's row, so
  the writes to one session run one after the other wherever they come from.

The store's SQL is written once, with ``?`` placeholders; a small backend
adapter (:class:`~movierec.storage.backend.SqliteBackend`,
:class:`~movierec.storage.postgres.PostgresBackend`) runs it. Writes and reads
use two connections (one for an in-memory SQLite database), each behind its own
lock, so a write waiting for a lock held by another process never holds up a
read: with WAL, SQLite readers do not wait for writers.

Waiting is bounded: a call that cannot get its connection's lock, or the
database's, within ``wait_s`` seconds raises :class:`StoreBusy` (the service
answers 503 with ``Retry-After``), as does a database that is unreachable or
full. Every call goes through one place (:meth:`SessionStore._use`) that maps
those errors and reopens a dropped connection (PostgreSQL restarted, network cut)
before its transaction begins.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from movierec.storage import db
from movierec.storage.backend import StoreBackend, open_backend
from movierec.storage.session_state import (
    _FEEDBACK,
    _KINDS,
    Feedback,
    Kind,
    SessionState,
    _check_feedback,
    _decode,
    _movie_id,
    _value,
)

__all__ = [
    "MAX_FAVOURITES",
    "MAX_ITEMS",
    "SessionStore",
    "StoreBusy",
    "UnknownSessionError",
    "sessions_path_for",
]

#: Most items in one list (e.g. a session's liked movies).
MAX_ITEMS = 200
#: Most favourites per session.
MAX_FAVOURITES = 1000
#: Longest JSON text of a session's filters.
MAX_FILTERS_CHARS = 10_000


_UNKNOWN = "unknown session (never created, or deleted); start a new one"  # never echo the token


class StoreBusy(RuntimeError):
    """The sessions database cannot be used now: its lock is held elsewhere beyond the wait,
    it is unreachable, or it is full. Nothing was written; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int = 2) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnknownSessionError(KeyError):
    """A session token the store does not hold (expired, deleted or mistyped)."""

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0]) if self.args else "unknown session"


def sessions_path_for(catalogue: Path | str) -> Path:
    """The SQLite file that holds the sessions of the catalogue at ``catalogue`` when no
    database URL is set: beside it, ``movierec.sqlite3`` -> ``movierec.sessions.sqlite3``.

    Sessions and the catalogue live in two files so that a catalogue rebuild can write a
    new file and swap it in (:func:`movierec.storage.catalog.build_catalog_file`) while
    visitors keep writing. (Until this release both lived in one file;
    :meth:`SessionStore.adopt` moves such sessions over.)
    """
    path = Path(catalogue)
    return path.with_name(f"{path.stem}.sessions{path.suffix or '.sqlite3'}")


class SessionStore:
    """Sessions kept in SQLite or PostgreSQL (schema v2; migrated on open).

    Parameters
    ----------
    conn_or_path:
        An open SQLite connection (from :func:`movierec.storage.db.connect`;
        the store never closes it), a database path, or a database URL:
        ``sqlite:///path`` or ``postgresql://user@host:5432/db``. The store
        opens, and :meth:`close` closes, its own connection in the latter cases.

    Attributes
    ----------
    backend:
        ``"sqlite"`` or ``"postgresql"``.
    """

    def __init__(self, conn_or_path: sqlite3.Connection | Path | str, *, wait_s: float = 5.0) -> None:
        if not wait_s > 0:
            raise ValueError(f"wait_s must be a positive number of seconds, got {wait_s}")
        self.wait_s = float(wait_s)
        self._db: StoreBackend = open_backend(conn_or_path)
        self.backend: str = self._db.name
        self._lock = threading.RLock()
        try:
            with self._lock:
                self._db.migrate()
            self._reader = self._db.reader()
        except BaseException:
            self._db.close()
            raise
        self._read_lock = self._lock if self._reader is self._db else threading.RLock()

    @property
    def conn(self) -> Any:
        """The underlying connection for writes (``sqlite3.Connection`` or ``psycopg.Connection``)."""
        return self._db.conn

    def close(self) -> None:
        """Close the connections the store opened."""
        with self._lock:
            if self._reader is not self._db:
                self._reader.close()
            self._db.close()

    def integrity_check(self) -> bool:
        """Whether the database passes its backend's integrity checks."""
        with self._lock:
            return self._db.integrity_check()

    # ------------------------------------------------------------ helpers
    @contextmanager
    def _use(self, *, write: bool) -> Iterator[StoreBackend]:
        """The one way to the database: a write (or read-snapshot) transaction on the write (or
        read) connection, waiting at most :attr:`wait_s` in all, a dropped connection reopened
        first, and "not now" errors turned into :class:`StoreBusy`."""
        lock, backend = (self._lock, self._db) if write else (self._read_lock, self._reader)
        start = time.monotonic()
        if not lock.acquire(timeout=self.wait_s):
            raise StoreBusy(
                f"the sessions database is busy (no turn within {self.wait_s:g} s); retry in a moment",
                retry_after=max(1, round(self.wait_s)),
            )
        try:
            backend.ensure_open()
            backend.set_wait(max(0.0, self.wait_s - (time.monotonic() - start)))
            with backend.transaction(write=write):
                yield backend
        except Exception as exc:
            if backend.is_unavailable(exc):
                first = str(exc).splitlines()[0] if str(exc) else ""
                raise StoreBusy(
                    f"the sessions database is busy or unavailable ({type(exc).__name__}: {first}); "
                    "nothing was changed; retry in a moment",
                    retry_after=max(1, round(self.wait_s)),
                ) from exc
            raise
        finally:
            lock.release()

    @contextmanager
    def _write(self, token: str) -> Iterator[StoreBackend]:
        """One write transaction on an existing session, stamping ``updated_at``.

        The ``UPDATE`` comes first: it locks the session's row (PostgreSQL) for
        the rest of the transaction, and tells whether the session exists.
        """
        if not isinstance(token, str):
            raise UnknownSessionError(_UNKNOWN)
        with self._use(write=True) as conn:
            cur = conn.execute("UPDATE sessions SET updated_at = ? WHERE token = ?", (time.time(), token))
            if cur.rowcount != 1:
                raise UnknownSessionError(_UNKNOWN)
            yield conn

    def _list(self, conn: StoreBackend, token: str, kind: str, feedback: str) -> list[int | str]:
        return [
            _decode(kind, r[0])
            for r in conn.execute(
                "SELECT value FROM session_items WHERE token = ? AND kind = ? AND feedback = ? "
                "ORDER BY position",
                (token, kind, feedback),
            )
        ]

    def _state(self, conn: StoreBackend, token: str) -> SessionState:
        row = conn.execute("SELECT filters, updated_at FROM sessions WHERE token = ?", (token,)).fetchone()
        if row is None:
            raise UnknownSessionError(_UNKNOWN)
        lists: dict[tuple[str, str], list[Any]] = {(k, f): [] for k in _KINDS for f in _FEEDBACK}
        for kind, feedback, value in conn.execute(
            "SELECT kind, feedback, value FROM session_items WHERE token = ? ORDER BY position", (token,)
        ):
            lists[(kind, feedback)].append(value)
        favourites = [
            int(r[0])
            for r in conn.execute(
                "SELECT movie_id FROM favourites WHERE token = ? ORDER BY seq DESC", (token,)
            )
        ]
        return SessionState(
            liked=[int(v) for v in lists[("movie", "like")]],
            disliked=[int(v) for v in lists[("movie", "dislike")]],
            liked_tags=[str(v) for v in lists[("tag", "like")]],
            disliked_tags=[str(v) for v in lists[("tag", "dislike")]],
            filters=json.loads(row[0]),
            favourites=favourites,
            updated_at=float(row[1]),
        )

    # ------------------------------------------------------------- public
    def create(self) -> str:
        """A new empty session; returns its token (43 URL-safe characters)."""
        token = secrets.token_urlsafe(32)
        now = time.time()
        with self._use(write=True) as conn:
            conn.execute(
                "INSERT INTO sessions (token, created_at, updated_at, filters) VALUES (?, ?, ?, '{}')",
                (token, now, now),
            )
        return token

    def exists(self, token: str) -> bool:
        """Whether ``token`` names a session."""
        if not isinstance(token, str):
            return False
        with self._use(write=False) as conn:
            return conn.execute("SELECT 1 FROM sessions WHERE token = ?", (token,)).fetchone() is not None

    def get(self, token: str) -> SessionState:
        """The session's state (one consistent snapshot). Raises :class:`UnknownSessionError`."""
        if not isinstance(token, str):
            raise UnknownSessionError(_UNKNOWN)
        with self._use(write=False) as conn:
            return self._state(conn, token)

    def delete(self, token: str) -> None:
        """Forget a session and everything in it (no error if unknown)."""
        if not isinstance(token, str):
            return
        with self._use(write=True) as conn:
            conn.execute("DELETE FROM sessions WHERE token = ?", (token,))

    def adopt(self, other: Path | str) -> int:
        """Move every session (items and favourites too) of the SQLite file ``other`` into
        this SQLite store, in one transaction; returns how many sessions moved.

        For files that held the catalogue and the sessions together (before the two were
        split): the sessions go, the catalogue stays. A token already here keeps this store's
        version. A missing file, or one without sessions, moves nothing.
        """
        path = Path(other)
        if self.backend != "sqlite" or not path.is_file():
            return 0
        with self._lock:
            conn = self._db.conn
            conn.execute("ATTACH DATABASE ? AS old", (str(path),))
            try:
                has = conn.execute(
                    "SELECT count(*) FROM old.sqlite_master WHERE type = 'table' AND name = 'sessions'"
                ).fetchone()[0]
                if not has or not conn.execute("SELECT 1 FROM old.sessions LIMIT 1").fetchone():
                    return 0
                new = "token IN (SELECT token FROM temp.adopted)"
                with db.transaction(conn):
                    conn.execute(
                        "CREATE TEMP TABLE adopted AS SELECT token FROM old.sessions "
                        "WHERE token NOT IN (SELECT token FROM main.sessions)"
                    )
                    moved = conn.execute(
                        "INSERT INTO main.sessions (token, created_at, updated_at, filters) "
                        f"SELECT token, created_at, updated_at, filters FROM old.sessions WHERE {new}"
                    ).rowcount
                    conn.execute(
                        "INSERT INTO main.session_items (token, kind, value, feedback, position) "
                        f"SELECT token, kind, value, feedback, position FROM old.session_items WHERE {new}"
                    )
                    conn.execute(
                        "INSERT INTO main.favourites (token, movie_id, seq, added_at) "
                        f"SELECT token, movie_id, seq, added_at FROM old.favourites WHERE {new}"
                    )
                    conn.execute("DROP TABLE temp.adopted")
                    conn.execute("DELETE FROM old.favourites")
                    conn.execute("DELETE FROM old.session_items")
                    conn.execute("DELETE FROM old.sessions")
                return moved
            finally:
                conn.execute("DETACH DATABASE old")

    def count(self) -> int:
        """How many sessions the database holds."""
        with self._use(write=False) as conn:
            return int(conn.execute("SELECT count(*) FROM sessions").fetchone()[0])

    def expire(
        self, *, empty_after_s: float, idle_after_s: float, now: float | None = None, batch: int = 500
    ) -> int:
        """Delete sessions nobody will miss; returns how many went.

        A session holding no liked or disliked item and no favourite goes when unused
        (no write) for ``empty_after_s`` seconds; any session goes after ``idle_after_s``.
        Deleted ``batch`` sessions per transaction, so a large sweep holds the write lock
        only briefly at a time.
        """
        if not (empty_after_s >= 0 and idle_after_s >= 0 and batch >= 1):
            raise ValueError("empty_after_s and idle_after_s must be >= 0 seconds and batch >= 1")
        now = time.time() if now is None else float(now)
        gone = 0
        while True:
            with self._use(write=True) as conn:
                cur = conn.execute(
                    "DELETE FROM sessions WHERE token IN (SELECT token FROM sessions s WHERE s.updated_at < ? "
                    "OR (s.updated_at < ? AND NOT EXISTS (SELECT 1 FROM session_items i WHERE i.token = s.token) "
                    "AND NOT EXISTS (SELECT 1 FROM favourites f WHERE f.token = s.token)) LIMIT ?)",
                    (now - idle_after_s, now - empty_after_s, int(batch)),
                )
                n = max(0, int(cur.rowcount))
            gone += n
            if n < batch:
                return gone

    def add(self, token: str, kind: Kind, value: int | str, feedback: Feedback) -> SessionState:
        """Append ``value`` to the ``kind``/``feedback`` list (the end = most important).

        An item already in the opposite list moves here; one already in this
        list stays where it is. Raises ``ValueError`` for a bad kind, feedback
        or value, or when the list already holds :data:`MAX_ITEMS` items.
        """
        _check_feedback(feedback)
        stored = _value(kind, value)
        with self._write(token) as conn:
            bound = conn.encode(stored)
            row = conn.execute(
                "SELECT feedback FROM session_items WHERE token = ? AND kind = ? AND value = ?",
                (token, kind, bound),
            ).fetchone()
            if row is None or row[0] != feedback:
                count, top = conn.execute(
                    "SELECT count(*), coalesce(max(position), -1) FROM session_items "
                    "WHERE token = ? AND kind = ? AND feedback = ?",
                    (token, kind, feedback),
                ).fetchone()
                if count >= MAX_ITEMS:
                    raise ValueError(
                        f"a session holds at most {MAX_ITEMS} {feedback}d {kind}s; remove some first"
                    )
                conn.execute(
                    "INSERT INTO session_items (token, kind, value, feedback, position) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (token, kind, value) DO UPDATE SET feedback = excluded.feedback, "
                    "position = excluded.position",
                    (token, kind, bound, feedback, top + 1),
                )
            return self._state(conn, token)

    def remove(self, token: str, kind: Kind, value: int | str) -> SessionState:
        """Remove ``value`` from whichever list holds it (no error if none does)."""
        stored = _value(kind, value)
        with self._write(token) as conn:
            conn.execute(
                "DELETE FROM session_items WHERE token = ? AND kind = ? AND value = ?",
                (token, kind, conn.encode(stored)),
            )
            return self._state(conn, token)

    def reorder(self, token: str, kind: Kind, feedback: Feedback, ordered: list[Any]) -> SessionState:
        """Set the order of one list; ``ordered`` must be exactly a permutation of it.

        Raises ``ValueError`` naming the missing, extra or repeated items otherwise.
        """
        _check_feedback(feedback)
        wanted = [_value(kind, v) for v in ordered]
        with self._write(token) as conn:
            current = self._list(conn, token, kind, feedback)
            if len(set(wanted)) != len(wanted):
                repeated = sorted({v for v in wanted if wanted.count(v) > 1}, key=str)
                raise ValueError(f"reorder: repeated item(s) {repeated[:5]}")
            missing = [v for v in current if v not in set(wanted)]
            extra = [v for v in wanted if v not in set(current)]
            if missing or extra:
                raise ValueError(
                    f"reorder must list exactly the current {feedback}d {kind}s in a new order; "
                    f"missing {missing[:5]}, not in the list {extra[:5]}"
                )
            conn.executemany(
                "UPDATE session_items SET position = ? WHERE token = ? AND kind = ? AND value = ?",
                [(pos, token, kind, conn.encode(v)) for pos, v in enumerate(wanted)],
            )
            return self._state(conn, token)

    def set_filters(self, token: str, filters: dict[str, Any]) -> SessionState:
        """Replace the session's filters with ``filters`` (a JSON-able dict, stored as JSON)."""
        if not isinstance(filters, dict):
            raise ValueError(f"filters must be a dict, got {type(filters).__name__}")
        try:
            text = json.dumps(filters, allow_nan=False, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"filters must be plain JSON values: {exc}") from exc
        if len(text) > MAX_FILTERS_CHARS:
            raise ValueError(
                f"filters too large ({len(text)} characters of JSON, at most {MAX_FILTERS_CHARS})"
            )
        with self._write(token) as conn:
            conn.execute("UPDATE sessions SET filters = ? WHERE token = ?", (text, token))
            return self._state(conn, token)

    def add_favourite(self, token: str, movie_id: int) -> SessionState:
        """Add a favourite (most recent first); adding one already there changes nothing.

        Raises ``ValueError`` beyond :data:`MAX_FAVOURITES`.
        """
        mid = _movie_id(movie_id)
        with self._write(token) as conn:
            present = conn.execute(
                "SELECT 1 FROM favourites WHERE token = ? AND movie_id = ?", (token, mid)
            ).fetchone()
            if present is None:
                count, top = conn.execute(
                    "SELECT count(*), coalesce(max(seq), 0) FROM favourites WHERE token = ?", (token,)
                ).fetchone()
                if count >= MAX_FAVOURITES:
                    raise ValueError(
                        f"a session holds at most {MAX_FAVOURITES} favourites; remove some first"
                    )
                conn.execute(
                    "INSERT INTO favourites (token, movie_id, seq, added_at) VALUES (?, ?, ?, ?)",
                    (token, mid, top + 1, time.time()),
                )
            return self._state(conn, token)

    def remove_favourite(self, token: str, movie_id: int) -> SessionState:
        """Remove a favourite (no error if it is not one)."""
        mid = _movie_id(movie_id)
        with self._write(token) as conn:
            conn.execute("DELETE FROM favourites WHERE token = ? AND movie_id = ?", (token, mid))
            return self._state(conn, token)
