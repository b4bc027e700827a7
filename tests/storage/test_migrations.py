"""Tests for movierec.storage.db and movierec.storage.postgres: connection settings, versioned
migrations, integrity checks. The PostgreSQL ones use the throwaway server of ``tests/pg.py``.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from movierec.data.dataset import Dataset
from movierec.storage import db, postgres
from movierec.storage.catalog import build_catalog, get_movie, search_movies
from movierec.storage.db import (
    MIGRATIONS,
    SCHEMA_VERSION,
    StorageError,
    connect,
    integrity_check,
    migrate,
    schema_version,
)
from movierec.storage.sessions import SessionStore
from pg import pg_url_fixture, postgres_fixture  # noqa: F401  (fixtures `pg_url`, `postgres`)


def tiny() -> Dataset:
    movies = pd.DataFrame(
        {"movieId": [1, 2], "title": ["Matrix, The (1999)", "Heat (1995)"], "genres": ["Sci-Fi", "Crime"]}
    )
    ratings = pd.DataFrame(
        {"userId": [1, 1, 2], "movieId": [1, 2, 1], "rating": [5.0, 3.0, 4.0], "timestamp": [1, 2, 3]}
    )
    return Dataset.build("tiny", ratings, movies)


def tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_connection_settings(tmp_path: Path) -> None:
    conn = connect(tmp_path / "sub" / "x.sqlite3")  # creates the folder
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert conn.row_factory is sqlite3.Row
    assert not conn.in_transaction


def test_versions_are_consecutive() -> None:
    assert [v for v, _, _ in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1))
    assert SCHEMA_VERSION == 3


def test_fresh_database_gets_newest_schema(tmp_path: Path) -> None:
    conn = connect(tmp_path / "x.sqlite3")
    assert schema_version(conn) == 0
    assert migrate(conn) == SCHEMA_VERSION
    assert {
        "movies",
        "tags",
        "movie_tags",
        "meta",
        "movies_fts",
        "sessions",
        "session_items",
        "favourites",
    } <= tables(conn)
    assert migrate(conn) == SCHEMA_VERSION  # idempotent
    assert integrity_check(conn)


def test_v1_to_newest_keeps_the_catalogue(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    conn = connect(path)
    assert migrate(conn, target=1) == 1
    assert "sessions" not in tables(conn)
    # fill a v1 database by hand, as a v1 release of movierec would have
    conn.execute(
        "INSERT INTO movies (movie_id, title, display_title, folded_title, year, rating_count) "
        "VALUES (1, 'Matrix, The (1999)', 'The Matrix', 'the matrix', 1999, 2)"
    )
    conn.execute("INSERT INTO movie_title_keys (key, movie_id) VALUES ('matrix', 1)")
    conn.execute("INSERT INTO movies_fts(movies_fts) VALUES ('rebuild')")
    conn.close()

    conn = connect(path)
    assert schema_version(conn) == 1
    assert migrate(conn) == SCHEMA_VERSION
    assert "sessions" in tables(conn)
    assert get_movie(conn, 1)["display_title"] == "The Matrix"  # type: ignore[index]
    assert [m["movie_id"] for m in search_movies(conn, "matrix")] == [1]
    store = SessionStore(conn)
    token = store.create()
    assert store.add(token, "movie", 1, "like").liked == [1]
    assert integrity_check(conn)


def test_build_catalog_migrates_an_empty_database(tmp_path: Path) -> None:
    conn = connect(tmp_path / "x.sqlite3")
    build_catalog(tiny(), conn)
    assert schema_version(conn) == SCHEMA_VERSION


def test_newer_database_is_refused(tmp_path: Path) -> None:
    conn = connect(tmp_path / "x.sqlite3")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StorageError, match="newer"):
        migrate(conn)
    with pytest.raises(StorageError, match="unknown schema version"):
        migrate(connect(tmp_path / "y.sqlite3"), target=99)


def test_failed_step_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = (4, "broken", "CREATE TABLE half_done (a INTEGER);\nSELECT * FROM no_such_table;\n")
    monkeypatch.setattr(db, "MIGRATIONS", [*MIGRATIONS, bad])
    monkeypatch.setattr(db, "SCHEMA_VERSION", 4)
    conn = connect(tmp_path / "x.sqlite3")
    with pytest.raises(StorageError, match="v4"):
        migrate(conn, target=4)
    assert schema_version(conn) == 3  # the good steps stay, the broken one left nothing behind
    assert "half_done" not in tables(conn)
    assert not conn.in_transaction


def test_statement_splitter_handles_triggers() -> None:
    script = (
        "CREATE TABLE a (x);\n"
        "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n  UPDATE a SET x = 1;\n  UPDATE a SET x = 2;\nEND;\n"
        "-- a comment\n"
    )
    assert len(db._statements(script)) == 2


def test_integrity_check_finds_a_stale_full_text_index(tmp_path: Path) -> None:
    conn = connect(tmp_path / "x.sqlite3")
    build_catalog(tiny(), conn)
    assert integrity_check(conn)
    # change a movie behind the back of the external-content FTS index
    conn.execute("UPDATE movies SET display_title = 'Something else' WHERE movie_id = 1")
    assert not integrity_check(conn)


def test_integrity_check_on_a_damaged_file(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    conn = connect(path)
    build_catalog(tiny(), conn)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(path.read_bytes())
    page = 4096
    for p in range(1, len(data) // page):  # keep the header page, scribble over the rest
        data[p * page + 8 : p * page + 200] = b"\xa5" * 192
    path.write_bytes(bytes(data))
    assert not integrity_check(connect(path))


# ------------------------------------------------------------------ PostgreSQL
SESSION_TABLES = ("sessions", "session_items", "favourites")


def test_postgres_versions_follow_sqlite() -> None:
    """Every SQLite step has its PostgreSQL counterpart under the same number (v1, the catalogue, is empty)."""
    assert [v for v, _, _ in postgres.MIGRATIONS] == [v for v, _, _ in MIGRATIONS]
    assert postgres.SCHEMA_VERSION == SCHEMA_VERSION
    assert postgres.MIGRATIONS[0][2] == ""


def test_postgres_fresh_database_gets_the_same_session_schema(pg_url: str, tmp_path: Path) -> None:
    conn = postgres.connect(pg_url)
    assert postgres.schema_version(conn) == 0
    assert postgres.migrate(conn) == SCHEMA_VERSION
    assert postgres.migrate(conn) == SCHEMA_VERSION  # idempotent
    rows = conn.execute("SELECT version, description FROM schema_version ORDER BY version").fetchall()
    assert rows == [(v, d) for v, d, _ in postgres.MIGRATIONS]
    lite = connect(tmp_path / "x.sqlite3")
    migrate(lite)
    for table in SESSION_TABLES:  # same columns, in the same order
        pg_columns = [
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
                (table,),
            )
        ]
        assert pg_columns == [r[1] for r in lite.execute(f"PRAGMA table_info({table})")], table
    assert postgres.integrity_check(conn)
    conn.close()


def test_postgres_newer_database_is_refused(pg_url: str) -> None:
    conn = postgres.connect(pg_url)
    postgres.migrate(conn)
    conn.execute(
        "INSERT INTO schema_version (version, description) VALUES (%s, 'future')", (SCHEMA_VERSION + 1,)
    )
    with pytest.raises(StorageError, match="newer"):
        postgres.migrate(conn)
    with pytest.raises(StorageError, match="newer"):
        SessionStore(pg_url)
    assert not postgres.integrity_check(conn)
    with pytest.raises(StorageError, match="unknown schema version"):
        postgres.migrate(conn, target=99)
    conn.close()


def test_postgres_failed_step_rolls_back(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = (4, "broken", "CREATE TABLE half_done (a INTEGER);\nSELECT * FROM no_such_table;\n")
    monkeypatch.setattr(postgres, "MIGRATIONS", [*postgres.MIGRATIONS, bad])
    monkeypatch.setattr(postgres, "SCHEMA_VERSION", 4)
    conn = postgres.connect(pg_url)
    with pytest.raises(StorageError, match="v4"):
        postgres.migrate(conn, target=4)
    assert postgres.schema_version(conn) == 3  # the good steps stay, the broken one left nothing behind
    assert conn.execute("SELECT to_regclass('half_done')").fetchone() == (None,)
    assert conn.execute("SELECT to_regclass('sessions')").fetchone() != (None,)
    conn.close()


def test_postgres_workers_starting_together_migrate_once(pg_url: str) -> None:
    errors: list[BaseException] = []
    stores: list[SessionStore] = []

    def start() -> None:
        try:
            stores.append(SessionStore(pg_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not errors, errors
    assert len(stores) == 4
    rows = stores[0].conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
    assert rows == [(v,) for v in range(1, SCHEMA_VERSION + 1)]
    for s in stores:
        s.close()


def test_postgres_integrity_check_finds_clashing_positions(pg_url: str) -> None:
    store = SessionStore(pg_url)
    token = store.create()
    store.add(token, "movie", 1, "like")
    store.add(token, "movie", 2, "like")
    assert store.integrity_check()
    store.conn.execute("UPDATE session_items SET position = 0 WHERE token = %s", (token,))
    assert not store.integrity_check()
    store.close()


def test_postgres_statement_splitter() -> None:
    script = "-- a comment; with a semicolon\nCREATE TABLE a (x INTEGER);\nCREATE INDEX a_x ON a(x);\n"
    assert postgres._statements(script) == ["CREATE TABLE a (x INTEGER)", "CREATE INDEX a_x ON a(x)"]


def test_v3_fills_the_shrunk_rating_of_an_older_catalogue(tmp_path: Path) -> None:
    """A catalogue built before ``movies.rating`` gets it from its means and counts, as
    :func:`movierec.data.ratings.shrunk_mean` computes it for a rebuild."""
    from movierec.data.ratings import shrunk_mean

    conn = connect(tmp_path / "old.sqlite3")
    migrate(conn, target=2)
    rows = [(1, 5.0, 2), (2, 3.0, 8), (3, None, 0)]
    conn.executemany(
        "INSERT INTO movies (movie_id, title, display_title, folded_title, mean_rating, rating_count) "
        "VALUES (?, 't', 't', 't', ?, ?)",
        rows,
    )
    assert migrate(conn) == 3
    got = [r[0] for r in conn.execute("SELECT rating FROM movies ORDER BY movie_id")]
    prior = (5.0 * 2 + 3.0 * 8) / 10
    want = shrunk_mean(np.array([10.0, 24.0, 0.0]), np.array([2, 8, 0]), prior)
    assert got[:2] == pytest.approx(want[:2].tolist()) and got[2] is None
    assert got[0] == pytest.approx((10.0 + 10 * 3.4) / 12)
