"""Bounded off-loop execution of model calls: a thread limiter plus a waiting-room cap."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")


class Busy(RuntimeError):
    """Too many model calls are waiting; the client should retry later."""

    retry_after = 1


class InferenceGate:
    """Runs blocking callables in worker threads, at most ``threads`` at once.

    At most ``max_waiting`` further calls may wait for a thread; a call beyond
    that raises :class:`Busy` at once instead of queueing without bound.
    """

    def __init__(self, threads: int, max_waiting: int) -> None:
        self._limiter = anyio.CapacityLimiter(threads)
        self._threads = threads
        self._max_waiting = max_waiting
        self._pending = 0

    @property
    def pending(self) -> int:
        """Calls running or waiting now."""
        return self._pending

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        if self._pending >= self._threads + self._max_waiting:
            raise Busy("the recommender is busy; retry in a moment")
        self._pending += 1
        try:
            return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)
        finally:
            self._pending -= 1
