"""Synthetic data sets with known answers, for tests, demos and benchmarks.

* :func:`low_rank_ratings`: ratings from a planted low-rank matrix (rating
  models must recover it far better than the global mean).
* :func:`checkerboard`: two user groups, each liking one half of the movies
  (top-N models must recommend within the user's own half).
* :func:`markov_sequences`: each user walks a ring of movies (``i -> i+1``
  with high probability); each movie carries tags (sequence models must
  predict the next movie and its tags).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from movierec.data.dataset import Dataset
from movierec.data.ratings import FIVE_STARS, HALF_STARS, RatingScale

_GENRES = ("Action", "Comedy", "Drama", "Sci-Fi", "Romance", "Horror", "Animation", "Documentary")


def synthetic_movies(n_movies: int, rng: np.random.Generator, *, first_year: int = 1950) -> pd.DataFrame:
    """A ``movies.csv``-shaped frame: ids ``1..n_movies``, titles with years, 1-3 genres each."""
    ids = np.arange(1, n_movies + 1)
    years = first_year + rng.integers(0, 75, n_movies)
    n_genres = rng.integers(1, 4, n_movies)
    picks = rng.random((n_movies, len(_GENRES))).argsort(axis=1)
    names = np.asarray(_GENRES, dtype=object)
    genres = ["|".join(names[picks[i, : n_genres[i]]]) for i in range(n_movies)]  # per movie
    titles = [f"Movie {i} ({y})" for i, y in zip(ids, years, strict=True)]
    return pd.DataFrame({"movieId": ids, "title": titles, "genres": genres})


def _round_to_scale(values: np.ndarray, scale: RatingScale) -> np.ndarray:
    stepped = scale.low + np.round((values - scale.low) / scale.step) * scale.step
    return np.clip(stepped, scale.low, scale.high).astype(np.float32)


def low_rank_ratings(
    n_users: int,
    n_movies: int,
    rank: int,
    density: float,
    rng: np.random.Generator,
    *,
    noise: float = 0.1,
    scale: RatingScale = HALF_STARS,
) -> tuple[Dataset, np.ndarray]:
    """Ratings sampled from ``mu + U V^T + noise``, rounded to ``scale``.

    Returns the data set and the true (unrounded, noise-free) rating matrix of
    shape ``(n_users, n_movies)`` indexed by user / movie *index*.
    """
    mid = (scale.low + scale.high) / 2
    u = rng.normal(0, 1, (n_users, rank)) / np.sqrt(rank)
    v = rng.normal(0, 1, (n_movies, rank))
    user_bias = rng.normal(0, 0.3, n_users)
    movie_bias = rng.normal(0, 0.3, n_movies)
    truth = mid + user_bias[:, None] + movie_bias[None, :] + u @ v.T
    mask = rng.random((n_users, n_movies)) < density
    mask[np.arange(n_users), rng.integers(0, n_movies, n_users)] = True  # every user rates something
    users, movies = np.nonzero(mask)
    values = _round_to_scale(truth[users, movies] + rng.normal(0, noise, users.size), scale)
    ratings = pd.DataFrame(
        {
            "userId": users + 1,
            "movieId": movies + 1,
            "rating": values,
            "timestamp": rng.integers(1_000_000_000, 1_500_000_000, users.size),
        }
    )
    data = Dataset.build("synthetic-low-rank", ratings, synthetic_movies(n_movies, rng), scale=scale)
    return data, np.clip(truth, scale.low, scale.high)


def checkerboard(
    n_users: int, n_movies: int, density: float, rng: np.random.Generator, n_groups: int = 2
) -> Dataset:
    """Users with even index like (rate 4-5) even movies, odd users odd movies; nothing across.

    ``n_groups`` > 2: user ``u`` rates movies ``m`` with ``m % n_groups == u % n_groups``."""
    users = np.repeat(np.arange(n_users), n_movies)
    movies = np.tile(np.arange(n_movies), n_users)
    keep = (users % n_groups == movies % n_groups) & (rng.random(users.size) < density)
    users, movies = users[keep], movies[keep]
    ratings = pd.DataFrame(
        {
            "userId": users + 1,
            "movieId": movies + 1,
            "rating": rng.choice([4.0, 5.0], users.size),
            "timestamp": rng.integers(1_000_000_000, 1_500_000_000, users.size),
        }
    )
    return Dataset.build("synthetic-checkerboard", ratings, synthetic_movies(n_movies, rng), scale=FIVE_STARS)


def markov_sequences(
    n_users: int,
    n_movies: int,
    length: int,
    rng: np.random.Generator,
    *,
    n_tags: int = 10,
    p_next: float = 0.9,
    dislike_rate: float = 0.0,
) -> Dataset:
    """Each user starts at a random movie and moves to ``(i + 1) % n_movies`` with
    probability ``p_next``, else to a random movie; ``length`` steps, ratings 4-5.

    Movie ``i`` carries tag ``"tag{i % n_tags}"`` (applied by user 1), so the next
    movie's tag predicts it. With ``dislike_rate`` some steps are random movies
    rated 1 (dislikes that break no chain).
    """
    starts = rng.integers(0, n_movies, n_users)
    jumps = rng.random((n_users, length)) >= p_next
    randoms = rng.integers(0, n_movies, (n_users, length))
    seq = np.empty((n_users, length), np.int64)
    seq[:, 0] = starts
    for t in range(1, length):  # over positions, vectorised over users
        seq[:, t] = np.where(jumps[:, t], randoms[:, t], (seq[:, t - 1] + 1) % n_movies)
    rating = rng.choice([4.0, 5.0], (n_users, length))
    if dislike_rate > 0:
        dis = rng.random((n_users, length)) < dislike_rate
        dis[:, 0] = False
        rating = np.where(dis, 1.0, rating)
    users = np.repeat(np.arange(n_users), length)
    times = 1_000_000_000 + np.tile(np.arange(length), n_users) * 60 + users
    ratings = pd.DataFrame(
        {"userId": users + 1, "movieId": seq.ravel() + 1, "rating": rating.ravel(), "timestamp": times}
    )
    ratings = ratings.drop_duplicates(["userId", "movieId"], keep="first")
    movies = synthetic_movies(n_movies, rng)
    tags = pd.DataFrame(
        {
            "userId": 1,
            "movieId": np.arange(1, n_movies + 1),
            "tag": [f"tag{i % n_tags}" for i in range(n_movies)],
            "timestamp": 1_000_000_000,
        }
    )
    return Dataset.build("synthetic-markov", ratings, movies, scale=FIVE_STARS, tags=tags)
