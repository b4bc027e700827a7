"""Known answers for movierec.asking: on a catalogue of two clusters the first question
separates them; answers change the session as documented; questions are not repeated."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from movierec.asking import (
    Change,
    Question,
    QuestionSpace,
    apply_answer,
    candidate_questions,
    choose_question,
    list_weights,
)

N = 40  # movies 0-19: cluster A (tags a0-a2, Drama, 1970s); 20-39: cluster B (tags b0-b2, Comedy, 2010s)


def two_clusters() -> QuestionSpace:
    rng = np.random.default_rng(0)
    rows, cols = [], []
    for m in range(N):
        base = 0 if m < N // 2 else 3
        for t in rng.choice(3, 2, replace=False):
            rows.append(m)
            cols.append(base + int(t))
    tags = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(N, 6))
    years = np.where(np.arange(N) < N // 2, 1970 + np.arange(N) % 10, 2010 + np.arange(N) % 10).astype(
        np.int32
    )
    genres = np.zeros((N, 2), bool)
    genres[: N // 2, 0] = True
    genres[N // 2 :, 1] = True
    return QuestionSpace(tags=tags, years=years, genres=genres, genre_names=("Drama", "Comedy"))


def interleaved() -> np.ndarray:
    """A list that does not know which cluster the visitor wants: A, B, A, B, ..."""
    return np.ravel(np.column_stack([np.arange(N // 2), np.arange(N // 2, N)]))


def in_a(m: int | str) -> bool:
    return int(m) < N // 2


def test_list_weights_are_a_distribution() -> None:
    w = list_weights(24)
    assert w.sum() == pytest.approx(1.0) and np.all(np.diff(w) < 0)


def test_every_kind_of_first_question_separates_the_clusters() -> None:
    space = two_clusters()
    questions = {q.kind: q for q in candidate_questions(interleaved(), space)}
    assert set(questions) == {"movies", "tags", "era", "genre"}
    a, b = questions["movies"].options
    assert in_a(a) != in_a(b)  # one of each cluster
    ta, tb = questions["tags"].options
    assert (int(ta) < 3) != (int(tb) < 3)
    assert 1980 <= int(questions["era"].options[0]) <= 2010  # between the clusters
    for q in questions.values():
        assert q.masses[-1] >= 0.1 and sum(q.masses) == pytest.approx(1.0)
    # an even split of the list is worth nearly the most a two-option question can be
    best = choose_question(list(questions.values()))
    assert best is not None and best.gain > 1.3
    assert abs(best.masses[0] - best.masses[1]) < 0.15


def test_a_list_that_knows_asks_a_question_that_splits_what_is_left() -> None:
    """Once the list is all cluster A, a cluster question tells little: no era split of 1/0,
    no genre that every movie has; a movie pair, if any is well enough apart, stays inside it."""
    space = two_clusters()
    top = np.arange(N // 2)
    questions = {q.kind: q for q in candidate_questions(top, space)}
    assert "genre" not in questions or questions["genre"].options[0] != "Drama"
    assert "movies" not in questions or all(in_a(m) for m in questions["movies"].options)
    assert questions  # a tag or era question still splits the cluster


def test_answers_change_the_session_as_documented() -> None:
    movies = Question("movies", (3, 25), (0.45, 0.45, 0.1), 1.37)
    assert apply_answer(movies, 0) == Change(like_movies=(3,))
    assert apply_answer(movies, 1) == Change(like_movies=(25,))
    assert apply_answer(movies, "neither").empty  # not seen either, most likely: nothing is taken from it
    tags = Question("tags", (1, 4), (0.45, 0.45, 0.1), 1.37)
    assert apply_answer(tags, 1) == Change(like_tags=(4,))
    assert apply_answer(tags, "neither") == Change(dislike_tags=(1, 4))
    era = Question("era", (1995,), (0.45, 0.45, 0.1), 1.37)
    assert apply_answer(era, 0) == Change(year_max=1994) and apply_answer(era, 1) == Change(year_min=1995)
    genre = Question("genre", ("Drama",), (0.45, 0.45, 0.1), 1.37)
    assert apply_answer(genre, 0, genre_tag=7) == Change(like_tags=(7,))  # a steer, not a filter
    assert apply_answer(genre, 1, genre_tag=7) == Change(dislike_tags=(7,))
    assert apply_answer(genre, 0) == Change(genres=("Drama",))  # a model without the genre's tag
    assert apply_answer(genre, 1) == Change() and apply_answer(genre, "neither", genre_tag=7).empty
    for q in (movies, tags, era, genre):
        assert apply_answer(q, "skip").empty
        with pytest.raises(ValueError):
            apply_answer(q, 2)


def test_questions_asked_or_held_are_not_offered_again() -> None:
    space = two_clusters()
    first = candidate_questions(interleaved(), space)
    again = candidate_questions(interleaved(), space, asked=first, year_filtered=True, genre_filtered=True)
    kinds = {q.kind for q in again}
    assert kinds <= {"movies", "tags"}
    asked = {(q.kind, frozenset(q.options)) for q in first}
    assert all((q.kind, frozenset(q.options)) not in asked for q in again)
    liked = [int(first[0].options[0])] if first[0].kind == "movies" else []
    held = candidate_questions(interleaved(), space, held_movies=liked)
    movie_q = [q for q in held if q.kind == "movies"]
    assert not movie_q or not set(liked) & set(movie_q[0].options)


def test_random_choice_and_nothing_to_ask() -> None:
    space = two_clusters()
    questions = candidate_questions(interleaved(), space)
    picks = {choose_question(questions, np.random.default_rng(s)).kind for s in range(40)}  # type: ignore[union-attr]
    assert picks == {q.kind for q in questions}
    assert choose_question([]) is None
    assert candidate_questions(np.array([3]), space) == []


def test_a_genre_whose_tag_the_session_holds_is_not_asked_about() -> None:
    space = two_clusters()
    space.genre_tags = np.array([1, 4])  # Drama's tag is 1, Comedy's 4
    asked = [q for q in candidate_questions(interleaved(), space) if q.kind == "genre"]
    assert asked and asked[0].options[0] in ("Drama", "Comedy")
    held = 1 if asked[0].options[0] == "Drama" else 4
    again = [q for q in candidate_questions(interleaved(), space, held_tags=[held]) if q.kind == "genre"]
    assert not again or again[0].options != asked[0].options
