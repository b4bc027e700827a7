"""Posters, stills and trailers from TMDB, looked up in the background and cached.

With a TMDB key (``MOVIEREC_TMDB_API_KEY``: a v4 read access token, sent as
``Authorization: Bearer``, or a v3 API key, sent as ``?api_key=``) the server looks up each
movie it shows through ``GET /movie/{tmdb_id}?append_to_response=images,videos``, keeps its
poster, up to :data:`MAX_STILLS` backdrops ("stills") and its official YouTube trailer, and
caches what it found, and what it did not find, in an SQLite file beside the catalogue
(:func:`artwork_path_for`; beside, not inside, because ``data build`` swaps in a new
catalogue file and the lookups must survive it). Lookups run in background tasks, at most
``tmdb_rate`` per second and ``tmdb_concurrency`` at once; a ``429`` pauses them all for its
``Retry-After``. A page request never waits for TMDB: a card shows what the cache holds now
(or the catalogue's own ``poster_path``, e.g. from ``movies_metadata.csv``, which needs no
key), and the lookup it triggers shows on the next answer.

Found entries are looked up again after ``artwork_refresh_days``, "not on TMDB" (404) after
``artwork_missing_days``, failures (timeouts, 5xx, answers that are not the JSON TMDB sends)
after :data:`ERROR_RETRY_S`. Paths and keys from TMDB are checked before they are kept: an
image path is one file name, a trailer key a YouTube id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

log = logging.getLogger(__name__)

__all__ = ["MAX_STILLS", "Art", "Artwork", "ArtworkCache", "TmdbClient", "artwork_path_for"]

#: backdrops kept per movie
MAX_STILLS = 4
#: seconds before a failed lookup is tried again
ERROR_RETRY_S = 3600.0
#: lookups waiting at most; more are dropped (the movie is asked for again when shown again)
MAX_QUEUE = 5000
_IMAGE_PATH = re.compile(r"^/[A-Za-z0-9_-]{1,100}\.(?:jpg|jpeg|png|webp)$")
_YOUTUBE_KEY = re.compile(r"^[A-Za-z0-9_-]{6,20}$")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS artwork (
    tmdb_id     INTEGER PRIMARY KEY,
    status      TEXT NOT NULL CHECK (status IN ('found', 'missing', 'error')),
    poster_path TEXT,
    backdrops   TEXT NOT NULL DEFAULT '[]',   -- JSON list of image paths
    trailer_key TEXT,                         -- YouTube video id
    fetched_at  REAL NOT NULL
) WITHOUT ROWID;
"""


def artwork_path_for(catalogue: Path | str) -> Path:
    """The artwork cache beside the catalogue: ``movierec.sqlite3`` -> ``movierec.artwork.sqlite3``."""
    path = Path(catalogue)
    return path.with_name(f"{path.stem}.artwork{path.suffix or '.sqlite3'}")


@dataclass(frozen=True, slots=True)
class Art:
    """What TMDB has for one movie: image paths (append them to an image base and a size,
    e.g. ``https://image.tmdb.org/t/p`` + ``/w342`` + path) and a YouTube video id."""

    poster_path: str | None = None
    backdrops: tuple[str, ...] = ()
    trailer_key: str | None = None


class TmdbUnavailable(Exception):
    """TMDB asked to wait (429) or failed; ``retry_after`` seconds, when it said."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def parse_movie(payload: Any) -> Art:
    """The :class:`Art` of a ``/movie/{id}?append_to_response=images,videos`` answer.

    Raises ``ValueError`` for anything that is not that answer's shape; keeps only image
    paths and trailer keys of the expected form (the best-voted backdrops first; the
    official trailer, else any trailer, else a teaser, on YouTube).
    """
    if not isinstance(payload, Mapping):
        raise ValueError(f"not a JSON object: {type(payload).__name__}")

    def image(value: Any) -> str | None:
        return value if isinstance(value, str) and _IMAGE_PATH.match(value) else None

    images = _field(payload, "images", Mapping) or {}
    raw = _field(images, "backdrops", list) or []

    def votes(b: Mapping[str, Any]) -> float:
        v = b.get("vote_average")
        return float(v) if isinstance(v, int | float) else 0.0

    ranked = sorted(
        (b for b in raw if isinstance(b, Mapping) and image(b.get("file_path"))), key=lambda b: -votes(b)
    )
    backdrops = [str(b["file_path"]) for b in ranked]
    if image(payload.get("backdrop_path")) and payload["backdrop_path"] not in backdrops:
        backdrops.insert(0, payload["backdrop_path"])
    videos = _field(payload, "videos", Mapping) or {}
    results = _field(videos, "results", list) or []
    youtube = [
        v
        for v in results
        if isinstance(v, Mapping) and v.get("site") == "YouTube" and isinstance(v.get("key"), str)
        and _YOUTUBE_KEY.match(v["key"])
    ]  # fmt: skip

    def rank(v: Mapping[str, Any]) -> tuple[int, int]:
        kind = {"Trailer": 0, "Teaser": 1}.get(str(v.get("type")), 2)
        return (kind, 0 if v.get("official") is True else 1)

    trailers = sorted((v for v in youtube if v.get("type") in ("Trailer", "Teaser")), key=rank)
    return Art(
        poster_path=image(payload.get("poster_path")),
        backdrops=tuple(backdrops[:MAX_STILLS]),
        trailer_key=str(trailers[0]["key"]) if trailers else None,
    )


def _field(obj: Mapping[str, Any], key: str, kind: type) -> Any:
    """``obj[key]`` if it is a ``kind``, else None (answers from outside are not trusted)."""
    value = obj.get(key)
    return value if isinstance(value, kind) else None


class TmdbClient:
    """``GET /movie/{id}`` on the TMDB API (or anything answering like it, e.g. a test's fake)."""

    def __init__(self, api_key: str, api_url: str, *, timeout_s: float = 5.0) -> None:
        key = api_key.strip()
        if not key:
            raise ValueError("a TMDB API key or read access token is needed")
        # a v4 read access token is a JWT (three dot-separated parts); a v3 key is 32 hex digits
        self._params = {} if key.count(".") == 2 else {"api_key": key}
        headers = {"Accept": "application/json", "User-Agent": "movierec"}
        if not self._params:
            headers["Authorization"] = f"Bearer {key}"
        self._http = httpx.AsyncClient(
            base_url=api_url.rstrip("/") + "/", headers=headers, timeout=timeout_s, follow_redirects=False
        )

    async def movie(self, tmdb_id: int) -> Art | None:
        """The movie's :class:`Art`; ``None`` if TMDB does not know it (404).

        Raises :class:`TmdbUnavailable` for 429 (with ``Retry-After``), other errors, timeouts
        and answers that are not the expected JSON.
        """
        try:
            r = await self._http.get(
                f"movie/{int(tmdb_id)}",
                params={
                    **self._params,
                    "append_to_response": "images,videos",
                    "include_image_language": "en,null",
                },
            )
        except httpx.HTTPError as exc:
            raise TmdbUnavailable(f"TMDB unreachable: {type(exc).__name__}") from exc
        if r.status_code == 404:
            return None
        if r.status_code == 429:
            raise TmdbUnavailable("TMDB rate limit", _retry_after(r.headers.get("retry-after")))
        if r.status_code != 200:
            raise TmdbUnavailable(
                f"TMDB answered {r.status_code}", _retry_after(r.headers.get("retry-after"))
            )
        try:
            return parse_movie(r.json())
        except (ValueError, json.JSONDecodeError) as exc:
            raise TmdbUnavailable(f"TMDB's answer is not what it should be: {exc}") from exc

    async def close(self) -> None:
        await self._http.aclose()


def _retry_after(value: str | None) -> float | None:
    try:
        return min(max(float(value), 0.0), 3600.0) if value is not None else None
    except ValueError:
        return None


class ArtworkCache:
    """The lookups' results, by TMDB id, in their own SQLite file (WAL; one writer: the fetcher)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=5.0)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)

    def load(self) -> dict[int, tuple[str, Art, float]]:
        """Every cached lookup: ``tmdb_id -> (status, art, fetched_at)``."""
        out: dict[int, tuple[str, Art, float]] = {}
        for tmdb_id, status, poster, backdrops, trailer, at in self._conn.execute(
            "SELECT tmdb_id, status, poster_path, backdrops, trailer_key, fetched_at FROM artwork"
        ):
            try:
                stills = tuple(str(b) for b in json.loads(backdrops))
            except (ValueError, TypeError):
                stills = ()
            out[int(tmdb_id)] = (str(status), Art(poster, stills, trailer), float(at))
        return out

    def put(self, tmdb_id: int, status: str, art: Art, fetched_at: float) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO artwork (tmdb_id, status, poster_path, backdrops, trailer_key, fetched_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                int(tmdb_id),
                status,
                art.poster_path,
                json.dumps(list(art.backdrops)),
                art.trailer_key,
                fetched_at,
            ),
        )

    def close(self) -> None:
        self._conn.close()


class Artwork:
    """What the pages show of each movie's artwork, and the background lookups that fill it.

    ``tmdb_ids`` maps movie ids to TMDB ids (the catalogue's ``links``). Without a
    ``client`` nothing is looked up and :meth:`overlay` leaves cards as they are.
    """

    def __init__(
        self,
        tmdb_ids: Mapping[int, int],
        cache: ArtworkCache | None = None,
        client: TmdbClient | None = None,
        *,
        rate: float = 20.0,
        concurrency: int = 4,
        refresh_s: float = 30 * 86400.0,
        missing_s: float = 7 * 86400.0,
    ) -> None:
        if rate <= 0 or concurrency < 1:
            raise ValueError("rate must be positive and concurrency at least 1")
        self.tmdb_ids = dict(tmdb_ids)
        self.cache = cache
        self.client = client
        self.rate, self.concurrency = float(rate), int(concurrency)
        self.refresh_s, self.missing_s = float(refresh_s), float(missing_s)
        self._known: dict[int, tuple[str, Art, float]] = cache.load() if cache is not None else {}
        self._queue: asyncio.Queue[int] | None = None
        self._queued: set[int] = set()
        self._next_at = 0.0  # the earliest moment the next request may start (rate, Retry-After)
        self._slot = asyncio.Lock() if client is not None else None
        self.requests = 0  # lookups sent (the tests and the closing figures read it)

    # ------------------------------------------------------------- the page's side (no I/O)
    def art(self, movie_id: int) -> Art | None:
        """The cached :class:`Art` of a movie TMDB has; ``None`` otherwise. Asks for a lookup
        when the cache has nothing fresh (never waits for it)."""
        tmdb = self.tmdb_ids.get(int(movie_id))
        if tmdb is None:
            return None
        known = self._known.get(tmdb)
        if known is None or self._stale(known):
            self._want(tmdb)
        return known[1] if known is not None and known[0] == "found" else None

    def overlay(self, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Card rows with the cached poster where there is one (a new dict for those)."""
        if self.client is None and not self._known:  # no key, nothing cached: cards as they are
            return list(rows)
        out = []
        for row in rows:
            art = self.art(int(row["movie_id"]))
            out.append(
                {**row, "poster_path": art.poster_path} if art is not None and art.poster_path else row
            )
        return out

    def _stale(self, known: tuple[str, Art, float]) -> bool:
        status, _, at = known
        age = {"found": self.refresh_s, "missing": self.missing_s}.get(status, ERROR_RETRY_S)
        return time.time() - at > age

    def _want(self, tmdb_id: int) -> None:
        if self._queue is None or tmdb_id in self._queued:
            return
        try:
            self._queue.put_nowait(tmdb_id)
        except asyncio.QueueFull:
            return
        self._queued.add(tmdb_id)

    # ------------------------------------------------------------- the background lookups
    async def run(self) -> None:
        """Look up what :meth:`art` asked for until cancelled (``concurrency`` workers)."""
        if self.client is None:
            return
        self._queue = asyncio.Queue(MAX_QUEUE)
        workers = [asyncio.create_task(self._worker()) for _ in range(self.concurrency)]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
            self._queue = None
            await self.client.close()

    async def _turn(self) -> None:
        """Wait for this request's turn: at most ``rate`` starts per second, none before a
        ``Retry-After`` has passed."""
        assert self._slot is not None
        async with self._slot:
            now = time.monotonic()
            wait = self._next_at - now
            self._next_at = max(now, self._next_at) + 1.0 / self.rate
        if wait > 0:
            await asyncio.sleep(wait)

    async def _worker(self) -> None:
        assert self._queue is not None and self.client is not None
        while True:
            tmdb_id = await self._queue.get()
            try:
                await self._look_up(tmdb_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("artwork lookup of TMDB id %d failed", tmdb_id)
            finally:
                self._queued.discard(tmdb_id)

    async def _look_up(self, tmdb_id: int) -> None:
        assert self.client is not None
        for _ in range(3):  # a 429 is waited out and tried again, twice
            await self._turn()
            self.requests += 1
            try:
                art = await self.client.movie(tmdb_id)
            except TmdbUnavailable as exc:
                if exc.retry_after is not None:
                    self._next_at = max(self._next_at, time.monotonic() + exc.retry_after)
                    if "rate limit" in str(exc):
                        continue
                log.warning("artwork of TMDB id %d: %s", tmdb_id, exc)
                self._store(tmdb_id, "error", Art())
                return
            self._store(tmdb_id, "missing" if art is None else "found", art or Art())
            return
        self._store(tmdb_id, "error", Art())

    def _store(self, tmdb_id: int, status: str, art: Art) -> None:
        at = time.time()
        self._known[tmdb_id] = (status, art, at)
        if self.cache is not None:
            try:
                self.cache.put(tmdb_id, status, art, at)
            except sqlite3.Error as exc:  # a full disk costs the cache, not the page
                log.warning("artwork cache: %s", exc)
