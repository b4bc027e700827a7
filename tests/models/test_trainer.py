"""The shared training loop: which weights it ends with."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from movierec.models.trainer import TrainConfig, train


def _fit(restore_best: bool) -> tuple[list[dict[str, float]], list[torch.Tensor], torch.Tensor]:
    """A 1-parameter net trained 4 epochs; validation says epoch 1 was best (then worse)."""
    net = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(0.0)
    seen: list[torch.Tensor] = []
    scores = iter([1.0, 0.5, 0.4, 0.3])

    def batches(epoch: int) -> Iterator[torch.Tensor]:
        yield torch.ones(4, 1)

    def loss_fn(n: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = n(batch)
        return ((out - 1.0) ** 2).mean()

    def validate(n: nn.Module) -> float:
        seen.append(next(n.parameters()).detach().clone())
        return next(scores)

    config = TrainConfig(epochs=4, lr=0.1, patience=0, restore_best=restore_best)
    history = train(net, batches, loss_fn, config, validate=validate)
    return history, seen, net.weight.detach().clone()


def test_best_epoch_is_restored_unless_asked_to_keep_the_last() -> None:
    history, seen, final = _fit(restore_best=True)
    assert len(history) == 4 and [h["valid"] for h in history] == [1.0, 0.5, 0.4, 0.3]
    assert torch.equal(final, seen[0]) and not torch.equal(seen[0], seen[-1])
    _, seen_last, kept = _fit(restore_best=False)
    assert torch.equal(kept, seen_last[-1])
