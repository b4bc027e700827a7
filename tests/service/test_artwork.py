"""Posters, stills and trailers from TMDB (issue "Posters, stills and trailers for real"),
against a fake TMDB on 127.0.0.1 (``tests/tmdb_fake.py``): lookups, rate and concurrency
bounds, 404s, 429 with Retry-After, timeouts and garbage answers, the cache, and the app:
cards gain posters without a request ever waiting, the movie view gains stills and the
trailer, the page's CSP allows exactly the image and trailer origins; and without a key no
request leaves the machine."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from movierec.data.dataset import Dataset
from movierec.service.app import create_app
from movierec.service.artwork import Art, Artwork, ArtworkCache, TmdbClient, artwork_path_for, parse_movie
from movierec.service.config import ServiceSettings
from movierec.settings import Settings
from tmdb_fake import TOKEN, TRAILER, fake_tmdb


def test_parse_keeps_checked_paths_and_the_official_trailer() -> None:
    from tmdb_fake import movie_json

    art = parse_movie(movie_json(7))
    assert art.poster_path == "/p7.png"
    # the movie's own backdrop first, then the best voted; a path that is no file name is dropped
    assert art.backdrops == ("/b7.png", "/b7-high.png", "/b7-low.png")
    assert art.trailer_key == TRAILER  # the official YouTube trailer, not the fan-made one or Vimeo's
    assert parse_movie({"poster_path": "javascript:alert(1)", "videos": {"results": "x"}}) == Art()
    with pytest.raises(ValueError):
        parse_movie([1, 2])


def test_a_v3_key_goes_as_a_parameter_and_a_token_as_a_header() -> None:
    v3 = TmdbClient("0123456789abcdef0123456789abcdef", "http://127.0.0.1:9")
    v4 = TmdbClient(TOKEN, "http://127.0.0.1:9")
    assert v3._params == {"api_key": "0123456789abcdef0123456789abcdef"}
    assert v4._params == {} and v4._http.headers["authorization"] == f"Bearer {TOKEN}"
    with pytest.raises(ValueError):
        TmdbClient("  ", "http://127.0.0.1:9")


def run_lookups(
    artwork: Artwork, movie_ids: list[int], until: Callable[[], bool], limit_s: float = 20.0
) -> float:
    """Start ``artwork``'s lookups, ask for ``movie_ids``, wait until ``until()``; the seconds taken."""

    async def main() -> float:
        task = asyncio.create_task(artwork.run())
        await asyncio.sleep(0)
        start = time.monotonic()
        for m in movie_ids:
            artwork.art(m)
        while not until() and time.monotonic() - start < limit_s:
            await asyncio.sleep(0.02)
        took = time.monotonic() - start
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return took

    # in a thread of its own: it needs an event loop of its own (the browser tests leave one here)
    out: list[float] = []
    thread = threading.Thread(target=lambda: out.append(asyncio.run(main())))
    thread.start()
    thread.join(limit_s + 10)
    assert out, "the lookups did not finish"
    return out[0]


def test_lookups_are_bounded_and_every_answer_is_handled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fake_tmdb() as fake:
        fake.slow_s = 2.0
        fake.behaviour.update(
            {120: "404", 121: "429", 122: "slow", 123: "garbage", 124: "wrong-shape", 125: "500"}
        )
        ids = {m: 100 + m for m in range(1, 26)}  # movie m -> TMDB id 100 + m
        cache = ArtworkCache(tmp_path / "art.sqlite3")
        artwork = Artwork(
            ids, cache, TmdbClient(TOKEN, fake.api_url, timeout_s=0.5), rate=10.0, concurrency=3
        )
        took = run_lookups(artwork, list(ids), lambda: len(artwork._known) == len(ids))
        status = {t: artwork._known[t][0] for t in ids.values()}
        assert status[120] == "missing"
        assert status[121] == "found"  # the 429 was waited out ...
        t429 = [t for t, i in fake.requests if i == 121]
        assert len(t429) == 2 and t429[1] - t429[0] >= 0.95  # ... for its Retry-After
        assert {status[i] for i in (122, 123, 124, 125)} == {"error"}  # timeout, not JSON, wrong shape, 500
        assert all(status[100 + m] == "found" for m in range(1, 20))
        # at most 10 starts a second (26 requests: 2.5 s at least), at most 3 at once
        starts = sorted(t for t, _ in fake.requests)
        assert len(starts) == 26 and starts[-1] - starts[0] >= 2.4 and took < 15
        assert fake.max_active <= 3
        assert artwork.art(1) == Art("/p101.png", ("/b101.png", "/b101-high.png", "/b101-low.png"), TRAILER)
        assert artwork.art(20) is None and artwork.art(999) is None  # not on TMDB; no TMDB id
        cache.close()

        # the cache survives a restart: fresh entries are not asked for again, failures are once
        # ERROR_RETRY_S (an hour) has passed
        from movierec.service import artwork as artwork_module

        monkeypatch.setattr(artwork_module, "ERROR_RETRY_S", 0.0)
        again = Artwork(
            ids, ArtworkCache(tmp_path / "art.sqlite3"), TmdbClient(TOKEN, fake.api_url), rate=50.0
        )
        before = len(fake.requests)
        assert again.art(1) is not None and again.art(20) is None
        run_lookups(again, list(ids), lambda: len(fake.requests) >= before + 4, limit_s=5.0)
        asked = {i for _, i in fake.requests[before:]}
        assert asked == {122, 123, 124, 125}, asked


@pytest.fixture
def app_with(tmp_path: Path, tiny: Dataset, make_home: Callable[..., Path]) -> Callable[..., Any]:
    root = make_home(tmp_path, tiny, "itemknn")

    def make(**settings: Any) -> Any:
        return create_app(
            ServiceSettings(
                inference_process=False,
                settings=Settings(home=root, **settings),
                model_dir=root / "model",
                database_path=root / "db.sqlite3",
            )
        )

    return make


def test_cards_gain_posters_without_a_request_waiting(app_with: Callable[..., Any], tmp_path: Path) -> None:
    with fake_tmdb() as fake:
        fake.slow_s = 2.0
        fake.behaviour.update({600 + m: "slow" for m in (1, 2, 3, 4)})
        app = app_with(tmdb_api_key=TOKEN, tmdb_api_url=fake.api_url, tmdb_image_url=fake.image_url)
        with TestClient(app) as c:
            start = time.perf_counter()
            first = c.get("/api/recommendations", params={"n": 30}).json()["movies"]
            assert time.perf_counter() - start < 1.0  # TMDB is slow; the page is not
            assert all(m["poster_path"] is None for m in first)
            deadline = time.monotonic() + 20
            posters: dict[int, Any] = {}
            while time.monotonic() < deadline:
                posters = {
                    m["movie_id"]: m["poster_path"]
                    for m in c.get("/api/recommendations", params={"n": 30}).json()["movies"]
                }
                if all(p is not None for m, p in posters.items() if m not in (1, 2, 3, 4)):
                    break
                time.sleep(0.1)
            assert all(p == f"/p{600 + m}.png" for m, p in posters.items() if m not in (1, 2, 3, 4)), posters
            movie = next(m for m in posters if m not in (1, 2, 3, 4))
            detail = c.get(f"/api/movies/{movie}").json()
            assert detail["stills"] == [
                f"/b{600 + movie}.png",
                f"/b{600 + movie}-high.png",
                f"/b{600 + movie}-low.png",
            ]
            assert detail["trailer_youtube_key"] == TRAILER and detail["trailer_url"].endswith(TRAILER)
            health = c.get("/api/health").json()
            assert health["image_base"] == fake.image_url
            csp = c.get("/").headers["content-security-policy"]
            assert (
                f"img-src 'self' {fake.url} data:;" in csp
                and "frame-src https://www.youtube-nocookie.com;" in csp
            )
        # what was found is kept beside the catalogue
        cached = ArtworkCache(artwork_path_for(tmp_path / "db.sqlite3")).load()
        assert cached[600 + movie][0] == "found"


def test_without_a_key_no_request_leaves(app_with: Callable[..., Any]) -> None:
    with fake_tmdb() as fake:
        app = app_with(tmdb_api_url=fake.api_url)  # a URL, but no key
        with TestClient(app) as c:
            movies = c.get("/api/recommendations", params={"n": 30}).json()["movies"]
            assert movies and all(m["poster_path"] is None for m in movies)
            detail = c.get(f"/api/movies/{movies[0]['movie_id']}").json()
            assert detail["stills"] == [] and detail["trailer_youtube_key"] is None
            assert "search_query=" in detail["trailer_url"]
            assert (
                "img-src 'self' https://image.tmdb.org data:;"
                in c.get("/").headers["content-security-policy"]
            )
            time.sleep(0.3)
        assert fake.requests == [] and fake.images == 0


@pytest.mark.parametrize("url", ["ftp://x", "http://", "https://a b", "https://x;script-src *"])
def test_artwork_urls_are_checked(url: str) -> None:
    with pytest.raises(ValueError, match="http"):
        Settings(tmdb_image_url=url)
