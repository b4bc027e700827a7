"""Training examples of the sequence models: right-padded windows of flat histories.

Histories are flat arrays (all users' steps end to end, each user's in time order) in two
views: the full histories (seen and disliked steps included), then the liked movies alone
in the same order, as a page session holds them; position ``>= n_rows`` is the second view.
"""

from __future__ import annotations

import numpy as np

from movierec.models.sequence.net import FB_PAD, FB_START


def window(
    movie: np.ndarray,
    fb: np.ndarray,
    first: np.ndarray,
    cut: np.ndarray,
    max_len: int,
    start_token: int,
    pad_token: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Right-padded windows of flat sequences ending just before ``cut``: a start step, then
    the last ``max_len - 1`` steps at most.

    Parameters
    ----------
    movie, fb:
        Flat movie indices and feedback (+1/0/-1) of all sequences, ``(N,)``.
    first:
        Flat position of each example's sequence start, ``(B,)`` int64.
    cut:
        Flat position of each example's target (exclusive end of its input), ``(B,)`` int64.

    Returns
    -------
    tokens, feedback, lengths: see :class:`~movierec.models.sequence.net.Batch`.
    """
    n = np.minimum(cut - first + 1, max_len)  # steps including the start step
    steps = np.arange(max_len)
    idx = (cut - n)[:, None] + steps[None, :]
    valid = steps[None, :] < n[:, None]
    start = valid & (idx == (first - 1)[:, None])
    real = valid & ~start
    safe = np.clip(idx, 0, max(movie.size - 1, 0))
    tokens = np.full(idx.shape, pad_token, np.int64)
    feedback = np.full(idx.shape, FB_PAD, np.int64)
    if movie.size:
        tokens[real] = movie[safe[real]]
        feedback[real] = fb[safe[real]].astype(np.int64) + 2
    tokens[start] = start_token
    feedback[start] = FB_START
    return tokens, feedback, n.astype(np.int64)


def position_windows(
    trainable: np.ndarray,
    owner: np.ndarray,
    n_rows: int,
    view_first: np.ndarray,
    view_end: np.ndarray,
    span: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Windows for training on every position at once: per (view, user), blocks of ``span``
    consecutive trainable targets; a window ends at its block's last target and counts only
    the block's targets (earlier steps are context), so windows of ``2 * span`` steps overlap
    by half and each target is trained once.

    ``trainable``, ``owner``: ``(N,)`` whether each flat position is a target, and its user;
    ``view_first``, ``view_end``: ``(2, n_users)`` each user's first and end position per view.
    Returns per window its first target position, its last target (the cut), its view (0 full,
    1 likes only) and its user, each ``(W,)`` int64.
    """
    pos = np.flatnonzero(trainable)
    view = (pos >= n_rows).astype(np.int64)
    first_of = view_first[view, owner[pos]]
    key = np.stack([view, owner[pos], (pos - first_of) // span])
    _, start_idx = np.unique(key, axis=1, return_index=True)
    first = (
        view_first[view[start_idx], owner[pos[start_idx]]]
        + (pos[start_idx] - first_of[start_idx]) // span * span
    )
    ex_view, ex_user = view[start_idx], owner[pos[start_idx]]
    cut = np.minimum(first + span, view_end[ex_view, ex_user]) - 1
    return first, cut, ex_view, ex_user
