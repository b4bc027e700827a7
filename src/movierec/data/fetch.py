"""Download, mirror, verify and unpack the official GroupLens MovieLens zips.

The one entry point for getting a data set onto disk is :func:`fetch` (by
name) or :func:`resolve_dataset_path` (a name, a user's own unpacked folder or
a user's own zip). Both return the path of an unpacked folder; loaders read
files from it and never touch the network.

Where a data set comes from, in order:

1. ``settings.cache_dir / <folder>`` when it was unpacked before and its
   marker file (``.complete``, written last) names the expected checksum;
2. ``<mirror>/<zip>``: a directory of official zips (the ``mirror`` argument or
   ``MOVIEREC_MIRROR``), verified against the published checksum;
3. ``settings.cache_dir / <zip>``: a zip this module downloaded earlier;
4. ``settings.base_url + <zip>``, streamed to a temporary file beside the cache,
   verified, then kept as (3).

Unpacking is atomic: members are checked (no absolute paths, no ``..``),
extracted into a temporary folder next to the destination while every member's
CRC-32 is checked, the marker is written, and only then is the folder renamed
into place. On any failure the temporary files are removed, so the cache never
holds a half-written data set or a partial download.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from tqdm import tqdm

from movierec.settings import Settings

log = logging.getLogger(__name__)

__all__ = [
    "DATASETS",
    "MARKER",
    "DatasetInfo",
    "FetchError",
    "dataset_info",
    "fetch",
    "resolve_dataset_path",
]

#: Name of the marker file written (last) into every unpacked data set folder.
MARKER = ".complete"
#: Seconds a single network operation (connect or read) may block.
DOWNLOAD_TIMEOUT_S = 60.0
#: Temporary files and folders older than this (seconds) are left-overs of a killed process.
_STALE_AFTER_S = 24 * 3600
_CHUNK = 1 << 20
_PARTIAL = ".partial-"
_MIRROR_HINT = (
    "set MOVIEREC_MIRROR (or pass mirror=) to a directory holding the official GroupLens zips, "
    "e.g. ml-latest-small.zip"
)


class FetchError(RuntimeError):
    """A data set could not be found, downloaded, verified or unpacked; the message says what to do."""


@dataclass(frozen=True)
class DatasetInfo:
    """One official GroupLens MovieLens data set.

    Attributes
    ----------
    name : str
        The name users type, e.g. ``"ml-latest-small"``.
    zip_name : str
        File name of the official zip, e.g. ``"ml-10m.zip"``.
    folder : str
        The single top-level folder inside the zip, e.g. ``"ml-10M100K"``.
    required : tuple of str
        Files (relative to ``folder``) that must be in the archive.
    md5 : str or None
        Published md5 of the zip (GroupLens serves it as ``<zip>.md5``); ``None``
        where unknown or where the file changes over time (then the ``.md5``
        served beside the zip is used at download time).
    sha256 : str or None
        sha256 of the zip where known.
    size : int or None
        Size of the zip in bytes where known (only used in messages).
    """

    name: str
    zip_name: str
    folder: str
    required: tuple[str, ...]
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None

    def url(self, base_url: str) -> str:
        """Download address of the zip under ``base_url``."""
        return base_url.rstrip("/") + "/" + self.zip_name

    def matches(self, md5: str, sha256: str) -> bool:
        """Whether a zip with these digests is this data set (``False`` if no checksum is known)."""
        known = [(self.md5, md5), (self.sha256, sha256)]
        return any(want is not None for want, _ in known) and all(
            want is None or want == got for want, got in known
        )


_CSV = ("ratings.csv", "movies.csv")
_DAT = ("ratings.dat", "movies.dat")

#: The official data sets, by name. The md5s are the ones GroupLens publishes in
#: ``<zip>.md5``; ml-32m and ml-latest have none recorded here (ml-latest is
#: rebuilt from time to time), so the served ``.md5`` is used for them.
DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in [
        DatasetInfo(
            "ml-100k", "ml-100k.zip", "ml-100k", ("u.data", "u.item"), md5="0e33842e24a9c977be4e0107933c0723"
        ),
        DatasetInfo("ml-1m", "ml-1m.zip", "ml-1m", _DAT, md5="c4d9eecfca2ab87c1945afe126590906"),
        DatasetInfo("ml-10m", "ml-10m.zip", "ml-10M100K", _DAT, md5="ce571fd55effeba0271552578f2648bd"),
        DatasetInfo("ml-20m", "ml-20m.zip", "ml-20m", _CSV, md5="cd245b17a1ae2cc31bb14903e1204af3"),
        DatasetInfo("ml-25m", "ml-25m.zip", "ml-25m", _CSV, md5="6b51fb2759a8657d3bfcbfc42b592ada"),
        DatasetInfo("ml-32m", "ml-32m.zip", "ml-32m", _CSV),
        DatasetInfo(
            "ml-latest-small",
            "ml-latest-small.zip",
            "ml-latest-small",
            _CSV,
            md5="31a303aabbc519bd33d025e44d6c2570",
            sha256="696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
            size=978_202,
        ),
        DatasetInfo("ml-latest", "ml-latest.zip", "ml-latest", _CSV),
    ]
}


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry for ``name``; :class:`FetchError` listing the known names otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise FetchError(
            f"unknown MovieLens data set {name!r}; known data sets are: {known} "
            "(or give the path of an unpacked folder or of a .zip)"
        ) from None


# --------------------------------------------------------------------------- public API


def fetch(
    name: str,
    settings: Settings,
    *,
    mirror: Path | None = None,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Make sure the official data set ``name`` is unpacked in the cache and return its folder.

    Parameters
    ----------
    name : str
        A key of :data:`DATASETS`, e.g. ``"ml-latest-small"``.
    settings : Settings
        Supplies ``cache_dir``, ``mirror`` and ``base_url``.
    mirror : Path, optional
        Directory of official zips; overrides ``settings.mirror``.
    force : bool
        Ignore an existing unpacked copy and a previously downloaded zip, and
        unpack again (from the mirror if it holds the zip, else from a fresh download).
    progress : bool
        Show a tqdm progress bar while downloading.

    Returns
    -------
    Path
        ``settings.cache_dir / info.folder``, e.g. ``.../datasets/ml-10M100K``.

    Raises
    ------
    FetchError
        Unknown name, checksum mismatch, corrupt or truncated zip, unexpected
        archive layout, or network failure. Nothing partial is left in the cache.
    """
    info = dataset_info(name)
    cache = Path(settings.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(cache)
    dest = cache / info.folder
    if not force and _is_complete(dest, info.required, md5=info.md5, sha256=info.sha256):
        log.debug("%s: using unpacked copy %s", name, dest)
        return dest

    def unpack(zip_path: Path, digests: tuple[str, str], remedy: str) -> Path:
        record = _record(info.name, zip_path, digests)
        return _unpack(zip_path, dest, info.folder, info.required, record, remedy, replace_complete=force)

    notes: list[str] = []
    mirror_dir = mirror if mirror is not None else settings.mirror
    if mirror_dir is not None:
        candidate = Path(mirror_dir).expanduser() / info.zip_name
        if candidate.is_file():
            remedy = f"replace {candidate} with a fresh copy of {info.url(settings.base_url)}"
            digests = _hash_file(candidate)
            _verify(candidate, info, digests, _read_sidecar(candidate), remedy)
            log.info("%s: unpacking mirror copy %s", name, candidate)
            return unpack(candidate, digests, remedy)
        notes.append(f"the mirror {Path(mirror_dir).expanduser()} holds no {info.zip_name}")
        log.warning("%s: %s; trying the cache and the network", name, notes[-1])

    cached_zip = cache / info.zip_name
    if force:
        cached_zip.unlink(missing_ok=True)
        Path(f"{cached_zip}.md5").unlink(missing_ok=True)
    elif cached_zip.is_file():
        remedy = f"delete {cached_zip} and run again"
        digests = _hash_file(cached_zip)
        try:
            _verify(cached_zip, info, digests, _read_sidecar(cached_zip), remedy)
        except FetchError as exc:
            log.warning("%s; deleting it and downloading again", exc)
            cached_zip.unlink(missing_ok=True)
        else:
            return unpack(cached_zip, digests, remedy)

    url = info.url(settings.base_url)
    sidecar = None if (info.md5 or info.sha256) else _download_sidecar(url)
    part, digests = _download(url, cache, progress=progress, notes=notes)
    try:
        _verify(
            part, info, digests, sidecar, f"nothing was kept; try again later, or {_MIRROR_HINT}", source=url
        )
        os.replace(part, cached_zip)
    finally:
        part.unlink(missing_ok=True)
    if sidecar is not None:
        Path(f"{cached_zip}.md5").write_text(f"MD5 ({info.zip_name}) = {sidecar}\n")
    remedy = f"delete {cached_zip} and run again"
    return unpack(cached_zip, digests, remedy)


def resolve_dataset_path(
    name_or_path: str,
    settings: Settings,
    *,
    mirror: Path | None = None,
    progress: bool = True,
) -> Path:
    """Turn what a user typed into the folder of an unpacked data set.

    Parameters
    ----------
    name_or_path : str
        An existing directory (a user's own unpacked copy, returned as is), an
        existing ``.zip`` file (unpacked into the cache; the zip's CRCs are the
        only check unless it is byte-identical to an official zip), or a name in
        :data:`DATASETS` (see :func:`fetch`).
    settings : Settings
        Supplies ``cache_dir``, ``mirror`` and ``base_url``.
    mirror : Path, optional
        Directory of official zips; overrides ``settings.mirror``.
    progress : bool
        Show a progress bar while downloading.

    Returns
    -------
    Path
        The data set folder. A user's zip that is an official one lands in
        ``cache_dir / info.folder``; any other zip in
        ``cache_dir / "local" / <sha256[:16]> / <top folder or zip stem>``.

    Raises
    ------
    FetchError
        Neither an existing directory, a zip nor a known name; or anything
        :func:`fetch` raises.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.is_file():
        if path.suffix.lower() != ".zip":
            raise FetchError(
                f"{path} is a file but not a .zip; give a data set name "
                f"({', '.join(sorted(DATASETS))}), an unpacked folder or a .zip"
            )
        return _unpack_user_zip(path, settings)
    if name_or_path in DATASETS:
        return fetch(name_or_path, settings, mirror=mirror, progress=progress)
    raise FetchError(
        f"{name_or_path!r} is neither an existing folder, an existing .zip nor a known data set; "
        f"known data sets are: {', '.join(sorted(DATASETS))}"
    )


# --------------------------------------------------------------------------- checks


def _hash_file(path: Path) -> tuple[str, str]:
    """``(md5, sha256)`` hex digests of a file, read once in 1 MiB chunks."""
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            md5.update(chunk)
            sha.update(chunk)
    return md5.hexdigest(), sha.hexdigest()


_MD5_RE = re.compile(r"\b([0-9a-fA-F]{32})\b")


def _parse_md5(text: str) -> str | None:
    """The md5 in a ``.md5`` file, BSD (``MD5 (f) = h``) or GNU (``h  f``) style."""
    found = _MD5_RE.search(text)
    return found.group(1).lower() if found else None


def _read_sidecar(zip_path: Path) -> str | None:
    """The md5 in ``<zip>.md5`` next to a local zip, if that file exists and holds one."""
    sidecar = Path(f"{zip_path}.md5")
    if not sidecar.is_file():
        return None
    return _parse_md5(sidecar.read_text(errors="replace"))


def _verify(
    path: Path,
    info: DatasetInfo,
    digests: tuple[str, str],
    sidecar_md5: str | None,
    remedy: str,
    *,
    source: str | None = None,
) -> None:
    """Compare a zip's digests with the registry (or the ``.md5`` sidecar); :class:`FetchError` if they differ."""
    md5, sha256 = digests
    expected = [("sha256", info.sha256, sha256), ("md5", info.md5 or sidecar_md5, md5)]
    if all(want is None for _, want, _ in expected):
        log.warning(
            "%s: no published checksum known for %s; relying on the zip's CRC checks only",
            info.name,
            source or path,
        )
        return
    for kind, want, got in expected:
        if want is not None and want.lower() != got:
            size = path.stat().st_size
            want_size = f" (expected {info.size} bytes)" if info.size is not None else ""
            raise FetchError(
                f"{source or path}: {kind} checksum mismatch for {info.zip_name}: expected {want.lower()}, "
                f"got {got}; the file has {size} bytes{want_size}. It is truncated, corrupt or a "
                f"different version: {remedy}"
            )


def _is_complete(folder: Path, required: tuple[str, ...], *, md5: str | None, sha256: str | None) -> bool:
    """Whether ``folder`` was fully unpacked from a zip with the expected checksum."""
    try:
        record = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(record, dict):
        return False
    if sha256 is not None and record.get("sha256") != sha256:
        return False
    if md5 is not None and record.get("md5") != md5:
        return False
    return all((folder / name).is_file() for name in required)


def _record(name: str, zip_path: Path, digests: tuple[str, str]) -> dict[str, Any]:
    return {
        "dataset": name,
        "zip": zip_path.name,
        "source": str(zip_path),
        "md5": digests[0],
        "sha256": digests[1],
        "unpacked_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


# --------------------------------------------------------------------------- download


def _download_sidecar(url: str) -> str | None:
    """The md5 GroupLens serves at ``<url>.md5``; ``None`` (with a warning) if it cannot be had."""
    try:
        with urllib.request.urlopen(f"{url}.md5", timeout=DOWNLOAD_TIMEOUT_S) as response:
            text = response.read(4096).decode("utf-8", errors="replace")
    except (OSError, http.client.HTTPException) as exc:
        log.warning(
            "could not fetch the checksum %s.md5 (%s); relying on the zip's CRC checks only", url, exc
        )
        return None
    md5 = _parse_md5(text)
    if md5 is None:
        log.warning("%s.md5 holds no md5; relying on the zip's CRC checks only", url)
    return md5


def _download(url: str, folder: Path, *, progress: bool, notes: list[str]) -> tuple[Path, tuple[str, str]]:
    """Stream ``url`` into a temporary file in ``folder``; return it and its ``(md5, sha256)``.

    The temporary file is removed on any failure (network error, short read,
    interrupt) before the exception propagates.
    """
    tried = "".join(f"; {note}" for note in notes)

    def network_error(detail: str) -> FetchError:
        return FetchError(
            f"could not download {url}: {detail}{tried}. Nothing was kept. If this machine "
            f"has no internet access, {_MIRROR_HINT}"
        )

    fd, name = tempfile.mkstemp(prefix=f"{_PARTIAL}download-", suffix=".part", dir=folder)
    part = Path(name)
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    received = 0
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S)
            except urllib.error.HTTPError as exc:
                raise network_error(f"HTTP {exc.code} {exc.reason}") from exc
            except (OSError, http.client.HTTPException) as exc:
                raise network_error(str(getattr(exc, "reason", exc))) from exc
            with response:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                with tqdm(
                    total=total,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=url.rsplit("/", 1)[-1],
                    disable=not progress,
                ) as bar:
                    while True:
                        try:
                            chunk = response.read(_CHUNK)
                        except (OSError, http.client.HTTPException) as exc:
                            raise network_error(
                                f"connection failed after {received} bytes ({exc!r})"
                            ) from exc
                        if not chunk:
                            break
                        out.write(chunk)
                        md5.update(chunk)
                        sha.update(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
        if total is not None and received != total:
            raise network_error(f"the download was cut short: got {received} of {total} bytes")
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return part, (md5.hexdigest(), sha.hexdigest())


# --------------------------------------------------------------------------- unpack


def _remove_stale_partials(folder: Path) -> None:
    """Delete temporary files and folders a killed process left in ``folder`` (older than a day)."""
    cutoff = time.time() - _STALE_AFTER_S
    for entry in folder.glob(f"{_PARTIAL}*"):
        try:
            if entry.lstat().st_mtime < cutoff:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
        except OSError:
            pass


def _member_path(member: zipfile.ZipInfo, zip_path: Path) -> PurePosixPath:
    """A member's relative path; :class:`FetchError` if it would land outside the target (zip-slip)."""
    path = PurePosixPath(member.filename.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise FetchError(
            f"{zip_path}: member {member.filename!r} would be written outside the target folder; "
            "refusing to unpack this archive (it is not a genuine GroupLens zip)"
        )
    return path


def _open_zip(zip_path: Path, remedy: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise FetchError(f"{zip_path} is not a readable zip (truncated or corrupt: {exc}); {remedy}") from exc


def _unpack(
    zip_path: Path,
    dest: Path,
    folder: str | None,
    required: tuple[str, ...],
    record: dict[str, Any],
    remedy: str,
    *,
    replace_complete: bool = False,
) -> Path:
    """Atomically unpack ``zip_path`` so that ``dest`` holds the zip's ``folder`` (or all of it if ``None``).

    Extracts into a temporary folder next to ``dest`` (checking every member's
    path and CRC), writes :data:`MARKER` with ``record`` last, then renames the
    result onto ``dest``. On failure nothing is left behind. A ``dest`` that is
    already complete for the same zip (another process got there first) is kept
    unless ``replace_complete``.
    """
    parent = dest.parent
    parent.mkdir(parents=True, exist_ok=True)
    with _open_zip(zip_path, remedy) as archive:
        members = [(member, _member_path(member, zip_path)) for member in archive.infolist()]
        files = {path.as_posix() for member, path in members if not member.is_dir()}
        if folder is not None:
            if not any(path.parts[:1] == (folder,) for _, path in members):
                tops = sorted({path.parts[0] for _, path in members if path.parts})
                raise FetchError(
                    f"{zip_path}: the folder {folder + '/'!r} is missing from the archive (its top-level "
                    f"entries are {tops[:10]}); it is not the official zip: {remedy}"
                )
            missing = [name for name in required if f"{folder}/{name}" not in files]
            if missing:
                raise FetchError(
                    f"{zip_path}: {', '.join(f'{folder}/{name}' for name in missing)} missing from the "
                    f"archive; it is incomplete or not the official zip: {remedy}"
                )
        needed = sum(member.file_size for member, _ in members)
        free = shutil.disk_usage(parent).free
        if needed > free:
            raise FetchError(
                f"unpacking {zip_path} needs {needed / 1e6:.0f} MB but {parent} has only "
                f"{free / 1e6:.0f} MB free; free some space or set MOVIEREC_HOME elsewhere"
            )
        tmp = Path(tempfile.mkdtemp(prefix=f"{_PARTIAL}{dest.name}-", dir=parent))
        try:
            root = tmp / "root"
            root.mkdir()
            for member, path in members:
                target = root.joinpath(*path.parts)
                if member.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    # Reading a member to its end checks its CRC-32 (BadZipFile on mismatch).
                    with archive.open(member) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out, _CHUNK)
                except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as exc:
                    raise FetchError(
                        f"{zip_path}: member {member.filename!r} is corrupt ({exc}); {remedy}"
                    ) from exc
            unpacked = root / folder if folder is not None else root
            (unpacked / MARKER).write_text(json.dumps(record, indent=2) + "\n")
            _move_into_place(unpacked, dest, record, replace_complete=replace_complete)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("unpacked %s into %s", zip_path, dest)
    return dest


def _move_into_place(unpacked: Path, dest: Path, record: dict[str, Any], *, replace_complete: bool) -> None:
    """Rename ``unpacked`` onto ``dest``, first moving an outdated ``dest`` aside and deleting it."""
    same = {"md5": record["md5"], "sha256": record["sha256"]}
    if not replace_complete and _is_complete(dest, (), **same):
        return  # another process finished the same unpack meanwhile; readers may be using it
    if dest.exists() or dest.is_symlink():
        aside = dest.parent / f"{_PARTIAL}old-{dest.name}-{os.getpid()}-{time.monotonic_ns()}"
        try:
            os.rename(dest, aside)
        except FileNotFoundError:
            pass
        else:
            if aside.is_dir() and not aside.is_symlink():
                shutil.rmtree(aside, ignore_errors=True)
            else:
                aside.unlink(missing_ok=True)
    try:
        os.rename(unpacked, dest)
    except OSError as exc:
        # Another process may have finished the same unpack a moment earlier.
        if _is_complete(dest, (), **same):
            return
        raise FetchError(f"could not move the unpacked data into {dest}: {exc}") from exc


def _unpack_user_zip(zip_path: Path, settings: Settings) -> Path:
    """Unpack a user's zip into the cache (official zips to their usual folder) and return the folder."""
    cache = Path(settings.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(cache)
    md5, sha256 = digests = _hash_file(zip_path)
    remedy = f"check {zip_path} (download it again or make a fresh zip)"
    official = next((info for info in DATASETS.values() if info.matches(md5, sha256)), None)
    if official is not None:
        dest = cache / official.folder
        if not _is_complete(dest, official.required, md5=md5, sha256=sha256):
            _unpack(
                zip_path,
                dest,
                official.folder,
                official.required,
                _record(official.name, zip_path, digests),
                remedy,
            )
        return dest

    with _open_zip(zip_path, remedy) as archive:
        members = [(member, _member_path(member, zip_path)) for member in archive.infolist()]
    tops = {path.parts[0] for _, path in members if path.parts}
    # One top-level folder holding every file: keep it; otherwise wrap the files in a folder named after the zip.
    nested = len(tops) == 1 and all(member.is_dir() or len(path.parts) > 1 for member, path in members)
    folder = next(iter(tops)) if nested else None
    local = cache / "local" / sha256[:16]
    dest = local / (folder if folder is not None else zip_path.stem)
    if not _is_complete(dest, (), md5=md5, sha256=sha256):
        _unpack(zip_path, dest, folder, (), _record(zip_path.stem, zip_path, digests), remedy)
    return dest
