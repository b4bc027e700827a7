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

Several seeds (``--seeds 0,1,2``): for every seed the harness's split
(:mod:`movierec.evaluation.protocols`, child seeds ``[seed, 0]`` for the
split, ``[seed, 1]`` for the fits, ``[seed, 2]`` for the bootstrap, as in
``movierec evaluate --seed``) of the ``rating`` and ``topn`` protocols; the
deep models beside the reference baselines (``--rating-models`` /
``--topn-models``). Prints per run the metric with the harness's 95 %
bootstrap CI over test rows / users, then per model the mean over seeds
± the 95 % Student-t half-width across seeds, seconds per epoch, total fit
seconds and training examples per second (per epoch of training, validation
excluded; for closed-form models rows of the training matrix per fit second).
``mlp-clf`` is also scored with its arg-max prediction (same fit). With
``--log FILE`` every finished run is appended as a JSON line and runs already
there are skipped, so the work can be split into short invocations; the
summary covers every logged run of the requested seeds and models (start a
new log after changing a model's defaults)::

    .venv/bin/python benchmarks/bench_deep.py --seeds 0,1,2 --log deep.jsonl --only topn

ml-100k's canonical ``u1`` split, where the data is at hand (it cannot be shipped: the
licence forbids it)::

    .venv/bin/python benchmarks/bench_deep.py --data-path ~/ml-100k --split u1 --seeds 0,1,2 \
        --only rating --rating-models autorec,sparsefc,mf,surprise-svdpp,surprise-knnbaseline

Surprise's models (``surprise-svd``, ``surprise-svdpp``, ``surprise-knnbaseline``) need the
``bench`` extra (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats
from threadpoolctl import threadpool_limits

from movierec.data.dataset import Dataset
from movierec.data.load import load_dataset
from movierec.data.movielens import load_folder
from movierec.data.splits import per_user_holdout, random_holdout
from movierec.evaluation import metrics as M
from movierec.evaluation.protocols import Prepared, Protocol, get_protocol
from movierec.evaluation.protocols import run as run_protocol
from movierec.evaluation.statistics import bootstrap_ci
from movierec.models.base import Query, Recommender
from movierec.models.configs import knows
from movierec.models.registry import UnknownModelError, create, model_class
from movierec.settings import Settings
from movierec.topn import top_n
from surprise_adapter import ALGORITHMS, SurpriseRating

RATING_MODELS = ("mlp-reg", "mlp-clf", "mf")
TOPN_MODELS = ("pop", "gmf", "mlp", "neumf", "neumf-nopre")

#: --seeds mode: models per protocol (variants: ``neumf-nopre``, ``gmf-explicit``, ``neumf-explicit``)
SEED_RATING_MODELS = (
    "autorec", "mlp-reg", "mlp-clf", "gmf-explicit", "mf", "surprise-svdpp", "surprise-knnbaseline",
)  # fmt: skip
SEED_TOPN_MODELS = ("multvae", "recvae", "neumf", "neumf-nopre", "mf", "ease", "als", "pop")
#: the model every other is compared with, seed by seed, per protocol (the classical best)
PAIRED_REFERENCE = {"rating": "mf", "topn": "ease"}
#: the headline metric per protocol (a lower value is better for rating errors)
HEADLINE = {"rating": ("rmse", "mae"), "topn": ("ndcg@10", "recall@10")}
#: variant name -> (registered model, config overrides)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "neumf-nopre": ("neumf", {"pretrain": False}),
    "gmf-explicit": ("gmf", {"explicit": True}),
    "neumf-explicit": ("neumf", {"explicit": True}),
}


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


# ------------------------------------------------------------- several seeds


def _speed(model: Recommender, fit_s: float, train: Dataset) -> dict[str, float]:
    """Epochs, seconds per epoch (training only) and training examples per second."""
    hist = model.fit_info.history
    pre = model.fit_info.extra.get("pretrain") or {}
    rows = [*hist, *(r for part in pre.values() for r in part)]
    secs = [r["seconds"] for r in rows if "seconds" in r]
    negatives = getattr(model.config, "negatives", 0)
    if secs and not getattr(model.config, "explicit", False) and negatives:
        min_rating = getattr(model.config, "min_rating", 0.0)
        per_epoch_examples = int((train.rating >= min_rating).sum()) * (1 + negatives)
    else:
        per_epoch_examples = train.n_ratings
    if secs:
        per = float(np.mean(secs))
        return {"epochs": len(secs), "s_per_epoch": per, "examples_per_s": per_epoch_examples / per}
    epochs = max(int(model.fit_info.epochs), 1)
    return {
        "epochs": int(model.fit_info.epochs),
        "s_per_epoch": fit_s / epochs if model.fit_info.epochs else math.nan,
        "examples_per_s": train.n_ratings * epochs / fit_s if fit_s > 0 else math.nan,
    }


def _row(
    name: str, seed: int, proto: Protocol, metrics: dict[str, float], ci: dict[str, Any]
) -> dict[str, Any]:
    keys = HEADLINE[proto.name]
    return {
        "protocol": proto.name,
        "model": name,
        "seed": seed,
        "metrics": {k: metrics[k] for k in keys if k in metrics},
        "ci": {k: list(ci[k]) for k in keys if k in ci},
    }


def run_seed(protocol: str, name: str, seed: int, prepared: Prepared, threads: int) -> list[dict[str, Any]]:
    """Fit ``name`` on ``prepared`` (the harness's split for ``seed``); one log row per scored variant."""
    proto = get_protocol(protocol)
    base, overrides = VARIANTS.get(name, (name, {}))
    overrides = dict(overrides)
    if base not in ALGORITHMS and knows(model_class(base).Config, "threads"):
        overrides["threads"] = threads  # torch's (ALS: its solver's)
    model = SurpriseRating(algorithm=name) if name in ALGORITHMS else create(base, **overrides)
    result = run_protocol(
        model,
        proto,
        prepared,
        fit_rng=np.random.default_rng([seed, 1]),
        stats_rng=np.random.default_rng([seed, 2]),
        ks=(10,),
        model_name=name,
        seed=seed,
    )
    if not result.supported:
        print(f"{name:<15} seed {seed}: skipped ({result.message})")
        return []
    row = _row(name, seed, proto, result.metrics, result.ci)
    row.update(
        fit_s=result.fit_seconds,
        eval_s=result.eval_seconds,
        **_speed(model, result.fit_seconds, prepared.train),
    )
    rows = [row]
    if name == "mlp-clf" and protocol == "rating":
        # the same fitted network, predicting the most likely level instead of the expectation
        model.config.prediction = "argmax"
        _, scalars, curves = proto.evaluate(model, prepared, (10,))
        rng = np.random.default_rng([seed, 2])
        lo, hi = bootstrap_ci(curves["sq_err"], rng, 1000)[1:]
        ci = {"rmse": (math.sqrt(lo), math.sqrt(hi)), "mae": bootstrap_ci(curves["abs_err"], rng, 1000)[1:]}
        arg = _row("mlp-clf-argmax", seed, proto, scalars, ci)
        arg.update({k: row[k] for k in ("fit_s", "eval_s", "epochs", "s_per_epoch", "examples_per_s")})
        rows.append(arg)
    return rows


def _num(x: float, width: int, digits: int) -> str:
    """``x`` right-aligned in ``width`` with ``digits`` decimals, ``-`` when not finite."""
    return f"{x:{width}.{digits}f}" if math.isfinite(x) else f"{'-':>{width}}"


def _mean_ci(values: list[float]) -> str:
    v = np.asarray(values, np.float64)
    if v.size < 2:
        return f"{v.mean():.4f}" + " " * 9
    half = float(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return f"{v.mean():.4f} ± {half:.4f}"


def print_seed_summary(rows: list[dict[str, Any]]) -> None:
    """Per protocol: each run with its bootstrap CI, then mean ± 95 % CI across seeds per model."""
    for protocol in ("rating", "topn"):
        mine = [r for r in rows if r["protocol"] == protocol]
        if not mine:
            continue
        m1, m2 = HEADLINE[protocol]
        print(
            f"\n== {protocol} protocol: every run (harness bootstrap 95% CI over test {'rows' if protocol == 'rating' else 'users'})"
        )
        print(
            f"{'model':<15} {'seed':>4} {m1:>8} {'95% CI':>17} {m2:>9} {'ep':>3} {'s/ep':>6} {'fit s':>7} {'ex/s':>9}"
        )
        for r in sorted(mine, key=lambda r: (r["model"], r["seed"])):
            lo, hi = r["ci"].get(m1, (math.nan, math.nan))
            print(
                f"{r['model']:<15} {r['seed']:4d} {r['metrics'][m1]:8.4f} [{lo:7.4f}, {hi:7.4f}] "
                f"{r['metrics'].get(m2, math.nan):9.4f} {r['epochs']:3d} {_num(r['s_per_epoch'], 6, 2)} "
                f"{r['fit_s']:7.1f} {r['examples_per_s']:9.0f}"
            )
        models = list(dict.fromkeys(r["model"] for r in mine))
        seeds = sorted({r["seed"] for r in mine})
        print(f"\n== {protocol} protocol: mean ± 95% CI (Student t) across seeds {seeds}")
        print(f"{'model':<15} {'n':>2} {m1:>17} {m2:>17} {'s/epoch':>8} {'fit s':>7} {'ex/s':>9}")
        better = (lambda r: r[1]) if protocol == "rating" else (lambda r: -r[1])
        summary = []
        for name in models:
            rs = [r for r in mine if r["model"] == name]
            summary.append((name, float(np.mean([r["metrics"][m1] for r in rs])), rs))
        for name, _, rs in sorted(summary, key=better):
            print(
                f"{name:<15} {len(rs):2d} {_mean_ci([r['metrics'][m1] for r in rs]):>17} "
                f"{_mean_ci([r['metrics'].get(m2, math.nan) for r in rs]):>17} "
                f"{_num(np.mean([r['s_per_epoch'] for r in rs]), 8, 2)} {np.mean([r['fit_s'] for r in rs]):7.1f} "
                f"{np.mean([r['examples_per_s'] for r in rs]):9.0f}"
            )
        ref = PAIRED_REFERENCE[protocol]
        by_seed = {r["seed"]: r["metrics"][m1] for r in mine if r["model"] == ref}
        if by_seed:
            sign = "lower" if protocol == "rating" else "higher"
            print(
                f"\n== {protocol}: paired difference of {m1} against {ref} on the same seeds ({sign} is better)"
            )
            for name, _, rs in sorted(summary, key=better):
                diffs = [r["metrics"][m1] - by_seed[r["seed"]] for r in rs if r["seed"] in by_seed]
                if name != ref and diffs:
                    print(f"{name:<15} {len(diffs):2d} {_mean_ci(diffs):>17}")


def run_seeds(
    data: Dataset,
    seeds: list[int],
    plan: dict[str, list[str]],
    threads: int,
    log: Path | None,
    split: str | None = None,
) -> None:
    """Run every (protocol, model, seed) of ``plan`` not yet in ``log`` and print the summary.

    ``split``: an ml-100k canonical split (``u1``..``u5``, ``ua``, ``ub``) instead of the
    seeded one; the seeds then vary only the fits."""
    logged = (
        [json.loads(x) for x in log.read_text().splitlines() if x.strip()] if log and log.exists() else []
    )
    done = {(r["protocol"], r["model"], r["seed"]) for r in logged}
    rows = [r for r in logged if r["seed"] in seeds and r["model"] in plan.get(r["protocol"], [])]
    rows += [
        r
        for r in logged
        if r["model"] == "mlp-clf-argmax" and r["seed"] in seeds and "mlp-clf" in plan.get("rating", [])
    ]
    for seed in seeds:
        for protocol, names in plan.items():
            todo = [n for n in names if (protocol, n, seed) not in done]
            if not todo:
                continue
            prepared = get_protocol(protocol).prepare(data, np.random.default_rng([seed, 0]), split=split)
            for name in todo:
                new = run_seed(protocol, name, seed, prepared, threads)
                for r in new:
                    print(
                        f"{protocol} seed {seed} {r['model']:<15} "
                        + " ".join(f"{k}={v:.4f}" for k, v in r["metrics"].items())
                        + f"  fit {r['fit_s']:.1f}s",
                        flush=True,
                    )
                    if log is not None:
                        with log.open("a") as fh:
                            fh.write(json.dumps(r) + "\n")
                rows += new
    print_seed_summary(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mirror", type=Path, default=Path("/work/shared/data/movielens"))
    ap.add_argument("--dataset", default="ml-latest-small")
    ap.add_argument(
        "--data-path",
        type=Path,
        default=None,
        help="an unpacked MovieLens folder of any layout (e.g. ml-100k) instead of --dataset",
    )
    ap.add_argument("--split", default=None, help="with --seeds: an ml-100k canonical split (u1..u5, ua, ub)")
    ap.add_argument("--only", choices=("rating", "topn"))
    ap.add_argument("--models", default="")
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 is fastest on a busy 2-core box)"
    )
    ap.add_argument("--fold-users", type=int, default=300)
    ap.add_argument("--seeds", default="", help="comma-separated seeds: the several-seed summary instead")
    ap.add_argument("--rating-models", default=",".join(SEED_RATING_MODELS), help="with --seeds")
    ap.add_argument("--topn-models", default=",".join(SEED_TOPN_MODELS), help="with --seeds")
    ap.add_argument(
        "--log", type=Path, default=None, help="with --seeds: JSON lines of finished runs (resumable)"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    if args.data_path is not None:
        data = load_folder(args.data_path)
    else:
        with tempfile.TemporaryDirectory() as home:
            data = load_dataset(
                args.dataset, Settings(home=Path(home), mirror=args.mirror), with_metadata=False
            )
    if args.seeds:
        plan = {
            p: [m for m in ms.split(",") if m]
            for p, ms in (("rating", args.rating_models), ("topn", args.topn_models))
            if args.only in (None, p)
        }
        run_seeds(data, [int(x) for x in args.seeds.split(",")], plan, args.threads, args.log, args.split)
        return
    chosen = [m for m in args.models.split(",") if m]
    if args.only != "topn":
        run_rating(data, [m for m in RATING_MODELS if not chosen or m in chosen], args.threads)
    if args.only != "rating":
        run_topn(data, [m for m in TOPN_MODELS if not chosen or m in chosen], args.threads, args.fold_users)


if __name__ == "__main__":
    main()
