"""The load test in a bounded form: ``benchmarks/load_test.py``'s click loop and browse
mix against a real uvicorn server (127.0.0.1, a scoring process, a tiny sequence model),
a few visitors for a few seconds. Every request must succeed; recommendations must
flow; the server-side timings must be sane. The full sweep and its figures are the
script's job (README, closing notes)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from movierec.data.dataset import Dataset
from movierec.models.artifacts import save_model
from movierec.models.registry import create
from movierec.storage.catalog import build_catalog
from movierec.storage.db import connect

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "load_test.py"
VISITORS = 6
SECONDS = 3.0
MAX_REQUESTS = 1500


@pytest.fixture(scope="module")
def load_test() -> ModuleType:
    spec = importlib.util.spec_from_file_location("movierec_load_test", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def server(
    load_test: ModuleType, tmp_path_factory: pytest.TempPathFactory, tiny: Dataset
) -> Iterator[tuple[str, int]]:
    home = tmp_path_factory.mktemp("load")
    model = create("sequence", embed_dim=16, hidden_dim=32, max_len=8, epochs=2, patience=0, batch_size=32)
    save_model(model.fit(tiny), home / "model")
    conn = connect(home / "db.sqlite3")
    build_catalog(tiny, conn)
    conn.close()
    proc, url = load_test.start_server(str(home / "model"), str(home / "db.sqlite3"), 120.0, 1, "process", 24)
    try:
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.mark.parametrize(("scenario", "two_trips"), [("click", False), ("click", True), ("browse", False)])
def test_a_bounded_crowd_gets_every_answer(
    load_test: ModuleType,
    server: tuple[str, int],
    scenario: str,
    two_trips: bool,
    run_async: Callable[..., Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, pid = server
    result = run_async(
        lambda: load_test.level(
            url, VISITORS, SECONDS, MAX_REQUESTS, 0, pid, scenario, 3, "lean", 0.0, two_trips
        ),
        timeout=SECONDS + 60,
    )
    load_test.report(result)  # the figures, in the test log
    stats = result["stats"]
    out = capsys.readouterr().out
    assert sum(stats.errors.values()) == 0, out
    assert 0 < stats.requests <= MAX_REQUESTS
    assert len(stats.rec_latency) >= VISITORS, out  # every visitor got recommendations, repeatedly
    assert len(stats.rec_server_ms) == len(stats.rec_latency) and max(stats.rec_server_ms) < 10_000
    if scenario == "browse" or two_trips:
        assert len(stats.latency["recommendations"]) == len(stats.rec_latency), out
    elif scenario == "click":  # the changes bring their recommendations back: no second request
        assert {"search", "like+recs", "filters+recs"} <= set(stats.latency), out
        assert len(stats.rec_latency) >= len(stats.latency["filters+recs"]) + len(stats.latency["like+recs"])
        assert "recommendations" not in stats.latency, out
    if scenario == "click" and two_trips:
        assert {"search", "like", "filters", "recommendations"} <= set(stats.latency), out
    assert result["wall_s"] < SECONDS + 30  # bounded: the budget stops every visitor
