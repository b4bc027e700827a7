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
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import re
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from movierec.data.dataset import FIVE_STARS, HALF_STARS, DataError, Dataset, RatingScale

__all__ = ["FORMAT", "ingest", "is_columnar", "load_columnar", "read_manifest"]

#: ``manifest.json`` ``format`` value and version of the folder layout.
FORMAT = "movierec-columnar"
VERSION = 1
MANIFEST = "manifest.json"

_STR = pa.string()
_I32 = pa.int32()
_I64 = pa.int64()


@dataclass(frozen=True)
class _TableSpec:
    """One input file: where it lives per layout, its columns and types, whether it is needed."""

    table: str  # output name: ``<table>.parquet``
    csv_file: str | None  # file name in the csv layout (with a header line)
    dat_file: str | None  # file name in the dat layout (``::``, no header)
    columns: tuple[tuple[str, pa.DataType], ...]
    required: bool = False


_SPECS = (
    _TableSpec(
        "ratings",
        "ratings.csv",
        "ratings.dat",
        (("userId", _I32), ("movieId", _I32), ("rating", pa.float32()), ("timestamp", _I64)),
        required=True,
    ),
    _TableSpec(
        "movies", "movies.csv", "movies.dat", (("movieId", _I32), ("title", _STR), ("genres", _STR)), True
    ),
    _TableSpec(
        "tags",
        "tags.csv",
        "tags.dat",
        (("userId", _I32), ("movieId", _I32), ("tag", _STR), ("timestamp", _I64)),
    ),
    _TableSpec("links", "links.csv", None, (("movieId", _STR), ("imdbId", _STR), ("tmdbId", _STR))),
    _TableSpec(
        "users",
        None,
        "users.dat",
        (("userId", _I32), ("gender", _STR), ("age", _I64), ("occupation", _I64), ("zip", _STR)),
    ),
    _TableSpec(
        "genome_scores",
        "genome-scores.csv",
        None,
        (("movieId", _I32), ("tagId", _I32), ("relevance", pa.float64())),
    ),
    _TableSpec("genome_tags", "genome-tags.csv", None, (("tagId", _I32), ("tag", _STR))),
)


# ------------------------------------------------------------------ sources
class _Source:
    """The files of a data set in a folder or a zip, opened as binary streams."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._zip: zipfile.ZipFile | None = None
        self._members: dict[str, str] = {}
        if self.path.is_dir():
            from movierec.data.movielens import data_root

            self.root = data_root(self.path)
            self.name = self.root.name
        elif self.path.is_file():
            try:
                self._zip = zipfile.ZipFile(self.path)
                names = self._zip.namelist()
            except (zipfile.BadZipFile, OSError) as exc:
                raise DataError(f"{self.path}: not a readable zip ({exc}); truncated or corrupt?") from exc
            # the folder holding ratings.csv / ratings.dat, shallowest first
            holders = sorted(
                (PurePosixPath(n) for n in names if PurePosixPath(n).name in ("ratings.csv", "ratings.dat")),
                key=lambda p: len(p.parts),
            )
            folder = holders[0].parent if holders else PurePosixPath(".")
            self._members = {PurePosixPath(n).name: n for n in names if PurePosixPath(n).parent == folder}
            self.root = self.path
            self.name = folder.name or self.path.stem
        else:
            raise DataError(f"{self.path}: no such folder or zip")

    def exists(self, file: str) -> bool:
        return file in self._members if self._zip else (self.root / file).is_file()

    def describe(self, file: str) -> str:
        return f"{self.path}:{self._members[file]}" if self._zip else str(self.root / file)

    def open(self, file: str) -> IO[bytes]:
        if self._zip is not None:
            try:
                return self._zip.open(self._members[file])
            except (zipfile.BadZipFile, OSError, KeyError) as exc:
                raise DataError(f"{self.describe(file)}: cannot open ({exc}); corrupt zip?") from exc
        return (self.root / file).open("rb")

    def layout(self) -> str:
        if self.exists("ratings.csv") and self.exists("movies.csv"):
            return "csv"
        if self.exists("ratings.dat") and self.exists("movies.dat"):
            return "dat"
        if self.exists("u.data"):
            raise DataError(
                f"{self.path}: the ml-100k layout is small enough to load directly; ingest reads the csv "
                "(ratings.csv, ml-latest/20m/25m/32m) and dat (ratings.dat, ml-1m/10m) layouts"
            )
        raise DataError(
            f"{self.path}: no MovieLens files found (expected ratings.csv + movies.csv or ratings.dat + movies.dat)"
        )

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


_READ_ERRORS = (zipfile.BadZipFile, EOFError, zlib.error, OSError)


def _line_chunks(stream: IO[bytes], chunk_rows: int, what: str) -> Iterator[tuple[int, bytes]]:
    """``(first_line_offset, bytes)`` chunks of at most ``chunk_rows`` whole lines each.

    ``first_line_offset`` is the number of lines before the chunk. A final line without a
    newline is yielded as is (a truncated file then fails parsing on that line). The stream
    is read in pieces of at most 1 MiB; a chunk is joined once, so about twice its size is
    held at a time.
    """
    read_size = min(1 << 20, max(1 << 12, chunk_rows * 64))
    carry = b""
    offset = 0
    eof = False
    while not eof or carry:
        pieces = [carry] if carry else []
        lines = carry.count(b"\n")
        while lines < chunk_rows and not eof:
            try:
                piece = stream.read(read_size)
            except _READ_ERRORS as exc:
                raise DataError(
                    f"{what}: read failed after line {offset + lines} ({exc}); truncated or corrupt?"
                ) from exc
            if piece:
                pieces.append(piece)
                lines += piece.count(b"\n")
            else:
                eof = True
        if lines >= chunk_rows:
            # the cut lies in the last piece: find its newline there only
            last = pieces.pop()
            need = chunk_rows - (lines - last.count(b"\n"))
            cut = int(np.flatnonzero(np.frombuffer(last, np.uint8) == 10)[need - 1]) + 1
            pieces.append(last[:cut])
            carry = last[cut:]
            n = chunk_rows
        else:  # end of file; a last line without a newline counts too
            carry = b""
            n = lines + (1 if pieces and not pieces[-1].endswith(b"\n") else 0)
        chunk = b"".join(pieces)
        del pieces
        if chunk:
            yield offset, chunk
        offset += n


def _is_utf8(source: _Source, file: str) -> bool:
    """Whether the whole file decodes as UTF-8 (streamed; the dat loader's rule for text files)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with source.open(file) as fh:
        try:
            while piece := fh.read(1 << 20):
                decoder.decode(piece)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
        except _READ_ERRORS as exc:
            raise DataError(f"{source.describe(file)}: read failed ({exc}); truncated or corrupt?") from exc
    return True


# ------------------------------------------------------------------ parsing
_CONVERSION = re.compile(
    r"In CSV column #(?P<col>\d+): CSV conversion error to (?P<type>\w+): invalid value (?P<value>.*)", re.S
)


class _BadBlock(Exception):
    """A block of lines that does not parse or validate; message says why."""


def _parse(
    data: bytes,
    names: list[str],
    spec: _TableSpec,
    *,
    delimiter: str,
    quoted: bool,
) -> pa.Table:
    """Parse and validate ``data`` (whole lines, no header) into a table of ``spec``'s columns."""
    types = dict(spec.columns)
    try:
        table = pacsv.read_csv(
            pa.BufferReader(data),  # zero copy
            read_options=pacsv.ReadOptions(column_names=names),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char='"' if quoted else False),
            convert_options=pacsv.ConvertOptions(
                column_types=types, include_columns=[c for c, _ in spec.columns], strings_can_be_null=False
            ),
        )
    except pa.ArrowInvalid as exc:
        msg = str(exc).removeprefix("CSV parse error: ")
        conv = _CONVERSION.match(msg)
        if conv and int(conv["col"]) < len(names):
            msg = f"{names[int(conv['col'])]} is not {conv['type']}: {conv['value']}"
        raise _BadBlock(msg) from exc
    for name, _ in spec.columns:
        if table.column(name).null_count:
            raise _BadBlock(f"empty {name}")
    if spec.table == "ratings":
        # both MovieLens scales (1-5, 0.5-5 in half stars) lie on this grid; Dataset.build checks the exact one
        r = table.column("rating").to_numpy()
        off = ~((r >= HALF_STARS.low) & (r <= HALF_STARS.high) & (r * 2 % 1 == 0))
        if off.any():
            raise _BadBlock(f"rating {r[off][0]:g} is not one of 0.5, 1, ..., 5")
    return table


def _locate(data: bytes, parse: Callable[[bytes], pa.Table]) -> tuple[int, bytes, str]:
    """The first bad line of a block that failed: ``(index within block, line, reason)``.

    Halves the block until one line is left, parsing each half with ``parse``: about twice
    the work of parsing the block once, and only on the error path.
    """
    lines = data.split(b"\n")
    lo, hi = 0, len(lines)
    reason = ""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        part = b"\n".join(lines[lo:mid])
        try:
            if part and not part.isspace():
                parse(part)
            lo = mid  # the left half is fine: the bad line is on the right
        except _BadBlock as exc:
            hi, reason = mid, str(exc)
    try:
        parse(lines[lo])
    except _BadBlock as exc:
        reason = str(exc)
    return lo, lines[lo], reason


def _stream_table(
    source: _Source,
    spec: _TableSpec,
    layout: str,
    out: Path,
    *,
    chunk_rows: int,
    compression: str,
    on_batch: Callable[[pa.Table], None] | None = None,
) -> int:
    """Stream one file into ``out`` (a Parquet file); the number of rows written."""
    file = spec.csv_file if layout == "csv" else spec.dat_file
    if file is None:
        raise ValueError(f"{spec.table} has no file in the {layout} layout")
    what = source.describe(file)
    text = spec.table != "ratings"  # ratings are numeric; other files may hold text
    latin1 = layout == "dat" and text and not _is_utf8(source, file)
    schema = pa.schema([pa.field(n, t, nullable=False) for n, t in spec.columns])
    rows = 0
    with source.open(file) as fh, pq.ParquetWriter(out, schema, compression=compression) as writer:
        header_lines = 0
        if layout == "csv":
            try:
                first = fh.readline()
            except _READ_ERRORS as exc:
                raise DataError(f"{what}: read failed ({exc}); truncated or corrupt?") from exc
            first_text = first.decode("utf-8", errors="replace").removeprefix("\ufeff").strip("\r\n")
            names = next(csv.reader([first_text])) if first_text else []
            missing = [c for c, _ in spec.columns if c not in names]
            if missing:
                raise DataError(f"{what}: line 1 (header) lacks column(s) {missing}; it has {names}")
            header_lines = 1
        else:
            names = [c for c, _ in spec.columns]

        def parse(block: bytes) -> pa.Table:
            if layout == "dat":
                if latin1:
                    block = block.decode("latin-1").encode("utf-8")
                block = block.replace(b"\t", b" ").replace(b"::", b"\t")
            return _parse(
                block, names, spec, delimiter="," if layout == "csv" else "\t", quoted=layout == "csv"
            )

        for offset, block in _line_chunks(fh, chunk_rows, what):
            if block.isspace():  # (no .strip(): it would copy the block)
                continue
            try:
                table = parse(block)
            except _BadBlock:
                index, line, reason = _locate(block, parse)
                shown = line.decode("latin-1" if latin1 else "utf-8", errors="replace").rstrip("\r")
                raise DataError(
                    f"{what}: malformed {spec.table} at line {header_lines + offset + index + 1}: "
                    f"{reason} (line: {shown[:200]!r})"
                ) from None
            table = table.cast(schema)
            if on_batch is not None:
                on_batch(table)
            writer.write_table(table, row_group_size=max(chunk_rows, 1))
            rows += table.num_rows
    return rows


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
    src = _Source(Path(source))
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

            for spec in _SPECS:
                file = spec.csv_file if layout == "csv" else spec.dat_file
                if file is None or not src.exists(file):
                    if spec.required:
                        raise DataError(f"{src.path}: missing {file} ({spec.table})")
                    continue
                if spec.table == "genome_scores" and not src.exists("genome-tags.csv"):
                    continue  # as the direct loader: genome only when both files are there
                if spec.table == "genome_tags" and "genome_scores" not in rows:
                    continue
                rows[spec.table] = _stream_table(
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
    columns = dict(_SPECS[0].columns)
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
