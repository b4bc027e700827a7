"""Deep collaborative models on ml-latest-small: quality, fit time and fold-in.

Usage::

    .venv/bin/python benchmarks/bench_deep.py [--mirror /work/shared/data/movielens]
        [--only rating|topn] [--models mlp-reg,gmf,...] [--threads 1] [--fold-users 300]

``rating`` protocol: random 10 % of rows (seed 0), RMSE / MAE of ``mlp-reg``,
``mlp-clf`` (also its arg-max MAE) beside the global mean and ``mf`` (if
present). Reference: Surprise SVD 0.875, SVD++ 0.861 (5-fold CV).

``topn`` protocol: per-user random 20 % test (seed 0), full ranking excluding
training items, NDCG@10 / Recall@10 of ``gmf``, ``mlp``, ``neumf`` (with and
without pre-training) beside ``pop``. Reference: implicit ALS 0.302, EASE 0.366.

Fold-in: for up to ``--fold-users`` test users, the same ranking computed from a
new-session query (``Query.session(liked=<training movies>)``, no user id), so
the learned embedding and the folded-in vector can be compared.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from movierec.data.dataset import Dataset
from movierec.data.load import load_dataset
from movierec.data.splits import per_user_holdout, random_holdout
from movierec.evaluation import metrics as M
from movierec.models.base import Query, Recommender
from movierec.models.registry import UnknownModelError, create
from movierec.ranking import top_n
from movierec.settings import Settings

RATING_MODELS = ("mlp-reg", "mlp-clf", "mf")
TOPN_MODELS = ("pop", "gmf", "mlp", "neumf", "neumf-nopre")


def _rank(scores: np.ndarray, train: Any, users: np.ndarray, k: int) -> np.ndarray:
    return top_n(scores, k, exclude=train[users])[0]


def _topn_eval(
    model: Recommender, train: Dataset, test: Dataset, users: np.ndarray, sessions: bool = False
) -> dict[str, float]:
    tr = train.interactions()
    rel = test.interactions()[users]
    ranked = np.empty((len(users), 10), np.int64)
    for s in range(0, len(users), 512):
        b = users[s : s + 512]
        if sessions:
            scores = model.score(
                [Query.session(liked=tr.indices[tr.indptr[u] : tr.indptr[u + 1]]) for u in b]
            )
        else:
            scores = model.score_users(b)
        ranked[s : s + len(b)] = _rank(scores, tr, b, 10)
    m = M.ranking_metrics(ranked, rel, (10,))
    return {k: float(np.nanmean(v)) for k, v in m.items()}


def _epochs_info(model: Recommender, fit_s: float, n_examples: int) -> str:
    hist = model.fit_info.history
    pre = model.fit_info.extra.get("pretrain")
    rows = list(hist) + ([r for part in pre.values() for r in part] if pre else [])
    secs = [r["seconds"] for r in rows if "seconds" in r]
    if not secs:
        return f"{len(rows):3d} ep  {fit_s:7.1f}s total" if rows else f"{fit_s:7.1f}s total"
    per = float(np.mean(secs))
    return f"{len(rows):3d} ep  {per:5.2f}s/ep  {fit_s:7.1f}s total  {n_examples / per:9.0f} ex/s"


def run_rating(data: Dataset, models: list[str], threads: int) -> None:
    train, test = random_holdout(data, 0.1, np.random.default_rng(0))
    mu = float(train.rating.mean())
    print(f"\n== rating protocol: {data.name}, random 10% ({test.n_ratings} test rows), seed 0")
    print(f"{'model':<14} {'RMSE':>7} {'MAE':>7}  {'argmax MAE':>10}  fit")
    print(
        f"{'global mean':<14} {M.rmse(np.full(test.n_ratings, mu), test.rating):7.4f} "
        f"{M.mae(np.full(test.n_ratings, mu), test.rating):7.4f}"
    )
    for name in models:
        try:
            model = create(name, **({"threads": threads} if name != "mf" else {}))
        except (UnknownModelError, ImportError) as exc:
            print(f"{name:<14} skipped ({exc})")
            continue
        start = time.perf_counter()
        model.fit(train, np.random.default_rng(0))
        fit_s = time.perf_counter() - start
        pred = model.predict(test.user.astype(np.int64), test.movie.astype(np.int64))
        am = ""
        if hasattr(model, "predict_argmax"):
            am = f"{M.mae(model.predict_argmax(test.user.astype(np.int64), test.movie.astype(np.int64)), test.rating):10.4f}"
        print(
            f"{name:<14} {M.rmse(pred, test.rating):7.4f} {M.mae(pred, test.rating):7.4f}  {am:>10}  "
            f"{_epochs_info(model, fit_s, train.n_ratings)}",
            flush=True,
        )
    print("reference (Surprise, 5-fold CV): SVD 0.875, SVD++ 0.861")


def run_topn(data: Dataset, models: list[str], threads: int, fold_users: int) -> None:
    train, test = per_user_holdout(data, 0.2, np.random.default_rng(0))
    users = np.unique(test.user).astype(np.int64)
    print(
        f"\n== topn protocol: {data.name}, per-user 20% ({test.n_ratings} test rows, {len(users)} users), seed 0"
    )
    print(f"{'model':<14} {'NDCG@10':>8} {'Rec@10':>8}  {'fold-in NDCG@10':>15}  fit")
    fold = users[:: max(1, len(users) // fold_users)][:fold_users] if fold_users else users[:0]
    for name in models:
        overrides: dict[str, Any] = {}
        base = name
        if name == "neumf-nopre":
            base, overrides = "neumf", {"pretrain": False}
        if base != "pop":
            overrides["threads"] = threads
        model = create(base, **overrides)
        start = time.perf_counter()
        model.fit(train, np.random.default_rng(0))
        fit_s = time.perf_counter() - start
        res = _topn_eval(model, train, test, users)
        fres = ""
        if fold.size and base != "pop":
            known = _topn_eval(model, train, test, fold)
            start = time.perf_counter()
            folded = _topn_eval(model, train, test, fold, sessions=True)
            fres = f"{folded['ndcg@10']:.4f} vs {known['ndcg@10']:.4f} ({(time.perf_counter() - start) / len(fold) * 1e3:.0f} ms/q)"
        n_ex = train.n_ratings * (1 + getattr(model.config, "negatives", 0))
        print(
            f"{name:<14} {res['ndcg@10']:8.4f} {res['recall@10']:8.4f}  {fres:>15}  "
            f"{_epochs_info(model, fit_s, n_ex)}",
            flush=True,
        )
    print("reference: implicit ALS 0.302, EASE 0.366 (NDCG@10, same protocol)")
    print(
        "fold-in column: sessions built from the training movies of every "
        f"{max(1, len(users) // max(fold_users, 1))}th test user, vs the learned user embedding for the same users"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mirror", type=Path, default=Path("/work/shared/data/movielens"))
    ap.add_argument("--dataset", default="ml-latest-small")
    ap.add_argument("--only", choices=("rating", "topn"))
    ap.add_argument("--models", default="")
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 is fastest on a busy 2-core box)"
    )
    ap.add_argument("--fold-users", type=int, default=300)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as home:
        data = load_dataset(args.dataset, Settings(home=Path(home), mirror=args.mirror), with_metadata=False)
    chosen = [m for m in args.models.split(",") if m]
    if args.only != "topn":
        run_rating(data, [m for m in RATING_MODELS if not chosen or m in chosen], args.threads)
    if args.only != "rating":
        run_topn(data, [m for m in TOPN_MODELS if not chosen or m in chosen], args.threads, args.fold_users)


if __name__ == "__main__":
    main()
