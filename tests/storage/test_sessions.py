"""Tests for movierec.storage.sessions: order, moves, reorder, limits, durability, threads."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from movierec.storage import sessions
from movierec.storage.db import connect, integrity_check
from movierec.storage.sessions import SessionState, SessionStore, UnknownSessionError


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SessionStore]:
    s = SessionStore(tmp_path / "sessions.sqlite3")
    yield s
    s.close()


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


def test_persistence_across_reconnect(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    first = SessionStore(path)
    t = first.create()
    first.add(t, "movie", 1, "like")
    first.add(t, "tag", "noir", "dislike")
    first.add_favourite(t, 3)
    first.add_favourite(t, 4)
    first.close()
    again = SessionStore(connect(path))
    state = again.get(t)
    assert (state.liked, state.disliked_tags, state.favourites) == ([1], ["noir"], [4, 3])


def test_delete(store: SessionStore) -> None:
    t = store.create()
    store.add(t, "movie", 1, "like")
    store.add_favourite(t, 1)
    store.delete(t)
    assert not store.exists(t)
    assert store.conn.execute("SELECT count(*) FROM session_items").fetchone()[0] == 0
    assert store.conn.execute("SELECT count(*) FROM favourites").fetchone()[0] == 0


def test_acknowledged_write_survives_kill_9(tmp_path: Path) -> None:
    """A write that returned is on disk even if the process dies right after (SIGKILL)."""
    path = tmp_path / "db.sqlite3"
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        from movierec.storage.sessions import SessionStore
        store = SessionStore({str(path)!r})
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
    store = SessionStore(path)
    state = store.get(token)
    assert state.liked == [42] and state.favourites == [7]
    assert integrity_check(store.conn)
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
def test_concurrent_writers_keep_consistent_state(tmp_path: Path, shared: bool) -> None:
    path = tmp_path / "db.sqlite3"
    main = SessionStore(path)
    token = main.create()
    n_threads, n = 4, 15
    stores = [main if shared else SessionStore(path) for _ in range(n_threads)]
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
    positions = main.conn.execute(
        "SELECT count(*), count(DISTINCT position) FROM session_items WHERE token = ?", (token,)
    ).fetchone()
    assert positions[0] == positions[1]
    assert integrity_check(main.conn)
    for s in {id(s): s for s in stores}.values():
        s.close()
