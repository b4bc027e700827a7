"""One text per movie, the input of the sentence encoder.

The form is fixed (tests pin it) so that embedding caches stay valid::

    Toy Story (1995). Genres: Adventure, Animation. Tags: pixar, toys. Overview: A cowboy doll ...

Parts with nothing to say are left out: no ``(year)`` when the year is
unknown, no ``Genres:`` / ``Tags:`` / ``Overview:`` part when empty.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from movierec.data.dataset import Dataset
from movierec.data.titles import normalise_tags

__all__ = ["MAX_OVERVIEW_CHARS", "MAX_TAGS", "movie_text"]

#: tags per movie text, the strongest first
MAX_TAGS = 12
#: overviews are cut (at a word boundary) to this many characters; MiniLM reads 256 tokens
MAX_OVERVIEW_CHARS = 600


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut + " ..."


def movie_text(
    data: Dataset,
    index: int | Sequence[int] | np.ndarray | None = None,
    *,
    max_tags: int = MAX_TAGS,
    max_overview_chars: int = MAX_OVERVIEW_CHARS,
    title: bool = True,
) -> list[str]:
    """Descriptive text of movies: title, year, genres, strongest tags, overview.

    Parameters
    ----------
    data:
        The data set holding ``movie_info`` and ``movie_tags``.
    index:
        A movie *index*, a sequence / int array of indices, or ``None`` for every
        movie in index order.
    max_tags:
        At most this many tags, by weight in ``data.movie_tags`` (descending; ties
        by tag name). Tags naming one of the movie's own genres are not listed as tags.
    max_overview_chars:
        Overviews longer than this are cut at a word boundary and end in ``" ..."``.
    title:
        ``False``: leave the title and year out (the description alone, so that a word the
        titles share cannot make two movies alike); a movie with nothing else to say keeps it.

    Returns
    -------
    list[str]
        One text per requested movie, e.g.
        ``"Heat (1995). Genres: Action, Crime. Tags: heist. Overview: ..."``.

    Raises
    ------
    IndexError
        An index outside ``0..n_movies-1``.
    """
    if index is None:
        rows = np.arange(data.n_movies, dtype=np.int64)
    else:
        rows = np.atleast_1d(np.asarray(index))
        if rows.size and rows.dtype.kind not in "iu":
            raise TypeError(f"movie indices must be integers, got dtype {rows.dtype}")
        rows = rows.astype(np.int64).ravel()
        bad = (rows < 0) | (rows >= data.n_movies)
        if bad.any():
            raise IndexError(f"movie index out of range 0..{data.n_movies - 1}: {rows[bad][:5].tolist()}")
    info = data.movie_info
    titles = info["display_title"].to_numpy(object)
    years = info["year"].to_numpy(np.int64)
    genres = info["genres"].to_numpy(object)
    overviews = info["overview"].to_numpy(object) if "overview" in info else None
    tag_names = np.asarray(data.tags.ids, dtype=object)
    # a tag naming one of the movie's own genres would repeat the "Genres:" part
    genre_names = list(data.genre_names)
    genre_tag = dict(
        zip(
            genre_names,
            data.tags.index(
                normalise_tags(pd.Series(genre_names, dtype=object)).to_numpy(object), missing="mask"
            )
            if genre_names
            else [],
            strict=True,
        )
    )
    mt = data.movie_tags
    out: list[str] = []
    for i in rows:  # per movie: building strings
        name = str(titles[i])
        head = f"{name} ({years[i]})." if years[i] > 0 else f"{name}."
        parts = [head] if title else []
        if genres[i]:
            parts.append("Genres: " + ", ".join(genres[i]) + ".")
        if max_tags > 0 and mt.shape[1]:
            cols = mt.indices[mt.indptr[i] : mt.indptr[i + 1]]
            weights = mt.data[mt.indptr[i] : mt.indptr[i + 1]]
            keep = (weights > 0) & ~np.isin(cols, [genre_tag.get(g, -1) for g in genres[i]])
            cols, weights = cols[keep], weights[keep]
            if cols.size:
                names = tag_names[cols].astype(str)
                order = np.lexsort((names, -weights))[:max_tags]
                parts.append("Tags: " + ", ".join(names[order]) + ".")
        if overviews is not None:
            ov = overviews[i]
            if isinstance(ov, str) and ov.strip():
                parts.append("Overview: " + _clip(ov, max_overview_chars))
        out.append(" ".join(parts) if parts else head)
    return out
