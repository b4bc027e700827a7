"""Movies similar to one movie: how near the served model puts every movie to it, blended
with the cosine of the movies' tag / genre profiles, each standardised (the meaning
:meth:`~movierec.serving.engine.Engine.similar` documents).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from movierec.models.base import Query, Recommender
from movierec.serving.answers import ScoredMovie

__all__ = ["model_similarity", "similar_movies"]


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
