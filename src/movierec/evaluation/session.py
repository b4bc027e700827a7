"""Interactive-session evaluations: what a click does, not only what comes next.

* :func:`dislike_effect`: dislike the top recommendation of a session and
  measure how far that movie's nearest neighbours fall in the ranking.
* :func:`clicks_to_relevant`: simulate a visitor who clicks Like on their own
  movies and count the clicks until one of their held-out likes shows in the
  top ``k``.

Both take fitted models and plain index arrays; they never refit anything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from movierec.models.base import DISLIKE, LIKE, Query, Recommender
from movierec.topn import top_n

__all__ = ["DislikeEffect", "clicks_to_relevant", "dislike_effect", "summarise_clicks"]

#: sessions scored per model call
_BATCH = 128


@dataclass
class DislikeEffect:
    """Per session: where the disliked movie's neighbours ranked before and after the dislike.

    Attributes
    ----------
    disliked:
        Movie index disliked per session (the top recommendation), ``(S,)`` int64.
    before, after:
        0-based ranks of its neighbours among the movies the session does not hold,
        ``(S, n)`` float64, NaN where a session has fewer neighbours.
    """

    disliked: np.ndarray
    before: np.ndarray
    after: np.ndarray

    def summary(self, k: int = 10) -> dict[str, float]:
        """Median rank before/after, mean rank shift, and neighbours' share in the top ``k``."""
        ok = ~np.isnan(self.before)
        return {
            "median_rank_before": float(np.median(self.before[ok])) if ok.any() else float("nan"),
            "median_rank_after": float(np.median(self.after[ok])) if ok.any() else float("nan"),
            "mean_shift": float(np.mean(self.after[ok] - self.before[ok])) if ok.any() else float("nan"),
            f"in_top{k}_before": float(np.mean(self.before[ok] < k)) if ok.any() else float("nan"),
            f"in_top{k}_after": float(np.mean(self.after[ok] < k)) if ok.any() else float("nan"),
        }


def _ranks(scores: np.ndarray, movies: np.ndarray, held: Sequence[np.ndarray]) -> np.ndarray:
    """0-based rank of ``movies`` ``(S, n)`` (-1 = none) in each row of ``scores``, among movies
    not in ``held``; ties count half. NaN where ``movies`` is -1."""
    scores = scores.astype(np.float64, copy=True)
    rows = np.repeat(np.arange(len(held)), [h.size for h in held])
    if rows.size:
        scores[rows, np.concatenate(held)] = -np.inf
    valid = movies >= 0
    target = np.take_along_axis(scores, np.where(valid, movies, 0), axis=1)  # (S, n)
    sorted_scores = np.sort(scores, axis=1)  # ascending
    out = np.empty(movies.shape, np.float64)
    for i in range(scores.shape[0]):  # per session: searchsorted over its sorted row
        lo = np.searchsorted(sorted_scores[i], target[i], side="left")
        hi = np.searchsorted(sorted_scores[i], target[i], side="right")
        out[i] = (scores.shape[1] - hi) + 0.5 * (hi - lo - 1)
    out[~valid] = np.nan
    return out


def dislike_effect(
    model: Recommender,
    sessions: Sequence[Query],
    neighbours: Callable[[int], np.ndarray],
    n_neighbours: int = 10,
) -> DislikeEffect:
    """Dislike each session's top recommendation; rank its neighbours before and after.

    Parameters
    ----------
    model:
        A fitted model scoring sessions (``score``).
    sessions:
        Sessions (held-out users' histories or liked movies), ``S`` of them.
    neighbours:
        ``neighbours(movie_index)`` returns movie indices most similar first
        (e.g. :meth:`movierec.models.knn.ItemKNN.similar`'s first array).
    n_neighbours:
        Neighbours followed per disliked movie (those the session does not hold).
    """
    disliked = np.empty(len(sessions), np.int64)
    nbrs = np.full((len(sessions), n_neighbours), -1, np.int64)
    before = np.empty((len(sessions), n_neighbours))
    after = np.empty((len(sessions), n_neighbours))
    for s in range(0, len(sessions), _BATCH):
        batch = list(sessions[s : s + _BATCH])
        scores = model.score(batch)
        top, _ = top_n(scores, 1, exclude=[q.movies for q in batch])
        disliked[s : s + len(batch)] = top[:, 0]
        for i, q in enumerate(batch):  # per session: neighbour lists are short
            cand = np.asarray(neighbours(int(top[i, 0])), np.int64)
            cand = cand[~np.isin(cand, q.movies) & (cand != top[i, 0])][:n_neighbours]
            nbrs[s + i, : cand.size] = cand
        held = [np.append(q.movies, top[i, 0]) for i, q in enumerate(batch)]
        after_q = [
            Query(
                movies=np.append(q.movies, top[i, 0]),
                feedback=np.append(q.feedback, np.int8(DISLIKE)),
                liked_tags=q.liked_tags,
                disliked_tags=q.disliked_tags,
            )
            for i, q in enumerate(batch)
        ]
        before[s : s + len(batch)] = _ranks(scores, nbrs[s : s + len(batch)], held)
        after[s : s + len(batch)] = _ranks(model.score(after_q), nbrs[s : s + len(batch)], held)
    return DislikeEffect(disliked, before, after)


def clicks_to_relevant(
    model: Recommender,
    own: Sequence[np.ndarray],
    held_out: Sequence[np.ndarray],
    rng: np.random.Generator,
    *,
    k: int = 10,
    max_clicks: int = 10,
    fallback: np.ndarray | None = None,
) -> np.ndarray:
    """Clicks a simulated visitor needs before a held-out like shows in the top ``k``.

    Each visitor starts with an empty session. While none of their ``held_out``
    movies is in the top ``k``, they click Like once: on the best-ranked of
    their ``own`` movies among the top ``k`` if one is there, else on a random
    one of their ``own`` movies not yet liked (as if found by search).

    Parameters
    ----------
    own, held_out:
        Per visitor, movie indices ``(n_i,)`` int64: likes they may click, and
        likes that count as found (disjoint).
    fallback:
        ``(n_movies,)`` scores for rows the model cannot score (the empty session).

    Returns
    -------
    np.ndarray
        ``(V,)`` int64 clicks per visitor; ``max_clicks + 1`` = not found within ``max_clicks``
        (or the visitor ran out of movies to click).
    """
    if len(own) != len(held_out):
        raise ValueError(
            f"own and held_out must have one entry per visitor, got {len(own)} and {len(held_out)}"
        )
    n = len(own)
    liked: list[np.ndarray] = [np.zeros(0, np.int64) for _ in range(n)]
    clicks = np.full(n, max_clicks + 1, np.int64)
    active = np.arange(n)
    for step in range(max_clicks + 1):
        if active.size == 0:
            break
        still: list[int] = []
        for s in range(0, active.size, _BATCH):
            users = active[s : s + _BATCH]
            queries = [Query(movies=liked[u], feedback=np.full(liked[u].size, LIKE, np.int8)) for u in users]
            scores = model.score(queries)
            top, _ = top_n(scores, k, exclude=[liked[u] for u in users], fallback=fallback)
            for i, u in enumerate(users):  # per visitor: a click is one decision
                shown = top[i][top[i] >= 0]
                if np.isin(shown, held_out[u]).any():
                    clicks[u] = step
                    continue
                mine = shown[np.isin(shown, own[u])]
                left = np.setdiff1d(own[u], liked[u])
                if mine.size:
                    pick = mine[0]
                elif left.size:
                    pick = rng.choice(left)
                else:
                    continue  # nothing left to click: not found
                liked[u] = np.append(liked[u], np.int64(pick))
                still.append(int(u))
        active = np.asarray(still, np.int64)
    return clicks


def summarise_clicks(clicks: np.ndarray, max_clicks: int) -> dict[str, float]:
    """Share found with 0, <= 1, <= 3, <= 5 clicks, never, and the median (``max_clicks + 1`` = never)."""
    found = clicks <= max_clicks
    out = {f"found_by_{c}": float(np.mean(clicks <= c)) for c in (0, 1, 3, 5)}
    out["never"] = float(np.mean(~found))
    out["median_clicks"] = float(np.median(clicks))
    return out
