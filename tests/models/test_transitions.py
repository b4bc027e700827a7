"""Item-to-item transitions under the shared contract, plus their own known answers."""

from __future__ import annotations

import numpy as np
import pytest

from contract import ModelContract
from movierec.data.synthetic import markov_sequences
from movierec.models.base import Query
from movierec.models.transitions import Transitions

N_MOVIES = 20


class TestTransitions(ModelContract):
    make = staticmethod(lambda: Transitions(window=3, context=3))
    # a few successors of the last movies, then popularity: no full top-N within a taste; its
    # known answer is the chain below
    quality = None


@pytest.fixture(scope="module")
def chain() -> object:
    # every user walks the chain 0 -> 1 -> ... (mod N_MOVIES) from a random start
    return markov_sequences(60, N_MOVIES, 10, np.random.default_rng(0), n_tags=2)


def test_what_followed_the_last_movie_ranks_first(chain: object) -> None:
    model = Transitions(window=1, context=1).fit(chain)  # type: ignore[arg-type]
    scores = model.score([Query.session(liked=[i]) for i in range(N_MOVIES)])
    assert scores.dtype == np.float32 and scores.shape == (N_MOVIES, N_MOVIES)
    assert (np.argmax(scores, axis=1) == (np.arange(N_MOVIES) + 1) % N_MOVIES).all()
    # the most recent movie counts most; an older one still reaches its successor
    recent = Transitions(context=2, decay=0.5).fit(chain)  # type: ignore[arg-type]
    s = recent.score([Query.session(liked=[3, 10])])[0]
    assert s[11] > s[4] > s[0]
    # a dislike leads nowhere: its successor gets nothing from it
    d = recent.score([Query.session(liked=[3], disliked=[10])])[0]
    assert d[4] > 0.5 and d[11] < 0.01


def test_window_counts_later_steps_at_lower_weight(chain: object) -> None:
    one = Transitions(window=1).fit(chain).score([Query.session(liked=[5])])[0]  # type: ignore[arg-type]
    two = Transitions(window=2).fit(chain).score([Query.session(liked=[5])])[0]  # type: ignore[arg-type]
    assert one[7] < 0.01 < two[7] < two[6]  # two steps on: only with window 2, and below one step


def test_known_user_empty_session_and_bad_settings(chain: object) -> None:
    model = Transitions(window=1, context=1).fit(chain)  # type: ignore[arg-type]
    data = chain
    last = int(data.movie[data.user_ptr[1] - 1])  # type: ignore[attr-defined]
    assert int(np.argmax(model.score_users(np.array([0]))[0])) == (last + 1) % N_MOVIES
    empty = model.score([Query()])[0]  # popularity alone
    assert np.argmax(empty) == np.argmax(data.movie_popularity)  # type: ignore[attr-defined]
    with pytest.raises(IndexError):
        model.score([Query.session(liked=[N_MOVIES])])
    for bad in ({"window": 0}, {"context": 0}, {"decay": 1.5}, {"popularity": -1.0}):
        with pytest.raises(ValueError):
            Transitions(**bad).fit(chain)  # type: ignore[arg-type]
