"""Every MovieLens layout (csv, ``::`` dat, ml-100k) and bad input, on tiny hand-made files."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from movierec.data.movielens import canonical_split, data_root, detect_layout, load_folder
from movierec.data.ratings import FIVE_STARS, HALF_STARS
from movierec.data.tags import TAG_SOURCES
from movierec.data.validation import DataError

# --------------------------------------------------------------------- csv family

MOVIES_CSV: list[list[object]] = [
    ["movieId", "title", "genres"],
    [1, "Toy Story (1995)", "Adventure|Animation|Children|Comedy|Fantasy"],
    [2571, "Matrix, The (1999)", "Action|Sci-Fi|Thriller"],
    [4973, "Amelie (Fabuleux destin d'Amélie Poulain, Le) (2001)", "Comedy|Romance"],
    [3, "Heat, Dust and Tears, Part 2 (2004)", "(no genres listed)"],
    [10, "Untitled Project", "Drama"],
]
RATINGS_CSV: list[list[object]] = [
    ["userId", "movieId", "rating", "timestamp"],
    [7, 2571, 4.5, 300],
    [7, 1, 3.0, 100],
    [3, 4973, 5.0, 50],
    [7, 4973, 0.5, 100],
    [3, 1, 2.0, 40],
    [3, 1, 4.0, 60],  # duplicate (3, 1): the later one (t=60) wins
    [12, 3, 1.5, 10],
]
TAGS_CSV: list[list[object]] = [
    ["userId", "movieId", "tag", "timestamp"],
    [7, 2571, "Dark  Comedy", 1],
    [3, 2571, " dark comedy", 2],
    [12, 2571, "DARK COMEDY ", 3],
    [3, 1, "Pixar", 4],
    [7, 1, "comedy", 5],
    [7, 99999, "orphan tag", 6],  # unknown movie: dropped and counted
]
LINKS_CSV: list[list[object]] = [
    ["movieId", "imdbId", "tmdbId"],
    [1, "0114709", 862],
    [2571, "0133093", 603],
    [4973, "0211915", 194],
    [3, "0000001", ""],
]
GENOME_TAGS: list[list[object]] = [
    ["tagId", "tag"],
    [1, "atmospheric"],
    [2, "Dark Comedy"],
    [3, "pixar animation"],
]
GENOME_SCORES: list[list[object]] = [
    ["movieId", "tagId", "relevance"],
    [1, 1, 0.10], [1, 2, 0.20], [1, 3, 0.95],
    [2571, 1, 0.85], [2571, 2, 0.80], [2571, 3, 0.05],
]  # fmt: skip


def _write(path: Path, rows: Sequence[Sequence[object]], encoding: str = "utf-8") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding=encoding) as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)


def _write_lines(path: Path, lines: list[str], encoding: str = "utf-8") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))


def make_csv_set(root: Path, *, genome: bool = True, **override: Sequence[Sequence[object]]) -> Path:
    files: dict[str, Sequence[Sequence[object]]] = {
        "movies.csv": MOVIES_CSV,
        "ratings.csv": RATINGS_CSV,
        "tags.csv": TAGS_CSV,
        "links.csv": LINKS_CSV,
    }
    if genome:
        files |= {"genome-tags.csv": GENOME_TAGS, "genome-scores.csv": GENOME_SCORES}
    for name, rows in files.items():
        rows = override.get(name.replace(".csv", "").replace("-", "_"), rows)
        _write(root / name, rows)
    return root


@pytest.fixture
def csv_set(tmp_path: Path) -> Path:
    return make_csv_set(tmp_path / "ml-tiny")


def test_csv_counts_scale_and_vocabularies(csv_set: Path) -> None:
    ds = load_folder(csv_set)
    assert ds.name == "ml-tiny"
    assert detect_layout(csv_set) == "csv"
    assert ds.scale == HALF_STARS
    assert ds.n_ratings == 6  # 7 rows, one duplicate
    assert ds.users.ids.tolist() == [3, 7, 12]
    assert ds.movies.ids.tolist() == [1, 3, 10, 2571, 4973]
    assert ds.repairs == {"duplicate_ratings_dropped": 1, "tag_rows_dropped": 1}
    assert ds.user.dtype == np.int32 and ds.movie.dtype == np.int32
    assert ds.rating.dtype == np.float32 and ds.timestamp.dtype == np.int64
    assert not ds.rating.flags.writeable


def test_csv_ratings_sorted_by_user_time_movie_and_latest_duplicate_kept(csv_set: Path) -> None:
    ds = load_folder(csv_set)
    rows = list(
        zip(
            ds.users.id(ds.user).tolist(),
            ds.movies.id(ds.movie).tolist(),
            ds.rating.tolist(),
            ds.timestamp.tolist(),
            strict=True,
        )
    )
    assert rows == [
        (3, 4973, 5.0, 50),
        (3, 1, 4.0, 60),
        (7, 1, 3.0, 100),  # same time as 4973: movie index order breaks the tie
        (7, 4973, 0.5, 100),
        (7, 2571, 4.5, 300),
        (12, 3, 1.5, 10),
    ]
    assert ds.user_ptr.tolist() == [0, 2, 5, 6]


def test_csv_titles_years_genres_links(csv_set: Path) -> None:
    info = load_folder(csv_set).movie_info.set_index("movie_id")
    assert info.loc[2571, "display_title"] == "The Matrix"
    assert info.loc[2571, "year"] == 1999
    assert info.loc[4973, "display_title"] == "Amelie (Le Fabuleux destin d'Amélie Poulain)"
    assert info.loc[3, "title"] == "Heat, Dust and Tears, Part 2 (2004)"  # comma inside quotes
    assert info.loc[3, "genres"] == ()  # "(no genres listed)"
    assert info.loc[10, "year"] == 0
    assert info.loc[1, "genres"] == ("Adventure", "Animation", "Children", "Comedy", "Fantasy")
    assert info.loc[1, "imdb_id"] == 114709 and info.loc[1, "tmdb_id"] == 862
    assert info.loc[3, "tmdb_id"] == 0 and info.loc[10, "imdb_id"] == 0


def test_csv_tags_merge_sources_and_weights(csv_set: Path) -> None:
    ds = load_folder(csv_set)
    assert "dark comedy" in ds.tags and "Dark  Comedy" not in ds.tags
    assert len(ds.tag_events) == 5
    dark = ds.tags.index_one("dark comedy")
    comedy = ds.tags.index_one("comedy")
    matrix, toy = ds.movies.index_one(2571), ds.movies.index_one(1)
    # three user applications + genome relevance 0.80 (at the threshold)
    assert ds.movie_tags[matrix, dark] == pytest.approx(3.8)
    assert ds.tag_source[dark] == TAG_SOURCES["user"] | TAG_SOURCES["genome"]
    # "comedy": a user tag on Toy Story and a genre
    assert ds.tag_source[comedy] == TAG_SOURCES["user"] | TAG_SOURCES["genre"]
    assert ds.movie_tags[toy, comedy] == pytest.approx(2.0)
    assert ds.tag_source[ds.tags.index_one("sci-fi")] == TAG_SOURCES["genre"]
    # genome: above-threshold only
    assert ds.tag_source[ds.tags.index_one("pixar animation")] == TAG_SOURCES["genome"]
    assert ds.movie_tags[toy, ds.tags.index_one("pixar animation")] == pytest.approx(0.95)
    assert ds.movie_tags[matrix, ds.tags.index_one("atmospheric")] == pytest.approx(0.85)
    assert ds.movie_tags[toy, ds.tags.index_one("atmospheric")] == 0
    assert "orphan tag" not in ds.tags
    assert "(no genres listed)" not in ds.tags
    assert ds.movie_tags.shape == (ds.n_movies, ds.n_tags)
    ev = ds.tag_events
    assert set(ev["tag"][ev["movie"] == matrix]) == {dark}
    summary = ds.summary()
    assert summary["tag_applications"] == 5
    assert summary["tag_sources"]["genome"] == 3


def test_genome_needs_both_files(tmp_path: Path) -> None:
    root = make_csv_set(tmp_path / "x", genome=False)
    _write(root / "genome-scores.csv", GENOME_SCORES)
    ds = load_folder(root)
    assert not any(ds.tag_source & TAG_SOURCES["genome"])


def test_layout_in_a_single_sub_folder(tmp_path: Path) -> None:
    make_csv_set(tmp_path / "outer" / "ml-tiny")
    assert detect_layout(tmp_path / "outer") == "csv"
    assert data_root(tmp_path / "outer") == tmp_path / "outer" / "ml-tiny"
    ds = load_folder(tmp_path / "outer")
    assert ds.n_ratings == 6 and ds.name == "ml-tiny"


def test_no_layout_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(DataError, match=r"ratings\.csv"):
        detect_layout(tmp_path)
    with pytest.raises(DataError, match="not a directory"):
        detect_layout(tmp_path / "nope")


# ----------------------------------------------------------------- bad csv input


@pytest.mark.parametrize(
    ("ratings", "pattern"),
    [
        ([[1, 1, "four", 5]], r"rating.*data row 2.*'four'"),
        ([[1, 1, 7, 5]], r"off the 0\.5-5 scale.*data row 2: 7"),
        ([[1, 1, 0.3, 5]], r"off the 0\.5-5 scale.*data row 2: 0\.3"),
        ([[1, 424242, 4.0, 5]], r"missing from the movie list.*424242"),
        ([[1, "", 4.0, 5]], r"movieId.*data row 2"),
        ([[1.5, 1, 4.0, 5]], r"userId.*non-integer.*data row 2: '?1\.5'?$"),  # not silently user 1
        ([[1, 2571.7, 4.0, 5]], r"movieId.*non-integer.*data row 2"),
        ([[1, 1, 4.0, 5], [1, 2571, 4.0, 6], [2, 1]], r"'rating'.*empty.*data row 4"),
    ],
)
def test_bad_ratings_name_column_and_row(
    tmp_path: Path, ratings: Sequence[Sequence[object]], pattern: str
) -> None:
    rows: list[Sequence[object]] = [RATINGS_CSV[0], [1, 1, 4.0, 1], *ratings]
    root = make_csv_set(tmp_path / "bad", ratings=rows)
    with pytest.raises(DataError, match=pattern):
        load_folder(root)


def test_missing_ratings_file(tmp_path: Path) -> None:
    root = make_csv_set(tmp_path / "bad")
    (root / "ratings.csv").unlink()
    with pytest.raises(DataError, match=r"ratings\.csv"):
        load_folder(root)


def test_missing_ratings_file_in_known_layout(tmp_path: Path) -> None:
    from movierec.data.movielens import load_csv_layout

    root = make_csv_set(tmp_path / "bad")
    (root / "ratings.csv").unlink()
    with pytest.raises(DataError, match=r"ratings\.csv.*missing"):
        load_csv_layout(root, name="bad")


def test_missing_rating_column(tmp_path: Path) -> None:
    root = make_csv_set(tmp_path / "bad", ratings=[["userId", "movieId", "timestamp"], [1, 1, 5]])
    with pytest.raises(DataError, match=r"ratings\.csv.*missing column.*rating"):
        load_folder(root)


def test_missing_movies_column(tmp_path: Path) -> None:
    root = make_csv_set(
        tmp_path / "bad", movies=[["id", "title", "genres"], [1, "Toy Story (1995)", "Comedy"]]
    )
    with pytest.raises(DataError, match=r"movies.*missing column 'movieId'"):
        load_folder(root)


def test_duplicate_movie_ids(tmp_path: Path) -> None:
    root = make_csv_set(tmp_path / "bad", movies=[*MOVIES_CSV, [2571, "Matrix again (1999)", "Action"]])
    with pytest.raises(DataError, match=r"duplicate movieId.*2571"):
        load_folder(root)


# ---------------------------------------------------------------------- :: family


def test_ml1m_dat_latin1_five_stars(tmp_path: Path) -> None:
    root = tmp_path / "ml-1m"
    _write_lines(
        root / "movies.dat",
        ["1::Toy Story (1995)::Animation|Children's|Comedy", "2::Misérables, Les (1995)::Drama|Musical",
         "3::Heat (1995)::Action|Crime|Thriller"],
        encoding="latin-1",
    )  # fmt: skip
    _write_lines(root / "ratings.dat", ["1::1::5::978300760", "1::2::3::978302109", "2::3::4::978301968",
                                        "2::1::1::978300275"])  # fmt: skip
    _write_lines(root / "users.dat", ["1::F::1::10::48067", "2::M::56::16::70072"])
    assert detect_layout(root) == "dat"
    ds = load_folder(root)
    assert ds.scale == FIVE_STARS
    assert ds.n_ratings == 4 and ds.n_users == 2 and ds.n_movies == 3
    info = ds.movie_info.set_index("movie_id")
    assert info.loc[2, "display_title"] == "Les Misérables"
    assert info.loc[2, "year"] == 1995
    assert info.loc[1, "genres"] == ("Animation", "Children's", "Comedy")
    assert ds.user_info is not None
    assert ds.user_info["gender"].tolist() == ["F", "M"]
    assert ds.user_info["zip"].tolist() == ["48067", "70072"]
    assert sorted(ds.rating.tolist()) == [1.0, 3.0, 4.0, 5.0]


def test_ml10m_dat_half_stars_and_tags(tmp_path: Path) -> None:
    root = tmp_path / "ml-10M100K"
    _write_lines(root / "movies.dat", ["1::Toy Story (1995)::Animation|Children|Comedy",
                                       "2571::Matrix, The (1999)::Action|Sci-Fi"])  # fmt: skip
    _write_lines(root / "ratings.dat", ["1::1::4.5::10", "1::2571::3::11", "5::2571::0.5::12"])
    _write_lines(root / "tags.dat", ["1::2571::Cyberpunk::20", "5::2571::cyberpunk ::21", "5::1::pixar::22"])
    ds = load_folder(root)
    assert ds.scale == HALF_STARS
    assert ds.rating.tolist() == [4.5, 3.0, 0.5]
    assert ds.movie_info.set_index("movie_id").loc[2571, "display_title"] == "The Matrix"
    cp = ds.tags.index_one("cyberpunk")
    assert ds.movie_tags[ds.movies.index_one(2571), cp] == pytest.approx(2.0)
    assert ds.tag_source[cp] == TAG_SOURCES["user"]
    assert len(ds.tag_events) == 3


def test_dat_off_scale_rating(tmp_path: Path) -> None:
    root = tmp_path / "ml-1m"
    _write_lines(root / "movies.dat", ["1::Toy Story (1995)::Comedy"])
    _write_lines(root / "ratings.dat", ["1::1::5::1", "1::1::6::2"])
    with pytest.raises(DataError, match=r"off the 1-5 scale.*data row 2: 6"):
        load_folder(root)


# ----------------------------------------------------------------------- ml-100k

GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
          "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
          "War", "Western"]  # fmt: skip


def _flags(*names: str) -> str:
    return "|".join("1" if g in names else "0" for g in GENRES)


def make_100k(root: Path, item_lines: list[str] | None = None) -> Path:
    items = item_lines or [
        f"1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|"
        f"{_flags('Animation', 'Children', 'Comedy')}",
        f"2|GoldenEye (1995)|01-Jan-1995||http://x|{_flags('Action', 'Thriller')}",
        f"3|Misérables, Les|15-Dec-1995||http://x|{_flags('Drama')}",
        f"4|unknown||||{_flags('unknown')}",
    ]
    _write_lines(root / "u.item", items, encoding="latin-1")
    _write_lines(root / "u.genre", [f"{g}|{i}" for i, g in enumerate(GENRES)] + [""])
    _write_lines(root / "u.user", ["1|24|M|technician|85711", "2|53|F|other|94043", "3|23|M|writer|32067"])
    data = [(1, 1, 5, 100), (1, 2, 3, 90), (2, 1, 4, 50), (2, 3, 2, 60), (3, 2, 1, 70), (3, 3, 5, 80),
            (3, 4, 3, 81)]  # fmt: skip
    _write_lines(root / "u.data", ["\t".join(map(str, r)) for r in data])
    base, test = data[::2], data[1::2]
    _write_lines(root / "u1.base", ["\t".join(map(str, r)) for r in base])
    _write_lines(root / "u1.test", ["\t".join(map(str, r)) for r in test])
    return root


def test_ml100k(tmp_path: Path) -> None:
    root = make_100k(tmp_path / "ml-100k")
    assert detect_layout(root) == "100k"
    ds = load_folder(root)
    assert ds.name == "ml-100k"
    assert ds.scale == FIVE_STARS
    assert (ds.n_ratings, ds.n_users, ds.n_movies) == (7, 3, 4)
    info = ds.movie_info.set_index("movie_id")
    assert info.loc[1, "genres"] == ("Animation", "Comedy")  # "Children" is not "Children's"
    assert info.loc[2, "genres"] == ("Action", "Thriller")
    assert info.loc[3, "display_title"] == "Les Misérables"
    assert info.loc[3, "year"] == 1995  # from the release date
    assert info.loc[4, "genres"] == ()
    assert info.loc[4, "year"] == 0
    assert ds.user_info is not None and ds.user_info["occupation"].tolist() == [
        "technician",
        "other",
        "writer",
    ]


def test_ml100k_canonical_split_masks_match_rows(tmp_path: Path) -> None:
    ds = load_folder(make_100k(tmp_path / "ml-100k"))
    train, test = canonical_split(ds, "u1")
    assert train.dtype == bool and train.shape == (ds.n_ratings,)
    assert not (train & test).any() and (train | test).all()
    pairs = {
        (int(u), int(m))
        for u, m in zip(ds.users.id(ds.user[test]), ds.movies.id(ds.movie[test]), strict=True)
    }
    assert pairs == {(1, 2), (2, 3), (3, 3)}
    with pytest.raises(DataError, match="u2"):
        canonical_split(ds, "u2")
    with pytest.raises(DataError, match="unknown canonical split"):
        canonical_split(ds, "u9")


def test_ml100k_bad_genre_flags(tmp_path: Path) -> None:
    bad = f"2|GoldenEye (1995)|01-Jan-1995||http://x|{_flags('Action').replace('1', '2', 1)}"
    root = make_100k(tmp_path / "ml-100k", [f"1|Toy Story (1995)|01-Jan-1995||x|{_flags('Comedy')}", bad])
    with pytest.raises(DataError, match=r"u\.item.*genre flags.*row 2"):
        load_folder(root)


def test_ml100k_too_few_genre_flags(tmp_path: Path) -> None:
    root = make_100k(tmp_path / "ml-100k", [f"1|Toy Story (1995)|01-Jan-1995||x|{_flags('Comedy')}",
                                            "2|GoldenEye (1995)|01-Jan-1995||x|0|1|0"])  # fmt: skip
    with pytest.raises(DataError, match=r"u\.item"):
        load_folder(root)


# --------------------------------------------------------------------- real data

MIRROR = os.environ.get("MOVIEREC_MIRROR")
needs_mirror = pytest.mark.skipif(
    not (MIRROR and (Path(MIRROR) / "ml-latest-small.zip").exists()),
    reason="set MOVIEREC_MIRROR to a directory holding ml-latest-small.zip",
)


@pytest.mark.realdata
@needs_mirror
def test_real_ml_latest_small(tmp_path: Path) -> None:
    from movierec.data.load import load_dataset
    from movierec.settings import Settings

    meta = os.environ.get("MOVIEREC_METADATA")
    settings = Settings(home=tmp_path, mirror=Path(str(MIRROR)), metadata=Path(meta) if meta else None)
    ds = load_dataset("ml-latest-small", settings)
    assert (ds.n_ratings, ds.n_users, ds.n_movies, len(ds.tag_events)) == (100836, 610, 9742, 3683)
    assert ds.scale == HALF_STARS
    assert np.all(np.diff(ds.user) >= 0)
    info = ds.movie_info.set_index("movie_id")
    assert info.loc[2571, "display_title"] == "The Matrix" and info.loc[2571, "year"] == 1999
    if meta:
        assert ds.summary()["movies_with_overview"] > 1000
        assert ds.tag_source.astype(int).__and__(TAG_SOURCES["tmdb"]).any()


@pytest.mark.realdata
@needs_mirror
def test_cli_data_info_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from movierec.cli import app

    monkeypatch.setenv("MOVIEREC_HOME", str(tmp_path))
    monkeypatch.delenv("MOVIEREC_METADATA", raising=False)
    result = CliRunner().invoke(app, ["data", "info", "ml-latest-small", "--json", "--mirror", str(MIRROR)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert isinstance(out, dict)
    assert (out["ratings"], out["users"], out["movies"], out["tag_applications"]) == (100836, 610, 9742, 3683)


def test_load_dataset_with_missing_metadata_dir(csv_set: Path, tmp_path: Path) -> None:
    from movierec.data.load import load_dataset
    from movierec.settings import Settings

    settings = Settings(home=tmp_path / "home", mirror=None, metadata=tmp_path / "no-such-metadata")
    with pytest.raises(DataError, match="no-such-metadata"):
        load_dataset(csv_set, settings)
    ds = load_dataset(csv_set, settings, with_metadata=False)
    assert ds.n_ratings == 6
