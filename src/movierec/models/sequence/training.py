"""Fitting the sequence recommenders: validation targets, the transition prior counted
without them, every window of both views of each history as training examples, and the
one training loop (:func:`movierec.models.trainer.train`) with the validation metric
``fit`` was handed."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from movierec.data.dataset import Dataset
from movierec.models.base import DISLIKE, LIKE, Histories, feedback_from_ratings
from movierec.models.knn import ItemKNN
from movierec.models.sequence.config import Push
from movierec.models.sequence.examples import position_windows
from movierec.models.sequence.losses import TrainingBatch, training_loss
from movierec.models.sequence.net import Batch
from movierec.models.trainer import local_batch_size, torch_generator, train
from movierec.topn import top_n, top_per_row

if TYPE_CHECKING:
    from movierec.evaluation.metrics import ValidationMetric
    from movierec.models.sequence.recommender import SequenceLSTM

__all__ = ["fit_sequence_model", "validation_value"]


def fit_sequence_model(
    model: SequenceLSTM, data: Dataset, rng: np.random.Generator, valid: Dataset | None
) -> None:
    """Train ``model``'s network on ``data`` (its :meth:`~SequenceLSTM._fit`): validation targets
    (``valid``'s rows of training users, else every training user's last like held out), the
    transition prior, the training windows in both views of each history, and the loop."""
    cfg = model.config
    if cfg.max_len < 2:
        raise ValueError(f"SequenceConfig.max_len must be at least 2, got {cfg.max_len}")
    if not 0.0 <= cfg.likes_only_share <= 1.0:
        raise ValueError(f"SequenceConfig.likes_only_share must be in [0, 1], got {cfg.likes_only_share}")
    if not (math.isfinite(cfg.future_weight) and cfg.future_weight >= 0 and cfg.future_window >= 1):
        raise ValueError(
            "SequenceConfig.future_weight must be >= 0 and future_window >= 1, got "
            f"{cfg.future_weight} and {cfg.future_window}"
        )
    push = Push.of(cfg.push)
    train_push = push if cfg.push.dislike_push_train else None
    movie = np.asarray(data.movie, np.int64)
    fb = feedback_from_ratings(np.asarray(data.rating), cfg.like_threshold, cfg.dislike_threshold)
    ptr = np.asarray(data.user_ptr, np.int64)
    user = np.asarray(data.user, np.int64)
    model._history = Histories(movie, fb, ptr)
    model._tag_matrix = top_per_row(data.movie_tags, cfg.tags_per_movie)
    gen = torch_generator(rng)
    net = model._build_net()
    net.reset_parameters(gen)
    if cfg.init_popularity:
        # start both heads at the log-frequency of their targets: the network then learns how a
        # session departs from popularity instead of spending its first epochs learning popularity
        liked_counts = np.bincount(movie[fb == LIKE], minlength=model.n_movies).astype(np.float64)
        seq_tags = model._tag_matrix[movie]
        tag_counts = np.bincount(seq_tags[seq_tags < model.n_tags], minlength=model.n_tags).astype(np.float64)
        with torch.no_grad():
            net.movie_head.bias.copy_(
                torch.from_numpy(np.log((liked_counts + 0.5) / (liked_counts.sum() + 0.5)))
            )
            if model.n_tags:
                net.tag_head.bias.copy_(
                    torch.from_numpy(np.log((tag_counts + 0.5) / (tag_counts.sum() + 0.5)))
                )
    model.net = net
    model._last_run = None

    # validation: (sequence start, cut, target) triples
    targets_ok = fb == LIKE if cfg.liked_targets_only else np.ones(movie.size, bool)
    v_user = np.zeros(0, np.int64)
    held = np.zeros(movie.size, bool)  # rows the internal holdout keeps from training
    if valid is not None and valid.n_ratings:
        v_user = np.asarray(valid.user, np.int64)
        v_movie = np.asarray(valid.movie, np.int64)
        # a validation row counts only for a user with a training history to continue
        has = ptr[v_user + 1] > ptr[v_user]
        v_user, v_movie = v_user[has], v_movie[has]
        v_first, v_cut = ptr[v_user], ptr[v_user + 1]
        train_ok = targets_ok
        valid_source = "given"
    if v_user.size == 0:
        liked_pos = np.flatnonzero(fb == LIKE)
        # every training user's last liked position that has at least one earlier rating
        last_liked = np.full(data.n_users, -1, np.int64)
        np.maximum.at(last_liked, user[liked_pos], liked_pos)
        v_user = np.flatnonzero(last_liked > ptr[:-1]) if cfg.holdout else np.zeros(0, np.int64)
        valid_source = "holdout" if v_user.size else "none"
        v_cut = last_liked[v_user]
        v_first, v_movie = ptr[v_user], movie[v_cut]
        after = np.zeros(movie.size + 1, np.int64)  # drop held-out targets and what follows them
        np.add.at(after, v_cut, 1)
        np.add.at(after, ptr[v_user + 1], -1)
        held = np.cumsum(after)[:-1] > 0
        train_ok = targets_ok & ~held
    v_excl = [movie[a:b] for a, b in zip(v_first, v_cut, strict=True)]

    model._prior = None
    if cfg.prior.transition_prior:  # counted without the held-out rows while training
        model._prior = model._new_transitions().fit(data.subset(~held) if held.any() else data, rng)
    # Two views of every history, one flat array: the full histories (seen and disliked steps
    # included), then the liked movies alone in the same order, as a page session holds them
    # (the likes-only input and the set term read it). Like j of the data is view position
    # n_rows + j; flat position i has lcount[i] likes before it.
    n_rows = movie.size
    is_like = fb == LIKE
    lcount = np.concatenate([[0], np.cumsum(is_like)])
    liked_pos = np.flatnonzero(is_like)
    like_end = lcount[ptr[1:]].copy()  # per user: exclusive end of their likes (view 2 numbering)
    if valid_source == "holdout":
        like_end[v_user] = lcount[v_cut]  # a held-out like is no training target of any kind
    all_movie = np.concatenate([movie, movie[liked_pos]])
    all_fb = np.concatenate([fb, fb[liked_pos]])
    all_ok = np.concatenate([train_ok, train_ok[liked_pos]])
    all_user = np.concatenate([user, user[liked_pos]])
    all_lidx = np.concatenate([lcount[:-1], np.arange(liked_pos.size)])  # first like at or after
    view_first = np.stack([ptr[:-1], n_rows + lcount[ptr[:-1]]])  # (2, n_users)
    view_end = np.stack([ptr[1:], n_rows + lcount[ptr[1:]]])
    liked_movie = movie[liked_pos]
    if cfg.all_positions:
        ex_a, ex_cut, ex_view, ex_user = position_windows(
            all_ok, all_user, n_rows, view_first, view_end, max(1, cfg.max_len // 2)
        )
    else:
        ex_cut = np.flatnonzero(train_ok)  # one window per target, in the full view
        ex_user, ex_view = user[ex_cut], np.zeros(ex_cut.size, np.int64)
        ex_a = ex_cut
    if ex_cut.size == 0:
        raise ValueError(f"{model.name}: no training examples (no liked ratings in {data.name!r})")
    tag_t = torch.from_numpy(model._tag_matrix)
    # an epoch: all_positions trains each target once, in the view drawn for its user (the
    # progress bar's length: the expected number of windows)
    share = cfg.likes_only_share if cfg.all_positions else 0.0
    expected = (1 - share) * np.count_nonzero(ex_view == 0) + share * np.count_nonzero(ex_view == 1)
    bs = local_batch_size(cfg.train.batch_size)  # the global batch stays cfg.train.batch_size (trainer)
    n_batches = max(1, math.ceil(expected / bs))
    # a dislike must also push down the movies like it: their item-kNN neighbours on the
    # training interactions, (n_movies + 2, K) indices padded with n_movies (start/pad rows empty)
    nbr_t: torch.Tensor | None = None
    if cfg.dislike_neighbours and cfg.dislike_neighbour_weight and (fb == DISLIKE).any():
        sim = ItemKNN().fit(data, rng)._require()
        nbrs = top_per_row(sim, cfg.dislike_neighbours)
        nbr_t = torch.from_numpy(np.vstack([nbrs, np.full((2, nbrs.shape[1]), model.n_movies, np.int64)]))

    def epoch_examples() -> tuple[np.ndarray, np.ndarray]:
        """This epoch's windows: (a, cut) flat positions, shuffled."""
        likes_only = rng.random(data.n_users) < cfg.likes_only_share
        if cfg.all_positions:
            keep = ex_view == likes_only[ex_user]
            a, cut = ex_a[keep], ex_cut[keep]
        else:  # the drawn users' liked targets are read in the likes-only view
            cut = ex_cut.copy()
            swap = likes_only[ex_user] & is_like[cut]
            cut[swap] = n_rows + lcount[cut[swap]]
            a = cut
        perm = rng.permutation(cut.size)
        return a[perm], cut[perm]

    def batches(epoch: int) -> Iterator[tuple[Batch, torch.Tensor, torch.Tensor | None, torch.Tensor]]:
        ex_a_e, ex_cut_e = epoch_examples()
        for start in range(0, ex_cut_e.size, bs):
            a, cut = ex_a_e[start : start + bs], ex_cut_e[start : start + bs]
            u = all_user[cut]
            first = view_first[(cut >= n_rows).astype(np.int64), u]
            tokens, feedback, n = model._window(all_movie, all_fb, first, cut)
            steps = np.arange(tokens.shape[1])
            # step j's target: the flat position after it; counted when in [a, cut] and trainable
            tpos = (cut - n)[:, None] + steps[None, :] + 1
            on = (steps[None, :] < n[:, None]) & (tpos >= a[:, None])
            on &= all_ok[np.minimum(tpos, all_ok.size - 1)]
            rows, at = np.nonzero(on)
            target_pos = tpos[rows, at]
            target = all_movie[target_pos]
            # chosen tags (a random share of the target's tags, for a share of the targets)
            chosen_t = model._tag_matrix[target].copy()  # type: ignore[index]
            drop = (rng.random(chosen_t.shape) >= cfg.tag_keep) | (rng.random(target.size) >= cfg.tag_prob)[
                :, None
            ]
            chosen_t[drop] = model.n_tags
            chosen = np.full((*tokens.shape, chosen_t.shape[1]), model.n_tags, np.int64)
            chosen[rows, at] = chosen_t
            future: torch.Tensor | None = None
            if cfg.future_weight:
                # the user's likes from the target on (the target itself when it is liked)
                idx = all_lidx[target_pos][:, None] + np.arange(cfg.future_window)[None, :]
                ok = idx < like_end[u[rows]][:, None]
                future = torch.from_numpy(np.where(ok, liked_movie[np.where(ok, idx, 0)], -1))
            # each output's disliked input movies (steps up to its own): unlikelihood, push
            earlier = (feedback[rows] == DISLIKE + 2) & (steps[None, :] <= at[:, None])
            dis = np.where(earlier, tokens[rows], model._pad)
            yield (
                Batch(
                    torch.from_numpy(tokens),
                    torch.from_numpy(feedback),
                    torch.from_numpy(n),
                    torch.from_numpy(chosen),
                    torch.from_numpy(dis) if train_push else None,
                    model._prior_of(tokens, feedback, rows, at),
                    (torch.from_numpy(rows), torch.from_numpy(at)),
                ),
                torch.from_numpy(target),
                future,
                torch.from_numpy(dis),
            )

    def loss_fn(net: nn.Module, batch: TrainingBatch) -> torch.Tensor:
        return training_loss(net, batch, cfg, tag_t, nbr_t, train_push, model.n_movies, model.n_tags)

    def validate(net: nn.Module) -> float:
        if v_user.size == 0:
            return 0.0
        return validation_value(
            model, net, model.valid_metric, movie, fb, v_first, v_cut, v_movie, v_excl, train_push
        )

    # dropout draws from torch's global generator: seed it only for this fit and restore it after
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(0, 2**62)))
        history = train(
            net,
            batches,
            loss_fn,
            cfg.train,
            validate=validate if v_user.size else None,
            n_batches=n_batches,
            name=model.name,
            generators=(rng,),
        )
    if cfg.prior.transition_prior and held.any():  # the served counts include every training row
        model._prior = model._new_transitions().fit(data, rng)
    model.fit_info.epochs = len(history)
    model.fit_info.history = history
    model.fit_info.extra = {
        "n_examples": int(np.count_nonzero(train_ok)),
        "n_valid": int(v_user.size),
        "valid_source": valid_source,
    }


def validation_value(
    model: SequenceLSTM,
    net: nn.Module,
    metric: ValidationMetric,
    movie: np.ndarray,
    fb: np.ndarray,
    first: np.ndarray,
    cut: np.ndarray,
    target: np.ndarray,
    exclude: list[np.ndarray],
    push: Push | None = None,
) -> float:
    """``metric`` of the ``target`` movie indices ``(V,)`` given the flat histories
    ``[first, cut)``: a full ranking over all movies minus each history ``exclude``
    (with ``push``, the dislikes of each input window push their movies down)."""
    step = 512
    ranked = []
    for s in range(0, target.size, step):
        tokens, feedback, n = model._window(movie, fb, first[s : s + step], cut[s : s + step])
        disliked = torch.from_numpy(np.where(feedback == DISLIKE + 2, tokens, model._pad)) if push else None
        logp, _ = net(
            Batch(
                torch.from_numpy(tokens),
                torch.from_numpy(feedback),
                torch.from_numpy(n),
                torch.zeros((n.size, 0), dtype=torch.int64),
                disliked,
                model._prior_of(tokens, feedback),
            ),
            push,
        )
        ranked.append(top_n(logp.numpy(), metric.k, exclude=exclude[s : s + step])[0])
    relevant = sp.csr_matrix(
        (np.ones(target.size), target, np.arange(target.size + 1)), shape=(target.size, model.n_movies)
    )
    return metric(np.concatenate(ranked) if ranked else np.zeros((0, metric.k), np.int64), relevant)
