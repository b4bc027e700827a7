"""Streamed Parquet ingest vs the direct CSV loader: time and peak memory.

A synthetic data set in the ml-25m CSV layout (``--ratings`` rows, default 25,000,000; made by
``make_synthetic_ml25m.py`` once, in a child process, under ``--workdir`` and reused, or ``--source DIR`` for an
existing folder or zip) is measured in fresh subprocesses, each whose own peak
resident set size comes from ``os.wait4`` (native pandas / pyarrow allocations included):

0. ``imports``: the modules imported, nothing loaded (the RSS floor of the others);
1. ``direct``: ``load_folder`` on the CSV files (the baseline);
2. ``ingest``: ``columnar.ingest`` into Parquet (``--chunk-rows`` lines at a time);
3. ``columnar``: ``columnar.load_columnar`` from the Parquet folder.

The direct and columnar data sets are checked to have the same fingerprint. Timings on a
shared machine vary; CPU seconds are printed beside wall time.

Usage::

    python benchmarks/bench_ingest.py [--ratings N] [--workdir DIR] [--source DIR|ZIP] [--chunk-rows K]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent

_CHILD = """
import json, sys, time
from pathlib import Path
kind, src, out, chunk_rows = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
from movierec.data import columnar, movielens
t0 = time.perf_counter()
result = {}
if kind == "imports":
    ds = None
elif kind == "direct":
    ds = movielens.load_folder(src)
elif kind == "columnar":
    ds = columnar.load_columnar(out)
else:
    columnar.ingest(src, out, chunk_rows=chunk_rows, overwrite=True)
    ds = None
result["seconds"] = time.perf_counter() - t0
if ds is not None:
    result |= {"ratings": ds.n_ratings, "users": ds.n_users, "movies": ds.n_movies, "fingerprint": ds.fingerprint()}
elif kind == "ingest":
    result["rows"] = columnar.read_manifest(out)["rows"]
print(json.dumps(result))
"""


def measure(kind: str, src: Path, out: Path, chunk_rows: int) -> dict:
    """Run one measurement in a child process; its result plus CPU seconds and peak RSS (GB)."""
    with tempfile.TemporaryFile("w+") as errfile:
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, kind, str(src), str(out), str(chunk_rows)],
            stdout=subprocess.PIPE,
            stderr=errfile,
            text=True,
        )
        assert proc.stdout is not None
        stdout = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
        proc.returncode = os.waitstatus_to_exitcode(status)
        errfile.seek(0)
        err = errfile.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} failed (exit {proc.returncode}):\n{err[-4000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    # Linux reports ru_maxrss in KiB
    return result | {"cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_gb": usage.ru_maxrss * 1024 / 1e9}


def _size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ratings", type=int, default=25_000_000, help="rows of the synthetic data set")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/movierec-bench"))
    parser.add_argument("--source", type=Path, help="an existing data set folder or zip instead of synthetic")
    parser.add_argument("--chunk-rows", type=int, default=250_000)
    parser.add_argument("--keep", action="store_true", help="keep the Parquet folder")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPU(s), workdir {args.workdir}")

    if args.source is not None:
        src = args.source
    else:
        src = args.workdir / f"synthetic-ml25m-{args.ratings}"
        if not (src / ".complete").exists():
            # in a child: a child's ru_maxrss starts at its parent's RSS at fork time, so a generator
            # run in this process would inflate every measurement below
            start = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    str(_HERE / "make_synthetic_ml25m.py"),
                    str(src),
                    "--ratings",
                    str(args.ratings),
                ],
                check=True,
            )
            print(f"generated {src} in {time.perf_counter() - start:.1f} s")
        else:
            print(f"reusing {src}")
    out = args.workdir / f"{src.name}.parquet-{args.chunk_rows}"

    base = measure("imports", src, out, args.chunk_rows)
    direct = measure("direct", src, out, args.chunk_rows)
    ing = measure("ingest", src, out, args.chunk_rows)
    col = measure("columnar", src, out, args.chunk_rows)
    same = direct["fingerprint"] == col["fingerprint"]
    rows = ing["rows"]
    print(
        f"source {src} ({_size_mb(src):,.0f} MB) -> Parquet ({_size_mb(out):,.0f} MB), "
        f"ratings={rows['ratings']:,} tags={rows.get('tags', 0):,}, chunk_rows={args.chunk_rows:,}"
    )
    for label, r in (("direct CSV load", direct), ("ingest to Parquet", ing), ("load_columnar", col)):
        print(
            f"  {label:<18} {r['seconds']:7.2f} s wall (child CPU {r['cpu_s']:6.2f} s)  peak RSS {r['peak_rss_gb']:5.2f} GB"
        )
    print(f"  (a child that only imports the modules peaks at {base['peak_rss_gb']:.2f} GB)")
    print(f"  same Dataset (fingerprint): {same}")
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
