"""The engine a service process serves: built from a model directory and the catalogue,
checked, and its process's heap frozen.

Everything here points down (models, serving, storage, the artwork lookups): the scoring
process (:mod:`movierec.service.scorer`), the reloader (:mod:`movierec.service.reload`) and
the web app import it, never the other way round.
"""

from __future__ import annotations

import gc
import logging
import math
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from movierec.service.artwork import Artwork, ArtworkCache, TmdbClient, artwork_path_for
from movierec.service.config import ServiceSettings
from movierec.serving import ANN_MIN_MOVIES
from movierec.storage.session_state import SessionState

log = logging.getLogger(__name__)

__all__ = [
    "build_engine",
    "check_engine",
    "freeze_heap",
    "limit_torch_threads",
    "model_signature",
    "open_artwork",
    "tmdb_ids",
]


def build_engine(
    model_dir: Path, conn: Any, *, ann_min_movies: int = ANN_MIN_MOVIES, int8_heads: bool = False
) -> Any:
    """Load the model at ``model_dir`` and align it with the catalogue in ``conn``.

    ``ann_min_movies``: catalogue size from which the engine ranks through an ANN
    index (:attr:`ServiceSettings.ann_min_movies`; 0 never). ``int8_heads``: score with
    int8 output heads where the model has them (:attr:`ServiceSettings.int8_heads`).

    Raises :class:`~movierec.models.artifacts.ArtifactError` for a missing, truncated
    or tampered artifact (checksums), ``RuntimeError`` for an empty catalogue.
    """
    from movierec.models.artifacts import load_model
    from movierec.serving import Engine
    from movierec.storage.catalog import all_movies_with_tags

    model = load_model(model_dir)
    if int8_heads and hasattr(model.config, "int8_heads"):
        model.config.int8_heads = True
    rows = all_movies_with_tags(conn)
    if not rows:
        raise RuntimeError(
            "the catalogue database holds none of the model's movies; build it from the model's data "
            "(`movierec run` does this)"
        )
    return Engine.from_rows(model, rows, ann_min_movies=ann_min_movies)


def check_engine(engine: Any) -> None:
    """Raise ``RuntimeError`` unless ``engine`` recommends sensibly.

    Its model's floating-point weights must all be finite (NaN weights would
    otherwise make every session fall back to popularity without a word), and an
    empty session and one that liked the most rated movie must both get movies
    with finite scores.
    """

    state = engine.model.state() if hasattr(engine.model, "state") else {}
    broken = sorted(
        name
        for name, values in state.items()
        if np.asarray(values).dtype.kind == "f" and not np.isfinite(values).all()
    )
    if broken:
        raise RuntimeError(f"the model's weights hold NaN or infinity in {broken}")

    top = int(engine.model.movies.ids[int(engine.catalog.rating_count.argmax())])
    for probe in (SessionState(), SessionState(liked=[top])):
        rec = engine.recommend(probe, 10, 5)
        if not rec.movies:
            raise RuntimeError(f"the model recommends nothing for the probe session {probe.liked}")
        if not all(math.isfinite(m.score) for m in rec.movies):
            raise RuntimeError("the model gives non-finite scores (broken weights?)")


def model_signature(root: Path) -> tuple[Any, ...]:
    """What changes when a model directory is rewritten: its inode and its files' sizes and times."""
    try:
        files = sorted(
            (p.name, st.st_ino, st.st_size, st.st_mtime_ns)
            for p in root.iterdir()
            if p.is_file() and (st := p.stat())
        )
        return (root.stat().st_ino, tuple(files))
    except OSError as exc:
        return ("unreadable", str(exc))


def tmdb_ids(conn: sqlite3.Connection) -> dict[int, int]:
    """Movie id -> TMDB id of every catalogue movie that has one."""
    return {int(m): int(t) for m, t in conn.execute("SELECT movie_id, tmdb_id FROM movies WHERE tmdb_id > 0")}


def open_artwork(settings: ServiceSettings, conn: sqlite3.Connection) -> Artwork:
    """The app's :class:`~movierec.service.artwork.Artwork`: with ``tmdb_api_key``, its cache
    beside the catalogue and a TMDB client (start :meth:`Artwork.run`); without, one that
    leaves cards as they are and sends nothing anywhere."""
    s = settings.settings
    if s.tmdb_api_key is None:
        return Artwork({})
    return Artwork(
        tmdb_ids(conn),
        ArtworkCache(artwork_path_for(settings.resolved_database_path)),
        TmdbClient(s.tmdb_api_key, s.tmdb_api_url, timeout_s=settings.tmdb_timeout_s),
        rate=settings.tmdb_rate,
        concurrency=settings.tmdb_concurrency,
        refresh_s=settings.artwork_refresh_days * 86400.0,
        missing_s=settings.artwork_missing_days * 86400.0,
    )


def freeze_heap(*, full: bool = False) -> None:
    """Exempt every object alive now (the engine and its catalogue copy, the app, torch)
    from the cyclic garbage collector's full collections (``gc.freeze``).

    A serving process holds millions of long-lived objects; without this each full
    collection walked all of them: measured under load, pauses of about 120 ms every
    6-7 s in which every request of the process waited (the p99 at 50 visitors).
    Frozen objects are still freed when no longer referenced. Before freezing, the
    young generations are collected (cheap); ``full``: unfreeze and collect everything
    first (a reload, so that the previous engine's reference cycles go too; a full
    collection of a large heap takes a few hundred ms).
    """
    if full:
        gc.unfreeze()
        gc.collect()
    else:
        gc.collect(1)
    gc.freeze()


def limit_torch_threads(n: int = 1) -> None:
    """One intra-op torch thread per model call (if torch is installed): the gate's
    threads, and several worker processes, already use the cores in parallel."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is an optional extra
        return
    torch.set_num_threads(n)
