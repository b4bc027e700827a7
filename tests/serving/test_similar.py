"""``nearest_movies``: the nearest movies by cosine in a model's own embedding space, on
hand-made vectors with a known answer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pytest

from movierec.data.dataset import Dataset
from movierec.data.vocab import Vocabulary
from movierec.models.base import Query, Recommender
from movierec.serving import ScoredMovie, nearest_movies


@dataclass
class _StubConfig:
    """No settings."""


class Stub(Recommender):
    """A model whose movie vectors are given, not learned; ids are ``100 + index``."""

    name = "stub"
    Config = _StubConfig

    def __init__(self, vectors: np.ndarray | None, n_movies: int | None = None) -> None:
        super().__init__()
        self.vectors = vectors
        n = n_movies if n_movies is not None else (0 if vectors is None else vectors.shape[0])
        self.movies = Vocabulary(np.arange(100, 100 + n), "movie")

    def _fit(self, data: Dataset, rng: np.random.Generator, valid: Dataset | None) -> None:
        raise NotImplementedError

    def score(self, queries: Sequence[Query]) -> np.ndarray:
        return np.zeros((len(queries), self.n_movies), np.float32)

    def state(self) -> dict[str, np.ndarray]:
        return {}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        return None

    def movie_embeddings(self) -> np.ndarray | None:
        return None if self.vectors is None else self.vectors.copy()


#: movie 0 points along x; 1 is about 14 degrees off, 2 is 45, 3 is 90, 4 is opposite;
#: 5 is 1 twice as long (exactly the same cosine as 1), 6 is zero
VECTORS = np.array([[1, 0], [4, 1], [1, 1], [0, 3], [-2, 0], [8, 2], [0, 0]], np.float32)


def test_nearest_by_cosine_best_first_ties_by_lower_index_itself_left_out() -> None:
    found = nearest_movies(Stub(VECTORS), 0, 10)
    assert all(isinstance(f, ScoredMovie) for f in found)
    # 1 and 5 tie (same direction): the lower index first; the zero vector never matches
    assert [f.movie_id for f in found] == [101, 105, 102, 103, 104]
    c1 = 4 / np.sqrt(17)
    np.testing.assert_allclose([f.score for f in found], [c1, c1, np.sqrt(0.5), 0.0, -1.0], atol=1e-6)


def test_nearest_of_another_movie_and_a_short_list() -> None:
    # from movie 3 (along y): 2 at 45 degrees, then 1 and 5 (tied), then 0 and 4 (both 90, tied)
    found = nearest_movies(Stub(VECTORS), 3, 10)
    assert [f.movie_id for f in found] == [102, 101, 105, 100, 104]
    assert [f.movie_id for f in nearest_movies(Stub(VECTORS), 3, 2)] == [102, 101]
    assert nearest_movies(Stub(VECTORS), 3, 0) == ()


def test_a_movie_with_a_zero_vector_has_no_neighbours() -> None:
    assert nearest_movies(Stub(VECTORS), 6, 5) == ()


def test_a_model_without_embeddings_is_a_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match="'stub' has no movie embeddings"):
        nearest_movies(Stub(None, n_movies=3), 0, 5)


def test_embeddings_that_do_not_match_the_movies_and_a_bad_index() -> None:
    with pytest.raises(ValueError, match="do not match"):
        nearest_movies(Stub(VECTORS, n_movies=3), 0, 5)
    with pytest.raises(IndexError, match="out of range"):
        nearest_movies(Stub(VECTORS), 7, 5)
