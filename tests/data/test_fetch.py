"""Tests for movierec.data.fetch: mirror, cache, checksums, atomic unpack, download (no network)."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import io
import json
import os
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from movierec.data.cache import MARKER, record
from movierec.data.fetch import fetch, resolve_dataset_path
from movierec.data.registry import DATASETS, FetchError
from movierec.data.unpack import unpack
from movierec.settings import Settings

RATINGS = b"userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.0,964981247\n"
MOVIES = b"movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n3,Grumpier Old Men (1995),Comedy\n"
SMALL = "ml-latest-small"
# The module that reads DOWNLOAD_TIMEOUT_S when downloading (patched below).
download_mod = importlib.import_module("movierec.data.download")


def make_zip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip holding ``members`` (name -> content; names ending in ``/`` are folders)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def small_members(folder: str = SMALL) -> dict[str, bytes]:
    return {f"{folder}/": b"", f"{folder}/ratings.csv": RATINGS, f"{folder}/movies.csv": MOVIES}


def register(monkeypatch: pytest.MonkeyPatch, data: bytes, name: str = SMALL) -> None:
    """Make the registry's checksums for ``name`` those of ``data``."""
    info = dataclasses.replace(
        DATASETS[name],
        md5=hashlib.md5(data).hexdigest(),
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
    )
    monkeypatch.setitem(DATASETS, name, info)


def leftovers(folder: Path) -> list[str]:
    """Everything under ``folder`` (relative paths), to check that a failure left nothing behind."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) if folder.exists() else []


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # A base_url nobody listens on: a test that reaches the network by mistake fails fast.
    return Settings(home=tmp_path / "home", mirror=None, base_url=f"http://127.0.0.1:{_free_port()}/x/")


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    path = tmp_path / "mirror"
    path.mkdir()
    return path


@pytest.fixture
def small_zip(mirror: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """A tiny ml-latest-small.zip in the mirror, registered with its own checksum."""
    data = make_zip(small_members())
    (mirror / "ml-latest-small.zip").write_bytes(data)
    register(monkeypatch, data)
    return data


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- a local HTTP server


@dataclass
class Served:
    """Files the test server serves (URL path -> bytes), how many bytes of each it really sends."""

    base_url: str
    files: dict[str, bytes] = field(default_factory=dict)
    cut: dict[str, int] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    monkeypatch.setattr(download_mod, "DOWNLOAD_TIMEOUT_S", 5.0)
    served = Served(base_url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.requests.append(self.path)
            body = served.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: served.cut.get(self.path, len(body))])

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    served.base_url = f"http://127.0.0.1:{httpd.server_address[1]}/movielens"
    try:
        yield served
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


# --------------------------------------------------------------------------- registry


def test_registry_names_zips_and_folders() -> None:
    assert set(DATASETS) == {
        "ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-32m", "ml-latest-small", "ml-latest",
    }  # fmt: skip
    assert (DATASETS["ml-10m"].zip_name, DATASETS["ml-10m"].folder) == ("ml-10m.zip", "ml-10M100K")
    info = DATASETS[SMALL]
    assert info.sha256 == "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436"
    assert info.md5 == "31a303aabbc519bd33d025e44d6c2570"
    assert info.url("https://h/d/") == info.url("https://h/d") == "https://h/d/ml-latest-small.zip"


def test_unknown_name_lists_known_names(settings: Settings) -> None:
    with pytest.raises(FetchError, match="unknown MovieLens data set 'ml-2m'") as caught:
        fetch("ml-2m", settings)
    assert "ml-latest-small" in str(caught.value) and "ml-10m" in str(caught.value)


# --------------------------------------------------------------------------- mirror and cache


def test_mirror_hit_unpacks_into_cache(settings: Settings, mirror: Path, small_zip: bytes) -> None:
    path = fetch(SMALL, settings, mirror=mirror, progress=False)
    assert path == settings.cache_dir / SMALL
    assert (path / "ratings.csv").read_bytes() == RATINGS
    assert (path / "movies.csv").read_bytes() == MOVIES
    record = json.loads((path / MARKER).read_text())
    assert record["sha256"] == hashlib.sha256(small_zip).hexdigest()
    assert record["md5"] == hashlib.md5(small_zip).hexdigest()
    # Only the data set folder: no temporary files, and the mirror zip is not copied.
    assert leftovers(settings.cache_dir) == [
        SMALL,
        f"{SMALL}/{MARKER}",
        f"{SMALL}/movies.csv",
        f"{SMALL}/ratings.csv",
    ]


def test_mirror_from_settings(tmp_path: Path, mirror: Path, small_zip: bytes) -> None:
    settings = Settings(home=tmp_path / "home", mirror=mirror, base_url="http://127.0.0.1:9/")
    assert (fetch(SMALL, settings, progress=False) / "ratings.csv").read_bytes() == RATINGS


def test_second_call_reuses_the_unpacked_copy(settings: Settings, mirror: Path, small_zip: bytes) -> None:
    path = fetch(SMALL, settings, mirror=mirror, progress=False)
    marker_time = (path / MARKER).stat().st_mtime_ns
    (mirror / "ml-latest-small.zip").unlink()  # a re-extraction would now have to download, and fail
    assert fetch(SMALL, settings, mirror=mirror, progress=False) == path
    assert (path / MARKER).stat().st_mtime_ns == marker_time


def test_force_unpacks_again(settings: Settings, mirror: Path, small_zip: bytes) -> None:
    path = fetch(SMALL, settings, mirror=mirror, progress=False)
    (path / "ratings.csv").write_bytes(b"edited by hand")
    assert fetch(SMALL, settings, mirror=mirror, progress=False) == path  # marker still valid: kept
    assert (path / "ratings.csv").read_bytes() == b"edited by hand"
    fetch(SMALL, settings, mirror=mirror, force=True, progress=False)
    assert (path / "ratings.csv").read_bytes() == RATINGS
    assert not [p for p in settings.cache_dir.iterdir() if p.name.startswith(".partial-")]


def test_marker_for_another_checksum_is_replaced(
    settings: Settings, mirror: Path, small_zip: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = fetch(SMALL, settings, mirror=mirror, progress=False)
    newer = make_zip({**small_members(), f"{SMALL}/ratings.csv": RATINGS + b"2,1,5.0,964982800\n"})
    (mirror / "ml-latest-small.zip").write_bytes(newer)
    register(monkeypatch, newer)
    assert fetch(SMALL, settings, mirror=mirror, progress=False) == path
    assert (path / "ratings.csv").read_bytes().endswith(b"2,1,5.0,964982800\n")
    assert json.loads((path / MARKER).read_text())["sha256"] == hashlib.sha256(newer).hexdigest()


def test_folder_without_marker_is_not_trusted(settings: Settings, mirror: Path, small_zip: bytes) -> None:
    half = settings.cache_dir / SMALL
    half.mkdir(parents=True)
    (half / "ratings.csv").write_bytes(b"half written")
    assert fetch(SMALL, settings, mirror=mirror, progress=False) == half
    assert (half / "ratings.csv").read_bytes() == RATINGS
    assert (half / MARKER).is_file()


def test_stale_temporary_files_are_cleaned(settings: Settings, mirror: Path, small_zip: bytes) -> None:
    settings.cache_dir.mkdir(parents=True)
    stale, fresh = settings.cache_dir / ".partial-old", settings.cache_dir / ".partial-new"
    stale.mkdir()
    fresh.mkdir()
    day_ago = time.time() - 2 * 24 * 3600
    os.utime(stale, (day_ago, day_ago))
    fetch(SMALL, settings, mirror=mirror, progress=False)
    assert not stale.exists()
    assert fresh.exists()  # may belong to a process still running


# --------------------------------------------------------------------------- bad zips: clear error, nothing left


def test_checksum_mismatch_names_both_and_leaves_nothing(
    settings: Settings, mirror: Path, small_zip: bytes
) -> None:
    other = make_zip({**small_members(), f"{SMALL}/ratings.csv": b"userId,movieId,rating,timestamp\n"})
    (mirror / "ml-latest-small.zip").write_bytes(other)
    with pytest.raises(FetchError, match="checksum mismatch") as caught:
        fetch(SMALL, settings, mirror=mirror, progress=False)
    message = str(caught.value)
    assert hashlib.sha256(small_zip).hexdigest() in message
    assert hashlib.sha256(other).hexdigest() in message
    assert str(mirror / "ml-latest-small.zip") in message and "replace" in message
    assert leftovers(settings.cache_dir) == []


def test_truncated_zip_is_reported_and_leaves_nothing(
    settings: Settings, mirror: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make_zip(small_members())[:-40]  # loses the end-of-central-directory record
    (mirror / "ml-latest-small.zip").write_bytes(data)
    register(monkeypatch, data)  # the checksum passes: the zip check must catch it
    with pytest.raises(FetchError, match="not a readable zip"):
        fetch(SMALL, settings, mirror=mirror, progress=False)
    assert leftovers(settings.cache_dir) == []


def test_member_with_bad_crc_is_reported_and_leaves_nothing(
    settings: Settings, mirror: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make_zip(small_members(), compression=zipfile.ZIP_STORED)
    data = data.replace(b"Toy Story", b"Toy Storm")  # stored, so the bytes are there to flip
    (mirror / "ml-latest-small.zip").write_bytes(data)
    register(monkeypatch, data)
    with pytest.raises(FetchError, match=r"movies\.csv' is corrupt"):
        fetch(SMALL, settings, mirror=mirror, progress=False)
    assert leftovers(settings.cache_dir) == []


@pytest.mark.parametrize("evil", [f"{SMALL}/../../evil.txt", "{tmp}/evil-absolute.txt", "..\\evil.txt"])
def test_zip_slip_member_is_refused(
    settings: Settings, mirror: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, evil: str
) -> None:
    data = make_zip({**small_members(), evil.format(tmp=tmp_path): b"gotcha"})
    (mirror / "ml-latest-small.zip").write_bytes(data)
    register(monkeypatch, data)
    with pytest.raises(FetchError, match="outside the target folder"):
        fetch(SMALL, settings, mirror=mirror, progress=False)
    assert leftovers(settings.cache_dir) == []
    assert not [p for p in tmp_path.rglob("*evil*")]


def test_zip_without_the_expected_folder(
    settings: Settings, mirror: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make_zip(small_members("ml-latest-smal"))
    (mirror / "ml-latest-small.zip").write_bytes(data)
    register(monkeypatch, data)
    with pytest.raises(FetchError, match="'ml-latest-small/' is missing") as caught:
        fetch(SMALL, settings, mirror=mirror, progress=False)
    assert "ml-latest-smal'" in str(caught.value)  # says what the archive holds instead
    assert leftovers(settings.cache_dir) == []


def test_zip_without_a_required_file(
    settings: Settings, mirror: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make_zip({f"{SMALL}/ratings.csv": RATINGS})
    (mirror / "ml-latest-small.zip").write_bytes(data)
    register(monkeypatch, data)
    with pytest.raises(FetchError, match=r"ml-latest-small/movies\.csv missing"):
        fetch(SMALL, settings, mirror=mirror, progress=False)
    assert leftovers(settings.cache_dir) == []


# --------------------------------------------------------------------------- download


def test_download_when_no_mirror(settings: Settings, server: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_zip(small_members())
    register(monkeypatch, data)
    server.files["/movielens/ml-latest-small.zip"] = data
    settings = settings.model_copy(update={"base_url": server.base_url})
    path = fetch(SMALL, settings, progress=False)
    assert (path / "ratings.csv").read_bytes() == RATINGS
    assert server.requests == ["/movielens/ml-latest-small.zip"]  # checksum known: no .md5 fetched
    assert (settings.cache_dir / "ml-latest-small.zip").read_bytes() == data  # kept for force / reuse
    assert not [p for p in settings.cache_dir.iterdir() if p.name.startswith(".partial-")]
    # The kept zip is used again (no second request) when the unpacked folder is gone.
    (path / MARKER).unlink()
    fetch(SMALL, settings, progress=False)
    assert len(server.requests) == 1


def test_empty_mirror_falls_back_to_download(
    settings: Settings, server: Served, mirror: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make_zip(small_members())
    register(monkeypatch, data)
    server.files["/movielens/ml-latest-small.zip"] = data
    settings = settings.model_copy(update={"base_url": server.base_url})
    assert (fetch(SMALL, settings, mirror=mirror, progress=False) / "movies.csv").read_bytes() == MOVIES


def test_truncated_download_is_reported_and_leaves_nothing(
    settings: Settings, server: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make_zip(small_members())
    register(monkeypatch, data)
    server.files["/movielens/ml-latest-small.zip"] = data
    server.cut["/movielens/ml-latest-small.zip"] = len(data) // 2
    settings = settings.model_copy(update={"base_url": server.base_url})
    with pytest.raises(FetchError, match=f"cut short: got {len(data) // 2} of {len(data)} bytes") as caught:
        fetch(SMALL, settings, progress=False)
    assert "MOVIEREC_MIRROR" in str(caught.value)
    assert leftovers(settings.cache_dir) == []


def test_downloaded_checksum_mismatch_leaves_nothing(
    settings: Settings, server: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(monkeypatch, make_zip(small_members()))
    server.files["/movielens/ml-latest-small.zip"] = make_zip(small_members()) + b"junk"
    settings = settings.model_copy(update={"base_url": server.base_url})
    with pytest.raises(FetchError, match="checksum mismatch") as caught:
        fetch(SMALL, settings, progress=False)
    assert f"{server.base_url}/ml-latest-small.zip" in str(caught.value)
    assert leftovers(settings.cache_dir) == []


def test_http_error_says_to_set_a_mirror(settings: Settings, server: Served, mirror: Path) -> None:
    settings = settings.model_copy(update={"base_url": server.base_url})
    with pytest.raises(FetchError, match="HTTP 404") as caught:
        fetch(SMALL, settings, mirror=mirror, progress=False)
    message = str(caught.value)
    assert "MOVIEREC_MIRROR" in message
    assert f"the mirror {mirror} holds no ml-latest-small.zip" in message
    assert leftovers(settings.cache_dir) == []


def test_unreachable_server_says_to_set_a_mirror(settings: Settings) -> None:
    with pytest.raises(FetchError, match=r"could not download http://127\.0\.0\.1:.*MOVIEREC_MIRROR"):
        fetch(SMALL, settings, progress=False)
    assert leftovers(settings.cache_dir) == []


@pytest.mark.parametrize("sidecar_ok", [True, False])
def test_unknown_checksum_is_checked_against_served_md5(
    settings: Settings, server: Served, monkeypatch: pytest.MonkeyPatch, sidecar_ok: bool
) -> None:
    data = make_zip(small_members("ml-32m"))
    monkeypatch.setitem(DATASETS, "ml-32m", dataclasses.replace(DATASETS["ml-32m"], md5=None, sha256=None))
    md5 = hashlib.md5(data).hexdigest() if sidecar_ok else "0" * 32
    server.files["/movielens/ml-32m.zip"] = data
    server.files["/movielens/ml-32m.zip.md5"] = f"MD5 (ml-32m.zip) = {md5}\n".encode()
    settings = settings.model_copy(update={"base_url": server.base_url})
    if sidecar_ok:
        path = fetch("ml-32m", settings, progress=False)
        assert (path / "ratings.csv").read_bytes() == RATINGS
        assert server.requests == ["/movielens/ml-32m.zip.md5", "/movielens/ml-32m.zip"]
        # The kept zip is re-checked against the kept .md5 on its next use.
        (settings.cache_dir / "ml-32m.zip.md5").write_text(f"{'1' * 32}  ml-32m.zip\n")
        (path / MARKER).unlink()
        fetch("ml-32m", settings, progress=False)  # bad kept zip: deleted and downloaded again
        assert server.requests[-1] == "/movielens/ml-32m.zip"
    else:
        with pytest.raises(FetchError, match=f"md5 checksum mismatch.*expected {'0' * 32}"):
            fetch("ml-32m", settings, progress=False)
        assert leftovers(settings.cache_dir) == []


def test_unknown_checksum_without_md5_warns_and_relies_on_crc(
    settings: Settings, mirror: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(
        DATASETS, "ml-latest", dataclasses.replace(DATASETS["ml-latest"], md5=None, sha256=None)
    )
    (mirror / "ml-latest.zip").write_bytes(make_zip(small_members("ml-latest")))
    with caplog.at_level("WARNING", logger="movierec.data.fetch"):
        path = fetch("ml-latest", settings, mirror=mirror, progress=False)
    assert (path / "ratings.csv").read_bytes() == RATINGS
    assert "no published checksum" in caplog.text


# --------------------------------------------------------------------------- resolve_dataset_path


def test_resolve_existing_directory_is_returned_as_is(settings: Settings, tmp_path: Path) -> None:
    own = tmp_path / "my-copy"
    own.mkdir()
    assert resolve_dataset_path(str(own), settings) == own
    assert not settings.cache_dir.exists()


def test_resolve_zip_with_one_top_folder(settings: Settings, tmp_path: Path) -> None:
    data = make_zip(small_members("my-ratings"))
    zip_path = tmp_path / "whatever.zip"
    zip_path.write_bytes(data)
    path = resolve_dataset_path(str(zip_path), settings)
    assert path == settings.cache_dir / "local" / hashlib.sha256(data).hexdigest()[:16] / "my-ratings"
    assert (path / "ratings.csv").read_bytes() == RATINGS
    marker_time = (path / MARKER).stat().st_mtime_ns
    assert resolve_dataset_path(str(zip_path), settings) == path
    assert (path / MARKER).stat().st_mtime_ns == marker_time


def test_resolve_flat_zip_is_wrapped_in_a_folder(settings: Settings, tmp_path: Path) -> None:
    zip_path = tmp_path / "flat.zip"
    zip_path.write_bytes(make_zip({"ratings.csv": RATINGS, "movies.csv": MOVIES}))
    path = resolve_dataset_path(str(zip_path), settings)
    assert path.name == "flat"
    assert (path / "movies.csv").read_bytes() == MOVIES


def test_resolve_official_zip_lands_in_the_official_folder(
    settings: Settings, mirror: Path, small_zip: bytes
) -> None:
    path = resolve_dataset_path(str(mirror / "ml-latest-small.zip"), settings)
    assert path == settings.cache_dir / SMALL
    assert fetch(SMALL, settings, progress=False) == path  # fetch reuses it: no mirror, no network


def test_resolve_name_fetches(settings: Settings, mirror: Path, small_zip: bytes) -> None:
    assert resolve_dataset_path(SMALL, settings, mirror=mirror, progress=False) == settings.cache_dir / SMALL


def test_resolve_bad_zip_and_bad_names(settings: Settings, tmp_path: Path) -> None:
    broken = tmp_path / "broken.zip"
    broken.write_bytes(make_zip(small_members())[:100])
    with pytest.raises(FetchError, match=r"broken\.zip is not a readable zip"):
        resolve_dataset_path(str(broken), settings)
    assert leftovers(settings.cache_dir) == []
    text = tmp_path / "ratings.csv"
    text.write_bytes(RATINGS)
    with pytest.raises(FetchError, match=r"not a \.zip"):
        resolve_dataset_path(str(text), settings)
    with pytest.raises(FetchError, match=r"neither an existing folder.*ml-latest-small"):
        resolve_dataset_path(str(tmp_path / "nope"), settings)


def test_resolve_zip_slip_is_refused(settings: Settings, tmp_path: Path) -> None:
    zip_path = tmp_path / "evil.zip"
    zip_path.write_bytes(make_zip({"top/ratings.csv": RATINGS, "top/../../escaped.txt": b"x"}))
    with pytest.raises(FetchError, match="outside the target folder"):
        resolve_dataset_path(str(zip_path), settings)
    assert not list(tmp_path.rglob("escaped.txt"))
    assert leftovers(settings.cache_dir) == []


# --------------------------------------------------------------------------- the real file


def _real_mirror() -> Path | None:
    candidates = [
        os.environ.get("MOVIEREC_MIRROR"),
        Path(__file__).resolve().parents[2] / "../shared/data/movielens",
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "ml-latest-small.zip").is_file():
            return Path(candidate).resolve()
    return None


@pytest.mark.realdata
def test_real_ml_latest_small_through_the_mirror(tmp_path: Path) -> None:
    real = _real_mirror()
    if real is None:
        pytest.skip("ml-latest-small.zip not found (set MOVIEREC_MIRROR or provide ../shared/data/movielens)")
    settings = Settings(home=tmp_path / "home", mirror=real, base_url="http://127.0.0.1:9/")
    path = fetch(SMALL, settings, progress=False)
    record = json.loads((path / MARKER).read_text())
    assert record["sha256"] == "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436"
    assert record["md5"] == "31a303aabbc519bd33d025e44d6c2570"
    assert sorted(p.name for p in path.iterdir()) == [
        MARKER, "README.txt", "links.csv", "movies.csv", "ratings.csv", "tags.csv",
    ]  # fmt: skip
    with open(path / "ratings.csv", "rb") as handle:
        assert sum(1 for _ in handle) == 100_837  # header + 100,836 ratings


def test_unpack_keeps_a_folder_another_process_completed(
    settings: Settings, mirror: Path, small_zip: bytes
) -> None:
    # Two processes unpacking at once: the later one must not delete the folder the first one returned.
    path = fetch(SMALL, settings, mirror=mirror, progress=False)
    marker_time = (path / MARKER).stat().st_mtime_ns
    zip_path = mirror / "ml-latest-small.zip"
    digests = (hashlib.md5(small_zip).hexdigest(), hashlib.sha256(small_zip).hexdigest())
    marker = record(SMALL, zip_path, digests)
    unpack(zip_path, path, SMALL, ("ratings.csv",), marker, "remedy")
    assert (path / MARKER).stat().st_mtime_ns == marker_time
    assert leftovers(settings.cache_dir) == [
        SMALL,
        f"{SMALL}/{MARKER}",
        f"{SMALL}/movies.csv",
        f"{SMALL}/ratings.csv",
    ]
