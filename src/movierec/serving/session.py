"""What the engine reads of a session, and how a session's stored values become a query's parts."""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Literal, Protocol

from movierec.ranking import Catalog, Filters
from movierec.serving.answers import SessionChange


class SessionLike(Protocol):
    """What the engine reads from a stored session (``storage.session_state.SessionState``); a
    ``favourites`` sequence of movie ids, when there is one, is left out of the answers."""

    @property
    def liked(self) -> Sequence[int]: ...
    @property
    def disliked(self) -> Sequence[int]: ...
    @property
    def liked_tags(self) -> Sequence[str]: ...
    @property
    def disliked_tags(self) -> Sequence[str]: ...
    @property
    def filters(self) -> Mapping[str, Any]: ...


def favourites(state: SessionLike) -> Sequence[int]:
    return getattr(state, "favourites", None) or ()


def session_key(state: SessionLike) -> tuple[Hashable, ...]:
    """Everything in a session that its recommendations depend on, as a hashable key.

    Two sessions with equal keys get equal recommendations from one engine, so the key is
    the session's state version (favourites count: they are left out of the answers).
    """
    return (
        tuple(int(m) for m in favourites(state)),
        tuple(int(m) for m in state.liked),
        tuple(int(m) for m in state.disliked),
        tuple(str(t) for t in state.liked_tags),
        tuple(str(t) for t in state.disliked_tags),
        json.dumps(state.filters or {}, sort_keys=True, default=str),
    )


#: how an answer's change (:meth:`Engine.answer_change`) becomes session items, in this order:
#: (item kind, field of the :class:`SessionChange`, feedback)
CHANGE_ITEMS: tuple[tuple[Literal["movie", "tag"], str, Literal["like", "dislike"]], ...] = (
    ("movie", "dislike_movies", "dislike"),
    ("movie", "like_movies", "like"),
    ("tag", "dislike_tags", "dislike"),
    ("tag", "like_tags", "like"),
)


def change_items(
    change: SessionChange,
) -> list[tuple[Literal["movie", "tag"], int | str, Literal["like", "dislike"]]]:
    """The session items an answer's change adds, in :data:`CHANGE_ITEMS` order:
    ``(kind, movie id or tag name, feedback)``."""
    return [(kind, value, feedback) for kind, key, feedback in CHANGE_ITEMS for value in getattr(change, key)]


def changed_filters(filters: Mapping[str, Any] | None, change: SessionChange) -> dict[str, Any]:
    """A session's filters after an answer's change: its year bounds and genres, where set."""
    out = dict(filters or {})
    if change.year_min is not None:
        out["year_min"] = change.year_min
    if change.year_max is not None:
        out["year_max"] = change.year_max
    if change.genres:
        out["genres"] = list(change.genres)
    return out


def filters_from_dict(raw: Mapping[str, Any] | None, catalog: Catalog) -> tuple[Filters, list[str]]:
    """:class:`Filters` of a session's stored filter dict, and notes on what was ignored.

    Keys: ``min_rating`` (float), ``year_min``, ``year_max`` (int), ``genres``
    (list of names). Genres the catalogue does not know are dropped with a note. (A ``text``
    key, the taste in words, is no filter: the engine hands it to the model's query.)
    """
    raw = raw or {}
    notes: list[str] = []
    genres = tuple(str(g) for g in (raw.get("genres") or ()))
    known = tuple(g for g in genres if g in catalog.genre_names)
    if len(known) < len(genres):
        notes.append(f"ignored unknown genre(s): {', '.join(g for g in genres if g not in known)}")

    def _num(key: str, kind: type) -> Any:
        v = raw.get(key)
        return None if v is None else kind(v)

    return (
        Filters(
            min_rating=_num("min_rating", float),
            year_min=_num("year_min", int),
            year_max=_num("year_max", int),
            genres=known,
        ),
        notes,
    )
