"""Top-N selection: the one place that cuts a score matrix to its best entries.

Used by every layer above it (models for their neighbours and validation, ranking for
recommendations, evaluation for its protocols); it imports nothing of the project.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp


def top_per_row(matrix: sp.spmatrix | sp.sparray, k: int) -> np.ndarray:
    """Column indices of each row's ``k`` heaviest entries, heaviest first (ties by column index).

    Returns ``(n_rows, max(k, 1))`` int64 padded with ``n_cols`` (e.g. a movie's top tags, or
    a movie's nearest neighbours in a similarity matrix).
    """
    m = sp.csr_matrix(matrix)
    n_rows, n_cols = m.shape
    out = np.full((n_rows, max(k, 1)), n_cols, np.int64)
    if m.nnz == 0 or k <= 0:
        return out
    rows = np.repeat(np.arange(n_rows), np.diff(m.indptr))
    order = np.lexsort((m.indices, -m.data, rows))  # per row: heaviest first, ties by column
    rank = np.arange(m.nnz) - m.indptr[rows[order]]
    keep = rank < k
    out[rows[order][keep], rank[keep]] = m.indices[order][keep]
    return out


def top_n(
    scores: np.ndarray,
    n: int,
    *,
    exclude: sp.csr_matrix | Sequence[np.ndarray] | None = None,
    allowed: np.ndarray | None = None,
    fallback: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``n`` movie indices per row of ``scores``.

    Parameters
    ----------
    scores:
        ``(B, n_movies)`` float scores; NaN = cannot score. Not modified.
    n:
        How many to return per row.
    exclude:
        Movie indices to drop per row: a CSR ``(B, n_movies)`` matrix or a list of
        ``B`` index arrays (the query's own movies, a user's training items).
    allowed:
        Bool ``(n_movies,)`` for every row, or ``(B, n_movies)`` per row: only these
        movies may be returned (filters).
    fallback:
        ``(n_movies,)`` scores used for a row with no finite score (popularity).

    Returns
    -------
    indices:
        ``(B, n)`` int64 movie indices, best first (score descending, then movie index
        ascending, also among movies tied at the ``n``-th place), ``-1`` where fewer
        than ``n`` movies are eligible.
    values:
        ``(B, n)`` float32 scores of those movies (``-inf`` at padding).
    """
    s = np.array(scores, dtype=np.float32, copy=True, ndmin=2)
    b, m = s.shape
    nan = np.isnan(s)
    if fallback is not None:
        empty = nan.all(axis=1) if m else np.zeros(b, dtype=bool)
        if empty.any():
            s[empty] = np.asarray(fallback, np.float32)[None, :]
            nan[empty] = False
    s[nan] = -np.inf
    if exclude is not None:
        if sp.issparse(exclude):
            ex = sp.csr_matrix(exclude)
            rows = np.repeat(np.arange(ex.shape[0]), np.diff(ex.indptr))
            s[rows, ex.indices] = -np.inf
        else:
            lists = list(exclude)
            if lists:
                rows = np.repeat(np.arange(len(lists)), [len(x) for x in lists])
                cols = np.concatenate([np.asarray(x, np.int64) for x in lists])
                s[rows, cols] = -np.inf
    if allowed is not None:
        ok = np.asarray(allowed, dtype=bool)
        if ok.ndim == 1:
            s[:, ~ok] = -np.inf
        else:
            s[~ok] = -np.inf
    k = min(n, m)
    if k <= 0:
        return np.full((b, n), -1, np.int64), np.full((b, n), -np.inf, np.float32)
    if k < m:
        part = np.argpartition(-s, k - 1, axis=1)[:, :k]
        vals = np.take_along_axis(s, part, axis=1)
        _lowest_index_ties(s, part, vals)
    else:
        part = np.tile(np.arange(m), (b, 1))
        vals = np.take_along_axis(s, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)  # by score desc, index asc for ties
    idx = np.take_along_axis(part, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    idx = np.where(np.isfinite(vals), idx, -1)
    if k < n:
        idx = np.pad(idx, ((0, 0), (0, n - k)), constant_values=-1)
        vals = np.pad(vals, ((0, 0), (0, n - k)), constant_values=-np.inf)
    return idx.astype(np.int64), vals.astype(np.float32)


def _lowest_index_ties(s: np.ndarray, part: np.ndarray, vals: np.ndarray) -> None:
    """Make an ``np.argpartition`` cut deterministic: where movies tie at the k-th score and
    only some of them made the cut, take the lowest-index ones (``part`` changes in place).

    ``s``: ``(B, n_movies)`` float32 scores (no NaN); ``part``: ``(B, k)`` movie indices of
    each row's k best in any order (``k < n_movies``); ``vals``: ``(B, k)`` their scores,
    ``vals[:, -1]`` the k-th best (argpartition's pivot). Every movie scoring above the
    k-th is in ``part`` already, so only the slots holding tied movies are refilled, with
    the same score. Rows whose k-th score is ``-inf`` are left alone: those are padding.
    """
    m, k = s.shape[1], part.shape[1]
    kth = vals[:, -1]
    straddle = np.flatnonzero((kth > -np.inf) & (np.count_nonzero(s >= kth[:, None], axis=1) > k))
    if not straddle.size:
        return
    cut = kth[straddle, None]
    tied_slot = vals[straddle] == cut  # (R, k): the slots to refill, ``need`` per row
    need = np.count_nonzero(tied_slot, axis=1)
    first = np.zeros((straddle.size, k), np.int64)  # per row: its first ``need`` tied movies
    pending = np.arange(straddle.size)
    for width in (min(m, 8 * k), m):  # where ties are many (a score floor), a prefix holds enough
        if not pending.size:
            break
        tied = s[straddle[pending], :width] == cut[pending]
        count = np.count_nonzero(tied, axis=1)
        done = (count >= need[pending]) | (width == m)  # the whole row holds enough
        row, col = np.divmod(np.flatnonzero(tied[done]), width)  # each row's tied movies, in order
        count, rows = count[done], pending[done]
        rank = np.arange(row.size) - np.repeat(np.cumsum(count) - count, count)
        ok = rank < need[rows][row]
        first[rows[row[ok]], rank[ok]] = col[ok]
        pending = pending[~done]
    fill = np.arange(k) < need[:, None]
    refill = part[straddle]
    refill[tied_slot] = first[fill]  # both row-major, ``need`` per row
    part[straddle] = refill
