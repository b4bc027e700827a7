"""The files of a MovieLens data set in a folder or a zip, for :func:`movierec.data.columnar.ingest`:
opened as binary streams (a zip member decompressed as a stream, never unpacked) and read in
chunks of whole lines, so memory stays bounded whatever the file size."""

from __future__ import annotations

import codecs
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO

import numpy as np

from movierec.data.validation import DataError


class Source:
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


READ_ERRORS = (zipfile.BadZipFile, EOFError, zlib.error, OSError)


def line_chunks(stream: IO[bytes], chunk_rows: int, what: str) -> Iterator[tuple[int, bytes]]:
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
            except READ_ERRORS as exc:
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


def is_utf8(source: Source, file: str) -> bool:
    """Whether the whole file decodes as UTF-8 (streamed; the dat loader's rule for text files)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with source.open(file) as fh:
        try:
            while piece := fh.read(1 << 20):
                decoder.decode(piece)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
        except READ_ERRORS as exc:
            raise DataError(f"{source.describe(file)}: read failed ({exc}); truncated or corrupt?") from exc
    return True
