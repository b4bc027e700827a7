"""Movies similar to one movie, in two spaces.

* :func:`similar_movies`, the page's: how near the served model puts every movie to it,
  blended with the cosine of the movies' tag / genre profiles, each standardised (the meaning
  :meth:`~movierec.serving.engine.Engine.similar` documents).
* :func:`nearest_movies`: the cosine of the model's own movie vectors
  (:meth:`~movierec.models.base.Recommender.movie_embeddings`), nothing blended in.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from movierec.models.base import Query, Recommender
from movierec.serving.answers import ScoredMovie
from movierec.topn import top_n

__all__ = ["model_similarity", "nearest_movies", "similar_movies"]


def model_similarity(model: Recommender, i: int) -> np.ndarray:
    """``(n_movies,)`` float64: how near the model puts each movie to movie index ``i``."""
    n = model.n_movies
    own = getattr(model, "similar", None)
    if callable(own):
        idx, sims = own(i, n)
        out = np.full(n, np.nan)
        out[np.asarray(idx, np.int64)] = np.asarray(sims, np.float64)
        return out
    return model.score([Query.session([i])])[0].astype(np.float64)


def similar_movies(model: Recommender, profiles: sp.csr_matrix, i: int, n: int) -> tuple[ScoredMovie, ...]:
    """The ``n`` movies nearest movie index ``i`` (``profiles``: the movies' unit-length tag /
    genre rows), best first, ties by lower index; movie ``i`` itself left out."""
    assert model.movies is not None
    tags = np.asarray((profiles @ profiles[i].T).todense()).ravel()
    sims = _standardise(model_similarity(model, i)) + _standardise(tags)
    sims[i] = -np.inf
    k = min(n, int(np.isfinite(sims).sum()))
    if k <= 0:
        return ()
    order = np.lexsort((np.arange(sims.size), -sims))[:k]
    ids = model.movies.id(order)
    return tuple(ScoredMovie(int(m), float(sims[j])) for m, j in zip(ids, order, strict=True))


def nearest_movies(model: Recommender, i: int, n: int) -> tuple[ScoredMovie, ...]:
    """The ``n`` movies nearest movie *index* ``i`` in the model's own embedding space, best
    first, ties by lower index; scores are the cosines of their movie vectors with ``i``'s.

    Movie ``i`` itself is left out, and a movie whose vector is zero (or not finite) matches
    nothing (no movies at all when it is ``i``'s). Raises ``ValueError`` for a model
    without movie embeddings, ``IndexError`` for ``i`` outside its vocabulary.
    """
    emb = model.movie_embeddings()
    if emb is None:
        raise ValueError(f"model {model.name!r} has no movie embeddings of its own")
    movies = model.movies
    if movies is None or emb.ndim != 2 or emb.shape[0] != len(movies):
        raise ValueError(
            f"model {model.name!r}: movie embeddings of shape {emb.shape} do not match its "
            f"{0 if movies is None else len(movies)} movies"
        )
    if not 0 <= i < emb.shape[0]:
        raise IndexError(f"movie index out of range 0..{emb.shape[0] - 1}: {i}")
    x = np.asarray(emb, np.float64)
    norms = np.linalg.norm(x, axis=1)
    usable = np.isfinite(norms) & (norms > 0)
    sims = np.full(x.shape[0], np.nan)
    if usable[i]:
        sims[usable] = (x[usable] @ x[i]) / (norms[usable] * norms[i])
    idx, vals = top_n(sims[None, :], n, exclude=[np.array([i])])
    keep = idx[0] >= 0
    order, cos = idx[0][keep], vals[0][keep]
    ids = movies.id(order)
    return tuple(ScoredMovie(int(m), float(c)) for m, c in zip(ids, cos, strict=True))


def _standardise(x: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` over finite entries, ``(n,)`` float64; non-finite become ``-inf``."""
    x = np.asarray(x, np.float64)
    ok = np.isfinite(x)
    out = np.full(x.shape, -np.inf)
    if ok.any():
        v = x[ok]
        sd = v.std()
        out[ok] = (v - v.mean()) / (sd if sd > 0 else 1.0)
    return out
