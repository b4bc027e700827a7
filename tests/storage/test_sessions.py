"""Tests for movierec.storage.sessions: order, moves, reorder, limits, durability, threads.

Every test runs against both backends: SQLite (a file in ``tmp_path``) and
PostgreSQL (a fresh schema on the throwaway server of ``tests/pg.py``; skipped
without Debian's ``postgresql`` package, except under ``CI=true``).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from movierec.storage import backend, sessions
from movierec.storage.db import connect
from movierec.storage.session_state import SessionState
from movierec.storage.sessions import SessionStore, UnknownSessionError
from pg import pg_url_fixture, postgres_fixture  # noqa: F401  (fixtures `pg_url`, `postgres`)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a test's sessions live: an SQLite path, or a PostgreSQL URL (fresh schema)."""
    if request.param == "sqlite":
        return str(tmp_path / "sessions.sqlite3")
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(url: str) -> Iterator[SessionStore]:
    s = SessionStore(url)
    yield s
    s.close()


def query(store: SessionStore, sql: str, params: tuple[object, ...] = ()) -> tuple[object, ...]:
    """The first row of ``sql`` (``?`` placeholders) on the store's own connection."""
    if store.backend == "postgresql":
        sql = sql.replace("?", "%s")
    return tuple(store.conn.execute(sql, params).fetchone())


def test_backend_names(store: SessionStore, url: str) -> None:
    assert store.backend == ("postgresql" if url.startswith("postgresql://") else "sqlite")


def test_create_and_empty_state(store: SessionStore) -> None:
    token = store.create()
    assert len(token) == 43 and store.exists(token)
    assert store.create() != token
    state = store.get(token)
    assert state == SessionState(updated_at=state.updated_at)
    assert state.updated_at > 0


def test_unknown_session(store: SessionStore) -> None:
    assert not store.exists("nope")
    with pytest.raises(UnknownSessionError):
        store.get("nope")
    with pytest.raises(KeyError):  # a KeyError subclass, for callers that map it to 404
        store.add("nope", "movie", 1, "like")
    with pytest.raises(UnknownSessionError):
        store.add_favourite("nope", 1)
    with pytest.raises(UnknownSessionError):
        store.set_filters("nope", {})


def test_order_no_duplicates_and_moves(store: SessionStore) -> None:
    t = store.create()
    for mid in (10, 20, 30):
        store.add(t, "movie", mid, "like")
    assert store.get(t).liked == [10, 20, 30]
    assert store.add(t, "movie", 20, "like").liked == [10, 20, 30]  # already there: no duplicate, no move
    state = store.add(t, "movie", 20, "dislike")  # moves to the other list
    assert state.liked == [10, 30] and state.disliked == [20]
    state = store.add(t, "movie", 20, "like")  # back, appended at the end (most important)
    assert state.liked == [10, 30, 20] and state.disliked == []
    state = store.remove(t, "movie", 10)
    assert state.liked == [30, 20]
    assert store.remove(t, "movie", 999).liked == [30, 20]  # removing what is absent is a no-op


def test_values_are_typed_and_normalised(store: SessionStore) -> None:
    t = store.create()
    store.add(t, "movie", np.int64(7), "like")
    store.add(t, "movie", "8", "like")
    store.add(t, "tag", "  Dark   Comedy ", "like")
    store.add(t, "tag", "1995", "dislike")  # a tag that looks like a number stays a string
    state = store.get(t)
    assert state.liked == [7, 8] and all(type(v) is int for v in state.liked)
    assert state.liked_tags == ["dark comedy"]
    assert state.disliked_tags == ["1995"]
    # a movie id and a tag with the same text do not collide
    store.add(t, "movie", 1995, "like")
    assert store.get(t).disliked_tags == ["1995"]


@pytest.mark.parametrize(
    ("kind", "value", "feedback"),
    [
        ("film", 1, "like"),
        ("movie", 1, "love"),
        ("movie", "abc", "like"),
        ("movie", 1.5, "like"),
        ("movie", True, "like"),
        ("movie", None, "like"),
        ("tag", "   ", "like"),
        ("tag", 5, "like"),
    ],
)
def test_bad_input(store: SessionStore, kind: str, value: object, feedback: str) -> None:
    t = store.create()
    with pytest.raises(ValueError):
        store.add(t, kind, value, feedback)  # type: ignore[arg-type]
    assert store.get(t).liked == []


def test_reorder(store: SessionStore) -> None:
    t = store.create()
    for mid in (1, 2, 3):
        store.add(t, "movie", mid, "like")
    assert store.reorder(t, "movie", "like", [3, 1, 2]).liked == [3, 1, 2]
    assert store.add(t, "movie", 4, "like").liked == [3, 1, 2, 4]
    for bad, words in (
        ([3, 1, 2], "missing [4]"),
        ([3, 1, 2, 4, 5], "not in the list [5]"),
        ([3, 1, 2, 2], "repeated"),
        ([3, 1, 2, 2, 4], "repeated"),
    ):
        with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
            store.reorder(t, "movie", "like", bad)
    assert store.get(t).liked == [3, 1, 2, 4]  # a failed reorder changes nothing
    store.add(t, "tag", "b", "dislike")
    store.add(t, "tag", "a", "dislike")
    assert store.reorder(t, "tag", "dislike", ["A", "b"]).disliked_tags == ["a", "b"]


def test_list_limit(store: SessionStore, monkeypatch: pytest.MonkeyPatch) -> None:
    assert sessions.MAX_ITEMS == 200 and sessions.MAX_FAVOURITES == 1000
    monkeypatch.setattr(sessions, "MAX_ITEMS", 3)
    t = store.create()
    for mid in (1, 2, 3):
        store.add(t, "movie", mid, "like")
    with pytest.raises(ValueError, match="at most 3"):
        store.add(t, "movie", 4, "like")
    store.add(t, "movie", 3, "like")  # already there: not a new item
    store.add(t, "movie", 4, "dislike")  # the other list has its own limit
    with pytest.raises(ValueError, match="at most 3"):
        store.add(t, "movie", 4, "like")  # a move into a full list is refused too ...
    assert store.get(t).disliked == [4]  # ... and leaves the item where it was


def test_favourites(store: SessionStore, monkeypatch: pytest.MonkeyPatch) -> None:
    t = store.create()
    store.add_favourite(t, 5)
    store.add_favourite(t, 9)
    assert store.add_favourite(t, 5).favourites == [9, 5]  # most recent first; re-adding is a no-op
    assert store.remove_favourite(t, 9).favourites == [5]
    assert store.remove_favourite(t, 123).favourites == [5]
    monkeypatch.setattr(sessions, "MAX_FAVOURITES", 2)
    store.add_favourite(t, 6)
    with pytest.raises(ValueError, match="at most 2 favourites"):
        store.add_favourite(t, 7)


def test_filters(store: SessionStore) -> None:
    t = store.create()
    filters = {"min_year": 1990, "genres": ["Comedy"], "min_rating": 3.5}
    assert store.set_filters(t, filters).filters == filters
    assert store.get(t).filters == filters
    for bad in ({"x": {1, 2}}, {"x": float("nan")}, ["not", "a", "dict"], {"x": "y" * 20_000}):
        with pytest.raises(ValueError):
            store.set_filters(t, bad)  # type: ignore[arg-type]
    assert store.get(t).filters == filters


def test_updated_at_moves(store: SessionStore) -> None:
    t = store.create()
    before = store.get(t).updated_at
    after = store.add(t, "movie", 1, "like").updated_at
    assert after >= before
    assert store.get(t).updated_at == after


def test_persistence_across_reconnect(url: str) -> None:
    first = SessionStore(url)
    t = first.create()
    first.add(t, "movie", 1, "like")
    first.add(t, "tag", "noir", "dislike")
    first.add_favourite(t, 3)
    first.add_favourite(t, 4)
    first.close()
    again = SessionStore(url if url.startswith("postgresql://") else connect(url))
    state = again.get(t)
    assert (state.liked, state.disliked_tags, state.favourites) == ([1], ["noir"], [4, 3])
    again.close()


def test_delete(store: SessionStore) -> None:
    t = store.create()
    store.add(t, "movie", 1, "like")
    store.add_favourite(t, 1)
    store.delete(t)
    assert not store.exists(t)
    assert query(store, "SELECT count(*) FROM session_items") == (0,)
    assert query(store, "SELECT count(*) FROM favourites") == (0,)
    store.delete(t)  # again: no error
    store.delete(123)  # type: ignore[arg-type]


def test_acknowledged_write_survives_kill_9(url: str) -> None:
    """A write that returned is stored even if the process dies right after (SIGKILL)."""
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        from movierec.storage.sessions import SessionStore
        store = SessionStore({url!r})
        token = store.create()
        store.add(token, "movie", 42, "like")
        store.add_favourite(token, 7)
        sys.stdout.write(token + "\\n")
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    token = proc.stdout.strip()
    store = SessionStore(url)
    state = store.get(token)
    assert state.liked == [42] and state.favourites == [7]
    assert store.integrity_check()
    store.close()


def _hammer(store: SessionStore, token: str, base: int, n: int, errors: list[BaseException]) -> None:
    try:
        for i in range(n):
            store.add(token, "movie", base + i, "like")
            if i % 5 == 4:  # reorders interleaved with other threads' appends
                current = store.get(token).liked
                with contextlib.suppress(ValueError):  # another thread appended in between: refused
                    store.reorder(token, "movie", "like", current)
            store.add_favourite(token, base + i)
    except BaseException as exc:  # surfaced by the main thread
        errors.append(exc)


@pytest.mark.parametrize("shared", [True, False], ids=["one-connection", "one-connection-per-thread"])
def test_concurrent_writers_keep_consistent_state(url: str, shared: bool) -> None:
    main = SessionStore(url)
    token = main.create()
    n_threads, n = 4, 15
    stores = [main if shared else SessionStore(url) for _ in range(n_threads)]
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=_hammer, args=(stores[k], token, 1000 * (k + 1), n, errors))
        for k in range(n_threads)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not errors, errors
    state = main.get(token)
    assert len(state.liked) == n_threads * n == len(set(state.liked))
    assert len(state.favourites) == n_threads * n == len(set(state.favourites))
    for k in range(n_threads):  # each thread's own appends keep their order
        own = [m for m in state.liked if 1000 * (k + 1) <= m < 1000 * (k + 2)]
        assert own == sorted(own)
        fav = [m for m in state.favourites if 1000 * (k + 1) <= m < 1000 * (k + 2)]
        assert fav == sorted(fav, reverse=True)
    positions = query(
        main, "SELECT count(*), count(DISTINCT position) FROM session_items WHERE token = ?", (token,)
    )
    assert positions[0] == positions[1]
    assert main.integrity_check()
    for s in {id(s): s for s in stores}.values():
        s.close()


# ----------------------------------------------------------- several workers (PostgreSQL)
def test_two_stores_share_state_without_stickiness(pg_url: str) -> None:
    """Two workers (one store each) on one PostgreSQL database see each other's writes at once."""
    a, b = SessionStore(pg_url), SessionStore(pg_url)
    token = a.create()
    assert b.exists(token)
    b.add(token, "movie", 1, "like")
    a.add(token, "movie", 2, "like")
    b.add_favourite(token, 9)
    assert a.reorder(token, "movie", "like", [2, 1]).liked == [2, 1]
    state = b.get(token)
    assert (state.liked, state.favourites) == ([2, 1], [9])
    a.delete(token)
    with pytest.raises(UnknownSessionError):
        b.add(token, "movie", 3, "like")
    a.close()
    b.close()


def test_a_write_waits_for_the_session_lock_and_sees_the_other_write(pg_url: str) -> None:
    """A reorder that races an append in another worker runs after it, and so refuses the stale order."""
    import psycopg

    store = SessionStore(pg_url)
    token = store.create()
    for mid in (1, 2):
        store.add(token, "movie", mid, "like")
    other = psycopg.connect(pg_url, autocommit=True)  # the other worker, mid-append
    other.execute("BEGIN")
    other.execute("UPDATE sessions SET updated_at = updated_at WHERE token = %s", (token,))
    outcome: list[BaseException | list[int]] = []

    def reorder() -> None:
        try:
            outcome.append(store.reorder(token, "movie", "like", [2, 1]).liked)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=reorder)
    thread.start()
    thread.join(timeout=0.5)
    assert thread.is_alive() and not outcome  # blocked on the session's row lock
    other.execute(
        "INSERT INTO session_items (token, kind, value, feedback, position) VALUES (%s, 'movie', '3', 'like', 2)",
        (token,),
    )
    other.execute("COMMIT")
    thread.join(timeout=10)
    assert len(outcome) == 1 and isinstance(outcome[0], ValueError)
    assert "missing [3]" in str(outcome[0])
    assert store.get(token).liked == [1, 2, 3]  # the refused reorder changed nothing
    other.close()
    store.close()


def test_reconnects_after_the_server_drops_the_connection(pg_url: str) -> None:
    import psycopg

    store = SessionStore(pg_url)
    token = store.create()
    pid = store.conn.info.backend_pid
    with psycopg.connect(pg_url, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
    assert store.add(token, "movie", 5, "like").liked == [5]  # a fresh connection, transparently
    assert store.conn.info.backend_pid != pid
    store.close()


# ------------------------------------------------------------------ URLs
def test_sqlite_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert backend.sqlite_url_path("sqlite:///rel/x.db") == "rel/x.db"
    assert backend.sqlite_url_path("sqlite:////abs/x.db") == "/abs/x.db"
    assert backend.sqlite_url_path("sqlite://") == ":memory:"
    assert backend.sqlite_url_path("sqlite:///:memory:") == ":memory:"
    for bad in ("sqlite:/x.db", "sqlite://host/x.db", "file:///x.db"):
        with pytest.raises(ValueError):
            backend.sqlite_url_path(bad)
    monkeypatch.chdir(tmp_path)
    store = SessionStore("sqlite:///sub/s.sqlite3")
    assert store.backend == "sqlite" and (tmp_path / "sub" / "s.sqlite3").exists()
    store.close()
    with pytest.raises(ValueError, match="unsupported database URL scheme"):
        SessionStore("mysql://u@h/db")


def test_unreachable_postgres_names_the_host_not_the_password() -> None:
    pytest.importorskip("psycopg")
    from movierec.storage.db import StorageError

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(StorageError, match="cannot connect to PostgreSQL") as info:
        SessionStore(f"postgresql://u:s3cret@127.0.0.1:{port}/db?connect_timeout=2")
    assert "s3cret" not in str(info.value) and f"127.0.0.1:{port}" in str(info.value)


# ------------------------------------------------------------- expiry
def test_expire_keeps_what_is_worth_keeping(store: SessionStore) -> None:
    empty, filters_only, liked, saved = (store.create() for _ in range(4))
    store.set_filters(filters_only, {"year_min": 1990})
    store.add(liked, "movie", 1, "like")
    store.add_favourite(saved, 2)
    day = 86400.0
    now = max(store.get(t).updated_at for t in (empty, filters_only, liked, saved))
    # a day later nothing has gone
    assert store.expire(empty_after_s=30 * day, idle_after_s=365 * day, now=now + day) == 0
    # 31 days later the sessions holding nothing worth keeping have gone (in batches of one)
    assert store.expire(empty_after_s=30 * day, idle_after_s=365 * day, now=now + 31 * day, batch=1) == 2
    assert not store.exists(empty) and not store.exists(filters_only)
    assert store.get(liked).liked == [1] and store.get(saved).favourites == [2]
    # a write renews a session: the clock starts again
    assert store.expire(empty_after_s=30 * day, idle_after_s=365 * day, now=now + 364 * day) == 0
    assert store.expire(empty_after_s=30 * day, idle_after_s=365 * day, now=now + 366 * day) == 2
    assert store.count() == 0
    assert query(store, "SELECT count(*) FROM session_items")[0] == 0  # cascaded
    assert query(store, "SELECT count(*) FROM favourites")[0] == 0
    with pytest.raises(ValueError):
        store.expire(empty_after_s=-1, idle_after_s=1)


# ------------------------------------------------------- a busy database
def test_a_lock_held_elsewhere_gives_store_busy_and_leaves_reads_alone(tmp_path: Path) -> None:
    """Issue: a write waiting for another process's lock answered 500, and held up every read."""
    import time

    path = tmp_path / "s.sqlite3"
    store = SessionStore(path, wait_s=0.5)
    token = store.create()
    store.add(token, "movie", 1, "like")
    other = connect(path)
    other.execute("BEGIN IMMEDIATE")
    try:
        start = time.monotonic()
        with pytest.raises(sessions.StoreBusy, match="busy") as caught:
            store.add(token, "movie", 2, "like")
        assert 0.4 < time.monotonic() - start < 2.0 and caught.value.retry_after >= 1

        # a write already waiting holds the write connection; reads have their own
        def waiting_write() -> None:
            with contextlib.suppress(sessions.StoreBusy):
                store.add(token, "movie", 3, "like")

        blocked = threading.Thread(target=waiting_write)
        blocked.start()
        start = time.monotonic()
        assert store.get(token).liked == [1] and store.exists(token)
        assert time.monotonic() - start < 0.2
        blocked.join(5)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert store.add(token, "movie", 2, "like").liked == [1, 2]  # nothing half-written
    store.close()
    with pytest.raises(ValueError, match="wait_s"):
        SessionStore(path, wait_s=0)
