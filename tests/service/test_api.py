"""The HTTP API over a tiny catalogue and a fitted ``pop`` model.

Every TestClient raises server exceptions, so a known bad input that reached
the last-resort 500 handler would fail its test.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from movierec.data.dataset import Dataset
from movierec.models.registry import create
from movierec.service.app import create_app
from movierec.service.config import ServiceSettings
from movierec.settings import Settings
from movierec.storage.db import connect

MATRIX = 2


@pytest.fixture(scope="module")
def service_settings(
    tmp_path_factory: pytest.TempPathFactory, tiny: Dataset, make_home: Callable[..., Path]
) -> ServiceSettings:
    tmp = tmp_path_factory.mktemp("svc")
    make_home(tmp, tiny)
    return ServiceSettings(
        inference_process=False,
        settings=Settings(home=tmp),
        model_dir=tmp / "model",
        database_path=tmp / "db.sqlite3",
    )


@pytest.fixture
def client(service_settings: ServiceSettings) -> Iterator[TestClient]:
    with TestClient(create_app(service_settings)) as c:
        yield c


def rec_ids(c: TestClient, n: int = 10) -> list[int]:
    r = c.get("/api/recommendations", params={"n": n, "n_tags": 5})
    assert r.status_code == 200, r.text
    return [m["movie_id"] for m in r.json()["movies"]]


# ------------------------------------------------------------------ endpoints
def test_health_and_page(client: TestClient) -> None:
    h = client.get("/api/health").json()
    assert h["status"] == "ok" and h["model"] == "pop" and h["movies"] == 30
    assert "Sci-Fi" in h["genres"]
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "<script" in page.text and 'src="/static/app.js"' in page.text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/style.css").status_code == 200
    assert client.get("/openapi.json").json()["info"]["title"] == "movierec"


def test_security_headers(client: TestClient) -> None:
    for url in ("/", "/api/health", "/api/movies/999999", "/static/app.js"):
        h = client.get(url).headers
        csp = h["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "style-src 'self'" in csp
        assert "img-src 'self' https://image.tmdb.org data:" in csp
        assert h["x-content-type-options"] == "nosniff"
        assert h["referrer-policy"] == "same-origin"


def test_docs_page_gets_its_own_policy(client: TestClient) -> None:
    r = client.get("/docs")
    assert r.status_code == 200 and "swagger" in r.text.lower()
    assert "style-src 'self' 'unsafe-inline'" in r.headers["content-security-policy"]
    assert "'unsafe-inline'" not in client.get("/").headers["content-security-policy"]


def test_engine_from_dataset_matches_engine_from_catalogue(client: TestClient, tiny: Dataset) -> None:
    from movierec.serving import Engine

    served = client.app.state.service.engine  # type: ignore[attr-defined]  # built from the database rows
    direct = Engine.from_dataset(served.model, tiny)
    assert direct.catalog.genre_names == served.catalog.genre_names
    assert (direct.catalog.year == served.catalog.year).all()
    assert (direct.catalog.genres == served.catalog.genres).all()
    assert (direct.titles == served.titles).all()
    # both know The Matrix's tags, and one catalogue view built one way finds the same neighbours
    m = served.model.movies.index_one(MATRIX)
    assert set(direct.movie_tags[m].indices) == set(served.movie_tags[m].indices)
    assert direct.similar(MATRIX, 3) == served.similar(MATRIX, 3)


def test_search_movies_and_tags(client: TestClient) -> None:
    found = client.get("/api/movies/search", params={"q": "matrix"}).json()
    assert found[0]["movie_id"] == MATRIX and found[0]["display_title"] == "The Matrix"
    assert found[0]["year"] == 1999 and "Sci-Fi" in found[0]["genres"]
    assert (
        client.get("/api/movies/search", params={"q": "matrix", "limit": 1}).json()[0]["movie_id"] == MATRIX
    )
    tags = client.get("/api/tags/search", params={"q": "cyber"}).json()
    assert tags[0]["tag"] == "cyberpunk" and tags[0]["movie_count"] == 2


@pytest.mark.parametrize(
    "q",
    [
        "",
        " ",
        "'; DROP TABLE movies; --",
        '"',
        "%",
        "_",
        "*",
        "NEAR(",
        "a OR b",
        "\\",
        "<script>alert(1)</script>",
        "\u0000",
        "é" * 200,
        "(((",
        "matrix\"'",
    ],
)
def test_hostile_search_strings(client: TestClient, q: str) -> None:
    for url in ("/api/movies/search", "/api/tags/search"):
        r = client.get(url, params={"q": q})
        assert r.status_code == 200, (url, q, r.text)
        assert isinstance(r.json(), list)
    assert client.get("/api/movies/search", params={"q": "matrix"}).json()[0]["movie_id"] == MATRIX


def test_movie_view_and_similar(client: TestClient) -> None:
    m = client.get(f"/api/movies/{MATRIX}").json()
    assert m["display_title"] == "The Matrix" and "cyberpunk" in m["tags"]
    assert m["imdb_url"] == f"https://www.imdb.com/title/tt{133093 + MATRIX:07d}/"
    assert m["tmdb_url"] == f"https://www.themoviedb.org/movie/{600 + MATRIX}"
    assert m["trailer_url"] == "https://www.youtube.com/results?search_query=The+Matrix+1999+trailer"
    sim = client.get(f"/api/movies/{MATRIX}/similar", params={"n": 5}).json()
    assert 0 < len(sim) <= 5 and MATRIX not in [s["movie_id"] for s in sim]
    scores = [s["score"] for s in sim]
    assert scores == sorted(scores, reverse=True)


def test_recommendations_change_after_like_and_exclude_held(client: TestClient) -> None:
    first = client.get("/api/recommendations", params={"n": 5, "n_tags": 5}).json()
    assert first["fallback"] is True and len(first["movies"]) == 5
    assert all(m["reason"] for m in first["movies"])
    top = first["movies"][0]["movie_id"]
    client.post("/api/session/items", json={"kind": "movie", "value": top, "feedback": "like"})
    second = client.get("/api/recommendations", params={"n": 5, "n_tags": 5}).json()
    ids = [m["movie_id"] for m in second["movies"]]
    assert top not in ids and ids != [m["movie_id"] for m in first["movies"]]
    assert any(m["reason"] and m["reason"].startswith("because you liked") for m in second["movies"])
    client.post("/api/session/items", json={"kind": "movie", "value": ids[0], "feedback": "dislike"})
    assert ids[0] not in rec_ids(client, 29)
    assert top not in rec_ids(client, 29)
    assert len(rec_ids(client, 100)) == 28  # every other movie, nothing held
    # liking a tag: it is no longer suggested
    tags = [t["tag"] for t in client.get("/api/recommendations", params={"n_tags": 20}).json()["tags"]]
    assert tags
    client.post("/api/session/items", json={"kind": "tag", "value": tags[0], "feedback": "like"})
    after = [t["tag"] for t in client.get("/api/recommendations", params={"n_tags": 20}).json()["tags"]]
    assert tags[0] not in after


def test_saved_movies_leave_the_recommendations(client: TestClient) -> None:
    """Issue (pictures and page): a saved movie kept coming back in the list."""
    client.post("/api/session/items", json={"kind": "movie", "value": MATRIX, "feedback": "like"})
    before = rec_ids(client, 10)
    assert client.post("/api/favourites", json={"movie_id": before[0]}).status_code == 200
    after = rec_ids(client, 10)
    assert before[0] not in after and after[:9] == before[1:]  # the rest keep their order
    assert len(rec_ids(client, 100)) == 28  # all but the liked and the saved movie
    assert client.request("DELETE", "/api/favourites", json={"movie_id": before[0]}).status_code == 200
    assert rec_ids(client, 10) == before  # unsaved: back in its place


def test_the_taste_in_words_is_kept_and_reaches_the_model(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue (pictures and page): the API and CLI took free text, the page did not."""
    from movierec.serving import engine as serving

    seen: list[str | None] = []
    real = serving.Query.session

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("text"))
        return real(*args, **kwargs)

    monkeypatch.setattr(serving.Query, "session", spy)
    r = client.put(
        "/api/session/filters", json={"text": "  slow-burn dystopia with a detective ", "genres": []}
    )
    assert r.status_code == 200 and r.json()["filters"]["text"] == "slow-burn dystopia with a detective"
    client.get("/api/recommendations")
    assert seen[-1] == "slow-burn dystopia with a detective"
    assert client.put("/api/session/filters", json={"text": ""}).json()["filters"]["text"] is None
    assert client.put("/api/session/filters", json={"text": "x" * 201}).status_code == 422
    assert client.put("/api/session/filters", json={"text": "dark\u202ecomedy"}).status_code == 422


def test_session_items_order_and_removal(client: TestClient) -> None:
    for mid in (MATRIX, 10, 11):
        assert (
            client.post(
                "/api/session/items", json={"kind": "movie", "value": mid, "feedback": "like"}
            ).status_code
            == 200
        )
    client.post("/api/session/items", json={"kind": "tag", "value": "Cyberpunk", "feedback": "like"})
    client.post("/api/session/items", json={"kind": "tag", "value": "heist", "feedback": "dislike"})
    s = client.get("/api/session").json()
    assert [m["movie_id"] for m in s["liked"]] == [MATRIX, 10, 11]
    assert s["liked_tags"] == ["cyberpunk"] and s["disliked_tags"] == ["heist"]
    r = client.put(
        "/api/session/order", json={"kind": "movie", "feedback": "like", "ordered": [11, MATRIX, 10]}
    )
    assert [m["movie_id"] for m in r.json()["liked"]] == [11, MATRIX, 10]
    bad = client.put(
        "/api/session/order", json={"kind": "movie", "feedback": "like", "ordered": [11, MATRIX]}
    )
    assert bad.status_code == 422 and "10" in bad.text
    # switching a like to a dislike moves it
    s = client.post("/api/session/items", json={"kind": "movie", "value": 10, "feedback": "dislike"}).json()
    assert [m["movie_id"] for m in s["liked"]] == [11, MATRIX] and [m["movie_id"] for m in s["disliked"]] == [
        10
    ]
    s = client.request("DELETE", "/api/session/items", json={"kind": "movie", "value": 11}).json()
    assert [m["movie_id"] for m in s["liked"]] == [MATRIX]
    s = client.delete("/api/session/items/tag/cyberpunk").json()
    assert s["liked_tags"] == []
    s = client.delete("/api/session/items/movie/2").json()
    assert s["liked"] == []
    assert client.delete("/api/session/items/movie/abc").status_code == 422


def test_filters_apply(client: TestClient, tiny: Dataset) -> None:
    r = client.put(
        "/api/session/filters", json={"year_min": 2010, "year_max": 2019, "genres": ["Drama", "Comedy"]}
    )
    assert r.status_code == 200 and r.json()["filters"]["year_min"] == 2010
    recs = client.get("/api/recommendations", params={"n": 30}).json()["movies"]
    info = tiny.movie_info.set_index("movie_id")
    expected = {
        int(i)
        for i, row in info.iterrows()
        if 2010 <= row["year"] <= 2019 and {"Drama", "Comedy"} & set(row["genres"])
    }
    assert recs and {m["movie_id"] for m in recs} == expected
    client.put("/api/session/filters", json={"min_rating": 3.2})
    recs = client.get("/api/recommendations", params={"n": 30}).json()["movies"]
    # the filter reads the shrunk mean, which every card carries beside the raw one: of the
    # 9 movies whose raw mean passes, the 3 with enough ratings do
    assert recs and all(m["rating"] >= 3.2 for m in recs)
    assert len(recs) == int((tiny.movie_rating >= 3.2).sum()) == 3
    assert int((tiny.movie_mean_rating >= 3.2).sum()) == 9
    assert client.put("/api/session/filters", json={"genres": ["Western"]}).status_code == 422
    assert client.put("/api/session/filters", json={"year_min": 2000, "year_max": 1990}).status_code == 422
    assert client.put("/api/session/filters", json={}).json()["filters"]["genres"] == []
    assert len(rec_ids(client, 100)) == 30


def test_favourites_persist_across_restarts(service_settings: ServiceSettings) -> None:
    with TestClient(create_app(service_settings)) as c:
        assert c.post("/api/favourites", json={"movie_id": MATRIX}).status_code == 200
        assert [m["movie_id"] for m in c.post("/api/favourites", json={"movie_id": 10}).json()] == [
            10,
            MATRIX,
        ]
        c.post("/api/session/items", json={"kind": "movie", "value": 11, "feedback": "like"})
        cookie = c.cookies.get("movierec_session")
    assert cookie
    with TestClient(create_app(service_settings), cookies={"movierec_session": cookie}) as c:
        assert [m["movie_id"] for m in c.get("/api/favourites").json()] == [10, MATRIX]
        assert [m["movie_id"] for m in c.get("/api/session").json()["liked"]] == [11]
        assert [
            m["movie_id"] for m in c.request("DELETE", "/api/favourites", json={"movie_id": 10}).json()
        ] == [MATRIX]
        assert c.delete(f"/api/favourites/{MATRIX}").json() == []
        assert c.get("/api/session").json()["favourites"] == []


# -------------------------------------------------------------------- cookies
def test_cookie_new_session_isolation_and_forgery(service_settings: ServiceSettings) -> None:
    app = create_app(service_settings)
    like = {"kind": "movie", "value": MATRIX, "feedback": "like"}
    with TestClient(app) as a, TestClient(app) as b:
        r = a.get("/api/session")  # a read creates no session and sets no cookie
        assert r.status_code == 200 and "set-cookie" not in r.headers and r.json()["liked"] == []
        r = a.post("/api/session/items", json=like)  # the first write does
        set_cookie = r.headers["set-cookie"].lower()
        assert "httponly" in set_cookie and "samesite=lax" in set_cookie and "max-age=31536000" in set_cookie
        assert "secure" not in set_cookie  # plain http in tests
        token = a.cookies.get("movierec_session")
        assert token and len(token) >= 32
        assert "set-cookie" not in a.get("/api/session").headers  # known cookie: kept
        assert "set-cookie" not in a.post("/api/favourites", json={"movie_id": 10}).headers
        sb = b.get("/api/session").json()
        assert sb["liked"] == [] and sb["favourites"] == []
        assert b.cookies.get("movierec_session") is None
        for forged in ("x" * 43, "short", "<script>", "a" * 500):
            with TestClient(app, cookies={"movierec_session": forged}) as f:
                r = f.get("/api/session")
                assert r.json()["liked"] == [] and r.json()["favourites"] == []
                assert "set-cookie" not in r.headers
                r = f.post("/api/favourites", json={"movie_id": 10})
                assert r.json()[0]["movie_id"] == 10
                assert r.cookies.get("movierec_session") not in (None, forged, token)
    with TestClient(app, base_url="https://testserver") as s:
        assert "secure" in s.post("/api/session/items", json=like).headers["set-cookie"].lower()


def test_reads_without_a_cookie_add_no_sessions(service_settings: ServiceSettings) -> None:
    """Issue: 1,897 cookie-less GETs in 5 s once added 1,897 session rows that nothing deleted."""
    app = create_app(service_settings)
    with TestClient(app) as c:
        store = app.state.service.store.sync
        before = store.count()
        for path in ("/api/session", "/api/favourites", "/api/recommendations?n=5") * 30:
            assert c.get(path).status_code == 200
            c.cookies.clear()
        assert store.count() == before
        c.post("/api/session/items", json={"kind": "movie", "value": MATRIX, "feedback": "like"})
        assert store.count() == before + 1


def test_new_sessions_are_limited_per_address(service_settings: ServiceSettings) -> None:
    """Issue: minting a new cookie every 40 writes got round the per-session write limit (16x)."""
    settings = service_settings.model_copy(update={"session_create_rate": 0.01, "session_create_burst": 3})
    with TestClient(create_app(settings)) as c:
        codes = []
        for _ in range(6):
            c.cookies.clear()  # a fresh cookie-less client each time
            codes.append(c.post("/api/favourites", json={"movie_id": 10}).status_code)
        assert codes == [200, 200, 200, 429, 429, 429]
        r = c.post("/api/favourites", json={"movie_id": 10})
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert c.get("/api/session").status_code == 200  # reads are never limited


def test_one_address_is_limited_whatever_its_sessions(service_settings: ServiceSettings) -> None:
    settings = service_settings.model_copy(update={"address_write_rate": 0.01, "address_write_burst": 5})
    with TestClient(create_app(settings)) as c:
        codes = []
        for _ in range(8):
            c.cookies.clear()
            codes.append(c.post("/api/favourites", json={"movie_id": 10}).status_code)
        assert codes.count(200) == 5 and codes[5:] == [429, 429, 429]
        assert "address" in c.post("/api/favourites", json={"movie_id": 10}).json()["detail"]


# ---------------------------------------------------------------- bad inputs
@pytest.mark.parametrize(
    ("method", "url", "body", "status"),
    [
        ("GET", "/api/movies/999999", None, 404),
        ("GET", "/api/movies/999999/similar", None, 404),
        ("GET", "/api/movies/0", None, 422),
        ("GET", "/api/movies/-5", None, 422),
        ("GET", "/api/movies/abc", None, 422),
        ("GET", "/api/movies/99999999999999999999999", None, 422),
        ("GET", "/api/movies/search?limit=0", None, 422),
        ("GET", "/api/movies/search?limit=100000", None, 422),
        ("GET", "/api/movies/search?q=" + "x" * 201, None, 422),
        ("GET", "/api/recommendations?n=0", None, 422),
        ("GET", "/api/recommendations?n=abc", None, 422),
        ("GET", "/api/recommendations?n_tags=-1", None, 422),
        ("POST", "/api/session/items", {"kind": "movie", "value": 999999, "feedback": "like"}, 404),
        ("POST", "/api/session/items", {"kind": "movie", "value": -1, "feedback": "like"}, 422),
        ("POST", "/api/session/items", {"kind": "movie", "value": 0, "feedback": "like"}, 422),
        ("POST", "/api/session/items", {"kind": "movie", "value": "2", "feedback": "like"}, 422),
        ("POST", "/api/session/items", {"kind": "movie", "value": 2.5, "feedback": "like"}, 422),
        ("POST", "/api/session/items", {"kind": "movie", "value": True, "feedback": "like"}, 422),
        ("POST", "/api/session/items", {"kind": "tag", "value": 5, "feedback": "like"}, 422),
        ("POST", "/api/session/items", {"kind": "tag", "value": "", "feedback": "like"}, 422),
        ("POST", "/api/session/items", {"kind": "tag", "value": "x" * 201, "feedback": "like"}, 422),
        ("POST", "/api/session/items", {"kind": "actor", "value": "x", "feedback": "like"}, 422),
        ("POST", "/api/session/items", {"kind": "movie", "value": 2, "feedback": "love"}, 422),
        ("POST", "/api/session/items", {"kind": "movie", "value": 2}, 422),
        ("POST", "/api/session/items", {"kind": "movie", "value": 2, "feedback": "like", "x": 1}, 422),
        ("POST", "/api/session/items", [1, 2], 422),
        ("POST", "/api/session/items", "not json", 422),
        (
            "PUT",
            "/api/session/order",
            {"kind": "movie", "feedback": "like", "ordered": list(range(1, 202))},
            422,
        ),
        ("PUT", "/api/session/order", {"kind": "movie", "feedback": "like", "ordered": ["a"]}, 422),
        ("PUT", "/api/session/order", {"kind": "movie", "feedback": "like", "ordered": [5]}, 422),
        ("PUT", "/api/session/filters", {"min_rating": 7}, 422),
        ("PUT", "/api/session/filters", {"min_rating": "high"}, 422),
        ("PUT", "/api/session/filters", {"year_min": 99999}, 422),
        ("PUT", "/api/session/filters", {"genres": "Drama"}, 422),
        ("PUT", "/api/session/filters", {"genres": ["x"] * 41}, 422),
        ("POST", "/api/favourites", {"movie_id": 999999}, 404),
        ("POST", "/api/favourites", {"movie_id": -3}, 422),
        ("POST", "/api/favourites", {"movie_id": None}, 422),
        ("DELETE", "/api/favourites/0", None, 422),
        ("POST", "/api/session/items", {"kind": "tag", "value": "a" * 70_000, "feedback": "like"}, 413),
    ],
)
def test_bad_inputs(client: TestClient, method: str, url: str, body: object, status: int) -> None:
    kwargs: dict[str, object] = {}
    if isinstance(body, str):
        kwargs = {"content": body, "headers": {"content-type": "application/json"}}
    elif body is not None:
        kwargs = {"json": body}
    r = client.request(method, url, **kwargs)  # type: ignore[arg-type]
    assert r.status_code == status, r.text
    assert "detail" in r.json()
    if status == 404:
        assert "no movie with id" in r.json()["detail"]


def test_streamed_body_over_limit_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"kind": "tag", "value": "'
        for _ in range(80):
            yield b"a" * 1024
        yield b'", "feedback": "like"}'

    r = client.post("/api/session/items", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_busy_answers_503_with_retry_after(service_settings: ServiceSettings) -> None:
    app = create_app(service_settings.model_copy(update={"max_waiting": 0, "max_inference_threads": 1}))
    with TestClient(app) as c:
        app.state.service.gate._pending = 1  # one call running, no room to wait
        r = c.get("/api/recommendations")
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        app.state.service.gate._pending = 0
        assert c.get("/api/recommendations").status_code == 200


def test_list_limit_from_store_is_422(client: TestClient) -> None:
    client.put("/api/session/filters", json={})
    token = client.cookies.get("movierec_session")
    store = client.app.state.service.store.sync  # type: ignore[attr-defined]
    for i in range(200):  # fill the list directly (tags the catalogue lacks): 200 requests would be slow
        store.add(token, "tag", f"t{i}", "like")
    r = client.post("/api/session/items", json={"kind": "tag", "value": "heist", "feedback": "like"})
    assert r.status_code == 422 and "at most" in r.json()["detail"]
    # unknown tags are ignored by the engine with a note, never an error
    notes = client.get("/api/recommendations").json()["notes"]
    assert any("unknown liked tag" in n for n in notes)


# ------------------------------------------------------------------------ CLI
def _cli() -> object:
    import typer

    from movierec.cli.serve import register

    app = typer.Typer()
    register(app)
    return app


def test_cli_commands_have_help() -> None:
    from typer.testing import CliRunner

    runner = CliRunner()
    for cmd in ("serve", "run"):
        r = runner.invoke(_cli(), [cmd, "--help"])  # type: ignore[arg-type]
        assert r.exit_code == 0 and "--port" in r.output and "--host" in r.output


def test_cli_serve_without_model_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    monkeypatch.setenv("MOVIEREC_HOME", str(tmp_path))
    r = CliRunner().invoke(_cli(), ["serve", "--port", "8123"])  # type: ignore[arg-type]
    assert r.exit_code != 0 and isinstance(r.exception, FileNotFoundError)
    assert "movierec run" in str(r.exception)


def test_run_prepares_catalogue_and_model_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_folder: Path
) -> None:
    from movierec.cli import serve as serve_cmd
    from movierec.storage.catalog import catalog_info

    folder = tiny_folder
    model_dir, db = serve_cmd.prepare(str(folder), model_name="pop")
    assert (model_dir / "meta.json").exists() and model_dir == tmp_path / "home" / "models" / "default"
    conn = connect(db)
    assert catalog_info(conn)["movies"] == 30
    conn.close()
    stamp = (model_dir / "meta.json").stat().st_mtime_ns
    served: list[object] = []
    monkeypatch.setattr(
        serve_cmd,
        "_uvicorn",
        lambda svc, host, port, *rest: served.append((create_app(svc), host, port, *rest)),
    )
    from typer.testing import CliRunner

    r = CliRunner().invoke(
        _cli(),  # type: ignore[arg-type]
        ["run", "--dataset", str(folder), "--port", "8765", "--workers", "2", "--watch-model", "5"],
    )
    assert r.exit_code == 0, r.output
    assert (model_dir / "meta.json").stat().st_mtime_ns == stamp  # not retrained
    assert served and served[0][1:] == ("127.0.0.1", 8765, 2, 5.0, None)  # type: ignore[index]
    with TestClient(served[0][0]) as c:  # type: ignore[index]
        assert c.get("/api/movies/search", params={"q": "matrix"}).json()[0]["movie_id"] == MATRIX


def test_a_first_run_serves_at_once_and_swaps_the_trained_model_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_folder: Path
) -> None:
    """Issue (pictures and page): ``make run`` served nothing until the default model had
    trained (115 s on an idle machine). Now a popularity stand-in serves at once, the default
    trains in a child process, and the model watch swaps it in."""
    import time

    from typer.testing import CliRunner

    from movierec.cli import serve as serve_cmd
    from movierec.models.artifacts import read_meta

    folder = tiny_folder
    model_dir = tmp_path / "home" / "models" / "default"
    seen: dict[str, Any] = {}

    def serve_until_trained(svc: ServiceSettings, host: str, port: int, *rest: Any) -> None:
        seen["args"] = rest
        seen["meta"] = read_meta(model_dir)
        with TestClient(create_app(svc, watch_model_s=0.1)) as c:
            seen["first"] = c.get("/api/health").json()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # the server's lifetime: until the swap
                health = c.get("/api/health").json()
                if health["model"] == "ease":
                    seen["after"] = health
                    return
                time.sleep(0.1)

    monkeypatch.setattr(serve_cmd, "_uvicorn", serve_until_trained)
    start = time.monotonic()
    r = CliRunner().invoke(_cli(), ["run", "--dataset", str(folder), "--model", "ease"])  # type: ignore[arg-type]
    assert r.exit_code == 0, r.output
    assert "serving popular movies until ease has trained" in r.output
    # the stand-in served first, and the server watched for the trained model
    assert seen["meta"]["model"] == "pop" and seen["meta"]["extra"] == {"standin_for": "ease"}
    assert seen["args"][1] == serve_cmd.STANDIN_WATCH_S
    assert seen["first"]["model"] == "pop" and seen["first"]["model_standin_for"] == "ease"
    # then the background training replaced it, and the page hears that nothing stands in
    assert seen.get("after", {}).get("model_standin_for", "missing") is None, (
        seen,
        (model_dir.parent / "default.training.log").read_text(),
    )
    assert read_meta(model_dir)["model"] == "ease" and serve_cmd.standin_for(model_dir) is None
    assert "trained in" in (model_dir.parent / "default.training.log").read_text()
    assert time.monotonic() - start < 120


# ------------------------------------------------------------ speed: caches, batches
@pytest.fixture
def calls(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of the served model's ``score`` calls, as they happen."""
    engine = client.app.state.service.engine  # type: ignore[attr-defined]
    seen: list[int] = []
    real = engine.model.score

    def counted(queries: list[object]) -> object:
        seen.append(len(queries))
        return real(queries)

    monkeypatch.setattr(engine.model, "score", counted)
    return seen


def test_recommendations_are_remembered_by_session_state(client: TestClient, calls: list[int]) -> None:
    client.post("/api/session/items", json={"kind": "movie", "value": MATRIX, "feedback": "like"})
    first = client.get("/api/recommendations").json()
    assert len(calls) == 1
    again = client.get("/api/recommendations").json()
    assert len(calls) == 1 and again["movies"] == first["movies"]  # the repeat costs no model call
    other = TestClient(client.app)  # another visitor (the running app: no second lifespan)
    other.post("/api/session/items", json={"kind": "movie", "value": MATRIX, "feedback": "like"})
    assert other.cookies.get("movierec_session") != client.cookies.get("movierec_session")
    assert other.get("/api/recommendations").json()["movies"] == first["movies"] and len(calls) == 1
    client.put("/api/session/filters", json={"year_min": 1990})
    filtered = client.get("/api/recommendations").json()
    # new filters: a new answer, ranked from the session's remembered scores (no model call)
    assert filtered["movies"] != first["movies"] and all(m["year"] >= 1990 for m in filtered["movies"])
    assert len(calls) == 1
    client.post("/api/session/items", json={"kind": "movie", "value": 10, "feedback": "like"})
    client.get("/api/recommendations")
    assert len(calls) == 2  # a new like: the model scores the new session


def test_recommend_many_matches_one_by_one(tiny: Dataset) -> None:
    from movierec.serving import Engine
    from movierec.storage.session_state import SessionState

    model = create("itemknn").fit(tiny)
    states = [
        SessionState(),
        SessionState(liked=[MATRIX]),
        SessionState(liked=[MATRIX, 10], disliked=[3], filters={"year_min": 1990}),
        SessionState(liked=[10], liked_tags=["crime"], filters={"genres": ["Comedy"]}),
        SessionState(liked=[MATRIX]),  # a repeat inside the batch
    ]
    alone = [Engine.from_dataset(model, tiny).recommend(s, 6, 3) for s in states]
    together = Engine.from_dataset(model, tiny).recommend_many([(s, 6, 3) for s in states])
    assert [[m.movie_id for m in r.movies] for r in together] == [
        [m.movie_id for m in r.movies] for r in alone
    ]
    assert [r.tags for r in together] == [r.tags for r in alone]
    with pytest.raises(dataclasses.FrozenInstanceError):  # a remembered answer cannot be changed
        together[1].fallback = True  # type: ignore[misc]
    assert together[4] is together[1]  # a repeat inside the batch: scored once


def test_a_filter_change_ranks_again_without_a_model_call(tiny: Dataset) -> None:
    from movierec.serving import Engine
    from movierec.storage.session_state import SessionState

    model = create("itemknn").fit(tiny)
    calls: list[int] = []
    score = model.score

    def counted(queries: Any) -> Any:
        calls.append(len(queries))
        return score(queries)

    engine = Engine.from_dataset(model, tiny)
    fresh = Engine.from_dataset(create("itemknn").fit(tiny), tiny)
    model.score = counted  # type: ignore[method-assign]
    base = SessionState(liked=[MATRIX, 10], disliked=[3])
    variants = [
        base,
        SessionState(liked=[MATRIX, 10], disliked=[3], filters={"year_min": 1990}),
        SessionState(liked=[MATRIX, 10], disliked=[3], filters={"genres": ["Comedy"], "min_rating": 2.0}),
    ]
    for v in variants:
        got = engine.recommend(v, 6, 3)
        assert [m.movie_id for m in got.movies] == [m.movie_id for m in fresh.recommend(v, 6, 3).movies]
        assert got.tags == fresh.recommend(v, 6, 3).tags
    assert calls == [1]  # the model scored the session once; filters only re-ranked
    engine.recommend(SessionState(liked=[10, MATRIX], disliked=[3]), 6, 3)  # new order: new scores
    assert calls == [1, 1]


def test_a_change_prefetches_its_recommendations_and_the_request_shares_them(
    client: TestClient, calls: list[int]
) -> None:
    import time

    from movierec.storage.session_state import SessionState

    engine = client.app.state.service.engine  # type: ignore[attr-defined]
    r = client.post("/api/session/items", json={"kind": "movie", "value": 11, "feedback": "like"})
    assert r.status_code == 200
    state = SessionState(liked=[11])
    deadline = time.monotonic() + 10
    while engine.recommend_cached(state, 24, 12) is None and time.monotonic() < deadline:
        time.sleep(0.01)  # nobody asked yet: the prefetch scores it on its own
    assert engine.recommend_cached(state, 24, 12) is not None and calls == [1]
    recs = client.get("/api/recommendations", params={"n": 24, "n_tags": 12})
    assert recs.status_code == 200 and calls == [1]


def test_a_change_can_answer_with_its_recommendations(client: TestClient, calls: list[int]) -> None:
    """``?n=`` on a change returns the changed session's recommendations (one round trip per
    click), the same the recommendations endpoint then gives, from one model call."""
    params = {"n": 6, "n_tags": 3}
    r = client.post(
        "/api/session/items", json={"kind": "movie", "value": 11, "feedback": "like"}, params=params
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert [m["movie_id"] for m in body["liked"]] == [11]
    recs = body["recommendations"]
    assert recs is not None and len(recs["movies"]) == 6 and len(recs["tags"]) <= 3
    assert 11 not in [m["movie_id"] for m in recs["movies"]] and recs["elapsed_ms"] >= 0
    assert client.get("/api/recommendations", params=params).json()["movies"] == recs["movies"]
    assert calls == [1]
    # every change takes it: reorder, filters, removal (body and path forms)
    client.post("/api/session/items", json={"kind": "movie", "value": MATRIX, "feedback": "like"})
    for method, url, body_json in (
        ("PUT", "/api/session/order", {"kind": "movie", "feedback": "like", "ordered": [MATRIX, 11]}),
        ("PUT", "/api/session/filters", {"year_min": 1990}),
        ("DELETE", "/api/session/items", {"kind": "movie", "value": MATRIX}),
        ("DELETE", "/api/session/items/movie/11", None),
    ):
        r = client.request(method, url, json=body_json, params=params)
        assert r.status_code == 200, (url, r.text)
        got = r.json()["recommendations"]
        assert (
            got is not None
            and got["movies"] == client.get("/api/recommendations", params=params).json()["movies"]
        )
    # without n: no recommendations in the answer (the page would ask for them)
    r = client.post("/api/session/items", json={"kind": "tag", "value": "space", "feedback": "like"})
    assert r.status_code == 200 and r.json()["recommendations"] is None
    for bad in ({"n": 0}, {"n": 101}, {"n": "x"}, {"n": 5, "n_tags": -1}):
        r = client.post(
            "/api/session/items", json={"kind": "tag", "value": "war", "feedback": "like"}, params=bad
        )
        assert r.status_code == 422, bad
    assert "war" not in client.get("/api/session").json()["liked_tags"]  # a refused request writes nothing


def test_a_change_keeps_its_write_when_the_recommender_is_busy(service_settings: ServiceSettings) -> None:
    app = create_app(service_settings.model_copy(update={"max_waiting": 0, "max_inference_threads": 1}))
    with TestClient(app) as c:
        app.state.service.gate._pending = 1  # one call running, no room to wait
        body = {"kind": "movie", "value": 11, "feedback": "like"}
        r = c.post("/api/session/items", json=body, params={"n": 5})
        assert r.status_code == 200 and r.json()["recommendations"] is None
        assert [m["movie_id"] for m in r.json()["liked"]] == [11]
        assert c.get("/api/recommendations").status_code == 503
        app.state.service.gate._pending = 0
        assert c.get("/api/recommendations").status_code == 200


def test_a_write_looks_its_session_up_once(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The write rate limit checks the cookie's session; the route trusts that check."""
    client.post("/api/favourites", json={"movie_id": 10})  # a session and its cookie
    store = client.app.state.service.store  # type: ignore[attr-defined]
    seen: list[str] = []
    real = store.exists

    async def counted(token: str) -> bool:
        seen.append(token)
        return bool(await real(token))

    monkeypatch.setattr(store, "exists", counted)
    r = client.post("/api/session/items", json={"kind": "movie", "value": 11, "feedback": "like"})
    assert r.status_code == 200 and len(seen) == 1
    assert client.get("/api/session").status_code == 200 and len(seen) == 2  # a read: its own check
    forged = TestClient(client.app, cookies={"movierec_session": "x" * 43})
    r = forged.post("/api/session/items", json={"kind": "movie", "value": 11, "feedback": "like"})
    assert r.status_code == 200 and r.cookies.get("movierec_session") not in (None, "x" * 43)


def test_batcher_shares_one_computation_between_equal_keys(run_async: Callable[..., Any]) -> None:
    import asyncio

    from movierec.service.gate import Batcher, InferenceGate

    seen: list[list[int]] = []

    def fn(items: list[int]) -> list[int]:
        seen.append(list(items))
        return [i * 10 for i in items]

    async def main() -> list[int]:
        b: Batcher[int, int] = Batcher(InferenceGate(1, 8), fn, key=lambda i: i % 100)
        return list(await asyncio.gather(b.submit(1), b.submit(101), b.submit(2), b.submit(1)))

    # 101 has the key of 1: it gets 1's answer (the key says they are the same question)
    assert run_async(main) == [10, 10, 20, 10]
    assert sorted(i for batch in seen for i in batch) == [1, 2]


def test_lru_cache_evicts_least_recently_used() -> None:
    from movierec.serving import LRUCache

    cache: LRUCache[str, int] = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # now "b" is the oldest
    cache.put("c", 3)
    assert cache.get("b") is None and cache.get("a") == 1 and len(cache) == 2
    assert cache.get_or_compute("d", lambda: 4) == 4 and cache.get("c") is None


def test_batcher_groups_concurrent_calls_and_isolates_failures(run_async: Callable[..., Any]) -> None:
    import asyncio
    import threading

    from movierec.service.gate import Batcher, Busy, InferenceGate

    sizes: list[int] = []
    release = threading.Event()

    def double(items: list[int]) -> list[int]:
        sizes.append(len(items))
        release.wait(5.0)
        if -1 in items:
            raise ValueError("bad item")
        return [2 * i for i in items]

    async def scenario() -> None:
        batcher = Batcher(InferenceGate(threads=1, max_waiting=4), double, max_batch=16)
        first = asyncio.ensure_future(batcher.submit(0))  # runs alone at once
        await asyncio.sleep(0.05)
        waiting = [asyncio.ensure_future(batcher.submit(i)) for i in (1, 2, 3, -1)]
        await asyncio.sleep(0)
        with pytest.raises(Busy):  # a fifth waiting call finds the room full
            await batcher.submit(9)
        release.set()
        assert await first == 0
        results = await asyncio.gather(*waiting, return_exceptions=True)
        assert results[:3] == [2, 4, 6] and isinstance(results[3], ValueError)
        # one batch of 4 failed on the bad item, then each was retried alone
        assert sizes[:2] == [1, 4] and sorted(sizes[2:]) == [1, 1, 1, 1]

    run_async(scenario)
