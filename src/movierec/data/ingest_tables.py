"""The tables of :func:`movierec.data.columnar.ingest`: for each, its input file per layout and
its columns and types; and the streaming of one input file into one Parquet file, every block
of lines parsed and type-checked, the first bad line of a failing block located and named."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from movierec.data.ratings import HALF_STARS
from movierec.data.sources import READ_ERRORS, Source, is_utf8, line_chunks
from movierec.data.validation import DataError

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


SPECS = (
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


def stream_table(
    source: Source,
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
    latin1 = layout == "dat" and text and not is_utf8(source, file)
    schema = pa.schema([pa.field(n, t, nullable=False) for n, t in spec.columns])
    rows = 0
    with source.open(file) as fh, pq.ParquetWriter(out, schema, compression=compression) as writer:
        header_lines = 0
        if layout == "csv":
            try:
                first = fh.readline()
            except READ_ERRORS as exc:
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

        for offset, block in line_chunks(fh, chunk_rows, what):
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
