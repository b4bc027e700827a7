"""The one training loop for every neural model.

A model supplies its network, a function that yields mini-batches for an
epoch, a loss function and (optionally) a validation score; this loop owns the
optimiser, learning-rate schedule, early stopping, the progress bar, thread
count, checkpoints and the restoration of the best weights.

**Several processes.** Under ``torchrun`` (after
:func:`movierec.distributed.init_from_env`, world size > 1) the same call
trains with :class:`~torch.nn.parallel.DistributedDataParallel`: every rank
runs the model's code with the same seed, so ``batches(epoch)`` yields the
same sequence everywhere; rank ``r`` trains on batches ``i`` with
``i % world == r`` (the last round is padded by wrapping around to the first
batches, as ``DistributedSampler`` does, so every rank takes the same number
of steps). Gradients are averaged across ranks, so one step sees ``world``
mini-batches. **The scaling rule**: models draw their batches with
:func:`local_batch_size`, ``batch_size // world`` examples each, so one step
still sees ``batch_size`` examples and an epoch has as many steps as in one
process, at the same learning rate: the same optimisation whatever the world
size. (Before, each rank drew whole batches: an epoch had ``world`` times fewer,
larger steps, and two processes trained GMF and NeuMF to 5-15% lower NDCG@10.)
Each process uses ``cores // processes on this machine`` torch threads unless
``TrainConfig.threads`` says otherwise (two processes with torch's default on
2 cores were 15-19x slower than with one thread each). The logged loss is the average over ranks, validation runs on
every rank (keeping any random generator it uses in step) and rank 0's score
decides, so all ranks stop together and restore the same best weights.
The ``loss_fn`` must call the network (its ``forward``), not other methods:
that is where DDP hooks its gradient exchange.

**Checkpoints.** With ``TrainConfig.checkpoint_dir`` (or inside
:func:`checkpointing`) rank 0 writes ``checkpoint.pt`` atomically after every
epoch: tensors and plain values only (network, optimiser and scheduler state,
epoch, best score and weights, patience counter, history, the states of the
``generators`` passed to :func:`train` and of torch's global generator),
loaded back with ``weights_only=True``. With ``resume`` a later call continues
from it; given the generators the model draws from, the result equals an
uninterrupted run's. Rank 0 holds an exclusive lock on the directory
(``.lock``, naming its process) while training: a second run on the same
directory, such as a ``--resume`` started while orphaned workers still run,
stops at once with :class:`CheckpointError` saying who holds it.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from movierec.models.checkpoints import (
    CHECKPOINT_FILE,
    CHECKPOINT_FORMAT,
    CheckpointError,
    DirectoryLock,
    checkpointing,
    load_checkpoint,
    rng_states,
    save_atomic,
    scoped_checkpoint_dir,
    set_rng_states,
)

log = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_FILE",
    "CheckpointError",
    "TrainConfig",
    "checkpointing",
    "default_threads",
    "load_checkpoint",
    "local_batch_size",
    "shard_batches",
    "shuffled_batches",
    "torch_generator",
    "train",
]

#: TrainConfig fields a resumed run must share with the checkpoint
_RESUME_MUST_MATCH = ("batch_size", "lr", "weight_decay", "lr_decay", "clip_norm")


@dataclass
class TrainConfig:
    """Optimisation settings shared by the neural models."""

    #: maximum number of passes over the training data
    epochs: int = 20
    #: examples per mini-batch
    batch_size: int = 256
    #: Adam learning rate
    lr: float = 1e-3
    #: L2 penalty (AdamW-style decoupled weight decay)
    weight_decay: float = 0.0
    #: epochs without validation improvement before stopping (0: never stop early)
    patience: int = 3
    #: multiply the learning rate by this after every epoch (1.0: constant)
    lr_decay: float = 1.0
    #: torch intra-op threads (0: the cores this process may use, shared among the training
    #: processes on this machine)
    threads: int = 0
    #: clip gradients to this norm (0: no clipping)
    clip_norm: float = 5.0
    #: show a progress bar
    progress: bool = False
    #: directory where rank 0 writes a checkpoint after every epoch ("": no checkpoints)
    checkpoint_dir: str = ""
    #: continue from the checkpoint in ``checkpoint_dir`` when one is there (False: start afresh, overwrite it)
    resume: bool = False


def torch_generator(rng: np.random.Generator) -> torch.Generator:
    """A torch generator seeded from a numpy generator (randomness is passed in, never global)."""
    g = torch.Generator()
    g.manual_seed(int(rng.integers(0, 2**62)))
    return g


def _checkpoint_dir(config: TrainConfig, name: str) -> tuple[Path | None, bool]:
    if config.checkpoint_dir:
        return Path(config.checkpoint_dir), config.resume
    return scoped_checkpoint_dir(name)


# ------------------------------------------------------------ distribution


def local_batch_size(batch_size: int) -> int:
    """The mini-batch one training process draws: ``batch_size`` shared among the processes
    (the module docstring's scaling rule), so a step sees ``batch_size`` examples in all.

    Raises ``ValueError`` if ``batch_size`` is smaller than the number of processes.
    """
    _, world = _world()
    if batch_size < world:
        raise ValueError(f"batch_size {batch_size} is smaller than the {world} training processes")
    return batch_size // world


def default_threads() -> int:
    """Torch threads for one training process: the cores it may use, divided among the
    training processes on this machine (``LOCAL_WORLD_SIZE`` under torchrun)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cores = os.cpu_count() or 1
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "0") or 0) or _world()[1]
    return max(1, cores // max(1, local))


def _lock_directory(ckpt_dir: Path | None, rank: int, distributed: bool, device: torch.device) -> Any:
    """Rank 0's :class:`~movierec.models.checkpoints.DirectoryLock` on ``ckpt_dir`` (None without one); every rank raises
    :class:`CheckpointError` together when rank 0 cannot take it."""
    lock, error = None, None
    if ckpt_dir is not None and rank == 0:
        try:
            lock = DirectoryLock(ckpt_dir)
        except CheckpointError as exc:
            error = exc
    if distributed and ckpt_dir is not None:
        if _broadcast_float(0.0 if error is None else 1.0, device):
            raise error or CheckpointError(f"checkpoint directory {ckpt_dir} is in use (see rank 0's error)")
    elif error is not None:
        raise error
    return lock


def _world() -> tuple[int, int]:
    """(rank, world size) of an initialised group of 2+ processes, else (0, 1)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard_batches(batches: Iterable[Any], rank: int, world: int) -> Iterator[Any]:
    """The batches of one rank: those at positions ``i`` with ``i % world == rank``.

    Every rank must be given the same sequence (it is consumed in full, so
    generators behind it advance identically everywhere). When the count ``n``
    is not a multiple of ``world``, the ranks short of a batch in the last
    round take one from the start again (``DistributedSampler``'s padding), so
    every rank yields ``ceil(n / world)`` batches.
    """
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank {rank} outside 0..{world - 1}")
    head: list[Any] = []
    n = 0
    for batch in batches:
        if n < world:
            head.append(batch)
        if n % world == rank:
            yield batch
        n += 1
    short = n % world
    if short and rank >= short:
        yield head[(rank - short) % n]


def _epoch_sums(total: float, count: int, bad: bool, device: torch.device) -> tuple[float, int, bool]:
    """Loss sum, step count and any-non-finite flag summed over the ranks (one collective per epoch)."""
    t = torch.tensor([total, float(count), float(bad)], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t[0]), int(t[1]), bool(t[2] > 0)


def _broadcast_float(value: float, device: torch.device) -> float:
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(t, 0)
    return float(t.item())


def _device_of(net: nn.Module) -> torch.device:
    for p in net.parameters():
        return p.device
    return torch.device("cpu")


def _wrap_ddp(net: nn.Module) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel as DDP

    device = _device_of(net)
    ids = [device] if device.type == "cuda" else None
    # find_unused_parameters: a model's loss may leave parts of the net unused in some batches (a tag
    # head); forward_sync_buffers=False saves a collective per step: buffers are constants or batch-norm
    # statistics, and rank 0's are broadcast to every rank at the end
    return DDP(net, device_ids=ids, find_unused_parameters=True, forward_sync_buffers=False)


# ------------------------------------------------------------------ loop


def train(
    net: nn.Module,
    batches: Callable[[int], Iterable[Any]],
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    config: TrainConfig,
    *,
    validate: Callable[[nn.Module], float] | None = None,
    higher_is_better: bool = True,
    n_batches: int | None = None,
    name: str = "model",
    generators: Sequence[torch.Generator | np.random.Generator] = (),
) -> list[dict[str, float]]:
    """Train ``net`` in place and return the per-epoch history.

    Parameters
    ----------
    batches:
        ``batches(epoch)`` yields the mini-batches of one epoch (the caller
        shuffles with its own generator). Under several processes every rank
        must yield the same sequence (same seed).
    loss_fn:
        ``loss_fn(net, batch)`` returns a scalar loss tensor (the mean over
        the batch). It gets the DDP wrapper under several processes, so it
        must call the network rather than its other methods.
    validate:
        Returns a validation score after each epoch; the best epoch's weights
        are restored at the end and training stops after ``patience`` epochs
        without improvement. It is given the bare network.
    n_batches:
        Batches per epoch, for the progress bar.
    generators:
        The generators ``batches``, ``loss_fn`` and ``validate`` draw from;
        their states go into checkpoints so that a resumed run continues
        exactly where the interrupted one stopped.

    Returns
    -------
    One dict per epoch: ``epoch``, ``loss`` (mean training loss, averaged over
    ranks), ``steps`` (optimiser steps), ``seconds``, and ``valid`` when ``validate`` is given.
    """
    rank, world = _world()
    distributed = world > 1
    ckpt_dir, resume = _checkpoint_dir(config, name)
    ckpt_path = ckpt_dir / CHECKPOINT_FILE if ckpt_dir is not None else None
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads or default_threads())
    lock = _lock_directory(ckpt_dir, rank, distributed, _device_of(net))
    try:
        params = [p for p in net.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=config.lr_decay)
        best = -math.inf if higher_is_better else math.inf
        best_state: dict[str, torch.Tensor] | None = None
        stale = 0
        history: list[dict[str, float]] = []
        start_epoch = 0
        stopped = False
        settings = {k: float(getattr(config, k)) for k in _RESUME_MUST_MATCH}

        def snapshot(epoch: int, finished: bool) -> None:
            if ckpt_path is None:
                return
            if rank == 0:
                save_atomic(
                    {
                        "format": CHECKPOINT_FORMAT,
                        "name": name,
                        "settings": settings,
                        "world": world,
                        "epoch": epoch,
                        "finished": finished,
                        "net": net.state_dict(),
                        "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(),
                        "best": best,
                        "best_state": best_state,
                        "stale": stale,
                        "history": history,
                        "generators": rng_states(generators),
                        "torch_rng": torch.get_rng_state(),
                    },
                    ckpt_path,
                )
            if distributed:
                dist.barrier()

        if ckpt_path is not None and resume and ckpt_path.exists():
            state = load_checkpoint(ckpt_path)
            stored = state["settings"]
            diff = [f"{k}={stored.get(k)} there, {v} here" for k, v in settings.items() if stored.get(k) != v]
            if state["name"] != name:
                diff.insert(0, f"network {state['name']!r} there, {name!r} here")
            if diff:
                raise CheckpointError(
                    f"checkpoint {ckpt_path} belongs to another run ({'; '.join(diff)}); "
                    "start afresh (resume=False) or use another directory"
                )
            if state["world"] != world:
                log.warning(
                    "%s: resuming a %d-process checkpoint with %d processes", name, state["world"], world
                )
            try:
                net.load_state_dict(state["net"])
            except RuntimeError as exc:
                raise CheckpointError(f"checkpoint {ckpt_path} does not fit this network: {exc}") from exc
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            best, best_state, stale = float(state["best"]), state["best_state"], int(state["stale"])
            history = list(state["history"])
            start_epoch = int(state["epoch"])
            set_rng_states(generators, state["generators"])
            torch.set_rng_state(state["torch_rng"])
            log.info("%s: resumed from %s after epoch %d", name, ckpt_path, start_epoch)
            if state["finished"]:
                torch.set_num_threads(previous_threads)
                net.eval()
                return history
            if validate is not None and config.patience and stale >= config.patience:
                stopped = True  # it had stopped early; only the ending is left

        model = _wrap_ddp(net) if distributed else net
        device = _device_of(net)
        done = start_epoch
        try:
            for epoch in range(start_epoch, start_epoch if stopped else config.epochs):
                model.train()
                start = time.perf_counter()
                total, count = 0.0, 0
                epoch_batches: Iterable[Any] = batches(epoch)
                total_batches = n_batches
                if distributed:
                    epoch_batches = shard_batches(epoch_batches, rank, world)
                    total_batches = -(-n_batches // world) if n_batches is not None else None
                bar = tqdm(
                    epoch_batches,
                    total=total_batches,
                    desc=f"{name} epoch {epoch + 1}",
                    disable=not config.progress or rank != 0,
                    leave=False,
                )
                bad = False
                for batch in bar:
                    opt.zero_grad(set_to_none=True)
                    loss = loss_fn(model, batch)
                    if not torch.isfinite(loss):
                        if not distributed:
                            raise FloatingPointError(
                                f"{name}: loss became {loss.item()} at epoch {epoch + 1}; lower the learning rate"
                            )
                        bad = True  # the other ranks wait in the gradient exchange: stop together below
                    loss.backward()
                    if config.clip_norm:
                        nn.utils.clip_grad_norm_(params, config.clip_norm)
                    opt.step()
                    total += float(loss.detach())
                    count += 1
                    if count % 20 == 0:
                        bar.set_postfix(loss=f"{total / count:.4f}")
                steps = count  # this rank's optimiser steps (every rank takes as many)
                if distributed:
                    total, count, bad = _epoch_sums(total, count, bad, device)
                    if bad:
                        raise FloatingPointError(
                            f"{name}: the loss became non-finite on some rank at epoch {epoch + 1}; "
                            "lower the learning rate"
                        )
                sched.step()
                row = {
                    "epoch": float(epoch + 1),
                    "loss": total / max(count, 1),
                    "steps": float(steps),
                    "seconds": time.perf_counter() - start,
                }
                if validate is not None:
                    net.eval()
                    with torch.no_grad():
                        score = float(validate(net))
                    if distributed:
                        score = _broadcast_float(score, device)  # rank 0 decides for everyone
                    row["valid"] = score
                    improved = score > best if higher_is_better else score < best
                    if improved:
                        best, stale = score, 0
                        best_state = copy.deepcopy(net.state_dict())
                    else:
                        stale += 1
                history.append(row)
                log.info("%s epoch %d: %s", name, epoch + 1, row)
                if config.progress and rank == 0:
                    tqdm.write(
                        f"{name} epoch {epoch + 1}: "
                        + ", ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch")
                    )
                done = epoch + 1
                snapshot(done, finished=False)
                if validate is not None and config.patience and stale >= config.patience:
                    break
        finally:
            torch.set_num_threads(previous_threads)
            del model  # drops DDP's gradient hooks from the parameters
        if best_state is not None:
            net.load_state_dict(best_state)
        if distributed:
            with torch.no_grad():  # every rank leaves with rank 0's weights, bit for bit
                for t in net.state_dict().values():
                    dist.broadcast(t, 0)
        snapshot(done, finished=True)
        net.eval()
        return history
    finally:
        if lock is not None:
            lock.release()


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator) -> Iterable[torch.Tensor]:
    """Index tensors covering ``range(n)`` in a random order, ``batch_size`` at a time."""
    perm = torch.randperm(n, generator=generator)
    return perm.split(batch_size)
