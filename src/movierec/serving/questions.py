"""The engine's questions in ids and words: a question's options checked against the model's
vocabularies (:func:`question_options`), a chosen question put to a person
(:func:`asked_question`), and what an answer does to a session in external ids
(:func:`session_change`). Choosing the question is :mod:`movierec.asking`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from movierec.asking import Change, Question
from movierec.models.base import Recommender
from movierec.serving.answers import AskedQuestion, QuestionOption, SessionChange

__all__ = ["asked_question", "question_options", "session_change"]


def question_options(
    kind: str,
    values: Sequence[int | str],
    movie_pos: Mapping[int, int],
    tag_pos: Mapping[str, int],
    genre_names: Sequence[str],
) -> tuple[int | str, ...]:
    """A question's options as indices (movies, tags) or as they are (a year, a genre).

    ``movie_pos`` / ``tag_pos`` map external movie ids / tag names to the model's indices;
    ``genre_names`` are the catalogue's genres.
    """
    if kind == "movies":
        idx = [movie_pos.get(int(v), -1) for v in values]
        if len(idx) != 2 or min(idx) < 0:
            raise ValueError(f"a movie question names two movies the model knows; got {list(values)}")
        return tuple(idx)
    if kind == "tags":
        tags = [tag_pos.get(str(v).strip().lower(), -1) for v in values]
        if len(tags) != 2 or min(tags) < 0:
            raise ValueError(f"a tag question names two tags the model knows; got {list(values)}")
        return tuple(tags)
    if kind == "era":
        if len(values) != 1 or not 1800 <= int(values[0]) <= 2200:
            raise ValueError(f"an era question names one year (1800-2200); got {list(values)}")
        return (int(values[0]),)
    if kind == "genre":
        if len(values) != 1 or str(values[0]) not in genre_names:
            raise ValueError(f"a genre question names one genre of {list(genre_names)}")
        return (str(values[0]),)
    raise ValueError(f"unknown question kind {kind!r}; one of movies, tags, era, genre")


def asked_question(q: Question, model: Recommender, label: Callable[[int], str]) -> AskedQuestion:
    """``q`` as a person is asked it: external ids and tag names, option labels, a prompt.
    ``label`` gives a movie index's "Title (year)"."""
    assert model.movies is not None
    if q.kind == "movies":
        ids = [int(model.movies.ids[int(i)]) for i in q.options]
        names = [label(int(i)) for i in q.options]
        values: tuple[int | str, ...] = tuple(ids)
        options = tuple(QuestionOption(n, movie_id=m) for n, m in zip(names, ids, strict=True))
        prompt = f"More like {names[0]} or more like {names[1]}?"
    elif q.kind == "tags":
        assert model.tags is not None
        tags = [str(model.tags.ids[int(i)]) for i in q.options]
        values = tuple(tags)
        options = tuple(QuestionOption(f"#{t}", tag=t) for t in tags)
        prompt = f"In the mood for #{tags[0]} or #{tags[1]}?"
    elif q.kind == "era":
        year = int(q.options[0])
        values = (year,)
        options = (
            QuestionOption(f"Before {year}", year_max=year - 1),
            QuestionOption(f"{year} or later", year_min=year),
        )
        prompt = f"Older or newer: before {year}, or {year} and after?"
    else:
        genre = str(q.options[0])
        values = (genre,)
        options = (
            QuestionOption(f"Yes, {genre}", genre=genre),
            QuestionOption(f"No {genre}", genre=genre),
        )
        prompt = f"In the mood for {genre}?"
    return AskedQuestion(
        kind=q.kind,
        prompt=prompt,
        values=values,
        options=options,
        gain=round(q.gain, 4),
        probabilities=tuple(round(m, 4) for m in q.masses),
    )


def session_change(change: Change, model: Recommender) -> SessionChange:
    """An answer's :class:`~movierec.asking.Change` (model indices) in external ids and tag names."""
    assert model.movies is not None
    tag_ids = model.tags.ids if model.tags is not None else np.zeros(0, object)

    def tag_name(i: int) -> str:
        return str(tag_ids[i])

    return SessionChange(
        like_movies=tuple(int(model.movies.ids[i]) for i in change.like_movies),
        dislike_movies=tuple(int(model.movies.ids[i]) for i in change.dislike_movies),
        like_tags=tuple(tag_name(i) for i in change.like_tags),
        dislike_tags=tuple(tag_name(i) for i in change.dislike_tags),
        year_min=change.year_min,
        year_max=change.year_max,
        genres=tuple(change.genres),
    )
