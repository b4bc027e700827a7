"""Rate limits on writes: in-memory token buckets per session and per client address.

Writes are ``POST``, ``PUT``, ``PATCH`` and ``DELETE`` under ``/api/``. Each write
takes a token from its session's bucket (the session cookie when it names a known
session, else the client address: cookie-less or forged-cookie floods share one
bucket per address) and one from its client address's bucket, whose larger limit
bounds one client however many sessions it holds (minting a cookie every 40 writes
once got round the per-session limit 16 times over). Reads are never limited. Over
a limit: 429 with ``Retry-After`` and a JSON message.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from http.cookies import SimpleCookie

from starlette.types import ASGIApp, Receive, Scope, Send

from movierec.storage.sessions import StoreBusy

__all__ = ["RateLimit", "TokenBuckets"]

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: what a well-formed session token looks like (anything else is never looked up)
TOKEN = re.compile(r"[A-Za-z0-9_\-]{16,128}")


class TokenBuckets:
    """Token buckets keyed by string: ``rate`` tokens/second, at most ``burst`` stored.

    Thread-safe. Memory is bounded: a bucket idle long enough to be full again
    is dropped (it equals a new one), and beyond ``max_buckets`` the least
    recently used bucket is dropped.

    Parameters
    ----------
    rate : float
        Tokens added per second (> 0).
    burst : int
        Bucket capacity (>= 1): the most writes allowed at once.
    max_buckets : int
        Most buckets kept (>= 1).
    clock : callable, optional
        Seconds as a float, monotonic; ``time.monotonic`` by default (tests pass a fake).
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        max_buckets: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not rate > 0 or burst < 1 or max_buckets < 1:
            raise ValueError(
                f"need rate > 0, burst >= 1, max_buckets >= 1; got {rate}, {burst}, {max_buckets}"
            )
        self.rate = float(rate)
        self.burst = int(burst)
        self.max_buckets = int(max_buckets)
        self._clock = clock
        self._lock = threading.Lock()
        # key -> (tokens, last update); least recently used first
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._refill_s = self.burst / self.rate

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> float:
        """Take one token for ``key``; 0.0 if allowed, else seconds until one is available."""
        with self._lock:
            now = self._clock()
            # drop buckets idle long enough to be full (oldest first)
            while self._buckets:
                oldest, (_, last) = next(iter(self._buckets.items()))
                if now - last < self._refill_s or oldest == key:
                    break
                self._buckets.popitem(last=False)
            tokens, last = self._buckets.pop(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self.max_buckets:
                self._buckets.popitem(last=False)
            return wait


#: ``scope["state"]`` key under which :class:`RateLimit` leaves a session token it found in
#: the store, so that the request's own session check need not ask the store again
VERIFIED_TOKEN = "movierec.verified_session"


class RateLimit:
    """ASGI middleware: limits writes under ``/api/`` per session and per client address
    (see module docstring); the session check asks the ``store`` of the app's
    :class:`~movierec.service.state.ServiceState` (an :class:`~movierec.service.store.AsyncStore`)."""

    def __init__(
        self, app: ASGIApp, buckets: TokenBuckets, cookie_name: str, addresses: TokenBuckets
    ) -> None:
        self.app = app
        self.buckets = buckets
        self.addresses = addresses
        self.cookie_name = cookie_name

    async def _key(self, scope: Scope, address: str) -> str:
        token = ""
        for k, v in scope.get("headers", []):
            if k == b"cookie":
                try:
                    morsel = SimpleCookie(v.decode("latin-1")).get(self.cookie_name)
                except Exception:  # malformed cookie header: no token
                    morsel = None
                if morsel is not None:
                    token = morsel.value
        if TOKEN.fullmatch(token):
            service = getattr(getattr(scope.get("app"), "state", None), "service", None)
            store = getattr(service, "store", None)
            if store is not None and await store.exists(token):
                scope.setdefault("state", {})[VERIFIED_TOKEN] = token
                return "s:" + token
        return "ip:" + address

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") not in WRITE_METHODS
            or not str(scope.get("path", "")).startswith("/api/")
        ):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = str(client[0]) if client else "?"
        limit = self.addresses
        wait = self.addresses.take(address)
        if wait <= 0.0:
            limit = self.buckets
            try:
                key = await self._key(scope, address)
            except StoreBusy as exc:  # the session check needs the database: not now
                detail = json.dumps({"detail": str(exc)}).encode()
                await _answer(send, 503, detail, exc.retry_after)
                return
            wait = self.buckets.take(key)
        if wait <= 0.0:
            await self.app(scope, receive, send)
            return
        retry = max(1, math.ceil(wait))
        who = b"address" if limit is self.addresses else b"session"
        body = (
            b'{"detail":"too many changes from this %s (limit %g per second, burst %d); retry in %d s"}'
            % (who, limit.rate, limit.burst, retry)
        )
        await _answer(send, 429, body, retry)


async def _answer(send: Send, status: int, body: bytes, retry_after: int) -> None:
    """A JSON answer with ``Retry-After``, straight from the middleware."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(retry_after).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
