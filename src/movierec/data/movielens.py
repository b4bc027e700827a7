"""Parsers for every MovieLens layout, vectorised (pandas C / pyarrow readers).

Layouts, detected from the files in a folder:

* ``csv``: ml-latest(-small), ml-20m, ml-25m, ml-32m: ``ratings.csv``,
  ``movies.csv``, ``tags.csv``, ``links.csv``, ``genome-scores.csv``, ``genome-tags.csv``.
* ``dat``: ml-1m, ml-10m: ``::``-separated ``ratings.dat``, ``movies.dat``,
  ``users.dat``, ``tags.dat``.
* ``100k``: ``u.data``, ``u.item`` (Latin-1), ``u.user``, ``u.genre`` and the
  canonical splits ``u1..u5.base/.test``, ``ua``/``ub``.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from movierec.data.dataset import Dataset
from movierec.data.ratings import FIVE_STARS, HALF_STARS, RatingScale
from movierec.data.validation import DataError

log = logging.getLogger(__name__)

#: ml-100k genre flag order (as in ``u.genre``), used when ``u.genre`` is absent.
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
CANONICAL_SPLITS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")


def detect_layout(path: Path) -> str:
    """``"csv"``, ``"dat"`` or ``"100k"`` for a folder holding an unpacked data set.

    Raises :class:`DataError` naming what was looked for when none fits.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path} is not a directory holding a MovieLens data set")
    if (path / "ratings.csv").exists() and (path / "movies.csv").exists():
        return "csv"
    if (path / "ratings.dat").exists() and (path / "movies.dat").exists():
        return "dat"
    if (path / "u.data").exists() and (path / "u.item").exists():
        return "100k"
    # a zip unpacks to one sub-folder: look one level down
    subs = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if len(subs) == 1:
        return detect_layout(subs[0])
    raise DataError(
        f"{path}: no MovieLens files found (expected ratings.csv + movies.csv, ratings.dat + movies.dat, "
        "or u.data + u.item)"
    )


def data_root(path: Path) -> Path:
    """The folder that directly holds the data files (a zip's single sub-folder if needed)."""
    path = Path(path)
    if any((path / f).exists() for f in ("ratings.csv", "ratings.dat", "u.data")):
        return path
    subs = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if len(subs) == 1:
        return data_root(subs[0])
    return path


def _read_csv(path: Path, what: str, **kwargs: object) -> pd.DataFrame:
    try:
        return pd.read_csv(path, **kwargs)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: missing ({what}); is the data set complete?") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: malformed {what}: {exc}") from exc


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _read_dat(path: Path, names: list[str], what: str, dtypes: object = None) -> pd.DataFrame:
    """A ``::``-separated file, read by the C parser after mapping ``::`` to a tab."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise DataError(f"{path}: missing ({what}); is the data set complete?") from exc
    text = _decode(raw).replace("\t", " ").replace("::", "\t")
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep="\t",
            names=names,
            header=None,
            quoting=3,
            dtype=dtypes,
            engine="c",
            keep_default_na=False,  # a tag or title "NA" / "null" is text, as in the csv layout
        )
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"{path}: malformed {what}: {exc}") from exc
    return frame


def _read_ratings_csv(path: Path) -> pd.DataFrame:
    """``ratings.csv`` via pyarrow (fast, multi-threaded), falling back to the C parser for a clear error.

    pyarrow is called directly with strict column types (a "1.5" user id fails the read instead of
    being truncated, as pandas' pyarrow engine would with ``dtype=int64``) and its table is turned
    into numpy columns at once: peak memory at 25M rows is about half that of ``pd.read_csv``.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    types = {"userId": pa.int64(), "movieId": pa.int64(), "rating": pa.float32(), "timestamp": pa.int64()}
    try:
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types))
        frame = pd.DataFrame({c: table.column(c).to_numpy() for c in table.column_names}, copy=False)
        del table
    except FileNotFoundError as exc:
        raise DataError(f"{path}: missing (ratings); is the data set complete?") from exc
    except Exception:
        # pyarrow's errors are terse; the C parser + validation name the bad row
        frame = _read_csv(path, "ratings", dtype=str)
    missing = {"userId", "movieId", "rating"} - set(frame.columns)
    if missing:
        raise DataError(f"{path}: malformed ratings: missing column(s) {sorted(missing)}")
    return frame


def load_csv_layout(
    path: Path, *, name: str, metadata: pd.DataFrame | None = None, genome_threshold: float = 0.8
) -> Dataset:
    """ml-latest(-small), ml-20m, ml-25m, ml-32m."""
    root = data_root(path)
    ratings = _read_ratings_csv(root / "ratings.csv")
    movies = _read_csv(
        root / "movies.csv", "movies", dtype={"title": str, "genres": str}, keep_default_na=False
    )
    tags = (
        _read_csv(root / "tags.csv", "tags", dtype={"tag": str}, keep_default_na=False)
        if (root / "tags.csv").exists()
        else None
    )
    links = _read_csv(root / "links.csv", "links", dtype=str) if (root / "links.csv").exists() else None
    genome_scores = genome_tags = None
    if (root / "genome-scores.csv").exists() and (root / "genome-tags.csv").exists():
        genome_scores = pd.read_csv(root / "genome-scores.csv", engine="pyarrow")
        genome_tags = _read_csv(root / "genome-tags.csv", "genome tags", dtype={"tag": str})
    return Dataset.build(
        name,
        ratings,
        movies,
        scale=HALF_STARS,
        tags=tags,
        links=links,
        genome_scores=genome_scores,
        genome_tags=genome_tags,
        genome_threshold=genome_threshold,
        metadata=_join_metadata(metadata, links),
        source_path=str(root),
    )


def load_dat_layout(path: Path, *, name: str, metadata: pd.DataFrame | None = None) -> Dataset:
    """ml-1m (1-5 stars, ``users.dat``) and ml-10m (half stars, ``tags.dat``)."""
    root = data_root(path)
    ratings = _read_dat(
        root / "ratings.dat", ["userId", "movieId", "rating", "timestamp"], "ratings", dtypes=str
    )
    movies = _read_dat(
        root / "movies.dat", ["movieId", "title", "genres"], "movies", dtypes={"title": str, "genres": str}
    )
    tags = (
        _read_dat(root / "tags.dat", ["userId", "movieId", "tag", "timestamp"], "tags", dtypes={"tag": str})
        if (root / "tags.dat").exists()
        else None
    )
    users = (
        _read_dat(
            root / "users.dat", ["userId", "gender", "age", "occupation", "zip"], "users", dtypes={"zip": str}
        )
        if (root / "users.dat").exists()
        else None
    )
    values = pd.to_numeric(ratings["rating"], errors="coerce")
    scale: RatingScale = HALF_STARS if bool((values % 1 != 0).any()) or tags is not None else FIVE_STARS
    return Dataset.build(
        name,
        ratings,
        movies,
        scale=scale,
        tags=tags,
        users=users,
        metadata=_join_metadata(metadata, None),
        source_path=str(root),
    )


def _read_u_item(path: Path, genre_names: tuple[str, ...]) -> pd.DataFrame:
    cols = [
        "movieId",
        "title",
        "release_date",
        "video_date",
        "imdb_url",
        *[f"g{i}" for i in range(len(genre_names))],
    ]
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise DataError(f"{path}: missing (movies); is the data set complete?") from exc
    try:
        items = pd.read_csv(
            io.StringIO(raw.decode("latin-1")),
            sep="|",
            names=cols,
            header=None,
            quoting=3,
            dtype=str,
            keep_default_na=False,
        )
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"{path}: malformed movies (u.item): {exc}") from exc
    flags = items[[f"g{i}" for i in range(len(genre_names))]]
    bad = ~flags.isin(["0", "1"]).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{path}: genre flags must be 0 or 1; first bad row {row + 1}")
    flag_arr = flags.to_numpy() == "1"
    names = np.asarray(genre_names, dtype=object)
    genres = ["|".join(names[row]) for row in flag_arr]  # per movie (1,682), not per rating
    # u.item titles carry the year already ("Toy Story (1995)"); fall back to the release date
    year = pd.to_datetime(items["release_date"], format="%d-%b-%Y", errors="coerce").dt.year
    title = items["title"].where(
        items["title"].str.contains(r"\(\d{4}\)\s*$", regex=True) | year.isna(),
        items["title"] + " (" + year.astype("Int64").astype(str) + ")",
    )
    return pd.DataFrame(
        {"movieId": items["movieId"], "title": title, "genres": genres, "release_date": items["release_date"]}
    )


def load_100k_layout(path: Path, *, name: str, metadata: pd.DataFrame | None = None) -> Dataset:
    """ml-100k: ``u.data`` (tab-separated), ``u.item`` (Latin-1, pipes), ``u.user``, ``u.genre``."""
    root = data_root(path)
    ratings = _read_csv(
        root / "u.data",
        "ratings (u.data)",
        sep="\t",
        names=["userId", "movieId", "rating", "timestamp"],
        header=None,
        dtype=str,
    )
    genre_names: tuple[str, ...] = ML100K_GENRES
    if (root / "u.genre").exists():
        g = _read_csv(
            root / "u.genre",
            "genres (u.genre)",
            sep="|",
            names=["name", "idx"],
            header=None,
            encoding="latin-1",
        ).dropna()
        genre_names = tuple(g.sort_values("idx")["name"].astype(str))
    movies = _read_u_item(root / "u.item", genre_names)
    users = (
        _read_csv(
            root / "u.user",
            "users (u.user)",
            sep="|",
            names=["userId", "age", "gender", "occupation", "zip"],
            header=None,
            dtype={"zip": str},
        )
        if (root / "u.user").exists()
        else None
    )
    movies = movies.assign(genres=movies["genres"].str.replace("unknown", "", regex=False).str.strip("|"))
    return Dataset.build(
        name,
        ratings,
        movies,
        scale=FIVE_STARS,
        users=users,
        metadata=_join_metadata(metadata, None),
        source_path=str(root),
    )


def _join_metadata(metadata: pd.DataFrame | None, links: pd.DataFrame | None) -> pd.DataFrame | None:
    """Metadata keyed by ``tmdbId`` joined onto ``movieId`` through ``links``."""
    if metadata is None:
        return None
    if "movieId" in metadata:
        return metadata
    if links is None or "tmdbId" not in links:
        return None
    ln = pd.DataFrame(
        {
            "movieId": pd.to_numeric(links["movieId"], errors="coerce"),
            "tmdbId": pd.to_numeric(links["tmdbId"], errors="coerce"),
        }
    ).dropna()
    ln = ln.astype(np.int64)
    return ln.merge(metadata, on="tmdbId", how="inner")


def load_folder(path: Path, *, name: str | None = None, metadata: pd.DataFrame | None = None) -> Dataset:
    """Load an unpacked data set of any layout from ``path``."""
    path = Path(path)
    layout = detect_layout(path)
    name = name or data_root(path).name
    if layout == "csv":
        return load_csv_layout(path, name=name, metadata=metadata)
    if layout == "dat":
        return load_dat_layout(path, name=name, metadata=metadata)
    return load_100k_layout(path, name=name, metadata=metadata)


def canonical_split(data: Dataset, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Train / test row masks of ml-100k's canonical split ``split`` (``u1``..``u5``, ``ua``, ``ub``).

    Rows of ``split.base`` and ``split.test`` are matched to the data set's
    rating rows by (user, movie). Raises :class:`DataError` if the files are absent.
    """
    if split not in CANONICAL_SPLITS:
        raise DataError(f"unknown canonical split {split!r}; choose one of {', '.join(CANONICAL_SPLITS)}")
    if data.source_path is None or not (Path(data.source_path) / f"{split}.base").exists():
        raise DataError(
            f"data set {data.name!r} has no canonical split {split!r} (ml-100k's {split}.base/.test)"
        )
    root = Path(data.source_path)
    key = data.user.astype(np.int64) * data.n_movies + data.movie
    masks = []
    for part in ("base", "test"):
        f = _read_csv(
            root / f"{split}.{part}",
            f"split {split}.{part}",
            sep="\t",
            names=["u", "m", "r", "t"],
            header=None,
        )
        u = data.users.index(f["u"].to_numpy(np.int64), missing="mask")
        m = data.movies.index(f["m"].to_numpy(np.int64), missing="mask")
        ok = (u >= 0) & (m >= 0)
        masks.append(np.isin(key, u[ok] * data.n_movies + m[ok]))
    return masks[0], masks[1]
