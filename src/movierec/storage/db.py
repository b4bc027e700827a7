"""The SQLite database: connections, versioned migrations, integrity checks.

One file holds the movie catalogue (schema v1) and the anonymous sessions
with their favourites (schema v2). The schema version lives in
``PRAGMA user_version``; :data:`MIGRATIONS` lists every step and
:func:`migrate` applies the missing ones in order, each in its own
transaction, so a database is always at exactly one known version.

Connections are opened in autocommit mode (``isolation_level=None``):
every write in this package opens its own explicit transaction with
:func:`transaction` (``BEGIN IMMEDIATE`` ... ``COMMIT``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "StorageError",
    "connect",
    "integrity_check",
    "migrate",
    "schema_version",
    "transaction",
]


class StorageError(RuntimeError):
    """The database cannot be used as it is (too new, no FTS5, corrupt)."""


_SCHEMA_V1 = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE movies (
    movie_id        INTEGER PRIMARY KEY,      -- MovieLens id
    title           TEXT NOT NULL,            -- raw: "Matrix, The (1999)"
    display_title   TEXT NOT NULL,            -- "The Matrix"
    folded_title    TEXT NOT NULL,            -- "the matrix" (lower case, no accents)
    year            INTEGER,                  -- NULL if unknown
    genres          TEXT NOT NULL DEFAULT '', -- "Action|Sci-Fi"
    imdb_id         INTEGER,
    tmdb_id         INTEGER,
    overview        TEXT,
    runtime         REAL,
    release_date    TEXT,
    vote_average    REAL,
    poster_path     TEXT,
    rating_count    INTEGER NOT NULL DEFAULT 0,
    mean_rating     REAL,
    popularity_rank INTEGER                   -- 1 = most rated
);

-- normalised title keys ("matrix", "the matrix", "matrix the") for exact and
-- prefix matching; several per movie
CREATE TABLE movie_title_keys (
    key      TEXT NOT NULL,
    movie_id INTEGER NOT NULL REFERENCES movies(movie_id) ON DELETE CASCADE,
    PRIMARY KEY (key, movie_id)
) WITHOUT ROWID;
CREATE INDEX movie_title_keys_movie ON movie_title_keys(movie_id);

CREATE TABLE tags (
    name        TEXT PRIMARY KEY,
    sources     TEXT NOT NULL,               -- comma list of user,genre,tmdb,genome
    movie_count INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE movie_tags (
    movie_id INTEGER NOT NULL REFERENCES movies(movie_id) ON DELETE CASCADE,
    tag      TEXT NOT NULL REFERENCES tags(name) ON DELETE CASCADE,
    weight   REAL NOT NULL,
    PRIMARY KEY (movie_id, tag)
) WITHOUT ROWID;
CREATE INDEX movie_tags_tag ON movie_tags(tag);

CREATE VIRTUAL TABLE movies_fts USING fts5(
    display_title, title, folded_title, overview,
    content='movies', content_rowid='movie_id',
    tokenize='unicode61 remove_diacritics 2'
);
"""

_SCHEMA_V2 = """
CREATE TABLE sessions (
    token      TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    filters    TEXT NOT NULL DEFAULT '{}'    -- JSON object
) WITHOUT ROWID;

-- liked / disliked movies and tags; no foreign key to movies on purpose: a
-- catalogue rebuild must not delete what users said
CREATE TABLE session_items (
    token    TEXT NOT NULL REFERENCES sessions(token) ON DELETE CASCADE,
    kind     TEXT NOT NULL CHECK (kind IN ('movie', 'tag')),
    value    NOT NULL,                        -- int movie id or str tag (no affinity)
    feedback TEXT NOT NULL CHECK (feedback IN ('like', 'dislike')),
    position INTEGER NOT NULL,                -- order within (token, kind, feedback)
    PRIMARY KEY (token, kind, value)
) WITHOUT ROWID;
CREATE INDEX session_items_order ON session_items(token, kind, feedback, position);

CREATE TABLE favourites (
    token    TEXT NOT NULL REFERENCES sessions(token) ON DELETE CASCADE,
    movie_id INTEGER NOT NULL,
    seq      INTEGER NOT NULL,                -- larger = more recent
    added_at REAL NOT NULL,
    PRIMARY KEY (token, movie_id)
) WITHOUT ROWID;
CREATE INDEX favourites_order ON favourites(token, seq);
"""

# the shrunk mean rating (movierec.data.ratings.shrunk_mean, weight 10 ratings, prior the mean of
# all ratings), filled in for catalogues built before it; a rebuild writes it from the data
_SCHEMA_V3 = """
ALTER TABLE movies ADD COLUMN rating REAL;
UPDATE movies SET rating = (mean_rating * rating_count + 10.0 * (
    SELECT sum(mean_rating * rating_count) / sum(rating_count) FROM movies
    WHERE mean_rating IS NOT NULL AND rating_count > 0
)) / (rating_count + 10.0)
WHERE mean_rating IS NOT NULL AND rating_count > 0;
"""

#: Every schema step: (version it brings the database to, description, SQL script).
MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "catalogue: movies, title keys, tags, movie_tags, full-text index, meta", _SCHEMA_V1),
    (2, "anonymous sessions: liked/disliked items and favourites", _SCHEMA_V2),
    (3, "catalogue: movies.rating, the shrunk mean rating the page shows and filters on", _SCHEMA_V3),
]

#: The version :func:`migrate` brings a database to.
SCHEMA_VERSION: int = MIGRATIONS[-1][0]


def connect(path: Path | str) -> sqlite3.Connection:
    """Open (creating if needed) the database at ``path``; ``":memory:"`` works too.

    The connection uses WAL journaling, ``synchronous=NORMAL`` (a committed
    transaction survives a crash of the process; only a power loss or OS crash
    may roll back the latest ones), foreign keys, a 5 s busy timeout, rows as
    :class:`sqlite3.Row`, and autocommit mode (callers open explicit
    transactions with :func:`transaction`). It may be shared between threads
    provided the callers serialise their transactions.
    """
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=5.0)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection, *, immediate: bool = True) -> Iterator[sqlite3.Connection]:
    """``BEGIN [IMMEDIATE]`` ... ``COMMIT``, or ``ROLLBACK`` if the block raises.

    ``IMMEDIATE`` takes the write lock at once, so two writers queue on the
    busy timeout instead of failing half-way with ``SQLITE_BUSY``.
    """
    conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def schema_version(conn: sqlite3.Connection) -> int:
    """The schema version of the open database (0 for an empty one)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _statements(script: str) -> list[str]:
    """Split an SQL script into complete statements (handles ``;`` inside triggers)."""
    out: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                out.append(buffer.strip())
            buffer = ""
    if buffer.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in buffer.splitlines()
    ):
        raise ValueError(f"incomplete SQL statement at the end of a migration: {buffer.strip()[:80]!r}")
    return out


def has_fts5(conn: sqlite3.Connection) -> bool:
    """Whether this SQLite library was built with the FTS5 full-text extension."""
    try:
        conn.execute("CREATE VIRTUAL TABLE temp._fts5_probe USING fts5(x)")
        conn.execute("DROP TABLE temp._fts5_probe")
    except sqlite3.OperationalError:
        return False
    return True


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Bring the database to schema version ``target`` (default: the newest).

    Each missing step runs in its own ``BEGIN IMMEDIATE`` transaction that
    also sets ``PRAGMA user_version``, so a failed step leaves the database at
    the previous version, and two processes migrating at once do each step
    only once. Returns the version reached.

    Raises
    ------
    StorageError
        The database is newer than this code, ``target`` is unknown, or this
        SQLite lacks FTS5.
    """
    known = {v for v, _, _ in MIGRATIONS}
    if target not in known and target != 0:
        raise StorageError(f"unknown schema version {target}; known versions: {sorted(known)}")
    current = schema_version(conn)
    if current > SCHEMA_VERSION:
        raise StorageError(
            f"database schema version {current} is newer than this movierec supports "
            f"({SCHEMA_VERSION}); upgrade movierec or rebuild the database"
        )
    if current < 1 <= target and not has_fts5(conn):
        raise StorageError(
            f"this Python's SQLite ({sqlite3.sqlite_version}) was built without FTS5, which the "
            "catalogue's full-text search needs; use a Python linked against an SQLite with FTS5 "
            "(Debian's and the python.org builds have it)"
        )
    for version, description, script in MIGRATIONS:
        if version > target:
            break
        with transaction(conn):
            if schema_version(conn) >= version:  # another process got here first
                continue
            try:
                for statement in _statements(script):
                    conn.execute(statement)
            except sqlite3.Error as exc:
                raise StorageError(f"migration to v{version} ({description}) failed: {exc}") from exc
            conn.execute(f"PRAGMA user_version = {int(version)}")  # PRAGMA takes no parameters
    return schema_version(conn)


def integrity_check(conn: sqlite3.Connection) -> bool:
    """Whether the database passes SQLite's integrity, foreign-key and FTS index checks.

    A database too damaged to be read also gives ``False`` rather than an exception.
    """
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
        if [tuple(r) for r in rows] != [("ok",)]:
            return False
        if conn.execute("PRAGMA foreign_key_check").fetchall():
            return False
        has_fts = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'movies_fts'"
        ).fetchone()
        if has_fts:
            conn.execute("INSERT INTO movies_fts(movies_fts, rank) VALUES ('integrity-check', 1)")
    except sqlite3.DatabaseError:
        return False
    return True
