"""Downloading a GroupLens zip: streamed into a temporary file beside the cache while its
checksums are computed, removed on any failure; and the ``.md5`` GroupLens serves beside it."""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from movierec.data.cache import PARTIAL
from movierec.data.checksums import CHUNK, parse_md5
from movierec.data.registry import FetchError

# the messages keep the logger of the public entry point, movierec.data.fetch
log = logging.getLogger("movierec.data.fetch")

#: Seconds a single network operation (connect or read) may block.
DOWNLOAD_TIMEOUT_S = 60.0
MIRROR_HINT = (
    "set MOVIEREC_MIRROR (or pass mirror=) to a directory holding the official GroupLens zips, "
    "e.g. ml-latest-small.zip"
)


def download_sidecar(url: str) -> str | None:
    """The md5 GroupLens serves at ``<url>.md5``; ``None`` (with a warning) if it cannot be had."""
    try:
        with urllib.request.urlopen(f"{url}.md5", timeout=DOWNLOAD_TIMEOUT_S) as response:
            text = response.read(4096).decode("utf-8", errors="replace")
    except (OSError, http.client.HTTPException) as exc:
        log.warning(
            "could not fetch the checksum %s.md5 (%s); relying on the zip's CRC checks only", url, exc
        )
        return None
    md5 = parse_md5(text)
    if md5 is None:
        log.warning("%s.md5 holds no md5; relying on the zip's CRC checks only", url)
    return md5


def download(url: str, folder: Path, *, progress: bool, notes: list[str]) -> tuple[Path, tuple[str, str]]:
    """Stream ``url`` into a temporary file in ``folder``; return it and its ``(md5, sha256)``.

    The temporary file is removed on any failure (network error, short read,
    interrupt) before the exception propagates.
    """
    tried = "".join(f"; {note}" for note in notes)

    def network_error(detail: str) -> FetchError:
        return FetchError(
            f"could not download {url}: {detail}{tried}. Nothing was kept. If this machine "
            f"has no internet access, {MIRROR_HINT}"
        )

    fd, name = tempfile.mkstemp(prefix=f"{PARTIAL}download-", suffix=".part", dir=folder)
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
                            chunk = response.read(CHUNK)
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
