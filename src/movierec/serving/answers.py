"""The engine's typed answers: frozen dataclasses, shared by the web app, the scoring
process (they pickle) and the command line.

Frozen, so a remembered answer can be handed to every caller without a copy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar


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


class Answer:
    """A session's recommendations: movies and tags best first, whether the popularity
    fallback answered, and notes on what was ignored and why. Immutable.

    ``movies`` and ``tags`` are typed views (:class:`ScoredMovie`, :class:`ScoredTag`) built
    on each access; the answer itself holds plain tuples of ids, scores, reasons and tag
    names. Answers are remembered by the thousand in the engine's cache of every serving
    process, and a tuple of numbers and strings is one object the garbage collector stops
    tracking, where 36 slots objects an answer were 36 it walked at every full collection
    (the saturated load test's server-side p99 was 13 ms [1, 26] longer with them).
    """

    __slots__ = ("fallback", "movie_ids", "notes", "reasons", "scores", "tag_names", "tag_scores")
    #: the columns in :meth:`from_columns`' order (pickling and equality go by it)
    FIELDS: ClassVar[tuple[str, ...]] = (
        "movie_ids", "scores", "reasons", "tag_names", "tag_scores", "fallback", "notes",
    )  # fmt: skip

    movie_ids: tuple[int, ...]
    scores: tuple[float, ...]
    reasons: tuple[str | None, ...]
    tag_names: tuple[str, ...]
    tag_scores: tuple[float, ...]
    fallback: bool
    notes: tuple[str, ...]

    def __init__(
        self,
        movies: tuple[ScoredMovie, ...] = (),
        tags: tuple[ScoredTag, ...] = (),
        fallback: bool = False,
        notes: tuple[str, ...] = (),
    ) -> None:
        self._set(
            tuple(m.movie_id for m in movies),
            tuple(m.score for m in movies),
            tuple(m.reason for m in movies),
            tuple(t.tag for t in tags),
            tuple(t.score for t in tags),
            fallback,
            tuple(notes),
        )

    @classmethod
    def from_columns(
        cls,
        movie_ids: Sequence[int],
        scores: Sequence[float],
        reasons: Sequence[str | None],
        tag_names: Sequence[str] = (),
        tag_scores: Sequence[float] = (),
        fallback: bool = False,
        notes: Sequence[str] = (),
    ) -> Answer:
        """An answer from parallel columns (equal lengths: ``ValueError`` otherwise)."""
        if not len(movie_ids) == len(scores) == len(reasons):
            raise ValueError(f"{len(movie_ids)} movies, {len(scores)} scores and {len(reasons)} reasons")
        if len(tag_names) != len(tag_scores):
            raise ValueError(f"{len(tag_names)} tags and {len(tag_scores)} tag scores")
        out = cls.__new__(cls)
        out._set(
            tuple(movie_ids), tuple(scores), tuple(reasons), tuple(tag_names), tuple(tag_scores),
            bool(fallback), tuple(notes),
        )  # fmt: skip
        return out

    def _set(self, *values: Any) -> None:
        for name, value in zip(self.FIELDS, values, strict=True):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    @property
    def movies(self) -> tuple[ScoredMovie, ...]:
        """The recommended movies, best first."""
        return tuple(map(ScoredMovie, self.movie_ids, self.scores, self.reasons))

    @property
    def tags(self) -> tuple[ScoredTag, ...]:
        """The recommended tags, best first."""
        return tuple(map(ScoredTag, self.tag_names, self.tag_scores))

    def _columns(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.FIELDS)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Answer):
            return NotImplemented
        return self._columns() == other._columns()

    def __hash__(self) -> int:
        return hash(self._columns())

    def __repr__(self) -> str:
        return f"Answer(movies={self.movies!r}, tags={self.tags!r}, fallback={self.fallback!r}, notes={self.notes!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its columns: answers cross from the scoring process to the web process
        on every recommendation (tuples of numbers and strings are pickle's fastest case)."""
        return (Answer.from_columns, self._columns())


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
