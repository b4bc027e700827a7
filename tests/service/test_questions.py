"""``GET /api/session/question`` and ``POST /api/session/answer`` (issue "The recommender asks"):
a question comes from the session's own ranking, every answer changes the session as
documented, questions are not repeated when asked not to, and a visitor who always skips
still gets recommendations."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from movierec.data.dataset import Dataset
from movierec.service.app import create_app
from movierec.service.config import ServiceSettings
from movierec.settings import Settings


@pytest.fixture
def client(tmp_path: Path, tiny: Dataset, make_home: Callable[..., Path]) -> Iterator[TestClient]:
    root = make_home(tmp_path, tiny, "itemknn")
    svc = ServiceSettings(
        inference_process=False,
        settings=Settings(home=root),
        model_dir=root / "model",
        database_path=root / "db.sqlite3",
    )
    with TestClient(create_app(svc)) as c:
        yield c


def ask(c: TestClient, *avoid: str) -> dict[str, Any]:
    r = c.get("/api/session/question", params=[("avoid", a) for a in avoid])
    assert r.status_code == 200, r.text
    q: dict[str, Any] = r.json()["question"]
    return q


def answer(c: TestClient, q: dict[str, Any], a: int | str) -> dict[str, Any]:
    r = c.post(
        "/api/session/answer", json={"kind": q["kind"], "values": q["values"], "answer": a}, params={"n": 10}
    )
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def avoid_key(q: dict[str, Any]) -> str:
    return f"{q['kind']}:{','.join(str(v) for v in q['values'])}"


def test_a_question_and_its_answers(client: TestClient) -> None:
    q = ask(client)
    assert q["kind"] in ("movies", "tags", "era", "genre") and len(q["options"]) == 2 and q["prompt"]
    assert q["gain"] > 0 and sum(q["probabilities"]) == pytest.approx(1.0, abs=1e-3)
    # the session of a new visitor is created by its first answer, not by the question
    assert "movierec_session" not in client.cookies
    seen: list[str] = []
    changes: dict[str, dict[str, Any]] = {}
    for _ in range(12):  # bounded: answer option 0 of each kind of question once
        q = ask(client, *seen)
        if q is None:
            break
        seen.append(avoid_key(q))
        if q["kind"] not in changes:
            changes[q["kind"]] = {"question": q, "after": answer(client, q, 0)}
    assert changes, "no question was answered"
    for kind, got in changes.items():
        qq, after = got["question"], got["after"]
        if kind == "movies":
            assert qq["values"][0] in [m["movie_id"] for m in after["liked"]]
        elif kind == "tags":
            assert qq["values"][0] in after["liked_tags"]
        elif kind == "era":
            assert after["filters"]["year_max"] == qq["values"][0] - 1
        else:  # the genre's tag is liked (the tiny catalogue has genre tags)
            assert qq["values"][0].lower() in after["liked_tags"]
        assert after["recommendations"]["movies"]  # the list that answer gives, in the same round trip


def test_neither_and_skip(client: TestClient) -> None:
    q = ask(client)
    for _ in range(6):  # find a movie question (skipping others)
        if q["kind"] == "movies":
            break
        before = client.get("/api/session").json()
        after = answer(client, q, "skip")
        assert {k: after[k] for k in ("liked", "disliked", "liked_tags", "disliked_tags", "filters")} == {
            k: before[k] for k in ("liked", "disliked", "liked_tags", "disliked_tags", "filters")
        }
        q = ask(client, avoid_key(q))
    for _ in range(6):  # a tag question: "neither" dislikes both tags
        if q is None or q["kind"] == "tags":
            break
        q = ask(client, avoid_key(q))
    if q is not None and q["kind"] == "tags":
        after = answer(client, q, "neither")
        assert sorted(after["disliked_tags"]) == sorted(q["values"])


def test_a_visitor_who_always_skips_still_gets_recommendations(client: TestClient) -> None:
    avoid: list[str] = []
    for _ in range(10):
        q = ask(client, *avoid)
        if q is None:
            break
        assert answer(client, q, "skip")["recommendations"]["movies"]
        avoid.append(avoid_key(q))
    assert len(client.get("/api/recommendations", params={"n": 10}).json()["movies"]) == 10


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "movies", "values": [1], "answer": 0},  # one movie
        {"kind": "movies", "values": [1, 999999], "answer": 0},  # unknown movie
        {"kind": "tags", "values": ["no such tag", "space"], "answer": 1},
        {"kind": "era", "values": [1], "answer": 0},
        {"kind": "genre", "values": ["Western"], "answer": 0},
        {"kind": "movies", "values": [1, 2], "answer": 2},
        {"kind": "movies", "values": [1, 2], "answer": "maybe"},
        {"kind": "plot", "values": [1, 2], "answer": 0},
    ],
)
def test_bad_answers_are_refused(client: TestClient, body: dict[str, Any]) -> None:
    r = client.post("/api/session/answer", json=body)
    assert r.status_code == 422, r.text


def test_hostile_avoid_lists_are_harmless(client: TestClient) -> None:
    assert ask(client, "movies:x,y", "plot:1", ":::", "tags:" + "a," * 300)["kind"]
    assert client.get("/api/session/question", params=[("avoid", "x")] * 31).status_code == 422


def test_movierec_ask_in_a_terminal(tmp_path: Path, tiny_folder: Path) -> None:
    """`movierec ask`: the same questions and answers as the page, scripted here with --answers."""
    from typer.testing import CliRunner

    from movierec.cli import app
    from movierec.models.artifacts import save_model
    from movierec.models.registry import create

    folder = tiny_folder
    from movierec.data.load import load_dataset

    data = load_dataset(str(folder), Settings(home=tmp_path / "home"))
    save_model(create("itemknn").fit(data), tmp_path / "model")
    args = [
        "ask",
        "--model",
        str(tmp_path / "model"),
        "--dataset",
        str(folder),
        "--questions",
        "3",
        "-n",
        "5",
    ]
    r = CliRunner().invoke(app, [*args, "--answers", "1,n,s"])
    assert r.exit_code == 0, r.output
    assert r.output.count("   n) neither   s) skip   q) stop") == 3
    assert "> 1" in r.output and "> n" in r.output and "> s" in r.output
    listing = r.output.split("your list:")[1].strip().splitlines()
    assert len(listing) == 5 and listing[0].startswith("1. ")
    # interactive: a typed q stops at once, and the list still comes
    r = CliRunner().invoke(app, args, input="q\n")
    assert r.exit_code == 0 and r.output.count("n) neither") == 1 and "your list:" in r.output


def test_the_cli_recommends_what_the_page_does(tmp_path: Path, tiny_folder: Path) -> None:
    """`movierec recommend` goes through the page's engine: for the same session (likes, a
    disliked tag, a filter) it gives the same movies, in the same order, with the same reasons."""
    import json

    from typer.testing import CliRunner

    from movierec.cli import app
    from movierec.data.load import load_dataset
    from movierec.models.artifacts import save_model
    from movierec.models.registry import create

    home = tmp_path / "home"
    data = load_dataset(str(tiny_folder), Settings(home=home))
    save_model(create("itemknn").fit(data), tmp_path / "model")
    args = [
        "recommend",
        "--model",
        str(tmp_path / "model"),
        "--dataset",
        str(tiny_folder),
        "--json",
        "-n",
        "8",
        "--n-tags",
        "5",
    ]
    session = ["--like", "The Matrix", "--like", "10", "--dislike-tag", "dark", "--year-min", "1980"]
    r = CliRunner().invoke(app, [*args, *session])
    assert r.exit_code == 0, r.output
    cli = json.loads(r.output)
    svc = ServiceSettings(
        inference_process=False, settings=Settings(home=home), model_dir=tmp_path / "model"
    )  # the CLI's catalogue
    with TestClient(create_app(svc)) as c:
        matrix = c.get("/api/movies/search", params={"q": "the matrix"}).json()[0]["movie_id"]
        for movie in (matrix, 10):
            c.post("/api/session/items", json={"kind": "movie", "value": movie, "feedback": "like"})
        c.post("/api/session/items", json={"kind": "tag", "value": "dark", "feedback": "dislike"})
        c.put("/api/session/filters", json={"year_min": 1980})
        page = c.get("/api/recommendations", params={"n": 8, "n_tags": 5}).json()
    assert [(m["movie_id"], m["reason"]) for m in cli["movies"]] == [
        (m["movie_id"], m["reason"]) for m in page["movies"]
    ]
    assert cli["movies"] and all(m["year"] >= 1980 for m in cli["movies"])
    assert cli["tags"] and [t["tag"] for t in cli["tags"]] == [t["tag"] for t in page["tags"]]


def test_the_cli_similar_is_the_movie_views_similar(tmp_path: Path, tiny_folder: Path) -> None:
    """`movierec similar TITLE --model DIR` asks the page's engine: the movie view's neighbours,
    in the same order, for a model with its own neighbours (item-kNN) and one without (EASE);
    an unknown title is one clear line."""
    import json

    from typer.testing import CliRunner

    from movierec.cli import app
    from movierec.data.load import load_dataset
    from movierec.models.artifacts import save_model
    from movierec.models.registry import create

    home = tmp_path / "home"
    data = load_dataset(str(tiny_folder), Settings(home=home))
    for name in ("itemknn", "ease"):  # the model's own neighbours, a one-like session
        model_dir = tmp_path / name
        save_model(create(name).fit(data), model_dir)
        args = ["similar", "The Matrix", "--model", str(model_dir), "--dataset", str(tiny_folder), "-n", "5"]
        r = CliRunner().invoke(app, [*args, "--json"])
        assert r.exit_code == 0, r.output
        cli = json.loads(r.output)
        assert cli["model"] == name and len(cli["similar"]) == 5
        svc = ServiceSettings(inference_process=False, settings=Settings(home=home), model_dir=model_dir)
        with TestClient(create_app(svc)) as c:
            page = c.get(f"/api/movies/{cli['movie_id']}/similar", params={"n": 5}).json()
        assert [m["movie_id"] for m in cli["similar"]] == [m["movie_id"] for m in page]
        assert cli["movie_id"] not in [m["movie_id"] for m in page]
        text = CliRunner().invoke(app, args)
        assert text.exit_code == 0 and text.output.splitlines()[1].startswith("  1. ")
    r = CliRunner().invoke(
        app, ["similar", "No Such Film", "--model", str(tmp_path / "ease"), "--dataset", str(tiny_folder)]
    )
    assert r.exit_code != 0 and "Traceback" not in r.output


def test_the_cli_similar_in_the_models_embedding_space(tmp_path: Path, tiny_folder: Path) -> None:
    """`movierec similar TITLE --space embedding`: the nearest movies by the cosine of the
    model's own movie vectors (mf's factors here), as ``nearest_movies`` gives them, in the
    same text format as the page's space; a model without movie vectors (item-kNN) is one
    clear line naming it, exit code 2."""
    import json

    from typer.testing import CliRunner

    from movierec.cli import app
    from movierec.data.load import load_dataset
    from movierec.models.artifacts import load_model, save_model
    from movierec.models.registry import create
    from movierec.serving import nearest_movies

    data = load_dataset(str(tiny_folder), Settings(home=tmp_path / "home"))
    save_model(create("mf", factors=4, iterations=3).fit(data), tmp_path / "mf")
    save_model(create("itemknn").fit(data), tmp_path / "itemknn")
    args = ["similar", "The Matrix", "--dataset", str(tiny_folder), "-n", "5", "--model"]
    r = CliRunner().invoke(app, [*args, str(tmp_path / "mf"), "--space", "embedding", "--json"])
    assert r.exit_code == 0, r.output
    cli = json.loads(r.output)
    assert cli["model"] == "mf" and cli["space"] == "embedding" and len(cli["similar"]) == 5
    model = load_model(tmp_path / "mf")
    assert model.movies is not None
    want = nearest_movies(model, model.movies.index_one(cli["movie_id"]), 5)
    assert [(m["movie_id"], m["score"]) for m in cli["similar"]] == [(f.movie_id, f.score) for f in want]
    assert cli["movie_id"] not in [m["movie_id"] for m in cli["similar"]]
    assert all(m["title"] for m in cli["similar"])
    page = json.loads(CliRunner().invoke(app, [*args, str(tmp_path / "mf"), "--json"]).output)
    assert page["space"] == "page" and len(page["similar"]) == 5
    text = CliRunner().invoke(app, [*args, str(tmp_path / "mf"), "--space", "embedding"])
    lines = text.output.splitlines()
    assert text.exit_code == 0 and lines[0].endswith("by mf:") and len(lines) == 6
    assert [line.split(". ", 1)[1] for line in lines[1:]] == [m["title"] for m in cli["similar"]]
    assert lines[1].startswith("  1. ")
    r = CliRunner().invoke(app, [*args, str(tmp_path / "itemknn"), "--space", "embedding"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "'itemknn' has no movie embeddings" in " ".join(r.output.split())
    r = CliRunner().invoke(app, [*args, str(tmp_path / "mf"), "--space", "nowhere"])
    assert r.exit_code == 2
