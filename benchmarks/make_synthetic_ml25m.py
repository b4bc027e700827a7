"""Generate a synthetic data set in the ml-25m CSV layout, vectorised with numpy, written by pyarrow.

Shapes follow ml-25m: by default 25,000,000 ratings by 162,541 users of 62,423
movies (movie ids sparse in ``1..209171``), power-law movie popularity and
user activity, half-star ratings, timestamps 1995-2019, ``ratings.csv`` sorted
by (userId, movieId) like the real file; plus ``movies.csv`` (titles with
years, trailing articles, commas, genres), ``tags.csv``, ``links.csv`` and the
tag genome as ml-25m ships it: ``genome-tags.csv`` (1,128 tags) and
``genome-scores.csv`` (a relevance for every genome tag of the most rated 22% of
the movies: 13,816 x 1,128 = 15,584,448 rows at full size).

Usage::

    python benchmarks/make_synthetic_ml25m.py OUT_DIR [--ratings N] [--seed S]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

N_USERS = 162_541
N_MOVIES = 62_423
MAX_MOVIE_ID = 209_171
N_TAGS_PER_RATING = 1_093_360 / 25_000_095  # ml-25m's tag applications per rating
N_GENOME_TAGS = 1_128
GENOME_MOVIE_SHARE = 13_816 / 62_423  # ml-25m's movies with genome scores
GENRES = np.array(
    ["Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
     "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western"],
    dtype=object,
)  # fmt: skip
LEVELS = np.arange(1, 11) / 2.0
LEVEL_P = np.array([1.6, 3.3, 1.8, 6.6, 5.0, 19.5, 12.9, 26.6, 8.1, 14.6])  # ml-25m-like, in %


def _scaled(n_ratings: int) -> tuple[int, int]:
    """Users and movies for ``n_ratings``: full ml-25m sizes at 25M, proportionally fewer below."""
    frac = min(1.0, n_ratings / 25_000_000)
    return max(50, int(N_USERS * frac)), max(50, int(N_MOVIES * frac**0.5))


def _write(table: pa.Table, path: Path) -> None:
    pacsv.write_csv(table, path, write_options=pacsv.WriteOptions(quoting_style="needed"))


def log(msg: str) -> None:
    print(msg, flush=True)


def generate(out: Path, n_ratings: int = 25_000_000, seed: int = 25, *, genome: bool = True) -> Path:
    """Write ``ratings.csv``, ``movies.csv``, ``tags.csv``, ``links.csv`` (and with ``genome``
    ``genome-tags.csv`` and ``genome-scores.csv``) under ``out``; return ``out``.

    Parameters
    ----------
    out:
        Folder to create (its parent must exist or be creatable).
    n_ratings:
        Exact number of distinct (user, movie) ratings to write.
    seed:
        Seed of the ``numpy.random.Generator`` that draws everything.
    """
    rng = np.random.default_rng(seed)
    n_users, n_movies = _scaled(n_ratings)
    out.mkdir(parents=True, exist_ok=True)

    # movies: sparse sorted ids, popularity ~ (rank + 20)^-1.1, ranks shuffled over ids
    movie_ids = np.sort(rng.choice(np.arange(1, MAX_MOVIE_ID + 1), n_movies, replace=False)).astype(np.int32)
    pop = (np.arange(n_movies) + 20.0) ** -1.1
    pop = pop[rng.permutation(n_movies)]
    pop /= pop.sum()
    # user activity: at least 20 ratings, heavy tail (Pareto), shares sum to 1
    # capped at 15% of the movies (ml-25m's most active user rated ~32k of 59k rated movies), so the
    # de-duplicating draw below converges in a few rounds
    act = 20 + rng.pareto(1.3, n_users) * 20
    for _ in range(5):
        act = np.minimum(act / act.sum() * n_ratings, 0.15 * n_movies)
    act /= act.sum()

    # (user, movie) pairs without repeats: draw, dedupe, then top up with fresh pairs merged into the
    # sorted keys (searchsorted + insert, no re-sort of the whole array), trim to exactly n_ratings
    def draw(k: int) -> np.ndarray:
        u = rng.choice(n_users, size=k, p=act).astype(np.int64)
        return np.unique(u * n_movies + rng.choice(n_movies, size=k, p=pop))

    keys = draw(int(n_ratings * 1.15) + 1000)
    log(f"  {len(keys):,} distinct pairs drawn")
    while len(keys) < n_ratings:
        new = draw(int((n_ratings - len(keys)) * 1.5) + 1000)
        pos = np.searchsorted(keys, new)
        fresh = new[keys[np.minimum(pos, len(keys) - 1)] != new]
        keys = np.insert(keys, np.searchsorted(keys, fresh), fresh)
        log(f"  topped up to {len(keys):,}")
    if len(keys) > n_ratings:
        keys = keys[np.sort(rng.choice(len(keys), n_ratings, replace=False))]
    user = (keys // n_movies).astype(np.int32) + 1
    movie = movie_ids[keys % n_movies]
    del keys
    rating = LEVELS[rng.choice(len(LEVELS), n_ratings, p=LEVEL_P / LEVEL_P.sum())]
    ts = rng.integers(789_652_009, 1_574_327_703, n_ratings, dtype=np.int64)
    _write(
        pa.table(
            {
                "userId": user,
                "movieId": movie,
                "rating": rating.astype(np.float32),  # written "4" / "4.5" (the real file has "4.0")
                "timestamp": ts,
            }
        ),
        out / "ratings.csv",
    )

    # movies.csv: a few per-movie strings (62k, not per rating)
    year = rng.integers(1900, 2020, n_movies)
    style = rng.integers(0, 10, n_movies)
    names = np.char.add("Movie ", movie_ids.astype(str)).astype(object)
    names = np.where(style == 0, names + ", The", names)
    names = np.where(style == 1, names + ", Part 2", names)  # a comma that needs quoting
    names = np.where(style == 2, names + " (Alternate Title)", names)
    titles = np.where(style == 3, names, names + " (" + year.astype(str).astype(object) + ")")
    n_genres = rng.integers(0, 4, n_movies)
    gmat = rng.random((n_movies, len(GENRES))).argsort(axis=1)
    genres = np.array(
        ["|".join(GENRES[gmat[i, :g]]) if g else "(no genres listed)" for i, g in enumerate(n_genres)],
        dtype=object,
    )  # per movie
    _write(pa.table({"movieId": movie_ids, "title": titles, "genres": genres}), out / "movies.csv")

    # tags.csv: applications by a few users, mixed case, a small vocabulary
    n_tag_rows = max(10, int(n_ratings * N_TAGS_PER_RATING))
    vocab = np.char.add("tag ", np.arange(20_000).astype(str)).astype(object)
    tag_pick = np.minimum(rng.zipf(1.3, n_tag_rows) - 1, len(vocab) - 1)
    tag_text = np.where(
        rng.random(n_tag_rows) < 0.2, np.char.upper(vocab[tag_pick].astype(str)), vocab[tag_pick]
    )
    _write(
        pa.table(
            {
                "userId": rng.integers(1, max(2, n_users // 10), n_tag_rows, dtype=np.int32),
                "movieId": movie_ids[rng.choice(n_movies, n_tag_rows, p=pop)],
                "tag": tag_text.astype(object),
                "timestamp": rng.integers(1_135_429_210, 1_574_316_696, n_tag_rows, dtype=np.int64),
            }
        ),
        out / "tags.csv",
    )
    imdb = np.char.zfill(rng.integers(1, 9_999_999, n_movies).astype(str), 7).astype(object)
    _write(
        pa.table({"movieId": movie_ids, "imdbId": imdb, "tmdbId": rng.integers(1, 600_000, n_movies)}),
        out / "links.csv",
    )
    if genome:
        # the genome: every genome tag's relevance for the most rated movies, sorted by (movieId,
        # tagId) like the real file; relevance mostly low, a few percent above 0.8
        words = np.array(["dark", "funny", "space", "heist", "romance", "noir", "robots", "war",
                          "family", "twist", "music", "sports", "magic", "crime", "satire", "epic"],
                         dtype=object)  # fmt: skip
        names = (
            words[np.arange(N_GENOME_TAGS) % len(words)]
            + " "
            + np.arange(N_GENOME_TAGS).astype(str).astype(object)
        )
        _write(pa.table({"tagId": np.arange(1, N_GENOME_TAGS + 1), "tag": names}), out / "genome-tags.csv")
        n_scored = max(1, round(n_movies * GENOME_MOVIE_SHARE))
        scored = np.sort(movie_ids[np.argsort(-pop, kind="stable")[:n_scored]])
        rows = n_scored * N_GENOME_TAGS
        relevance = np.round(rng.beta(0.6, 5.0, rows), 5)
        _write(
            pa.table(
                {
                    "movieId": np.repeat(scored, N_GENOME_TAGS),
                    "tagId": np.tile(np.arange(1, N_GENOME_TAGS + 1, dtype=np.int32), n_scored),
                    "relevance": relevance,
                }
            ),
            out / "genome-scores.csv",
        )
    (out / ".complete").write_text(f"{n_ratings} {seed} {'genome' if genome else 'no-genome'}\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--ratings", type=int, default=25_000_000)
    parser.add_argument("--seed", type=int, default=25)
    parser.add_argument("--no-genome", action="store_true", help="skip genome-tags.csv and genome-scores.csv")
    args = parser.parse_args()
    start = time.perf_counter()
    generate(args.out, args.ratings, args.seed, genome=not args.no_genome)
    print(f"wrote {args.out} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
