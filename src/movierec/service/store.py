"""The session store for the event loop: every database call runs in a worker thread.

:class:`~movierec.storage.sessions.SessionStore` is blocking (SQLite or psycopg). Run
on the event loop, one write waiting for a lock held by another process (a backup, an
open ``sqlite3`` shell, a second server) stalled every request, ``/api/health``
included. Here reads and writes go to two small thread pools of their own, so a write
that waits never holds up a read, and nothing waits on the loop. The store bounds the
wait (``wait_s``) and raises :class:`~movierec.storage.sessions.StoreBusy`, which the
app answers with 503 and ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from movierec.storage.session_state import Feedback, Kind, SessionState
from movierec.storage.sessions import SessionStore

T = TypeVar("T")

__all__ = ["AsyncStore"]


class AsyncStore:
    """Awaitable :class:`SessionStore` methods (same names, same errors).

    Parameters
    ----------
    store:
        The blocking store; :meth:`close` closes it.
    threads:
        Worker threads for reads and, separately, for writes. The store serialises
        each kind on its connection, so a few threads suffice; they only let waiting
        calls queue off the event loop.
    """

    def __init__(self, store: SessionStore, threads: int = 4) -> None:
        self.sync = store
        self.backend = store.backend
        self._reads = ThreadPoolExecutor(threads, thread_name_prefix="store-read")
        self._writes = ThreadPoolExecutor(threads, thread_name_prefix="store-write")

    async def _read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._reads, functools.partial(fn, *args, **kwargs)
        )

    async def _write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._writes, functools.partial(fn, *args, **kwargs)
        )

    # reads
    async def exists(self, token: str) -> bool:
        return await self._read(self.sync.exists, token)

    async def get(self, token: str | None) -> SessionState:
        """The session's state; an empty one for ``None`` (a visitor who has not written yet)."""
        if token is None:
            return SessionState()
        return await self._read(self.sync.get, token)

    async def count(self) -> int:
        return await self._read(self.sync.count)

    # writes
    async def create(self) -> str:
        return await self._write(self.sync.create)

    async def add(self, token: str, kind: Kind, value: int | str, feedback: Feedback) -> SessionState:
        return await self._write(self.sync.add, token, kind, value, feedback)

    async def remove(self, token: str, kind: Kind, value: int | str) -> SessionState:
        return await self._write(self.sync.remove, token, kind, value)

    async def reorder(self, token: str, kind: Kind, feedback: Feedback, ordered: list[Any]) -> SessionState:
        return await self._write(self.sync.reorder, token, kind, feedback, ordered)

    async def set_filters(self, token: str, filters: dict[str, Any]) -> SessionState:
        return await self._write(self.sync.set_filters, token, filters)

    async def add_favourite(self, token: str, movie_id: int) -> SessionState:
        return await self._write(self.sync.add_favourite, token, movie_id)

    async def remove_favourite(self, token: str, movie_id: int) -> SessionState:
        return await self._write(self.sync.remove_favourite, token, movie_id)

    async def expire(self, *, empty_after_s: float, idle_after_s: float) -> int:
        return await self._write(self.sync.expire, empty_after_s=empty_after_s, idle_after_s=idle_after_s)

    def close(self) -> None:
        """Wait for the calls under way, then close the store."""
        self._reads.shutdown(wait=True)
        self._writes.shutdown(wait=True)
        self.sync.close()
