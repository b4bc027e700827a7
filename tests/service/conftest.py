"""A small MovieLens-shaped data set and a fitted ``pop`` model for the service tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pytest

from movierec.data.dataset import Dataset
from movierec.models.artifacts import save_model
from movierec.models.registry import create
from movierec.storage.catalog import build_catalog
from movierec.storage.db import connect

T = TypeVar("T")

GENRES = ["Action", "Comedy", "Drama", "Sci-Fi", "Thriller", "Romance"]


def small_frames() -> dict[str, pd.DataFrame]:
    """Raw MovieLens-shaped tables (``ratings``, ``movies``, ``tags``, ``links``): 30 movies (ids 1..30, years 1975..2019), 12 users, a few tags.

    Movie 2 is "Matrix, The (1999)", movie 7 has an HTML-ish title and movie 3 a
    "<script>" tag, so the page can be checked to render them as text.
    """
    rng = np.random.default_rng(7)
    ids = np.arange(1, 31)
    years = 1975 + (ids * 3) % 45
    titles = [f"Movie {i} ({y})" for i, y in zip(ids, years, strict=True)]
    titles[1] = "Matrix, The (1999)"
    titles[2] = "Matrix Reloaded, The (2003)"
    titles[6] = "<b>Bold</b> & <script>alert(1)</script> (2012)"
    titles[9] = "Heat (1995)"
    genres = ["|".join(GENRES[j] for j in {i % 6, (i * 5) % 6}) for i in ids]
    genres[1] = "Action|Sci-Fi|Thriller"
    movies = pd.DataFrame({"movieId": ids, "title": titles, "genres": genres})
    rows = []
    for u in range(1, 13):
        seen = rng.choice(ids, size=12, replace=False, p=(31 - ids) / (31 - ids).sum())
        for k, m in enumerate(seen):
            rows.append((u, int(m), float(rng.integers(1, 11)) / 2, 1_000_000 + 60 * k))
    ratings = pd.DataFrame(rows, columns=["userId", "movieId", "rating", "timestamp"])
    tags = pd.DataFrame(
        [
            (1, 2, "cyberpunk", 1),
            (2, 2, "cyberpunk", 2),
            (1, 2, "philosophy", 3),
            (3, 3, "cyberpunk", 4),
            (3, 3, "<script>x</script>", 5),
            (4, 10, "heist", 6),
            (5, 10, "crime", 7),
            (5, 11, "crime", 8),
            (6, 12, "funny", 9),
            (6, 13, "funny", 10),
            (7, 20, "space", 11),
            (7, 21, "space", 12),
            (8, 25, "dark", 13),
            (8, 4, "dark", 14),
        ],
        columns=["userId", "movieId", "tag", "timestamp"],
    )
    links = pd.DataFrame({"movieId": ids, "imdbId": 133093 + ids, "tmdbId": 600 + ids})
    return {"ratings": ratings, "movies": movies, "tags": tags, "links": links}


def small_dataset() -> Dataset:
    """The :func:`small_frames` tables as a :class:`Dataset` named ``tiny``."""
    f = small_frames()
    return Dataset.build("tiny", f["ratings"], f["movies"], tags=f["tags"], links=f["links"])


def model_and_catalog(root: Path, data: Dataset, model: str = "pop", db: str = "db.sqlite3") -> Path:
    """Save ``model`` fitted on ``data`` at ``root/model`` and build its catalogue in ``root/db``; returns ``root``."""
    save_model(create(model).fit(data), root / "model")
    conn = connect(root / db)
    try:
        build_catalog(data, conn)
    finally:
        conn.close()
    return root


@pytest.fixture(scope="session")
def make_home() -> Callable[..., Path]:
    """:func:`model_and_catalog`, for tests to build model + catalogue folders."""
    return model_and_catalog


def run_in_fresh_thread(main: Callable[[], Coroutine[Any, Any, T]], timeout: float = 30.0) -> T:
    """``asyncio.run(main())`` in a new thread (it has no event loop, whatever the session's
    browser fixtures left running in this one); its result, or its exception re-raised here."""
    out: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            out.append(asyncio.run(main()))
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(timeout)
    assert not worker.is_alive(), f"the coroutine did not finish in {timeout:g} s"
    if errors:
        raise errors[0]
    return out[0]


@pytest.fixture(scope="session")
def run_async() -> Callable[..., Any]:
    """:func:`run_in_fresh_thread`."""
    return run_in_fresh_thread


@pytest.fixture(scope="session")
def tiny() -> Dataset:
    return small_dataset()


@pytest.fixture
def tiny_frames() -> dict[str, pd.DataFrame]:
    return small_frames()


@pytest.fixture
def tiny_folder(
    tmp_path: Path, tiny_frames: dict[str, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The tiny data set as a folder of MovieLens CSV files, with MOVIEREC_HOME at ``tmp_path/home``."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    for name, frame in tiny_frames.items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    monkeypatch.setenv("MOVIEREC_HOME", str(tmp_path / "home"))
    return folder
