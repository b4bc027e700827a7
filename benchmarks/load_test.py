"""Load test of the movierec web API: concurrent anonymous visitors doing the click loop.

Each visitor (an HTTP client with its own cookie jar, so its own session)
repeats what the page does: search -> like a found movie -> reorder the liked
movies -> set a filter -> add a recommended movie to favourites (with an unlike
/ unfavourite now and then so its lists stay short). Like the page, every
change to the session (like, reorder, unlike, filter) brings back the
recommendations of the changed session in its answer (``?n=24&n_tags=12``, one
round trip; ``--two-trips``: a change, then ``GET /api/recommendations``, as the
page did before), so each of those is a fresh session state: a cache miss that
the model must score. Every answer that carries recommendations counts as a
recommendation request (the ``recommendations`` figures). The run is
a sweep over visitor counts, each level bounded by ``--seconds`` and
``--max-requests``, its visitors arriving over the first ``--ramp-s``
seconds (default 1, as people do; 0: all in the same millisecond); it
prints throughput, p50/p95/p99 latency per endpoint and errors (any non-2xx
answer or transport failure).

``--scenario browse`` is the read-heavy mix instead: each visitor likes a few
movies once, then repeats: get recommendations -> open one recommended movie
-> every ``--like-every`` rounds, like a recommended movie (so its session, and
its recommendations, change; beyond 30 likes it unlikes the oldest).

Without ``--url`` it starts ``uvicorn`` (``--workers`` processes) on
``create_app`` over HOME's model and catalogue (``movierec run`` prepares them)
on a free 127.0.0.1 port, with the per-session write limit raised so that it
measures capacity (against ``--url`` a 429 counts as an error). ``--url`` must
point at 127.0.0.1 or localhost: this is not a tool for loading other people's
servers.

The load generator shares the machine with the server: it uses a lean HTTP/1.1
client (``--client lean``, a fraction of httpx's CPU per request), can lower its
own priority (``--nice``), and reports per level its own CPU use, the server's
(all its processes) and the machine's load average, so that a reader can tell
a saturated server from a starved generator.

Example::

    MOVIEREC_HOME=/tmp/loadhome python benchmarks/load_test.py --visitors 1,10,25,50,100 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import socket
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import numpy as np

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
WORDS = ["the", "star", "love", "man", "war", "matrix", "god", "night", "king", "lord", "toy", "dark", "life"]
KEEP = 30  # trim liked movies / favourites beyond this many

LAUNCHER = """
import json, os, sys
from pathlib import Path
import uvicorn
from movierec.service.app import SETTINGS_ENV, create_app, limit_torch_threads
from movierec.service.config import ServiceSettings
from movierec.settings import Settings
model, db, port, workers, process = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "process"
prefetch = int(sys.argv[6])
svc = ServiceSettings(settings=Settings(), model_dir=Path(model) if model else None,
                      database_path=Path(db) if db else None, write_rate=1e6, write_burst=10**6,
                      address_write_rate=1e6, address_write_burst=10**6, session_create_rate=1e6, session_create_burst=10**6,
                      max_waiting=10_000, inference_process=process, prefetch_n=prefetch)
quiet = dict(host="127.0.0.1", port=port, log_level="warning", access_log=False)
if workers == 1:
    limit_torch_threads()
    uvicorn.run(create_app(svc), **quiet)
else:
    os.environ[SETTINGS_ENV] = json.dumps({"settings": json.loads(svc.model_dump_json())})
    uvicorn.run("movierec.service.app:app_from_env", factory=True, workers=workers, **quiet)
"""


@dataclass
class Stats:
    """Latencies (seconds) and failures per endpoint name, for one sweep level."""

    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    error_samples: list[str] = field(default_factory=list)
    rec_server_ms: list[float] = field(default_factory=list)
    #: latency of every answer that carried recommendations (their own endpoint or a change's)
    rec_latency: list[float] = field(default_factory=list)
    requests: int = 0

    def record(self, name: str, seconds: float, ok: bool, sample: str = "") -> None:
        self.requests += 1
        self.latency[name].append(seconds)
        if not ok:
            self.errors[name] += 1
            if len(self.error_samples) < 5:
                self.error_samples.append(f"{name}: {sample}")


class Budget:
    """Stops every visitor at a deadline or after a request count; paces them with a think time.

    ``think_s``: mean pause of a visitor after each answer before its next request
    (exponentially distributed, so visitors do not march in step; 0: none, every
    visitor keeps one request in flight all the time, a stress test that finds where
    the server saturates rather than what a paced crowd sees).
    """

    def __init__(self, seconds: float, max_requests: int, think_s: float = 0.0, seed: int = 0) -> None:
        self.deadline = time.perf_counter() + seconds
        self.left = max_requests
        self.think_s = think_s
        self._rng = np.random.default_rng(seed)

    async def think(self) -> None:
        if self.think_s > 0:
            await asyncio.sleep(float(self._rng.exponential(self.think_s)))

    def take(self) -> bool:
        if self.left <= 0 or time.perf_counter() >= self.deadline:
            return False
        self.left -= 1
        return True


@dataclass
class Answer:
    """An HTTP answer: status and body."""

    status_code: int
    content: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


class LeanClient:
    """A minimal HTTP/1.1 keep-alive client over one asyncio connection, with one cookie jar.

    It costs the load generator a fraction of ``httpx``'s CPU per request, so more of
    the shared cores go to the server. It sends ``Content-Length`` bodies and reads
    ``Content-Length`` or chunked answers; anything unexpected raises ``OSError``.
    """

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.timeout = timeout
        self.cookies: dict[str, str] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> LeanClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None

    async def request(
        self, method: str, url: str, *, params: dict[str, Any] | None = None, json: Any = None
    ) -> Answer:
        try:
            return await asyncio.wait_for(self._request(method, url, params, json), self.timeout)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            await self.aclose()
            raise

    async def _request(self, method: str, url: str, params: dict[str, Any] | None, body_json: Any) -> Answer:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        target = url + ("?" + urlencode(params) if params else "")
        body = b"" if body_json is None else json.dumps(body_json).encode()
        head = [
            f"{method} {target} HTTP/1.1",
            f"host: {self.host}:{self.port}",
            f"content-length: {len(body)}",
        ]
        if body_json is not None:
            head.append("content-type: application/json")
        if self.cookies:
            head.append("cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        self._writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        status_line = await self._reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length, chunked, close = 0, False, False
        while (line := await self._reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif name == "connection":
                close = value.lower() == "close"
            elif name == "set-cookie":
                key, _, rest = value.partition("=")
                self.cookies[key.strip()] = rest.split(";", 1)[0]
        if chunked:
            chunks = []
            while size := int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16):
                chunks.append(await self._reader.readexactly(size + 2))
            await self._reader.readuntil(b"\r\n")
            content = b"".join(c[:-2] for c in chunks)
        else:
            content = await self._reader.readexactly(length)
        if close:
            await self.aclose()
        return Answer(status, content)


Client = httpx.AsyncClient | LeanClient


def make_client(url: str, kind: str) -> Client:
    """One visitor's client: ``lean`` (:class:`LeanClient`) or ``httpx`` (one connection)."""
    if kind == "lean":
        return LeanClient(url)
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    return httpx.AsyncClient(base_url=url, timeout=30.0, limits=limits)


RECS = {"n": 24, "n_tags": 12}  # what the page asks for


async def call(
    client: Client,
    stats: Stats,
    budget: Budget,
    name: str,
    method: str,
    url: str,
    recs: bool = False,
    **kw: Any,
) -> Any:
    """One request; returns the JSON body of a 2xx answer, else ``None``. Raises ``StopAsyncIteration`` when the budget is spent.

    ``recs``: the answer should carry recommendations (it is the recommendations, or a
    change's answer with them); when it does they count in ``stats.rec_latency``.
    """
    if not budget.take():
        raise StopAsyncIteration
    start = time.perf_counter()
    try:
        r = await client.request(method, url, **kw)
    except (TimeoutError, httpx.HTTPError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
        stats.record(name, time.perf_counter() - start, False, repr(exc))
        await budget.think()
        return None
    elapsed = time.perf_counter() - start
    ok = r.is_success
    stats.record(name, elapsed, ok, f"{r.status_code} {r.text[:120]}")
    body = r.json() if ok else None
    if recs and body is not None:
        rec = body if "movies" in body else body.get("recommendations")
        if rec is not None:
            stats.rec_latency.append(elapsed)
            stats.rec_server_ms.append(float(rec["elapsed_ms"]))
    await budget.think()
    return body


async def visitor(
    url: str,
    rng: np.random.Generator,
    stats: Stats,
    budget: Budget,
    client: str = "lean",
    two_trips: bool = False,
) -> None:
    """One anonymous visitor doing the page's click loop until the budget is spent."""
    async with make_client(url, client) as c:
        liked: list[int] = []
        favourites: list[int] = []
        shown: list[int] = []

        async def change(name: str, method: str, path: str, body: Any) -> None:
            """A session change and (as the page does) the recommendations it gives: in its
            answer, else (``two_trips``, or a busy recommender) from their own endpoint."""
            nonlocal liked, shown
            if two_trips:
                s = await call(c, stats, budget, name, method, path, json=body)
            else:
                s = await call(c, stats, budget, name + "+recs", method, path, True, json=body, params=RECS)
            if s is None:
                return
            liked = [m["movie_id"] for m in s["liked"]]
            rec = s.get("recommendations")
            if rec is None:
                rec = await call(c, stats, budget, "recommendations", "GET", "/api/recommendations", True)
            if rec is not None:
                shown = [int(m["movie_id"]) for m in rec["movies"]]

        try:
            while True:
                q = WORDS[int(rng.integers(len(WORDS)))]
                found = await call(c, stats, budget, "search", "GET", "/api/movies/search", params={"q": q})
                if found:
                    mid = int(found[int(rng.integers(len(found)))]["movie_id"])
                    if mid not in liked:
                        body = {"kind": "movie", "value": mid, "feedback": "like"}
                        await change("like", "POST", "/api/session/items", body)
                if len(liked) > 1:
                    order = [liked[i] for i in rng.permutation(len(liked))]
                    body = {"kind": "movie", "feedback": "like", "ordered": order}
                    await change("reorder", "PUT", "/api/session/order", body)
                if len(liked) > KEEP:
                    await change(
                        "unlike", "DELETE", "/api/session/items", {"kind": "movie", "value": liked[0]}
                    )
                filters = [{}, {"min_rating": 3.0}, {"year_min": 1980}, {"min_rating": 3.5, "year_max": 2010}]
                await change(
                    "filters", "PUT", "/api/session/filters", filters[int(rng.integers(len(filters)))]
                )
                if shown:
                    body = {"movie_id": shown[0]}
                    favs = await call(c, stats, budget, "favourite", "POST", "/api/favourites", json=body)
                    if favs is not None:
                        favourites = [m["movie_id"] for m in favs]
                if len(favourites) > KEEP:
                    await call(c, stats, budget, "unfavourite", "DELETE", f"/api/favourites/{favourites[-1]}")
                    favourites.pop()
        except StopAsyncIteration:
            return


async def browser(
    url: str,
    rng: np.random.Generator,
    stats: Stats,
    budget: Budget,
    like_every: int = 5,
    client: str = "lean",
) -> None:
    """One visitor of the read-heavy mix: a few likes, then recommendations and movie views."""
    async with make_client(url, client) as c:
        try:
            for _ in range(3):
                q = WORDS[int(rng.integers(len(WORDS)))]
                found = await call(c, stats, budget, "search", "GET", "/api/movies/search", params={"q": q})
                if found:
                    body = {"kind": "movie", "value": int(found[0]["movie_id"]), "feedback": "like"}
                    await call(c, stats, budget, "like", "POST", "/api/session/items", json=body)
            rounds = 0
            while True:
                rounds += 1
                rec = await call(c, stats, budget, "recommendations", "GET", "/api/recommendations", True)
                if rec is None or not rec["movies"]:
                    continue
                pick = int(rec["movies"][int(rng.integers(len(rec["movies"])))]["movie_id"])
                await call(c, stats, budget, "movie", "GET", f"/api/movies/{pick}")
                if rounds % like_every == 0:
                    body = {"kind": "movie", "value": pick, "feedback": "like"}
                    s = await call(c, stats, budget, "like", "POST", "/api/session/items", json=body)
                    liked = [m["movie_id"] for m in s["liked"]] if s is not None else []
                    if len(liked) > KEEP:  # keep the session under its list limit
                        body = {"kind": "movie", "value": liked[0]}
                        await call(c, stats, budget, "unlike", "DELETE", "/api/session/items", json=body)
        except StopAsyncIteration:
            return


def _proc_cpu(pid: int) -> tuple[int, float] | None:
    """(parent pid, user + system CPU seconds) of process ``pid`` from ``/proc``, or ``None``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of process ``pid`` and its descendants (Linux ``/proc``), or ``None``."""
    if pid is None or _proc_cpu(pid) is None:
        return None
    table: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (info := _proc_cpu(int(entry.name))) is not None:
            table[int(entry.name)] = info
    family, total, changed = {pid}, 0.0, True
    while changed:  # descendants: uvicorn's worker processes
        changed = False
        for p, (ppid, _) in table.items():
            if ppid in family and p not in family:
                family.add(p)
                changed = True
    for p in family:
        total += table.get(p, (0, 0.0))[1]
    return total


async def level(
    url: str,
    n: int,
    seconds: float,
    max_requests: int,
    seed: int,
    pid: int | None,
    scenario: str = "click",
    like_every: int = 5,
    client: str = "lean",
    think_s: float = 0.0,
    two_trips: bool = False,
    ramp_s: float = 0.0,
) -> dict[str, Any]:
    """Run ``n`` visitors of ``scenario`` (``click`` or ``browse``) for one sweep level; return its figures.

    ``ramp_s``: the visitors arrive at uniformly random moments of the level's first
    ``ramp_s`` seconds rather than all in the same millisecond.
    """
    stats = Stats()
    budget = Budget(seconds, max_requests, think_s, seed)
    # fresh visitors per level: a level must not replay (and find cached) the sessions of the one before
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence([seed, n]).spawn(n)]
    arrivals = np.random.default_rng([seed, n, 1]).uniform(0.0, ramp_s, n)

    async def arrive(delay: float, rng: np.random.Generator) -> None:
        await asyncio.sleep(delay)
        if scenario == "click":
            await visitor(url, rng, stats, budget, client, two_trips)
        else:
            await browser(url, rng, stats, budget, like_every, client)

    cpu0, t0, own0 = cpu_seconds(pid), time.perf_counter(), time.process_time()
    await asyncio.gather(*(arrive(float(d), r) for d, r in zip(arrivals, rngs, strict=True)))
    wall = time.perf_counter() - t0
    cpu1, own = cpu_seconds(pid), time.process_time() - own0
    return {
        "visitors": n,
        "wall_s": wall,
        "stats": stats,
        "server_cpu": None if cpu0 is None or cpu1 is None else (cpu1 - cpu0) / wall,
        "client_cpu": own / wall,
    }


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) * 1000 if values else float("nan")


def report(result: dict[str, Any]) -> None:
    stats: Stats = result["stats"]
    wall = result["wall_s"]
    n_err = sum(stats.errors.values())
    cpu = result["server_cpu"]
    recs = len(stats.rec_latency)
    print(
        f"\n== {result['visitors']} visitors: {stats.requests} requests in {wall:.1f} s = "
        f"{stats.requests / wall:.0f} req/s, recommendations {recs / wall:.0f} req/s, errors {n_err}"
        + (f", server CPU {cpu * 100:.0f}% of one core" if cpu is not None else "")
        + f", load generator CPU {result['client_cpu'] * 100:.0f}%"
        + f", machine load average {os.getloadavg()[0]:.1f}"
    )
    if cpu is not None and stats.requests:
        per_request = cpu * wall / stats.requests * 1000
        print(
            f"   server CPU per request {per_request:.2f} ms (all endpoints, this mix): "
            f"about {1000 / per_request:.0f} req/s per core the server has to itself"
        )
    if stats.rec_server_ms:
        a = np.asarray(stats.rec_server_ms)
        print(
            f"   recommendations server-side compute: p50 {np.median(a):.1f} ms, p99 {np.percentile(a, 99):.1f} ms"
        )
    print(f"   {'endpoint':<16}{'count':>7}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}")
    rows = sorted(stats.latency.items())
    if any(name.endswith("+recs") for name in stats.latency):
        rows.append(("= all with recs", stats.rec_latency))
    for name, lat in rows:
        print(
            f"   {name:<16}{len(lat):>7}{len(lat) / wall:>8.0f}{pct(lat, 50):>9.1f}{pct(lat, 95):>9.1f}"
            f"{pct(lat, 99):>9.1f}{stats.errors.get(name, 0):>8}"
        )
    for s in stats.error_samples:
        print(f"   error sample: {s}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    model: str, db: str, startup_s: float, workers: int = 1, inference: str = "process", prefetch: int = 24
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, model, db, str(port), str(workers), inference, str(prefetch)]
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + startup_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with status {proc.returncode}")
        try:
            if httpx.get(url + "/api/health", timeout=2.0).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the server did not answer /api/health within {startup_s} s")


def check_local(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.hostname not in LOCAL_HOSTS:
        raise SystemExit(f"--url must be http(s)://127.0.0.1 or localhost, got {url!r}")
    return url.rstrip("/")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", help="Target a running server (127.0.0.1 / localhost only); default: start one.")
    p.add_argument(
        "--server-pid", type=int, help="With --url: the server's process id, to report its CPU use."
    )
    p.add_argument(
        "--model", default="", help="Model directory for the started server (default HOME/models/default)."
    )
    p.add_argument(
        "--db", default="", help="Database for the started server (default HOME/movierec.sqlite3)."
    )
    p.add_argument("--visitors", default="1,10,25,50", help="Comma-separated concurrency sweep.")
    p.add_argument("--seconds", type=float, default=10.0, help="Longest run per sweep level.")
    p.add_argument("--max-requests", type=int, default=20_000, help="Most requests per sweep level.")
    p.add_argument(
        "--startup-seconds", type=float, default=120.0, help="Longest wait for the started server."
    )
    p.add_argument("--seed", type=int, default=0, help="Seed of the visitors' random choices.")
    p.add_argument(
        "--scenario", choices=("click", "browse"), default="click", help="Click loop or read-heavy mix."
    )
    p.add_argument("--like-every", type=int, default=5, help="browse: like a movie every this many rounds.")
    p.add_argument(
        "--think-ms",
        type=float,
        default=0.0,
        help="Mean pause of a visitor between an answer and its next request (0: none, a stress test).",
    )
    p.add_argument(
        "--ramp-s",
        type=float,
        default=1.0,
        help="The visitors of a level arrive over this many seconds (0: all at once).",
    )
    p.add_argument(
        "--two-trips",
        action="store_true",
        help="click: ask GET /api/recommendations after each change instead of taking them in its answer.",
    )
    p.add_argument("--workers", type=int, default=1, help="Server processes of the started server.")
    p.add_argument(
        "--inference",
        choices=("process", "threads"),
        default="process",
        help="Where the started server scores recommendations (as `movierec serve --inference-threads`).",
    )
    p.add_argument(
        "--prefetch",
        type=int,
        default=24,
        help="The started server's prefetch_n (0: no prefetch after a change to a session).",
    )
    p.add_argument(
        "--client",
        choices=("lean", "httpx"),
        default="lean",
        help="HTTP client of the visitors (lean: less CPU).",
    )
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="Priority increment of the load generator (10: the server gets the CPU first; "
        "on a machine busy with other work that starves the generator instead).",
    )
    args = p.parse_args(argv)
    sweep = [int(v) for v in args.visitors.split(",") if v.strip()]
    if not sweep or min(sweep) < 1 or max(sweep) > 1000:
        raise SystemExit("--visitors must list counts between 1 and 1000")
    if args.seconds <= 0 or args.max_requests < 1 or args.like_every < 1 or args.workers < 1:
        raise SystemExit("--seconds, --max-requests, --like-every and --workers must be positive")
    if not 0 <= args.think_ms <= 60_000:
        raise SystemExit("--think-ms must be between 0 and 60000")
    if not 0 <= args.ramp_s < args.seconds:
        raise SystemExit("--ramp-s must be at least 0 and shorter than --seconds")

    proc = None
    if args.url:
        url = check_local(args.url)
    else:
        proc, url = start_server(
            args.model, args.db, args.startup_seconds, args.workers, args.inference, args.prefetch
        )
    if args.nice > 0:
        os.nice(args.nice)  # after the server started: it keeps the normal priority
    gc.freeze()  # the generator's own full collections would show up as server latency
    try:
        health = httpx.get(url + "/api/health", timeout=5.0).json()
        print(
            f"target {url}: model {health['model']}, {health['movies']} movies, {health['tags']} tags; "
            f"scenario {args.scenario}, think time {args.think_ms:g} ms, visitors arrive over {args.ramp_s:g} s, "
            f"{args.workers} server process(es), inference in "
            f"{args.inference if proc else 'the server'}, load generator nice {args.nice}"
        )
        pid = proc.pid if proc else args.server_pid
        for n in sweep:
            report(
                asyncio.run(
                    level(
                        url,
                        n,
                        args.seconds,
                        args.max_requests,
                        args.seed,
                        pid,
                        args.scenario,
                        args.like_every,
                        args.client,
                        args.think_ms / 1000,
                        args.two_trips,
                        args.ramp_s,
                    )
                )
            )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
