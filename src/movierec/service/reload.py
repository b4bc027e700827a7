"""Model reloading: a new engine (and its scoring process) built, checked and swapped into
the service's state, all or nothing.

It points down to :mod:`movierec.service.engine` (building and checking) and
:mod:`movierec.service.scorer`; the lifespan and the admin router use it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import suppress
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from movierec.service.config import ServiceSettings
from movierec.service.engine import build_engine, check_engine, freeze_heap, model_signature, tmdb_ids

if TYPE_CHECKING:
    from movierec.service.state import ServiceState

log = logging.getLogger(__name__)

__all__ = ["CONN_GRACE_S", "ModelReloader", "ReloadBusy", "ReloadError", "start_scorer"]

#: seconds a reload leaves the previous catalogue connection open for requests under way
CONN_GRACE_S = 30.0


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
