"""Tests for movierec.storage.catalog: building the catalogue, search ranking, hostile input."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from movierec.data.dataset import Dataset
from movierec.settings import Settings
from movierec.storage.catalog import (
    build_catalog,
    build_catalog_file,
    catalog_info,
    get_movie,
    get_movies,
    resolve_title,
    search_movies,
    search_tags,
    title_keys,
)
from movierec.storage.db import connect, integrity_check
from movierec.storage.sessions import SessionStore, sessions_path_for

MOVIES = [
    (1, "Matrix, The (1999)", "Action|Sci-Fi"),
    (2, "Matrix Reloaded, The (2003)", "Action|Sci-Fi"),
    (3, "Matrix Revolutions, The (2003)", "Action|Sci-Fi"),
    (4, "Amelie (Fabuleux destin d'Amélie Poulain, Le) (2001)", "Comedy|Romance"),
    (5, "Heat (1995)", "Action|Crime"),
    (6, "Heat (1986)", "Action"),
    (7, "Terminator, The (1984)", "Action|Sci-Fi"),
    (8, "Animatrix, The (2003)", "Animation|Sci-Fi"),
    (9, "Body Heat (1981)", "Crime"),
    (10, "Toy Story (1995)", "Animation|Children"),
]
# ratings per movie: Revolutions (4) outranks Reloaded (3); Heat 1986 (3) outranks Heat 1995 (2)
RATING_COUNTS = {1: 5, 2: 3, 3: 4, 4: 2, 5: 2, 6: 3, 7: 1, 8: 1, 9: 1, 10: 1}


def small_dataset() -> Dataset:
    movies = pd.DataFrame(MOVIES, columns=["movieId", "title", "genres"])
    rows = [(u, m, 4.0, 1000 + u) for m, n in RATING_COUNTS.items() for u in range(1, n + 1)]
    ratings = pd.DataFrame(rows, columns=["userId", "movieId", "rating", "timestamp"])
    tags = pd.DataFrame(
        [(1, 1, "cyberpunk", 1), (2, 1, "Cyberpunk", 2), (1, 2, "cyberpunk", 3), (3, 1, "philosophy", 4)],
        columns=["userId", "movieId", "tag", "timestamp"],
    )
    metadata = pd.DataFrame(
        {
            "movieId": [1, 10],
            "keywords": [["virtual reality"], ["toys"]],
            "overview": ["A hacker learns the truth.", "Toys in a matrix of shelves come alive."],
        }
    )
    return Dataset.build("tiny", ratings, movies, tags=tags, metadata=metadata)


@pytest.fixture(scope="module")
def conn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sqlite3.Connection]:
    """A catalogue shared by the read-only tests."""
    c = connect(tmp_path_factory.mktemp("catalog") / "catalog.sqlite3")
    build_catalog(small_dataset(), c)
    yield c
    c.close()


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A catalogue of its own, for tests that write."""
    c = connect(tmp_path / "catalog.sqlite3")
    build_catalog(small_dataset(), c)
    yield c
    c.close()


def ids(results: list[dict]) -> list[int]:
    return [r["movie_id"] for r in results]


def test_build_counts_and_info(fresh: sqlite3.Connection) -> None:
    conn = fresh
    data = small_dataset()
    counts = build_catalog(data, conn)  # a rebuild replaces, never duplicates
    assert counts["movies"] == 10
    assert counts["tags"] == data.n_tags
    assert counts["movie_tags"] == data.movie_tags.nnz
    info = catalog_info(conn)
    assert info["movies"] == 10 and info["tags"] == data.n_tags and info["movie_tags"] == data.movie_tags.nnz
    assert info["dataset"] == "tiny"
    assert info["fingerprint"] == data.fingerprint()
    assert info["built_at"]
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1  # switched back on after the bulk load
    assert integrity_check(conn)  # includes the foreign-key check


def test_rebuild_keeps_sessions(fresh: sqlite3.Connection) -> None:
    conn = fresh
    store = SessionStore(conn)
    token = store.create()
    store.add(token, "movie", 1, "like")
    store.add_favourite(token, 5)
    build_catalog(small_dataset(), conn)
    state = store.get(token)
    assert state.liked == [1] and state.favourites == [5]


def test_failed_build_keeps_the_old_catalogue(fresh: sqlite3.Connection) -> None:
    conn = fresh
    other = Dataset.build(
        "other",
        pd.DataFrame({"userId": [1], "movieId": [99], "rating": [4.0], "timestamp": [1]}),
        pd.DataFrame({"movieId": [99], "title": ["Other (2000)"], "genres": ["Drama"]}),
    )
    # make the last insert of the build fail, after the old rows were deleted
    conn.execute("CREATE TEMP TRIGGER boom BEFORE INSERT ON meta BEGIN SELECT RAISE(ABORT, 'boom'); END")
    with pytest.raises(sqlite3.IntegrityError, match="boom"):
        build_catalog(other, conn)
    conn.execute("DROP TRIGGER boom")
    assert catalog_info(conn)["movies"] == 10 and catalog_info(conn)["dataset"] == "tiny"
    assert ids(search_movies(conn, "matrix"))[:1] == [1]
    assert get_movie(conn, 99) is None
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert not conn.in_transaction


def test_build_file_swaps_a_new_catalogue_in_and_moves_old_sessions_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue (hardening, defect 1): ``data build`` on a live home held the database lock for the
    whole build; now it writes a new file and swaps it in with one rename."""
    path = tmp_path / "movierec.sqlite3"
    # a home of an older release: catalogue and sessions in one file
    legacy = connect(path)
    build_catalog(small_dataset(), legacy)
    old_store = SessionStore(legacy)
    token = old_store.create()
    old_store.add(token, "movie", 1, "like")
    old_store.add(token, "tag", "cyberpunk", "dislike")
    old_store.add_favourite(token, 5)
    legacy.close()

    first = build_catalog_file(small_dataset(), path)
    assert path.is_symlink() and path.resolve() == Path(first["file"]) and first["movies"] == 10
    sessions_file = sessions_path_for(path)
    store = SessionStore(sessions_file)
    state = store.get(token)  # the sessions moved to their own file, order and feedback kept
    assert state.liked == [1] and state.disliked_tags == ["cyberpunk"] and state.favourites == [5]
    assert connect(path).execute("SELECT count(*) FROM sessions").fetchone()[0] == 0

    # a server reads the current catalogue and writes sessions while the next build runs
    reader = connect(path)
    writes: list[int] = []

    def visitor() -> None:
        for movie in range(2, 40):
            writes.append(len(store.add(token, "movie", movie, "like").liked))

    other = Dataset.build(
        "other",
        pd.DataFrame({"userId": [1, 2], "movieId": [99, 99], "rating": [4.0, 5.0], "timestamp": [1, 2]}),
        pd.DataFrame({"movieId": [99], "title": ["Other (2000)"], "genres": ["Drama"]}),
    )
    thread = threading.Thread(target=visitor)
    thread.start()
    second = build_catalog_file(other, path)
    thread.join(30)
    assert writes == list(range(2, 40))  # every write went through
    assert catalog_info(reader)["dataset"] == "tiny"  # an open connection keeps its file ...
    reader.close()
    now = connect(path)
    assert (
        catalog_info(now)["dataset"] == "other" and get_movie(now, 99) is not None
    )  # ... a new one sees the new
    now.close()
    assert path.resolve() == Path(second["file"]) and Path(first["file"]).exists()  # the previous one kept

    third = build_catalog_file(small_dataset(), path)
    assert not Path(first["file"]).exists() and Path(second["file"]).exists()  # older ones pruned
    assert store.get(token).favourites == [5]
    store.close()

    # a failed build leaves the current catalogue and no half-built file behind
    before = set(tmp_path.iterdir())
    from movierec.storage import catalog

    def fails_at_the_end(data: Dataset, conn: sqlite3.Connection) -> dict:
        build_catalog(data, conn)
        raise OSError("disk full")

    monkeypatch.setattr(catalog, "build_catalog", fails_at_the_end)
    with pytest.raises(OSError, match="disk full"):
        build_catalog_file(small_dataset(), path)
    assert set(tmp_path.iterdir()) == before and path.resolve() == Path(third["file"])


def test_adopt_keeps_a_token_already_present_and_ignores_files_without_sessions(tmp_path: Path) -> None:
    target = SessionStore(tmp_path / "s.sqlite3")
    assert target.adopt(tmp_path / "missing.sqlite3") == 0
    plain = connect(tmp_path / "plain.sqlite3")
    plain.execute("CREATE TABLE x (a)")
    plain.close()
    assert target.adopt(tmp_path / "plain.sqlite3") == 0
    old = SessionStore(tmp_path / "old.sqlite3")
    both, only_old = old.create(), old.create()
    old.add(both, "movie", 1, "like")
    old.add(only_old, "movie", 2, "like")
    old.close()
    target.conn.execute("INSERT INTO sessions (token, created_at, updated_at) VALUES (?, 0, 0)", (both,))
    assert target.adopt(tmp_path / "old.sqlite3") == 1
    assert target.get(both).liked == [] and target.get(only_old).liked == [2]
    assert target.adopt(tmp_path / "old.sqlite3") == 0  # moved, not copied
    target.close()


def test_cli_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from movierec.cli import app

    folder = tmp_path / "tiny"
    folder.mkdir()
    pd.DataFrame(MOVIES, columns=["movieId", "title", "genres"]).to_csv(folder / "movies.csv", index=False)
    pd.DataFrame({"userId": [1, 2], "movieId": [1, 5], "rating": [4.0, 3.5], "timestamp": [1, 2]}).to_csv(
        folder / "ratings.csv", index=False
    )
    monkeypatch.setenv("MOVIEREC_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MOVIEREC_METADATA", raising=False)
    db_path = tmp_path / "out.sqlite3"
    result = CliRunner().invoke(app, ["data", "build", str(folder), "--db", str(db_path), "--json"])
    assert result.exit_code == 0, result.output
    assert '"movies": 10' in result.output
    conn = connect(db_path)
    assert ids(search_movies(conn, "amelie")) == [4]
    conn.close()


def test_cli_search(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue (pictures and page): an error message sent users to `movierec search`, which did not exist."""
    import json

    from typer.testing import CliRunner

    from movierec.cli import app

    folder = tmp_path / "tiny"
    folder.mkdir()
    pd.DataFrame(MOVIES, columns=["movieId", "title", "genres"]).to_csv(folder / "movies.csv", index=False)
    rows = [(u, m, 4.0, 1000 + u) for m, n in RATING_COUNTS.items() for u in range(1, n + 1)]
    pd.DataFrame(rows, columns=["userId", "movieId", "rating", "timestamp"]).to_csv(
        folder / "ratings.csv", index=False
    )
    monkeypatch.setenv("MOVIEREC_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MOVIEREC_METADATA", raising=False)
    runner = CliRunner()
    r = runner.invoke(app, ["search", "matrix", "--dataset", str(folder), "--json"])
    assert r.exit_code == 0, r.output
    found = json.loads(r.output)
    assert [m["movie_id"] for m in found["movies"]][:1] == [1] and found["movies"][0]["match"] == "exact"
    assert {t["name"] for t in found["tags"]} == set()
    r = runner.invoke(app, ["search", "heat (1986)", "--dataset", str(folder), "-n", "1"])
    assert r.exit_code == 0 and "Heat (1986)" in r.output and r.output.count("\n") == 1, r.output
    r = runner.invoke(app, ["search", "zzqx", "--dataset", str(folder)])
    assert r.exit_code == 0 and "nothing matches 'zzqx'" in r.output


def test_movie_fields(conn: sqlite3.Connection) -> None:
    m = get_movie(conn, 1)
    assert m is not None
    assert m["title"] == "Matrix, The (1999)"
    assert m["display_title"] == "The Matrix"
    assert m["year"] == 1999
    assert m["genres"] == ["Action", "Sci-Fi"]
    assert m["rating_count"] == 5
    assert m["mean_rating"] == pytest.approx(4.0)
    assert m["popularity_rank"] == 1
    assert m["overview"] == "A hacker learns the truth."
    # too few tags worth steering by here (on 5+ movies, not a genre): all of them, heaviest
    # first (cyberpunk was applied twice), then the more specific
    assert m["tags"] == ["cyberpunk", "philosophy", "virtual reality", "sci-fi", "action"]
    assert get_movie(conn, 999) is None
    assert get_movie(conn, 5)["overview"] is None  # type: ignore[index]


def test_the_movie_view_curates_its_tags(tmp_path: Path) -> None:
    """Issue (pictures and page): the movie view listed one viewer's notes ("bubba gump
    shrimp", "hugging") beside the tags worth steering by."""
    movies = pd.DataFrame(
        {"movieId": range(1, 9), "title": [f"M{i} (2000)" for i in range(1, 9)], "genres": "Drama"}
    )
    ratings = pd.DataFrame({"userId": 1, "movieId": range(1, 9), "rating": 4.0, "timestamp": 1})
    rows = [(u, m, t, 1) for m in range(1, 9) for u, t in ((1, "heist"), (2, "twist"), (3, "dark"))]
    rows += [(4, 1, "bubba gump shrimp", 1), (5, 1, "heist", 2), (6, 1, "drama", 3)]
    rows += [(u, m, "slow", 1) for m in range(1, 6) for u in (7,)]
    tags = pd.DataFrame(rows, columns=["userId", "movieId", "tag", "timestamp"])
    c = connect(tmp_path / "c.sqlite3")
    build_catalog(Dataset.build("t", ratings, movies, tags=tags), c)
    # heaviest first (heist twice), then the more specific (slow: 5 movies), no one-off, no genre
    assert get_movie(c, 1)["tags"] == ["heist", "slow", "dark", "twist"]  # type: ignore[index]
    c.close()


def test_get_movies_keeps_order_and_skips_unknown(conn: sqlite3.Connection) -> None:
    assert ids(get_movies(conn, [5, 999, 1, 3])) == [5, 1, 3]
    assert get_movies(conn, []) == []


def test_matrix_ranking(conn: sqlite3.Connection) -> None:
    got = search_movies(conn, "matrix")
    # exact, then prefix matches by rating count (Revolutions has more ratings), then the overview hit
    assert ids(got)[:4] == [1, 3, 2, 10]
    assert [r["match"] for r in got[:4]] == ["exact", "prefix", "prefix", "text"]
    assert 8 not in ids(got)  # "Animatrix" does not contain the word "matrix"


def test_accent_folding(conn: sqlite3.Connection) -> None:
    assert ids(search_movies(conn, "amelie"))[:1] == [4]
    assert ids(search_movies(conn, "Amélie"))[:1] == [4]
    assert ids(search_movies(conn, "AMÉLIE POULAIN"))[:1] == [4]
    assert ids(search_movies(conn, "fabuleux destin"))[:1] == [4]


def test_last_token_is_prefix(conn: sqlite3.Connection) -> None:
    assert ids(search_movies(conn, "termin")) == [7]
    assert ids(search_movies(conn, "the matrix rel"))[:1] == [2]


def test_year_in_parentheses_ranks_that_year_first(conn: sqlite3.Connection) -> None:
    # without a year the more-rated 1986 Heat leads; Body Heat is only a word match
    assert ids(search_movies(conn, "heat")) == [6, 5, 9]
    assert ids(search_movies(conn, "Heat (1995)"))[:2] == [5, 6]
    assert ids(search_movies(conn, "heat (1986)"))[:2] == [6, 5]


def test_limit_and_empty(conn: sqlite3.Connection) -> None:
    assert len(search_movies(conn, "matrix", limit=2)) == 2
    assert search_movies(conn, "") == []
    assert search_movies(conn, "   \t\n") == []
    assert search_movies(conn, "zzzzqqq") == []


HOSTILE = [
    '"',
    '""',
    "*",
    "NEAR(",
    ")(",
    "OR",
    "AND",
    "NOT",
    "matrix OR heat",
    "NEAR(matrix heat, 2)",
    "'; DROP TABLE movies; --",
    'matrix"',
    '"matrix',
    "matrix*",
    "^matrix",
    "-matrix",
    "+",
    "display_title:matrix",
    "{title overview}: heat",
    "%",
    "_",
    "\\",
    "\x00",
    "🎬",
    "a" * 2000,
    "(",
    "(1999)",
    "heat (",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_input_never_raises(conn: sqlite3.Connection, text: str) -> None:
    assert isinstance(search_movies(conn, text), list)
    assert isinstance(search_tags(conn, text), list)
    assert isinstance(resolve_title(conn, text), list)
    assert conn.execute("SELECT count(*) FROM movies").fetchone()[0] == 10


def test_hostile_inputs_still_match_their_words(conn: sqlite3.Connection) -> None:
    assert ids(search_movies(conn, '"matrix'))[:1] == [1]
    assert ids(search_movies(conn, "matrix*"))[:1] == [1]
    assert search_movies(conn, "'; DROP TABLE movies; --") == []


def test_resolve_title(conn: sqlite3.Connection) -> None:
    assert sorted(ids(resolve_title(conn, "Heat"))) == [5, 6]  # ambiguous: both exact
    assert ids(resolve_title(conn, "Heat (1995)")) == [5]
    assert ids(resolve_title(conn, "The Matrix")) == [1]
    assert ids(resolve_title(conn, "Matrix, The (1999)")) == [1]
    assert ids(resolve_title(conn, "matrix rel")) == [2]  # no exact match: best candidates


def test_search_tags(conn: sqlite3.Connection) -> None:
    got = search_tags(conn, "cyber")
    assert got == [{"name": "cyberpunk", "sources": ["user"], "movie_count": 2}]
    assert search_tags(conn, "Sci")[0] == {"name": "sci-fi", "sources": ["genre"], "movie_count": 5}
    assert search_tags(conn, "virtual")[0]["sources"] == ["tmdb"]
    # exact before prefix before substring; "action" is on 5 movies
    names = [t["name"] for t in search_tags(conn, "a")]
    assert names[0] == "action"
    assert search_tags(conn, "%") == [] and search_tags(conn, "_") == []
    assert search_tags(conn, "  ") == []


def test_title_keys() -> None:
    keys = title_keys(
        "Amelie (Le Fabuleux destin d'Amélie Poulain)", "Amelie (Fabuleux destin d'Amélie Poulain, Le) (2001)"
    )
    assert {"amelie", "fabuleux destin d amelie poulain", "le fabuleux destin d amelie poulain"} <= keys
    assert title_keys("The Matrix", "Matrix, The (1999)") == {"the matrix", "matrix", "matrix the"}
    # only articles MovieLens moved are dropped: "Die Hard" is not "hard", "Den, The" is not "the"
    assert title_keys("Die Hard", "Die Hard (1988)") == {"die hard"}
    assert title_keys("The Den", "Den, The (2013)") == {"the den", "den", "den the"}
    assert "boot" in title_keys("Das Boot", "Boot, Das (1981)")
    assert "beautiful mind" in title_keys("A Beautiful Mind", "A Beautiful Mind (2001)")


MIRROR = os.environ.get("MOVIEREC_MIRROR")


@pytest.mark.realdata
@pytest.mark.skipif(
    not (MIRROR and (Path(MIRROR) / "ml-latest-small.zip").exists()),
    reason="needs MOVIEREC_MIRROR pointing at a folder with ml-latest-small.zip",
)
def test_real_ml_latest_small(tmp_path: Path) -> None:
    from movierec.data.load import load_dataset

    metadata = os.environ.get("MOVIEREC_METADATA")
    settings = Settings(
        home=tmp_path, mirror=Path(str(MIRROR)), metadata=Path(metadata) if metadata else None
    )
    data = load_dataset("ml-latest-small", settings)
    conn = connect(tmp_path / "movierec.sqlite3")
    counts = build_catalog(data, conn)
    assert counts["movies"] == 9742
    assert counts["seconds"] < 5.0  # about 0.5 s without metadata, 1-2 s with it
    top = [r["display_title"] for r in search_movies(conn, "matrix")[:3]]
    assert top == ["The Matrix", "The Matrix Reloaded", "The Matrix Revolutions"]
    assert search_movies(conn, "amelie")[0]["display_title"].startswith("Amelie")
    assert search_movies(conn, "termin")[0]["display_title"].startswith("Terminator")
    assert integrity_check(conn)
