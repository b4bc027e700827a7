"""The explicit rating scale, the shrunk mean rating, and the rating rows of a data set: checked
against the scale and the movie list, sorted by (user, timestamp, movie), duplicates dropped."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from movierec.data.validation import DataError, numeric
from movierec.data.vocab import Vocabulary

# the messages come from Dataset.build and keep its logger
log = logging.getLogger("movierec.data.dataset")


@dataclass(frozen=True)
class RatingScale:
    """The explicit rating scale: ``low`` to ``high`` in steps of ``step``."""

    low: float
    high: float
    step: float

    @property
    def levels(self) -> np.ndarray:
        """All allowed rating values, ascending, shape ``(n_levels,)`` float32."""
        n = round((self.high - self.low) / self.step) + 1
        return (self.low + self.step * np.arange(n)).astype(np.float32)

    def to_dict(self) -> dict[str, float]:
        return {"low": self.low, "high": self.high, "step": self.step}


HALF_STARS = RatingScale(0.5, 5.0, 0.5)
FIVE_STARS = RatingScale(1.0, 5.0, 1.0)

#: Weight, in ratings, of the prior in :func:`shrunk_mean` (the data set's mean rating).
RATING_PRIOR_WEIGHT = 10.0


def shrunk_mean(
    sums: np.ndarray, counts: np.ndarray, prior: float, weight: float = RATING_PRIOR_WEIGHT
) -> np.ndarray:
    """Bayesian (shrunk) mean rating: ``(sum + weight * prior) / (count + weight)``, NaN where
    ``count`` is 0.

    A movie's mean with few ratings says little; this pulls it toward ``prior`` (the mean
    of all ratings) as if ``weight`` more ratings of ``prior`` had been given, so two 5-star
    ratings give 3.75 on a 3.5 prior, while 300 ratings at 4.4 stay at 4.4.
    """
    counts = np.asarray(counts, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (np.asarray(sums, dtype=np.float64) + weight * prior) / (counts + weight)
    return np.where(counts > 0, out, np.nan)


def rating_rows(
    ratings: pd.DataFrame, scale: RatingScale | None, movie_vocab: Vocabulary, repairs: dict[str, int]
) -> tuple[Vocabulary, RatingScale, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The rating rows of :meth:`~movierec.data.dataset.Dataset.build`, checked and in order.

    Returns the user vocabulary, the scale (inferred when ``scale`` is ``None``) and the user
    and movie indices, ratings and timestamps, sorted by (user, timestamp, movie); duplicate
    (user, movie) ratings keep the latest, and their count goes into ``repairs``.
    """
    n_movies = len(movie_vocab)
    r_user_ids = numeric(ratings, "userId", np.int64, "ratings")
    r_movie_ids = numeric(ratings, "movieId", np.int64, "ratings")
    r_value = numeric(ratings, "rating", np.float32, "ratings")
    r_time = (
        numeric(ratings, "timestamp", np.int64, "ratings")
        if "timestamp" in ratings
        else np.zeros(len(ratings), np.int64)
    )
    if scale is None:
        scale = HALF_STARS if (len(r_value) and np.any(r_value % 1 != 0)) else FIVE_STARS
    off = (
        (r_value < scale.low)
        | (r_value > scale.high)
        | (np.abs((r_value - scale.low) / scale.step % 1) > 1e-6)
    )
    if off.any():
        row = int(np.flatnonzero(off)[0])
        raise DataError(
            f"ratings: {int(off.sum())} rating(s) off the {scale.low:g}-{scale.high:g} scale "
            f"(step {scale.step:g}); first at data row {row + 1}: {r_value[row]:g}"
        )
    r_movie = movie_vocab.index(r_movie_ids, missing="mask")
    if (r_movie < 0).any():
        unknown = np.unique(r_movie_ids[r_movie < 0])
        raise DataError(
            f"ratings: {int((r_movie < 0).sum())} rating(s) of {len(unknown)} movie id(s) "
            f"missing from the movie list, e.g. {unknown[:5].tolist()}"
        )
    user_vocab = Vocabulary.from_values(r_user_ids, "user")
    r_user = user_vocab.index(r_user_ids)
    # sort by (user, time, movie); duplicates (user, movie) keep the latest
    pair = r_user * n_movies + r_movie
    # a file in (user, movie) order without repeats (every MovieLens release) skips the duplicate search
    maybe_dups = not bool(np.all(pair[1:] > pair[:-1]))
    del pair
    order = rating_order(r_user, r_time, r_movie, len(user_vocab))
    r_user, r_movie, r_value, r_time = r_user[order], r_movie[order], r_value[order], r_time[order]
    del order
    keep_idx = np.arange(len(r_user))
    if maybe_dups:
        key = r_user.astype(np.int64) * n_movies + r_movie
        # keep the last occurrence in time order of every key
        rev_unique = np.unique(key[::-1], return_index=True)[1]
        keep_idx = np.sort(len(key) - 1 - rev_unique)
    if len(keep_idx) < len(r_user):
        repairs["duplicate_ratings_dropped"] = len(r_user) - len(keep_idx)
        log.warning(
            "ratings: dropped %d duplicate (user, movie) rating(s), kept the latest",
            repairs["duplicate_ratings_dropped"],
        )
        r_user, r_movie, r_value, r_time = (a[keep_idx] for a in (r_user, r_movie, r_value, r_time))

    return user_vocab, scale, r_user, r_movie, r_value, r_time


def rating_order(user: np.ndarray, time: np.ndarray, movie: np.ndarray, n_users: int) -> np.ndarray:
    """Row order sorting ratings by (user, time, movie); all inputs shape ``(n,)`` int64 (indices, seconds).

    Fast path: one stable argsort of a packed ``(user, time)`` int64 key. Rows tied on
    (user, time) then keep file order, which is movie order in MovieLens files (sorted by
    user, movie); that is checked, and ``np.lexsort`` (3 sorts, several times slower at
    25M rows) is the fallback when it does not hold or the key does not fit in 62 bits.
    """
    if len(user) == 0:
        return np.zeros(0, np.int64)
    t0 = int(time.min())
    t_bits = (int(time.max()) - t0).bit_length()
    if int(n_users).bit_length() + t_bits <= 62:
        key = (user.astype(np.int64) << t_bits) | (time - t0)
        order = np.argsort(key, kind="stable")
        key = key[order]
        moved = movie[order]
        if not np.any((key[1:] == key[:-1]) & (moved[1:] < moved[:-1])):
            return order
    return np.lexsort((movie, time, user))
