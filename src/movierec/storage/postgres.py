"""PostgreSQL for the shared state: anonymous sessions and their favourites.

Several service workers, on one machine or several, can share one
PostgreSQL database; the movie catalogue stays in each worker's SQLite file
(read-only while serving). Needs ``psycopg`` 3 (``pip install
'psycopg[binary]'``), imported only when a ``postgresql://`` URL is used.

The schema mirrors the SQLite one step for step: :data:`MIGRATIONS` has the
same version numbers as :data:`movierec.storage.db.MIGRATIONS` (version 1, the
catalogue, has nothing to create here). The applied versions are rows of the
``schema_version`` table; :func:`migrate` applies each missing step in its own
transaction under an advisory lock, so workers starting together migrate
once and a failed step leaves the database at the previous version.

Connections are in autocommit mode; :class:`PostgresBackend` opens explicit
transactions: ``READ COMMITTED`` writes that first lock the session's row
(``UPDATE sessions ... WHERE token = ...``), so concurrent writes to one
session (a reorder racing an append, in two workers) run one after the
other and each sees the other's result; reads run in one ``REPEATABLE READ
READ ONLY`` snapshot.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from movierec.storage.db import StorageError

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "PostgresBackend",
    "connect",
    "integrity_check",
    "is_postgres_url",
    "migrate",
    "schema_version",
]

_SCHEMA_V2 = """
CREATE TABLE sessions (
    token      TEXT PRIMARY KEY,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    filters    TEXT NOT NULL DEFAULT '{}'     -- JSON object, as text (kept byte for byte)
);

-- liked / disliked movies and tags; no foreign key to movies on purpose (the
-- catalogue lives elsewhere); a movie id is stored as its decimal text
CREATE TABLE session_items (
    token    TEXT NOT NULL REFERENCES sessions(token) ON DELETE CASCADE,
    kind     TEXT NOT NULL CHECK (kind IN ('movie', 'tag')),
    value    TEXT NOT NULL,
    feedback TEXT NOT NULL CHECK (feedback IN ('like', 'dislike')),
    position INTEGER NOT NULL,                -- order within (token, kind, feedback)
    PRIMARY KEY (token, kind, value)
);
CREATE INDEX session_items_order ON session_items(token, kind, feedback, position);

CREATE TABLE favourites (
    token    TEXT NOT NULL REFERENCES sessions(token) ON DELETE CASCADE,
    movie_id BIGINT NOT NULL,
    seq      BIGINT NOT NULL,                 -- larger = more recent
    added_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (token, movie_id)
);
CREATE INDEX favourites_order ON favourites(token, seq);
"""

#: Every schema step, numbered as in :data:`movierec.storage.db.MIGRATIONS`:
#: (version, description, SQL script; statements separated by ``;`` at line ends).
MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "catalogue: kept in SQLite; nothing in PostgreSQL", ""),
    (2, "anonymous sessions: liked/disliked items and favourites", _SCHEMA_V2),
    (3, "catalogue: kept in SQLite; nothing in PostgreSQL", ""),
]

#: The version :func:`migrate` brings a database to.
SCHEMA_VERSION: int = MIGRATIONS[-1][0]

#: Key of the transaction-level advisory lock that serialises migrations.
_MIGRATION_LOCK = 0x6D6F7669  # "movi"

_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")


def is_postgres_url(url: str) -> bool:
    """Whether ``url`` names a PostgreSQL database (``postgresql://``, ``postgres://``)."""
    return url.strip().lower().startswith(_SCHEMES)


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise StorageError(
            "a postgresql:// database URL needs psycopg 3: pip install 'psycopg[binary]'"
        ) from exc
    return psycopg


def connect(url: str, *, connect_timeout: float = 10.0) -> Any:
    """Open an autocommit ``psycopg.Connection`` to ``url`` (``postgresql://user@host:5432/db``).

    ``postgresql+psycopg://`` (SQLAlchemy's spelling) is accepted too.

    Raises
    ------
    StorageError
        ``url`` is not a PostgreSQL URL, psycopg is missing, or the server
        cannot be reached (the message names the host, never the password).
    """
    if not is_postgres_url(url):
        raise StorageError(f"not a PostgreSQL URL (postgresql://user@host:port/db): {_redact(url)}")
    psycopg = _psycopg()
    dsn = re.sub(r"^postgresql\+psycopg://", "postgresql://", url.strip(), flags=re.IGNORECASE)
    try:
        return psycopg.connect(
            dsn, autocommit=True, connect_timeout=max(1, round(connect_timeout)), application_name="movierec"
        )
    except psycopg.OperationalError as exc:
        raise StorageError(f"cannot connect to PostgreSQL at {_redact(url)}: {exc}".strip()) from exc


def _redact(url: str) -> str:
    """``url`` without its password."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


@contextmanager
def _transaction(conn: Any, begin: str = "BEGIN") -> Iterator[Any]:
    conn.execute(begin)
    try:
        yield conn
    except BaseException:
        if not conn.closed:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _has_version_table(conn: Any) -> bool:
    return conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()[0]


def schema_version(conn: Any) -> int:
    """The schema version of the database (0 for an empty one)."""
    if not _has_version_table(conn):
        return 0
    return int(conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])


def _statements(script: str) -> list[str]:
    """Split a migration script at ``;`` ending a line (our scripts have no functions or literals with ``;``)."""
    body = "\n".join(ln for ln in script.splitlines() if not ln.strip().startswith("--"))
    return [s.strip() for s in re.split(r";\s*(?:\n|$)", body) if s.strip()]


def migrate(conn: Any, target: int = SCHEMA_VERSION) -> int:
    """Bring the database to schema version ``target`` (default: the newest); returns the version reached.

    Each missing step runs in its own transaction holding an advisory lock
    and records itself in ``schema_version``: a failed step leaves the
    database at the previous version, and concurrent workers do each step once.

    Raises
    ------
    StorageError
        The database is newer than this code, ``target`` is unknown, or a step failed.
    """
    known = {v for v, _, _ in MIGRATIONS}
    if target not in known and target != 0:
        raise StorageError(f"unknown schema version {target}; known versions: {sorted(known)}")
    with _transaction(conn):
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version INTEGER PRIMARY KEY, description TEXT NOT NULL,"
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
    current = schema_version(conn)
    if current > SCHEMA_VERSION:
        raise StorageError(
            f"database schema version {current} is newer than this movierec supports "
            f"({SCHEMA_VERSION}); upgrade movierec"
        )
    psycopg = _psycopg()
    for version, description, script in MIGRATIONS:
        if version > target:
            break
        with _transaction(conn):
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            if schema_version(conn) >= version:  # another worker got here first
                continue
            try:
                for statement in _statements(script):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_version (version, description) VALUES (%s, %s)",
                    (version, description),
                )
            except psycopg.Error as exc:
                raise StorageError(f"migration to v{version} ({description}) failed: {exc}") from exc
    return schema_version(conn)


def integrity_check(conn: Any) -> bool:
    """Whether the sessions tables are at the newest version and consistent.

    Checks that no item or favourite belongs to a missing session (foreign
    keys forbid it; a damaged index could hide it) and that no list holds
    two items at one position. A database that cannot be read gives ``False``.
    """
    psycopg = _psycopg()
    try:
        if schema_version(conn) != SCHEMA_VERSION:
            return False
        orphans = conn.execute(
            "SELECT (SELECT count(*) FROM session_items i WHERE NOT EXISTS "
            "        (SELECT 1 FROM sessions s WHERE s.token = i.token))"
            "     + (SELECT count(*) FROM favourites f WHERE NOT EXISTS "
            "        (SELECT 1 FROM sessions s WHERE s.token = f.token))"
        ).fetchone()[0]
        clashes = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM session_items "
            "GROUP BY token, kind, feedback, position HAVING count(*) > 1) AS c"
        ).fetchone()[0]
    except psycopg.Error:
        return False
    return orphans == 0 and clashes == 0


class PostgresBackend:
    """The session store's connection adapter for PostgreSQL (see :mod:`movierec.storage.sessions`).

    SQL is written with ``?`` placeholders (as for SQLite) and translated to
    ``%s``. Values of ``session_items.value`` are bound as text. A connection
    found closed or broken (server restart, network cut) when a transaction
    begins is reopened once, before anything was sent that could have had an
    effect.

    Parameters
    ----------
    url:
        ``postgresql://user[:password]@host[:port]/dbname[?options]``.
    """

    name = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url
        self._wait_s = 10.0
        self.conn = connect(url)
        self._sql: dict[str, str] = {}

    def close(self) -> None:
        self.conn.close()

    def migrate(self) -> int:
        return migrate(self.conn)

    def integrity_check(self) -> bool:
        return integrity_check(self.conn)

    def _translate(self, sql: str) -> str:
        out = self._sql.get(sql)
        if out is None:
            out = self._sql[sql] = sql.replace("%", "%%").replace("?", "%s")
        return out

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self.conn.execute(self._translate(sql), params)

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(self._translate(sql), rows)

    @staticmethod
    def encode(value: int | str) -> str:
        """The bound form of a ``session_items.value`` (text)."""
        return str(value)

    @property
    def in_transaction(self) -> bool:
        psycopg = _psycopg()
        return bool(self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE)

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[None]:
        """A ``READ COMMITTED`` write or a ``REPEATABLE READ READ ONLY`` snapshot read."""
        begin = (
            "BEGIN ISOLATION LEVEL READ COMMITTED"
            if write
            else "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
        )
        psycopg = _psycopg()
        self.ensure_open()
        try:
            self.conn.execute(begin)
        except psycopg.OperationalError:
            if not (self.conn.closed or self.conn.broken):
                raise
            self._reconnect()
            self.conn.execute(begin)
        try:
            yield
        except BaseException:
            if not (self.conn.closed or self.conn.broken):
                self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _reconnect(self) -> None:
        try:
            self.conn.close()
        finally:
            self.conn = connect(self.url, connect_timeout=self._wait_s)

    def reader(self) -> PostgresBackend:
        """A second connection to the same database, for reads."""
        return PostgresBackend(self.url)

    def ensure_open(self) -> None:
        """Reopen a connection known to be closed or broken (a server restart seen by an earlier call)."""
        if self.conn.closed or self.conn.broken:
            self._reconnect()

    def set_wait(self, seconds: float) -> None:
        """Bound the next reconnection's wait (row locks are held only for a session's own writes)."""
        self._wait_s = max(1.0, seconds)

    def is_unavailable(self, exc: BaseException) -> bool:
        """A lost or refused connection (``OperationalError``, or :class:`StorageError` from a reconnect)."""
        return isinstance(exc, (_psycopg().OperationalError, StorageError))
