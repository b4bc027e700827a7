"""The per-session write rate limit (token bucket) of the HTTP API."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from movierec.data.dataset import Dataset
from movierec.service.app import create_app
from movierec.service.config import ServiceSettings
from movierec.service.ratelimit import TokenBuckets
from movierec.settings import Settings

LIKE = {"kind": "movie", "value": 2, "feedback": "like"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def service_settings(
    tmp_path_factory: pytest.TempPathFactory, tiny: Dataset, make_home: Callable[..., Path]
) -> ServiceSettings:
    tmp = tmp_path_factory.mktemp("svc_rl")
    make_home(tmp, tiny)
    # slow refill so the test is not timing-sensitive: 5 writes at once, then 1 every 100 s
    return ServiceSettings(
        inference_process=False,
        settings=Settings(home=tmp),
        model_dir=tmp / "model",
        database_path=tmp / "db.sqlite3",
        write_rate=0.01,
        write_burst=5,
    )


@pytest.fixture
def app_and_clients(service_settings: ServiceSettings) -> Iterator[tuple[TestClient, TestClient]]:
    app = create_app(service_settings)
    with TestClient(app) as a, TestClient(app) as b:
        a.put("/api/session/filters", json={})  # each client's session starts at its first write
        b.put("/api/session/filters", json={})  # (that one counts against the address, not the session)
        yield a, b


# ------------------------------------------------------------------ buckets
def test_bucket_burst_then_refill() -> None:
    clock = FakeClock()
    b = TokenBuckets(rate=2.0, burst=3, clock=clock)
    assert [b.take("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.take("k") == pytest.approx(0.5)  # one token every 0.5 s
    assert b.take("other") == 0.0  # other keys have their own bucket
    clock.now += 0.5
    assert b.take("k") == 0.0
    assert b.take("k") > 0.0
    clock.now += 100
    assert [b.take("k") for _ in range(3)] == [0.0, 0.0, 0.0]  # refilled to burst, not beyond
    assert b.take("k") > 0.0


def test_bucket_memory_is_bounded() -> None:
    clock = FakeClock()
    b = TokenBuckets(rate=1.0, burst=2, max_buckets=10, clock=clock)
    for i in range(100):
        b.take(f"k{i}")
    assert len(b) == 10  # least recently used dropped
    clock.now += 2.0  # everyone full again: idle buckets are dropped on the next call
    b.take("new")
    assert len(b) == 1


def test_bucket_is_thread_safe() -> None:
    b = TokenBuckets(rate=1e-6, burst=1000)
    allowed = []

    def worker() -> None:
        allowed.append(sum(b.take("k") == 0.0 for _ in range(300)))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(allowed) == 1000  # exactly the burst, never more, across 2400 attempts


@pytest.mark.parametrize(("rate", "burst", "n"), [(0, 1, 1), (1, 0, 1), (1, 1, 0), (-1, 1, 1)])
def test_bucket_rejects_bad_settings(rate: float, burst: int, n: int) -> None:
    with pytest.raises(ValueError, match="rate > 0"):
        TokenBuckets(rate, burst, n)


# ---------------------------------------------------------------------- API
def test_burst_over_limit_gets_429(app_and_clients: tuple[TestClient, TestClient]) -> None:
    a, _ = app_and_clients
    codes = [a.post("/api/session/items", json=LIKE).status_code for _ in range(5)]
    assert codes == [200] * 5
    for method, url, body in [
        ("POST", "/api/session/items", LIKE),
        ("PUT", "/api/session/filters", {}),
        ("DELETE", "/api/favourites/2", None),
        ("POST", "/api/favourites", {"movie_id": 3}),
    ]:
        r = a.request(method, url, json=body)
        assert r.status_code == 429, (method, url, r.text)
        assert int(r.headers["retry-after"]) >= 1
        assert r.headers["content-type"] == "application/json"
        assert "too many changes" in r.json()["detail"]
        assert r.headers["x-content-type-options"] == "nosniff"  # security headers still apply
    # the rejected writes changed nothing
    assert a.get("/api/favourites").json() == []


def test_other_session_unaffected(app_and_clients: tuple[TestClient, TestClient]) -> None:
    a, b = app_and_clients
    for _ in range(8):
        a.post("/api/favourites", json={"movie_id": 2})
    assert a.post("/api/favourites", json={"movie_id": 2}).status_code == 429
    assert [b.post("/api/favourites", json={"movie_id": 10}).status_code for _ in range(5)] == [200] * 5


def test_reads_are_never_limited(app_and_clients: tuple[TestClient, TestClient]) -> None:
    a, _ = app_and_clients
    for _ in range(6):
        a.post("/api/session/items", json=LIKE)
    assert a.post("/api/session/items", json=LIKE).status_code == 429
    for url in ("/api/session", "/api/favourites", "/api/recommendations", "/api/movies/search?q=m"):
        assert all(a.get(url).status_code == 200 for _ in range(10)), url


def test_forged_cookies_share_the_address_bucket(app_and_clients: tuple[TestClient, TestClient]) -> None:
    a, _ = app_and_clients
    app = a.app
    codes = []
    for i in range(8):  # a fresh forged token each time does not get a fresh bucket
        with TestClient(app, cookies={"movierec_session": f"forged{i:012d}"}) as f:
            codes.append(f.post("/api/favourites", json={"movie_id": 2}).status_code)
    # the fixture's two session-starting writes took two of the address's 5 tokens
    assert codes[:3] == [200] * 3 and codes[3:] == [429] * 5
