"""Pick the sequence models' scoring-time feedback settings on the validation item only.

Run with ``python benchmarks/tune_feedback.py [--model sequence-attn] [--push 0,1,2,3,4.5]
[--pull 0,1,2,3] [--seed 0] [--threads 1]``.

One fit on the ``next-item`` protocol's training part (temporal leave-last; the
validation item held out); then, without refitting (both act when scoring), for each
dislike push strength: next-item NDCG@10 of the *validation* item from each user's
training history (which holds their low ratings as dislikes) and the dislike effect
(dislike the top recommendation: median rank of its 10 item-kNN neighbours before and
after); for each liked-tag pull: the same NDCG@10 with the validation movie's 3 heaviest
tags given as liked tags (``next-item-tags`` on the validation item). The test item is
never looked at.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from movierec.data.load import load_dataset
from movierec.evaluation.protocols import NextItemProtocol, TagConditionedNextItemProtocol
from movierec.evaluation.session import dislike_effect
from movierec.models.base import Query, feedback_from_ratings, feedback_thresholds
from movierec.models.configs import with_settings
from movierec.models.knn import ItemKNN
from movierec.models.registry import create
from movierec.settings import Settings

MIRROR = Path("/work/shared/data/movielens")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="sequence-attn")
    parser.add_argument("--push", default="0,1,2,3,4.5")
    parser.add_argument("--pull", default="0,1,2,3")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as home:
        data = load_dataset("ml-latest-small", Settings(home=Path(home), mirror=MIRROR))
    proto = NextItemProtocol()
    full = proto.prepare(data, np.random.default_rng(args.seed))
    assert full.valid is not None
    valid = proto.validation(full)  # the validation item plays the test item's part
    model = create(args.model, threads=args.threads)
    start = time.perf_counter()
    model.fit(full.train, np.random.default_rng(args.seed), valid=full.valid)
    print(f"{args.model} fitted in {time.perf_counter() - start:.0f} s, {model.fit_info.epochs} epochs")
    knn = ItemKNN().fit(full.train, np.random.default_rng(args.seed))
    hist = full.train
    like, dislike = feedback_thresholds(data)
    fb = feedback_from_ratings(np.asarray(hist.rating), like, dislike)
    ptr = hist.user_ptr
    sessions = [
        Query(movies=hist.movie[ptr[u] : ptr[u + 1]], feedback=fb[ptr[u] : ptr[u + 1]]) for u in valid.users
    ]
    saved = dataclasses.replace(model.config)  # type: ignore[attr-defined]
    print("\nvalidation item, NDCG@10 (full ranking, history excluded); dislike effect on the histories")
    print(
        f"{'push':>6}{'NDCG@10':>10}{'median before':>15}{'median after':>14}{'top10 before':>14}{'top10 after':>13}"
    )
    for push in (float(v) for v in args.push.split(",")):
        model.config = with_settings(saved, dict(dislike_push=push))  # type: ignore[attr-defined]
        ndcg = np.nanmean(proto.evaluate(model, valid, (10,))[0]["ndcg@10"])
        s = dislike_effect(model, sessions, lambda m: knn.similar(m, 30)[0], 10).summary(10)
        print(
            f"{push:>6g}{ndcg:>10.4f}{s['median_rank_before']:>15.0f}{s['median_rank_after']:>14.0f}"
            f"{s['in_top10_before']:>14.3f}{s['in_top10_after']:>13.3f}",
            flush=True,
        )
    tagged = TagConditionedNextItemProtocol()
    print("\nvalidation item with its 3 heaviest tags given, NDCG@10 (dislike push as configured)")
    for pull in (float(v) for v in args.pull.split(",")):
        model.config = with_settings(saved, dict(liked_tag_pull=pull))  # type: ignore[attr-defined]
        ndcg = np.nanmean(tagged.evaluate(model, valid, (10,))[0]["ndcg@10"])
        print(f"  pull {pull:g}: {ndcg:.4f}", flush=True)
    model.config = saved  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
