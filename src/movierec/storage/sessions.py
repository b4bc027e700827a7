"""Anonymous sessions: ordered liked / disliked movies and tags, filters, favourites.

A session is identified by an unguessable token. Each list keeps the order
in which the user gave feedback: the last item is the most important one.
Every write is one ``BEGIN IMMEDIATE`` transaction, committed before the
method returns; with WAL and ``synchronous=NORMAL`` an acknowledged write
survives a crash of the process (a power loss may roll back the last few).
A lock serialises the store's use of its connection across threads, and
SQLite's write lock serialises writers in other processes.
"""

from __future__ import annotations

import json
import operator
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from movierec.storage.db import connect, migrate, transaction

__all__ = ["MAX_FAVOURITES", "MAX_ITEMS", "SessionState", "SessionStore", "UnknownSessionError"]

#: Most items in one list (e.g. a session's liked movies).
MAX_ITEMS = 200
#: Most favourites per session.
MAX_FAVOURITES = 1000
#: Longest JSON text of a session's filters.
MAX_FILTERS_CHARS = 10_000

Kind = Literal["movie", "tag"]
Feedback = Literal["like", "dislike"]
_KINDS = ("movie", "tag")
_FEEDBACK = ("like", "dislike")


_UNKNOWN = "unknown session (never created, or deleted); start a new one"  # never echo the token


class UnknownSessionError(KeyError):
    """A session token the store does not hold (expired, deleted or mistyped)."""

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0]) if self.args else "unknown session"


@dataclass(frozen=True)
class SessionState:
    """Everything a session holds.

    Attributes
    ----------
    liked, disliked:
        MovieLens movie *ids*, oldest feedback first (the last is the most important).
    liked_tags, disliked_tags:
        Tag names, same order.
    filters:
        The session's filters (JSON object, e.g. ``{"min_year": 1990}``).
    favourites:
        Movie ids, most recently added first.
    updated_at:
        Seconds since the epoch of the last write.
    """

    liked: list[int] = field(default_factory=list)
    disliked: list[int] = field(default_factory=list)
    liked_tags: list[str] = field(default_factory=list)
    disliked_tags: list[str] = field(default_factory=list)
    filters: dict[str, Any] = field(default_factory=dict)
    favourites: list[int] = field(default_factory=list)
    updated_at: float = 0.0


def _check_kind(kind: str) -> None:
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")


def _check_feedback(feedback: str) -> None:
    if feedback not in _FEEDBACK:
        raise ValueError(f"feedback must be one of {_FEEDBACK}, got {feedback!r}")


def _movie_id(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"a movie id must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise ValueError(f"a movie id must be an integer, got {value!r}") from None


def _value(kind: str, value: Any) -> int | str:
    """The stored form: ``int`` for movies, a normalised tag name (lower case, single spaces) for tags."""
    _check_kind(kind)
    if kind == "movie":
        return _movie_id(value)
    if not isinstance(value, str):
        raise ValueError(f"a tag must be a string, got {value!r}")
    tag = " ".join(value.lower().split())
    if not tag:
        raise ValueError("a tag must not be empty")
    return tag


class SessionStore:
    """Sessions kept in the SQLite database (schema v2; migrated on open).

    Parameters
    ----------
    conn_or_path:
        An open connection (from :func:`movierec.storage.db.connect`) or a
        database path; the store opens, and :meth:`close` closes, its own
        connection in the latter case.
    """

    def __init__(self, conn_or_path: sqlite3.Connection | Path | str) -> None:
        self._owns = not isinstance(conn_or_path, sqlite3.Connection)
        self.conn = conn_or_path if isinstance(conn_or_path, sqlite3.Connection) else connect(conn_or_path)
        self._lock = threading.RLock()
        with self._lock:
            migrate(self.conn)

    def close(self) -> None:
        """Close the connection if the store opened it."""
        if self._owns:
            self.conn.close()

    # ------------------------------------------------------------ helpers
    @contextmanager
    def _write(self, token: str) -> Iterator[sqlite3.Connection]:
        """One locked write transaction on an existing session, stamping ``updated_at``."""
        with self._lock, transaction(self.conn) as conn:
            self._require(token)
            conn.execute("UPDATE sessions SET updated_at = ? WHERE token = ?", (time.time(), token))
            yield conn

    def _require(self, token: str) -> None:
        if not isinstance(token, str) or (
            self.conn.execute("SELECT 1 FROM sessions WHERE token = ?", (token,)).fetchone() is None
        ):
            raise UnknownSessionError(_UNKNOWN)

    def _list(self, token: str, kind: str, feedback: str) -> list[Any]:
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT value FROM session_items WHERE token = ? AND kind = ? AND feedback = ? "
                "ORDER BY position",
                (token, kind, feedback),
            )
        ]

    def _state(self, token: str) -> SessionState:
        row = self.conn.execute(
            "SELECT filters, updated_at FROM sessions WHERE token = ?", (token,)
        ).fetchone()
        if row is None:
            raise UnknownSessionError(_UNKNOWN)
        lists: dict[tuple[str, str], list[Any]] = {(k, f): [] for k in _KINDS for f in _FEEDBACK}
        for kind, feedback, value in self.conn.execute(
            "SELECT kind, feedback, value FROM session_items WHERE token = ? ORDER BY position", (token,)
        ):
            lists[(kind, feedback)].append(value)
        favourites = [
            r[0]
            for r in self.conn.execute(
                "SELECT movie_id FROM favourites WHERE token = ? ORDER BY seq DESC", (token,)
            )
        ]
        return SessionState(
            liked=[int(v) for v in lists[("movie", "like")]],
            disliked=[int(v) for v in lists[("movie", "dislike")]],
            liked_tags=[str(v) for v in lists[("tag", "like")]],
            disliked_tags=[str(v) for v in lists[("tag", "dislike")]],
            filters=json.loads(row["filters"]),
            favourites=favourites,
            updated_at=float(row["updated_at"]),
        )

    # ------------------------------------------------------------- public
    def create(self) -> str:
        """A new empty session; returns its token (43 URL-safe characters)."""
        token = secrets.token_urlsafe(32)
        now = time.time()
        with self._lock, transaction(self.conn):
            self.conn.execute(
                "INSERT INTO sessions (token, created_at, updated_at, filters) VALUES (?, ?, ?, '{}')",
                (token, now, now),
            )
        return token

    def exists(self, token: str) -> bool:
        """Whether ``token`` names a session."""
        with self._lock:
            return isinstance(token, str) and (
                self.conn.execute("SELECT 1 FROM sessions WHERE token = ?", (token,)).fetchone() is not None
            )

    def get(self, token: str) -> SessionState:
        """The session's state. Raises :class:`UnknownSessionError`."""
        with self._lock:
            if self.conn.in_transaction:  # pragma: no cover - only if a caller left one open
                return self._state(token)
            with transaction(self.conn, immediate=False):  # one consistent snapshot
                return self._state(token)

    def delete(self, token: str) -> None:
        """Forget a session and everything in it (no error if unknown)."""
        with self._lock, transaction(self.conn):
            self.conn.execute("DELETE FROM sessions WHERE token = ?", (token,))

    def add(self, token: str, kind: Kind, value: int | str, feedback: Feedback) -> SessionState:
        """Append ``value`` to the ``kind``/``feedback`` list (the end = most important).

        An item already in the opposite list moves here; one already in this
        list stays where it is. Raises ``ValueError`` for a bad kind, feedback
        or value, or when the list already holds :data:`MAX_ITEMS` items.
        """
        _check_feedback(feedback)
        stored = _value(kind, value)
        with self._write(token) as conn:
            row = conn.execute(
                "SELECT feedback FROM session_items WHERE token = ? AND kind = ? AND value = ?",
                (token, kind, stored),
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
                    (token, kind, stored, feedback, top + 1),
                )
            return self._state(token)

    def remove(self, token: str, kind: Kind, value: int | str) -> SessionState:
        """Remove ``value`` from whichever list holds it (no error if none does)."""
        stored = _value(kind, value)
        with self._write(token) as conn:
            conn.execute(
                "DELETE FROM session_items WHERE token = ? AND kind = ? AND value = ?", (token, kind, stored)
            )
            return self._state(token)

    def reorder(self, token: str, kind: Kind, feedback: Feedback, ordered: list[Any]) -> SessionState:
        """Set the order of one list; ``ordered`` must be exactly a permutation of it.

        Raises ``ValueError`` naming the missing, extra or repeated items otherwise.
        """
        _check_feedback(feedback)
        wanted = [_value(kind, v) for v in ordered]
        with self._write(token) as conn:
            current = self._list(token, kind, feedback)
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
                [(pos, token, kind, v) for pos, v in enumerate(wanted)],
            )
            return self._state(token)

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
            return self._state(token)

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
            return self._state(token)

    def remove_favourite(self, token: str, movie_id: int) -> SessionState:
        """Remove a favourite (no error if it is not one)."""
        mid = _movie_id(movie_id)
        with self._write(token) as conn:
            conn.execute("DELETE FROM favourites WHERE token = ? AND movie_id = ?", (token, mid))
            return self._state(token)
