"""Harness, reports and the ``evaluate`` command on small synthetic data."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from movierec.cli.evaluate import register
from movierec.data.dataset import Dataset
from movierec.evaluation.harness import evaluate
from movierec.evaluation.report import format_table, json_lines, write_report

N_USERS, N_MOVIES, PER_USER = 30, 120, 12


def _tables(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ratings and movies in MovieLens CSV shape; three taste groups of 40 movies."""
    rng = np.random.default_rng(seed)
    group = np.arange(N_USERS) % 3
    picks = np.argsort(rng.random((N_USERS, 40)), axis=1)[:, :PER_USER] + 40 * group[:, None]
    user = np.repeat(np.arange(N_USERS), PER_USER)
    ratings = pd.DataFrame(
        {
            "userId": user + 1,
            "movieId": picks.ravel() + 1,
            "rating": rng.integers(1, 11, user.size) / 2.0,
            "timestamp": rng.permutation(user.size) + 1_000_000,
        }
    )
    movies = pd.DataFrame(
        {
            "movieId": np.arange(1, N_MOVIES + 1),
            "title": [f"Film {i} (1995)" for i in range(N_MOVIES)],
            "genres": np.array(["Action|Drama", "Comedy", "Drama"], dtype=object)[np.arange(N_MOVIES) % 3],
        }
    )
    return ratings, movies


@pytest.fixture(scope="module")
def data() -> Dataset:
    ratings, movies = _tables()
    return Dataset.build("toy", ratings, movies)


def test_evaluate_is_deterministic_and_seed_dependent(data: Dataset) -> None:
    a = evaluate(["pop"], data, "topn", seed=3, n_resamples=100)[0]
    b = evaluate(["pop"], data, "topn", seed=3, n_resamples=100)[0]
    c = evaluate(["pop"], data, "topn", seed=4, n_resamples=100)[0]
    assert a.metrics == b.metrics and a.ci == b.ci
    assert a.metrics != c.metrics
    assert a.protocol == "topn" and a.dataset == "toy" and a.model == "pop"
    assert a.n_users == N_USERS and set(a.users) == set(range(N_USERS))


def test_unsupported_model_gives_a_row_not_a_crash(data: Dataset) -> None:
    (res,) = evaluate(["pop"], data, "rating", n_resamples=50)
    assert not res.supported and "does not predict ratings" in res.message
    table = format_table([res])
    assert "n/a" in table and "unsupported" in table


def test_model_overrides_reach_the_model(data: Dataset) -> None:
    by_count, by_rating = (
        evaluate(["pop"], data, "topn", n_resamples=50, model_overrides=o)[0]
        for o in ({"pop": {"by": "count"}}, {"pop": {"by": "rating"}})
    )
    assert by_count.metrics != by_rating.metrics
    with pytest.raises(ValueError, match="not evaluated"):
        evaluate(["pop"], data, "topn", model_overrides={"mf": {}})


def test_bad_arguments(data: Dataset) -> None:
    with pytest.raises(ValueError, match="unknown protocol"):
        evaluate(["pop"], data, "bogus")
    with pytest.raises(ValueError, match="no models"):
        evaluate([], data, "topn")
    with pytest.raises(ValueError, match="split"):
        evaluate(["pop"], data, "next-item", split="u1")


@pytest.mark.parametrize("protocol", ["topn", "topn-sampled", "next-item"])
def test_reports(data: Dataset, protocol: str, tmp_path: Path) -> None:
    results = evaluate(["pop"], data, protocol, ks=(5, 10), n_resamples=50)
    table = format_table(results)
    assert "ndcg@10" in table and "pop" in table
    if protocol == "topn-sampled":
        assert "sampled" in table
    (line,) = json_lines(results)
    obj = json.loads(line)
    assert {"protocol", "dataset", "model", "metrics", "fit_seconds", "eval_seconds", "ci"} <= set(obj)
    assert obj["metrics"]["ndcg@10"] == pytest.approx(results[0].metrics["ndcg@10"], abs=1e-6)
    path = write_report(results, tmp_path / "rep")
    text = path.read_text()
    assert "| pop |" in text and "ndcg@5" in text
    images = [p for p in (tmp_path / "rep").iterdir() if p.suffix in (".svg", ".png")]
    assert images, "report has no plots"
    for p in images:
        assert p.name in text
        if p.suffix == ".svg":
            ET.parse(p)  # well-formed XML
    assert (tmp_path / "rep" / "results.jsonl").read_text().strip() == line


def _cli() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command("noop")
    def noop() -> None:  # a second command keeps typer from collapsing the group
        """Nothing."""

    return app


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("toy-set")
    ratings, movies = _tables()
    ratings.to_csv(root / "ratings.csv", index=False)
    movies.to_csv(root / "movies.csv", index=False)
    return root


def test_cli_json_lines_parse(folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOVIEREC_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(
        _cli(),
        [
            "evaluate",
            "--dataset",
            str(folder),
            "--protocol",
            "next-item",
            "--models",
            "pop",
            "--k",
            "5",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in result.output.strip().splitlines()]
    assert len(lines) == 1
    assert lines[0]["protocol"] == "next-item" and lines[0]["model"] == "pop"
    assert set(lines[0]["metrics"]) == {"hr@5", "ndcg@5", "mrr@5"}


def test_cli_table_and_report(folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOVIEREC_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(
        _cli(),
        [
            "evaluate",
            "-d",
            str(folder),
            "--models",
            "pop,pop",
            "--seed",
            "1",
            "--report",
            str(tmp_path / "r"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "ndcg@20" in result.output and result.output.count("\npop ") == 2
    assert (tmp_path / "r" / "report.md").exists()


def test_cli_rejects_unknown_protocol(folder: Path) -> None:
    result = CliRunner().invoke(_cli(), ["evaluate", "-d", str(folder), "--protocol", "nope"])
    assert result.exit_code != 0
    assert "next-item" in result.output
