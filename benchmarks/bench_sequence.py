"""Sequence recommender benchmark: serving latency and next-item quality.

Run with ``python benchmarks/bench_sequence.py [--threads 2] [--skip-quality]``.

1. Latency of :func:`movierec.ranking.recommend` for one 20-like session
   (top 20 movies and 10 tags) on the ml-latest-small catalogue and on a
   synthetic 60,000-movie catalogue (untrained weights: latency does not
   depend on their values), with float32 heads and with the int8 heads the
   web service scores with (``SequenceConfig.int8_heads``).
2. Next-item quality on ml-latest-small with the project harness
   (``next-item`` protocol: temporal leave-last, full ranking excluding the
   user's history; and ``next-item-untied``, the same with each user's ratings of
   one same second in a random order, which no model can exploit): popularity
   and item-to-item ``transitions`` vs ``sequence`` vs ``sequence-attn`` (library defaults).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from movierec.data.dataset import Dataset
from movierec.data.load import load_dataset
from movierec.data.synthetic import markov_sequences
from movierec.evaluation.harness import evaluate
from movierec.models.base import Query
from movierec.models.registry import create
from movierec.ranking import Catalog, recommend
from movierec.settings import Settings

nan = float("nan")
MIRROR = Path("/work/shared/data/movielens")


def latency(data: Dataset, name: str, calls: int, rng: np.random.Generator) -> dict[str, float]:
    """p50 / p99 milliseconds of ``recommend`` for random 20-like sessions with 2 liked tags,
    with float32 heads and with int8 heads (``int8_heads``, what the web service runs),
    taken in alternating blocks so that both see the same machine."""
    model = create(name, epochs=0).fit(data, rng)  # untrained: same cost as trained weights
    catalog = Catalog.from_dataset(data)
    popular = np.argsort(-data.movie_popularity)[: max(200, 20)]
    sessions = [
        Query.session(
            liked=rng.choice(popular, 20, replace=False),
            liked_tags=rng.choice(max(data.n_tags, 1), min(2, data.n_tags), replace=False),
        )
        for _ in range(calls)
    ]
    times = {False: np.empty(calls), True: np.empty(calls)}
    for int8 in (False, True):  # warm-up (and the int8 copy of the heads)
        model.config.int8_heads = int8
        for q in sessions[:10]:
            recommend(model, [q], 20, catalog=catalog, n_tags=10)
    for block in range(0, calls, 50):
        for int8 in (False, True):
            model.config.int8_heads = int8
            for i in range(block, min(block + 50, calls)):
                start = time.perf_counter()
                recommend(model, [sessions[i]], 20, catalog=catalog, n_tags=10)
                times[int8][i] = time.perf_counter() - start
    out = {}
    for int8, label in ((False, ""), (True, "int8_")):
        out[f"{label}p50_ms"] = 1e3 * float(np.percentile(times[int8], 50))
        out[f"{label}p99_ms"] = 1e3 * float(np.percentile(times[int8], 99))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="torch threads (the target machine has 2 cores)"
    )
    parser.add_argument("--calls", type=int, default=500, help="recommend() calls per latency figure")
    parser.add_argument("--skip-quality", action="store_true", help="latency only")
    parser.add_argument("--skip-latency", action="store_true", help="quality only")
    parser.add_argument(
        "--models", default="pop,transitions,sequence,sequence-attn", help="models for the quality table"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the latency sessions")
    parser.add_argument(
        "--seeds", default="0", help="comma list of seeds for the quality table (split + fit)"
    )
    parser.add_argument(
        "--epochs", type=int, default=0, help="override the sequence models' epochs (0: default)"
    )
    parser.add_argument(
        "--protocols", default="next-item,next-item-untied", help="comma list of next-item protocols"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as home:
        data = load_dataset("ml-latest-small", Settings(home=Path(home), mirror=MIRROR))
    print(
        f"ml-latest-small: {data.n_users} users, {data.n_movies} movies, {data.n_tags} tags, "
        f"{data.n_ratings} ratings; torch threads {torch.get_num_threads()}"
    )
    rng = np.random.default_rng(args.seed)
    if not args.skip_latency:
        big = markov_sequences(200, 60_000, 20, rng, n_tags=1000)
        print("\nrecommend() latency, 20-like session + 2 tags, top 20 movies + 10 tags")
        print(
            f"{'model':<15}{'catalogue':>12}{'p50 ms':>10}{'p99 ms':>10}{'int8 p50':>10}{'int8 p99':>10}"
            f"{'p50 ratio':>10}"
        )
        for name in ("sequence", "sequence-attn"):
            for label, d in (("ml-small", data), ("60k synth", big)):
                lat = latency(d, name, args.calls, rng)
                print(
                    f"{name:<15}{label:>12}{lat['p50_ms']:>10.2f}{lat['p99_ms']:>10.2f}"
                    f"{lat['int8_p50_ms']:>10.2f}{lat['int8_p99_ms']:>10.2f}{lat['p50_ms'] / lat['int8_p50_ms']:>9.1f}x",
                    flush=True,
                )
    if not args.skip_quality:
        print("\nnext-item protocols on ml-latest-small (full ranking, history excluded), 95% bootstrap CIs")
        sequence_models = [m for m in ("sequence", "sequence-attn") if m in args.models.split(",")]
        extra: dict[str, object] = {"epochs": args.epochs} if args.epochs else {}
        overrides = {m: extra for m in sequence_models} if extra else None
        print(
            f"{'protocol':<18}{'model':<15}{'seed':>5}{'HR@10':>22}{'NDCG@10':>22}{'MRR@10':>8}{'fit s':>8}"
        )
        by_model: dict[tuple[str, str], list[float]] = {}
        for protocol in args.protocols.split(","):
            for seed in [int(s) for s in args.seeds.split(",")]:
                results = evaluate(
                    args.models.split(","),
                    data,
                    protocol,
                    seed=seed,
                    ks=(10,),
                    n_resamples=500,
                    model_overrides=overrides,
                )
                for r in results:
                    m, ci = r.metrics, r.ci
                    hr, nd = m.get("hr@10", float("nan")), m.get("ndcg@10", float("nan"))
                    hr_ci, nd_ci = ci.get("hr@10", (nan, nan)), ci.get("ndcg@10", (nan, nan))
                    by_model.setdefault((protocol, r.model), []).append(nd)
                    print(
                        f"{protocol:<18}{r.model:<15}{seed:>5}{hr:>8.4f} [{hr_ci[0]:.3f},{hr_ci[1]:.3f}]"
                        f"{nd:>8.4f} [{nd_ci[0]:.3f},{nd_ci[1]:.3f}]"
                        f"{m.get('mrr@10', nan):>8.4f}{r.fit_seconds:>8.1f}",
                        flush=True,
                    )
        if len(args.seeds.split(",")) > 1:
            print("\nNDCG@10 across seeds: mean +- 95% t-interval half-width")
            for (protocol, name), vals in by_model.items():
                v = np.asarray(vals)
                half = float(stats.t.ppf(0.975, v.size - 1)) * v.std(ddof=1) / np.sqrt(v.size)
                print(f"{protocol:<18}{name:<15}{v.mean():.4f} +- {half:.4f} (n={v.size})")


if __name__ == "__main__":
    main()
