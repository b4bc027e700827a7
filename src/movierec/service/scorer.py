"""Recommendation scoring in a child process, away from the web server's GIL.

A model call in a worker thread shares the interpreter lock with the event
loop: every torch or numpy operation gives the lock up and must wait for it
back while the loop runs Python, so under load a batch that needs 15 ms of CPU
took 50-170 ms of wall time and every recommendation waited behind it. A
:class:`ProcessScorer` owns one spawned process holding its own
:class:`~movierec.serving.Engine` over the same model directory and catalogue;
the web app's batcher hands it whole batches (a worker thread waits on the
answer with the lock released) and keeps the answers in its own engine's cache.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from movierec.serving import ANN_MIN_MOVIES, Answer

log = logging.getLogger(__name__)

__all__ = ["ProcessScorer", "ScorerError"]

_ENGINE: Any = None  # the child's engine, set by _child_init


class ScorerError(RuntimeError):
    """The scoring process could not start (bad model, bad catalogue) or died twice in a row."""


def _exit_with(parent: int) -> None:
    """Exit as soon as ``parent`` is no longer this process's parent (it died, even by SIGKILL)."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def _child_init(model_dir: str, database_path: str, ann_min_movies: int, int8_heads: bool) -> None:
    """Runs once in the child: follow the parent's death, one torch thread, then load the engine."""
    global _ENGINE
    from movierec.service.engine import build_engine, freeze_heap, limit_torch_threads
    from movierec.storage.db import connect

    threading.Thread(target=_exit_with, args=(os.getppid(),), daemon=True).start()
    limit_torch_threads()
    conn = connect(Path(database_path))
    try:
        _ENGINE = build_engine(Path(model_dir), conn, ann_min_movies=ann_min_movies, int8_heads=int8_heads)
    finally:
        conn.close()
    freeze_heap()


def _child_ready() -> str:
    return str(_ENGINE.model.name)


def _child_recommend_many(requests: list[tuple[Any, int, int]]) -> list[Answer]:
    return _ENGINE.recommend_many(requests)


class ProcessScorer:
    """``scorer(requests)`` is ``Engine.recommend_many(requests)`` computed in a child process.

    Parameters
    ----------
    model_dir, database_path:
        The model artifact and the catalogue database the child builds its engine from
        (the same the web app's engine was built from).
    ann_min_movies, int8_heads:
        As :attr:`~movierec.service.config.ServiceSettings.ann_min_movies` and ``int8_heads``.

    The process is spawned (not forked: the parent runs an event loop and torch
    threads), so, as with any spawned process, a script that builds the app with
    ``inference_process`` must start it under ``if __name__ == "__main__":``.
    :meth:`start` waits until its engine is loaded and raises :class:`ScorerError`
    if it cannot be. A child that dies (killed, out of memory) is replaced once per
    call; one whose parent dies exits. :meth:`close` lets queued calls finish, then
    the child exits. Calls are thread-safe and block the calling thread only.
    """

    def __init__(
        self,
        model_dir: Path,
        database_path: Path,
        *,
        ann_min_movies: int = ANN_MIN_MOVIES,
        int8_heads: bool = False,
    ) -> None:
        self._args = (str(model_dir), str(database_path), int(ann_min_movies), bool(int8_heads))
        self._lock = threading.Lock()
        self._pool = self._new_pool()
        self.restarts = 0

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_child_init,
            initargs=self._args,
        )

    def start(self, timeout: float = 300.0) -> str:
        """Wait until the child's engine is loaded; returns the model's name."""
        try:
            return str(self._pool.submit(_child_ready).result(timeout))
        except BrokenProcessPool as exc:
            self.close()
            raise ScorerError(
                f"the scoring process could not load the model at {self._args[0]} "
                "(see the log above for the reason)"
            ) from exc
        except TimeoutError as exc:
            self.close()
            raise ScorerError(f"the scoring process did not load the model within {timeout:g} s") from exc

    def __call__(self, requests: list[tuple[Any, int, int]]) -> list[Answer]:
        pool = self._pool
        try:
            return pool.submit(_child_recommend_many, requests).result()
        except BrokenProcessPool:
            with self._lock:  # one replacement however many calls saw it die
                if self._pool is pool:
                    log.error("the scoring process died; starting a new one")
                    self._pool = self._new_pool()
                    self.restarts += 1
            try:
                return self._pool.submit(_child_recommend_many, requests).result()
            except BrokenProcessPool as exc:
                raise ScorerError("the scoring process died twice in a row") from exc

    @property
    def pid(self) -> int | None:
        """The child's process id (``None`` before it has started)."""
        procs = list(getattr(self._pool, "_processes", None) or {})
        return int(procs[0]) if procs else None

    def close(self, wait: bool = False) -> None:
        """Let queued calls finish, then stop the child; ``wait``: until it has (at shutdown:
        the pool's queues are then released before this process exits)."""
        self._pool.shutdown(wait=wait)
