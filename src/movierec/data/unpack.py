"""Unpacking a zip into the cache, atomically: member paths checked (no absolute paths, no
``..``), every member's CRC-32 checked while extracting into a temporary folder, the marker
written, and only then the folder renamed into place; also a user's own zip, unpacked where an
official zip goes when it is one."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

from movierec.data.cache import MARKER, PARTIAL, is_complete, record, remove_stale_partials
from movierec.data.checksums import CHUNK, hash_file
from movierec.data.registry import DATASETS, FetchError
from movierec.settings import Settings

# the messages keep the logger of the public entry point, movierec.data.fetch
log = logging.getLogger("movierec.data.fetch")


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


def unpack(
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
        tmp = Path(tempfile.mkdtemp(prefix=f"{PARTIAL}{dest.name}-", dir=parent))
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
                        shutil.copyfileobj(src, out, CHUNK)
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
    if not replace_complete and is_complete(dest, (), **same):
        return  # another process finished the same unpack meanwhile; readers may be using it
    if dest.exists() or dest.is_symlink():
        aside = dest.parent / f"{PARTIAL}old-{dest.name}-{os.getpid()}-{time.monotonic_ns()}"
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
        if is_complete(dest, (), **same):
            return
        raise FetchError(f"could not move the unpacked data into {dest}: {exc}") from exc


def unpack_user_zip(zip_path: Path, settings: Settings) -> Path:
    """Unpack a user's zip into the cache (official zips to their usual folder) and return the folder."""
    cache = Path(settings.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(cache)
    md5, sha256 = digests = hash_file(zip_path)
    remedy = f"check {zip_path} (download it again or make a fresh zip)"
    official = next((info for info in DATASETS.values() if info.matches(md5, sha256)), None)
    if official is not None:
        dest = cache / official.folder
        if not is_complete(dest, official.required, md5=md5, sha256=sha256):
            unpack(
                zip_path,
                dest,
                official.folder,
                official.required,
                record(official.name, zip_path, digests),
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
    if not is_complete(dest, (), md5=md5, sha256=sha256):
        unpack(zip_path, dest, folder, (), record(zip_path.stem, zip_path, digests), remedy)
    return dest
