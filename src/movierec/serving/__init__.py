"""What the web app, the scoring process and the command line ask a model through.

================  ============================================================
``engine``        :class:`Engine`: ids in, a :class:`~movierec.models.base.Query`
                  to :func:`movierec.ranking.recommend`, typed answers out; one
                  catalogue view built one way (:meth:`Engine.from_rows`)
``catalogue``     that catalogue view: per-movie arrays, tag weights, titles, cards
``questions``     the engine's questions and their answers in ids and words
``similar``       movies similar to one movie: the page's blend, or the model's own
                  embedding space (:func:`nearest_movies`)
``answers``       the typed answers (frozen dataclasses)
``session``       what the engine reads of a session; filters and answers' changes
``explain``       reasons and tag suggestions
``cache``         the LRU map and the remembered score rows
================  ============================================================
"""

from movierec.serving.answers import (
    Answer,
    AskedQuestion,
    QuestionOption,
    ScoredMovie,
    ScoredTag,
    SessionChange,
)
from movierec.serving.cache import LRUCache, RememberedScores, query_key
from movierec.serving.catalogue import CARD_FIELDS
from movierec.serving.engine import ANN_MIN_MOVIES, Engine
from movierec.serving.session import (
    CHANGE_ITEMS,
    SessionLike,
    change_items,
    changed_filters,
    filters_from_dict,
    session_key,
)
from movierec.serving.similar import nearest_movies

__all__ = [
    "ANN_MIN_MOVIES",
    "CARD_FIELDS",
    "CHANGE_ITEMS",
    "Answer",
    "AskedQuestion",
    "Engine",
    "LRUCache",
    "QuestionOption",
    "RememberedScores",
    "ScoredMovie",
    "ScoredTag",
    "SessionChange",
    "SessionLike",
    "change_items",
    "changed_filters",
    "filters_from_dict",
    "nearest_movies",
    "query_key",
    "session_key",
]
