"""Tune models on validation data only (never the test users or the test item).

``--protocol session`` (default):
For each seed the ``session`` protocol splits ml-latest-small's users 70 / 10 / 20;
every variant is fitted on the training users and scored on the *validation*
users' sessions (first k = 1, 3, 5, 10 likes, NDCG@24 averaged over k, and per k).
The fit's own early-stopping figure is printed too: next-item NDCG@10 of every
training user's last like (the sequence models' holdout), a next-item signal
that also never sees a test user.

``--protocol next-item`` (or ``next-item-untied``): every variant is fitted on the
temporal split's training part with no validation set (the sequence models early-stop
on their own holdout) and scored on the *validation* item from each user's training
history: NDCG@10, full ranking; and the same fit again with the validation movie's 3
heaviest tags given as liked tags (``next-item-tags`` on the validation item).

Run with ``python benchmarks/tune_session.py --seeds 0,1 [--threads 1] [--protocol next-item]
[--variants '{"lstm": {"model": "sequence"}, "lstm+set": {"model": "sequence", "future_weight": 1}}']``;
each variant is a model name plus config overrides. The paired column compares every
variant with the first on the same validation users (all seeds pooled).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from movierec.data.load import load_dataset
from movierec.evaluation.next_item import TagConditionedNextItemProtocol
from movierec.evaluation.protocols import Result, get_protocol, run
from movierec.evaluation.statistics import paired_comparison
from movierec.models.registry import create
from movierec.settings import Settings

MIRROR = Path("/work/shared/data/movielens")
DEFAULT = {
    "pop": {"model": "pop"},
    "ease": {"model": "ease"},
    "lstm": {"model": "sequence"},
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dataset", default="ml-latest-small")
    parser.add_argument("--protocol", default="session", choices=("session", "next-item", "next-item-untied"))
    parser.add_argument("--variants", default="", help="JSON: name -> {model, **config overrides}")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants: dict[str, dict[str, Any]] = json.loads(args.variants) if args.variants else DEFAULT
    with tempfile.TemporaryDirectory() as home:
        data = load_dataset(args.dataset, Settings(home=Path(home), mirror=MIRROR))
    proto: Any = get_protocol(args.protocol)
    proto.clicks = False  # session: the clicks simulation is not tuned on
    metric = "ndcg@24" if args.protocol == "session" else "ndcg@10"
    per_user: dict[str, list[np.ndarray]] = {name: [] for name in variants}
    #: next-item: the same fit also scored with the validation movie's 3 heaviest tags given
    with_tags: dict[str, list[np.ndarray]] = {name: [] for name in variants}
    rows: dict[str, list[tuple[Result, dict[str, Any]]]] = {name: [] for name in variants}
    for seed in (int(s) for s in args.seeds.split(",")):
        prepared = proto.prepare(data, np.random.default_rng([seed, 0]))
        valid = proto.validation(prepared)
        for name, spec in variants.items():
            overrides = {k: v for k, v in spec.items() if k != "model"}
            model = create(spec["model"], **overrides)
            start = time.perf_counter()
            res = run(
                model,
                proto,
                valid,
                fit_rng=np.random.default_rng([seed, 1]),
                stats_rng=np.random.default_rng([seed, 2]),
                n_resamples=200,
                seed=seed,
            )
            info = {
                "seconds": time.perf_counter() - start,
                "epochs": model.fit_info.epochs,
                "holdout": max((h.get("valid", np.nan) for h in model.fit_info.history), default=np.nan),
            }
            rows[name].append((res, info))
            per_user[name].append(res.per_user[metric])
            by_k = " ".join(f"k{k}={v[metric]:.4f}" for k, v in sorted(res.by_k.items()))
            if args.protocol != "session":
                tagged, _, _ = TagConditionedNextItemProtocol().evaluate(model, valid, (10,))
                with_tags[name].append(tagged[metric])
                by_k = f"with tags {np.nanmean(tagged[metric]):.4f}"
            print(
                f"seed {seed} {name:<22} {metric} {res.metrics[metric]:.4f} ({by_k}) "
                f"holdout ndcg@10 {info['holdout']:.4f} epochs {info['epochs']} {info['seconds']:.0f}s",
                flush=True,
            )
    first = next(iter(variants))
    base = np.concatenate(per_user[first])
    what = (
        "validation users, NDCG@24 over k = 1, 3, 5, 10"
        if args.protocol == "session"
        else "validation item, NDCG@10"
    )
    print(f"\n{args.protocol}: {what}, seeds {args.seeds}; paired against {first}")
    for name in variants:
        mine = np.concatenate(per_user[name])
        cmp = paired_comparison(mine, base, np.random.default_rng(0), 1000)
        holdout = np.mean([i["holdout"] for _, i in rows[name]])
        secs = np.mean([i["seconds"] for _, i in rows[name]])
        tags = ""
        if with_tags[name]:
            tagged = np.concatenate(with_tags[name])
            t_cmp = paired_comparison(
                tagged, np.concatenate(with_tags[first]), np.random.default_rng(0), 1000
            )
            tags = (
                f"  with tags {np.nanmean(tagged):.4f} diff {t_cmp['mean_diff']:+.4f} "
                f"[{t_cmp['ci_low']:+.4f}, {t_cmp['ci_high']:+.4f}]"
            )
        print(
            f"{name:<22} {mine.mean():.4f}  diff {cmp['mean_diff']:+.4f} "
            f"[{cmp['ci_low']:+.4f}, {cmp['ci_high']:+.4f}]{tags}  holdout {holdout:.4f}  {secs:.0f}s"
        )


if __name__ == "__main__":
    main()
