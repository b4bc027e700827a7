"""Streamed ingest into Parquet and the Dataset built from it, on tiny hand-made files.

The reference is always the direct text loader (:func:`load_folder`) on the same files:
ingest + load must give the very same arrays and tables, for every chunk size.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from movierec.data.columnar import ingest, is_columnar, load_columnar, read_manifest
from movierec.data.dataset import Dataset
from movierec.data.movielens import load_folder
from movierec.data.ratings import FIVE_STARS, HALF_STARS
from movierec.data.sources import line_chunks
from movierec.data.validation import DataError

# ------------------------------------------------------------------ fixtures

RATINGS_CSV = [
    "userId,movieId,rating,timestamp",
    "7,2571,4.5,300",
    "7,1,3.0,100",
    "3,4973,5.0,50",
    "",  # a blank line: skipped by both loaders, still counted in line numbers
    "7,4973,0.5,100",
    "3,1,2.0,40",
    "3,1,4.0,60",  # duplicate (3, 1): the later one wins in both loaders
    "12,3,1.5,10",
]  # data lines 2-9
MOVIES_CSV = [
    "movieId,title,genres",
    "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy",
    '2571,"Matrix, The (1999)",Action|Sci-Fi|Thriller',
    '4973,"Amelie (Fabuleux destin d\'Amélie Poulain, Le) (2001)",Comedy|Romance',
    '3,"Heat, Dust and Tears, Part 2 (2004)",(no genres listed)',
    "10,Untitled Project,Drama",
]
TAGS_CSV = [
    "userId,movieId,tag,timestamp",
    "7,2571,Dark  Comedy,1",
    "3,2571, dark comedy,2",
    "12,2571,NA,3",  # kept as a tag (not a missing value), as the direct csv loader does
    "7,99999,orphan tag,6",  # unknown movie: dropped and counted by Dataset.build
]
LINKS_CSV = ["movieId,imdbId,tmdbId", "1,0114709,862", "2571,0133093,603", "3,0000001,"]
GENOME_TAGS = ["tagId,tag", "1,atmospheric", "2,Dark Comedy"]
GENOME_SCORES = ["movieId,tagId,relevance", "1,1,0.10", "1,2,0.95", "2571,1,0.85", "2571,2,0.80"]


def _lines(path: Path, lines: list[str], *, encoding: str = "utf-8", newline_at_end: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\n".join(lines) + ("\n" if newline_at_end else "")).encode(encoding))


def make_csv(root: Path, **override: list[str]) -> Path:
    files = {
        "ratings.csv": RATINGS_CSV,
        "movies.csv": MOVIES_CSV,
        "tags.csv": TAGS_CSV,
        "links.csv": LINKS_CSV,
        "genome-tags.csv": GENOME_TAGS,
        "genome-scores.csv": GENOME_SCORES,
    }
    files.update({k.replace("_", ".").replace("genome.", "genome-"): v for k, v in override.items()})
    for name, lines in files.items():
        _lines(root / name, lines)
    return root


def make_ml1m(root: Path) -> Path:
    """ml-1m style: Latin-1 movies.dat, whole-star ratings, users.dat, no tags."""
    _lines(
        root / "movies.dat",
        ["1::Toy Story (1995)::Animation|Children's|Comedy", "2::Misérables, Les (1995)::Drama|Musical",
         "3::Heat (1995)::Action|Crime|Thriller"],
        encoding="latin-1",
    )  # fmt: skip
    _lines(root / "ratings.dat", ["1::1::5::978300760", "1::2::3::978302109", "2::3::4::978301968",
                                  "2::1::1::978300275", "3::2::2::978300000"])  # fmt: skip
    _lines(root / "users.dat", ["1::F::1::10::48067", "2::M::56::16::70072", "3::M::25::0::02139-1234"])
    return root


def make_ml10m(root: Path) -> Path:
    """ml-10m style: UTF-8, half stars, tags.dat."""
    _lines(root / "movies.dat", ["1::Toy Story (1995)::Animation|Children|Comedy",
                                 "2571::Matrix, The (1999)::Action|Sci-Fi"])  # fmt: skip
    _lines(root / "ratings.dat", ["1::1::4.5::10", "1::2571::3::11", "5::2571::0.5::12", "5::1::2::13"])
    _lines(root / "tags.dat", ["1::2571::Cyberpunk::20", "5::2571::cyberpunk ::21", "5::1::pixar::22"])
    return root


def assert_same(a: Dataset, b: Dataset) -> None:
    """Every array and table of two data sets is equal."""
    for attr in ("user", "movie", "rating", "timestamp", "tag_source"):
        x, y = getattr(a, attr), getattr(b, attr)
        assert x.dtype == y.dtype, attr
        np.testing.assert_array_equal(x, y, err_msg=attr)
    for vocab in ("users", "movies", "tags"):
        np.testing.assert_array_equal(getattr(a, vocab).ids, getattr(b, vocab).ids, err_msg=vocab)
    pd.testing.assert_frame_equal(a.movie_info, b.movie_info)
    pd.testing.assert_frame_equal(a.tag_events, b.tag_events)
    assert (a.movie_tags != b.movie_tags).nnz == 0
    assert a.scale == b.scale
    assert dict(a.repairs) == dict(b.repairs)
    assert (a.user_info is None) == (b.user_info is None)
    if a.user_info is not None and b.user_info is not None:
        pd.testing.assert_frame_equal(a.user_info, b.user_info, check_dtype=False)
    assert a.fingerprint() == b.fingerprint()


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 1_000_000])
def test_csv_round_trip_equals_direct_loader(tmp_path: Path, chunk_rows: int) -> None:
    src = make_csv(tmp_path / "ml-tiny")
    out = ingest(src, tmp_path / "pq", chunk_rows=chunk_rows)
    assert out == tmp_path / "pq"
    direct, columnar = load_folder(src), load_columnar(out)
    assert_same(direct, columnar)
    assert columnar.name == "ml-tiny"
    assert columnar.n_ratings == 6 and columnar.repairs == {
        "duplicate_ratings_dropped": 1,
        "tag_rows_dropped": 1,
    }
    assert "na" in columnar.tags.ids.tolist()
    manifest = read_manifest(out)
    assert manifest["layout"] == "csv"
    assert manifest["rows"] == {
        "ratings": 7, "movies": 5, "tags": 4, "links": 3, "genome_scores": 4, "genome_tags": 2,
    }  # fmt: skip


@pytest.mark.parametrize("chunk_rows", [1, 2, 5])
def test_chunk_rows_bounds_every_row_group(tmp_path: Path, chunk_rows: int) -> None:
    out = ingest(make_csv(tmp_path / "src"), tmp_path / "pq", chunk_rows=chunk_rows)
    meta = pq.ParquetFile(out / "ratings.parquet").metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert sum(sizes) == 7
    assert max(sizes) <= chunk_rows
    # 8 lines after the header (one blank) in chunks of chunk_rows lines
    assert len(sizes) == -(-8 // chunk_rows) - (1 if chunk_rows == 1 else 0)


def test_parquet_column_types(tmp_path: Path) -> None:
    out = ingest(make_csv(tmp_path / "src"), tmp_path / "pq")
    schema = pq.read_schema(out / "ratings.parquet")
    assert [(f.name, f.type) for f in schema] == [
        ("userId", pa.int32()),
        ("movieId", pa.int32()),
        ("rating", pa.float32()),
        ("timestamp", pa.int64()),
    ]
    table = pq.read_table(out / "ratings.parquet")
    assert table.column("userId").to_pylist() == [7, 7, 3, 7, 3, 3, 12]  # file order, blank line skipped
    assert table.column("rating").to_pylist() == [4.5, 3.0, 5.0, 0.5, 2.0, 4.0, 1.5]
    assert pq.read_table(out / "movies.parquet").column("title").to_pylist()[1] == "Matrix, The (1999)"


@pytest.mark.parametrize("chunk_rows", [1, 2, 100])
def test_ml1m_dat_latin1_round_trip(tmp_path: Path, chunk_rows: int) -> None:
    src = make_ml1m(tmp_path / "ml-1m")
    direct, columnar = load_folder(src), load_columnar(ingest(src, tmp_path / "pq", chunk_rows=chunk_rows))
    assert_same(direct, columnar)
    assert columnar.scale == FIVE_STARS
    assert columnar.movie_info.set_index("movie_id").loc[2, "display_title"] == "Les Misérables"
    assert columnar.user_info is not None
    assert columnar.user_info["zip"].tolist() == ["48067", "70072", "02139-1234"]


@pytest.mark.parametrize("chunk_rows", [1, 3])
def test_ml10m_dat_half_stars_and_tags_round_trip(tmp_path: Path, chunk_rows: int) -> None:
    src = make_ml10m(tmp_path / "ml-10M100K")
    direct, columnar = load_folder(src), load_columnar(ingest(src, tmp_path / "pq", chunk_rows=chunk_rows))
    assert_same(direct, columnar)
    assert columnar.scale == HALF_STARS
    assert len(columnar.tag_events) == 3


def test_zip_source_streams_members(tmp_path: Path) -> None:
    src = make_csv(tmp_path / "ml-tiny")
    zpath = tmp_path / "ml-tiny.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(src.iterdir()):
            zf.write(f, f"ml-tiny/{f.name}")
    columnar = load_columnar(ingest(zpath, tmp_path / "pq", chunk_rows=2))
    assert_same(load_folder(src), columnar)
    assert columnar.name == "ml-tiny"


def test_load_dataset_and_cli_accept_an_ingest_folder(tmp_path: Path) -> None:
    from movierec.cli import app
    from movierec.data.load import load_dataset
    from movierec.settings import Settings

    src = make_csv(tmp_path / "ml-tiny")
    result = CliRunner().invoke(
        app, ["data", "ingest", str(src), str(tmp_path / "pq"), "--chunk-rows", "2", "--json"]
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output.strip().splitlines()[-1])
    assert printed["ratings_rows"] == 7 and printed["layout"] == "csv"
    assert printed["peak_rss_mb"] > 0 and printed["seconds"] >= 0
    ds = load_dataset(tmp_path / "pq", Settings(home=tmp_path / "home", metadata=None), with_metadata=False)
    assert_same(load_folder(src), ds)


# ------------------------------------------------------------------ line chunker


def test_line_chunks_cover_every_line_once() -> None:
    import io

    data = b"a\nbb\n\nccc\nd"  # blank line, no newline at the end
    chunks = list(line_chunks(io.BytesIO(data), 2, "x"))
    assert [c for _, c in chunks] == [b"a\nbb\n", b"\nccc\n", b"d"]
    assert [o for o, _ in chunks] == [0, 2, 4]
    assert b"".join(c for _, c in line_chunks(io.BytesIO(data), 1, "x")) == data


@pytest.mark.parametrize("chunk_rows", [1, 7, 100])
@pytest.mark.parametrize("final_newline", [True, False])
def test_line_chunks_across_read_pieces(chunk_rows: int, final_newline: bool) -> None:
    """Lines up to 300 bytes: a chunk spans several 4-64 KiB reads; nothing lost, none split."""
    import io

    rng = np.random.default_rng(3)
    lines = [b"x" * int(k) for k in rng.integers(0, 300, 2_000)]
    data = b"\n".join(lines) + (b"\n" if final_newline else b"")
    chunks = list(line_chunks(io.BytesIO(data), chunk_rows, "x"))
    assert b"".join(c for _, c in chunks) == data
    assert all(c.endswith(b"\n") for _, c in chunks[:-1])
    assert all(c.count(b"\n") == chunk_rows for _, c in chunks[:-1])
    assert [o for o, _ in chunks] == [i * chunk_rows for i in range(len(chunks))]


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("chunk_rows", [1, 2, 1000])
@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ("7,abc,4.0,5", r"movieId is not int32: 'abc'"),
        ("7,1,4.0", r"Expected 4 columns, got 3"),
        ("7,,4.0,5", r"empty movieId"),
        ("7,1,4.0,1.5", r"timestamp is not int64: '1.5'"),
        ("7,1,7,5", r"rating 7 is not one of 0.5"),
        ("7,3000000000,4,5", r"movieId is not int32: '3000000000'"),
    ],
)
def test_malformed_line_is_named(tmp_path: Path, chunk_rows: int, bad_line: str, reason: str) -> None:
    ratings = [*RATINGS_CSV[:6], bad_line, *RATINGS_CSV[6:]]  # the bad line is line 7
    src = make_csv(tmp_path / "src", ratings_csv=ratings)
    with pytest.raises(DataError, match=rf"ratings\.csv: malformed ratings at line 7: {reason}") as err:
        ingest(src, tmp_path / "pq", chunk_rows=chunk_rows)
    assert repr(bad_line) in str(err.value)
    assert not (tmp_path / "pq").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["src"]  # no temporary folder left behind


def test_truncated_file_names_its_last_line(tmp_path: Path) -> None:
    src = make_csv(tmp_path / "src")
    _lines(src / "ratings.csv", [*RATINGS_CSV[:-1], "12,3,1"], newline_at_end=False)  # cut mid-row
    with pytest.raises(
        DataError, match=r"ratings\.csv: malformed ratings at line 9: Expected 4 columns, got 3"
    ):
        ingest(src, tmp_path / "pq", chunk_rows=2)


def test_malformed_dat_line_is_named(tmp_path: Path) -> None:
    src = make_ml10m(tmp_path / "ml-10m")
    _lines(src / "ratings.dat", ["1::1::4.5::10", "1::2571::3::11", "5::2571:0.5::12"])
    with pytest.raises(
        DataError, match=r"ratings\.dat: malformed ratings at line 3: Expected 4 columns, got 3"
    ):
        ingest(src, tmp_path / "pq", chunk_rows=1)


def test_truncated_zip(tmp_path: Path) -> None:
    src = make_csv(
        tmp_path / "ml-tiny", ratings_csv=[RATINGS_CSV[0], *[f"{u},1,4.0,{u}" for u in range(1, 5000)]]
    )
    zpath = tmp_path / "ml-tiny.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(src / "ratings.csv", "ml-tiny/ratings.csv")  # first member: its data is cut below
        for f in sorted(src.iterdir()):
            if f.name != "ratings.csv":
                zf.write(f, f"ml-tiny/{f.name}")
    cut = tmp_path / "cut.zip"
    cut.write_bytes(zpath.read_bytes()[: zpath.stat().st_size // 3])
    with pytest.raises(DataError, match=r"cut\.zip"):
        ingest(cut, tmp_path / "pq")
    assert not (tmp_path / "pq").exists()


def test_header_lacking_a_column(tmp_path: Path) -> None:
    src = make_csv(tmp_path / "src", ratings_csv=["userId,movieId,stars,timestamp", "1,1,4.0,1"])
    with pytest.raises(DataError, match=r"ratings\.csv: line 1 \(header\) lacks column\(s\) \['rating'\]"):
        ingest(src, tmp_path / "pq")


def test_no_data_set_and_ml100k(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no MovieLens files"):
        ingest(tmp_path / "empty", tmp_path / "pq")
    _lines(tmp_path / "k" / "u.data", ["1\t1\t5\t1"])
    _lines(tmp_path / "k" / "u.item", ["1|Toy Story (1995)|01-Jan-1995||x|0"])
    with pytest.raises(DataError, match="ml-100k"):
        ingest(tmp_path / "k", tmp_path / "pq")
    with pytest.raises(ValueError, match="chunk_rows"):
        ingest(tmp_path / "k", tmp_path / "pq", chunk_rows=0)


def test_existing_output_is_kept_unless_overwrite(tmp_path: Path) -> None:
    src = make_csv(tmp_path / "src")
    out = ingest(src, tmp_path / "pq")
    with pytest.raises(DataError, match="already exists; pass overwrite=True"):
        ingest(src, out)
    make_csv(src, ratings_csv=RATINGS_CSV[:3])
    ingest(src, out, overwrite=True)
    assert read_manifest(out)["rows"]["ratings"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pq", "src"]
    other = tmp_path / "mine"
    other.mkdir()
    with pytest.raises(DataError, match="already exists"):
        ingest(src, other, overwrite=True)  # never replaces a folder ingest did not write


def test_load_columnar_rejects_other_folders(tmp_path: Path) -> None:
    src = make_csv(tmp_path / "src")
    assert not is_columnar(src)
    with pytest.raises(DataError, match="not a folder written by `movierec data ingest`"):
        load_columnar(src)
    out = ingest(src, tmp_path / "pq")
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps(manifest | {"version": 99}))
    with pytest.raises(DataError, match="version 99"):
        load_columnar(out)
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / "ratings.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match=r"ratings\.parquet: unreadable Parquet"):
        load_columnar(out)
