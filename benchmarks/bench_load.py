"""Load time and peak memory of the MovieLens loaders.

Each measurement runs in a fresh subprocess; the peak resident set size is
that child's own ``ru_maxrss`` (from ``os.wait4``), so native allocations by
pandas / pyarrow count, and one measurement cannot inflate the next.

Measured:

(a) ``ml-latest-small`` through ``load_dataset`` from the mirror
    (``--mirror`` or ``MOVIEREC_MIRROR``; skipped if absent), with a warm cache.
(b) a synthetic data set in the ml-25m CSV layout (``--ratings`` rows, default
    25,000,000), generated once under ``--workdir`` and reused, loaded with
    ``load_folder``.

Targets: (a) < 2 s; (b) < 90 s with peak RSS < 4 GB. ``--profile`` adds a
cProfile of each load (top functions by cumulative time).

Usage::

    python benchmarks/bench_load.py [--ratings N] [--workdir DIR] [--mirror DIR] [--repeat K] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_synthetic_ml25m import generate

TARGETS = {"ml-latest-small": (2.0, None), "synthetic": (90.0, 4.0)}

# Run in the child: load, print one JSON line with the in-process load time.
_CHILD = """
import json, sys, time
from pathlib import Path
kind, arg, home, profile = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
t0 = time.perf_counter()
import movierec.data.load, movierec.data.movielens  # imports are timed apart from the load
from movierec.settings import Settings
t_import = time.perf_counter() - t0

def run():
    if kind == "named":
        s = Settings(home=Path(home), mirror=Path(arg), metadata=None)
        return movierec.data.load.load_dataset("ml-latest-small", s, with_metadata=False)
    return movierec.data.movielens.load_folder(Path(arg))

if profile:
    import cProfile, pstats, io
    prof = cProfile.Profile()
    t1 = time.perf_counter(); prof.enable(); ds = run(); prof.disable(); t_load = time.perf_counter() - t1
    buf = io.StringIO(); pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(30)
    print(buf.getvalue(), file=sys.stderr)
else:
    t1 = time.perf_counter(); ds = run(); t_load = time.perf_counter() - t1
s = ds.summary()
print(json.dumps({"import_s": t_import, "load_s": t_load, "ratings": s["ratings"], "users": s["users"],
                  "movies": s["movies"], "tag_applications": s["tag_applications"], "tags": s["tags"]}))
"""


def measure(kind: str, arg: Path, home: Path, *, profile: bool = False) -> dict[str, float]:
    """Load in a child process; its timings and counts plus wall time and peak RSS (GB)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as errfile:
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, kind, str(arg), str(home), "1" if profile else "0"],
            stdout=subprocess.PIPE,
            stderr=errfile,
            text=True,
        )
        assert proc.stdout is not None
        out = proc.stdout.read()
        # reap with wait4 (not proc.wait) to get this child's own rusage
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        errfile.seek(0)
        err = errfile.read()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"load of {arg} failed (exit {proc.returncode}):\n{err[-4000:]}")
    if profile:
        print(err, file=sys.stderr)
    result = json.loads(out.strip().splitlines()[-1])
    # Linux reports ru_maxrss in KiB
    # CPU seconds of the whole child (imports included): less sensitive than wall time to a busy machine
    result |= {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_gb": usage.ru_maxrss * 1024 / 1e9,
    }
    return result


def report(label: str, runs: list[dict[str, float]], target: tuple[float, float | None]) -> None:
    best = min(runs, key=lambda r: r["load_s"])
    peak = max(r["peak_rss_gb"] for r in runs)
    t_target, m_target = target
    times = ", ".join(f"{r['load_s']:.2f}" for r in runs)
    ok = best["load_s"] < t_target and (m_target is None or peak < m_target)
    print(
        f"{label:<18} ratings={int(best['ratings']):>11,} users={int(best['users']):>7,} "
        f"movies={int(best['movies']):>6,} tags={int(best['tag_applications']):>9,} | "
        f"load {best['load_s']:7.2f} s (runs: {times}) "
        f"import {best['import_s']:.2f} s, process wall {best['wall_s']:.2f} s, process CPU {best['cpu_s']:.2f} s, peak RSS {peak:.2f} GB | "
        f"target < {t_target:g} s"
        + (f", < {m_target:g} GB" if m_target else "")
        + f": {'OK' if ok else 'MISSED'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ratings", type=int, default=25_000_000, help="rows of the synthetic data set")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/movierec-bench"))
    parser.add_argument("--mirror", type=Path, default=os.environ.get("MOVIEREC_MIRROR"))
    parser.add_argument("--repeat", type=int, default=1, help="loads per data set (best time is reported)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of each load to stderr")
    parser.add_argument("--skip-small", action="store_true", help="do not measure ml-latest-small")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPU(s), workdir {args.workdir}")

    if not args.skip_small:
        if args.mirror and (Path(args.mirror) / "ml-latest-small.zip").exists():
            home = args.workdir / "home"
            measure("named", args.mirror, home)  # unpack into the cache once
            runs = [measure("named", args.mirror, home, profile=args.profile) for _ in range(args.repeat)]
            report("ml-latest-small", runs, TARGETS["ml-latest-small"])
        else:
            print("ml-latest-small    skipped: no --mirror / MOVIEREC_MIRROR holding ml-latest-small.zip")

    folder = args.workdir / f"synthetic-ml25m-{args.ratings}"
    if not (folder / ".complete").exists():
        start = time.perf_counter()
        generate(folder, args.ratings)
        print(f"generated {folder} in {time.perf_counter() - start:.1f} s")
    else:
        print(f"reusing {folder}")
    runs = [measure("folder", folder, args.workdir, profile=args.profile) for _ in range(args.repeat)]
    report(f"synthetic {args.ratings / 1e6:g}M", runs, TARGETS["synthetic"])


if __name__ == "__main__":
    main()
