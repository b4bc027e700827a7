"""A live movierec server (uvicorn in a thread) over the service tests' tiny data set,
and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import importlib.util
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"


def _service_data() -> Any:
    """The service tests' data helpers (``small_dataset``), loaded by path."""
    path = Path(__file__).resolve().parents[1] / "service" / "conftest.py"
    spec = importlib.util.spec_from_file_location("_movierec_service_testdata", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")
    return CHROMIUM


def start_live_server(
    home: Path, model: Any, *, watch_model_s: float | None = None, **settings: Any
) -> tuple[str, Any]:
    """Save ``model`` and the tiny catalogue under ``home`` and serve them (uvicorn in a thread)
    on 127.0.0.1 (``settings``: more :class:`Settings` fields); returns the base URL and a
    function that stops the server."""
    import uvicorn

    from movierec.models.artifacts import save_model
    from movierec.service.app import create_app
    from movierec.service.config import ServiceSettings
    from movierec.settings import Settings
    from movierec.storage.catalog import build_catalog
    from movierec.storage.db import connect

    save_model(model, home / "model")
    conn = connect(home / "db.sqlite3")
    build_catalog(_service_data().small_dataset(), conn)
    conn.close()
    app = create_app(
        ServiceSettings(
            inference_process=False,
            settings=Settings(home=home, **settings),
            model_dir=home / "model",
            database_path=home / "db.sqlite3",
        ),
        watch_model_s=watch_model_s,
    )
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)

    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            stop()
            pytest.fail("the movierec server did not start within 20 s")
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", stop


@pytest.fixture(scope="session")
def serve_home() -> Any:
    """:func:`start_live_server`, for tests that need a server of their own."""
    return start_live_server


@pytest.fixture(scope="session")
def small_dataset() -> Any:
    """The service tests' tiny data set."""
    return _service_data().small_dataset()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from movierec.models.registry import available, create

    data = _service_data().small_dataset()
    model = create("itemknn" if "itemknn" in available() else "pop").fit(data)
    url, stop = start_live_server(tmp_path_factory.mktemp("live"), model)
    yield url
    stop()


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
