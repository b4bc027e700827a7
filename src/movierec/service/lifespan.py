"""The web app's lifespan: what starts before the first request and stops after the last."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import anyio
import anyio.to_thread
from fastapi import FastAPI

from movierec.service.config import ServiceSettings
from movierec.service.deps import open_store
from movierec.service.engine import build_engine, freeze_heap, model_signature, open_artwork
from movierec.service.gate import Batcher, InferenceGate
from movierec.service.reload import ModelReloader, start_scorer
from movierec.service.state import Buckets, ServiceState
from movierec.serving import Answer, session_key
from movierec.storage.db import connect, migrate

log = logging.getLogger(__name__)


def score_batch(state: ServiceState, items: list[tuple[Any, int, int]]) -> list[Answer]:
    """The batcher's model call: ``Engine.recommend_many`` here, or in the scoring process
    when there is one (its answers are then remembered by this process's engine).

    The engine is read before the scorer and a reload swaps the scorer first: a batch
    never stores the old model's answers in the new engine's cache.
    """
    engine = state.engine
    scorer = state.scorer
    if scorer is None:
        return engine.recommend_many(items)
    answers: list[Answer] = scorer(items)
    for (session, n, n_tags), answer in zip(items, answers, strict=True):
        engine.remember(session, n, n_tags, answer)
    return answers


@asynccontextmanager
async def lifespan(
    app: FastAPI, settings: ServiceSettings, buckets: Buckets, watch_model_s: float | None
) -> AsyncIterator[None]:
    """Open the databases, load and check the engine, start the scoring process, the session
    sweep, the artwork lookups and the model watch; put the :class:`ServiceState` on
    ``app.state.service``; close everything on the way out."""

    start = time.perf_counter()
    conn = connect(settings.resolved_database_path)
    background: list[asyncio.Task[None]] = []
    hup = False
    state: ServiceState | None = None
    store = None
    try:
        migrate(conn)
        # before the model is read: a model saved while the service starts is reloaded
        seen = model_signature(settings.resolved_model_dir)
        store = open_store(settings)
        background.append(asyncio.create_task(sweep_sessions(store, settings)))
        gate = InferenceGate(settings.max_inference_threads, settings.max_waiting)
        # concurrent recommendation misses share one model call, always the state's current
        # engine. One scoring process works on one batch at a time: while it does, the next
        # batch gathers every request that arrives (a second batch in flight would only be smaller)
        rec_gate = InferenceGate(1, settings.max_waiting) if settings.inference_process else gate
        batcher: Batcher[Any, Answer] = Batcher(
            rec_gate,
            lambda items: score_batch(app.state.service, items),
            key=lambda item: (session_key(item[0]), int(item[1]), int(item[2])),
        )
        # engine and scorer made in place: no local reference here keeps them once a reload
        # swaps them out
        state = app.state.service = ServiceState(
            settings=settings,
            buckets=buckets,
            conn=conn,
            engine=build_engine(
                settings.resolved_model_dir,
                conn,
                ann_min_movies=settings.ann_min_movies,
                int8_heads=settings.int8_heads,
            ),
            store=store,
            gate=gate,
            artwork=open_artwork(settings, conn),
            rec_batcher=batcher,
            scorer=(
                await anyio.to_thread.run_sync(start_scorer, settings) if settings.inference_process else None
            ),
        )
        if state.artwork.client is not None:
            background.append(asyncio.create_task(state.artwork.run()))
        reloader = state.reloader = ModelReloader(state, seen=seen)
        if watch_model_s is not None:
            background.append(asyncio.create_task(reloader.watch(watch_model_s)))
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGHUP"):
            with suppress(NotImplementedError, RuntimeError, ValueError):
                asyncio.get_running_loop().add_signal_handler(
                    signal.SIGHUP,
                    lambda: background.append(asyncio.create_task(reloader.reload_quietly())),
                )
                hup = True
        freeze_heap()
        log.info("movierec service ready in %.2f s (pid %d)", time.perf_counter() - start, os.getpid())
        yield
    finally:
        if hup:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        for task in [*background, *(state.prefetches if state is not None else ())]:
            task.cancel()
        if state is not None and state.scorer is not None:
            await anyio.to_thread.run_sync(state.scorer.close, True)
        if store is not None:
            await anyio.to_thread.run_sync(store.close)
        if state is not None and state.artwork.cache is not None:
            state.artwork.cache.close()
        if state is not None:
            state.conn.close()  # a reload may have opened a newer one
        conn.close()


async def sweep_sessions(store: Any, settings: ServiceSettings) -> None:
    """Delete expired sessions now and every ``settings.session_sweep_s`` seconds (until
    cancelled): empty ones idle ``session_empty_days``, any idle ``session_idle_days``.
    A sweep that finds the database busy or failing is logged and tried at the next turn."""
    day = 24 * 3600.0
    while True:
        try:
            gone = await store.expire(
                empty_after_s=settings.session_empty_days * day, idle_after_s=settings.session_idle_days * day
            )
            if gone:
                log.info("deleted %d expired sessions", gone)
        except Exception as exc:
            log.warning(
                "session sweep failed (%s: %s); next try in %g s",
                type(exc).__name__,
                exc,
                settings.session_sweep_s,
            )
        await anyio.sleep(settings.session_sweep_s)
