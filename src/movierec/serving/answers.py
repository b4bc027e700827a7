"""The engine's typed answers: frozen dataclasses, shared by the web app, the scoring
process (they pickle) and the command line.

Frozen, so a remembered answer can be handed to every caller without a copy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ScoredMovie:
    """A recommended or similar movie: external id, the model's score, and why (or ``None``)."""

    movie_id: int
    score: float
    reason: str | None = None

    def __reduce__(self) -> tuple[Any, ...]:  # see Answer.__reduce__
        return (ScoredMovie, (self.movie_id, self.score, self.reason))


@dataclass(frozen=True, slots=True)
class ScoredTag:
    """A recommended tag and its score."""

    tag: str
    score: float

    def __reduce__(self) -> tuple[Any, ...]:  # see Answer.__reduce__
        return (ScoredTag, (self.tag, self.score))


@dataclass(frozen=True, slots=True)
class Answer:
    """A session's recommendations: movies and tags best first, whether the popularity
    fallback answered, and notes on what was ignored and why."""

    movies: tuple[ScoredMovie, ...]
    tags: tuple[ScoredTag, ...]
    fallback: bool
    notes: tuple[str, ...] = ()

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as a constructor call: answers cross from the scoring process to the web
        process on every recommendation, and the ``__getstate__`` / ``__setstate__`` pair that
        ``dataclass(slots=True)`` writes costs 3.6x more (111 against 31 us an answer of 24
        movies and 12 tags, dumped and loaded; the dicts before them: 10 us)."""
        return (Answer, (self.movies, self.tags, self.fallback, self.notes))


@dataclass(frozen=True, slots=True)
class QuestionOption:
    """One answer a question offers; the keys it sets say what choosing it does."""

    label: str
    movie_id: int | None = None
    tag: str | None = None
    year_min: int | None = None
    year_max: int | None = None
    genre: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The label and the keys that are set."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True, slots=True)
class AskedQuestion:
    """A question for a session (:mod:`movierec.asking`): ``values`` (movie ids, tag names,
    a year or a genre) and an answer go back to :meth:`Engine.answer_change`."""

    kind: str
    prompt: str
    values: tuple[int | str, ...]
    options: tuple[QuestionOption, ...]
    gain: float
    probabilities: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["values"] = list(self.values)
        out["options"] = [o.to_dict() for o in self.options]
        out["probabilities"] = list(self.probabilities)
        return out


@dataclass(frozen=True, slots=True)
class SessionChange:
    """What an answer does to a session, in external ids: movies and tags to like or
    dislike, year bounds and genres to filter by (``None`` / empty: unchanged)."""

    like_movies: tuple[int, ...] = ()
    dislike_movies: tuple[int, ...] = ()
    like_tags: tuple[str, ...] = ()
    dislike_tags: tuple[str, ...] = ()
    year_min: int | None = None
    year_max: int | None = None
    genres: tuple[str, ...] = ()
