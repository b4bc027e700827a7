"""TMDB metadata: keywords parsed without eval, details with awkward text, join via links."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest

from movierec.data.metadata import load_metadata, parse_keywords
from movierec.data.movielens import load_folder
from movierec.data.validation import DataError


def _write_csv(path: Path, header: list[str], rows: Sequence[Sequence[object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


KEYWORDS: list[list[object]] = [
    [862, "[{'id': 931, 'name': 'jealousy'}, {'id': 4290, 'name': 'toy'}]"],
    [8844, """[{'id': 10090, 'name': "children's book"}, {'id': 1, 'name': 'board game'}]"""],
    [603, '[{"id": 2, "name": "artificial intelligence"}, {"id": 3, "name": "say \\"hi\\""}]'],
    [15602, "[]"],
    ["oops", "[{'id': 9, 'name': 'never seen'}]"],
    [11, "__import__('os').system('touch PWNED')"],
    [12, "[{'id': 9, 'name': __import__('os').system('touch PWNED2')}]"],
]


def test_parse_keywords_both_quote_styles() -> None:
    frame = pd.DataFrame(KEYWORDS[:4], columns=["id", "keywords"]).astype(str)
    out = parse_keywords(frame)
    got = dict(zip(out["tmdbId"].tolist(), out["keywords"].tolist(), strict=True))
    assert got == {
        862: ["jealousy", "toy"],
        8844: ["children's book", "board game"],
        603: ["artificial intelligence", 'say "hi"'],
        15602: [],
    }


def test_parse_keywords_never_evaluates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    frame = pd.DataFrame(KEYWORDS, columns=["id", "keywords"]).astype(str)
    out = parse_keywords(frame)
    got = dict(zip(out["tmdbId"].tolist(), out["keywords"].tolist(), strict=True))
    # the payloads are not keywords, nothing ran, the bad id row is dropped
    assert got[11] == []
    assert got[12] == []
    assert "oops" not in got and len(got) == 6
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "PWNED2").exists()
    assert all("system" not in k for ks in got.values() for k in ks)


def _tmdb_dir(tmp_path: Path) -> Path:
    d = tmp_path / "meta"
    d.mkdir()
    _write_csv(d / "keywords.csv", ["id", "keywords"], KEYWORDS)
    _write_csv(
        d / "tmdb_5000_movies.csv",
        ["budget", "id", "overview", "release_date", "runtime", "vote_average", "title"],
        [
            [
                0,
                862,
                'Woody, a "good" cowboy doll,\nfeels threatened.',
                "1995-10-30",
                "81",
                "7.7",
                "Toy Story",
            ],
            [0, 8844, "Siblings find a board game.", "1995-12-15", "", "6.9", "Jumanji"],
            [0, 603, "", "1999-03-30", "136", "7.9", "The Matrix"],
            [0, "not-an-id", "junk", "", "", "", "junk"],
        ],
    )
    return d


def test_load_metadata_merges_keywords_and_details(tmp_path: Path) -> None:
    meta = load_metadata(_tmdb_dir(tmp_path))
    assert meta is not None
    meta = meta.set_index("tmdbId")
    assert meta.loc[862, "overview"] == 'Woody, a "good" cowboy doll,\nfeels threatened.'
    assert meta.loc[862, "runtime"] == 81
    assert pd.isna(meta.loc[8844, "runtime"])
    assert meta.loc[603, "overview"] is None or pd.isna(meta.loc[603, "overview"])
    assert meta.loc[8844, "keywords"] == ["children's book", "board game"]
    assert meta.loc[15602, "keywords"] == []


def test_missing_metadata_dir_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does-not-exist"):
        load_metadata(tmp_path / "does-not-exist")


def test_metadata_none_and_empty_dir(tmp_path: Path) -> None:
    assert load_metadata(None) is None
    assert load_metadata(tmp_path) is None


def test_metadata_joins_through_links_tmdb_id(tmp_path: Path) -> None:
    ml = tmp_path / "ml"
    ml.mkdir()
    _write_csv(ml / "movies.csv", ["movieId", "title", "genres"],
               [[1, "Toy Story (1995)", "Animation|Children"], [2, "Jumanji (1995)", "Adventure"],
                [2571, "Matrix, The (1999)", "Action|Sci-Fi"], [5, "No Link (2000)", "Drama"]])  # fmt: skip
    _write_csv(ml / "ratings.csv", ["userId", "movieId", "rating", "timestamp"],
               [[1, 1, 4.0, 10], [1, 2, 3.5, 11], [2, 2571, 5.0, 12], [2, 5, 1.0, 13]])  # fmt: skip
    _write_csv(ml / "links.csv", ["movieId", "imdbId", "tmdbId"],
               [[1, "0114709", 862], [2, "0113497", 8844], [2571, "0133093", 603], [5, "1", ""]])  # fmt: skip
    ds = load_folder(ml, metadata=load_metadata(_tmdb_dir(tmp_path)))
    info = ds.movie_info.set_index("movie_id")
    assert info.loc[1, "tmdb_id"] == 862 and info.loc[1, "imdb_id"] == 114709
    assert info.loc[5, "tmdb_id"] == 0
    assert info.loc[1, "overview"].startswith("Woody")
    assert info.loc[2, "overview"] == "Siblings find a board game."
    assert pd.isna(info.loc[5, "overview"])
    assert ds.summary()["movies_with_overview"] == 2
    # keywords become tmdb-sourced tags with weight 1
    kw = ds.tags.index_one("children's book")
    assert ds.tag_source[kw] & 4
    assert ds.movie_tags[ds.movies.index_one(2), kw] == pytest.approx(1.0)
    assert "toy" in ds.tags and "jealousy" in ds.tags
