"""The one immutable data set object every model, split and metric works on.

A :class:`Dataset` holds vocabularies (users, movies, tags), the explicit
ratings as flat arrays of *indices* sorted by (user, timestamp, movie), the
per-movie table (titles, years, genres, external ids, optional metadata) and a
sparse movie x tag matrix. It is validated once, here, when it is built; a
split is a new ``Dataset`` over the same vocabularies.

The rating scale and the rating rows are in :mod:`movierec.data.ratings`, the tags in
:mod:`movierec.data.tags`, :class:`~movierec.data.validation.DataError` and the column
checks in :mod:`movierec.data.validation`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from movierec.data.ratings import RatingScale, rating_order, rating_rows, shrunk_mean
from movierec.data.tags import TAG_SOURCES, minus_applications, tag_matrix
from movierec.data.titles import split_titles
from movierec.data.validation import DataError, numeric
from movierec.data.vocab import Vocabulary


@dataclass(frozen=True, eq=False)
class Dataset:
    """Ratings, movies and tags over contiguous indices. Build with :meth:`build`.

    Attributes
    ----------
    user, movie:
        Rating rows as user / movie *indices*, shape ``(n_ratings,)`` int32,
        sorted by (user, timestamp, movie).
    rating:
        Explicit ratings on :attr:`scale`, shape ``(n_ratings,)`` float32.
    timestamp:
        Seconds since the epoch, shape ``(n_ratings,)`` int64.
    movie_info:
        One row per movie index (``RangeIndex``): ``movie_id``, ``title`` (raw),
        ``display_title``, ``year`` (0 if unknown), ``genres`` (tuple of str),
        ``imdb_id``, ``tmdb_id`` (0 if unknown) and, where metadata gave them,
        ``overview``, ``runtime``, ``release_date``, ``vote_average``, ``poster_path``.
    movie_tags:
        CSR matrix ``(n_movies, n_tags)`` float32: how strongly each tag applies
        (user-tag application counts + 1 per genre / TMDB keyword + genome relevance).
    tag_source:
        Bit mask per tag (see :data:`~movierec.data.tags.TAG_SOURCES`), shape ``(n_tags,)`` int8.
    tag_events:
        User tag applications: ``user_id`` (external), ``movie`` (index),
        ``tag`` (index), ``timestamp``.
    repairs:
        Counted repairs made while building (e.g. duplicate ratings dropped).
    """

    name: str
    users: Vocabulary
    movies: Vocabulary
    tags: Vocabulary
    user: np.ndarray
    movie: np.ndarray
    rating: np.ndarray
    timestamp: np.ndarray
    scale: RatingScale
    movie_info: pd.DataFrame
    movie_tags: sp.csr_matrix
    tag_source: np.ndarray
    tag_events: pd.DataFrame
    user_info: pd.DataFrame | None = None
    source_path: str | None = None
    repairs: Mapping[str, int] = field(default_factory=dict)

    # ------------------------------------------------------------------ build
    @classmethod
    def build(
        cls,
        name: str,
        ratings: pd.DataFrame,
        movies: pd.DataFrame,
        *,
        scale: RatingScale | None = None,
        tags: pd.DataFrame | None = None,
        links: pd.DataFrame | None = None,
        genome_scores: pd.DataFrame | None = None,
        genome_tags: pd.DataFrame | None = None,
        genome_threshold: float = 0.8,
        metadata: pd.DataFrame | None = None,
        users: pd.DataFrame | None = None,
        source_path: str | None = None,
    ) -> Dataset:
        """Validate raw MovieLens-shaped tables and build the data set.

        Parameters
        ----------
        ratings:
            Columns ``userId, movieId, rating, timestamp`` (external ids).
        movies:
            Columns ``movieId, title`` and ``genres`` (pipe-separated string
            or a list of genre names per row).
        scale:
            Rating scale; inferred when omitted (half stars if any rating is
            fractional, else 1-5).
        tags:
            Optional ``userId, movieId, tag, timestamp`` user tag applications.
        links:
            Optional ``movieId, imdbId, tmdbId``.
        genome_scores, genome_tags:
            Optional ``movieId, tagId, relevance`` and ``tagId, tag``; tags with
            relevance at or above ``genome_threshold`` join the movie's tags.
        metadata:
            Optional per-movie metadata keyed by ``movieId`` (see
            :mod:`movierec.data.metadata`): ``keywords`` (list of str), ``overview``, ...
        users:
            Optional demographics keyed by ``userId``.

        Raises
        ------
        DataError
            Non-numeric fields, ratings off the scale, ratings of unknown
            movies, duplicate movie ids.
        """
        repairs: dict[str, int] = {}

        # movies -------------------------------------------------------------
        movie_ids = numeric(movies, "movieId", np.int64, "movies")
        if pd.Index(movie_ids).has_duplicates:
            dup = pd.Index(movie_ids)[pd.Index(movie_ids).duplicated()][:5].tolist()
            raise DataError(f"movies: duplicate movieId(s) {dup}")
        order = np.argsort(movie_ids, kind="stable")
        movies = movies.iloc[order].reset_index(drop=True)
        movie_vocab = Vocabulary(movie_ids[order], "movie")
        n_movies = len(movie_vocab)
        display, year = split_titles(movies["title"])
        genres = _genre_lists(movies["genres"] if "genres" in movies else pd.Series([[]] * n_movies))
        info = pd.DataFrame(
            {
                "movie_id": movie_vocab.ids,
                "title": movies["title"].astype(str).to_numpy(),
                "display_title": display.to_numpy(),
                "year": year,
                "genres": genres,
                "imdb_id": np.zeros(n_movies, np.int64),
                "tmdb_id": np.zeros(n_movies, np.int64),
            }
        )
        if links is not None and len(links):
            lidx = movie_vocab.index(numeric(links, "movieId", np.int64, "links"), missing="mask")
            keep = lidx >= 0
            for col, out in (("imdbId", "imdb_id"), ("tmdbId", "tmdb_id")):
                if col in links:
                    vals = pd.to_numeric(links[col], errors="coerce").fillna(0).to_numpy().astype(np.int64)
                    info.loc[lidx[keep], out] = vals[keep]
        if metadata is not None and len(metadata):
            midx = movie_vocab.index(metadata["movieId"].to_numpy(np.int64), missing="mask")
            meta = metadata.loc[midx >= 0].assign(_idx=midx[midx >= 0]).drop_duplicates("_idx")
            for col in ("overview", "runtime", "release_date", "vote_average", "poster_path"):
                if col in meta:
                    values = pd.Series([None] * n_movies, dtype=object)
                    values.iloc[meta["_idx"].to_numpy()] = meta[col].to_numpy()
                    info[col] = values.to_numpy()

        # ratings ------------------------------------------------------------
        user_vocab, scale, r_user, r_movie, r_value, r_time = rating_rows(
            ratings, scale, movie_vocab, repairs
        )

        # tags -----------------------------------------------------------------
        tag_vocab, movie_tags, tag_source, events = tag_matrix(
            movie_vocab, info, tags, metadata, genome_scores, genome_tags, genome_threshold, repairs
        )

        user_info = None
        if users is not None and len(users):
            u = users.copy()
            u["userId"] = numeric(u, "userId", np.int64, "users")
            uidx = user_vocab.index(u["userId"].to_numpy(), missing="mask")
            user_info = u.loc[uidx >= 0].assign(user=uidx[uidx >= 0]).set_index("user").sort_index()

        return cls(
            name=name,
            users=user_vocab,
            movies=movie_vocab,
            tags=tag_vocab,
            user=_frozen(r_user.astype(np.int32)),
            movie=_frozen(r_movie.astype(np.int32)),
            rating=_frozen(r_value.astype(np.float32)),
            timestamp=_frozen(r_time.astype(np.int64)),
            scale=scale,
            movie_info=info,
            movie_tags=movie_tags,
            tag_source=_frozen(tag_source),
            tag_events=events,
            user_info=user_info,
            source_path=source_path,
            repairs=dict(repairs),
        )

    # -------------------------------------------------------------- derived
    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_movies(self) -> int:
        return len(self.movies)

    @property
    def n_tags(self) -> int:
        return len(self.tags)

    @property
    def n_ratings(self) -> int:
        return int(self.user.shape[0])

    def subset(self, mask: np.ndarray, name: str | None = None) -> Dataset:
        """The same data set restricted to the rating rows where ``mask`` is true.

        Vocabularies, movies, the tag vocabulary and :attr:`tag_source` are kept, so
        indices stay comparable across splits. ``mask`` is a bool array of shape
        ``(n_ratings,)``.

        A user whose rating rows are all removed leaves with their tag applications:
        their rows go from :attr:`tag_events` and their counts from :attr:`movie_tags`
        (so a user-disjoint split does not leak the test users' tags into training).
        Users with no rating rows here to begin with (tag-only users) keep their tags,
        so an all-true ``mask`` gives an identical data set.
        """
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self.n_ratings,):
            raise ValueError(f"mask must have shape ({self.n_ratings},), got {mask.shape}")
        movie_tags, tag_events = self._tags_without_users_removed_by(mask)
        return self._take(mask, self.timestamp[mask], name, movie_tags=movie_tags, tag_events=tag_events)

    def _tags_without_users_removed_by(self, mask: np.ndarray) -> tuple[sp.csr_matrix, pd.DataFrame]:
        """:attr:`movie_tags` and :attr:`tag_events` less the tag applications of users whose
        rating rows ``mask`` (bool ``(n_ratings,)``) removes entirely; the same objects if none."""
        events = self.tag_events
        if not len(events) or mask.all():
            return self.movie_tags, events
        had = np.bincount(self.user, minlength=self.n_users) > 0
        gone = had & ~(np.bincount(self.user[mask], minlength=self.n_users) > 0)
        if not gone.any():
            return self.movie_tags, events
        tagger = self.users.index(events["user_id"].to_numpy(np.int64), missing="mask")
        drop = np.zeros(len(events), dtype=bool)
        known = tagger >= 0  # tag-only users are not in the user vocabulary and keep their tags
        drop[known] = gone[tagger[known]]
        if not drop.any():
            return self.movie_tags, events
        kept = events.loc[~drop].reset_index(drop=True)
        return minus_applications(self.movie_tags, events.loc[drop]), kept

    def retimed(self, order: np.ndarray, timestamp: np.ndarray, name: str | None = None) -> Dataset:
        """The same ratings, rows taken in ``order`` (a permutation), with new ``timestamp`` values.

        The caller keeps the class's row order: sorted by (user, timestamp, movie)
        under the new times (checked).
        """
        order = np.asarray(order, dtype=np.int64)
        timestamp = np.asarray(timestamp, dtype=np.int64)
        if order.shape != (self.n_ratings,) or timestamp.shape != order.shape:
            raise ValueError(f"order and timestamp must have shape ({self.n_ratings},)")
        if not np.array_equal(
            rating_order(self.user[order], timestamp, self.movie[order], self.n_users), np.arange(order.size)
        ):
            raise ValueError("rows must stay sorted by (user, timestamp, movie) under the new times")
        return self._take(order, timestamp, name)

    def _take(
        self,
        rows: np.ndarray,
        timestamp: np.ndarray,
        name: str | None,
        *,
        movie_tags: sp.csr_matrix | None = None,
        tag_events: pd.DataFrame | None = None,
    ) -> Dataset:
        """The data set with the rating rows ``rows`` (a mask or indices) and ``timestamp`` for them;
        tags are kept unless ``movie_tags`` / ``tag_events`` replace them."""
        return Dataset(
            name=name or self.name,
            users=self.users,
            movies=self.movies,
            tags=self.tags,
            user=_frozen(self.user[rows]),
            movie=_frozen(self.movie[rows]),
            rating=_frozen(self.rating[rows]),
            timestamp=_frozen(timestamp),
            scale=self.scale,
            movie_info=self.movie_info,
            movie_tags=self.movie_tags if movie_tags is None else movie_tags,
            tag_source=self.tag_source,
            tag_events=self.tag_events if tag_events is None else tag_events,
            user_info=self.user_info,
            source_path=self.source_path,
            repairs=self.repairs,
        )

    @cached_property
    def user_ptr(self) -> np.ndarray:
        """CSR-style pointers: user ``u``'s rows are ``ptr[u]:ptr[u+1]``, shape ``(n_users + 1,)``."""
        counts = np.bincount(self.user, minlength=self.n_users)
        return _frozen(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))

    def interactions(self, *, values: str = "binary") -> sp.csr_matrix:
        """User x movie CSR matrix ``(n_users, n_movies)`` float32.

        ``values="binary"`` gives 1 per rating, ``"rating"`` the rating itself.
        """
        data = np.ones(self.n_ratings, np.float32) if values == "binary" else self.rating
        m = sp.csr_matrix(
            (data, (self.user.astype(np.int64), self.movie.astype(np.int64))),
            shape=(self.n_users, self.n_movies),
            dtype=np.float32,
        )
        m.sum_duplicates()
        return m

    def history(self, user: int) -> tuple[np.ndarray, np.ndarray]:
        """Movie indices and ratings of user index ``user`` in time order."""
        lo, hi = self.user_ptr[user], self.user_ptr[user + 1]
        return self.movie[lo:hi], self.rating[lo:hi]

    @cached_property
    def movie_popularity(self) -> np.ndarray:
        """Number of ratings per movie, shape ``(n_movies,)`` int64."""
        return _frozen(np.bincount(self.movie, minlength=self.n_movies).astype(np.int64))

    @cached_property
    def movie_mean_rating(self) -> np.ndarray:
        """Mean rating per movie, NaN for unrated movies, shape ``(n_movies,)`` float32."""
        sums = np.bincount(self.movie, weights=self.rating, minlength=self.n_movies)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = sums / self.movie_popularity
        return _frozen(mean.astype(np.float32))

    @cached_property
    def movie_rating(self) -> np.ndarray:
        """The rating shown and filtered on: the mean pulled toward the data set's mean rating
        (:func:`~movierec.data.ratings.shrunk_mean`, :data:`~movierec.data.ratings.RATING_PRIOR_WEIGHT`
        ratings' worth), so a film with two 5-star ratings does not pass a "4.5+" filter; NaN for
        unrated movies; float32."""
        sums = np.bincount(self.movie, weights=self.rating, minlength=self.n_movies)
        prior = float(self.rating.mean()) if len(self.rating) else float("nan")
        return _frozen(shrunk_mean(sums, self.movie_popularity, prior).astype(np.float32))

    @cached_property
    def genre_names(self) -> list[str]:
        """Sorted distinct genre names."""
        return sorted({g for gs in self.movie_info["genres"] for g in gs})

    def fingerprint(self) -> str:
        """A short content hash of vocabularies and ratings, used to tie models to data."""
        import hashlib

        h = hashlib.sha256()
        h.update(self.name.encode())
        for arr in (self.movies.ids, self.user, self.movie, self.rating):
            h.update(np.ascontiguousarray(arr).tobytes())
        h.update("\x00".join(map(str, self.tags.ids)).encode())
        return h.hexdigest()[:16]

    def summary(self) -> dict[str, Any]:
        """Counts as plain JSON-able values."""
        sources = {name: int(np.count_nonzero(self.tag_source & bit)) for name, bit in TAG_SOURCES.items()}
        return {
            "name": self.name,
            "ratings": self.n_ratings,
            "users": self.n_users,
            "movies": self.n_movies,
            "rated_movies": int(np.count_nonzero(self.movie_popularity)),
            "tag_applications": len(self.tag_events),
            "tags": self.n_tags,
            "tag_sources": sources,
            "genres": self.genre_names,
            "rating_scale": self.scale.to_dict(),
            "first_rating": int(self.timestamp.min()) if self.n_ratings else None,
            "last_rating": int(self.timestamp.max()) if self.n_ratings else None,
            "movies_with_overview": int(self.movie_info["overview"].notna().sum())
            if "overview" in self.movie_info
            else 0,
            "repairs": dict(self.repairs),
        }


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


def _genre_lists(genres: pd.Series) -> np.ndarray:
    """Per-movie tuples of genre names from pipe strings or lists."""
    out = np.empty(len(genres), dtype=object)
    for i, g in enumerate(genres.to_numpy()):  # per movie, not per rating
        if isinstance(g, list | tuple):
            out[i] = tuple(g)
        elif isinstance(g, str) and g and g != "(no genres listed)":
            out[i] = tuple(x for x in g.split("|") if x and x != "(no genres listed)")
        else:
            out[i] = ()
    return out
