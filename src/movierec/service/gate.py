"""Bounded off-loop execution of model calls: a thread limiter plus a waiting-room cap,
and a batcher that groups concurrent calls into one model call."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")
X = TypeVar("X")
Y = TypeVar("Y")


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
    def threads(self) -> int:
        return self._threads

    @property
    def max_waiting(self) -> int:
        return self._max_waiting

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


class Batcher(Generic[X, Y]):
    """Groups concurrent calls of ``fn(items) -> results`` into batches run through a gate.

    A call arriving while fewer than ``gate.threads`` batches run starts a batch
    at once (alone, when the server is quiet: no added delay); calls arriving
    while every thread is busy wait and leave together, up to ``max_batch`` at a
    time, when a batch ends. A model scores a batch of sessions for little more
    than the cost of one, so this is what keeps latency flat under load. Beyond
    ``gate.max_waiting`` waiting calls, :class:`Busy`. Use from one event loop.

    With ``key``, a call whose ``key(item)`` equals that of a call still waiting or
    running shares its result instead of queueing again (a prefetch and the request
    it anticipated are scored once); a caller that gives up does not cancel the
    shared call.
    """

    def __init__(
        self,
        gate: InferenceGate,
        fn: Callable[[list[X]], Sequence[Y]],
        max_batch: int = 16,
        key: Callable[[X], Hashable] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.gate = gate
        self.fn = fn
        self.max_batch = max_batch
        self.key = key
        self._inflight: dict[Hashable, asyncio.Future[Y]] = {}
        self._queue: list[tuple[X, asyncio.Future[Y]]] = []
        self._active = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0
        self.items = 0

    async def submit(self, item: X) -> Y:
        """``fn([item, ...])``'s result for ``item``; raises :class:`Busy` when the waiting room is full."""
        k = self.key(item) if self.key is not None else None
        if k is not None and k in self._inflight:
            return await asyncio.shield(self._inflight[k])
        if self.gate.pending >= self.gate.threads + self.gate.max_waiting:
            raise Busy("the recommender is busy; retry in a moment")
        entry = (item, asyncio.get_running_loop().create_future())
        self._queue.append(entry)
        self._drain()
        if len(self._queue) > self.gate.max_waiting and any(e is entry for e in self._queue):
            self._queue = [e for e in self._queue if e is not entry]
            raise Busy("the recommender is busy; retry in a moment")
        if k is None:
            return await entry[1]
        fut = self._inflight[k] = entry[1]
        fut.add_done_callback(lambda done: self._forget(k, done))
        return await asyncio.shield(fut)

    def _forget(self, key: Hashable, done: asyncio.Future[Y]) -> None:
        if self._inflight.get(key) is done:
            del self._inflight[key]

    def _drain(self) -> None:
        self._queue = [e for e in self._queue if not e[1].done()]  # drop cancelled callers
        while self._queue and self._active < self.gate.threads:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            self._active += 1
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[X, asyncio.Future[Y]]]) -> None:
        try:
            results = await self.gate.run(self.fn, [item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batch function gave {len(results)} results for {len(batch)} items")
        except Exception as exc:
            if len(batch) > 1 and not isinstance(exc, Busy):
                await self._one_by_one(batch)  # one bad item must not fail the others
            else:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
        except BaseException as exc:  # cancelled: so are the callers
            for _, fut in batch:
                fut.cancel()
            raise exc
        else:
            self.batches += 1
            self.items += len(batch)
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)
        finally:
            self._active -= 1
            self._drain()

    async def _one_by_one(self, batch: list[tuple[X, asyncio.Future[Y]]]) -> None:
        for item, fut in batch:
            if fut.done():
                continue
            try:
                (result,) = await self.gate.run(self.fn, [item])
            except Exception as exc:
                if not fut.done():
                    fut.set_exception(exc)
            else:
                if not fut.done():
                    fut.set_result(result)
