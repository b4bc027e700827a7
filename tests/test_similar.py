"""Blending collaborative and content neighbours."""

from __future__ import annotations

import numpy as np
import pytest

from movierec.similar import similar_movies


class Fixed:
    """A similarity source with a fixed answer."""

    def __init__(self, idx: list[int], scores: list[float]) -> None:
        self.idx = np.asarray(idx, np.int64)
        self.scores = np.asarray(scores, np.float32)

    def similar(self, movie: int, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        return self.idx[:n], self.scores[:n]


def test_single_sources_pass_through() -> None:
    collab = Fixed([3, 1, 2], [0.9, 0.5, 0.1])
    idx, sc = similar_movies(0, 2, by="collab", collab=collab)
    assert idx.tolist() == [3, 1]
    assert sc[0] == pytest.approx(1.0)


def test_blend_ranks_movies_both_sources_agree_on_first() -> None:
    collab = Fixed([5, 7, 9], [0.8, 0.7, 0.6])
    content = Fixed([11, 7, 12], [0.9, 0.85, 0.2])
    idx, _ = similar_movies(0, 3, by="blend", collab=collab, content=content)
    assert idx[0] == 7  # strong in both
    assert set(idx.tolist()) <= {5, 7, 9, 11, 12}


def test_blend_without_collab_neighbours_still_answers() -> None:
    collab = Fixed([], [])
    content = Fixed([4, 6], [0.7, 0.3])
    idx, _ = similar_movies(0, 2, by="blend", collab=collab, content=content)
    assert idx.tolist() == [4, 6]


def test_missing_model_and_bad_method_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="content"):
        similar_movies(0, 5, by="content", collab=Fixed([1], [1.0]))
    with pytest.raises(ValueError, match="one of"):
        similar_movies(0, 5, by="magic")
