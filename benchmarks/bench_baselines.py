"""Classical baselines on ml-latest-small against the libraries people compare with.

Prints, in one run:

(a) ``rating`` protocol (random 10 % of rows): RMSE / MAE of our ``mf`` vs
    Surprise's SVD (if ``scikit-surprise`` is installed), with fit times;
(b) ``topn`` protocol (per-user random 20 % test, full ranking minus training
    items): NDCG@10 / Recall@10 of our ``pop``, ``itemknn``, ``userknn``,
    ``ease``, ``als`` vs ``implicit``'s ALS, BPR and CosineRecommender run
    directly on the same split, with fit times;
(c) the time to full-rank every user with a factor model.

Splits come from :mod:`movierec.evaluation.protocols` with the harness's seed
convention (``default_rng([seed, 0])`` for the split, ``[seed, 1]`` for fits),
so the figures match ``movierec evaluate``.

Usage::

    python benchmarks/bench_baselines.py [--seed 0] [--mirror DIR] [--svdpp]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from movierec.data.load import load_dataset
from movierec.evaluation import metrics as M
from movierec.evaluation.protocols import Prepared, get_protocol
from movierec.models.registry import create
from movierec.settings import Settings
from movierec.topn import top_n

REFERENCE = {"surprise SVD rmse": 0.875, "surprise SVD++ rmse": 0.861, "implicit ALS ndcg@10": 0.302}


def _fit_eval(name: str, prepared: Prepared, protocol: str, seed: int, **overrides: Any) -> dict[str, float]:
    proto = get_protocol(protocol)
    model = create(name, **overrides)
    start = time.perf_counter()
    model.fit(prepared.train, np.random.default_rng([seed, 1]))
    fit = time.perf_counter() - start
    start = time.perf_counter()
    per_user, scalars, _ = proto.evaluate(model, prepared, (10,))
    out = {k: float(np.nanmean(v)) for k, v in per_user.items()}
    out.update(scalars)
    out["fit_s"] = fit
    out["eval_s"] = time.perf_counter() - start
    return out


def rating_part(prepared: Prepared, seed: int, svdpp: bool) -> None:
    print(
        "\n(a) rating protocol:",
        prepared.split,
        f"{prepared.train.n_ratings} train / {prepared.test.n_ratings} test rows",
    )
    ours = _fit_eval("mf", prepared, "rating", seed)
    print(f"  movierec mf          RMSE {ours['rmse']:.4f}  MAE {ours['mae']:.4f}  fit {ours['fit_s']:.1f}s")
    try:
        import pandas as pd
        from surprise import SVD, Reader, SVDpp
        from surprise import Dataset as SDataset
    except ImportError:
        print("  scikit-surprise not installed; references:", REFERENCE)
        return
    train, test = prepared.train, prepared.test
    frame = pd.DataFrame({"u": train.user, "i": train.movie, "r": train.rating})
    reader = Reader(rating_scale=(train.scale.low, train.scale.high))
    trainset = SDataset.load_from_df(frame, reader).build_full_trainset()
    testset = list(zip(test.user.tolist(), test.movie.tolist(), test.rating.tolist(), strict=True))
    algos: list[tuple[str, Any]] = [("surprise SVD", SVD(random_state=seed))]
    if svdpp:
        algos.append(("surprise SVD++", SVDpp(random_state=seed, cache_ratings=True)))
    for label, algo in algos:
        start = time.perf_counter()
        algo.fit(trainset)
        fit = time.perf_counter() - start
        pred = np.array([p.est for p in algo.test(testset)])
        rmse, mae = M.rmse(pred, test.rating), M.mae(pred, test.rating)
        print(
            f"  {label:<20} RMSE {rmse:.4f}  MAE {mae:.4f}  fit {fit:.1f}s  "
            f"(ours/theirs fit time {ours['fit_s'] / fit:.2f}x, RMSE diff {ours['rmse'] - rmse:+.4f})"
        )


def _implicit_eval(model: Any, prepared: Prepared) -> dict[str, float]:
    users = prepared.users
    train = prepared.train.interactions()
    train.data[:] = 1.0
    start = time.perf_counter()
    model.fit(train, show_progress=False)
    fit = time.perf_counter() - start
    ids, _ = model.recommend(users, train[users], N=10, filter_already_liked_items=True)
    relevant = sp.csr_matrix(prepared.test.interactions()[users])
    per_user = M.ranking_metrics(np.asarray(ids, np.int64), relevant, (10,))
    out = {k: float(np.nanmean(v)) for k, v in per_user.items()}
    out["fit_s"] = fit
    return out


def _reference_ease_eval(prepared: Prepared, l2: float = 200.0) -> dict[str, float]:
    """EASE computed independently of movierec's model: the paper's dense closed form
    B = I - P / diag(P), P = (X^T X + l2 I)^-1 over every movie, plain numpy top-k."""
    users = prepared.users
    x = prepared.train.interactions()
    x.data[:] = 1.0
    start = time.perf_counter()
    g = (x.T @ x).toarray().astype(np.float64)
    g[np.diag_indices_from(g)] += l2
    p = np.linalg.inv(g)
    b = -p / np.diag(p)
    b[np.diag_indices_from(b)] = 0.0
    fit = time.perf_counter() - start
    scores = np.asarray(x[users] @ b)
    scores[x[users].nonzero()] = -np.inf
    ids = np.argsort(-scores, axis=1)[:, :10]
    relevant = sp.csr_matrix(prepared.test.interactions()[users])
    per_user = M.ranking_metrics(ids.astype(np.int64), relevant, (10,))
    out = {k: float(np.nanmean(v)) for k, v in per_user.items()}
    out["fit_s"] = fit
    return out


def topn_part(prepared: Prepared, seed: int, threads: int) -> None:
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.cpu.bpr import BayesianPersonalizedRanking
    from implicit.nearest_neighbours import CosineRecommender
    from threadpoolctl import threadpool_limits

    print("\n(b) topn protocol:", prepared.split, f"{len(prepared.users)} users, full ranking")
    rows: dict[str, dict[str, float]] = {}
    for name in ("pop", "itemknn", "userknn", "ease", "als"):
        overrides = {"threads": threads} if name == "als" else {}
        rows[name] = _fit_eval(name, prepared, "topn", seed, **overrides)
    with threadpool_limits(1, "blas"):
        rows["implicit ALS"] = _implicit_eval(
            AlternatingLeastSquares(factors=64, num_threads=threads, random_state=seed), prepared
        )
        rows["implicit BPR"] = _implicit_eval(
            BayesianPersonalizedRanking(factors=64, num_threads=threads, random_state=seed), prepared
        )
        rows["implicit Cosine"] = _implicit_eval(CosineRecommender(K=100, num_threads=threads), prepared)
    rows["reference EASE"] = _reference_ease_eval(prepared)
    print(f"  {'model':<18} {'NDCG@10':>8} {'Recall@10':>10} {'fit s':>7}")
    for name, r in rows.items():
        print(f"  {name:<18} {r['ndcg@10']:>8.4f} {r['recall@10']:>10.4f} {r['fit_s']:>7.2f}")
    pairs = [("als", "implicit ALS"), ("itemknn", "implicit Cosine"), ("ease", "reference EASE")]
    for ours, theirs in pairs:
        a, b = rows[ours], rows[theirs]
        print(
            f"  {ours} vs {theirs}: NDCG@10 {100 * (a['ndcg@10'] / b['ndcg@10'] - 1):+.1f}%, "
            f"fit time {a['fit_s'] / b['fit_s']:.2f}x"
        )


def speed_part(prepared: Prepared, seed: int, threads: int) -> None:
    print("\n(c) full ranking of every user (score_users + exclude training items + top 10)")
    train = prepared.train
    exclude = train.interactions()
    users = np.arange(train.n_users)
    for name, overrides in (("als", {"threads": threads}), ("mf", {})):
        model = create(name, **overrides).fit(train, np.random.default_rng([seed, 1]))
        start = time.perf_counter()
        for lo in range(0, users.size, 512):
            batch = users[lo : lo + 512]
            top_n(model.score_users(batch), 10, exclude=exclude[batch])
        took = time.perf_counter() - start
        print(f"  {name}: {users.size} users x {train.n_movies} movies in {took:.2f}s (target < 5 s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--mirror", type=Path, default=None, help="MovieLens mirror (default: $MOVIEREC_MIRROR)"
    )
    parser.add_argument("--threads", type=int, default=2, help="solver threads for ALS / BPR / kNN")
    parser.add_argument("--svdpp", action="store_true", help="also run Surprise SVD++ (minutes)")
    args = parser.parse_args()
    mirror = args.mirror or Path(os.environ.get("MOVIEREC_MIRROR", "/work/shared/data/movielens"))
    data = load_dataset("ml-latest-small", Settings(), mirror=mirror, with_metadata=False)
    print(f"ml-latest-small: {data.n_ratings} ratings, {data.n_users} users, {data.n_movies} movies")
    split_rng = np.random.default_rng([args.seed, 0])
    rating_part(get_protocol("rating").prepare(data, split_rng), args.seed, args.svdpp)
    topn = get_protocol("topn").prepare(data, np.random.default_rng([args.seed, 0]))
    topn_part(topn, args.seed, args.threads)
    speed_part(topn, args.seed, args.threads)
    print("\nreferences:", REFERENCE)


if __name__ == "__main__":
    main()
