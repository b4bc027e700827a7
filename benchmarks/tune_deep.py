"""Small random search for the deep collaborative models on ml-latest-small.

Usage::

    .venv/bin/python benchmarks/tune_deep.py [--models mlp-reg,mlp-clf,neumf] [--trials 6]
        [--seed 0] [--log tune.jsonl] [--threads 1] [--mirror /work/shared/data/movielens]

=========  ==========  ============================================================
model      protocol    selected on
=========  ==========  ============================================================
mlp-reg    rating      RMSE on a random 10 % of the *training* rows
mlp-clf    rating      RMSE (expected rating) on a random 10 % of the training rows
neumf      topn        NDCG@10, full ranking, per-user 20 % of the training rows
autorec    rating      RMSE on a random 10 % of the training rows
sparsefc   rating      RMSE on a random 10 % of the training rows
multvae    topn        NDCG@10, full ranking, per-user 20 % of the training rows
recvae     topn        NDCG@10, full ranking, per-user 20 % of the training rows
=========  ==========  ============================================================

The outer split is the one the harness makes for ``--seed`` (child seed
``[seed, 0]``, so the same as ``movierec evaluate --seed``); its test part is
never read. A validation part is carved from its training part (child seed
``[seed, 3]``), each trial is fitted on the rest and scored on it through
:func:`movierec.evaluation.protocols.run` (so the metrics, exclusions and the
bootstrap CI are the harness's).

Trial 0 of every model is its current default; trial ``i >= 1`` draws each
setting independently from the model's grid with ``default_rng([seed, crc32(model), i])``,
so a search can be extended (``--trials 10`` after ``--trials 6``) or resumed:
trials already in ``--log`` (JSON lines) are not run again, and the table is
printed from the log. Rating models and the autoencoders (``multvae``, ``recvae``: one
forward pass ranks every validation user) are fitted with the validation part for early
stopping (its score is cheap), so a trial also gives the best epoch count; ``neumf``'s full
ranking is too costly per epoch, so its epochs are searched.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
import zlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from movierec.data.dataset import Dataset
from movierec.data.load import load_dataset
from movierec.data.splits import per_user_holdout, random_holdout
from movierec.evaluation.protocols import Prepared, Result, get_protocol, run
from movierec.models.base import Recommender
from movierec.models.configs import knows
from movierec.models.registry import create, model_class
from movierec.settings import Settings

#: model -> (protocol, metric, lower is better, validation share of the training part)
TASKS: dict[str, tuple[str, str, bool, float]] = {
    "mlp-reg": ("rating", "rmse", True, 0.1),
    "mlp-clf": ("rating", "rmse", True, 0.1),
    "neumf": ("topn", "ndcg@10", False, 0.2),
    "autorec": ("rating", "rmse", True, 0.1),
    "sparsefc": ("rating", "rmse", True, 0.1),
    "multvae": ("topn", "ndcg@10", False, 0.2),
    "recvae": ("topn", "ndcg@10", False, 0.2),
    # classical references on the same validation part (their defaults only: trial 0)
    "mf": ("rating", "rmse", True, 0.1),
    "ease": ("topn", "ndcg@10", False, 0.2),
}

#: top-N models whose validation is cheap (one forward pass per user): they get the
#: validation part for early stopping, as the rating models do, so a trial gives the best epoch
EARLY_STOPPED_TOPN = ("multvae", "recvae")

#: model -> setting -> choices of the random search
GRIDS: dict[str, dict[str, list[Any]]] = {
    "mlp-reg": {
        "embedding_dim": [16, 32, 64],
        "dropout": [0.1, 0.2, 0.3, 0.5],
        "weight_decay": [0.0, 0.01, 0.05, 0.2],
        "lr": [1e-3, 2e-3, 5e-3],
    },
    "mlp-clf": {
        "embedding_dim": [16, 32, 64],
        "dropout": [0.2, 0.4, 0.5],
        "weight_decay": [1e-4, 0.01, 0.05],
        "lr": [1e-3, 2e-3, 5e-3],
    },
    "neumf": {
        "factors": [8, 16, 32, 64],  # mlp_layers follow: (2f, f, f/2)
        "dropout": [0.0, 0.1, 0.2],
        "weight_decay": [0.0, 0.01, 0.1],
        "negatives": [2, 4, 8],
        "lr": [1e-3, 2e-3, 5e-3],
        "epochs": [3, 5, 8],
    },
    "autorec": {
        "hidden": [50, 100, 150],
        "l2": [20.0, 30.0, 50.0],
        "lr": [3e-4, 1e-3],
        "batch_size": [64, 128],
        "dropout": [0.4, 0.5, 0.6, 0.7],
    },
    "sparsefc": {
        "hidden": [200, 500],
        "l2": [10.0, 30.0, 100.0],
        "kernel_l2": [0.001, 0.006, 0.03, 0.1],
        "lr": [3e-4, 1e-3],
        "batch_size": [64, 128, 256],
        "dropout": [0.0, 0.25, 0.5],
    },
    "multvae": {
        "hidden": [300, 600],
        "latent": [50, 100, 200],
        "dropout": [0.3, 0.5, 0.7],
        "beta": [0.1, 0.2, 0.5],
        "lr": [5e-4, 1e-3, 3e-3],
        "batch_size": [16, 64],
    },
    "recvae": {
        "hidden": [300, 600],
        "latent": [50, 100, 200],
        "dropout": [0.3, 0.5, 0.7],
        "gamma": [0.002, 0.005, 0.01, 0.03],
        "lr": [2e-4, 5e-4, 1e-3],
        "batch_size": [16, 64],
    },
}

#: fixed settings while searching: the epoch cap for early-stopped rating models
FIXED: dict[str, dict[str, Any]] = {
    "mlp-reg": {"epochs": 15, "patience": 3},
    "mlp-clf": {"epochs": 15, "patience": 3},
    "neumf": {},
    "autorec": {"epochs": 200, "patience": 10},
    "sparsefc": {"epochs": 200, "patience": 10},
    "multvae": {"epochs": 200, "patience": 15},
    "recvae": {"epochs": 60, "patience": 6},
    "mf": {},
    "ease": {},
}

#: child seeds: [seed, 0] is the harness's split, [seed, 1] its fits, [seed, 2] its bootstrap
_SPLIT, _FIT, _STATS, _VALID = 0, 1, 2, 3


def trial_settings(model: str, seed: int, trial: int) -> dict[str, Any]:
    """Settings of ``trial`` (0: the defaults, i.e. ``{}``) drawn from :data:`GRIDS`."""
    if trial == 0:
        return {}
    if not GRIDS.get(model):
        raise ValueError(f"{model} has no search grid: only its defaults (trial 0) are scored")
    rng = np.random.default_rng([seed, zlib.crc32(model.encode()), trial])
    out = {k: v[int(rng.integers(len(v)))] for k, v in GRIDS[model].items()}
    return out


def _expand(model: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Config overrides for ``settings`` (``neumf``'s ``factors`` also sets the MLP tower)."""
    out = dict(settings)
    if model == "neumf" and "factors" in out:
        f = int(out["factors"])
        out["mlp_layers"] = (2 * f, f, max(f // 2, 1))
    return out


def inner_split(data: Dataset, model: str, seed: int) -> Prepared:
    """The harness's split for ``seed``, its training part split again into fit / validation.

    The returned :class:`Prepared` has the validation part as ``test`` (and as
    ``valid`` for rating models, for early stopping); the outer test part is dropped.
    """
    protocol, _, _, share = TASKS[model]
    outer = get_protocol(protocol).prepare(data, np.random.default_rng([seed, _SPLIT]))
    rng = np.random.default_rng([seed, _VALID])
    if protocol == "rating":
        fit, valid = random_holdout(outer.train, share, rng)
    else:
        fit, valid = per_user_holdout(outer.train, share, rng)
    return Prepared(
        data=outer.train,
        train=fit,
        test=valid,
        valid=valid if protocol == "rating" or model in EARLY_STOPPED_TOPN else None,
        users=np.unique(valid.user).astype(np.int64),
        split=f"{outer.split}, then {share:.0%} of train for validation",
    )


def _epochs(model: Recommender, lower_is_better: bool) -> tuple[int, int, float]:
    """(epochs run, best epoch by validation or the last one, mean seconds per epoch)."""
    hist = model.fit_info.history
    pre = model.fit_info.extra.get("pretrain", {})
    secs = [r["seconds"] for r in [*hist, *(r for part in pre.values() for r in part)] if "seconds" in r]
    valid = [r["valid"] for r in hist if "valid" in r]
    best = len(hist)
    if valid:
        best = int(np.argmin(valid) if lower_is_better else np.argmax(valid)) + 1
    return len(hist), best, float(np.mean(secs)) if secs else math.nan


def run_trial(
    model_name: str, prepared: Prepared, seed: int, trial: int, threads: int, n_resamples: int
) -> dict[str, Any]:
    """Fit and score one trial; a JSON-able row for the log."""
    protocol, metric, lower, _ = TASKS[model_name]
    settings = trial_settings(model_name, seed, trial)
    overrides = {**FIXED[model_name], **_expand(model_name, settings)}
    if knows(model_class(model_name).Config, "threads"):
        overrides["threads"] = threads
    model = create(model_name, **overrides)
    result: Result = run(
        model,
        get_protocol(protocol),
        prepared,
        fit_rng=np.random.default_rng([seed, _FIT]),
        stats_rng=np.random.default_rng([seed, _STATS]),
        ks=(10,),
        model_name=model_name,
        n_resamples=n_resamples,
        seed=seed,
    )
    if not result.supported:
        raise RuntimeError(f"{model_name}: {result.message}")
    ran, best, per_epoch = _epochs(model, lower)
    cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(model.config).items()}
    return {
        "model": model_name,
        "seed": seed,
        "trial": trial,
        "settings": settings,
        "metric": metric,
        "value": result.metrics[metric],
        "ci": list(result.ci.get(metric, (math.nan, math.nan))),
        "mae": result.metrics.get("mae"),
        "epochs_run": ran,
        "best_epoch": best,
        "s_per_epoch": per_epoch,
        "fit_s": result.fit_seconds,
        "eval_s": result.eval_seconds,
        "config": cfg,
        "split": prepared.split,
        "threads": threads,
    }


def _fmt_settings(model: str, settings: dict[str, Any]) -> str:
    if not settings:
        return "(defaults)"
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in settings.items())


def print_table(rows: list[dict[str, Any]]) -> None:
    """One table per model, best first, and the best settings as config overrides."""
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        lower = TASKS[model][2]
        mine.sort(key=lambda r: r["value"] if lower else -r["value"])
        metric = mine[0]["metric"]
        print(f"\n== {model}: {TASKS[model][0]} protocol, validation {metric} ({mine[0]['split']})")
        print(
            f"{'trial':>5} {metric:>8} {'95% CI':>17} {'ep':>3} {'best':>4} {'s/ep':>5} {'fit s':>6}  settings"
        )
        for r in mine:
            lo, hi = r["ci"]
            print(
                f"{r['trial']:5d} {r['value']:8.4f} [{lo:7.4f}, {hi:7.4f}] {r['epochs_run']:3d} "
                f"{r['best_epoch']:4d} {r['s_per_epoch']:5.2f} {r['fit_s']:6.1f}  "
                f"{_fmt_settings(model, r['settings'])}"
            )
        best = mine[0]
        chosen = _expand(model, best["settings"])
        if TASKS[model][0] == "rating":
            chosen["epochs"] = best["best_epoch"]
        print(f"best {model}: {metric} {best['value']:.4f} (trial {best['trial']}) -> {chosen}")


def _read_log(path: Path | None) -> list[dict[str, Any]]:
    if path is None or not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mirror", type=Path, default=Path("/work/shared/data/movielens"))
    ap.add_argument("--dataset", default="ml-latest-small")
    ap.add_argument("--models", default=",".join(TASKS))
    ap.add_argument("--trials", type=int, default=6, help="trials per model, the defaults included")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared machine)")
    ap.add_argument("--resamples", type=int, default=500, help="bootstrap resamples per trial")
    ap.add_argument("--log", type=Path, default=None, help="JSON lines of finished trials (resumable)")
    args = ap.parse_args()
    models = [m for m in args.models.split(",") if m]
    unknown = sorted(set(models) - set(TASKS))
    if unknown:
        ap.error(f"unknown model(s) {unknown}; choose from {sorted(TASKS)}")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as home:
        data = load_dataset(args.dataset, Settings(home=Path(home), mirror=args.mirror), with_metadata=False)
    done = [r for r in _read_log(args.log) if r["seed"] == args.seed and r["model"] in models]
    have = {(r["model"], r["trial"]) for r in done}
    rows = list(done)
    for model in models:
        prepared = inner_split(data, model, args.seed)
        for trial in range(args.trials if GRIDS.get(model) else 1):
            if (model, trial) in have:
                continue
            start = time.perf_counter()
            row = run_trial(model, prepared, args.seed, trial, args.threads, args.resamples)
            rows.append(row)
            print(
                f"{model} trial {trial}: {row['metric']} {row['value']:.4f} "
                f"({time.perf_counter() - start:.0f}s) {_fmt_settings(model, row['settings'])}",
                flush=True,
            )
            if args.log is not None:
                with args.log.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
    print_table([r for r in rows if r["trial"] < args.trials])


if __name__ == "__main__":
    main()
