"""The engine's view of the catalogue, built from catalogue rows and aligned with a model's
movie and tag indices: the per-movie arrays that filters read (:class:`~movierec.ranking.Catalog`),
the movie-tag weights, the display titles and the movie cards.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from movierec.models.base import Recommender
from movierec.ranking import Catalog

__all__ = ["CARD_FIELDS", "CatalogueView", "catalogue_view"]

#: Catalogue columns a movie card shows (``service.schemas.Movie`` less score and reason).
CARD_FIELDS = (
    "movie_id",
    "title",
    "display_title",
    "year",
    "genres",
    "mean_rating",
    "rating",
    "rating_count",
    "poster_path",
    "overview",
)


@dataclass(frozen=True)
class CatalogueView:
    """The catalogue as the engine holds it: the attributes of
    :class:`~movierec.serving.engine.Engine` of the same names."""

    catalog: Catalog
    movie_tags: sp.csr_matrix
    titles: np.ndarray
    cards: dict[int, dict[str, Any]]


def catalogue_view(model: Recommender, rows: Iterable[Mapping[str, Any]]) -> CatalogueView:
    """The view of catalogue ``rows`` aligned with the fitted ``model`` (the rows
    :meth:`~movierec.serving.engine.Engine.from_rows` documents)."""
    model._check_fitted()
    assert model.movies is not None
    n = model.n_movies
    rows = list(rows)
    ids = np.asarray([int(r["movie_id"]) for r in rows], np.int64)
    idx = model.movies.index(ids, missing="mask") if len(ids) else np.zeros(0, np.int64)
    year = np.zeros(n, np.int32)
    mean = np.full(n, np.nan, np.float32)
    rating = np.full(n, np.nan, np.float32)
    count = np.zeros(n, np.int64)
    titles = np.full(n, "", dtype=object)
    genre_names = sorted({str(g) for r in rows for g in (r.get("genres") or ())})
    gcol = {g: i for i, g in enumerate(genre_names)}
    genres = np.zeros((n, len(genre_names)), bool)
    t_rows: list[int] = []
    t_names: list[str] = []
    t_weights: list[float] = []
    cards = {int(r["movie_id"]): {k: r.get(k) for k in CARD_FIELDS if r.get(k) is not None} for r in rows}
    for row, i in zip(rows, idx.tolist(), strict=True):
        if i < 0:
            continue
        year[i] = int(row.get("year") or 0)
        mr = row.get("mean_rating")
        mean[i] = np.nan if mr is None else float(mr)
        shrunk = row.get("rating", mr)
        rating[i] = np.nan if shrunk is None else float(shrunk)
        count[i] = int(row.get("rating_count") or 0)
        titles[i] = str(row.get("display_title") or row.get("title") or "")
        for g in row.get("genres") or ():
            genres[i, gcol[str(g)]] = True
            t_rows.append(i)
            t_names.append(str(g).strip().lower())
            t_weights.append(1.0)
        for t in row.get("tags") or ():
            if isinstance(t, Mapping):
                name = str(t.get("tag") or t.get("name") or "")
                weight = float(t.get("weight") or 1.0)
            else:
                name, weight = str(t), 1.0
            t_rows.append(i)
            t_names.append(name.strip().lower())
            t_weights.append(weight)
    tag_vocab = model.tags
    if tag_vocab is not None and len(tag_vocab) and t_names:
        cols = tag_vocab.index(np.asarray(t_names, dtype=object), missing="mask")
    else:
        cols = np.full(len(t_names), -1, np.int64)
    r_arr = np.asarray(t_rows, np.int64)
    ok = cols >= 0
    movie_tags = sp.csr_matrix(
        (np.asarray(t_weights, np.float32)[ok], (r_arr[ok], cols[ok])),
        shape=(n, model.n_tags),
        dtype=np.float32,
    )
    movie_tags.sum_duplicates()
    catalog = Catalog(
        year=year,
        mean_rating=mean,
        rating=rating,
        rating_count=count,
        genres=genres,
        genre_names=tuple(genre_names),
    )
    return CatalogueView(catalog=catalog, movie_tags=movie_tags, titles=titles, cards=cards)
