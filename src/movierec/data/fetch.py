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

The registry of data sets is :mod:`movierec.data.registry`; checksums are in
:mod:`movierec.data.checksums`, the download in :mod:`movierec.data.download`, unpacking in
:mod:`movierec.data.unpack` and the cache's marker and temporary files in
:mod:`movierec.data.cache`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from movierec.data.cache import is_complete, record, remove_stale_partials
from movierec.data.checksums import hash_file, read_sidecar, verify
from movierec.data.download import MIRROR_HINT, download, download_sidecar
from movierec.data.registry import DATASETS, FetchError, dataset_info
from movierec.data.unpack import unpack, unpack_user_zip
from movierec.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["fetch", "resolve_dataset_path"]


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
    remove_stale_partials(cache)
    dest = cache / info.folder
    if not force and is_complete(dest, info.required, md5=info.md5, sha256=info.sha256):
        log.debug("%s: using unpacked copy %s", name, dest)
        return dest

    def unpack_into_cache(zip_path: Path, digests: tuple[str, str], remedy: str) -> Path:
        marker = record(info.name, zip_path, digests)
        return unpack(zip_path, dest, info.folder, info.required, marker, remedy, replace_complete=force)

    notes: list[str] = []
    mirror_dir = mirror if mirror is not None else settings.mirror
    if mirror_dir is not None:
        candidate = Path(mirror_dir).expanduser() / info.zip_name
        if candidate.is_file():
            remedy = f"replace {candidate} with a fresh copy of {info.url(settings.base_url)}"
            digests = hash_file(candidate)
            verify(candidate, info, digests, read_sidecar(candidate), remedy)
            log.info("%s: unpacking mirror copy %s", name, candidate)
            return unpack_into_cache(candidate, digests, remedy)
        notes.append(f"the mirror {Path(mirror_dir).expanduser()} holds no {info.zip_name}")
        log.warning("%s: %s; trying the cache and the network", name, notes[-1])

    cached_zip = cache / info.zip_name
    if force:
        cached_zip.unlink(missing_ok=True)
        Path(f"{cached_zip}.md5").unlink(missing_ok=True)
    elif cached_zip.is_file():
        remedy = f"delete {cached_zip} and run again"
        digests = hash_file(cached_zip)
        try:
            verify(cached_zip, info, digests, read_sidecar(cached_zip), remedy)
        except FetchError as exc:
            log.warning("%s; deleting it and downloading again", exc)
            cached_zip.unlink(missing_ok=True)
        else:
            return unpack_into_cache(cached_zip, digests, remedy)

    url = info.url(settings.base_url)
    sidecar = None if (info.md5 or info.sha256) else download_sidecar(url)
    part, digests = download(url, cache, progress=progress, notes=notes)
    try:
        verify(
            part, info, digests, sidecar, f"nothing was kept; try again later, or {MIRROR_HINT}", source=url
        )
        os.replace(part, cached_zip)
    finally:
        part.unlink(missing_ok=True)
    if sidecar is not None:
        Path(f"{cached_zip}.md5").write_text(f"MD5 ({info.zip_name}) = {sidecar}\n")
    remedy = f"delete {cached_zip} and run again"
    return unpack_into_cache(cached_zip, digests, remedy)


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
        return unpack_user_zip(path, settings)
    if name_or_path in DATASETS:
        return fetch(name_or_path, settings, mirror=mirror, progress=progress)
    raise FetchError(
        f"{name_or_path!r} is neither an existing folder, an existing .zip nor a known data set; "
        f"known data sets are: {', '.join(sorted(DATASETS))}"
    )
