"""Similar movies: by collaboration (item-kNN), by content (text embeddings), or a blend."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class SimilarityModel(Protocol):
    def similar(self, movie: int, n: int = 10) -> tuple[np.ndarray, np.ndarray]: ...


BY = ("collab", "content", "blend")


def similar_movies(
    movie: int,
    n: int,
    *,
    by: str = "blend",
    collab: SimilarityModel | None = None,
    content: SimilarityModel | None = None,
    content_weight: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` movies most similar to movie *index* ``movie``.

    ``blend`` takes the top ``3n`` of each source, scales each source's
    similarities by its best one, and ranks by ``(1 - w) * collab + w * content``
    (a movie missing from one source counts 0 there), so a movie few people
    rated still gets content neighbours. Returns movie indices ``(<= n,)`` int64
    and scores float32, best first.
    """
    if by not in BY:
        raise ValueError(f"by must be one of {', '.join(BY)}, got {by!r}")
    sources: list[tuple[SimilarityModel, float]] = []
    if by in ("collab", "blend") and collab is not None:
        sources.append((collab, 1.0 - content_weight if by == "blend" else 1.0))
    if by in ("content", "blend") and content is not None:
        sources.append((content, content_weight if by == "blend" else 1.0))
    if not sources:
        raise ValueError(
            f"similar movies by {by!r} needs a {'collaborative' if by == 'collab' else 'content'} model"
        )
    combined: dict[int, float] = {}
    for model, weight in sources:
        idx, sc = model.similar(movie, 3 * n if len(sources) > 1 else n)
        if len(idx) == 0:
            continue
        top = float(np.max(sc)) or 1.0
        for i, s in zip(idx.tolist(), (sc / top).tolist(), strict=True):  # at most 3n items
            combined[i] = combined.get(i, 0.0) + weight * s
    ranked = sorted(combined.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return np.asarray([i for i, _ in ranked], np.int64), np.asarray([s for _, s in ranked], np.float32)
