"""Model reloading: atomic swap, and the previous model keeps serving when a reload fails.

The mechanisms: ``POST /api/admin/reload`` (loopback only), the directory watch
(``create_app(watch_model_s=...)``) and ``SIGHUP`` to a one-process server (a
real uvicorn subprocess). A truncated or tampered artifact fails its checksum,
a model answering NaN fails the probe; each time the old engine stays.
"""

from __future__ import annotations

import gc
import math
import os
import signal
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from movierec.data.dataset import Dataset
from movierec.models.artifacts import save_model
from movierec.models.registry import create
from movierec.service.app import check_engine, create_app
from movierec.service.config import ServiceSettings
from movierec.serving import Answer, ScoredMovie
from movierec.settings import Settings

LOCAL = ("127.0.0.1", 50000)

#: what an operator's script sends (a browser cannot, across sites, without a preflight)
ADMIN = {"X-Movierec-Admin": "1"}


@pytest.fixture
def svc(tmp_path: Path, tiny: Dataset, make_home: Callable[..., Path]) -> ServiceSettings:
    make_home(tmp_path, tiny)
    return ServiceSettings(
        inference_process=False,
        settings=Settings(home=tmp_path),
        model_dir=tmp_path / "model",
        database_path=tmp_path / "db.sqlite3",
    )


@pytest.fixture
def local(svc: ServiceSettings) -> Iterator[TestClient]:
    with TestClient(create_app(svc), client=LOCAL) as c:
        yield c


def truncate(model_dir: Path) -> None:
    weights = model_dir / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def tamper(model_dir: Path) -> None:
    """Flip one byte of the weights, size unchanged (only the checksum can tell)."""
    weights = model_dir / "weights.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0xFF
    weights.write_bytes(bytes(raw))


def recs(c: TestClient) -> list[int]:
    r = c.get("/api/recommendations", params={"n": 5})
    assert r.status_code == 200, r.text
    return [m["movie_id"] for m in r.json()["movies"]]


def test_reload_swaps_in_the_new_model(local: TestClient, svc: ServiceSettings, tiny: Dataset) -> None:
    app: Any = local.app
    old = app.state.service.engine
    before = local.get("/api/health").json()
    assert before["model"] == "pop" and before["last_reload_error"] is None
    save_model(create("itemknn").fit(tiny), svc.resolved_model_dir)
    r = local.post("/api/admin/reload", headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "itemknn" and r.json()["status"] == "reloaded"
    assert app.state.service.engine is not old
    after = local.get("/api/health").json()
    assert after["model"] == "itemknn" and after["model_loaded_at"] >= before["model_loaded_at"]
    local.post("/api/session/items", json={"kind": "movie", "value": 2, "feedback": "like"})
    assert 2 not in recs(local)


@pytest.mark.parametrize("damage", [truncate, tamper], ids=["truncated", "tampered"])
def test_failed_reload_keeps_the_previous_model(local: TestClient, svc: ServiceSettings, damage: Any) -> None:
    app: Any = local.app
    old = app.state.service.engine
    served = recs(local)
    damage(svc.resolved_model_dir)
    r = local.post("/api/admin/reload", headers=ADMIN)
    assert r.status_code == 422
    assert "previous model keeps serving" in r.json()["detail"] and "checksum" in r.json()["detail"]
    assert app.state.service.engine is old  # not swapped, not half-swapped
    assert recs(local) == served  # the old model answers as before
    health = local.get("/api/health").json()
    assert health["model"] == "pop" and "ArtifactError" in health["last_reload_error"]


def test_model_with_nan_weights_is_refused(local: TestClient, svc: ServiceSettings, tiny: Dataset) -> None:
    """Weights broken before they were saved pass the checksum; the probe refuses them."""
    import numpy as np

    model = create("itemknn").fit(tiny)
    state = model.state()
    state["sim_data"] = np.full_like(state["sim_data"], np.nan)
    model.load_state(state)
    save_model(model, svc.resolved_model_dir)
    app: Any = local.app
    old = app.state.service.engine
    r = local.post("/api/admin/reload", headers=ADMIN)
    assert r.status_code == 422 and app.state.service.engine is old, r.text
    assert "sim_data" in r.json()["detail"]


def test_check_engine_rejects_non_finite_scores() -> None:
    import numpy as np

    stub = SimpleNamespace(
        model=SimpleNamespace(movies=SimpleNamespace(ids=np.array([7]))),
        catalog=SimpleNamespace(rating_count=np.array([3])),
        recommend=lambda state, n, n_tags: Answer((ScoredMovie(7, math.nan),), (), False),
    )
    with pytest.raises(RuntimeError, match="non-finite"):
        check_engine(stub)


def test_reload_only_from_this_machine(svc: ServiceSettings) -> None:
    with TestClient(create_app(svc)) as remote:  # client host "testclient"
        assert remote.post("/api/admin/reload", headers=ADMIN).status_code == 403
    with TestClient(create_app(svc), client=LOCAL) as proxied:
        r = proxied.post("/api/admin/reload", headers={**ADMIN, "X-Forwarded-For": "203.0.113.9"})
        assert r.status_code == 403
        assert proxied.post("/api/admin/reload", headers=ADMIN).status_code == 200


def test_watch_reloads_on_change_and_survives_a_broken_write(svc: ServiceSettings, tiny: Dataset) -> None:
    app: Any = create_app(svc, watch_model_s=0.05)
    with TestClient(app, client=LOCAL) as c:
        old = app.state.service.engine
        truncate(svc.resolved_model_dir)
        deadline = time.monotonic() + 10
        while app.state.service.reloader.last_error is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert app.state.service.reloader.last_error and app.state.service.engine is old
        assert c.get("/api/health").json()["model"] == "pop"
        save_model(create("itemknn").fit(tiny), svc.resolved_model_dir)
        while app.state.service.engine is old and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.get("/api/health").json()["model"] == "itemknn"
        assert app.state.service.reloader.last_error is None


def test_a_model_saved_while_the_service_starts_is_picked_up(
    svc: ServiceSettings, tiny: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watch compares with the directory as it was before the first load: a model saved
    between that load and the watch's start (a first run's background training) was missed."""
    from movierec.service import lifespan as app_module

    real = app_module.build_engine
    calls: list[int] = []

    def build_then_save(*args: Any, **kwargs: Any) -> Any:
        engine = real(*args, **kwargs)
        if not calls:  # the start-up load: the trained model lands right after it
            save_model(create("itemknn").fit(tiny), svc.resolved_model_dir)
        calls.append(1)
        return engine

    monkeypatch.setattr(app_module, "build_engine", build_then_save)
    app: Any = create_app(svc, watch_model_s=0.05)
    with TestClient(app, client=LOCAL) as c:
        deadline = time.monotonic() + 10
        while c.get("/api/health").json()["model"] != "itemknn" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.get("/api/health").json()["model"] == "itemknn"
        assert app.state.service.reloader.reloads == 1


def test_watch_interval_must_be_positive(svc: ServiceSettings) -> None:
    with pytest.raises(ValueError, match="watch_model_s"):
        create_app(svc, watch_model_s=0)


LAUNCHER = """
import sys
from pathlib import Path
import uvicorn
from movierec.service.app import create_app
from movierec.service.config import ServiceSettings
from movierec.settings import Settings
tmp, port = Path(sys.argv[1]), int(sys.argv[2])
svc = ServiceSettings(inference_process=False, settings=Settings(home=tmp), model_dir=tmp / "model", database_path=tmp / "db.sqlite3")
uvicorn.run(create_app(svc), host="127.0.0.1", port=port, log_level="warning")
"""


def _wait(url: str, proc: subprocess.Popen[bytes], check: Any, seconds: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server died"
        try:
            health: dict[str, Any] = httpx.get(url + "/api/health", timeout=2.0).json()
            if check(health):
                return health
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("timed out waiting for the server")


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="needs POSIX signals")
def test_sighup_reloads_and_a_broken_model_keeps_the_old_one(svc: ServiceSettings, tiny: Dataset) -> None:
    home = svc.settings.home
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(home), str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        first = _wait(url, proc, lambda h: h["model"] == "pop")
        tamper(svc.resolved_model_dir)
        os.kill(proc.pid, signal.SIGHUP)
        broken = _wait(url, proc, lambda h: h["last_reload_error"] is not None)
        assert broken["model"] == "pop" and broken["model_loaded_at"] == first["model_loaded_at"]
        assert httpx.get(url + "/api/recommendations", timeout=5.0).status_code == 200
        save_model(create("itemknn").fit(tiny), svc.resolved_model_dir)
        os.kill(proc.pid, signal.SIGHUP)
        _wait(url, proc, lambda h: h["model"] == "itemknn" and h["last_reload_error"] is None)
    finally:
        proc.terminate()
        proc.wait(10.0)


def test_the_serving_heap_is_frozen_and_a_reload_frees_the_old_engine(
    local: TestClient, svc: ServiceSettings, tiny: Dataset
) -> None:
    """Startup exempts the long-lived objects from full collections (``gc.freeze``); a
    reload unfreezes first, so the previous engine does not stay behind."""
    app: Any = local.app
    assert gc.get_freeze_count() > 0
    old = weakref.ref(app.state.service.engine)
    save_model(create("itemknn").fit(tiny), svc.resolved_model_dir)
    assert local.post("/api/admin/reload", headers=ADMIN).status_code == 200
    assert old() is None and gc.get_freeze_count() > 0


def test_reload_cannot_be_triggered_from_another_site(svc: ServiceSettings) -> None:
    """Issue: a cross-site ``text/plain`` POST (a "simple" request: no preflight) from the operator's
    browser reloaded the model (5-9 s of CPU), and ``Host: evil.example`` was accepted."""
    with TestClient(create_app(svc), client=LOCAL) as c:
        simple = {"Content-Type": "text/plain"}
        assert c.post("/api/admin/reload", content=b"x", headers=simple).status_code == 415
        for hostile in (
            {**ADMIN, "Sec-Fetch-Site": "cross-site"},
            {**ADMIN, "Sec-Fetch-Site": "same-site"},
            {**ADMIN, "Origin": "https://evil.example"},
            {**ADMIN, "Origin": "null"},
            {"Content-Type": "application/json", "Origin": "http://evil.example"},
        ):
            r = c.post("/api/admin/reload", headers=hostile)
            assert r.status_code == 403, (hostile, r.text)
        # DNS rebinding: the page of evil.example resolved to 127.0.0.1 sends its own Host
        for path, method in (("/api/admin/reload", "POST"), ("/api/health", "GET"), ("/", "GET")):
            r = c.request(method, path, headers={**ADMIN, "Host": "evil.example"})
            assert r.status_code == 400, (path, r.text)
        # the operator's own requests pass
        assert c.post("/api/admin/reload", json={}).status_code == 200
        same = {**ADMIN, "Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
        assert c.post("/api/admin/reload", headers=same).status_code == 200


def test_admin_token_for_deployments_behind_a_proxy(svc: ServiceSettings) -> None:
    token = "s3cret-admin-token-0123456789"
    with_token = svc.model_copy(update={"settings": svc.settings.model_copy(update={"admin_token": token})})
    with TestClient(create_app(with_token)) as remote:  # not loopback: "testclient"
        assert remote.post("/api/admin/reload", headers=ADMIN).status_code == 403
        wrong = {**ADMIN, "Authorization": "Bearer " + "x" * len(token)}
        assert remote.post("/api/admin/reload", headers=wrong).status_code == 403
        good = {**ADMIN, "Authorization": f"Bearer {token}", "X-Forwarded-For": "203.0.113.9"}
        assert remote.post("/api/admin/reload", headers=good).status_code == 200
    with pytest.raises(ValueError, match="at least 16"):
        Settings(admin_token="short")


def test_allowed_hosts_setting(monkeypatch: pytest.MonkeyPatch, svc: ServiceSettings) -> None:
    monkeypatch.setenv("MOVIEREC_ALLOWED_HOSTS", "movies.example.org,*.example.net,[::1]")
    s = Settings(home=svc.settings.home)
    assert s.allowed_host_list == ["movies.example.org", "*.example.net", "[::1]"]
    app = create_app(svc.model_copy(update={"settings": s}))
    with TestClient(app, base_url="https://movies.example.org") as c:
        assert c.get("/api/health").status_code == 200
        for host in ("a.example.net", "[::1]:8000"):
            assert c.get("/api/health", headers={"Host": host}).status_code == 200, host
        for host in ("testserver", "example.net.evil.example", "127.0.0.1"):
            assert c.get("/api/health", headers={"Host": host}).status_code == 400, host
    for bad in ("ex*ample.com", "*example.com", "::1"):
        with pytest.raises(ValueError):
            Settings(allowed_hosts=bad)
