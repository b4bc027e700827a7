"""The web app's ASGI middleware: security headers (a Content-Security-Policy per page),
HEAD answered as GET, and a request body's size and time limits."""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Where the page may embed a trailer from (youtube-nocookie: no cookies until it plays).
TRAILER_ORIGIN = "https://www.youtube-nocookie.com"


def page_csp(image_url: str = "https://image.tmdb.org/t/p") -> bytes:
    """The page's Content-Security-Policy: images from this origin and the artwork's image
    origin only, trailers framed from :data:`TRAILER_ORIGIN` only, scripts and styles from here."""
    from urllib.parse import urlsplit

    parts = urlsplit(image_url)
    images = f"{parts.scheme}://{parts.netloc}"
    return (
        f"default-src 'self'; img-src 'self' {images} data:; frame-src {TRAILER_ORIGIN}; script-src 'self'; "
        "style-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
    ).encode()


SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", page_csp()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


#: The OpenAPI page (Swagger UI from the ``swagger-ui-bundle`` package, started by
#: ``static/docs.js``): no inline script and nothing from another origin; Swagger UI sets
#: inline styles, so only these paths allow them.
DOCS_CSP = (
    b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    b"object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/docs/")
DOCS_ASSETS = "/docs/assets/"
DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>movierec API</title>
<link rel="icon" href="/favicon.ico"><link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script><script src="/static/docs.js"></script>
</body></html>
"""


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every HTTP response (:data:`DOCS_CSP` on the docs
    page), and ``Cache-Control: no-store`` to answers under ``/api/`` that set none: they
    carry a visitor's session, favourites or recommendations, which no shared cache (nor
    the browser's back button on a shared machine) may keep."""

    def __init__(self, app: ASGIApp, *, csp: bytes | None = None) -> None:
        self.app = app
        self.headers = [
            (k, csp if csp is not None and k == b"content-security-policy" else v)
            for k, v in SECURITY_HEADERS
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        path = str(scope.get("path", ""))
        docs = path in DOCS_PATHS or path.startswith(DOCS_ASSETS)
        extra = [(b"cache-control", b"no-store")] if path.startswith("/api/") else []

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, DOCS_CSP if docs and k == b"content-security-policy" else v)
                    for k, v in [*self.headers, *extra]
                    if k not in names
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class HeadAsGet:
    """Answers ``HEAD`` on every ``GET`` route as the ``GET`` would, without the body
    (FastAPI's routes answered 405): headers, status and ``Content-Length`` are the GET's."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if not message.get("more_body", False):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_headers_only)


class BodyLimit:
    """Answers 413 to request bodies larger than ``max_bytes`` (declared or streamed), and
    408 to one that does not arrive in full within ``timeout_s`` seconds (a body declared
    with ``Content-Length: 20`` and 14 bytes sent once held its connection forever)."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float = 10.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def _reject(self, send: Send, status: int = 413) -> None:
        if status == 413:
            body = b'{"detail":"request body too large (limit %d bytes)"}' % self.max_bytes
        else:
            body = b'{"detail":"request body not received within %g s"}' % self.timeout_s
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status == 408:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    too_big = int(v) > self.max_bytes
                except ValueError:
                    too_big = True
                if too_big:
                    await self._reject(send)
                    return
        if scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        # read the whole body (bounded), then replay it to the app
        chunks: list[bytes] = []
        size = 0
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        while True:
            try:
                message = await asyncio.wait_for(receive(), deadline - asyncio.get_running_loop().time())
            except TimeoutError:
                await self._reject(send, 408)
                return
            if message["type"] != "http.request":
                await self.app(scope, _replay([message]), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._reject(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(
            scope,
            _replay([{"type": "http.request", "body": b"".join(chunks), "more_body": False}], receive),
            send,
        )


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    """A ``receive`` that returns ``messages`` first, then defers to ``then``."""
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive
