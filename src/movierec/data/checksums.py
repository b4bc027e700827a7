"""Checksums of the GroupLens zips: md5 and sha256 of a file, the md5 of a ``.md5`` sidecar, and
their comparison with the registry's published values."""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

from movierec.data.registry import DatasetInfo, FetchError

# the messages keep the logger of the public entry point, movierec.data.fetch
log = logging.getLogger("movierec.data.fetch")

CHUNK = 1 << 20


def hash_file(path: Path) -> tuple[str, str]:
    """``(md5, sha256)`` hex digests of a file, read once in 1 MiB chunks."""
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            md5.update(chunk)
            sha.update(chunk)
    return md5.hexdigest(), sha.hexdigest()


_MD5_RE = re.compile(r"\b([0-9a-fA-F]{32})\b")


def parse_md5(text: str) -> str | None:
    """The md5 in a ``.md5`` file, BSD (``MD5 (f) = h``) or GNU (``h  f``) style."""
    found = _MD5_RE.search(text)
    return found.group(1).lower() if found else None


def read_sidecar(zip_path: Path) -> str | None:
    """The md5 in ``<zip>.md5`` next to a local zip, if that file exists and holds one."""
    sidecar = Path(f"{zip_path}.md5")
    if not sidecar.is_file():
        return None
    return parse_md5(sidecar.read_text(errors="replace"))


def verify(
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
