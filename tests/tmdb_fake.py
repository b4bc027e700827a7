"""A fake TMDB on 127.0.0.1 for the artwork tests: a real HTTP server in a thread that answers
``GET /3/movie/{id}?append_to_response=images,videos`` in TMDB's shape, and serves small
generated PNG images under ``/t/p/{size}/{file}``. Nothing in the tests reaches the internet.

Each TMDB id can be told to misbehave (:attr:`FakeTmdb.behaviour`): ``"404"`` (not on TMDB),
``"429"`` (a rate limit with ``Retry-After: 1`` on the first request, then the answer),
``"slow"`` (answers after :attr:`FakeTmdb.slow_s`), ``"garbage"`` (200 with a body that is
not JSON), ``"wrong-shape"`` (JSON, but a list), ``"500"``.
"""

from __future__ import annotations

import json
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJhdWQiOiJ0ZXN0In0.c2lnbmF0dXJl"  # a JWT-shaped v4 token
TRAILER = "dQw4w9WgXcQ"


def png(width: int = 2, height: int = 3, rgb: tuple[int, int, int] = (200, 60, 30)) -> bytes:
    """A valid PNG of one colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def movie_json(tmdb_id: int) -> dict[str, Any]:
    """TMDB's answer for a movie, trimmed to what the lookups read, plus noise they must skip."""
    return {
        "id": tmdb_id,
        "title": f"Movie {tmdb_id}",
        "poster_path": f"/p{tmdb_id}.png",
        "backdrop_path": f"/b{tmdb_id}.png",
        "images": {
            "backdrops": [
                {"file_path": f"/b{tmdb_id}-low.png", "vote_average": 1.0},
                {"file_path": f"/b{tmdb_id}-high.png", "vote_average": 9.0},
                {"file_path": "../../etc/passwd", "vote_average": 10.0},  # never kept
            ],
            "posters": [],
        },
        "videos": {
            "results": [
                {"site": "Vimeo", "type": "Trailer", "key": "123456789", "official": True},
                {"site": "YouTube", "type": "Featurette", "key": "featurette1", "official": True},
                {"site": "YouTube", "type": "Trailer", "key": "fanmade0001", "official": False},
                {"site": "YouTube", "type": "Trailer", "key": TRAILER, "official": True},
            ]
        },
    }


class FakeTmdb:
    """The server's state: what each id does, and what it was asked."""

    def __init__(self) -> None:
        self.behaviour: dict[int, str] = {}
        self.slow_s = 3.0
        self.requests: list[tuple[float, int]] = []  # (monotonic time, tmdb id) of movie lookups
        self.images = 0
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()
        self._limited: set[int] = set()
        self.url = ""

    @property
    def api_url(self) -> str:
        return self.url + "/3"

    @property
    def image_url(self) -> str:
        return self.url + "/t/p"


def _handler(fake: FakeTmdb) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: bytes, kind: str = "application/json", **headers: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers.items():
                self.send_header(k.replace("_", "-"), v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            parts = url.path.strip("/").split("/")
            if parts[:2] == ["t", "p"] and len(parts) == 4 and parts[3].endswith(".png"):
                fake.images += 1
                self._send(200, png(), "image/png", Cache_Control="max-age=3600")
                return
            if len(parts) != 3 or parts[:2] != ["3", "movie"] or not parts[2].isdigit():
                self._send(404, b'{"status_code": 34}')
                return
            auth = self.headers.get("Authorization", "")
            key = parse_qs(url.query).get("api_key", [""])[0]
            if auth != f"Bearer {TOKEN}" and key != "0123456789abcdef0123456789abcdef":
                self._send(401, b'{"status_code": 7, "status_message": "Invalid API key"}')
                return
            tmdb_id = int(parts[2])
            with fake._lock:
                fake.requests.append((time.monotonic(), tmdb_id))
                fake.active += 1
                fake.max_active = max(fake.max_active, fake.active)
            try:
                self._answer(tmdb_id)
            finally:
                with fake._lock:
                    fake.active -= 1

        def _answer(self, tmdb_id: int) -> None:
            what = fake.behaviour.get(tmdb_id, "ok")
            time.sleep(0.02)  # a little latency, so concurrency can be seen
            if what == "404":
                self._send(404, b'{"status_code": 34, "status_message": "not found"}')
            elif what == "429" and tmdb_id not in fake._limited:
                fake._limited.add(tmdb_id)
                self._send(429, b'{"status_code": 25}', Retry_After="1")
            elif what == "slow":
                time.sleep(fake.slow_s)
                self._send(200, json.dumps(movie_json(tmdb_id)).encode())
            elif what == "garbage":
                self._send(200, b"<html>not json</html>", "text/html")
            elif what == "wrong-shape":
                self._send(200, b"[1, 2, 3]")
            elif what == "500":
                self._send(500, b"{}")
            else:
                self._send(200, json.dumps(movie_json(tmdb_id)).encode())

    return Handler


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and left (the lookups' timeout test) is not news


@contextmanager
def fake_tmdb() -> Iterator[FakeTmdb]:
    """A running :class:`FakeTmdb` on 127.0.0.1 (a free port), stopped at the end."""
    fake = FakeTmdb()
    server = _QuietServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
