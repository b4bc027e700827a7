"""A throwaway PostgreSQL server for the tests (Debian's ``postgresql`` package).

Import the fixtures into a test module (they are registered by their ``name``)::

    from pg import postgres_fixture, pg_url_fixture  # noqa: F401

``postgres`` (session scope) starts one server for the whole run: a fresh
cluster (``initdb``) in a temporary directory, listening on 127.0.0.1 on a free
port only (no Unix socket), ``fsync=off`` (the tests need speed, not
durability across power loss), ``trust`` authentication for the user
``movierec``. Run as root, the server runs as ``nobody`` (``initdb`` refuses
root). It is stopped, and its directory removed, at the end of the run.

``pg_url`` (function scope) is the URL of a fresh, empty schema of the
``movierec`` database (its ``search_path``), dropped after the test.

Without the binaries (or without psycopg) the tests are skipped with the
reason, except under ``CI=true``: there the PostgreSQL backend must really be
tested, so the fixture fails instead.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

__all__ = ["PgServer", "find_binaries", "pg_url_fixture", "postgres_fixture", "start_server"]

USER = "movierec"
DATABASE = "movierec"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> None:
    """Skip the test, or fail it under CI (where PostgreSQL must be tested)."""
    if _in_ci():
        pytest.fail(f"CI is set but the PostgreSQL tests cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


def find_binaries() -> Path | None:
    """The newest ``/usr/lib/postgresql/<major>/bin`` holding ``initdb`` and ``pg_ctl``, or one on ``PATH``."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0,
    )
    for initdb in reversed(found):
        bindir = Path(initdb).parent
        if (bindir / "pg_ctl").exists():
            return bindir
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    """A running throwaway server; :meth:`url` gives a database's URL."""

    bindir: Path
    root: Path
    port: int
    run_as: str | None

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{dbname}"

    def _admin(self) -> Any:
        import psycopg

        return psycopg.connect(self.url(DATABASE), autocommit=True, connect_timeout=10)

    def create_schema(self) -> str:
        """A fresh empty schema in the ``movierec`` database; returns a URL whose ``search_path`` is it.

        (A schema takes well under a millisecond to create; a database takes ~0.4 s.)
        """
        name = "t_" + uuid.uuid4().hex[:16]
        with self._admin() as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        return f"{self.url(DATABASE)}?options=-csearch_path%3D{name}"

    def drop_schema(self, url: str) -> None:
        """Drop the schema named in a URL from :meth:`create_schema`."""
        name = url.rsplit("%3D", 1)[1]
        with self._admin() as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')

    def _run(self, args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        extra: dict[str, Any] = {}
        if self.run_as is not None:
            extra = {"user": self.run_as, "group": pwd.getpwnam(self.run_as).pw_gid, "extra_groups": []}
        return subprocess.run(args, capture_output=True, text=True, check=False, **extra, **kwargs)

    def halt(self) -> None:
        """Stop the server (fast shutdown: connections are cut) and keep its data, for :meth:`resume`."""
        done = self._run([str(self.bindir / "pg_ctl"), "stop", "-D", str(self.datadir), "-m", "fast", "-w"])
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl stop failed: {done.stderr.strip() or done.stdout.strip()}")

    def resume(self) -> None:
        """Start a :meth:`halt`-ed server again on the same port."""
        done = self._run(
            [
                str(self.bindir / "pg_ctl"),
                "start",
                "-D",
                str(self.datadir),
                "-l",
                str(self.root / "server.log"),
                "-o",
                _options(self.port),
                "-w",
                "-t",
                "30",
            ],
            cwd=self.root,
        )
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {done.stderr.strip() or done.stdout.strip()}")

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its directory; safe to call twice."""
        if self.datadir.exists():
            self._run([str(self.bindir / "pg_ctl"), "stop", "-D", str(self.datadir), "-m", "fast", "-w"])
        shutil.rmtree(self.root, ignore_errors=True)


def _options(port: int) -> str:
    return (
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories='' "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=50 "
        "-c shared_buffers=16MB"
    )


def start_server(bindir: Path, *, attempts: int = 3) -> PgServer:
    """``initdb`` a cluster in a new temporary directory and start it on 127.0.0.1 on a free port."""
    run_as: str | None = None
    root = Path(tempfile.mkdtemp(prefix="movierec-pg-"))
    if os.geteuid() == 0:  # initdb refuses to run as root
        run_as = "nobody"
        entry = pwd.getpwnam(run_as)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    server = PgServer(bindir=bindir, root=root, port=0, run_as=run_as)
    init = server._run(
        [
            str(bindir / "initdb"),
            "-D",
            str(server.datadir),
            "-U",
            USER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ],
        cwd=root,
    )
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed ({init.returncode}): {init.stderr.strip() or init.stdout.strip()}")
    last = ""
    for _ in range(attempts):  # the free port may be taken between probing and binding
        server.port = _free_port()
        options = _options(server.port)
        started = server._run(
            [
                str(bindir / "pg_ctl"),
                "start",
                "-D",
                str(server.datadir),
                "-l",
                str(root / "server.log"),
                "-o",
                options,
                "-w",
                "-t",
                "30",
            ],
            cwd=root,
        )
        if started.returncode == 0:
            import psycopg

            with psycopg.connect(server.url("postgres"), autocommit=True, connect_timeout=10) as conn:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')
            return server
        log = root / "server.log"
        last = (started.stderr.strip() or started.stdout.strip()) + (
            "\n" + log.read_text(errors="replace")[-2000:] if log.exists() else ""
        )
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"PostgreSQL did not start: {last}")


_SERVER: PgServer | None = None


def _server() -> PgServer:
    """The run's one server (several test modules import the fixture; it starts once)."""
    global _SERVER
    if _SERVER is None:
        bindir = find_binaries()
        if bindir is None:
            _unavailable(
                "PostgreSQL binaries not found (no /usr/lib/postgresql/*/bin/initdb); "
                "`apt-get install postgresql` to run the PostgreSQL backend tests"
            )
        try:
            import psycopg  # noqa: F401
        except ImportError:
            _unavailable("psycopg is not installed (`pip install 'psycopg[binary]'`)")
        assert bindir is not None
        _SERVER = start_server(bindir)
        atexit.register(_SERVER.stop)  # a safety net; the fixture stops it first
    return _SERVER


@pytest.fixture(scope="session", name="postgres")
def postgres_fixture() -> Iterator[PgServer]:
    """The throwaway server (started on first use, stopped at the end of the run)."""
    global _SERVER
    server = _server()
    yield server
    if _SERVER is not None:
        _SERVER.stop()
        _SERVER = None


@pytest.fixture(name="pg_url")
def pg_url_fixture(postgres: PgServer) -> Iterator[str]:
    """The URL of a fresh, empty schema on the throwaway server, dropped after the test."""
    url = postgres.create_schema()
    yield url
    with contextlib.suppress(Exception):  # best effort: the whole cluster goes at the end anyway
        postgres.drop_schema(url)
