"""The web app's shared objects, typed: built once by the app's lifespan, handed to the
routers through :mod:`movierec.service.deps`, and changed only by a model reload (which
swaps ``engine``, ``scorer`` and ``conn`` together, the scorer first)."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from movierec.service.config import ServiceSettings
from movierec.service.gate import Batcher, InferenceGate
from movierec.service.ratelimit import TokenBuckets
from movierec.service.store import AsyncStore
from movierec.serving import LRUCache

if TYPE_CHECKING:
    from movierec.service.artwork import Artwork
    from movierec.service.scorer import ProcessScorer
    from movierec.serving import Engine


class Reloader(Protocol):
    """What routers read of the model reloader (:class:`movierec.service.reload.ModelReloader`,
    which itself reads this state: named by shape here, so the two modules import no circle)."""

    loaded_at: float
    last_error: str | None

    async def reload(self) -> Engine: ...


@dataclass(frozen=True, slots=True)
class Buckets:
    """The rate limits' token buckets (made with the app: its middleware holds them)."""

    writes: TokenBuckets  # per session
    addresses: TokenBuckets  # writes per client address
    sessions: TokenBuckets  # new sessions per client address


@dataclass(slots=True, eq=False)
class ServiceState:
    """Everything a request may need besides its own input (``app.state.service``)."""

    settings: ServiceSettings
    buckets: Buckets
    #: the catalogue database of the engine serving now (a reload opens the newer file)
    conn: sqlite3.Connection
    engine: Engine
    store: AsyncStore
    gate: InferenceGate
    artwork: Artwork
    #: concurrent recommendation misses scored together, by the engine serving at the time
    rec_batcher: Batcher[Any, Any]
    #: the scoring process (``inference_process``), or ``None``: the engine scores in threads
    scorer: ProcessScorer | None = None
    #: the model reloader (made from this state right after it)
    reloader: Reloader | None = None
    #: running prefetch tasks (a reference keeps each alive)
    prefetches: set[asyncio.Task[None]] = field(default_factory=set)
    #: search results and movie views; emptied on reload
    catalog_cache: LRUCache[Any, Any] = field(default_factory=lambda: LRUCache(4096))
