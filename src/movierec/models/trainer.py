"""The one training loop for every neural model.

A model supplies its network, a function that yields mini-batches for an
epoch, a loss function and (optionally) a validation score; this loop owns the
optimiser, learning-rate schedule, early stopping, the progress bar, thread
count and the restoration of the best weights.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

log = logging.getLogger(__name__)


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
    #: torch intra-op threads (0: leave torch's setting alone)
    threads: int = 0
    #: clip gradients to this norm (0: no clipping)
    clip_norm: float = 5.0
    #: show a progress bar
    progress: bool = False


def torch_generator(rng: np.random.Generator) -> torch.Generator:
    """A torch generator seeded from a numpy generator (randomness is passed in, never global)."""
    g = torch.Generator()
    g.manual_seed(int(rng.integers(0, 2**62)))
    return g


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
) -> list[dict[str, float]]:
    """Train ``net`` in place and return the per-epoch history.

    Parameters
    ----------
    batches:
        ``batches(epoch)`` yields the mini-batches of one epoch (the caller
        shuffles with its own generator).
    loss_fn:
        ``loss_fn(net, batch)`` returns a scalar loss tensor.
    validate:
        Returns a validation score after each epoch; the best epoch's weights
        are restored at the end and training stops after ``patience`` epochs
        without improvement.
    n_batches:
        Batches per epoch, for the progress bar.
    """
    previous_threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=config.lr_decay)
    best = -math.inf if higher_is_better else math.inf
    best_state: dict[str, torch.Tensor] | None = None
    stale = 0
    history: list[dict[str, float]] = []
    try:
        for epoch in range(config.epochs):
            net.train()
            start = time.perf_counter()
            total, count = 0.0, 0
            bar = tqdm(
                batches(epoch),
                total=n_batches,
                desc=f"{name} epoch {epoch + 1}",
                disable=not config.progress,
                leave=False,
            )
            for batch in bar:
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(net, batch)
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"{name}: loss became {loss.item()} at epoch {epoch + 1}; lower the learning rate"
                    )
                loss.backward()
                if config.clip_norm:
                    nn.utils.clip_grad_norm_(params, config.clip_norm)
                opt.step()
                total += float(loss.detach())
                count += 1
                if count % 20 == 0:
                    bar.set_postfix(loss=f"{total / count:.4f}")
            sched.step()
            row = {
                "epoch": float(epoch + 1),
                "loss": total / max(count, 1),
                "seconds": time.perf_counter() - start,
            }
            if validate is not None:
                net.eval()
                with torch.no_grad():
                    score = float(validate(net))
                row["valid"] = score
                improved = score > best if higher_is_better else score < best
                if improved:
                    best, stale = score, 0
                    best_state = copy.deepcopy(net.state_dict())
                else:
                    stale += 1
            history.append(row)
            log.info("%s epoch %d: %s", name, epoch + 1, row)
            if config.progress:
                tqdm.write(
                    f"{name} epoch {epoch + 1}: "
                    + ", ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch")
                )
            if validate is not None and config.patience and stale >= config.patience:
                break
    finally:
        if config.threads:
            torch.set_num_threads(previous_threads)
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return history


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator) -> Iterable[torch.Tensor]:
    """Index tensors covering ``range(n)`` in a random order, ``batch_size`` at a time."""
    perm = torch.randperm(n, generator=generator)
    return perm.split(batch_size)
