"""The sequence models' training loss: the next liked movie, the set of later likes, the next
movie's tags, and unlikelihood on disliked movies (and, optionally, their neighbours)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from movierec.models.sequence.config import Push, SequenceConfig
from movierec.models.sequence.net import Batch

#: one training batch: the network input, the next movie per output ``(N,)``, the later likes
#: per output ``(N, W)`` (``-1`` padding; ``None`` without the set term) and the disliked input
#: movies per output ``(N, L)`` (``>= n_movies``: none)
TrainingBatch = tuple[Batch, torch.Tensor, torch.Tensor | None, torch.Tensor]


def training_loss(
    net: nn.Module,
    batch: TrainingBatch,
    cfg: SequenceConfig,
    tag_targets: torch.Tensor,
    neighbours: torch.Tensor | None,
    push: Push | None,
    n_movies: int,
    n_tags: int,
) -> torch.Tensor:
    """The weighted sum of the loss terms :class:`SequenceConfig` switches on, for ``net`` (a
    :class:`~movierec.models.sequence.net.SequenceNet`, or its DDP wrapper) over ``n_movies``
    movies and ``n_tags`` tags.

    ``tag_targets``: ``(n_movies, T)`` each movie's tag indices (``n_tags`` padding);
    ``neighbours``: ``(n_movies + 2, K)`` item-kNN neighbours of each movie for the dislike
    neighbour term, or ``None``; ``push``: the structural terms applied while training, or ``None``.
    """
    inp, target, future, dis = batch
    logp, tlogp = net(inp, push)
    loss = F.nll_loss(logp, target)
    if future is not None:
        ok = future >= 0
        has = ok.any(1)
        if bool(has.any()):
            picked = logp.gather(1, future.clamp(min=0)) * ok
            per_row = -picked.sum(1) / ok.sum(1).clamp(min=1)
            loss = loss + cfg.future_weight * per_row[has].mean()
    if cfg.tag_loss_weight and n_tags:
        ttags = tag_targets[target]
        tok = (ttags != n_tags).to(tlogp.dtype)
        has = tok.sum(1) > 0
        if bool(has.any()):
            tl = -(tlogp.gather(1, ttags.clamp(max=n_tags - 1)) * tok).sum(1) / tok.sum(1).clamp(min=1)
            loss = loss + cfg.tag_loss_weight * tl[has].mean()
    if cfg.dislike_weight:
        is_dis = dis < n_movies
        if bool(is_dis.any()):
            p = logp.gather(1, dis.clamp(max=n_movies - 1)).exp()
            ul = -torch.log1p(-p.clamp(max=1 - 1e-6))
            loss = loss + cfg.dislike_weight * ul[is_dis].sum() / target.shape[0]
            if neighbours is not None:
                rows, steps = is_dis.nonzero(as_tuple=True)
                nb = neighbours[dis[rows, steps]]  # (D, K) neighbours of each dislike
                ok = nb < n_movies
                pn = logp[rows].gather(1, nb.clamp(max=n_movies - 1)).exp()
                uln = -torch.log1p(-pn.clamp(max=1 - 1e-6)) * ok
                loss = loss + cfg.dislike_neighbour_weight * uln.sum() / target.shape[0]
    return loss
