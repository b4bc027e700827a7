"""Content embeddings, cold start and the hybrid on ml-latest-small.

Run::

    .venv/bin/python benchmarks/bench_content.py [--home DIR] [--cold] [--seed 0]

Prints:

1. embedding time of the catalogue (movie texts + tag names), cold (empty
   cache, with ``--cold``) and warm (everything cached);
2. cold start: all ratings of a seeded random 10 % of the rated movies are held
   out of training; each user who rated one of them gets a ranking of *only*
   those held-out movies; HR@10 / NDCG@10 (every held-out rating relevant) of
   content and hybrid against popularity and random;
3. warm top-N (per-user random 20 % test, full catalogue minus training items):
   NDCG@10 of the hybrid against its collaborative part (and content), by the
   user's training-history length.

Timings depend on what else runs on the machine (the CPU is shared).
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from movierec.content.embeddings import TextEncoder
from movierec.content.text import movie_text
from movierec.data.dataset import Dataset
from movierec.data.load import load_dataset
from movierec.data.splits import per_user_holdout
from movierec.evaluation.metrics import ranking_metrics
from movierec.models.base import Recommender
from movierec.models.content import ContentRecommender
from movierec.models.hybrid import Hybrid
from movierec.models.popularity import Popularity
from movierec.models.registry import available
from movierec.settings import Settings
from movierec.topn import top_n

BATCH = 256


def rank(
    model: Recommender | None,
    users: np.ndarray,
    n: int,
    exclude: sp.csr_matrix,
    allowed: np.ndarray | None,
    rng: np.random.Generator,
) -> np.ndarray:
    """Top-``n`` movie indices ``(len(users), n)``; ``model=None`` ranks at random."""
    out = []
    for start in range(0, len(users), BATCH):
        batch = users[start : start + BATCH]
        if model is None:
            scores = rng.random((len(batch), exclude.shape[1])).astype(np.float32)
        else:
            scores = model.score_users(batch)
        idx, _ = top_n(scores, n, exclude=exclude[start : start + len(batch)], allowed=allowed)
        out.append(idx)
    return np.concatenate(out)


def embed_timing(data: Dataset, cache: Path, cold: bool) -> None:
    texts = movie_text(data) + [str(t) for t in data.tags.ids]
    print(f"texts to embed: {data.n_movies} movies + {data.n_tags} tags = {len(texts)}")
    print(f"example: {movie_text(data, 0)[0][:300]}")
    if cold and cache.exists():
        shutil.rmtree(cache)
    start = time.perf_counter()
    TextEncoder(cache).encode(texts, progress=False)
    first = time.perf_counter() - start
    start = time.perf_counter()
    TextEncoder(cache).encode(texts, progress=False)
    warm = time.perf_counter() - start
    label = "cold (empty cache)" if cold else "first run (cache as found)"
    print(f"embedding {label}: {first:.1f} s; warm (all cached, no model load): {warm:.2f} s")


def cold_start(data: Dataset, settings_cache: str, collab: str, rng: np.random.Generator) -> None:
    rated = np.flatnonzero(data.movie_popularity > 0)
    cold = np.sort(rng.choice(rated, round(0.1 * rated.size), replace=False))
    is_cold = np.zeros(data.n_movies, bool)
    is_cold[cold] = True
    row_cold = is_cold[data.movie]
    train, test = data.subset(~row_cold, "train"), data.subset(row_cold, "cold-test")
    users = np.unique(test.user).astype(np.int64)
    exclude = train.interactions()[users]
    relevant = test.interactions()[users]
    print(
        f"\ncold start: {cold.size} held-out movies ({int(row_cold.sum())} ratings), "
        f"{users.size} users rank only those movies"
    )
    models: dict[str, Recommender | None] = {
        "random": None,
        "pop": Popularity(),
        "content": ContentRecommender(cache_dir=settings_cache),
        f"hybrid({collab})": Hybrid(collab=collab, content_config={"cache_dir": settings_cache}),
    }
    print(f"{'model':<18} {'HR@10':>7} {'NDCG@10':>8} {'fit s':>6}")
    for name, model in models.items():
        start = time.perf_counter()
        if model is not None:
            model.fit(train, np.random.default_rng(0))
        fit_s = time.perf_counter() - start
        ranked = rank(model, users, 10, exclude, is_cold, np.random.default_rng(1))
        m = ranking_metrics(ranked, relevant, (10,))
        print(f"{name:<18} {np.nanmean(m['hr@10']):7.4f} {np.nanmean(m['ndcg@10']):8.4f} {fit_s:6.1f}")


def warm(data: Dataset, settings_cache: str, collab: str, rng: np.random.Generator) -> None:
    train, test = per_user_holdout(data, 0.2, rng)
    users = np.unique(test.user).astype(np.int64)
    exclude = train.interactions()[users]
    relevant = test.interactions()[users]
    history = np.asarray(np.diff(train.user_ptr))[users]
    edges = [0, 30, 60, 150, 400, np.inf]
    bucket = np.digitize(history, edges[1:-1])
    print(f"\nwarm top-N (per-user 20% test, {users.size} users): NDCG@10 by training-history length")
    models: dict[str, Recommender] = {
        "pop": Popularity(),
        collab: _collab(collab),
        "content": ContentRecommender(cache_dir=settings_cache),
        "hybrid k=20": Hybrid(collab=collab, k=20.0, content_config={"cache_dir": settings_cache}),
        "hybrid k=100": Hybrid(collab=collab, k=100.0, content_config={"cache_dir": settings_cache}),
    }
    heads = [f"{int(lo)}-{hi - 1 if np.isfinite(hi) else '':}" for lo, hi in itertools.pairwise(edges)]
    counts = np.bincount(bucket, minlength=len(heads))
    print(f"{'model':<16} {'all':>7} " + " ".join(f"{h:>8}" for h in heads))
    print(f"{'(users)':<16} {users.size:>7} " + " ".join(f"{c:>8}" for c in counts))
    for name, model in models.items():
        model.fit(train, np.random.default_rng(0))
        ranked = rank(model, users, 10, exclude, None, np.random.default_rng(1))
        nd = ranking_metrics(ranked, relevant, (10,))["ndcg@10"]
        per = [np.nanmean(nd[bucket == b]) if (bucket == b).any() else np.nan for b in range(len(heads))]
        print(f"{name:<16} {np.nanmean(nd):7.4f} " + " ".join(f"{p:8.4f}" for p in per))


def _collab(name: str) -> Recommender:
    from movierec.models.registry import create

    return create(name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, default=Path("/tmp/movierec-bench-content"))
    ap.add_argument("--cold", action="store_true", help="empty the embedding cache first")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip", nargs="*", default=[], choices=["embed", "cold", "warm"])
    args = ap.parse_args()
    settings = Settings(
        home=args.home,
        mirror=Path("/work/shared/data/movielens"),
        metadata=Path("/work/shared/data/movie-metadata"),
    )
    data = load_dataset("ml-latest-small", settings)
    print({k: v for k, v in data.summary().items() if k not in ("genres",)})
    cache = settings.home / "embeddings"
    collab = "itemknn" if "itemknn" in available() else "pop"
    if "embed" not in args.skip:
        embed_timing(data, cache, args.cold)
    if "cold" not in args.skip:
        cold_start(data, str(cache), collab, np.random.default_rng(args.seed))
    if "warm" not in args.skip:
        warm(data, str(cache), collab, np.random.default_rng(args.seed))


if __name__ == "__main__":
    main()
