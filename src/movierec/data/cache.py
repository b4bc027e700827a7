"""What the data set cache holds besides data: the marker file written last into every unpacked
folder (with the checksums of the zip it came from), and the temporary files and folders of
downloads and unpacks in progress, removed when a killed process left them behind."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

__all__ = ["MARKER"]

#: Name of the marker file written (last) into every unpacked data set folder.
MARKER = ".complete"
#: Temporary files and folders older than this (seconds) are left-overs of a killed process.
_STALE_AFTER_S = 24 * 3600
PARTIAL = ".partial-"


def remove_stale_partials(folder: Path) -> None:
    """Delete temporary files and folders a killed process left in ``folder`` (older than a day)."""
    cutoff = time.time() - _STALE_AFTER_S
    for entry in folder.glob(f"{PARTIAL}*"):
        try:
            if entry.lstat().st_mtime < cutoff:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
        except OSError:
            pass


def is_complete(folder: Path, required: tuple[str, ...], *, md5: str | None, sha256: str | None) -> bool:
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


def record(name: str, zip_path: Path, digests: tuple[str, str]) -> dict[str, Any]:
    return {
        "dataset": name,
        "zip": zip_path.name,
        "source": str(zip_path),
        "md5": digests[0],
        "sha256": digests[1],
        "unpacked_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
