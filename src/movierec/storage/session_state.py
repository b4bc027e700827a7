"""What a session holds (:class:`SessionState`) and the rules for the values in it: the
kinds of items and feedback, movie ids, and tags in their stored (normalised) form.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Feedback", "Kind", "SessionState"]

Kind = Literal["movie", "tag"]
Feedback = Literal["like", "dislike"]
_KINDS = ("movie", "tag")
_FEEDBACK = ("like", "dislike")


@dataclass(frozen=True)
class SessionState:
    """Everything a session holds.

    Attributes
    ----------
    liked, disliked:
        MovieLens movie *ids*, oldest feedback first (the last is the most important).
    liked_tags, disliked_tags:
        Tag names, same order.
    filters:
        The session's filters (JSON object, e.g. ``{"min_year": 1990}``).
    favourites:
        Movie ids, most recently added first.
    updated_at:
        Seconds since the epoch of the last write.
    """

    liked: list[int] = field(default_factory=list)
    disliked: list[int] = field(default_factory=list)
    liked_tags: list[str] = field(default_factory=list)
    disliked_tags: list[str] = field(default_factory=list)
    filters: dict[str, Any] = field(default_factory=dict)
    favourites: list[int] = field(default_factory=list)
    updated_at: float = 0.0


def _check_kind(kind: str) -> None:
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")


def _check_feedback(feedback: str) -> None:
    if feedback not in _FEEDBACK:
        raise ValueError(f"feedback must be one of {_FEEDBACK}, got {feedback!r}")


def _movie_id(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"a movie id must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise ValueError(f"a movie id must be an integer, got {value!r}") from None


def _decode(kind: str, stored: Any) -> int | str:
    """A stored ``session_items.value`` back in its Python form (PostgreSQL keeps movie ids as text)."""
    return int(stored) if kind == "movie" else str(stored)


def _value(kind: str, value: Any) -> int | str:
    """The stored form: ``int`` for movies, a normalised tag name (lower case, single spaces) for tags."""
    _check_kind(kind)
    if kind == "movie":
        return _movie_id(value)
    if not isinstance(value, str):
        raise ValueError(f"a tag must be a string, got {value!r}")
    tag = " ".join(value.lower().split())
    if not tag:
        raise ValueError("a tag must not be empty")
    return tag
