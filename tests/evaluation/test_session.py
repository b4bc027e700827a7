"""Session evaluations on hand-built models with known answers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pytest

from movierec.evaluation.session import clicks_to_relevant, dislike_effect, summarise_clicks
from movierec.models.base import Query, Recommender

N = 40  # movies; group of movie i is i // 10


@dataclass
class _NoConfig:
    """No settings."""


class _Hand(Recommender):
    """Test-only model scoring sessions by a rule; never fitted on data."""

    name = "hand"
    Config = _NoConfig

    def __init__(self, rule: str) -> None:
        super().__init__()
        self.rule = rule
        self._fitted = True

    def _fit(self, data: object, rng: np.random.Generator, valid: object) -> None:  # pragma: no cover
        raise AssertionError("not fitted in these tests")

    @property
    def n_movies(self) -> int:
        return N

    def _check_fitted(self) -> None:
        return None

    def score(self, queries: Sequence[Query]) -> np.ndarray:
        out = np.tile(-np.arange(N, dtype=np.float32), (len(queries), 1))  # popularity: movie 0 first
        for i, q in enumerate(queries):
            if self.rule == "groups":  # a dislike sinks the disliked movie's whole group
                for m in q.disliked:
                    out[i, (np.arange(N) // 10) == m // 10] -= 100.0
            elif self.rule == "next":  # the movie after the last like, nothing else known
                if q.liked.size == 0:
                    out[i] = np.nan
                else:
                    out[i] = 0.0
                    out[i, (q.liked[-1] + 1) % N] = 1.0
        return out

    def state(self) -> dict[str, np.ndarray]:
        return {}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        return None


def group_neighbours(movie: int) -> np.ndarray:
    return np.array([m for m in range(10 * (movie // 10), 10 * (movie // 10) + 10) if m != movie])


def test_dislike_sinks_the_neighbours_of_a_model_that_reads_dislikes() -> None:
    sessions = [Query.session(liked=[35]), Query.session(liked=[25, 26])]
    effect = dislike_effect(_Hand("groups"), sessions, group_neighbours, n_neighbours=5)
    np.testing.assert_array_equal(effect.disliked, [0, 0])  # the most popular movie
    np.testing.assert_array_equal(effect.before[0], np.arange(5))  # movies 1..5 right after it
    # below every movie of the other groups the session does not hold (29, resp. 28 of them)
    np.testing.assert_array_equal(effect.after, [np.arange(29, 34), np.arange(28, 33)])
    s = effect.summary(k=10)
    assert s["in_top10_before"] == 1.0 and s["in_top10_after"] == 0.0 and s["mean_shift"] > 25


def test_dislike_changes_nothing_for_a_model_that_ignores_it() -> None:
    sessions = [Query.session(liked=[35])]
    effect = dislike_effect(_Hand("pop"), sessions, group_neighbours)
    np.testing.assert_array_equal(effect.before, effect.after)
    assert np.isnan(effect.before[0, 9])  # 9 neighbours only


def test_clicks_to_relevant_known_paths() -> None:
    own = [np.array([20]), np.array([], np.int64), np.array([7, 30]), np.array([5])]
    held = [np.array([21]), np.array([39]), np.array([1]), np.array([12])]
    fallback = -np.arange(N, dtype=np.float32)
    clicks = clicks_to_relevant(
        _Hand("next"), own, held, np.random.default_rng(0), k=3, max_clicks=4, fallback=fallback
    )
    # 1: likes 20 (searched), then 21 is next; 2: nothing to click; 3: movie 1 is popular;
    # 4: 5 -> shows 6 only, never 12: clicks until it runs out of movies
    np.testing.assert_array_equal(clicks, [1, 5, 0, 5])
    s = summarise_clicks(clicks, 4)
    assert s["found_by_0"] == 0.25 and s["found_by_1"] == 0.5 and s["never"] == 0.5


def test_clicks_prefers_a_shown_own_movie_over_search() -> None:
    # own 0 is shown at once (popular); liking it shows 1, which is held out
    clicks = clicks_to_relevant(
        _Hand("next"),
        [np.array([0, 30])],
        [np.array([1])],
        np.random.default_rng(0),
        k=1,
        fallback=-np.arange(N, dtype=np.float32),
    )
    assert clicks.tolist() == [1]


def test_clicks_rejects_mismatched_lists() -> None:
    with pytest.raises(ValueError, match="one entry per visitor"):
        clicks_to_relevant(_Hand("next"), [np.array([1])], [], np.random.default_rng(0))
