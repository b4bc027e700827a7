"""Chaos, bounded: the page's click loop keeps running while things break underneath.

A real server (uvicorn in a subprocess, a scoring process beside it) serves three
visitors who like movies, save favourites and ask for recommendations without pause.
Meanwhile, one after the other, each for about two seconds:

* the scoring process is killed (SIGKILL);
* another process holds the SQLite write lock;
* the disk is full: every write transaction fails with SQLite's ``database or disk is
  full`` (simulated: the launcher's hook raises it while a flag file exists; a real
  size-capped file system needs privileges a test does not have);
* (PostgreSQL store) the database server is stopped and started again.

Every answer must be 2xx, 429, or 503 with ``Retry-After``; every acknowledged write must
be there at the end; and after each fault a write succeeds again within seconds, with no
one's help. About 40 s in all.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from test_kill_restart import COOKIE, STARTUP_S, free_port

from movierec.data.dataset import Dataset
from movierec.storage.sessions import sessions_path_for
from pg import find_binaries
from pg import start_server as start_pg

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")

LAUNCHER = """
import json, sqlite3, sys
from pathlib import Path
import uvicorn
from movierec.service.app import create_app
from movierec.service.config import ServiceSettings
from movierec.settings import Settings
from movierec.storage import backend

tmp, port, extra = Path(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
full_flag = tmp / "disk-full"
write_transaction = backend.SqliteBackend.transaction

def transaction(self, *, write):  # the chaos test's simulated full disk
    if write and full_flag.exists():
        raise sqlite3.OperationalError("database or disk is full")
    return write_transaction(self, write=write)

backend.SqliteBackend.transaction = transaction
svc = ServiceSettings(settings=Settings(home=tmp), model_dir=tmp / "model", database_path=tmp / "db.sqlite3",
                      inference_process=True, store_wait_s=1.0, write_rate=1e6, write_burst=10**6,
                      address_write_rate=1e6, address_write_burst=10**6, session_create_rate=1e6,
                      session_create_burst=10**6, **extra)
uvicorn.run(create_app(svc), host="127.0.0.1", port=port, log_level="warning")
"""

FAULT_S = 2.0
RECOVERY_S = 8.0
VISITORS = 3


def start(home: Path, **extra: object) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = open(home / f"chaos-{port}.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(home), str(port), json.dumps(extra)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url + "/api/health", timeout=1.0).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"server did not start: {(home / log.name).read_text()[-2000:]}")


def scoring_processes(server: int) -> list[int]:
    """The server's spawned children (the scoring process; not multiprocessing's resource tracker)."""
    found = []
    for tid in os.listdir(f"/proc/{server}/task"):
        children = Path(f"/proc/{server}/task/{tid}/children").read_text().split()
        for child in map(int, children):
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
                found.append(child)
    return found


class Crowd:
    """Visitors clicking without pause: like a movie, save a favourite, ask for recommendations.

    Records every status, whether each 503 carried Retry-After, and the writes acknowledged
    (2xx) per visitor.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.statuses: Counter[int] = Counter()
        self.bad: list[str] = []
        self.liked: list[set[int]] = [set() for _ in range(VISITORS)]
        self.saved: list[set[int]] = [set() for _ in range(VISITORS)]
        self.cookies: list[str] = []
        self.last_ok = [time.monotonic()] * VISITORS
        self._lock = threading.Lock()
        for _ in range(VISITORS):
            r = httpx.put(url + "/api/session/filters", json={}, timeout=10.0)
            assert r.status_code == 200, r.text
            self.cookies.append(r.cookies[COOKIE])
        self.threads = [threading.Thread(target=self._visit, args=(i,), daemon=True) for i in range(VISITORS)]

    def _record(self, r: httpx.Response) -> bool:
        with self._lock:
            self.statuses[r.status_code] += 1
            if r.status_code == 503 and "retry-after" not in r.headers:
                self.bad.append(f"503 without Retry-After: {r.text[:200]}")
            elif not (r.is_success or r.status_code in (429, 503)):
                self.bad.append(f"{r.status_code}: {r.text[:200]}")
        return r.is_success

    def _visit(self, i: int) -> None:
        with httpx.Client(base_url=self.url, cookies={COOKIE: self.cookies[i]}, timeout=15.0) as c:
            k = 0
            while not self.stop.is_set() and k < 5000:
                movie = (k * 7 + i * 11) % 30 + 1
                k += 1
                try:
                    if self._record(
                        c.post(
                            "/api/session/items", json={"kind": "movie", "value": movie, "feedback": "like"}
                        )
                    ):
                        self.liked[i].add(movie)
                        self.last_ok[i] = time.monotonic()
                    if self._record(c.post("/api/favourites", json={"movie_id": movie})):
                        self.saved[i].add(movie)
                    self._record(c.get("/api/recommendations", params={"n": 12}))
                except httpx.TransportError as exc:
                    with self._lock:
                        self.bad.append(f"transport error: {exc!r}")

    def __enter__(self) -> Crowd:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(20.0)

    def recovered_within(self, seconds: float) -> float:
        """Seconds until every visitor has had a write acknowledged after now."""
        since = time.monotonic()
        while time.monotonic() - since < seconds:
            if all(t > since for t in self.last_ok):
                return time.monotonic() - since
            time.sleep(0.05)
        raise AssertionError(f"no acknowledged write from every visitor within {seconds} s")

    def check_nothing_lost(self) -> None:
        for i, cookie in enumerate(self.cookies):
            with httpx.Client(base_url=self.url, cookies={COOKIE: cookie}, timeout=10.0) as c:
                s = c.get("/api/session").json()
                liked = {m["movie_id"] for m in s["liked"]}
                assert self.liked[i] <= liked, self.liked[i] - liked
                assert self.saved[i] <= set(s["favourites"]), self.saved[i] - set(s["favourites"])


@pytest.fixture
def home(tmp_path: Path, tiny: Dataset, make_home: Callable[..., Path]) -> Iterator[Path]:
    make_home(tmp_path, tiny)
    yield tmp_path


def test_the_click_loop_survives_scorer_kills_locks_and_a_full_disk(home: Path) -> None:
    proc, url = start(home)
    recovery: dict[str, float] = {}
    try:
        with Crowd(url) as crowd:
            time.sleep(1.0)
            # 1. the scoring process dies
            victims = scoring_processes(proc.pid)
            assert victims, "no scoring process found"
            for pid in victims:
                os.kill(pid, signal.SIGKILL)
            time.sleep(FAULT_S)
            recovery["scorer killed"] = crowd.recovered_within(RECOVERY_S)
            # 2. another process holds the write lock
            holder = sqlite3.connect(
                sessions_path_for(home / "db.sqlite3"), isolation_level=None, timeout=1.0
            )
            holder.execute("BEGIN IMMEDIATE")
            time.sleep(FAULT_S)
            holder.execute("ROLLBACK")
            holder.close()
            recovery["lock held"] = crowd.recovered_within(RECOVERY_S)
            # 3. the disk is full
            (home / "disk-full").touch()
            time.sleep(FAULT_S)
            (home / "disk-full").unlink()
            recovery["disk full"] = crowd.recovered_within(RECOVERY_S)
            time.sleep(0.5)
        print(f"statuses {dict(crowd.statuses)}; recovery (s) {recovery}")
        assert not crowd.bad, crowd.bad[:5]
        assert crowd.statuses[503] > 0  # the faults were felt ...
        assert sum(n for s, n in crowd.statuses.items() if 200 <= s < 300) > 100  # ... and work went on
        crowd.check_nothing_lost()
        assert proc.poll() is None and httpx.get(url + "/api/health").status_code == 200
        assert sqlite3.connect(sessions_path_for(home / "db.sqlite3")).execute(
            "PRAGMA integrity_check"
        ).fetchone() == ("ok",)
    finally:
        proc.terminate()
        proc.wait(10.0)


def test_the_click_loop_survives_a_postgres_restart(home: Path) -> None:
    bindir = find_binaries()
    try:
        import psycopg  # noqa: F401
    except ImportError:
        bindir = None
    if bindir is None:
        from pg import _unavailable

        _unavailable("PostgreSQL binaries or psycopg missing")
    assert bindir is not None
    pg = start_pg(bindir)
    try:
        proc, url = start(home, database_url=pg.url("movierec"))
        try:
            with Crowd(url) as crowd:
                time.sleep(1.0)
                pg.halt()
                time.sleep(FAULT_S)
                pg.resume()
                recovered = crowd.recovered_within(RECOVERY_S)
                time.sleep(0.5)
            print(f"statuses {dict(crowd.statuses)}; recovery {recovered:.2f} s")
            assert not crowd.bad, crowd.bad[:5]
            assert crowd.statuses[503] > 0
            crowd.check_nothing_lost()
        finally:
            proc.terminate()
            proc.wait(10.0)
    finally:
        pg.stop()
