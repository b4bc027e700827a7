"""One entry point: a data set name or folder in, a validated :class:`Dataset` out."""

from __future__ import annotations

from pathlib import Path

from movierec.data.dataset import Dataset
from movierec.data.metadata import load_metadata
from movierec.data.movielens import load_folder
from movierec.settings import Settings


def load_dataset(
    name_or_path: str | Path,
    settings: Settings | None = None,
    *,
    mirror: Path | None = None,
    with_metadata: bool = True,
) -> Dataset:
    """Load a MovieLens data set by name (``ml-latest-small``, ``ml-100k``, ...), from a
    zip, from a folder holding an unpacked copy in any layout, or from a folder of Parquet
    files written by :func:`movierec.data.columnar.ingest`.

    Named sets are fetched into the cache first (from the local mirror if one
    is configured); metadata from ``settings.metadata`` is joined when present.
    """
    from movierec.data.fetch import resolve_dataset_path
    from movierec.data.registry import DATASETS

    settings = settings or Settings()
    path = resolve_dataset_path(str(name_or_path), settings, mirror=mirror)
    name = str(name_or_path) if str(name_or_path) in DATASETS else None
    metadata = load_metadata(settings.metadata) if with_metadata else None
    from movierec.data.columnar import is_columnar, load_columnar

    if is_columnar(path):
        return load_columnar(path, name=name, metadata=metadata)
    return load_folder(path, name=name, metadata=metadata)
