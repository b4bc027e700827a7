"""The engine a service process serves: built from a model directory and the catalogue,
checked, swapped in on a reload, and its process's heap frozen.

Everything here points down (models, serving, storage, the artwork lookups, the scoring
process): the web app (:mod:`movierec.service.app`), the scoring process
(:mod:`movierec.service.scorer`) and the admin router import it, never the other way round.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import sqlite3
import time
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import numpy as np

from movierec.service.artwork import Artwork, ArtworkCache, TmdbClient, artwork_path_for
from movierec.service.config import ServiceSettings
from movierec.serving import ANN_MIN_MOVIES
from movierec.storage.sessions import SessionState

if TYPE_CHECKING:
    from movierec.service.state import ServiceState

log = logging.getLogger(__name__)

__all__ = [
    "CONN_GRACE_S",
    "ModelReloader",
    "ReloadBusy",
    "ReloadError",
    "build_engine",
    "check_engine",
    "freeze_heap",
    "limit_torch_threads",
    "model_signature",
    "open_artwork",
    "start_scorer",
    "tmdb_ids",
]

#: seconds a reload leaves the previous catalogue connection open for requests under way
CONN_GRACE_S = 30.0


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


class ReloadError(RuntimeError):
    """A model reload failed; the previous engine keeps serving."""


class ReloadBusy(RuntimeError):
    """A model reload is already running."""


class ModelReloader:
    """Loads the model directory again and swaps the app's engine, all or nothing.

    The new engine is built (model, catalogue rows, in-memory cards) and checked
    with :func:`check_engine` in a worker thread, over its own database
    connection, and with ``inference_process`` its scoring process is started and
    waited for; only then are the state's ``scorer`` and ``engine`` replaced
    (the old scoring process finishes its queued batch, then exits).
    Requests already running finish with the engine they started with. On any
    failure the old engine stays, the error is logged and kept in
    :attr:`last_error`, and :class:`ReloadError` is raised.
    """

    def __init__(self, state: ServiceState, *, seen: tuple[Any, ...] | None = None) -> None:
        self.state = state
        self.settings = state.settings
        self.loaded_at = time.time()
        self.last_error: str | None = None
        self.reloads = 0
        self._running = False
        #: :meth:`signature` of the directory as it was just before the served model was read
        #: (pass the one taken before the first load: a change during start-up is then seen)
        self.seen = self.signature() if seen is None else seen

    def signature(self) -> tuple[Any, ...]:
        """:func:`model_signature` of the model directory now."""
        return model_signature(self.settings.resolved_model_dir)

    def _build(self) -> tuple[Any, Any, Any]:
        """The new engine, checked, (with ``inference_process``) its scoring process, started,
        and a connection to the catalogue as it is now (``data build`` may have swapped in a
        new file since the last load)."""
        from movierec.storage.db import connect

        conn = connect(self.settings.resolved_database_path)
        try:
            engine = build_engine(
                self.settings.resolved_model_dir,
                conn,
                ann_min_movies=self.settings.ann_min_movies,
                int8_heads=self.settings.int8_heads,
            )
            check_engine(engine)
        except BaseException:
            conn.close()
            raise
        return engine, start_scorer(self.settings) if self.settings.inference_process else None, conn

    async def reload(self) -> Any:
        """Build, check and swap in a new engine; returns it. Raises :class:`ReloadError` / :class:`ReloadBusy`."""
        if self._running:
            raise ReloadBusy("a model reload is already running; try again when it ends")
        self._running = True
        start = time.perf_counter()
        old = self.state.engine
        seen = self.signature()
        try:
            engine, scorer, conn = await anyio.to_thread.run_sync(self._build)
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.error(
                "model reload from %s failed (%s); still serving the previous model (%s, loaded %s)",
                self.settings.resolved_model_dir,
                self.last_error,
                old.model.name,
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.loaded_at)),
            )
            raise ReloadError(
                f"model reload failed: {self.last_error}; the previous model keeps serving"
            ) from exc
        finally:
            self._running = False
        self.seen = seen
        # the swap: reference assignments, the scorer first (see score_batch)
        state = self.state
        old_scorer, old_conn = state.scorer, state.conn
        state.scorer = scorer
        state.conn = conn
        state.engine = engine
        # requests under way may still read the old catalogue connection: close it later
        asyncio.get_running_loop().call_later(CONN_GRACE_S, old_conn.close)
        if old_scorer is not None:
            old_scorer.close()  # its queued batches finish first
        state.catalog_cache.clear()
        if state.artwork.client is not None:  # data build may have changed the links
            state.artwork.tmdb_ids = tmdb_ids(conn)
        del old
        freeze_heap(full=True)
        self.loaded_at = time.time()
        self.last_error = None
        self.reloads += 1
        log.info(
            "reloaded model %s from %s in %.2f s",
            engine.model.name,
            self.settings.resolved_model_dir,
            time.perf_counter() - start,
        )
        return engine

    async def reload_quietly(self) -> None:
        """:meth:`reload` for signal handlers and the watcher: failures are only logged."""
        with suppress(ReloadError, ReloadBusy):
            await self.reload()

    async def watch(self, interval_s: float) -> None:
        """Reload whenever :meth:`signature` changes, checking every ``interval_s`` seconds (runs until cancelled).

        A failed reload is retried only after the directory changes again.
        """
        tried = self.seen
        while True:
            if self.signature() not in (self.seen, tried):
                tried = self.signature()
                await self.reload_quietly()
            await anyio.sleep(interval_s)


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


def start_scorer(settings: ServiceSettings) -> Any:
    """A :class:`~movierec.service.scorer.ProcessScorer` over the settings' model and catalogue,
    its process ready (blocks until then; raises ``ScorerError`` if it cannot load them)."""
    from movierec.service.scorer import ProcessScorer

    scorer = ProcessScorer(
        settings.resolved_model_dir,
        settings.resolved_database_path,
        ann_min_movies=settings.ann_min_movies,
        int8_heads=settings.int8_heads,
    )
    scorer.start()
    return scorer


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
