"""Load test of the movierec web API: concurrent anonymous visitors doing the click loop.

Each visitor (an ``httpx.AsyncClient`` with its own cookie jar, so its own
session) repeats: search -> like a found movie -> reorder the liked movies ->
set a filter -> get recommendations -> add a recommended movie to favourites
(with an unlike / unfavourite now and then so its lists stay short). The run is
a sweep over visitor counts, each level bounded by ``--seconds`` and
``--max-requests``; it prints throughput, p50/p95/p99 latency per endpoint and
errors (any non-2xx answer or transport failure).

Without ``--url`` it starts ``uvicorn`` on ``create_app`` over HOME's model and
catalogue (``movierec run`` prepares them) on a free 127.0.0.1 port, with the
per-session write limit raised so that it measures capacity (against
``--url`` a 429 counts as an error). ``--url`` must point at 127.0.0.1 or
localhost: this is not a tool for loading other people's servers.

Example::

    MOVIEREC_HOME=/tmp/loadhome python benchmarks/load_test.py --visitors 1,10,25,50 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
WORDS = ["the", "star", "love", "man", "war", "matrix", "god", "night", "king", "lord", "toy", "dark", "life"]
KEEP = 30  # trim liked movies / favourites beyond this many

LAUNCHER = """
import sys
from pathlib import Path
import uvicorn
from movierec.service.app import create_app
from movierec.service.config import ServiceSettings
from movierec.settings import Settings
model, db, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
svc = ServiceSettings(settings=Settings(), model_dir=Path(model) if model else None,
                      database_path=Path(db) if db else None, write_rate=1e6, write_burst=10**6,
                      max_waiting=10_000)
uvicorn.run(create_app(svc), host="127.0.0.1", port=port, log_level="warning", access_log=False)
"""


@dataclass
class Stats:
    """Latencies (seconds) and failures per endpoint name, for one sweep level."""

    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    error_samples: list[str] = field(default_factory=list)
    rec_server_ms: list[float] = field(default_factory=list)
    requests: int = 0

    def record(self, name: str, seconds: float, ok: bool, sample: str = "") -> None:
        self.requests += 1
        self.latency[name].append(seconds)
        if not ok:
            self.errors[name] += 1
            if len(self.error_samples) < 5:
                self.error_samples.append(f"{name}: {sample}")


class Budget:
    """Stops every visitor at a deadline or after a request count."""

    def __init__(self, seconds: float, max_requests: int) -> None:
        self.deadline = time.perf_counter() + seconds
        self.left = max_requests

    def take(self) -> bool:
        if self.left <= 0 or time.perf_counter() >= self.deadline:
            return False
        self.left -= 1
        return True


async def call(
    client: httpx.AsyncClient, stats: Stats, budget: Budget, name: str, method: str, url: str, **kw: Any
) -> Any:
    """One request; returns the JSON body of a 2xx answer, else ``None``. Raises ``StopAsyncIteration`` when the budget is spent."""
    if not budget.take():
        raise StopAsyncIteration
    start = time.perf_counter()
    try:
        r = await client.request(method, url, **kw)
    except httpx.HTTPError as exc:
        stats.record(name, time.perf_counter() - start, False, repr(exc))
        return None
    elapsed = time.perf_counter() - start
    ok = r.is_success
    stats.record(name, elapsed, ok, f"{r.status_code} {r.text[:120]}")
    return r.json() if ok else None


async def visitor(url: str, rng: np.random.Generator, stats: Stats, budget: Budget) -> None:
    """One anonymous visitor doing the click loop until the budget is spent."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=url, timeout=30.0, limits=limits) as c:
        liked: list[int] = []
        favourites: list[int] = []
        try:
            while True:
                q = WORDS[int(rng.integers(len(WORDS)))]
                found = await call(c, stats, budget, "search", "GET", "/api/movies/search", params={"q": q})
                if found:
                    mid = int(found[int(rng.integers(len(found)))]["movie_id"])
                    if mid not in liked:
                        body = {"kind": "movie", "value": mid, "feedback": "like"}
                        s = await call(c, stats, budget, "like", "POST", "/api/session/items", json=body)
                        if s is not None:
                            liked = [m["movie_id"] for m in s["liked"]]
                if len(liked) > 1:
                    order = [liked[i] for i in rng.permutation(len(liked))]
                    body = {"kind": "movie", "feedback": "like", "ordered": order}
                    s = await call(c, stats, budget, "reorder", "PUT", "/api/session/order", json=body)
                    if s is not None:
                        liked = [m["movie_id"] for m in s["liked"]]
                if len(liked) > KEEP:
                    body = {"kind": "movie", "value": liked[0]}
                    s = await call(c, stats, budget, "unlike", "DELETE", "/api/session/items", json=body)
                    if s is not None:
                        liked = [m["movie_id"] for m in s["liked"]]
                filters = [{}, {"min_rating": 3.0}, {"year_min": 1980}, {"min_rating": 3.5, "year_max": 2010}]
                f = filters[int(rng.integers(len(filters)))]
                await call(c, stats, budget, "filters", "PUT", "/api/session/filters", json=f)
                rec = await call(c, stats, budget, "recommendations", "GET", "/api/recommendations")
                if rec is not None:
                    stats.rec_server_ms.append(float(rec["elapsed_ms"]))
                    if rec["movies"]:
                        body = {"movie_id": int(rec["movies"][0]["movie_id"])}
                        favs = await call(c, stats, budget, "favourite", "POST", "/api/favourites", json=body)
                        if favs is not None:
                            favourites = [m["movie_id"] for m in favs]
                if len(favourites) > KEEP:
                    await call(c, stats, budget, "unfavourite", "DELETE", f"/api/favourites/{favourites[-1]}")
                    favourites.pop()
        except StopAsyncIteration:
            return


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of process ``pid`` (Linux ``/proc``), or ``None``."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


async def level(
    url: str, n: int, seconds: float, max_requests: int, seed: int, pid: int | None
) -> dict[str, Any]:
    """Run ``n`` visitors for one sweep level; return its figures."""
    stats = Stats()
    budget = Budget(seconds, max_requests)
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]
    cpu0, t0, own0 = cpu_seconds(pid), time.perf_counter(), time.process_time()
    await asyncio.gather(*(visitor(url, r, stats, budget) for r in rngs))
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
    recs = len(stats.latency.get("recommendations", []))
    print(
        f"\n== {result['visitors']} visitors: {stats.requests} requests in {wall:.1f} s = "
        f"{stats.requests / wall:.0f} req/s, recommendations {recs / wall:.0f} req/s, errors {n_err}"
        + (f", server CPU {cpu * 100:.0f}% of one core" if cpu is not None else "")
        + f", load generator CPU {result['client_cpu'] * 100:.0f}%"
    )
    if stats.rec_server_ms:
        a = np.asarray(stats.rec_server_ms)
        print(
            f"   recommendations server-side compute: p50 {np.median(a):.1f} ms, p99 {np.percentile(a, 99):.1f} ms"
        )
    print(f"   {'endpoint':<16}{'count':>7}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for name, lat in sorted(stats.latency.items()):
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


def start_server(model: str, db: str, startup_s: float) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, model, db, str(port)])
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
    args = p.parse_args(argv)
    sweep = [int(v) for v in args.visitors.split(",") if v.strip()]
    if not sweep or min(sweep) < 1 or max(sweep) > 1000:
        raise SystemExit("--visitors must list counts between 1 and 1000")
    if args.seconds <= 0 or args.max_requests < 1:
        raise SystemExit("--seconds and --max-requests must be positive")

    proc = None
    if args.url:
        url = check_local(args.url)
    else:
        proc, url = start_server(args.model, args.db, args.startup_seconds)
    try:
        health = httpx.get(url + "/api/health", timeout=5.0).json()
        print(f"target {url}: model {health['model']}, {health['movies']} movies, {health['tags']} tags")
        for n in sweep:
            report(
                asyncio.run(
                    level(url, n, args.seconds, args.max_requests, args.seed, proc.pid if proc else None)
                )
            )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
