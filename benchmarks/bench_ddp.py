"""Training throughput with one process and with several (DistributedDataParallel over gloo).

Trains the rating MLP (``mlp-reg``) on planted low-rank ratings for a few
epochs, once in a single process and once in ``--procs`` processes started
here with ``torch.multiprocessing`` (file rendezvous, gloo on the loopback
interface), and prints training samples per second for both and the ratio.
Samples per second = ratings x epochs / seconds spent in the epochs (rank 0's
clock; data generation and process start-up are not counted).

    .venv/bin/python benchmarks/bench_ddp.py --users 2000 --movies 1000 --density 0.05 --epochs 3

Each process uses ``--threads`` torch threads, so two processes use twice the
cores of one; on a shared or small machine the ratio says little about a
dedicated one.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from movierec.data.synthetic import low_rank_ratings
from movierec.distributed import init_file_group
from movierec.models.rating_mlp import RatingRegressor


def _run(rank: int, world: int, args: argparse.Namespace, init_file: str, out: str) -> None:
    torch.set_num_threads(args.threads)
    if world > 1:
        init_file_group(rank, world, init_file, timeout_s=300)
    try:
        data, _ = low_rank_ratings(args.users, args.movies, 8, args.density, np.random.default_rng(0))
        model = RatingRegressor(
            epochs=args.epochs, batch_size=args.batch_size, threads=args.threads, patience=0
        ).fit(data, np.random.default_rng(0))
        seconds = sum(h["seconds"] for h in model.fit_info.history)
        if rank == 0:
            Path(out).write_text(
                json.dumps(
                    {
                        "processes": world,
                        "ratings": data.n_ratings,
                        "epochs": args.epochs,
                        "seconds": round(seconds, 3),
                        "samples_per_s": round(data.n_ratings * args.epochs / seconds, 1),
                        "final_loss": round(model.fit_info.history[-1]["loss"], 4),
                    }
                )
            )
    finally:
        if world > 1:
            dist.destroy_process_group()


def measure(args: argparse.Namespace, world: int) -> dict[str, float]:
    """Throughput of one run on ``world`` processes."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        if world == 1:
            _run(0, 1, args, "", out)
        else:
            os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
            mp.start_processes(
                _run, args=(world, args, os.path.join(tmp, "rdzv"), out), nprocs=world, start_method="spawn"
            )
        result: dict[str, float] = json.loads(Path(out).read_text())
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--movies", type=int, default=1000)
    p.add_argument("--density", type=float, default=0.05)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--procs", type=int, default=2, help="processes of the distributed run")
    args = p.parse_args()
    one = measure(args, 1)
    many = measure(args, args.procs)
    print(json.dumps(one))
    print(json.dumps(many))
    ratio = many["samples_per_s"] / one["samples_per_s"]
    print(
        f"1 process: {one['samples_per_s']:.0f} samples/s; {args.procs} processes: "
        f"{many['samples_per_s']:.0f} samples/s; ratio {ratio:.2f}"
    )


if __name__ == "__main__":
    main()
