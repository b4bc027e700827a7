"""Exact re-scoring of ANN candidates (:func:`candidates_then_rescore`): the index proposes,
numpy scores exactly, exclusions and filters drop, the pool widens where too few are left,
and an exact scan of the allowed items serves the rows still short.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp

from movierec.retrieval.mips import MipsIndex, as_vectors, check_k, check_mask
from movierec.topn import top_n

#: ``adjust(rows (r,) int64, candidates (r, C) int64) -> (r, C) float``: see :func:`candidates_then_rescore`
Adjust = Callable[[np.ndarray, np.ndarray], np.ndarray]

__all__ = ["Adjust", "candidates_then_rescore"]


def _exclusion_keys(
    exclude: sp.spmatrix | sp.sparray | Sequence[np.ndarray] | None, b: int, n: int
) -> np.ndarray:
    """Sorted ``row * n + movie`` keys of the excluded (query, movie index) pairs."""
    if exclude is None:
        return np.zeros(0, np.int64)
    if sp.issparse(exclude):
        ex = sp.csr_matrix(exclude)
        if ex.shape != (b, n):
            raise ValueError(f"exclude has shape {ex.shape}, expected ({b}, {n})")
        rows = np.repeat(np.arange(b, dtype=np.int64), np.diff(ex.indptr))
        cols = ex.indices.astype(np.int64)
    else:
        lists = [np.asarray(x).ravel() for x in exclude]
        if len(lists) != b:
            raise ValueError(f"exclude has {len(lists)} rows, expected one per query ({b})")
        for x in lists:
            if x.size and x.dtype.kind not in "iu":
                raise TypeError(f"exclude must hold integer movie indices, got dtype {x.dtype}")
        rows = np.repeat(np.arange(b, dtype=np.int64), [x.size for x in lists])
        cols = np.concatenate([x.astype(np.int64) for x in lists]) if lists else np.zeros(0, np.int64)
    if cols.size and (cols.min() < 0 or cols.max() >= n):
        raise ValueError(f"exclude holds movie indices outside [0, {n})")
    return np.unique(rows * n + cols)


def _select(scores: np.ndarray, cand: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top ``k`` per row of ``scores`` (``-inf`` = ineligible), ties by lower movie index:
    :func:`movierec.topn.top_n` over the candidates put in index order.

    ``cand`` is ``(r, C)`` or ``(C,)`` (shared by all rows). Returns indices ``(r, k)``
    (``-1`` padded), scores ``(r, k)`` and the number of eligible candidates per row.
    """
    n_ok = np.isfinite(scores).sum(axis=1)
    if scores.shape[1] == 0 or k <= 0:
        return (
            np.full((scores.shape[0], k), -1, np.int64),
            np.full((scores.shape[0], k), -np.inf, np.float32),
            n_ok,
        )
    if cand.ndim == 1:
        order = np.argsort(cand, kind="stable")
        pos, vals = top_n(scores[:, order], k)
        ids = cand[order][np.maximum(pos, 0)]
    else:
        order = np.argsort(cand, axis=1, kind="stable")
        pos, vals = top_n(np.take_along_axis(scores, order, axis=1), k)
        ids = np.take_along_axis(np.take_along_axis(cand, order, axis=1), np.maximum(pos, 0), axis=1)
    return np.where(pos >= 0, ids, -1).astype(np.int64), vals, n_ok


def _mask(
    scores: np.ndarray,
    cand: np.ndarray,
    rows: np.ndarray,
    n: int,
    ex_keys: np.ndarray,
    allowed: np.ndarray | None,
) -> None:
    """Set ``scores`` to ``-inf`` in place where the candidate is padding, excluded or not allowed."""
    full = np.broadcast_to(cand, scores.shape)
    bad = full < 0
    safe = np.where(bad, 0, full)
    if allowed is not None:
        bad |= ~allowed[safe]
    if ex_keys.size:
        bad |= np.isin(rows[:, None] * n + safe, ex_keys)
    scores[bad] = -np.inf


def _exact(
    q: np.ndarray,
    rows: np.ndarray,
    items: np.ndarray,
    k: int,
    ex_keys: np.ndarray,
    allowed: np.ndarray | None,
    adjust: Adjust | None = None,
    chunk_elems: int = 1 << 22,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top ``k`` over all allowed items for the queries ``q`` (original rows ``rows``)."""
    n = items.shape[0]
    cand = np.flatnonzero(allowed) if allowed is not None else np.arange(n, dtype=np.int64)
    sub = items[cand] if allowed is not None else items
    ex_rows, ex_cols = np.divmod(ex_keys, n)
    pos = np.minimum(np.searchsorted(cand, ex_cols), max(cand.size - 1, 0))
    hit = cand[pos] == ex_cols if cand.size else np.zeros(ex_cols.size, bool)
    ex_rows, pos = ex_rows[hit], pos[hit]  # excluded (row, position in cand) pairs
    out_i = np.full((q.shape[0], k), -1, np.int64)
    out_v = np.full((q.shape[0], k), -np.inf, np.float32)
    step = max(1, chunk_elems // max(1, cand.size))
    for s in range(0, q.shape[0], step):
        chunk = rows[s : s + step]
        scores = q[s : s + step] @ sub.T
        if adjust is not None:
            scores += adjust(chunk, np.broadcast_to(cand, scores.shape))
        local = np.searchsorted(chunk, ex_rows)  # rows are sorted
        local = np.minimum(local, chunk.size - 1)
        sel = chunk[local] == ex_rows
        scores[local[sel], pos[sel]] = -np.inf
        out_i[s : s + step], out_v[s : s + step], _ = _select(scores, cand, k)
    return out_i, out_v


def _ann_pass(
    index: MipsIndex,
    q: np.ndarray,
    rows: np.ndarray,
    items: np.ndarray,
    k: int,
    pool: int,
    ex_keys: np.ndarray,
    allowed: np.ndarray | None,
    adjust: Adjust | None = None,
    chunk_elems: int = 1 << 23,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One candidate pass: search ``pool`` per query, rescore exactly, mask, keep ``k``.

    With ``adjust`` (never positive), a row counts as done only if its ``k``-th adjusted
    score is no lower than its pool's lowest unadjusted one, the best any movie outside
    the pool can score: else its ``n_ok`` is reported as short so the pool widens.
    """
    ids = np.empty((q.shape[0], k), np.int64)
    vals = np.empty((q.shape[0], k), np.float32)
    n_ok = np.empty(q.shape[0], np.int64)
    step = max(1, chunk_elems // (pool * items.shape[1]))
    for s in range(0, q.shape[0], step):
        qs = q[s : s + step]
        _, cand = index.search(qs, pool, allowed=allowed)
        safe = np.where(cand >= 0, cand, 0)
        scores = np.matmul(items[safe], qs[:, :, None])[:, :, 0]
        floor = None
        if adjust is not None:
            floor = np.where(cand >= 0, scores, np.inf).min(axis=1)
            scores += adjust(rows[s : s + step], safe)
        _mask(scores, cand, rows[s : s + step], index.n_items, ex_keys, allowed)
        ids[s : s + step], vals[s : s + step], n_ok[s : s + step] = _select(scores, cand, k)
        if floor is not None:
            unsure = vals[s : s + step, k - 1] < floor
            n_ok[s : s + step][unsure] = 0
    return ids, vals, n_ok


def candidates_then_rescore(
    index: MipsIndex,
    query_vectors: np.ndarray,
    item_vectors: np.ndarray,
    k: int,
    n_candidates: int | None = None,
    *,
    exclude: sp.spmatrix | sp.sparray | Sequence[np.ndarray] | None = None,
    allowed_mask: np.ndarray | None = None,
    max_retries: int = 3,
    widen_factor: int = 4,
    exact_fallback: bool = True,
    adjust: Adjust | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` items per query: ANN candidates, exact scores, exclusions and filters.

    The ANN index proposes ``n_candidates`` allowed items per query (at least
    ``k`` plus the largest number of excluded movies in a row; ``allowed_mask``
    is applied inside the index search); they are scored exactly
    (``query @ item_vectors[candidate]``), excluded ones are dropped and the
    best ``k`` kept. Rows left with fewer than ``k`` eligible candidates
    are searched again with a pool ``widen_factor`` times larger, at most
    ``max_retries`` times; rows still short then get an exact scan of all allowed
    items (``exact_fallback``), so they are padded only when fewer than ``k``
    items are eligible at all. When the allowed set is no larger than the pool,
    the allowed items are scored exactly without the index.

    Parameters
    ----------
    index:
        A :class:`MipsIndex` built from ``item_vectors``.
    query_vectors:
        ``(B, dim)`` float array.
    item_vectors:
        ``(n_items, dim)`` float32 array the index was built from (row = movie *index*).
    k:
        How many items per query.
    n_candidates:
        Initial candidate pool per query (``>= k``); default ``max(4 * k, 100)``.
    exclude:
        Movie *indices* to drop per query: a sparse ``(B, n_items)`` matrix or a
        list of ``B`` int arrays (the query's own movies), as in
        :func:`movierec.topn.top_n`.
    allowed_mask:
        Bool ``(n_items,)``: only these items may be returned (filters).
    max_retries, widen_factor:
        Bounds on widening the pool when exclusions / filters leave fewer than ``k``.
    exact_fallback:
        Scan all allowed items exactly for rows still short after the retries.
    adjust:
        ``adjust(rows, candidates) -> (r, C)`` float, never positive: added to the exact
        scores of the candidate item *indices* ``candidates`` ``(r, C)`` of the query rows
        ``rows`` ``(r,)`` (a model's score terms that are not an inner product, such as
        the sequence model's dislike push). A row's pool widens until its top ``k`` is
        exact: no adjusted candidate in it below the pool's lowest unadjusted score.

    Returns
    -------
    indices:
        ``(B, k)`` int64 movie *indices*, best first (ties: lower index first),
        ``-1`` where fewer than ``k`` were found. Same order of outputs as
        :func:`movierec.topn.top_n`.
    scores:
        ``(B, k)`` float32 exact scores (``-inf`` at padding).
    """
    k = check_k(k)
    if max_retries < 0 or widen_factor < 2:
        raise ValueError("max_retries must be >= 0 and widen_factor >= 2")
    q = as_vectors(query_vectors, "query_vectors", index.dim)
    items = np.asarray(item_vectors)
    if items.ndim != 2 or items.shape != (index.n_items, index.dim):
        raise ValueError(
            f"item_vectors has shape {items.shape}, but the index holds ({index.n_items}, {index.dim})"
        )
    if items.dtype != np.float32:
        raise TypeError(f"item_vectors must be float32 (convert once, not per call), got {items.dtype}")
    n, b = index.n_items, q.shape[0]
    allowed: np.ndarray | None = None
    n_allowed = n
    if allowed_mask is not None:
        allowed = check_mask(allowed_mask, n)
        n_allowed = int(allowed.sum())
    pool = check_k(n_candidates, "n_candidates") if n_candidates is not None else max(4 * k, 100)
    if pool < k:
        raise ValueError(f"n_candidates ({pool}) must be >= k ({k})")
    ex_keys = _exclusion_keys(exclude, b, n)
    out_i = np.full((b, k), -1, np.int64)
    out_v = np.full((b, k), -np.inf, np.float32)
    if b == 0 or n_allowed == 0:
        return out_i, out_v
    if ex_keys.size:  # room for the most-excluded row's held movies
        pool = max(pool, k + int(np.bincount(ex_keys // n, minlength=b).max()))
    todo = np.arange(b, dtype=np.int64)
    for _ in range(max_retries + 1):
        if pool >= n_allowed:  # scoring the allowed items exactly is as cheap as the index
            break
        ids, vals, n_ok = _ann_pass(index, q[todo], todo, items, k, pool, ex_keys, allowed, adjust)
        done = n_ok >= k
        out_i[todo[done]], out_v[todo[done]] = ids[done], vals[done]
        short = ~done
        if not exact_fallback:  # keep the best we have; later passes may improve it
            out_i[todo[short]], out_v[todo[short]] = ids[short], vals[short]
        todo = todo[short]
        if todo.size == 0:
            return out_i, out_v
        pool = min(n, pool * widen_factor)
    else:
        if not exact_fallback:
            return out_i, out_v
    out_i[todo], out_v[todo] = _exact(q[todo], todo, items, k, ex_keys, allowed, adjust)
    return out_i, out_v
