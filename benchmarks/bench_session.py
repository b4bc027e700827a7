"""Session evaluations of the interactive recommenders on ml-latest-small.

Run with ``python benchmarks/bench_session.py [--models pop,itemknn,ease,sequence,sequence-attn]
[--epochs 0] [--threads 2] [--seed 0] [--skip tags,dislike,nodislike,clicks] [--int8-compare]
[--dislike-push 0,1,2,4 --push-spaces head,input --push-aggs max,mean --push-floors 0,0.2]``.

1. Tag-conditioned next-item: the ``next-item`` protocol (temporal leave-last,
   full ranking, history excluded) with and without the test movie's 3
   heaviest tags given as the session's liked tags (``next-item-tags``); the
   gain is a paired bootstrap difference over the same test users, one fit per model.
   ``--int8-compare``: each sequence model's fit is also scored with float32 heads
   (``int8_heads=False``), paired against its int8 scores.
2. Dislike effect: for each test user's history, dislike the model's top
   recommendation and report where its 10 nearest item-kNN neighbours rank
   before and after; ``sequence`` trained with the dislike loss vs without it
   (part ``nodislike``: one more fit). With ``--dislike-push``, the fitted
   ``sequence`` model is re-scored (no refit: the push acts at scoring time)
   for each strength / embedding / aggregation of the structural dislike push,
   with the dislike effect and next-item NDCG@10 / HR@10 side by side.
3. Clicks-to-relevant: 20 % of users held out of training; each holds half of
   their likes (>= 4 stars) as the targets and clicks Like on the other half
   (the best-ranked one shown in the top 10, else a random one); clicks until a
   target shows in the top 10 (cap 10).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from movierec.data.load import load_dataset
from movierec.evaluation.protocols import get_protocol, run
from movierec.evaluation.session import clicks_to_relevant, dislike_effect, summarise_clicks
from movierec.evaluation.statistics import paired_comparison
from movierec.models.base import Query, Recommender, feedback_from_ratings, feedback_thresholds
from movierec.models.configs import with_settings
from movierec.models.knn import ItemKNN
from movierec.models.registry import create
from movierec.settings import Settings

MIRROR = Path("/work/shared/data/movielens")
SEQUENCE = ("sequence", "sequence-attn")


SEQUENCE_OVERRIDES: dict[str, object] = {}


def make(name: str, epochs: int, **extra: object) -> Recommender:
    overrides: dict[str, object] = dict(extra)
    if name in SEQUENCE:
        overrides = {**SEQUENCE_OVERRIDES, **overrides}
        if epochs:
            overrides["epochs"] = epochs
    return create(name, **overrides)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="pop,itemknn,ease,sequence,sequence-attn")
    parser.add_argument("--click-models", default="", help="models for part 3 (default: --models)")
    parser.add_argument("--epochs", type=int, default=0, help="sequence models' epochs (0: their default)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--skip", default="", help="comma list of parts to skip: tags,dislike,nodislike,clicks"
    )
    parser.add_argument(
        "--dislike-push", default="", help="comma list of dislike_push strengths to compare (part 2)"
    )
    parser.add_argument("--push-spaces", default="head", help="comma list: head,input")
    parser.add_argument("--push-aggs", default="max", help="comma list: max,mean")
    parser.add_argument("--push-floors", default="0", help="comma list of dislike_push_floor values")
    parser.add_argument(
        "--int8-compare",
        action="store_true",
        help="part 1: also score each fitted sequence model with its heads' other precision (int8_heads)",
    )
    parser.add_argument(
        "--overrides", default="", help="extra sequence config as JSON, e.g. '{\"dislike_push_train\": true}'"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.overrides:
        SEQUENCE_OVERRIDES.update(json.loads(args.overrides))
    skip = set(filter(None, args.skip.split(",")))
    names = args.models.split(",")
    with tempfile.TemporaryDirectory() as home:
        data = load_dataset("ml-latest-small", Settings(home=Path(home), mirror=MIRROR))
    plain, tagged = get_protocol("next-item"), get_protocol("next-item-tags")
    prepared = plain.prepare(data, np.random.default_rng(args.seed))
    fitted: dict[str, Recommender] = {}

    if not skip >= {"tags", "dislike"}:
        print(
            "1. next-item vs next-item-tags (test movie's 3 heaviest tags given), full ranking, NDCG@10 / HR@10"
        )
        print(
            f"{'model':<15}{'NDCG':>8}{'HR':>8}{'+tags NDCG':>12}{'+tags HR':>10}{'gain NDCG [95% CI]':>28}{'fit s':>8}"
        )
        for name in names:
            model = make(name, args.epochs)
            res = run(
                model,
                plain,
                prepared,
                fit_rng=np.random.default_rng(args.seed),
                stats_rng=np.random.default_rng(args.seed),
                ks=(10,),
                n_resamples=500,
            )
            fitted[name] = model
            per_user, _, _ = tagged.evaluate(model, prepared, (10,))
            cmp = paired_comparison(
                per_user["ndcg@10"], res.per_user["ndcg@10"], np.random.default_rng(args.seed), 1000
            )
            print(
                f"{name:<15}{res.metrics['ndcg@10']:>8.4f}{res.metrics['hr@10']:>8.4f}"
                f"{np.nanmean(per_user['ndcg@10']):>12.4f}{np.nanmean(per_user['hr@10']):>10.4f}"
                f"{cmp['mean_diff']:>+10.4f} [{cmp['ci_low']:+.4f}, {cmp['ci_high']:+.4f}]"
                f"{res.fit_seconds:>8.0f}",
                flush=True,
            )
            if args.int8_compare and name in SEQUENCE:
                # the same fit scored with float32 heads: what the int8 heads cost in quality
                saved = model.config
                model.config = dataclasses.replace(saved, int8_heads=not saved.int8_heads)
                other, _, _ = plain.evaluate(model, prepared, (10,))
                model.config = saved
                d = paired_comparison(
                    res.per_user["ndcg@10"], other["ndcg@10"], np.random.default_rng(args.seed), 1000
                )
                print(
                    f"   int8_heads={saved.int8_heads} vs {not saved.int8_heads}: NDCG@10 "
                    f"{res.metrics['ndcg@10']:.4f} vs {np.nanmean(other['ndcg@10']):.4f}, HR@10 "
                    f"{res.metrics['hr@10']:.4f} vs {np.nanmean(other['hr@10']):.4f}; paired dNDCG "
                    f"{d['mean_diff']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]",
                    flush=True,
                )

    seq_name = next((n for n in names if n in SEQUENCE), "")
    if "dislike" not in skip and seq_name:
        print("\n2. dislike the top recommendation: ranks of its 10 item-kNN neighbours (0 = first)")
        knn = ItemKNN().fit(prepared.train, np.random.default_rng(args.seed))
        hist = prepared.extra["history"]
        like, dislike = feedback_thresholds(data)
        fb = feedback_from_ratings(np.asarray(hist.rating), like, dislike)
        ptr = hist.user_ptr
        sessions = [
            Query(movies=hist.movie[ptr[u] : ptr[u + 1]], feedback=fb[ptr[u] : ptr[u + 1]])
            for u in prepared.users
        ]
        variants: dict[str, Recommender] = {f"{seq_name} (dislike loss)": fitted[seq_name]}
        if "nodislike" not in skip:
            start = time.perf_counter()
            no_dislike = make(seq_name, args.epochs, dislike_weight=0.0)
            no_dislike.fit(prepared.train, np.random.default_rng(args.seed), valid=prepared.valid)
            variants[f"{seq_name} (no dislike loss)"] = no_dislike
            print(f"   (no-dislike model fitted in {time.perf_counter() - start:.0f} s)")
        if "itemknn" in fitted:
            variants["itemknn"] = fitted["itemknn"]
        print(
            f"{'model':<28}{'median before':>14}{'median after':>14}{'mean shift':>12}{'top10 before':>14}{'top10 after':>13}"
        )
        for label, model in variants.items():
            s = dislike_effect(model, sessions, lambda m: knn.similar(m, 30)[0], 10).summary(10)
            print(
                f"{label:<28}{s['median_rank_before']:>14.0f}{s['median_rank_after']:>14.0f}{s['mean_shift']:>12.0f}"
                f"{s['in_top10_before']:>14.3f}{s['in_top10_after']:>13.3f}",
                flush=True,
            )
        if args.dislike_push:
            model = fitted[seq_name]
            saved = model.config
            print(
                "\n2b. structural dislike push on the same fitted sequence model"
                " (dislike effect as above; next-item full ranking; dNDCG: paired vs push 0, 95% CI)"
            )
            print(
                f"{'push':>5} {'space':<6}{'agg':<5}{'floor':>6}{'median before':>14}{'median after':>13}"
                f"{'mean shift':>11}{'top10 before':>13}{'top10 after':>12}{'NDCG@10':>9}{'HR@10':>8}"
                f"{'dNDCG [95% CI]':>27}{'s':>5}"
            )
            combos = [
                (float(v), space, agg, float(fl))
                for v in args.dislike_push.split(",")
                for space in args.push_spaces.split(",")
                for agg in args.push_aggs.split(",")
                for fl in args.push_floors.split(",")
            ]
            # push 0 first (the reference), once: it is the same whatever the other settings
            combos = [(0.0, "-", "-", 0.0)] + [c for c in combos if c[0] > 0]
            reference: np.ndarray | None = None
            for strength, space, agg, floor in combos:
                start = time.perf_counter()
                model.config = with_settings(
                    saved,
                    dict(
                        dislike_push=strength,
                        dislike_push_space=space if strength else saved.push.dislike_push_space,
                        dislike_push_agg=agg if strength else saved.push.dislike_push_agg,
                        dislike_push_floor=floor,
                    ),
                )
                s = dislike_effect(model, sessions, lambda m: knn.similar(m, 30)[0], 10).summary(10)
                per_user, _, _ = plain.evaluate(model, prepared, (10,))
                ndcg = per_user["ndcg@10"]
                reference = ndcg if reference is None else reference
                cmp = paired_comparison(ndcg, reference, np.random.default_rng(args.seed), 1000)
                print(
                    f"{strength:>5g} {space:<6}{agg:<5}{floor:>6g}{s['median_rank_before']:>14.0f}"
                    f"{s['median_rank_after']:>13.0f}{s['mean_shift']:>11.0f}{s['in_top10_before']:>13.3f}"
                    f"{s['in_top10_after']:>12.3f}{np.nanmean(ndcg):>9.4f}{np.nanmean(per_user['hr@10']):>8.4f}"
                    f"{cmp['mean_diff']:>+10.4f} [{cmp['ci_low']:+.4f}, {cmp['ci_high']:+.4f}]"
                    f"{time.perf_counter() - start:>5.0f}",
                    flush=True,
                )
            model.config = saved

    if "clicks" not in skip:
        print(
            "\n3. clicks until a held-out like shows in the top 10 (20% of users held out of training; cap 10)"
        )
        rng = np.random.default_rng(args.seed)
        held_users = np.sort(rng.choice(data.n_users, data.n_users // 5, replace=False))
        in_held = np.isin(data.user, held_users)
        train = data.subset(~in_held, f"{data.name}:clicks-train")
        like, _ = feedback_thresholds(data)
        own, targets = [], []
        for u in held_users:  # per visitor: split their likes in two halves
            lo, hi = data.user_ptr[u], data.user_ptr[u + 1]
            liked = data.movie[lo:hi][data.rating[lo:hi] >= like].astype(np.int64)
            liked = rng.permutation(liked)
            own.append(liked[: liked.size // 2])
            targets.append(liked[liked.size // 2 :])
        keep = np.array([o.size > 0 and t.size > 0 for o, t in zip(own, targets, strict=True)])
        own = [o for o, k in zip(own, keep, strict=True) if k]
        targets = [t for t, k in zip(targets, keep, strict=True) if k]
        fallback = np.log1p(np.bincount(train.movie, minlength=data.n_movies)).astype(np.float32)
        print(f"   {len(own)} visitors")
        print(f"{'model':<15}{'0 clicks':>9}{'<=1':>7}{'<=3':>7}{'<=5':>7}{'never':>7}{'median':>8}")
        for name in args.click_models.split(",") if args.click_models else names:
            model = make(name, args.epochs).fit(train, np.random.default_rng(args.seed))
            clicks = clicks_to_relevant(
                model, own, targets, np.random.default_rng(args.seed), fallback=fallback
            )
            s = summarise_clicks(clicks, 10)
            print(
                f"{name:<15}{s['found_by_0']:>9.3f}{s['found_by_1']:>7.3f}{s['found_by_3']:>7.3f}"
                f"{s['found_by_5']:>7.3f}{s['never']:>7.3f}{s['median_clicks']:>8.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
