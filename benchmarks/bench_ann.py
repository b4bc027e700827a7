"""ANN retrieval benchmark: exact top-100 vs FAISS candidates + exact rescoring.

Run with ``python benchmarks/bench_ann.py [--n-items 1000000] [--queries 256]
[--n-probe 8 16 32 48] [--kind ivf] [--threads 1]``.

A synthetic catalogue shaped like a trained sequence model's movie head
(``score = [h, 1] @ [W, b].T``, so ``dim = d + 1``): item vectors from a
low-rank mixture of clusters of very unequal size (genres / niches) with
log-normal norms, plus a popularity-bias column (Zipf-like, about half the
spread of the taste term); queries mix one or two clusters, like a session.

Prints, for one thread (FAISS, and numpy's BLAS through threadpoolctl when
installed): index build time, exact top-``k`` latency per single query
(numpy matmul + argpartition + sort of the top ``k``: the baseline) against
ANN + rescore latency p50 / p99 for each ``n_probe``, recall@``k`` of the ANN
result against exact, batched throughput, a filtered + excluded case, and memory.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable

import numpy as np

from movierec.retrieval import MipsConfig, MipsIndex, candidates_then_rescore
from movierec.topn import top_n


def synthetic_catalogue(
    n_items: int, d: int, n_queries: int, rng: np.random.Generator, n_clusters: int = 512, rank: int = 24
) -> tuple[np.ndarray, np.ndarray]:
    """Item vectors ``(n_items, d + 1)`` and query vectors ``(n_queries, d + 1)``, float32.

    The last item column is a popularity bias and the last query column is 1.
    """
    basis = rng.standard_normal((rank, d), dtype=np.float32) / np.float32(np.sqrt(rank))
    centers = rng.standard_normal((n_clusters, rank), dtype=np.float32)
    share = rng.dirichlet(np.full(n_clusters, 0.5))
    cluster = rng.choice(n_clusters, size=n_items, p=share)
    z = centers[cluster] + 0.6 * rng.standard_normal((n_items, rank), dtype=np.float32)
    items = np.empty((n_items, d + 1), np.float32)
    items[:, :d] = z @ basis
    items[:, :d] += 0.15 * rng.standard_normal((n_items, d), dtype=np.float32)
    items[:, :d] *= rng.lognormal(0.0, 0.25, (n_items, 1)).astype(np.float32)
    bias = -0.8 * np.log(rng.permutation(n_items) + 1.0)  # Zipf-like popularity
    items[:, d] = (bias - bias.mean()) / bias.std()
    qc = rng.choice(n_clusters, size=(n_queries, 2), p=share)
    mix = rng.random((n_queries, 1), dtype=np.float32)
    zq = mix * centers[qc[:, 0]] + (1 - mix) * centers[qc[:, 1]]
    zq += 0.5 * rng.standard_normal((n_queries, rank), dtype=np.float32)
    queries = np.ones((n_queries, d + 1), np.float32)
    queries[:, :d] = 1.5 * (zq @ basis) + 0.2 * rng.standard_normal((n_queries, d), dtype=np.float32)
    spread = float((queries[:16, :d] @ items[:4096, :d].T).std())
    items[:, d] *= 0.5 * spread
    return items, queries


def exact_top_k(items: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The baseline: full matmul, argpartition, sort of the top ``k``; ``(B, k)`` indices and scores."""
    s = q @ items.T
    part = np.argpartition(-s, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(s, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean over rows of |found ∩ truth| / |truth| (padding ``-1`` never matches)."""
    k = truth.shape[1]
    hits = [np.intersect1d(f[f >= 0], t).size / k for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits))


def per_query_ms(fn: Callable[[int], object], n: int) -> np.ndarray:
    """Latency of ``fn(i)`` (one call per query ``i``), milliseconds ``(n,)``."""
    out = np.empty(n)
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        out[i] = (time.perf_counter() - t) * 1e3
    return out


def fmt(ms: np.ndarray) -> str:
    return f"p50 {np.percentile(ms, 50):7.2f} ms  p99 {np.percentile(ms, 99):7.2f} ms"


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-items", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=64, help="d; vectors have d + 1 columns (bias)")
    ap.add_argument("--queries", type=int, default=256)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--n-candidates", type=int, default=200)
    ap.add_argument("--kind", choices=["ivf", "hnsw", "flat"], default="ivf")
    ap.add_argument("--n-lists", type=int, default=None)
    ap.add_argument("--n-probe", type=int, nargs="+", default=[8, 16, 32, 48])
    ap.add_argument("--ef-search", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import faiss

    faiss.omp_set_num_threads(args.threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
        blas = f"numpy BLAS limited to {args.threads} thread(s)"
    except ImportError:
        blas = "threadpoolctl missing: set OMP_NUM_THREADS/OPENBLAS_NUM_THREADS yourself"
    print(
        f"faiss {faiss.__version__}, {args.threads} FAISS thread(s), {blas}; shared CPU (timings contended)"
    )

    rng = np.random.default_rng(args.seed)
    t = time.perf_counter()
    items, queries = synthetic_catalogue(args.n_items, args.dim, args.queries, rng)
    print(
        f"catalogue {items.shape} float32 ({items.nbytes / 2**20:.0f} MiB), {len(queries)} queries, "
        f"generated in {time.perf_counter() - t:.1f} s"
    )
    k = args.k

    nq = len(queries)
    exact_ms = per_query_ms(lambda i: exact_top_k(items, queries[i : i + 1], k), nq)
    t = time.perf_counter()
    truth = np.concatenate([exact_top_k(items, queries[s : s + 64], k)[0] for s in range(0, nq, 64)])
    exact_batch = (time.perf_counter() - t) * 1e3 / len(queries)
    print(
        f"exact top-{k} (matmul + argpartition), 1 query/call: {fmt(exact_ms)}; "
        f"batches of 64: {exact_batch:.2f} ms/query"
    )

    rss0 = rss_mb()
    t = time.perf_counter()
    config = MipsConfig(kind=args.kind, n_lists=args.n_lists)
    index = MipsIndex.build(items, config, rng=np.random.default_rng(args.seed))
    build_s = time.perf_counter() - t
    print(
        f"build {args.kind}: {build_s:.1f} s; index {index.nbytes / 2**20:.0f} MiB "
        f"(item vectors {items.nbytes / 2**20:.0f} MiB kept for rescoring); "
        f"peak RSS {rss0:.0f} -> {rss_mb():.0f} MiB"
    )

    sweep: list[tuple[str, MipsConfig]] = []
    if args.kind == "ivf":
        sweep = [
            (f"n_probe {p:3d}", MipsConfig(kind="ivf", n_lists=args.n_lists, n_probe=p)) for p in args.n_probe
        ]
    elif args.kind == "hnsw":
        sweep = [(f"ef_search {e:4d}", MipsConfig(kind="hnsw", ef_search=e)) for e in args.ef_search]
    else:
        sweep = [("flat", config)]
    nc = args.n_candidates
    print(f"ANN + exact rescore of {nc} candidates -> top {k}, vs exact:")
    for label, cfg in sweep:
        index.config = cfg
        ms = per_query_ms(lambda i: candidates_then_rescore(index, queries[i : i + 1], items, k, nc), nq)
        found, _ = candidates_then_rescore(index, queries, items, k, nc)
        t = time.perf_counter()
        for s in range(0, len(queries), 64):
            candidates_then_rescore(index, queries[s : s + 64], items, k, nc)
        batch = (time.perf_counter() - t) * 1e3 / len(queries)
        speed = np.percentile(exact_ms, 50) / np.percentile(ms, 50)
        print(
            f"  {label}: recall@{k} {recall(found, truth):.3f}  {fmt(ms)}  "
            f"({speed:4.1f}x faster at p50); batches of 64: {batch:.2f} ms/query"
        )

    # A filtered case: 10% of the catalogue allowed (say, one genre) and 20 held movies per query.
    allowed = rng.random(args.n_items) < 0.10
    held = [truth[i, rng.choice(k, 20, replace=False)] for i in range(len(queries))]
    f_truth = np.concatenate(
        [
            top_n(queries[s : s + 16] @ items.T, k, exclude=held[s : s + 16], allowed=allowed)[0]
            for s in range(0, nq, 16)
        ]
    )
    for label, cfg in sweep[len(sweep) // 2 : len(sweep) // 2 + 1]:
        index.config = cfg
        ms = per_query_ms(
            lambda i: candidates_then_rescore(
                index, queries[i : i + 1], items, k, nc, exclude=[held[i]], allowed_mask=allowed
            ),
            nq,
        )
        found, _ = candidates_then_rescore(index, queries, items, k, nc, exclude=held, allowed_mask=allowed)
        print(
            f"  filtered (10% allowed, 20 held), {label}: recall@{k} {recall(found, f_truth):.3f}  {fmt(ms)}"
        )
    print(f"peak RSS {rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
