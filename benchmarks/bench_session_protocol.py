"""The README's first tables: the ``session`` protocol and next-item, several seeds.

Run with ``python benchmarks/bench_session_protocol.py [--seeds 0,1,2,3,4]
[--protocols session,session-tags,next-item,next-item-untied]
[--models pop,itemknn,ease,transitions,sequence,sequence-attn] [--threads 1]``.

For each protocol and seed the harness splits ml-latest-small once, fits every
model on the training part (the sequence models with their library defaults,
which ``make run`` serves) and scores it. Printed per protocol: each model's
mean over the seeds of the headline metric (``session``: NDCG@24 at each session
size k and averaged over k, recall@24, HR@24, coverage and popularity of the
shown movies, clicks-to-relevant; next-item: NDCG@10 and HR@10), the fit time,
and the paired difference of the reference model (``--reference``, default the
served ``sequence-attn``) against every other model: per-user differences of
all seeds pooled, 95 % bootstrap interval and sign-flip p-value.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from movierec.data.load import load_dataset
from movierec.evaluation.harness import evaluate
from movierec.evaluation.protocols import Result
from movierec.evaluation.statistics import paired_comparison
from movierec.settings import Settings

MIRROR = Path("/work/shared/data/movielens")


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(
        c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def report(protocol: str, results: dict[str, list[Result]], reference: str) -> None:
    session = protocol.startswith("session")
    first = next(iter(results.values()))[0]
    sizes = sorted(first.by_k) if session else []
    if session:
        cols = [f"k={k}" for k in sizes] + ["ndcg@24", "recall@24", "hr@24", "cover@24", "pop@24"]
        if "clicks@10" in first.metrics:
            cols += ["clicks@10", "found<=3"]
        headline = "ndcg@24"
    else:
        cols = ["ndcg@10", "hr@10"]
        headline = "ndcg@10"
    print(f"\n== {protocol} on {first.dataset} ({first.split}); {len(results[next(iter(results))])} seed(s)")
    if session:
        print("   k=1..10: NDCG@24 with the first k likes as the session; the rest averaged over k")
    header = ["model", *cols, "fit s"]
    rows = []
    for name, res in results.items():
        ok = [r for r in res if r.supported]
        if not ok:
            rows.append([name, *(["n/a"] * len(cols)), "n/a"])
            continue
        cells = []
        for c in cols:
            if c.startswith("k="):
                v = np.mean([r.by_k[int(c[2:])][headline] for r in ok])
            else:
                key = {"cover@24": "coverage@24", "pop@24": "popularity@24", "found<=3": "found_by_3"}.get(
                    c, c
                )
                v = np.mean([r.metrics[key] for r in ok])
            cells.append(f"{v:.4f}" if c != "clicks@10" else f"{v:.2f}")
        rows.append([name, *cells, f"{np.mean([r.fit_seconds for r in ok]):.1f}"])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(_row(header, widths))
    print(_row(["-" * w for w in widths], widths))
    for r in rows:
        print(_row(r, widths))
    if reference not in results:
        return
    print(f"paired {headline} of {reference} minus each model, users of all seeds pooled:")
    ref = results[reference]
    for name, res in results.items():
        if name == reference or not all(r.supported for r in res):
            continue
        metrics = [headline] + ([f"{headline}[k={k}]" for k in sizes] if session else [])
        parts = []
        for m in metrics:
            a = np.concatenate([r.per_user[m] for r in ref])
            b = np.concatenate([r.per_user[m] for r in res])
            c = paired_comparison(a, b, np.random.default_rng(0), 2000)
            label = m.replace(f"{headline}[", "").rstrip("]") if "[" in m else "all"
            parts.append(f"{label} {c['mean_diff']:+.4f} [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}]")
        print(f"  vs {name:<14} " + "; ".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--protocols", default="session,session-tags,next-item,next-item-untied")
    parser.add_argument("--models", default="pop,itemknn,ease,transitions,sequence,sequence-attn")
    parser.add_argument("--reference", default="sequence-attn")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dataset", default="ml-latest-small")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as home:
        data = load_dataset(args.dataset, Settings(home=Path(home), mirror=MIRROR))
    models = args.models.split(",")
    overrides = {m: {"threads": args.threads} for m in models if m.startswith("sequence")}
    start = time.perf_counter()
    for protocol in args.protocols.split(","):
        results: dict[str, list[Result]] = defaultdict(list)
        for seed in (int(s) for s in args.seeds.split(",")):
            for r in evaluate(models, data, protocol, seed=seed, model_overrides=overrides, n_resamples=200):
                results[r.model].append(r)
        report(protocol, dict(results), args.reference)
    print(f"\n{time.perf_counter() - start:.0f} s in all; torch threads {args.threads}")


if __name__ == "__main__":
    main()
