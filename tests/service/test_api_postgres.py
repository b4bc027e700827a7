"""The HTTP API with its sessions in PostgreSQL, served by two app instances at once.

Each instance has its own copy of the SQLite catalogue (as each machine
would) and both share one PostgreSQL database (a fresh schema on the
throwaway server of ``tests/pg.py``). A visitor's requests alternate between
the instances, as a load balancer without sticky sessions would send them:
every write made through one is seen by the other at the next request.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from itertools import cycle
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from movierec.data.dataset import Dataset
from movierec.service.app import create_app
from movierec.service.config import ServiceSettings
from movierec.settings import Settings
from movierec.storage.sessions import SessionStore
from pg import pg_url_fixture, postgres_fixture  # noqa: F401  (fixtures `pg_url`, `postgres`)

MATRIX = 2
COOKIE = "movierec_session"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, tiny: Dataset, make_home: Callable[..., Path]) -> Path:
    """A folder with a fitted ``pop`` model and two copies of the catalogue (one per instance)."""
    tmp = tmp_path_factory.mktemp("svc-pg")
    make_home(tmp, tiny, db="db-a.sqlite3")
    shutil.copy(tmp / "db-a.sqlite3", tmp / "db-b.sqlite3")
    return tmp


def settings_for(built: Path, name: str, url: str) -> ServiceSettings:
    return ServiceSettings(
        inference_process=False,
        settings=Settings(home=built, database_url=url),
        model_dir=built / "model",
        database_path=built / f"db-{name}.sqlite3",
    )


@pytest.fixture
def instances(built: Path, pg_url: str) -> Iterator[list[TestClient]]:
    """Two running app instances on one PostgreSQL database."""
    apps = [create_app(settings_for(built, name, pg_url)) for name in ("a", "b")]
    with TestClient(apps[0]) as a, TestClient(apps[1]) as b:
        for c in (a, b):
            store = c.app.state.service.store  # type: ignore[attr-defined]
            assert store.backend == "postgresql", (
                "the app ignored the database URL: its lifespan must build the store with "
                "movierec.service.deps.open_store(settings, conn)"
            )
        yield [a, b]


class Visitor:
    """One browser whose requests a load balancer deals to the instances in turn (no stickiness)."""

    def __init__(self, clients: list[TestClient]) -> None:
        self._next = cycle(clients)
        self.token: str | None = None
        self.served_by: list[int] = []
        self._ids = {id(c): k for k, c in enumerate(clients)}

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        client = next(self._next)
        self.served_by.append(self._ids[id(client)])
        client.cookies.clear()
        if self.token is not None:
            client.cookies.set(COOKIE, self.token)
        r = client.request(method, url, **kwargs)
        self.token = r.cookies.get(COOKIE) or self.token
        client.cookies.clear()
        return r

    def ids(self, r: httpx.Response, key: str | None = None) -> list[int]:
        assert r.status_code == 200, r.text
        items = r.json()[key] if key else r.json()
        return [m["movie_id"] for m in items]


def test_main_flow_across_two_instances(instances: list[TestClient], pg_url: str) -> None:
    v = Visitor(instances)
    assert v.request("GET", "/api/session").status_code == 200
    assert v.token is None  # a read starts no session
    token = None
    for mid in (MATRIX, 10, 11):  # likes through b, a, b
        r = v.request("POST", "/api/session/items", json={"kind": "movie", "value": mid, "feedback": "like"})
        assert r.status_code == 200, r.text
        token = token or v.token
    assert token
    v.request("POST", "/api/session/items", json={"kind": "tag", "value": "Cyberpunk", "feedback": "like"})
    s = v.request("GET", "/api/session")
    assert v.ids(s, "liked") == [MATRIX, 10, 11] and s.json()["liked_tags"] == ["cyberpunk"]
    r = v.request(
        "PUT", "/api/session/order", json={"kind": "movie", "feedback": "like", "ordered": [11, MATRIX, 10]}
    )
    assert v.ids(r, "liked") == [11, MATRIX, 10]
    assert v.ids(v.request("GET", "/api/session"), "liked") == [11, MATRIX, 10]  # the other instance agrees
    stale = v.request(
        "PUT", "/api/session/order", json={"kind": "movie", "feedback": "like", "ordered": [11, MATRIX]}
    )
    assert stale.status_code == 422 and "10" in stale.text
    # recommendations on either instance leave out what the session holds
    for _ in range(2):
        recs = v.ids(v.request("GET", "/api/recommendations", params={"n": 100}), "movies")
        assert recs and not {11, MATRIX, 10} & set(recs)
    # favourites, most recent first, written and read on alternate instances
    assert v.ids(v.request("POST", "/api/favourites", json={"movie_id": MATRIX})) == [MATRIX]
    assert v.ids(v.request("POST", "/api/favourites", json={"movie_id": 10})) == [10, MATRIX]
    assert v.ids(v.request("GET", "/api/favourites")) == [10, MATRIX]
    assert v.ids(v.request("DELETE", f"/api/favourites/{MATRIX}")) == [10]
    assert v.request("GET", "/api/session").json()["favourites"] == [10]
    assert v.token == token  # one session throughout
    assert set(v.served_by) == {0, 1}
    # it is all in PostgreSQL, readable by a third worker
    store = SessionStore(pg_url)
    state = store.get(token)
    assert (state.liked, state.liked_tags, state.favourites) == ([11, MATRIX, 10], ["cyberpunk"], [10])
    store.close()


def test_another_visitors_token_is_refused(instances: list[TestClient], built: Path) -> None:
    first = Visitor(instances)
    first.request("POST", "/api/session/items", json={"kind": "movie", "value": MATRIX, "feedback": "like"})
    first.request("POST", "/api/favourites", json={"movie_id": 10})
    second = Visitor(instances[::-1])  # starts on the other instance
    s = second.request("GET", "/api/session").json()
    assert s["liked"] == [] and s["favourites"] == []
    second.request("PUT", "/api/session/filters", json={})
    assert second.token and second.token != first.token
    # a forged token, and one from another deployment's (SQLite) store, are both refused on
    # either instance: the visitor gets a fresh, empty session, never someone else's
    lite = SessionStore(built / "elsewhere.sqlite3")
    foreign = lite.create()
    lite.add(foreign, "movie", 11, "like")
    lite.close()
    for forged in ("x" * 43, foreign):
        for k in (0, 1):
            intruder = Visitor([instances[k]])
            intruder.token = forged
            r = intruder.request("GET", "/api/session")
            assert r.json()["liked"] == [] and r.json()["favourites"] == []
            r = intruder.request("PUT", "/api/session/filters", json={})
            assert r.status_code == 200 and r.json()["liked"] == []
            assert intruder.token not in (forged, first.token, second.token)
    # and the first visitor still has their own session on both instances
    for _ in range(2):
        s = first.request("GET", "/api/session").json()
        assert [m["movie_id"] for m in s["liked"]] == [MATRIX] and s["favourites"] == [10]


def test_store_survives_an_instance_restart(built: Path, pg_url: str) -> None:
    """A session lives in PostgreSQL, not in an instance: a new instance with a new catalogue copy serves it."""
    with TestClient(create_app(settings_for(built, "a", pg_url))) as a:
        a.post("/api/favourites", json={"movie_id": MATRIX})
        token = a.cookies.get(COOKIE)
    shutil.copy(built / "db-a.sqlite3", built / "db-c.sqlite3")
    with TestClient(create_app(settings_for(built, "c", pg_url)), cookies={COOKIE: str(token)}) as c:
        assert [m["movie_id"] for m in c.get("/api/favourites").json()] == [MATRIX]
