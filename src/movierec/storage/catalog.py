"""The movie catalogue in SQLite: build it from a :class:`Dataset`, search and read it.

Every query binds its parameters; user text reaches the FTS5 index only as
quoted tokens of letters and digits, never as query syntax.
"""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from movierec.data.dataset import Dataset
from movierec.data.tags import TAG_SOURCES
from movierec.data.titles import fold_text
from movierec.storage.db import SCHEMA_VERSION, connect, migrate, schema_version, transaction

__all__ = [
    "build_catalog",
    "catalog_info",
    "get_movie",
    "get_movies",
    "resolve_title",
    "search_movies",
    "search_tags",
    "title_keys",
]

#: Articles MovieLens moves to the end of a title ("Matrix, The"); a title key
#: without the article is made only where MovieLens moved one, so "Die Hard"
#: does not become "hard".
_TRAILING_ARTICLE = re.compile(
    r"^(?P<body>.+),\s*(?:The|A|An|Les|La|Le|L'|Il|Lo|I|Gli|Das|Der|Die|Den|Det|De|Het|Een|El|Los|Las|"
    r"Un|Una|Une|Uno|O|Os|As|Ein|Eine)$"
)
#: English articles also dropped from the front of titles MovieLens left as they were.
_LEADING_ARTICLES = frozenset(("the", "a", "an"))
_TOKEN = re.compile(r"[^\W_]+")
_YEAR_SUFFIX = re.compile(r"\(\s*(\d{4})\s*\)\s*$")
_ALT = re.compile(r"^(?P<main>.*?)(?P<alt>(?:\s*\([^()]*\))*)\s*$")
_PARENS = re.compile(r"\(([^()]*)\)")
_MAX_KEY = "\U0010ffff"
_MOVIE_COLUMNS = (
    "movie_id, title, display_title, year, genres, imdb_id, tmdb_id, overview, runtime, "
    "release_date, vote_average, poster_path, rating_count, mean_rating, rating, popularity_rank"
)
_INSERT_COLUMNS = (  # the order of the row tuples built in build_catalog
    "movie_id, title, display_title, folded_title, year, genres, imdb_id, tmdb_id, overview, runtime, "
    "release_date, vote_average, poster_path, rating_count, mean_rating, rating, popularity_rank"
)
_OPTIONAL = ("overview", "runtime", "release_date", "vote_average", "poster_path")
#: tags the movie view shows at most
_TOP_TAGS = 10
#: a tag on fewer movies than this is one viewer's note ("bubba gump shrimp"), not a taste to steer by
_MIN_TAG_MOVIES = 5


def _fold(text: str) -> str:
    """:func:`fold_text` with a fast path for ASCII text (most titles)."""
    return text.casefold() if text.isascii() else fold_text(text)


def _tokens(text: str) -> list[str]:
    """Lower-case, accent-free runs of letters and digits of ``text``."""
    return _TOKEN.findall(_fold(text))


def title_keys(display_title: str, raw_title: str) -> set[str]:
    """Normalised keys a user may type for one title, used for exact/prefix matching.

    ``("Amelie (Le Fabuleux destin d'Amélie Poulain)", "Amelie (Fabuleux ...) (2001)")``
    gives ``"amelie le fabuleux destin d amelie poulain"``, ``"amelie"``,
    ``"le fabuleux destin d amelie poulain"``, ``"fabuleux destin d amelie poulain"``, ...
    """
    keys: set[str] = set()

    def add(text: str, strip_english_article: bool = True) -> None:
        toks = _TOKEN.findall(_fold(text))
        if toks:
            keys.add(" ".join(toks))
            if strip_english_article and len(toks) > 1 and toks[0] in _LEADING_ARTICLES:
                keys.add(" ".join(toks[1:]))

    m = _ALT.match(display_title)
    main, alt = (m.group("main"), m.group("alt")) if m else (display_title, "")
    for text in (display_title, main, *_PARENS.findall(alt)):
        add(text)
    raw = _YEAR_SUFFIX.sub("", raw_title).strip()
    add(raw, strip_english_article=False)  # "matrix the": the raw form typed back
    m = _ALT.match(raw)
    raw_main, raw_alt = (m.group("main"), m.group("alt")) if m else (raw, "")
    for part in (raw_main, *_PARENS.findall(raw_alt)):
        moved = _TRAILING_ARTICLE.match(part.strip())
        if moved:
            add(moved.group("body"), strip_english_article=False)
    return keys


# ---------------------------------------------------------------------- build
def _none_if_missing(values: np.ndarray) -> list[Any]:
    """Object values with NaN/None/NA as None and numpy scalars as Python ones."""
    out: list[Any] = pd.Series(values, dtype=object).where(pd.notna(values), None).tolist()
    return [v.item() if isinstance(v, np.generic) else v for v in out]


def build_catalog(data: Dataset, conn: sqlite3.Connection) -> dict[str, Any]:
    """Replace the catalogue in ``conn`` with the movies and tags of ``data``.

    Migrates the database first if needed. Everything happens in one
    transaction: readers see either the old or the new catalogue. Sessions
    and favourites are not touched. Foreign-key enforcement is off on
    ``conn`` during the load (the rows are consistent by construction) and
    restored afterwards, so do not share ``conn`` with other writers meanwhile.

    Returns
    -------
    dict
        ``movies``, ``tags``, ``movie_tags``, ``title_keys`` row counts and
        ``seconds`` taken.
    """
    start = time.perf_counter()
    migrate(conn)
    info = data.movie_info
    n = data.n_movies
    movie_ids = np.asarray(data.movies.ids, dtype=np.int64)
    display = info["display_title"].astype(str).tolist()
    raw = info["title"].astype(str).tolist()
    years = np.asarray(info["year"], dtype=np.int64)
    counts = np.asarray(data.movie_popularity, dtype=np.int64)
    means = np.asarray(data.movie_mean_rating, dtype=np.float64)
    shrunk = np.asarray(data.movie_rating, dtype=np.float64)
    rank = np.empty(n, np.int64)
    rank[np.argsort(-counts, kind="stable")] = np.arange(1, n + 1)
    optional = {
        col: (_none_if_missing(info[col].to_numpy(object)) if col in info else [None] * n)
        for col in _OPTIONAL
    }
    imdb = np.asarray(info["imdb_id"], dtype=np.int64)
    tmdb = np.asarray(info["tmdb_id"], dtype=np.int64)
    movie_rows = list(
        zip(
            movie_ids.tolist(),
            raw,
            display,
            [_fold(t) for t in display],
            [y if y > 0 else None for y in years.tolist()],
            ["|".join(g) for g in info["genres"]],
            [v if v > 0 else None for v in imdb.tolist()],
            [v if v > 0 else None for v in tmdb.tolist()],
            *(optional[c] for c in _OPTIONAL),
            counts.tolist(),
            [None if math.isnan(m) else round(m, 4) for m in means.tolist()],
            [None if math.isnan(m) else round(m, 4) for m in shrunk.tolist()],
            rank.tolist(),
            strict=True,
        )
    )
    key_rows = [
        (k, mid) for mid, d, r in zip(movie_ids.tolist(), display, raw, strict=True) for k in title_keys(d, r)
    ]

    tag_names = [str(t) for t in data.tags.ids]
    source_text = {
        mask: ",".join(name for name, bit in TAG_SOURCES.items() if mask & bit)
        for mask in np.unique(np.asarray(data.tag_source, dtype=np.int64)).tolist()
    }
    tag_counts = data.movie_tags.getnnz(axis=0) if data.n_tags else np.zeros(0, np.int64)
    tag_rows = list(
        zip(
            tag_names,
            [source_text[m] for m in np.asarray(data.tag_source, dtype=np.int64).tolist()],
            np.asarray(tag_counts, dtype=np.int64).tolist(),
            strict=True,
        )
    )
    coo = data.movie_tags.tocoo()
    tag_arr = np.asarray(tag_names, dtype=object)
    mt_rows = list(
        zip(
            movie_ids[coo.row].tolist(),
            tag_arr[coo.col].tolist() if len(coo.col) else [],
            np.round(coo.data.astype(np.float64), 4).tolist(),
            strict=True,
        )
    )
    meta = {
        "dataset": data.name,
        "fingerprint": data.fingerprint(),
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source_path": data.source_path or "",
        "summary": json.dumps({"movies": n, "tags": data.n_tags, "ratings": data.n_ratings}),
    }
    # The rows are consistent by construction (ids and names from the data set's
    # vocabularies); foreign-key checks would triple the time of the bulk load.
    fk_on = bool(conn.execute("PRAGMA foreign_keys").fetchone()[0])
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        with transaction(conn):
            conn.execute("DELETE FROM movie_tags")
            conn.execute("DELETE FROM movie_title_keys")
            conn.execute("DELETE FROM tags")
            conn.execute("DELETE FROM movies")
            conn.execute("DELETE FROM meta")
            conn.executemany(
                f"INSERT INTO movies ({_INSERT_COLUMNS}) VALUES ({', '.join('?' * len(_INSERT_COLUMNS.split(',')))})",
                movie_rows,
            )
            conn.executemany("INSERT INTO movie_title_keys (key, movie_id) VALUES (?, ?)", key_rows)
            conn.executemany("INSERT INTO tags (name, sources, movie_count) VALUES (?, ?, ?)", tag_rows)
            conn.executemany("INSERT INTO movie_tags (movie_id, tag, weight) VALUES (?, ?, ?)", mt_rows)
            conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", list(meta.items()))
            conn.execute("INSERT INTO movies_fts(movies_fts) VALUES ('rebuild')")
    finally:
        conn.execute(f"PRAGMA foreign_keys = {'ON' if fk_on else 'OFF'}")
    return {
        "movies": len(movie_rows),
        "tags": len(tag_rows),
        "movie_tags": len(mt_rows),
        "title_keys": len(key_rows),
        "seconds": round(time.perf_counter() - start, 3),
    }


# --------------------------------------------------------------------- reads
def _movie_dict(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    d["genres"] = [g for g in (d.get("genres") or "").split("|") if g]
    return d


def search_movies(conn: sqlite3.Connection, query: str, limit: int = 20) -> list[dict[str, Any]]:
    """Type-ahead movie search.

    Ranking: exact title matches (``"matrix"`` = "The Matrix"), then titles
    starting with the query, then other full-text hits (title, accent-folded
    title, overview) by BM25; ties go to the movie with more ratings. The last
    word is matched as a prefix (``"termin"`` finds Terminator). A trailing
    ``"(1995)"`` puts the movie of that year first within each rank.

    Each result holds the movie's columns (``genres`` as a list) plus
    ``match``: ``"exact"``, ``"prefix"`` or ``"text"``. Any input is safe:
    it is reduced to letters and digits before it reaches FTS5; an empty
    query gives ``[]``.
    """
    if not isinstance(query, str) or limit <= 0:
        return []
    year: int | None = None
    m = _YEAR_SUFFIX.search(query)
    if m and _tokens(query[: m.start()]):
        year = int(m.group(1))
        query = query[: m.start()]
    tokens = _tokens(query)
    if not tokens:
        return []
    q_key = " ".join(tokens)
    off_year = "CASE WHEN :year IS NULL OR m.year = :year THEN 0 ELSE 1 END"
    params = {"q": q_key, "hi": q_key + _MAX_KEY, "year": year, "limit": int(limit)}
    # exact and prefix title matches, best first, straight from the key index
    tier: dict[int, int] = {
        movie_id: t
        for movie_id, t in conn.execute(
            "SELECT m.movie_id, min(k.key <> :q) AS tier FROM movie_title_keys k "
            "JOIN movies m ON m.movie_id = k.movie_id WHERE k.key >= :q AND k.key < :hi "
            f"GROUP BY m.movie_id ORDER BY tier, {off_year}, m.rating_count DESC, m.movie_id LIMIT :limit",
            params,
        )
    }
    if len(tier) < limit:  # text hits rank below every title match: only needed to fill up
        match = " ".join(f'"{t}"' for t in tokens[:-1]) + f' "{tokens[-1]}"*'
        for (movie_id,) in conn.execute(
            "SELECT m.movie_id FROM movies_fts f JOIN movies m ON m.movie_id = f.rowid "
            f"WHERE movies_fts MATCH :match ORDER BY {off_year}, "
            "bm25(movies_fts, 10.0, 5.0, 10.0, 1.0), m.rating_count DESC, m.movie_id LIMIT :n",
            {**params, "match": match.strip(), "n": int(limit) + len(tier)},
        ):
            tier.setdefault(movie_id, 2)
    names = ("exact", "prefix", "text")
    ranked = list(tier)[:limit]
    return [{**m, "match": names[tier[m["movie_id"]]]} for m in get_movies(conn, ranked)]


def resolve_title(conn: sqlite3.Connection, text: str, limit: int = 10) -> list[dict[str, Any]]:
    """Candidates for a title the user typed (``"The Matrix"``, ``"Heat (1995)"``, ``"Matrix, The (1999)"``).

    If some titles match exactly (and, when a year is given in parentheses,
    are of that year), only those are returned, most rated first; a single
    result is therefore unambiguous. Otherwise the best search results.
    """
    results = search_movies(conn, text, limit=max(limit, 1))
    m = _YEAR_SUFFIX.search(text)
    year = int(m.group(1)) if m and _tokens(text[: m.start()]) else None
    exact = [r for r in results if r["match"] == "exact" and (year is None or r["year"] == year)]
    return exact[:limit] if exact else results[:limit]


def search_tags(conn: sqlite3.Connection, query: str, limit: int = 20) -> list[dict[str, Any]]:
    """Tags whose name contains ``query`` (case-insensitive), exact then prefix then
    substring matches, each by the number of movies carrying the tag.

    Each result: ``name``, ``sources`` (list of str), ``movie_count``.
    """
    if not isinstance(query, str) or limit <= 0:
        return []
    q = " ".join(query.lower().split())
    if not q:
        return []
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = conn.execute(
        "SELECT name, sources, movie_count, "
        "CASE WHEN name = ? THEN 0 WHEN substr(name, 1, length(?)) = ? THEN 1 ELSE 2 END AS tier "
        "FROM tags WHERE name LIKE ? ESCAPE '\\' "
        "ORDER BY tier, movie_count DESC, name LIMIT ?",
        (q, q, q, f"%{escaped}%", limit),
    ).fetchall()
    return [
        {
            "name": r["name"],
            "sources": [s for s in r["sources"].split(",") if s],
            "movie_count": r["movie_count"],
        }
        for r in rows
    ]


def has_tag(conn: sqlite3.Connection, name: str) -> bool:
    """Whether the catalogue holds the tag ``name`` (compared as sessions store tags: lower
    case, runs of white space as one space)."""
    if not isinstance(name, str):
        return False
    folded = " ".join(name.lower().split())
    return conn.execute("SELECT 1 FROM tags WHERE name = ?", (folded,)).fetchone() is not None


def get_movie(conn: sqlite3.Connection, movie_id: int) -> dict[str, Any] | None:
    """One movie by MovieLens id, with ``tags``: up to 10 tag names worth steering by; None if unknown.

    The tags are curated: most applied first (weight: user applications, genome relevance),
    then the more specific; tags that only repeat a genre (the card names genres) and tags on
    fewer than 5 movies of the catalogue are left out, unless that leaves fewer than 3.
    """
    row = conn.execute(f"SELECT {_MOVIE_COLUMNS} FROM movies WHERE movie_id = ?", (int(movie_id),)).fetchone()
    if row is None:
        return None
    movie = _movie_dict(row)
    rows = conn.execute(
        "SELECT mt.tag, t.movie_count >= ? AND ',' || t.sources || ',' NOT LIKE '%,genre,%' AS curated "
        "FROM movie_tags mt JOIN tags t ON t.name = mt.tag WHERE mt.movie_id = ? "
        "ORDER BY curated DESC, mt.weight DESC, t.movie_count, mt.tag LIMIT ?",
        (_MIN_TAG_MOVIES, int(movie_id), _TOP_TAGS),
    ).fetchall()
    curated = [r[0] for r in rows if r[1]]
    movie["tags"] = curated if len(curated) >= 3 else [r[0] for r in rows]
    return movie


def get_movies(conn: sqlite3.Connection, ids: list[int]) -> list[dict[str, Any]]:
    """Movies by MovieLens id in the order given (without tags); unknown ids are skipped."""
    wanted = [int(i) for i in ids]
    if not wanted:
        return []
    rows = {
        r["movie_id"]: r
        for r in conn.execute(
            f"SELECT {_MOVIE_COLUMNS} FROM movies WHERE movie_id IN (SELECT value FROM json_each(?))",
            (json.dumps(wanted),),
        )
    }
    return [_movie_dict(rows[i]) for i in wanted if i in rows]


def catalog_info(conn: sqlite3.Connection) -> dict[str, Any]:
    """What the database holds: schema version, data set, fingerprint, build time, counts."""
    version = schema_version(conn)
    info: dict[str, Any] = {"schema_version": version, "code_schema_version": SCHEMA_VERSION}
    if version < 1:
        return {**info, "movies": 0, "tags": 0, "movie_tags": 0}
    meta = {r["key"]: r["value"] for r in conn.execute("SELECT key, value FROM meta")}
    info["dataset"] = meta.get("dataset")
    info["fingerprint"] = meta.get("fingerprint")
    info["built_at"] = meta.get("built_at")
    for table in ("movies", "tags", "movie_tags"):
        info[table] = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # fixed names
    return info


def build_catalog_file(data: Dataset, path: Path | str, *, keep: int = 1) -> dict[str, Any]:
    """Build the catalogue of ``data`` in a new file and swap it in at ``path`` atomically.

    The catalogue is written to ``PATH.<time>-<pid>`` beside ``path``; then ``path``
    becomes (or is replaced by) a symbolic link to it with one ``rename``, so a server
    reading the old catalogue never sees a half-built one nor waits for the build, and
    SQLite keeps each file's WAL beside its target. Sessions that an older release kept
    in a catalogue file are first moved to their own file
    (:func:`~movierec.storage.sessions.sessions_path_for`). Of the previous catalogue
    files, the ``keep`` newest stay (a running server may still read one; it serves the new
    one after a reload or a restart); older ones are removed. Returns what
    :func:`build_catalog` returns, plus ``file``: the new catalogue file.
    """
    from movierec.storage.sessions import SessionStore, sessions_path_for

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file() and not path.is_symlink():  # a catalogue of an older release: its sessions move out
        store = SessionStore(sessions_path_for(path))
        try:
            store.adopt(path)
        finally:
            store.close()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    target = path.with_name(f"{path.name}.{stamp}-{os.getpid()}")
    conn = connect(target)
    try:
        migrate(conn)
        counts = build_catalog(data, conn)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # one self-contained file before the swap
    except BaseException:
        conn.close()
        for leftover in (target, Path(f"{target}-wal"), Path(f"{target}-shm")):
            leftover.unlink(missing_ok=True)
        raise
    conn.close()
    link = path.with_name(f".{path.name}.link-{os.getpid()}")
    link.unlink(missing_ok=True)
    link.symlink_to(target.name)
    os.replace(link, path)
    previous = sorted(
        (
            p
            for p in path.parent.glob(f"{path.name}.*-*")
            if p != target and not p.name.endswith(("-wal", "-shm"))
        ),
        key=lambda p: p.name,
    )
    for old in previous[: max(0, len(previous) - keep)]:
        for f in (old, Path(f"{old}-wal"), Path(f"{old}-shm")):
            f.unlink(missing_ok=True)
    return {**counts, "file": str(target)}


def ensure_catalog(data: Dataset, path: Path | str) -> dict[str, Any] | None:
    """(Re)build the catalogue of ``data`` at ``path`` through :func:`build_catalog_file` if it
    is missing or was built from other data (fingerprint differs); returns what the build
    returned, ``None`` if the catalogue was already current."""
    conn = connect(path)
    try:
        migrate(conn)
        info = catalog_info(conn)
    finally:
        conn.close()
    if info.get("movies", 0) and info.get("fingerprint") == data.fingerprint():
        return None
    return build_catalog_file(data, path)


def open_catalog(data: Dataset, path: Path | str) -> sqlite3.Connection:
    """A connection to the catalogue at ``path``, (re)built from ``data`` first if need be
    (:func:`ensure_catalog`: never in place, so a server reading the old one is not held up)."""
    ensure_catalog(data, path)
    return connect(path)


def all_movies_with_tags(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every movie with ``tags`` as ``{"tag", "weight"}`` records (all of them), in two queries.

    What the serving engine needs at start-up to align a model with the catalogue.
    """
    movies = {
        int(r["movie_id"]): _movie_dict(r) for r in conn.execute(f"SELECT {_MOVIE_COLUMNS} FROM movies")
    }
    for m in movies.values():
        m["tags"] = []
    for movie_id, tag, weight in conn.execute("SELECT movie_id, tag, weight FROM movie_tags"):
        if movie_id in movies:
            movies[movie_id]["tags"].append({"tag": tag, "weight": float(weight)})
    return list(movies.values())
