"""Durability: every acknowledged write survives a SIGKILL of the server.

A real uvicorn server runs in a subprocess on 127.0.0.1 over a tmp model and
database; client threads write (liked movies, favourites) and record each write
that got a 2xx; the server is killed mid-stream with SIGKILL and restarted over
the same database; every acknowledged write must be there and the database must
pass ``PRAGMA integrity_check``. Bounded: at most 300 writes, about 20 s.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from movierec.data.dataset import Dataset
from movierec.models.artifacts import save_model
from movierec.models.registry import create
from movierec.storage.catalog import build_catalog
from movierec.storage.db import connect, integrity_check

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")

LAUNCHER = """
import json, sys
from pathlib import Path
import uvicorn
from movierec.service.app import create_app
from movierec.service.config import ServiceSettings
from movierec.settings import Settings
tmp, port, extra = Path(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
svc = ServiceSettings(inference_process=False, settings=Settings(home=tmp), model_dir=tmp / "model", database_path=tmp / "db.sqlite3",
                      write_rate=1e6, write_burst=10**6,
                      address_write_rate=1e6, address_write_burst=10**6, session_create_rate=1e6, session_create_burst=10**6,
                      **extra)
uvicorn.run(create_app(svc), host="127.0.0.1", port=port, log_level="warning")
"""

THREADS = 3
WRITES_PER_THREAD = 100  # 300 writes at most
KILL_AFTER_ACKS = 60
STARTUP_S = 30.0
COOKIE = "movierec_session"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(home: Path, **settings: object) -> tuple[subprocess.Popen[bytes], str]:
    """Start the server (``settings``: more :class:`ServiceSettings` fields); return it and its
    base URL once ``/api/health`` answers."""
    port = free_port()
    log = open(home / f"server-{port}.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(home), str(port), json.dumps(settings)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}: {(home / log.name).read_text()}")
        try:
            if httpx.get(url + "/api/health", timeout=1.0).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"server did not start within {STARTUP_S} s")


@pytest.fixture
def home(tmp_path: Path, tiny: Dataset) -> Iterator[Path]:
    save_model(create("pop").fit(tiny), tmp_path / "model")
    conn = connect(tmp_path / "db.sqlite3")
    build_catalog(tiny, conn)
    conn.close()
    yield tmp_path


def test_acknowledged_writes_survive_sigkill(home: Path) -> None:
    proc, url = start_server(home)
    try:
        lock = threading.Lock()
        acked = 0
        enough = threading.Event()
        # per client: cookie, acknowledged liked movies, acknowledged favourites
        cookies: list[str] = []
        liked: list[set[int]] = [set() for _ in range(THREADS)]
        favs: list[set[int]] = [set() for _ in range(THREADS)]
        errors: list[str] = []
        for _ in range(THREADS):
            r = httpx.put(url + "/api/session/filters", json={}, timeout=5.0)  # a session starts at a write
            cookies.append(r.cookies[COOKIE])

        def client(i: int) -> None:
            nonlocal acked
            with httpx.Client(base_url=url, cookies={COOKIE: cookies[i]}, timeout=5.0) as c:
                for k in range(WRITES_PER_THREAD):
                    # each client likes and saves the 30 movies in its own order (tags must be the
                    # catalogue's, and it has few)
                    movie = (k // 2 * 7 + i * 11) % 30 + 1
                    try:
                        if k % 2 == 0:
                            body = {"kind": "movie", "value": movie, "feedback": "like"}
                            r = c.post("/api/session/items", json=body)
                        else:
                            r = c.post("/api/favourites", json={"movie_id": movie})
                    except httpx.TransportError:
                        return  # the server is gone: this write is unacknowledged
                    if not r.is_success:
                        errors.append(f"{r.status_code} {r.text}")
                        return
                    if k % 2 == 0:
                        liked[i].add(movie)
                    else:
                        favs[i].add(movie)
                    with lock:
                        acked += 1
                        if acked >= KILL_AFTER_ACKS:
                            enough.set()

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(THREADS)]
        for t in threads:
            t.start()
        assert enough.wait(15.0), f"only {acked} writes acknowledged; errors: {errors[:3]}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5.0)
        for t in threads:
            t.join(10.0)
        assert not errors, errors[:3]
        assert KILL_AFTER_ACKS <= acked < THREADS * WRITES_PER_THREAD  # killed mid-stream
        assert sum(map(len, liked)) > 0 and sum(map(len, favs)) > 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5.0)

    proc, url = start_server(home)
    try:
        for i in range(THREADS):
            with httpx.Client(base_url=url, cookies={COOKIE: cookies[i]}, timeout=5.0) as c:
                session = c.get("/api/session").json()
                held = {m["movie_id"] for m in session["liked"]}
                assert liked[i] <= held, liked[i] - held
                assert favs[i] <= set(session["favourites"])
                assert favs[i] <= {m["movie_id"] for m in c.get("/api/favourites").json()}
                assert COOKIE not in c.get("/api/session").cookies  # same session, not a new one
    finally:
        proc.terminate()
        proc.wait(10.0)
    conn = connect(home / "db.sqlite3")
    try:
        assert integrity_check(conn)
    finally:
        conn.close()
