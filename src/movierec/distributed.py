"""Joining and leaving a ``torch.distributed`` process group started by ``torchrun``.

``torchrun --nproc_per_node N ...`` starts ``N`` copies of a program and tells
each one its place through environment variables (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``). :func:`init_from_env`
reads them and joins the group; without them (a plain ``python`` run) it does
nothing and everything stays single-process. The training loop
(:func:`movierec.models.trainer.train`) notices an initialised group of more
than one process by itself and trains with ``DistributedDataParallel``.

Backend: ``gloo`` on CPU; where CUDA is available ``cpu:gloo,cuda:nccl``
(CPU tensors still travel over gloo, CUDA tensors over NCCL), and each
process is pinned to GPU ``LOCAL_RANK``.

Typical use::

    with process_group():
        model.fit(data, np.random.default_rng(seed))   # same seed on every rank
        if is_main():
            save_model(model, path)
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist

__all__ = [
    "barrier",
    "init_file_group",
    "init_from_env",
    "is_distributed",
    "is_main",
    "main_first",
    "process_group",
    "rank",
    "world",
]

_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def _env_int(name: str) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value)
    except ValueError:
        raise ValueError(
            f"environment variable {name}={value!r} is not an integer (run under torchrun?)"
        ) from None


def default_backend() -> str:
    """``"cpu:gloo,cuda:nccl"`` when CUDA is available, else ``"gloo"``."""
    return "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"


def init_from_env(backend: str | None = None, *, timeout_s: float = 1800.0) -> bool:
    """Join the process group described by torchrun's environment variables.

    Parameters
    ----------
    backend:
        ``torch.distributed`` backend; ``None`` picks :func:`default_backend`.
    timeout_s:
        How long a collective waits for the other processes before failing.

    Returns
    -------
    ``True`` if this process is now part of a group of two or more processes
    (or already was); ``False`` for a single-process run (no ``WORLD_SIZE`` in
    the environment, or ``WORLD_SIZE=1``), where nothing is initialised.

    Raises
    ------
    ValueError
        ``WORLD_SIZE`` is set but another of ``RANK``, ``MASTER_ADDR``,
        ``MASTER_PORT`` is missing, or a value is malformed.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    if "WORLD_SIZE" not in os.environ:
        return False
    size = _env_int("WORLD_SIZE")
    if size < 1:
        raise ValueError(f"WORLD_SIZE must be >= 1, got {size}")
    if size == 1:
        return False
    missing = [k for k in _ENV if k not in os.environ]
    if missing:
        raise ValueError(f"WORLD_SIZE={size} but {', '.join(missing)} not set: launch with torchrun")
    if not dist.is_available():
        raise RuntimeError("this torch build has no torch.distributed support")
    r = _env_int("RANK")
    if not 0 <= r < size:
        raise ValueError(f"RANK={r} outside 0..{size - 1}")
    backend = backend or default_backend()
    if torch.cuda.is_available() and "nccl" in backend:
        local = _env_int("LOCAL_RANK") if "LOCAL_RANK" in os.environ else r
        torch.cuda.set_device(local % torch.cuda.device_count())
    dist.init_process_group(
        backend=backend,
        init_method="env://",
        rank=r,
        world_size=size,
        timeout=datetime.timedelta(seconds=timeout_s),
    )
    return True


def init_file_group(rank: int, world: int, init_file: str, *, timeout_s: float = 300.0) -> None:
    """Join a gloo group through a shared rendezvous file (no TCP store listening on any
    interface): how tests and benchmarks spawn CPU processes on one machine."""
    dist.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=timeout_s),
    )


def is_distributed() -> bool:
    """Whether a process group of two or more processes is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world() -> int:
    """Number of processes in the group (1 when none is initialised)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 when no group is initialised)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """Whether this process is rank 0 (always true for a single-process run)."""
    return rank() == 0


def barrier() -> None:
    """Wait for every process of the group (no-op without one)."""
    if is_distributed():
        dist.barrier()


@contextmanager
def main_first() -> Iterator[None]:
    """Run the block on rank 0 first, then on the other ranks (e.g. fetch into a shared cache once)."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


@contextmanager
def process_group(backend: str | None = None, *, timeout_s: float = 1800.0) -> Iterator[bool]:
    """Join the group with :func:`init_from_env` for the block and tear it down after.

    Yields whether the run is distributed (see :func:`init_from_env`). A group
    that was already initialised before entering is left alone on exit.
    """
    already = dist.is_available() and dist.is_initialized()
    started = init_from_env(backend, timeout_s=timeout_s)
    try:
        yield started
    finally:
        if started and not already and dist.is_initialized():
            dist.destroy_process_group()
