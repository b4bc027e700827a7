"""Scoring in a child process (``ServiceSettings.inference_process``): the same answers
as the engine in the server process, reloads swap the process too, a killed child is
replaced, and a child whose server dies exits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from movierec.data.dataset import Dataset
from movierec.models.artifacts import save_model
from movierec.models.registry import create
from movierec.service.app import build_engine, create_app
from movierec.service.config import ServiceSettings
from movierec.service.scorer import ProcessScorer, ScorerError
from movierec.serving import Answer
from movierec.settings import Settings
from movierec.storage.catalog import build_catalog
from movierec.storage.db import connect
from movierec.storage.session_state import SessionState

LOCAL = ("127.0.0.1", 50000)
STATES = [
    SessionState(),
    SessionState(liked=[2, 10]),
    SessionState(liked=[10, 2], disliked=[3], filters={"year_min": 1990}),
    SessionState(liked=[5], liked_tags=["crime"]),
    SessionState(liked=[2]),  # what the app test's visitor likes
]

#: what an operator's script sends (a browser cannot, across sites, without a preflight)
ADMIN = {"X-Movierec-Admin": "1"}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, tiny: Dataset, make_home: Callable[..., Path]) -> Path:
    return make_home(tmp_path_factory.mktemp("scorer"), tiny, "itemknn")


@pytest.fixture(scope="module")
def scorer(home: Path) -> Iterator[ProcessScorer]:
    s = ProcessScorer(home / "model", home / "db.sqlite3")
    assert s.start(timeout=120) == "itemknn"
    yield s
    s.close()


def in_process(home: Path, model_dir: Path | None = None) -> list[Answer]:
    """What a fresh engine in this process answers for :data:`STATES`."""
    conn = connect(home / "db.sqlite3")
    try:
        engine = build_engine(model_dir or home / "model", conn)
    finally:
        conn.close()
    return engine.recommend_many([(s, 6, 3) for s in STATES])


def movie_ids(answer: Answer | dict[str, Any]) -> list[int]:
    """The movie ids of an engine answer or of the API's JSON answer."""
    if isinstance(answer, Answer):
        return [m.movie_id for m in answer.movies]
    return [int(m["movie_id"]) for m in answer["movies"]]


def test_the_child_answers_as_the_engine_here(scorer: ProcessScorer, home: Path) -> None:
    assert scorer([(s, 6, 3) for s in STATES]) == in_process(home)
    assert scorer.pid is not None and scorer.pid != os.getpid()


def test_a_killed_child_is_replaced(scorer: ProcessScorer, home: Path) -> None:
    pid = scorer.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    assert scorer([(s, 6, 3) for s in STATES]) == in_process(home)
    assert scorer.restarts == 1 and scorer.pid not in (None, pid)


def test_a_model_the_child_cannot_load_is_a_clear_error(tmp_path: Path, home: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "meta.json").write_text("{not json")
    bad = ProcessScorer(tmp_path / "model", home / "db.sqlite3")
    with pytest.raises(ScorerError, match="could not load the model"):
        bad.start(timeout=120)


def test_the_app_scores_in_the_child_and_a_reload_replaces_it(
    tmp_path: Path, home: Path, tiny: Dataset
) -> None:
    model_dir = tmp_path / "model"
    save_model(create("itemknn").fit(tiny), model_dir)
    svc = ServiceSettings(
        settings=Settings(home=tmp_path),
        model_dir=model_dir,
        database_path=home / "db.sqlite3",
        inference_process=True,
    )
    with TestClient(create_app(svc), client=LOCAL) as c:
        app: Any = c.app
        first = app.state.service.scorer
        assert first is not None and first.pid is not None
        assert (
            c.post("/api/session/items", json={"kind": "movie", "value": 2, "feedback": "like"}).status_code
            == 200
        )
        r = c.get("/api/recommendations", params={"n": 6, "n_tags": 3})
        assert r.status_code == 200, r.text
        assert movie_ids(r.json()) == movie_ids(in_process(home, model_dir)[4])
        # the answer came from the child and is remembered here: no second model call
        assert app.state.service.engine.recommend_cached(SessionState(liked=[2]), 6, 3) is not None

        save_model(create("pop").fit(tiny), model_dir)
        assert c.post("/api/admin/reload", headers=ADMIN).status_code == 200
        assert app.state.service.scorer is not first and app.state.service.scorer.pid not in (None, first.pid)
        assert c.get("/api/health").json()["model"] == "pop"
        r = c.get("/api/recommendations", params={"n": 6, "n_tags": 3})
        assert movie_ids(r.json()) == movie_ids(in_process(home, model_dir)[4])
    # the app closed its scorer: the child exits
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _alive(app.state.service.scorer.pid):
        time.sleep(0.2)
    assert not _alive(app.state.service.scorer.pid)


CHILD_OF_A_DYING_PARENT = """
import os, sys
from pathlib import Path
from movierec.service.scorer import ProcessScorer
if __name__ == "__main__":
    s = ProcessScorer(Path(sys.argv[1]), Path(sys.argv[2]))
    s.start(timeout=120)
    print(s.pid, flush=True)
    os.kill(os.getpid(), 9)
"""


def test_the_child_exits_when_its_server_is_killed(tmp_path: Path, home: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(CHILD_OF_A_DYING_PARENT)
    out = subprocess.run(
        [sys.executable, str(script), str(home / "model"), str(home / "db.sqlite3")],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == -9, out.stderr
    child = int(out.stdout.split()[0])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.2)
    assert not _alive(child)


def _alive(pid: int | None) -> bool:
    """Whether ``pid`` is a running process (a zombie counts as gone)."""
    if pid is None:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_a_scorer_that_keeps_dying_is_a_503_not_a_500(tmp_path: Path, home: Path) -> None:
    svc = ServiceSettings(
        settings=Settings(home=tmp_path),
        model_dir=home / "model",
        database_path=home / "db.sqlite3",
        inference_process=True,
    )
    with TestClient(create_app(svc), client=LOCAL) as c:
        app: Any = c.app
        real = app.state.service.scorer

        def broken(requests: list[Any]) -> list[Any]:
            raise ScorerError("the scoring process died twice in a row")

        app.state.service.scorer = broken
        try:
            c.post("/api/session/items", json={"kind": "movie", "value": 2, "feedback": "like"})
            r = c.get("/api/recommendations")
        finally:
            app.state.service.scorer = real
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert "restarting" in r.json()["detail"]


def test_int8_heads_reach_the_scoring_process(tmp_path: Path, tiny: Dataset) -> None:
    """``ServiceSettings.int8_heads`` (on by default) gets the sequence model's int8 heads in
    the server's engine and in the scoring process alike, so both answer the same."""
    model = create("sequence", embed_dim=16, hidden_dim=32, max_len=8, epochs=2, patience=0, batch_size=32)
    save_model(model.fit(tiny), tmp_path / "model")
    conn = connect(tmp_path / "db.sqlite3")
    try:
        build_catalog(tiny, conn)
        assert build_engine(tmp_path / "model", conn).model.config.int8_heads is False
        here = build_engine(tmp_path / "model", conn, int8_heads=True)
    finally:
        conn.close()
    assert here.model.config.int8_heads is True and ServiceSettings().int8_heads is True
    s = ProcessScorer(tmp_path / "model", tmp_path / "db.sqlite3", int8_heads=True)
    try:
        assert s.start(timeout=120) == "sequence"
        requests = [(st, 6, 3) for st in STATES]
        assert s(requests) == here.recommend_many(requests)
    finally:
        s.close(wait=True)


def test_answers_cross_the_process_boundary_unchanged() -> None:
    """Answers pickle as constructor calls (cheaper than dataclass slots state); nothing lost."""
    import pickle

    from movierec.serving import Answer, ScoredMovie, ScoredTag

    answer = Answer(
        (ScoredMovie(1, 0.5, "because you liked X"), ScoredMovie(2, 0.25)),
        (ScoredTag("heist", 1.0),),
        True,
        ("n",),
    )
    back = pickle.loads(pickle.dumps([answer, answer], protocol=5))
    assert back == [answer, answer] and back[0].movies[1].reason is None


def test_a_remembered_answer_is_one_object_for_the_garbage_collector() -> None:
    """The engine's caches hold thousands of answers: their columns are tuples of numbers and
    strings, which the collector stops tracking, so a full collection does not walk each
    movie of each remembered answer (per-movie slots objects made the saturated p99 longer)."""
    import gc

    from movierec.serving import Answer

    answer = Answer.from_columns(
        [1, 2], [0.5, 0.25], ["because you liked X", None], ["heist"], [1.0], False, ("n",)
    )
    gc.collect()
    columns = [getattr(answer, name) for name in Answer.FIELDS if name != "fallback"]
    assert not any(gc.is_tracked(c) for c in columns)
    assert [m.movie_id for m in answer.movies] == [1, 2] and answer.tags[0].tag == "heist"
    with pytest.raises(ValueError, match="2 movies, 2 scores and 1 reasons"):
        Answer.from_columns([1, 2], [0.5, 0.25], ["x"])
