"""movierec at ml-25m size: ingest, training throughput, serving latency and server memory.

A synthetic data set in the ml-25m CSV layout (``--ratings`` rows, default 25,000,000, ~162k users,
~62k movies, power-law popularity; ``make_synthetic_ml25m.py``) is generated under ``--workdir``
and measured in fresh interpreters (``subprocess``: this parent imports only the standard
library, and each child reports its own peak resident set, ``VmHWM`` of ``/proc/self/status``,
so no measurement inherits another's memory):

1. ``ingest``: ``columnar.ingest`` of the CSV folder into Parquet, then ``load_columnar`` of it,
   each in its own child: wall and CPU seconds, peak RSS.
2. ``train``: training samples per second of the session model (``sequence``, default
   configuration except ``epochs=1`` and one torch thread per process) with 1 process and with
   2 (DistributedDataParallel over gloo on 127.0.0.1, file rendezvous, no TCP store).
   *Method*: the ratings of the first ``--train-users`` users (file order) are cut into a
   separate ingest folder that keeps the **whole** movie and tag catalogue, so every step
   costs what it costs on the full set (the full softmax over all movies dominates; the
   number of users does not enter a step); one epoch over their examples (every liked
   rating, as the model trains) is timed by the trainer (rank 0's clock, validation and
   start-up excluded). Samples/s = examples / epoch seconds; both runs see the same examples.
3. ``latency``: p50 / p99 of ``movierec.ranking.recommend`` (top 20 movies, with and without
   10 tags) for random 20-like sessions against the full catalogue, and of the FAISS path
   (``model.query_vectors`` + ``retrieval.candidates_then_rescore`` over an IVF
   ``MipsIndex`` of ``model.item_vectors()``), with its recall@20 against the exact top 20.
   One torch / FAISS thread.
4. ``serve``: ``save_model`` of the sequence model, a catalogue database of the full
   catalogue, then ``python -m movierec serve --model DIR --db DB`` on 127.0.0.1 in a child;
   ``--sessions`` visitors each create a session, like 5 movies and GET recommendations (and
   fetch them again after each like); the server's ``VmHWM`` is read from ``/proc/PID/status``
   and it is stopped. Target: under 2 GB.

Usage::

    python benchmarks/bench_scale.py [--ratings N] [--users U] [--movies M] [--workdir DIR]
                                     [--skip ingest,train,latency,serve] [--train-users K]

``--users`` / ``--movies`` override the generator's sizes (by default ml-25m's at 25M ratings,
proportionally fewer below). A ``--workdir`` given is kept and its generated data reused; the
default temporary one is removed at the end. Everything runs with a time limit.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
PARTS = ("ingest", "train", "latency", "serve")
#: the server's peak RSS target (bytes)
SERVE_TARGET = 2e9


# ------------------------------------------------------------------------------------- helpers
def _vm_hwm(pid: int | str = "self") -> int:
    """Peak resident set (``VmHWM``) of a process in bytes, from ``/proc/PID/status``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


def _emit(result: dict[str, Any]) -> None:
    """Child side: print the result as the last stdout line, with this process's peak RSS."""
    print(json.dumps(result | {"peak_rss_gb": _vm_hwm() / 1e9}), flush=True)


def _child(part: str, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run ``python bench_scale.py --child PART SPEC`` in a fresh interpreter; its JSON result.

    Adds ``wall_s`` and ``cpu_s`` (the child's user + system CPU, its own children included).
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", part, json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{part} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result | {"wall_s": wall, "cpu_s": cpu}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------ child programs
def _c_generate(spec: dict[str, Any]) -> None:
    import make_synthetic_ml25m as gen

    base = gen._scaled
    users, movies = spec["users"], spec["movies"]

    def scaled(n_ratings: int) -> tuple[int, int]:
        u, m = base(n_ratings)
        return users or u, movies or m

    gen._scaled = scaled  # the generator's only size knob besides the rating count
    gen.generate(Path(spec["out"]), spec["ratings"], spec["seed"])
    _emit({})


def _c_ingest(spec: dict[str, Any]) -> None:
    from movierec.data import columnar

    start = time.perf_counter()
    columnar.ingest(spec["src"], spec["out"], chunk_rows=spec["chunk_rows"], overwrite=True)
    _emit({"seconds": time.perf_counter() - start, "rows": columnar.read_manifest(spec["out"])["rows"]})


def _c_load(spec: dict[str, Any]) -> None:
    from movierec.data import columnar

    start = time.perf_counter()
    ds = columnar.load_columnar(spec["out"])
    seconds = time.perf_counter() - start
    _emit(
        {
            "seconds": seconds,
            "ratings": ds.n_ratings,
            "users": ds.n_users,
            "movies": ds.n_movies,
            "tags": ds.n_tags,
        }
    )


def _c_subset(spec: dict[str, Any]) -> None:
    """The first ``users`` users' ratings (file order) plus every other table, as an ingest folder."""
    import numpy as np
    import pyarrow.parquet as pq

    from movierec.data import columnar

    src, out, want = Path(spec["src"]), Path(spec["out"]), int(spec["users"])
    pf = pq.ParquetFile(src / "ratings.parquet")
    seen: list[Any] = []
    n_seen = 0
    for i in range(pf.num_row_groups):
        ids = pf.read_row_group(i, columns=["userId"]).column("userId").to_numpy()
        _, first = np.unique(ids, return_index=True)
        seen.append(ids[np.sort(first)])
        n_seen += first.size
        if n_seen > want:
            break
    order = np.concatenate(seen)
    _, first = np.unique(order, return_index=True)
    keep = order[np.sort(first)][:want]
    table = pq.read_table(src / "ratings.parquet", filters=[("userId", "in", keep.tolist())])
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    pq.write_table(table, tmp / "ratings.parquet")
    for f in src.glob("*.parquet"):
        if f.name != "ratings.parquet":
            shutil.copy(f, tmp / f.name)
    manifest = columnar.read_manifest(src)
    manifest["rows"]["ratings"] = table.num_rows
    (tmp / columnar.MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    _emit({"users": int(keep.size), "ratings": table.num_rows})


def _train_rank(rank: int, world: int, spec: dict[str, Any], init_file: str, out: str) -> None:
    """One training process: ``sequence`` with default settings, 1 epoch, 1 torch thread."""

    import numpy as np
    import torch
    import torch.distributed as dist

    from movierec.data.columnar import load_columnar
    from movierec.distributed import init_file_group
    from movierec.models.registry import create

    torch.set_num_threads(1)
    if world > 1:
        init_file_group(rank, world, init_file, timeout_s=600)
    try:
        data = load_columnar(spec["subset"])
        cpu0 = time.process_time()
        model = create("sequence", epochs=1, threads=1).fit(data, np.random.default_rng(0))
        Path(f"{out}.cpu{rank}").write_text(str(time.process_time() - cpu0))  # fit's CPU seconds
        hist = model.fit_info.history
        seconds = sum(h["seconds"] for h in hist)
        examples = int(model.fit_info.extra["n_examples"])
        if rank == 0:
            if spec.get("save"):
                from movierec.models.artifacts import save_model

                save_model(model, spec["save"])
            Path(out).write_text(
                json.dumps(
                    {
                        "processes": world,
                        "examples": examples,
                        "batch_size": model.config.train.batch_size,
                        "movies": data.n_movies,
                        "seconds": seconds,
                        "samples_per_s": examples / seconds,
                        "loss": hist[-1]["loss"],
                    }
                )
            )
    finally:
        if world > 1:
            dist.destroy_process_group()


def _c_train(spec: dict[str, Any]) -> None:
    import torch.multiprocessing as mp

    world = int(spec["world"])
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        if world == 1:
            _train_rank(0, 1, spec, "", out)
        else:
            os.environ["GLOO_SOCKET_IFNAME"] = "lo"  # gloo on the loopback interface only
            mp.start_processes(
                _train_rank,
                args=(world, spec, os.path.join(tmp, "rdzv"), out),
                nprocs=world,
                start_method="spawn",
            )
        fit_cpu = sum(float(Path(f"{out}.cpu{r}").read_text()) for r in range(world))
        _emit(json.loads(Path(out).read_text()) | {"fit_cpu_s": fit_cpu})


def _c_prepare_serving(spec: dict[str, Any]) -> None:
    """Model (untrained unless one was saved), catalogue database, and ids for the requests."""
    import numpy as np

    from movierec.data.columnar import load_columnar
    from movierec.models.artifacts import save_model
    from movierec.models.registry import create
    from movierec.storage.catalog import build_catalog
    from movierec.storage.db import connect

    data = load_columnar(spec["subset"])
    model_dir = Path(spec["model"])
    trained = (model_dir / "meta.json").exists()
    if not trained:  # latency and memory do not depend on the weights' values
        save_model(create("sequence", epochs=0).fit(data, np.random.default_rng(0)), model_dir)
    start = time.perf_counter()
    conn = connect(spec["db"])
    try:
        build_catalog(data, conn)
    finally:
        conn.close()
    popular = np.argsort(-data.movie_popularity, kind="stable")[:200]
    all_ids = data.movies.to_list()
    ids = [int(all_ids[i]) for i in popular]
    Path(spec["ids"]).write_text(json.dumps(ids))
    _emit({"trained": trained, "catalogue_s": time.perf_counter() - start, "movies": data.n_movies})


def _c_latency(spec: dict[str, Any]) -> None:
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from movierec.data.columnar import load_columnar
    from movierec.models.artifacts import load_model
    from movierec.models.base import Query
    from movierec.models.sequence import SequenceLSTM
    from movierec.ranking import Catalog, recommend
    from movierec.retrieval import MipsConfig, MipsIndex, _faiss, candidates_then_rescore

    _faiss().omp_set_num_threads(1)
    rng = np.random.default_rng(spec["seed"])
    data = load_columnar(spec["subset"])
    model = load_model(spec["model"])
    if not isinstance(model, SequenceLSTM):
        raise TypeError(f"expected the sequence model, got {type(model).__name__}")
    catalog = Catalog.from_dataset(data)
    popular = np.argsort(-data.movie_popularity, kind="stable")[:200]
    calls = int(spec["calls"])
    sessions = [
        Query.session(
            liked=rng.choice(popular, 20, replace=False),
            liked_tags=rng.choice(max(data.n_tags, 1), min(2, data.n_tags), replace=False),
        )
        for _ in range(calls)
    ]
    items = model.item_vectors()
    start = time.perf_counter()
    index = MipsIndex.build(items, MipsConfig(), rng=np.random.default_rng(0))
    build_s = time.perf_counter() - start

    def exact(q: Any, n_tags: int) -> Any:
        return recommend(model, [q], 20, catalog=catalog, n_tags=n_tags)[0].movies

    def ann(q: Any) -> Any:
        qv = model.query_vectors([q])
        return candidates_then_rescore(index, qv, items, 20, exclude=[q.movies])[0][0]

    def timed(fn: Any) -> tuple[dict[str, float], list[Any]]:
        for q in sessions[:10]:  # warm-up
            fn(q)
        times = np.empty(calls)
        outs = []
        for i, q in enumerate(sessions):
            t0 = time.perf_counter()
            outs.append(fn(q))
            times[i] = time.perf_counter() - t0
        return {
            "p50_ms": 1e3 * float(np.percentile(times, 50)),
            "p99_ms": 1e3 * float(np.percentile(times, 99)),
        }, outs

    with_tags, _ = timed(lambda q: exact(q, 10))
    movies_only, exact_out = timed(lambda q: exact(q, 0))
    faiss_t, ann_out = timed(ann)
    recall = float(
        np.mean(
            [
                np.intersect1d(a[a >= 0], e).size / max(e.size, 1)
                for a, e in zip(ann_out, exact_out, strict=True)
            ]
        )
    )
    _emit(
        {
            "movies": model.n_movies,
            "tags": model.n_tags,
            "calls": calls,
            "exact_with_tags": with_tags,
            "exact": movies_only,
            "faiss": faiss_t,
            "faiss_recall_at_20": recall,
            "index_build_s": build_s,
            "index_mb": index.nbytes / 1e6,
            "n_lists": round(model.n_movies**0.5),
        }
    )


CHILDREN = {
    "generate": _c_generate,
    "ingest": _c_ingest,
    "load": _c_load,
    "subset": _c_subset,
    "train": _c_train,
    "prepare-serving": _c_prepare_serving,
    "latency": _c_latency,
}


# ------------------------------------------------------------------------------------- serving
def _serve(
    work: Path, model_dir: Path, db: Path, ids: list[int], sessions: int, timeout: float
) -> dict[str, Any]:
    """Start the server on 127.0.0.1, send the requests, read its VmHWM, stop it."""
    port = _free_port()
    env = os.environ | {"MOVIEREC_HOME": str(work / "home")}
    env.pop("MOVIEREC_DATABASE_URL", None)
    log = (work / "server.log").open("w")
    cmd = [sys.executable, "-m", "movierec", "serve", "--model", str(model_dir), "--db", str(db)]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/api"
    deadline = start + timeout
    result: dict[str, Any] = {"port": port}
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never an http_proxy for 127.0.0.1
    try:
        while True:  # wait for the model to load
            if proc.poll() is not None:
                raise RuntimeError(
                    f"server exited ({proc.returncode}):\n{(work / 'server.log').read_text()[-3000:]}"
                )
            if time.perf_counter() > deadline:
                raise TimeoutError("server did not come up in time")
            try:
                with direct.open(f"{base}/health", timeout=5) as r:
                    health = json.load(r)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        result["startup_s"] = time.perf_counter() - start
        result["health_movies"] = health.get("movies")
        result["rss_after_start_gb"] = _vm_hwm(proc.pid) / 1e9
        times: list[float] = []
        n_req = 0
        for s in range(sessions):
            if time.perf_counter() > deadline:
                break
            opener = urllib.request.build_opener(
                urllib.request.ProxyHandler({}),
                urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
            )
            opener.open(f"{base}/session", timeout=30).read()
            n_req += 1
            for j in range(5):
                body = json.dumps(
                    {"kind": "movie", "value": ids[(7 * s + 13 * j) % len(ids)], "feedback": "like"}
                )
                req = urllib.request.Request(
                    f"{base}/session/items",
                    body.encode(),
                    {"Content-Type": "application/json"},
                    method="POST",
                )
                opener.open(req, timeout=30).read()
                t0 = time.perf_counter()
                with opener.open(f"{base}/recommendations?n=24&n_tags=12", timeout=60) as r:
                    rec = json.load(r)
                times.append(time.perf_counter() - t0)
                n_req += 2
                if not rec["movies"]:
                    raise RuntimeError("the server recommended nothing")
        times.sort()
        result |= {
            "sessions": sessions,
            "requests": n_req,
            "rec_p50_ms": 1e3 * times[len(times) // 2],
            "rec_max_ms": 1e3 * times[-1],
            "peak_rss_gb": _vm_hwm(proc.pid) / 1e9,
        }
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
    return result


# ---------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ratings", type=int, default=25_000_000, help="ratings of the synthetic set")
    parser.add_argument("--users", type=int, default=0, help="users (0: the generator's, 162,541 at 25M)")
    parser.add_argument("--movies", type=int, default=0, help="movies (0: the generator's, 62,423 at 25M)")
    parser.add_argument("--seed", type=int, default=25)
    parser.add_argument("--workdir", type=Path, help="kept and reused (default: a temporary folder, removed)")
    parser.add_argument("--skip", default="", help=f"comma-separated parts to skip: {','.join(PARTS)}")
    parser.add_argument("--chunk-rows", type=int, default=250_000, help="ingest lines per chunk")
    parser.add_argument(
        "--train-users", type=int, default=100, help="users whose examples one epoch trains on"
    )
    parser.add_argument("--calls", type=int, default=200, help="calls per latency figure")
    parser.add_argument(
        "--sessions", type=int, default=10, help="visitors sent to the server (11 requests each)"
    )
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed to each step")
    parser.add_argument("--child", nargs=2, metavar=("PART", "SPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(_HERE))
        CHILDREN[args.child[0]](json.loads(args.child[1]))
        return

    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if skip - set(PARTS):
        parser.error(f"--skip takes {', '.join(PARTS)}; got {', '.join(sorted(skip - set(PARTS)))}")
    keep = args.workdir is not None
    work = args.workdir.resolve() if keep else Path(tempfile.mkdtemp(prefix="movierec-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPU(s), load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}, workdir {work}",
        flush=True,
    )
    t_all = time.perf_counter()
    try:
        _run(args, skip, work)
    finally:
        print(
            f"total {time.perf_counter() - t_all:.0f} s; load average now "
            f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}",
            flush=True,
        )
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def _run(args: argparse.Namespace, skip: set[str], work: Path) -> None:
    tag = f"{args.ratings}-{args.users}-{args.movies}-{args.seed}"
    src, parquet = work / f"csv-{tag}", work / f"parquet-{tag}"
    subset = work / f"subset-{tag}-{args.train_users}"
    model_dir, db, ids_file = work / "model", work / "catalogue.sqlite3", work / "ids.json"
    limit = args.timeout

    if not (src / ".complete").exists():
        spec = {"out": str(src), "ratings": args.ratings, "users": args.users, "movies": args.movies}
        r = _child("generate", spec | {"seed": args.seed}, limit)
        print(f"generated {src.name} in {r['wall_s']:.0f} s", flush=True)
    size = sum(f.stat().st_size for f in src.iterdir()) / 1e6

    print("\n1. ingest (each step in a fresh interpreter; peak RSS = its VmHWM)", flush=True)
    if "ingest" not in skip or not (parquet / "manifest.json").exists():
        ing = _child("ingest", {"src": str(src), "out": str(parquet), "chunk_rows": args.chunk_rows}, limit)
        pq_size = sum(f.stat().st_size for f in parquet.iterdir()) / 1e6
        rows = ing["rows"]
        print(
            f"  source {size:,.0f} MB CSV -> {pq_size:,.0f} MB Parquet; ratings {rows['ratings']:,}, "
            f"tags {rows.get('tags', 0):,}, chunk_rows {args.chunk_rows:,}"
        )
        print(
            f"  ingest         {ing['seconds']:7.1f} s (child wall {ing['wall_s']:.1f} s, CPU {ing['cpu_s']:.1f} s)"
            f"  peak RSS {ing['peak_rss_gb']:.2f} GB",
            flush=True,
        )
    if "ingest" not in skip:
        ld = _child("load", {"out": str(parquet)}, limit)
        print(
            f"  load_columnar  {ld['seconds']:7.1f} s (child wall {ld['wall_s']:.1f} s, CPU {ld['cpu_s']:.1f} s)"
            f"  peak RSS {ld['peak_rss_gb']:.2f} GB; {ld['ratings']:,} ratings, {ld['users']:,} users, "
            f"{ld['movies']:,} movies, {ld['tags']:,} tags",
            flush=True,
        )
    else:
        print("  skipped")

    if not (subset / "manifest.json").exists():
        _child("subset", {"src": str(parquet), "out": str(subset), "users": args.train_users}, limit)

    print(
        f"\n2. training throughput, sequence model (default config, epochs=1, 1 torch thread per process; "
        f"the first {args.train_users} users' examples, full catalogue)",
        flush=True,
    )
    if "train" not in skip:
        runs = []
        for world in (1, 2):
            spec = {"subset": str(subset), "world": world, "save": str(model_dir) if world == 1 else ""}
            r = _child("train", spec, limit)
            runs.append(r)
            print(
                f"  {world} process{'es' if world > 1 else '  '}: {r['samples_per_s']:8.0f} samples/s "
                f"({r['examples']:,} examples x 1 epoch in {r['seconds']:.1f} s, batch {r['batch_size']}, "
                f"{r['movies']:,} movies, loss {r['loss']:.3f}; fit CPU {r['fit_cpu_s']:.0f} s over all processes; child wall {r['wall_s']:.0f} s)",
                flush=True,
            )
        print(f"  ratio 2/1: {runs[1]['samples_per_s'] / runs[0]['samples_per_s']:.2f}")
    else:
        print("  skipped")

    if {"latency", "serve"} - skip:
        prep = _child(
            "prepare-serving",
            {"subset": str(subset), "model": str(model_dir), "db": str(db), "ids": str(ids_file)},
            limit,
        )
        weights = "trained 1 epoch above" if prep["trained"] else "untrained (epochs=0)"
        print(
            f"\n(model for serving: {weights}; catalogue of {prep['movies']:,} movies built in {prep['catalogue_s']:.1f} s)"
        )

    print("\n3. serving latency, one 20-like session (+2 liked tags) per call, top 20, 1 thread", flush=True)
    if "latency" not in skip:
        lat = _child(
            "latency", {"subset": str(subset), "model": str(model_dir), "calls": args.calls, "seed": 0}, limit
        )
        print(f"  catalogue {lat['movies']:,} movies, {lat['tags']:,} tags; {lat['calls']} calls each")
        for label, key in (
            ("recommend(), exact, + 10 tags", "exact_with_tags"),
            ("recommend(), exact, movies only", "exact"),
            ("FAISS IVF + exact rescoring", "faiss"),
        ):
            print(f"  {label:<34} p50 {lat[key]['p50_ms']:7.2f} ms   p99 {lat[key]['p99_ms']:7.2f} ms")
        print(
            f"  FAISS recall@20 vs exact {lat['faiss_recall_at_20']:.3f}; index ({lat['n_lists']} lists) built in "
            f"{lat['index_build_s']:.2f} s, {lat['index_mb']:.1f} MB; latency child peak RSS {lat['peak_rss_gb']:.2f} GB",
            flush=True,
        )
    else:
        print("  skipped")

    print("\n4. server memory (movierec serve, 1 process, on 127.0.0.1)", flush=True)
    if "serve" not in skip:
        ids = json.loads(ids_file.read_text())
        model_mb = sum(f.stat().st_size for f in model_dir.iterdir()) / 1e6
        s = _serve(work, model_dir, db, ids, args.sessions, limit)
        ok = "OK" if s["peak_rss_gb"] * 1e9 < SERVE_TARGET else "MISSED"
        print(
            f"  model dir {model_mb:.0f} MB, {s['health_movies']:,} movies; up in {s['startup_s']:.1f} s "
            f"(VmHWM then {s['rss_after_start_gb']:.2f} GB)"
        )
        print(
            f"  {s['requests']} requests ({s['sessions']} sessions x (create, 5 x (like, GET recommendations))): "
            f"GET recommendations p50 {s['rec_p50_ms']:.0f} ms, max {s['rec_max_ms']:.0f} ms"
        )
        print(
            f"  server peak RSS (VmHWM) {s['peak_rss_gb']:.2f} GB; target < {SERVE_TARGET / 1e9:g} GB: {ok}",
            flush=True,
        )
    else:
        print("  skipped")


if __name__ == "__main__":
    main()
