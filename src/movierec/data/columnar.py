"""Streamed ingest of large MovieLens files into Parquet, and a :class:`Dataset` built from it.

:func:`ingest` reads a data set folder or zip (``csv`` layout: ml-latest, ml-20m/25m/32m;
``dat`` layout: ml-1m, ml-10m) a bounded number of lines at a time and writes one Parquet
file per table into a new folder, with a ``manifest.json``:

* ``ratings.parquet``: ``userId`` int32, ``movieId`` int32, ``rating`` float32, ``timestamp`` int64
  (external ids, file order, one row group per chunk);
* ``movies.parquet``: ``movieId`` int32, ``title``, ``genres`` (strings);
* optional ``tags.parquet`` (``userId``, ``movieId`` int32, ``tag``, ``timestamp`` int64),
  ``links.parquet`` (strings, as the direct loader reads them), ``users.parquet`` (``dat``),
  ``genome_scores.parquet`` (``movieId``, ``tagId`` int32, ``relevance`` float64) and
  ``genome_tags.parquet``.

Memory is bounded by ``chunk_rows`` lines (plus pyarrow's Parquet writer buffers), whatever the
input size: a zip member is decompressed as a stream, never unpacked. Every value is type-checked
while streaming; a malformed line raises :class:`DataError` naming the file, the line number and
the line. The output folder appears atomically (written under a temporary name, then renamed).
Files are split at line breaks, so a quoted value must not hold one (MovieLens files never do).

:func:`load_columnar` builds the :class:`Dataset` from such a folder: rating columns go from
Parquet row groups straight into preallocated numpy arrays (no Python object per rating) and
through :meth:`Dataset.build`, so validation and the result are those of the direct loaders.

Reading the input files is in :mod:`movierec.data.sources`; the tables, and the parsing and
writing of one of them, in :mod:`movierec.data.ingest_tables`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from movierec.data.dataset import Dataset
from movierec.data.ingest_tables import SPECS, stream_table
from movierec.data.ratings import FIVE_STARS, HALF_STARS, RatingScale
from movierec.data.sources import Source
from movierec.data.validation import DataError

__all__ = ["FORMAT", "ingest", "is_columnar", "load_columnar", "read_manifest"]

#: ``manifest.json`` ``format`` value and version of the folder layout.
FORMAT = "movierec-columnar"
VERSION = 1
MANIFEST = "manifest.json"


# ------------------------------------------------------------------ ingest
def ingest(
    source: str | Path,
    out_dir: str | Path,
    *,
    chunk_rows: int = 250_000,
    compression: str = "snappy",
    overwrite: bool = False,
) -> Path:
    """Stream a MovieLens data set (folder or zip) into a folder of Parquet files.

    Parameters
    ----------
    source:
        A folder holding an unpacked data set (or its single sub-folder), or a zip of one,
        in the ``csv`` (ml-latest, ml-20m, ml-25m, ml-32m) or ``dat`` (ml-1m, ml-10m) layout.
    out_dir:
        Folder to create. It appears only when every table is written (atomic rename).
    chunk_rows:
        Lines read, parsed and written at a time (one Parquet row group per chunk); bounds
        memory at about ``chunk_rows`` times the line length plus its Arrow columns.
    compression:
        Parquet codec (``"snappy"``, ``"zstd"``, ``"none"``, ...).
    overwrite:
        Replace an existing ``out_dir`` that is an earlier ingest. Any other existing
        folder is never replaced.

    Returns
    -------
    Path
        ``out_dir``; its ``manifest.json`` (see :func:`read_manifest`) holds the rows per table,
        the layout, the rating scale and the source.

    Raises
    ------
    DataError
        No data set at ``source``; a malformed line (the message names the file, the line
        number and the line): wrong number of fields, a non-numeric or empty id, rating or
        timestamp, an id beyond int32, a rating off 0.5-5 in half steps; a header lacking a
        column; a truncated or corrupt zip; ``out_dir`` exists.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not (overwrite and is_columnar(out_dir)):
        hint = "" if not is_columnar(out_dir) else "; pass overwrite=True (--overwrite) to replace it"
        raise DataError(f"{out_dir} already exists{hint}")
    src = Source(Path(source))
    try:
        layout = src.layout()
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
        try:
            rows: dict[str, int] = {}
            fractional = [False]

            def note_ratings(table: pa.Table) -> None:
                r = table.column("rating").to_numpy()
                fractional[0] = fractional[0] or bool(np.any(r % 1 != 0))

            for spec in SPECS:
                file = spec.csv_file if layout == "csv" else spec.dat_file
                if file is None or not src.exists(file):
                    if spec.required:
                        raise DataError(f"{src.path}: missing {file} ({spec.table})")
                    continue
                if spec.table == "genome_scores" and not src.exists("genome-tags.csv"):
                    continue  # as the direct loader: genome only when both files are there
                if spec.table == "genome_tags" and "genome_scores" not in rows:
                    continue
                rows[spec.table] = stream_table(
                    src,
                    spec,
                    layout,
                    tmp / f"{spec.table}.parquet",
                    chunk_rows=chunk_rows,
                    compression=compression,
                    on_batch=note_ratings if spec.table == "ratings" else None,
                )
            # the direct loaders' scale rule: csv layout half stars; dat half stars if any rating is
            # fractional or the set has tags (ml-10m), else 1-5 stars (ml-1m)
            half = layout == "csv" or fractional[0] or "tags" in rows
            scale = HALF_STARS if half else FIVE_STARS
            manifest = {
                "format": FORMAT,
                "version": VERSION,
                "name": src.name,
                "layout": layout,
                "source": str(src.path),
                "scale": scale.to_dict(),
                "rows": rows,
                "chunk_rows": chunk_rows,
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
            _replace(tmp, out_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    finally:
        src.close()
    return out_dir


def _replace(tmp: Path, out_dir: Path) -> None:
    """Move ``tmp`` to ``out_dir``, swapping out an earlier ingest there."""
    if not out_dir.exists():
        os.replace(tmp, out_dir)
        return
    old = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.old")
    os.replace(out_dir, old)
    try:
        os.replace(tmp, out_dir)
    except BaseException:
        os.replace(old, out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)


# ------------------------------------------------------------------ load
def is_columnar(path: str | Path) -> bool:
    """Whether ``path`` is a folder written by :func:`ingest` (has its ``manifest.json``)."""
    manifest = Path(path) / MANIFEST
    if not manifest.is_file():
        return False
    try:
        return json.loads(manifest.read_text()).get("format") == FORMAT
    except (ValueError, OSError, AttributeError):
        return False


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The ``manifest.json`` of an ingest folder, checked for format and version."""
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError as exc:
        raise DataError(f"{path}: no {MANIFEST}; not a folder written by `movierec data ingest`") from exc
    except ValueError as exc:
        raise DataError(f"{path / MANIFEST}: not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{path / MANIFEST}: not a {FORMAT} manifest")
    if manifest.get("version") != VERSION:
        raise DataError(
            f"{path}: columnar format version {manifest.get('version')}, this movierec reads {VERSION}; ingest again"
        )
    return manifest


def _ratings_frame(path: Path, n_rows: int) -> pd.DataFrame:
    """``ratings.parquet`` as a frame of numpy columns, filled row group by row group.

    Peak memory is the final arrays plus one row group; no Python object per rating.
    """
    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{path}: unreadable Parquet ({exc}); ingest again") from exc
    columns = dict(SPECS[0].columns)
    if pf.metadata.num_rows != n_rows:
        raise DataError(f"{path}: {pf.metadata.num_rows} rows, the manifest says {n_rows}; ingest again")
    arrays = {c: np.empty(n_rows, t.to_pandas_dtype()) for c, t in columns.items()}
    pos = 0
    for i in range(pf.num_row_groups):
        group = pf.read_row_group(i, columns=list(columns))
        k = group.num_rows
        for c in columns:
            arrays[c][pos : pos + k] = group.column(c).to_numpy()
        pos += k
        del group
    return pd.DataFrame(arrays, copy=False)


def _frame(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    try:
        return pq.read_table(path).to_pandas()
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{path}: unreadable Parquet ({exc}); ingest again") from exc


def load_columnar(
    path: str | Path,
    *,
    name: str | None = None,
    metadata: pd.DataFrame | None = None,
    genome_threshold: float = 0.8,
) -> Dataset:
    """Build the :class:`Dataset` from a folder written by :func:`ingest`.

    The result equals what the direct loader (:func:`movierec.data.movielens.load_folder`)
    builds from the original files: the same tables go through :meth:`Dataset.build`.

    Parameters
    ----------
    path:
        The folder holding ``manifest.json`` and the Parquet files.
    name:
        Data set name; the source folder's name (as the direct loader) when omitted.
    metadata:
        Optional per-movie metadata keyed by ``movieId`` or ``tmdbId`` (joined through links).
    genome_threshold:
        Genome relevance at or above which a genome tag joins a movie's tags.

    Raises
    ------
    DataError
        Not an ingest folder, another format version, or unreadable / inconsistent files.
    """
    from movierec.data.movielens import _join_metadata

    path = Path(path)
    manifest = read_manifest(path)
    ratings = _ratings_frame(path / "ratings.parquet", int(manifest["rows"]["ratings"]))
    movies = _frame(path / "movies.parquet")
    if movies is None:
        raise DataError(f"{path}: movies.parquet missing; ingest again")
    links = _frame(path / "links.parquet")
    genome_scores = _frame(path / "genome_scores.parquet")
    scale = RatingScale(**manifest["scale"])
    return Dataset.build(
        name or str(manifest.get("name") or path.name),
        ratings,
        movies,
        scale=scale,
        tags=_frame(path / "tags.parquet"),
        links=links,
        genome_scores=genome_scores,
        genome_tags=_frame(path / "genome_tags.parquet") if genome_scores is not None else None,
        genome_threshold=genome_threshold,
        metadata=_join_metadata(metadata, links),
        users=_frame(path / "users.parquet"),
        source_path=str(path),
    )
