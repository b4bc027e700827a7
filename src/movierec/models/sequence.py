"""The interactive session recommender: a sequence network over liked movies and tags.

A session (or a user's history) is an ordered list of steps. Each step is a
movie with feedback (like / seen / dislike); a special *start* step opens
every sequence, so a session holding only tags is a start step carrying them.
The input vector of a step is

    movie embedding + mean(tag embeddings of the movie's tags) + feedback embedding
    [+ mean(chosen-tag embeddings of the chosen tags), last step only]

where the *chosen tags* stand for "tags of the movie I
want next": in training a random subset of the next liked movie's tags (in a
share ``tag_prob`` of the examples), when serving the session's liked tags.

Two encoders read the steps: :class:`SequenceLSTM` (2-layer LSTM) and
:class:`SequenceAttention` (SASRec-style causal transformer with learned
recency positions). The last output feeds two heads: a full softmax over all
movies (next liked movie) and a softmax over tags (the next movie's tags).
Disliked movies in the input are pushed down by an unlikelihood term
``-log(1 - p(disliked))``. Training alone does not push down the movies *like*
a disliked one (in MovieLens the co-watched movies of a low-rated movie are
still likely next), so the scores carry a structural, Rocchio-style term: each
movie's logit loses ``dislike_push * agg_d relu(cos(e_j, e_d))`` over the
query's disliked movies ``d``, in the model's own embedding space (see
:meth:`SequenceNet.dislike_penalty`).

Training examples are ``(user, cut position)`` pairs: every liked rating of a
user is a target once per epoch, with the (at most ``max_len - 1``) ratings
before it as input, so short prefixes are trained as much as long ones.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from movierec.data.dataset import Dataset
from movierec.models.base import (
    DISLIKE,
    LIKE,
    SEEN,
    Histories,
    NotFittedError,
    Query,
    Recommender,
    feedback_from_ratings,
    tags_in_text,
    with_history,
)
from movierec.models.knn import ItemKNN
from movierec.models.trainer import TrainConfig, local_batch_size, torch_generator, train
from movierec.models.transitions import Transitions
from movierec.topn import top_per_row

__all__ = [
    "REASON_PREFIX",
    "SequenceAttention",
    "SequenceConfig",
    "SequenceLSTM",
    "SequenceNet",
    "parse_reason",
]

#: :meth:`SequenceLSTM.explain` reasons read ``"because you liked {movie:<index>}"``;
#: the caller replaces the placeholder with the title (see :func:`parse_reason`).
REASON_PREFIX = "because you liked "

# feedback embedding rows: padding, dislike, seen, like, start step
_FB_PAD, _FB_START = 0, 4


def parse_reason(reason: str | None) -> int | None:
    """The movie *index* named by an :meth:`~SequenceLSTM.explain` reason, or ``None``."""
    if not reason or "{movie:" not in reason:
        return None
    return int(reason.split("{movie:", 1)[1].split("}", 1)[0])


@dataclass
class SequenceConfig:
    """Settings of the sequence recommenders (:class:`SequenceLSTM`, :class:`SequenceAttention`)."""

    #: encoder: ``"lstm"`` or ``"attention"`` (each class sets its own default)
    encoder: str = "lstm"
    #: size of movie, tag, feedback and position embeddings
    embed_dim: int = 64
    #: LSTM hidden size / transformer feed-forward size
    hidden_dim: int = 128
    #: LSTM layers / transformer blocks
    n_layers: int = 2
    #: attention heads (transformer only)
    n_heads: int = 2
    #: dropout on inputs, between layers and before the heads
    dropout: float = 0.2
    #: most recent steps fed to the network (the start step included)
    max_len: int = 20
    #: start the movie and tag heads' biases at the log-frequency of their targets
    #: (on ml-latest-small next-item NDCG@10 went from 0.015 to 0.040 at the same budget)
    init_popularity: bool = True
    #: tags per movie used as input and tag-head target (highest weight first)
    tags_per_movie: int = 10
    #: share of training examples whose last step carries some of the target's tags
    tag_prob: float = 0.7
    #: each of the target's tags is kept with this probability when tags are given
    tag_keep: float = 0.5
    #: weight of the tag-head loss (cross-entropy against the next movie's tags)
    tag_loss_weight: float = 0.3
    #: weight of the unlikelihood loss on disliked movies of the input
    dislike_weight: float = 0.5
    #: the unlikelihood also covers this many of each disliked movie's nearest item-kNN neighbours
    #: (0: off; see bench_session.py part 2 for what it does on real data)
    dislike_neighbours: int = 0
    #: weight of that neighbour term
    dislike_neighbour_weight: float = 0.5
    #: structural dislike push, in logit units (0: off): movie ``j``'s logit loses
    #: ``dislike_push * agg_d relu(cos(e_j, e_d))`` over the query's most recent ``max_len - 1``
    #: disliked movies ``d``, so a dislike lowers that movie and the movies like it; applied in
    #: ``score`` (evaluation and serving), not in ``query_vectors`` / ``item_vectors``. On
    #: ml-latest-small's next-item validation item (benchmarks/tune_feedback.py, seed 0, the
    #: default sequence-attn) a dislike of the top recommendation moves its 10 item-kNN
    #: neighbours' median rank 103 -> 97 without the push (they rise), 127 -> 134 at 2,
    #: 149 -> 177 at 4.5; NDCG@10 of the validation item 0.056 without, 0.051-0.053 with
    dislike_push: float = 4.5
    #: embedding whose cosine the push uses: ``"input"`` (the input movie embedding) or
    #: ``"head"`` (movie-head weight rows; closer to item-kNN, but pushing there costs far more
    #: next-item NDCG for the same effect on the neighbours)
    dislike_push_space: str = "input"
    #: how several dislikes combine: ``"max"`` (the closest dislike counts) or ``"mean"``
    dislike_push_agg: str = "max"
    #: cosine below which a movie is not pushed at all: the similarity used is
    #: ``relu(cos - floor) / (1 - floor)`` (0: plain ``relu(cos)``; a disliked movie itself stays at 1)
    dislike_push_floor: float = 0.0
    #: disliked tags, in logit units (0: off): a movie carrying one of the query's disliked tags
    #: among its ``tags_per_movie`` heaviest loses this much, in ``score`` and ``dislike_adjustment``
    dislike_tag_push: float = 3.0
    #: liked tags, in logit units (0: off): a movie carrying one of the query's liked tags among its
    #: ``tags_per_movie`` heaviest gains this much (the chosen-tag input alone moves little once
    #: the set term dominates training). Next-item NDCG@10 of the validation item with its 3
    #: heaviest tags given (benchmarks/tune_feedback.py, seed 0): 0 -> 0.053, 1 -> 0.079,
    #: 2 -> 0.093, 3 -> 0.099, 4 -> 0.101 (0.056 without tags)
    liked_tag_pull: float = 3.0
    #: also apply the push while training (on the dislikes in each example's input window), so
    #: the network learns with it in place; ``False``: inference only
    dislike_push_train: bool = False
    #: ratings at or above this are likes
    like_threshold: float = 4.0
    #: ratings at or below this are dislikes
    dislike_threshold: float = 2.0
    #: train on every position of each window at once (SASRec-style causal targets; windows of
    #: ``max_len`` steps overlap by half and each target is trained once per epoch), instead of
    #: one window per target with its loss on the last step. The attention encoder then counts
    #: positions from the window's first step instead of back from its last. Same quality, fewer
    #: encoder passes: sequence-attn's epoch on ml-latest-small costs about a third
    all_positions: bool = True
    #: train only on liked targets (``False``: every rated movie is a target)
    liked_targets_only: bool = True
    #: share of training examples whose input keeps only the liked movies before the target,
    #: as a page session holds them (the rest see the full history with seen and disliked steps);
    #: with all_positions, a share of the users each epoch
    likes_only_share: float = 0.5
    #: weight of the set term: besides the next liked movie, each example predicts the user's
    #: later likes (the next one and up to ``future_window - 1`` after it) as one multinomial
    #: target, the task of the ``session`` protocol (0: next movie only). Validation users of the
    #: ``session`` protocol (benchmarks/tune_session.py, seed 0, sequence-attn with the prior),
    #: NDCG@24 over k: 1 -> 0.226, 3 -> 0.256, 10 -> 0.285, 20 -> 0.285
    future_weight: float = 10.0
    #: likes from the target on that the set term covers
    future_window: int = 100
    #: hold out each training user's last liked movie for early stopping when ``fit`` gets no
    #: validation set that names training users (a user-disjoint one, say); ``False``: no holdout
    holdout: bool = True
    #: cut-off of the validation NDCG used for early stopping
    valid_k: int = 10
    #: maximum passes over the training examples
    epochs: int = 20
    #: examples (windows, with all_positions) per mini-batch
    batch_size: int = 64
    #: Adam learning rate (session validation NDCG@24, seed 1: 2e-3 with patience 2 stopped after 4
    #: epochs at 0.271; 1e-3 with patience 4 ran 10 at 0.289)
    lr: float = 1e-3
    #: decoupled weight decay
    weight_decay: float = 0.0
    #: epochs without validation improvement before stopping (0: never stop early)
    patience: int = 4
    #: learning-rate decay per epoch
    lr_decay: float = 0.9
    #: torch intra-op threads during training (0: leave torch's setting alone)
    threads: int = 0
    #: gradient-norm clipping (0: none)
    clip_norm: float = 5.0
    #: show a progress bar
    progress: bool = False
    #: ``score`` and ``score_tags`` run the movie and tag heads with int8 weights (dynamic
    #: quantisation; training, ``query_vectors`` / ``item_vectors`` and the dislike push stay
    #: float32, so retrieval reproduces the float scores, not these). The heads are
    #: memory-bound and most of a recommendation's CPU: a batch of 4 sessions over 9.7k movies
    #: + 14k tags spends 0.3 ms in them instead of 2.4 ms. Off here (evaluations score in
    #: float32); the web service turns it on (``ServiceSettings.int8_heads``). Next-item
    #: NDCG@10 on ml-latest-small: 0.0355 against 0.0362 in float32 (paired -0.0007, 95% CI
    #: [-0.0019, +0.0001]; ``bench_session.py --int8-compare``)
    int8_heads: bool = False
    #: a learned item-to-item prior inside the network: the movie logits gain
    #: ``softplus(gate(h)) * log1p(transition support)``, the support counted on the training
    #: histories (pairs up to ``transition_window`` apart, from the input's last
    #: ``transition_context`` not-disliked movies, ``transition_decay`` per step back) and the gate
    #: learned from the session's state with the rest of the network, so a session with chosen
    #: tags can lean on it less; a dislike's push also takes support away from the movies it pushes.
    #: Next-item NDCG@10 of every training user's last like (the holdout), sequence-attn: 0.039-0.045
    #: without, 0.069-0.080 with; session NDCG@24 0.01-0.017 lower with it (tune_session.py, seeds 0, 1)
    transition_prior: bool = True
    #: pairs up to this many steps apart are counted (weight 1 / distance)
    transition_window: int = 2
    #: the query's last this many not-disliked movies reach their successors (most recent first)
    transition_context: int = 3
    #: weight of a context movie ``age`` steps before the last: ``decay ** age``
    transition_decay: float = 0.5

    def train_config(self) -> TrainConfig:
        return TrainConfig.of(self)


@dataclass
class _Batch:
    """Network input, right-padded.

    tokens: ``(B, L)`` int64 movie indices, ``n_movies`` = start step, ``n_movies + 1`` = padding.
    feedback: ``(B, L)`` int64 feedback rows (0 pad, 1 dislike, 2 seen, 3 like, 4 start).
    lengths: ``(B,)`` int64 valid steps per row (>= 1).
    chosen: ``(B, K)`` int64 tag indices chosen for the last step, or ``(B, L, K)`` for each
    step, ``n_tags`` = padding.
    disliked: ``(B, D)`` int64 movie indices the dislike push uses, ``>= n_movies`` = padding
    (``D`` may be 0); one row per output (``N`` rows with ``at``).
    prior: ``(B, n_movies)`` float32 log1p transition support from the input's last movies
    (``SequenceConfig.transition_prior``), or ``None``; one row per output.
    at: the outputs wanted, ``(rows, steps)`` two ``(N,)`` int64 tensors (training on every
    position); ``None``: each row's last step.
    disliked_tags: ``(B, Dt)`` int64 tag indices the query dislikes, ``n_tags`` = padding, or ``None``.
    """

    tokens: torch.Tensor
    feedback: torch.Tensor
    lengths: torch.Tensor
    chosen: torch.Tensor
    disliked: torch.Tensor | None = None
    prior: torch.Tensor | None = None
    at: tuple[torch.Tensor, torch.Tensor] | None = None
    disliked_tags: torch.Tensor | None = None


@dataclass(frozen=True)
class _Push:
    """Settings of the structural feedback terms: the dislike push (see
    :meth:`SequenceNet.dislike_penalty`), the disliked-tag push and the liked-tag pull
    (:meth:`SequenceNet.tag_hits`)."""

    strength: float = 0.0
    space: str = "input"
    agg: str = "max"
    floor: float = 0.0
    tags: float = 0.0
    pull: float = 0.0

    @classmethod
    def of(cls, config: SequenceConfig) -> _Push:
        if config.dislike_push_space not in ("head", "input"):
            raise ValueError(
                f"SequenceConfig.dislike_push_space must be 'head' or 'input', got {config.dislike_push_space!r}"
            )
        if config.dislike_push_agg not in ("max", "mean", "linear"):
            raise ValueError(
                f"SequenceConfig.dislike_push_agg must be 'max', 'mean' or 'linear', got {config.dislike_push_agg!r}"
            )
        if not 0.0 <= config.dislike_push_floor < 1.0:
            raise ValueError(
                f"SequenceConfig.dislike_push_floor must be in [0, 1), got {config.dislike_push_floor}"
            )
        if not math.isfinite(config.dislike_push) or config.dislike_push < 0:
            raise ValueError(
                f"SequenceConfig.dislike_push must be a finite number >= 0, got {config.dislike_push}"
            )
        for field in ("dislike_tag_push", "liked_tag_pull"):
            value = getattr(config, field)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"SequenceConfig.{field} must be a finite number >= 0, got {value}")
        return cls(
            float(config.dislike_push),
            config.dislike_push_space,
            config.dislike_push_agg,
            float(config.dislike_push_floor),
            float(config.dislike_tag_push),
            float(config.liked_tag_pull),
        )


class SequenceNet(nn.Module):
    """Step embeddings -> LSTM or causal transformer -> movie and tag heads.

    ``movie_tags`` is the ``(n_movies + 2, T)`` int64 tag-index matrix of every
    token (start and padding rows hold only the tag padding index ``n_tags``).
    """

    movie_tags: torch.Tensor

    def __init__(self, n_movies: int, n_tags: int, movie_tags: torch.Tensor, config: SequenceConfig) -> None:
        super().__init__()
        d = config.embed_dim
        self.n_movies, self.n_tags, self.encoder = n_movies, n_tags, config.encoder
        self.register_buffer("movie_tags", movie_tags, persistent=True)
        self.movie_emb = nn.Embedding(n_movies + 2, d, padding_idx=n_movies + 1)
        self.tag_emb = nn.Embedding(n_tags + 1, d, padding_idx=n_tags)
        self.want_emb = nn.Embedding(n_tags + 1, d, padding_idx=n_tags)
        self.fb_emb = nn.Embedding(5, d, padding_idx=_FB_PAD)
        self.drop = nn.Dropout(config.dropout)
        if config.encoder == "lstm":
            self.rnn = nn.LSTM(
                d,
                config.hidden_dim,
                num_layers=config.n_layers,
                batch_first=True,
                dropout=config.dropout if config.n_layers > 1 else 0.0,
            )
            out_dim = config.hidden_dim
        elif config.encoder == "attention":
            self.pos_emb = nn.Embedding(config.max_len, d)
            layer = nn.TransformerEncoderLayer(
                d, config.n_heads, config.hidden_dim, config.dropout, batch_first=True, norm_first=True
            )
            self.blocks = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(d)
            out_dim = d
        else:
            raise ValueError(f"SequenceConfig.encoder must be 'lstm' or 'attention', got {config.encoder!r}")
        self.absolute_positions = config.all_positions
        self.movie_head = nn.Linear(out_dim, n_movies)
        self.tag_head = nn.Linear(out_dim, n_tags)
        # how much this session's logits trust the transition prior (softplus of a linear read-out)
        self.prior_gate = nn.Linear(out_dim, 1) if config.transition_prior else None
        # unit-length movie embeddings of the dislike push per space, with the weights' version
        self._unit_cache: dict[str, tuple[tuple[int, int], torch.Tensor]] = {}

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Initialise every weight from ``generator`` (no global torch randomness)."""
        with torch.no_grad():
            for name, p in self.named_parameters():
                if "emb" in name:
                    p.copy_(torch.randn(p.shape, generator=generator) * 0.05)
                elif p.dim() >= 2:
                    bound = math.sqrt(6.0 / (p.shape[0] + p.shape[1]))
                    p.copy_((torch.rand(p.shape, generator=generator) * 2 - 1) * bound)
                elif "norm" in name and name.endswith("weight"):
                    p.fill_(1.0)
                else:
                    p.zero_()
            self.movie_emb.weight[self.n_movies + 1].zero_()
            self.tag_emb.weight[self.n_tags].zero_()
            self.want_emb.weight[self.n_tags].zero_()
            self.fb_emb.weight[_FB_PAD].zero_()

    def encode(self, batch: _Batch) -> torch.Tensor:
        """Last hidden state per row, ``(B, out_dim)`` float32."""
        h_all = self.encode_all(batch)
        return h_all[torch.arange(h_all.shape[0]), batch.lengths - 1]

    def encode_all(self, batch: _Batch) -> torch.Tensor:
        """Hidden state after every step, ``(B, L, out_dim)`` float32 (causal: step ``t`` sees
        steps ``<= t``; padding steps hold values that mean nothing)."""
        tokens, lengths = batch.tokens, batch.lengths
        b, length = tokens.shape
        tag_idx = self.movie_tags[tokens]  # (B, L, T)
        tag_sum = self.tag_emb(tag_idx).sum(2)
        tag_cnt = (tag_idx != self.n_tags).sum(2).to(tag_sum.dtype)
        last = lengths - 1
        x = (
            self.movie_emb(tokens)
            + tag_sum / tag_cnt.clamp(min=1.0).unsqueeze(-1)
            + self.fb_emb(batch.feedback)
        )
        if batch.chosen.shape[-1]:
            # chosen tags ("what I want next") have their own embedding table: the same tag as a
            # property of the current movie means something else (it predicts what follows it);
            # (B, K) are the last step's, (B, L, K) each step's
            chosen_cnt = (batch.chosen != self.n_tags).sum(-1, keepdim=True).to(tag_sum.dtype)
            chosen_mean = self.want_emb(batch.chosen).sum(-2) / chosen_cnt.clamp(min=1.0)
            if batch.chosen.dim() == 3:
                x = x + chosen_mean
            else:
                x = x.index_put((torch.arange(b), last), chosen_mean, accumulate=True)
        if self.encoder == "lstm":
            packed = nn.utils.rnn.pack_padded_sequence(
                self.drop(x), lengths.cpu(), batch_first=True, enforce_sorted=False
            )
            out, _ = self.rnn(packed)
            h_all, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=length)
        else:
            steps = torch.arange(length)
            if self.absolute_positions:  # from the window's first step: the same for every output
                pos = steps.unsqueeze(0).expand(b, length)
            else:  # learned recency positions: the last step is position 0
                pos = (last.unsqueeze(1) - steps.unsqueeze(0)).clamp(min=0)
            x = self.drop(x + self.pos_emb(pos))
            causal = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)
            pad = steps.unsqueeze(0) >= lengths.unsqueeze(1)
            h_all = self.norm(self.blocks(x, mask=causal, src_key_padding_mask=pad))
        return self.drop(h_all)

    def dislike_penalty(
        self,
        disliked: torch.Tensor,
        space: str = "head",
        agg: str = "max",
        floor: float = 0.0,
        movies: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """How much each movie is *like* the disliked movies of each row, ``(B, n_movies)`` float32.

        ``agg_d relu(cos(e_j, e_d) - floor) / (1 - floor)`` over the valid entries ``d`` of each
        row, with ``e`` the movie head's weight rows (``space="head"``) or the input movie
        embedding (``"input"``); ``agg`` is ``"max"``, ``"mean"`` or ``"linear"`` (the mean
        without the ``relu``). A row without dislikes is exactly 0, and a disliked movie's own
        entry is 1.

        Parameters
        ----------
        disliked:
            ``(B, D)`` int64 movie *indices*; entries ``>= n_movies`` are padding.
        movies:
            Optional ``(B, C)`` int64 movie *indices* (e.g. retrieval candidates; entries outside
            ``0..n_movies - 1`` get 0): the penalty of these movies only, ``(B, C)``.
        """
        b = disliked.shape[0]
        ok = disliked < self.n_movies
        unit_t = self._unit_embeddings(space)  # (d, n_movies)
        if movies is not None:
            return self._penalty_at(unit_t.T, disliked, ok, movies, agg, floor)
        if not bool(ok.any()):
            return torch.zeros(b, self.n_movies)
        out = torch.zeros(b, self.n_movies)
        uniq, inv = torch.unique(disliked[ok], return_inverse=True)
        # (U + 1, n_movies): one row per distinct disliked movie, then a zero row for padding
        sim = out.new_zeros(uniq.numel() + 1, self.n_movies)
        sim[:-1] = unit_t[:, uniq].T @ unit_t
        if floor:
            sim[:-1].sub_(floor).div_(1.0 - floor)
        if agg != "linear":
            sim.clamp_(min=0.0)
        idx = torch.full_like(disliked, uniq.numel())
        idx[ok] = inv
        for col in range(idx.shape[1]):  # over dislike slots (<= max_len), not over rows
            out = torch.maximum(out, sim[idx[:, col]]) if agg == "max" else out + sim[idx[:, col]]
        if agg != "max":
            out = out / ok.sum(1, keepdim=True).clamp(min=1).to(out.dtype)
        return out

    def tag_hits(self, tags: torch.Tensor, movies: torch.Tensor | None = None) -> torch.Tensor:
        """1 where a movie carries one of its row's ``tags`` (among the tags the network reads),
        else 0: float32 ``(B, n_movies)``, or ``(B, C)`` at the movie *indices* ``movies``
        (entries outside ``0..n_movies - 1`` get 0). The disliked-tag push and the liked-tag
        pull both scale it.

        Parameters
        ----------
        tags:
            ``(B, K)`` int64 tag *indices*; ``n_tags`` is padding.
        """
        carried = self.movie_tags[: self.n_movies]  # (n_movies, T)
        if movies is not None:
            valid = (movies >= 0) & (movies < self.n_movies)
            carried = carried[movies.clamp(0, self.n_movies - 1)]  # (B, C, T)
        else:
            carried = carried.unsqueeze(0)  # (1, n_movies, T)
        hit = torch.zeros(carried.shape[:2], dtype=torch.bool)
        for col in range(tags.shape[1]):  # over tag slots (a few), not rows
            t = tags[:, col].view(-1, 1, 1)
            hit = hit | ((carried == t) & (t < self.n_tags)).any(2)
        out = hit.to(torch.float32)
        return out * valid if movies is not None else out

    def _unit_embeddings(self, space: str) -> torch.Tensor:
        """Unit-length movie embeddings of the push's ``space``, transposed: ``(d, n_movies)``
        contiguous (a few dislikes' rows times it stream through memory once), no gradient.

        A fixed prior on the current geometry: a gradient through it would teach the network to
        move disliked movies away from the next likes, i.e. to undo the push. Cached between
        calls while the weights are unchanged (not while training, when every step changes them).
        """
        weight = self.movie_head.weight if space == "head" else self.movie_emb.weight
        key = (weight._version, weight.data_ptr())
        hit = self._unit_cache.get(space)
        if hit is not None and hit[0] == key and not self.training:
            return hit[1]
        # a plain tensor even when scoring under inference_mode, so that later calls may reuse it
        with torch.inference_mode(False), torch.no_grad():
            unit = F.normalize(weight.detach()[: self.n_movies], dim=1).T.contiguous()
        if not self.training:
            self._unit_cache[space] = (key, unit)
        return unit

    def _penalty_at(
        self,
        unit: torch.Tensor,
        disliked: torch.Tensor,
        ok: torch.Tensor,
        movies: torch.Tensor,
        agg: str,
        floor: float,
    ) -> torch.Tensor:
        """:meth:`dislike_penalty` at ``movies`` ``(B, C)`` only: ``(B, C)`` float32."""
        if not bool(ok.any()) or movies.numel() == 0:
            return torch.zeros(movies.shape)
        valid = (movies >= 0) & (movies < self.n_movies)
        cand = unit[movies.clamp(0, self.n_movies - 1)]  # (B, C, d)
        dis = unit[disliked.clamp(max=self.n_movies - 1)]  # (B, D, d)
        sim = (torch.bmm(cand, dis.transpose(1, 2)) - floor) / (1.0 - floor)  # (B, C, D)
        if agg != "linear":
            sim = sim.clamp(min=0.0)
        sim = sim * ok.unsqueeze(1)
        counts = ok.sum(1, keepdim=True).clamp(min=1).to(sim.dtype)
        out = sim.amax(2) if agg == "max" else sim.sum(2) / counts
        return out * valid

    def forward(self, batch: _Batch, push: _Push | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities over movies ``(B, n_movies)`` and tags ``(B, n_tags)`` after each
        row's last step, or ``(N, ...)`` after the steps ``batch.at`` names.

        With ``push`` (strength > 0) and ``batch.disliked``, the movie logits first lose
        ``push.strength * dislike_penalty(batch.disliked, ...)`` and ``push.tags *
        tag_hits(batch.disliked_tags)``, and gain ``push.pull * tag_hits(batch.chosen)``
        (the query's liked tags). With a prior gate and
        ``batch.prior``, they gain ``softplus(gate(h)) * prior * (1 - penalty)``.
        """
        h = self.encode(batch) if batch.at is None else self.encode_all(batch)[batch.at[0], batch.at[1]]
        logits = self.movie_head(h)
        penalty = None
        if push is not None and push.strength and batch.disliked is not None and batch.disliked.shape[1]:
            penalty = self.dislike_penalty(batch.disliked, push.space, push.agg, push.floor)
            logits = logits - push.strength * penalty
        if (
            push is not None
            and push.tags
            and batch.disliked_tags is not None
            and batch.disliked_tags.shape[1]
        ):
            logits = logits - push.tags * self.tag_hits(batch.disliked_tags)
        if push is not None and push.pull and batch.chosen.dim() == 2 and batch.chosen.shape[1]:
            logits = logits + push.pull * self.tag_hits(batch.chosen)
        if self.prior_gate is not None and batch.prior is not None:
            prior = batch.prior if penalty is None else batch.prior * (1.0 - penalty).clamp(min=0.0)
            logits = logits + F.softplus(self.prior_gate(h)) * prior
        return F.log_softmax(logits, dim=-1), F.log_softmax(self.tag_head(h), dim=-1)


class SequenceLSTM(Recommender):
    """Next-liked-movie model over sessions of movies (with feedback) and tags; LSTM encoder."""

    name = "sequence"
    Config = SequenceConfig
    supports_tags = True
    default_encoder: ClassVar[str] = "lstm"

    def __init__(self, config: Any | None = None, **overrides: Any) -> None:
        if config is None:
            config = SequenceConfig(encoder=self.default_encoder)
        super().__init__(config, **overrides)
        self.net: SequenceNet | None = None
        self._tag_matrix: np.ndarray | None = None
        self._history: Histories | None = None  # the training histories (score_users, known users)
        self._last_run: tuple[list[Query], _Push, np.ndarray, np.ndarray] | None = None
        # the int8-head copy of the net that scores, with the float net (and its head weights'
        # versions) it was made from
        self._int8: tuple[SequenceNet, tuple[int, int], SequenceNet] | None = None
        # the counts behind the network's learned transition prior (transition_prior)
        self._prior: Transitions | None = None

    # ----------------------------------------------------------------- batches
    @property
    def _start(self) -> int:
        return self.n_movies

    @property
    def _pad(self) -> int:
        return self.n_movies + 1

    def _window(
        self, movie: np.ndarray, fb: np.ndarray, first: np.ndarray, cut: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Right-padded windows of flat sequences ending just before ``cut``.

        Parameters
        ----------
        movie, fb:
            Flat movie indices and feedback (+1/0/-1) of all sequences, ``(N,)``.
        first:
            Flat position of each example's sequence start, ``(B,)`` int64.
        cut:
            Flat position of each example's target (exclusive end of its input), ``(B,)`` int64.

        Returns
        -------
        tokens, feedback, lengths: see :class:`_Batch`.
        """
        length = self.config.max_len
        n = np.minimum(cut - first + 1, length)  # steps including the start step
        steps = np.arange(length)
        idx = (cut - n)[:, None] + steps[None, :]
        valid = steps[None, :] < n[:, None]
        start = valid & (idx == (first - 1)[:, None])
        real = valid & ~start
        safe = np.clip(idx, 0, max(movie.size - 1, 0))
        tokens = np.full(idx.shape, self._pad, np.int64)
        feedback = np.full(idx.shape, _FB_PAD, np.int64)
        if movie.size:
            tokens[real] = movie[safe[real]]
            feedback[real] = fb[safe[real]].astype(np.int64) + 2
        tokens[start] = self._start
        feedback[start] = _FB_START
        return tokens, feedback, n.astype(np.int64)

    def _prior_of(
        self,
        tokens: np.ndarray,
        feedback: np.ndarray,
        rows: np.ndarray | None = None,
        at: np.ndarray | None = None,
    ) -> torch.Tensor | None:
        """The transition prior after the steps ``at`` of rows ``rows`` (both ``(N,)`` int64; by
        default each row's last step) of right-padded windows (``tokens``, ``feedback`` as in
        :class:`_Batch`, ``(B, L)``): float32 ``(N, n_movies)``, its context the not-disliked
        steps up to each output; ``None`` without a prior."""
        if self._prior is None:
            return None
        if rows is None or at is None:
            rows = np.arange(tokens.shape[0])
            at = np.full(rows.size, tokens.shape[1] - 1)  # padding steps are no context
        ok = (feedback == LIKE + 2) | (feedback == SEEN + 2)  # real steps that are not dislikes
        cum = np.cumsum(ok, axis=1)
        steps = np.arange(tokens.shape[1])
        out, step = np.nonzero(ok[rows] & (steps[None, :] <= at[:, None]))
        age = cum[rows[out], at[out]] - cum[rows[out], step]  # 0 at each output's last context step
        return torch.from_numpy(self._prior.scores_at(out, tokens[rows[out], step], age, rows.size))

    def _query_batch(self, queries: Sequence[Query]) -> _Batch:
        """Pad queries into one batch (the last ``max_len - 1`` movies; liked tags on the last step)."""
        lens = np.array([q.movies.size for q in queries], np.int64)
        ptr = np.concatenate([[0], np.cumsum(lens)])
        movie = np.concatenate([q.movies for q in queries] + [np.zeros(0, np.int64)]).astype(np.int64)
        fb = np.concatenate([q.feedback for q in queries] + [np.zeros(0, np.int8)])
        tokens, feedback, n = self._window(movie, fb, ptr[:-1], ptr[1:])
        k = max([q.liked_tags.size for q in queries] + [0])
        chosen = np.full((len(queries), k), self.n_tags, np.int64)
        for i, q in enumerate(queries):  # over queries (tags are few)
            chosen[i, : q.liked_tags.size] = q.liked_tags
        # the most recent max_len - 1 dislikes of each query (all of the session, not just the
        # network's window: a session lists its dislikes first), right-aligned, padded with _pad
        qid = np.repeat(np.arange(len(queries)), lens)
        dpos = np.flatnonzero(fb == DISLIKE)
        dq = qid[dpos]
        counts = np.bincount(dq, minlength=len(queries))
        from_end = np.cumsum(counts)[dq] - np.arange(dpos.size) - 1  # 0: the query's last dislike
        keep = from_end < self.config.max_len - 1
        width = int(min(counts.max(initial=0), self.config.max_len - 1))
        disliked = np.full((len(queries), width), self._pad, np.int64)
        disliked[dq[keep], width - 1 - from_end[keep]] = movie[dpos[keep]]
        kd = max([q.disliked_tags.size for q in queries] + [0])
        disliked_tags = np.full((len(queries), kd), self.n_tags, np.int64)
        for i, q in enumerate(queries):  # over queries (tags are few)
            disliked_tags[i, : q.disliked_tags.size] = q.disliked_tags
        return _Batch(
            torch.from_numpy(tokens),
            torch.from_numpy(feedback),
            torch.from_numpy(n),
            torch.from_numpy(chosen),
            torch.from_numpy(disliked),
            self._prior_of(tokens, feedback),
            disliked_tags=torch.from_numpy(disliked_tags),
        )

    # ----------------------------------------------------------------- fitting
    def _fit(self, data: Dataset, rng: np.random.Generator, valid: Dataset | None) -> None:
        cfg = self.config
        if cfg.max_len < 2:
            raise ValueError(f"SequenceConfig.max_len must be at least 2, got {cfg.max_len}")
        if not 0.0 <= cfg.likes_only_share <= 1.0:
            raise ValueError(f"SequenceConfig.likes_only_share must be in [0, 1], got {cfg.likes_only_share}")
        if not (math.isfinite(cfg.future_weight) and cfg.future_weight >= 0 and cfg.future_window >= 1):
            raise ValueError(
                "SequenceConfig.future_weight must be >= 0 and future_window >= 1, got "
                f"{cfg.future_weight} and {cfg.future_window}"
            )
        push = _Push.of(cfg)
        train_push = push if cfg.dislike_push_train else None
        movie = np.asarray(data.movie, np.int64)
        fb = feedback_from_ratings(np.asarray(data.rating), cfg.like_threshold, cfg.dislike_threshold)
        ptr = np.asarray(data.user_ptr, np.int64)
        user = np.asarray(data.user, np.int64)
        self._history = Histories(movie, fb, ptr)
        self._tag_matrix = top_per_row(data.movie_tags, cfg.tags_per_movie)
        gen = torch_generator(rng)
        net = self._build_net()
        net.reset_parameters(gen)
        if cfg.init_popularity:
            # start both heads at the log-frequency of their targets: the network then learns how a
            # session departs from popularity instead of spending its first epochs learning popularity
            liked_counts = np.bincount(movie[fb == LIKE], minlength=self.n_movies).astype(np.float64)
            seq_tags = self._tag_matrix[movie]
            tag_counts = np.bincount(seq_tags[seq_tags < self.n_tags], minlength=self.n_tags).astype(
                np.float64
            )
            with torch.no_grad():
                net.movie_head.bias.copy_(
                    torch.from_numpy(np.log((liked_counts + 0.5) / (liked_counts.sum() + 0.5)))
                )
                if self.n_tags:
                    net.tag_head.bias.copy_(
                        torch.from_numpy(np.log((tag_counts + 0.5) / (tag_counts.sum() + 0.5)))
                    )
        self.net = net
        self._last_run = None

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

        self._prior = None
        if cfg.transition_prior:  # counted without the held-out rows while training
            self._prior = self._new_transitions().fit(data.subset(~held) if held.any() else data, rng)
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
        span = max(1, cfg.max_len // 2)  # all_positions: targets per window (windows overlap by half)
        if cfg.all_positions:
            # windows: per (view, user), blocks of `span` consecutive targets; a window ends at its
            # block's last target and counts only the block's targets (earlier steps are context)
            pos = np.flatnonzero(all_ok)
            view = (pos >= n_rows).astype(np.int64)
            first_of = view_first[view, all_user[pos]]
            key = np.stack([view, all_user[pos], (pos - first_of) // span])
            _, start_idx = np.unique(key, axis=1, return_index=True)
            ex_a = (
                view_first[view[start_idx], all_user[pos[start_idx]]]
                + (pos[start_idx] - first_of[start_idx]) // span * span
            )
            ex_view, ex_user = view[start_idx], all_user[pos[start_idx]]
            ex_cut = np.minimum(ex_a + span, view_end[ex_view, ex_user]) - 1
        else:
            ex_cut = np.flatnonzero(train_ok)  # one window per target, in the full view
            ex_user, ex_view = user[ex_cut], np.zeros(ex_cut.size, np.int64)
            ex_a = ex_cut
        if ex_cut.size == 0:
            raise ValueError(f"{self.name}: no training examples (no liked ratings in {data.name!r})")
        tag_t = torch.from_numpy(self._tag_matrix)
        # an epoch: all_positions trains each target once, in the view drawn for its user (the
        # progress bar's length: the expected number of windows)
        share = cfg.likes_only_share if cfg.all_positions else 0.0
        expected = (1 - share) * np.count_nonzero(ex_view == 0) + share * np.count_nonzero(ex_view == 1)
        bs = local_batch_size(cfg.batch_size)  # the global batch stays cfg.batch_size (trainer)
        n_batches = max(1, math.ceil(expected / bs))
        # a dislike must also push down the movies like it: their item-kNN neighbours on the
        # training interactions, (n_movies + 2, K) indices padded with n_movies (start/pad rows empty)
        nbr_t: torch.Tensor | None = None
        if cfg.dislike_neighbours and cfg.dislike_neighbour_weight and (fb == DISLIKE).any():
            sim = ItemKNN().fit(data, rng)._require()
            nbrs = top_per_row(sim, cfg.dislike_neighbours)
            nbr_t = torch.from_numpy(np.vstack([nbrs, np.full((2, nbrs.shape[1]), self.n_movies, np.int64)]))

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

        def batches(epoch: int) -> Iterator[tuple[_Batch, torch.Tensor, torch.Tensor | None, torch.Tensor]]:
            ex_a_e, ex_cut_e = epoch_examples()
            for start in range(0, ex_cut_e.size, bs):
                a, cut = ex_a_e[start : start + bs], ex_cut_e[start : start + bs]
                u = all_user[cut]
                first = view_first[(cut >= n_rows).astype(np.int64), u]
                tokens, feedback, n = self._window(all_movie, all_fb, first, cut)
                steps = np.arange(tokens.shape[1])
                # step j's target: the flat position after it; counted when in [a, cut] and trainable
                tpos = (cut - n)[:, None] + steps[None, :] + 1
                on = (steps[None, :] < n[:, None]) & (tpos >= a[:, None])
                on &= all_ok[np.minimum(tpos, all_ok.size - 1)]
                rows, at = np.nonzero(on)
                target_pos = tpos[rows, at]
                target = all_movie[target_pos]
                # chosen tags (a random share of the target's tags, for a share of the targets)
                chosen_t = self._tag_matrix[target].copy()  # type: ignore[index]
                drop = (rng.random(chosen_t.shape) >= cfg.tag_keep) | (
                    rng.random(target.size) >= cfg.tag_prob
                )[:, None]
                chosen_t[drop] = self.n_tags
                chosen = np.full((*tokens.shape, chosen_t.shape[1]), self.n_tags, np.int64)
                chosen[rows, at] = chosen_t
                future: torch.Tensor | None = None
                if cfg.future_weight:
                    # the user's likes from the target on (the target itself when it is liked)
                    idx = all_lidx[target_pos][:, None] + np.arange(cfg.future_window)[None, :]
                    ok = idx < like_end[u[rows]][:, None]
                    future = torch.from_numpy(np.where(ok, liked_movie[np.where(ok, idx, 0)], -1))
                # each output's disliked input movies (steps up to its own): unlikelihood, push
                earlier = (feedback[rows] == DISLIKE + 2) & (steps[None, :] <= at[:, None])
                dis = np.where(earlier, tokens[rows], self._pad)
                yield (
                    _Batch(
                        torch.from_numpy(tokens),
                        torch.from_numpy(feedback),
                        torch.from_numpy(n),
                        torch.from_numpy(chosen),
                        torch.from_numpy(dis) if train_push else None,
                        self._prior_of(tokens, feedback, rows, at),
                        (torch.from_numpy(rows), torch.from_numpy(at)),
                    ),
                    torch.from_numpy(target),
                    future,
                    torch.from_numpy(dis),
                )

        def loss_fn(
            net: nn.Module, batch: tuple[_Batch, torch.Tensor, torch.Tensor | None, torch.Tensor]
        ) -> torch.Tensor:
            inp, target, future, dis = batch
            logp, tlogp = net(inp, train_push)
            loss = F.nll_loss(logp, target)
            if future is not None:
                ok = future >= 0
                has = ok.any(1)
                if bool(has.any()):
                    picked = logp.gather(1, future.clamp(min=0)) * ok
                    per_row = -picked.sum(1) / ok.sum(1).clamp(min=1)
                    loss = loss + cfg.future_weight * per_row[has].mean()
            if cfg.tag_loss_weight and self.n_tags:
                ttags = tag_t[target]
                tok = (ttags != self.n_tags).to(tlogp.dtype)
                has = tok.sum(1) > 0
                if bool(has.any()):
                    tl = -(tlogp.gather(1, ttags.clamp(max=self.n_tags - 1)) * tok).sum(1) / tok.sum(1).clamp(
                        min=1
                    )
                    loss = loss + cfg.tag_loss_weight * tl[has].mean()
            if cfg.dislike_weight:
                is_dis = dis < self.n_movies
                if bool(is_dis.any()):
                    p = logp.gather(1, dis.clamp(max=self.n_movies - 1)).exp()
                    ul = -torch.log1p(-p.clamp(max=1 - 1e-6))
                    loss = loss + cfg.dislike_weight * ul[is_dis].sum() / target.shape[0]
                    if nbr_t is not None:
                        rows, steps = is_dis.nonzero(as_tuple=True)
                        nb = nbr_t[dis[rows, steps]]  # (D, K) neighbours of each dislike
                        ok = nb < self.n_movies
                        pn = logp[rows].gather(1, nb.clamp(max=self.n_movies - 1)).exp()
                        uln = -torch.log1p(-pn.clamp(max=1 - 1e-6)) * ok
                        loss = loss + cfg.dislike_neighbour_weight * uln.sum() / target.shape[0]
            return loss

        def validate(net: nn.Module) -> float:
            if v_user.size == 0:
                return 0.0
            return _ndcg_at(self, net, movie, fb, v_first, v_cut, v_movie, v_excl, cfg.valid_k, train_push)

        # dropout draws from torch's global generator: seed it only for this fit and restore it after
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(rng.integers(0, 2**62)))
            history = train(
                net,
                batches,
                loss_fn,
                cfg.train_config(),
                validate=validate if v_user.size else None,
                n_batches=n_batches,
                name=self.name,
                generators=(rng,),
            )
        if cfg.transition_prior and held.any():  # the served counts include every training row
            self._prior = self._new_transitions().fit(data, rng)
        self.fit_info.epochs = len(history)
        self.fit_info.history = history
        self.fit_info.extra = {
            "n_examples": int(np.count_nonzero(train_ok)),
            "n_valid": int(v_user.size),
            "valid_source": valid_source,
        }

    def _build_net(self) -> SequenceNet:
        assert self._tag_matrix is not None
        pad_rows = np.full((2, self._tag_matrix.shape[1]), self.n_tags, np.int64)
        tags = torch.from_numpy(np.concatenate([self._tag_matrix, pad_rows]))
        return SequenceNet(self.n_movies, self.n_tags, tags, self.config)

    # ----------------------------------------------------------------- scoring
    def _net(self) -> SequenceNet:
        self._check_fitted()
        if self.net is None:
            raise NotFittedError(f"{self.name}: fit or load the model first")
        return self.net

    def _with_history(self, queries: Sequence[Query]) -> list[Query]:
        """Checked queries; one naming only a known user gets that user's ordered training history,
        and the tags its free text names (:func:`~movierec.models.base.tags_in_text`) join its liked
        tags (unless it dislikes them)."""
        out = []
        for q in queries:  # over queries: text is rare and short
            named = tags_in_text(q.text, self.tags)
            named = named[~np.isin(named, np.concatenate([q.liked_tags, q.disliked_tags]))]
            out.append(
                dataclasses.replace(q, liked_tags=np.concatenate([q.liked_tags, named])) if named.size else q
            )
        return with_history(out, self._history, self.n_movies, self.n_tags)

    def _new_transitions(self) -> Transitions:
        """The transition counter of the prior, as the config sets it (no popularity term)."""
        cfg = self.config
        return Transitions(
            window=cfg.transition_window,
            context=cfg.transition_context,
            decay=cfg.transition_decay,
            popularity=0.0,
        )

    def _scoring_net(self) -> SequenceNet:
        """The net ``score`` runs: :meth:`_net`, or its int8-head copy (``int8_heads``), made
        again whenever the net or its head weights change."""
        net = self._net()
        if not self.config.int8_heads:
            return net
        versions = (net.movie_head.weight._version, net.tag_head.weight._version)
        if self._int8 is None or self._int8[0] is not net or self._int8[1] != versions:
            keep = self.config.dislike_push_space == "head"
            self._int8 = (net, versions, _with_int8_heads(net, keep_movie_head=keep))
        return self._int8[2]

    def _run(self, queries: Sequence[Query]) -> tuple[np.ndarray, np.ndarray]:
        net = self._scoring_net()
        push = _Push.of(self.config)
        last = self._last_run
        # ranking.recommend asks for movie and then tag scores of the same Query objects: run once
        if (
            last is not None
            and last[1] == push
            and len(last[0]) == len(queries)
            and all(a is b for a, b in zip(last[0], queries, strict=True))
        ):
            return last[2].copy(), last[3].copy()
        result = self._run_net(net, queries, push)
        # keep only small (interactive) batches: a 512-query evaluation batch would pin ~40 MB
        self._last_run = (list(queries), push, *result) if len(queries) <= 16 else None
        return result

    def _run_net(
        self, net: SequenceNet, queries: Sequence[Query], push: _Push
    ) -> tuple[np.ndarray, np.ndarray]:
        queries = self._with_history(queries)
        if not queries:
            return np.zeros((0, self.n_movies), np.float32), np.zeros((0, self.n_tags), np.float32)
        if net.training:  # eval() walks every module: a tenth of a small batch's time
            net.eval()
        with torch.inference_mode():
            logp, tlogp = net(self._query_batch(queries), push)
        return logp.numpy().astype(np.float32), tlogp.numpy().astype(np.float32)

    def score(self, queries: Sequence[Query]) -> np.ndarray:
        """Log-probability of each movie being the next liked one, float32 ``(len(queries), n_movies)``.

        With ``dislike_push`` > 0 the softmax is taken after the structural dislike push (the
        query's disliked movies and the movies whose embeddings are like theirs lose logits).
        With a transition prior (``transition_prior``) the network's logits hold its learned term.
        """
        return self._run(queries)[0]

    @property
    def retrieval_exact(self) -> bool:
        """Whether ``query_vectors`` / ``item_vectors`` (and ``dislike_adjustment``) reproduce
        :meth:`score`: not with a transition prior, whose term is no inner product, nor with a
        liked-tag pull, which raises movies an inner-product search would not fetch."""
        return self._prior is None and not self.config.liked_tag_pull

    def score_tags(self, queries: Sequence[Query]) -> np.ndarray:
        """Log-probability of each tag describing the next liked movie, float32 ``(len(queries), n_tags)``."""
        return self._run(queries)[1]

    def score_users(self, users: np.ndarray) -> np.ndarray:
        """Scores for known user *indices* ``(B,)`` from their time-ordered training histories."""
        if self._history is None:
            raise NotFittedError(f"{self.name}: score_users needs the training data of fit()")
        return self.score([Query(user=int(u)) for u in np.asarray(users)])

    def dislike_adjustment(self, queries: Sequence[Query], movies: np.ndarray | None = None) -> np.ndarray:
        """What the structural feedback terms add to each movie's logit, float32 ``(B, n_movies)``
        (or ``(B, C)`` for the movie *indices* ``movies`` ``(B, C)`` int64, e.g. retrieval
        candidates; entries outside the catalogue get 0).

        ``-dislike_push * penalty`` (see :meth:`SequenceNet.dislike_penalty`) ``- dislike_tag_push *
        hits(disliked tags) + liked_tag_pull * hits(liked tags)`` (:meth:`SequenceNet.tag_hits`);
        all zero when they are off or a query holds no such feedback. ``query_vectors @ item_vectors().T +
        dislike_adjustment`` equals :meth:`score` up to a per-row constant, so retrieval
        re-scores its candidates exactly with it.
        """
        net = self._net()
        push = _Push.of(self.config)
        queries = self._with_history(queries)
        shape = (len(queries), self.n_movies) if movies is None else np.shape(movies)
        if movies is not None and (len(shape) != 2 or shape[0] != len(queries)):
            raise ValueError(f"movies must be a (len(queries), C) index array, got shape {shape}")
        if not queries or not (push.strength or push.tags or push.pull):
            return np.zeros(shape, np.float32)
        batch = self._query_batch(queries)
        assert batch.disliked is not None and batch.disliked_tags is not None
        out = torch.zeros(shape)
        with torch.inference_mode():
            at = None if movies is None else torch.from_numpy(np.array(movies, np.int64))  # writable copy
            if push.strength:
                out -= push.strength * net.dislike_penalty(
                    batch.disliked, push.space, push.agg, push.floor, at
                )
            if push.tags and batch.disliked_tags.shape[1]:
                out -= push.tags * net.tag_hits(batch.disliked_tags, at)
            if push.pull and batch.chosen.shape[1]:
                out += push.pull * net.tag_hits(batch.chosen, at)
        return out.numpy().astype(np.float32)

    def query_vectors(self, queries: Sequence[Query]) -> np.ndarray:
        """Session vectors ``(B, d + 1)`` float32 for maximum-inner-product retrieval over
        large catalogues: ``query_vectors @ item_vectors().T + dislike_adjustment(queries)``
        equals :meth:`score` up to a per-row constant (the softmax normaliser).

        The vectors do *not* carry the structural dislike push (``dislike_push``; it is not an
        inner product): for a query with dislikes, add :meth:`dislike_adjustment` at the
        retrieved candidates (or re-score them with :meth:`score`) to get the served order."""
        return self.query_vectors_and_tags(queries, with_tags=False)[0]

    def query_vectors_and_tags(
        self, queries: Sequence[Query], *, with_tags: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`query_vectors` and :meth:`score_tags` from one encoder pass, without the
        movie head (``(B, d + 1)`` and ``(B, n_tags)`` float32; tags empty when not asked)."""
        net = self._net()
        queries = self._with_history(queries)
        net.eval()
        with torch.inference_mode():
            if queries:
                h = net.encode(self._query_batch(queries))
            else:
                h = torch.zeros(0, net.movie_head.in_features)
            tags = F.log_softmax(net.tag_head(h), dim=-1) if with_tags else torch.zeros(h.shape[0], 0)
        vectors = np.hstack([h.numpy(), np.ones((h.shape[0], 1), np.float32)]).astype(np.float32)
        return vectors, tags.numpy().astype(np.float32)

    def item_vectors(self) -> np.ndarray:
        """Movie vectors ``(n_movies, d + 1)`` float32: the movie head's weights with its bias as the last column.

        Without the dislike push (see :meth:`query_vectors`)."""
        net = self._net()
        with torch.no_grad():
            w = torch.cat([net.movie_head.weight, net.movie_head.bias.unsqueeze(1)], dim=1)
        return w.numpy().astype(np.float32)

    def item_embeddings(self) -> np.ndarray:
        """Movie vectors ``(n_movies, d)`` float32 to compare movies by (the movie head's weight
        rows, without the popularity bias): "similar movies" in the network's own space."""
        with torch.no_grad():
            return self._net().movie_head.weight.numpy().astype(np.float32)

    def explain(self, query: Query, movies: np.ndarray) -> list[str | None]:
        """``"because you liked {movie:<index>}"``: the session's liked movie whose
        embedding is most similar (cosine) to each recommended movie index; ``None`` without likes."""
        net = self._net()
        liked = query.liked
        movies = np.asarray(movies, np.int64)
        if liked.size == 0 or movies.size == 0:
            return [None] * movies.size
        with torch.no_grad():
            emb = F.normalize(net.movie_emb.weight[: self.n_movies], dim=1)
            sim = emb[torch.from_numpy(movies)] @ emb[torch.from_numpy(liked)].T
        best = liked[sim.argmax(1).numpy()]
        return [f"{REASON_PREFIX}{{movie:{int(m)}}}" for m in best]

    # -------------------------------------------------------------- persistence
    def state(self) -> dict[str, np.ndarray]:
        net = self._net()
        out = {f"net.{k}": v.detach().cpu().numpy() for k, v in net.state_dict().items()}
        assert self._tag_matrix is not None
        out["tag_matrix"] = self._tag_matrix
        if self._prior is not None:
            out |= {f"prior.{k}": v for k, v in self._prior.state().items()}
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self._tag_matrix = np.asarray(state["tag_matrix"], np.int64)
        net = self._build_net()
        weights = {k[4:]: torch.from_numpy(np.array(v)) for k, v in state.items() if k.startswith("net.")}
        try:
            net.load_state_dict(weights)
        except RuntimeError as exc:
            raise ValueError(str(exc)) from exc
        net.eval()
        self.net = net
        self._last_run = None
        self._prior = None
        if self.config.transition_prior:
            if "prior.indptr" not in state:
                raise ValueError(
                    "the artifact's config has transition_prior but its weights hold no prior counts"
                )
            prior = self._new_transitions()
            prior.movies = self.movies
            prior.load_state({k[6:]: v for k, v in state.items() if k.startswith("prior.")})
            self._prior = prior
        if "transition_weight" in state:
            raise ValueError(
                "this artifact was trained with the transition blend, which the sequence models no "
                "longer have (the network learns its own transition prior): train it again"
            )


def _with_int8_heads(net: SequenceNet, keep_movie_head: bool = False) -> SequenceNet:
    """An inference copy of ``net`` whose movie and tag heads hold int8 weights (dynamic
    quantisation: activations are quantised per call, outputs are float32).

    ``keep_movie_head``: leave the movie head float (the dislike push reads its weights when
    ``dislike_push_space == "head"``). An empty head (no tags) stays as it is.
    """
    from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

    out = copy.deepcopy(net).eval()
    heads = [h for h in ("movie_head", "tag_head") if getattr(out, h).out_features > 0]
    if keep_movie_head:
        heads.remove("movie_head")
    if heads:
        with warnings.catch_warnings():  # torch 2.13 points eager quantisation at torchao
            warnings.simplefilter("ignore")
            quantize_dynamic(out, {h: default_dynamic_qconfig for h in heads}, inplace=True)
    return out


class SequenceAttention(SequenceLSTM):
    """The same sequence recommender with a SASRec-style causal transformer encoder."""

    name = "sequence-attn"
    default_encoder = "attention"


def _ndcg_at(
    model: SequenceLSTM,
    net: nn.Module,
    movie: np.ndarray,
    fb: np.ndarray,
    first: np.ndarray,
    cut: np.ndarray,
    target: np.ndarray,
    exclude: list[np.ndarray],
    k: int,
    push: _Push | None = None,
) -> float:
    """Mean NDCG@k of ``target`` movie indices ``(V,)`` given the flat histories
    ``[first, cut)``, full ranking over all movies minus each history ``exclude``
    (with ``push``, the dislikes of each input window push their movies down)."""
    total = 0.0
    step = 512
    for s in range(0, target.size, step):
        tokens, feedback, n = model._window(movie, fb, first[s : s + step], cut[s : s + step])
        disliked = torch.from_numpy(np.where(feedback == DISLIKE + 2, tokens, model._pad)) if push else None
        logp, _ = net(
            _Batch(
                torch.from_numpy(tokens),
                torch.from_numpy(feedback),
                torch.from_numpy(n),
                torch.zeros((n.size, 0), dtype=torch.int64),
                disliked,
                model._prior_of(tokens, feedback),
            ),
            push,
        )
        scores = logp.numpy().copy()
        rows = np.repeat(np.arange(n.size), [e.size for e in exclude[s : s + step]])
        cols = np.concatenate(exclude[s : s + step]) if rows.size else rows
        scores[rows, cols] = -np.inf
        t_score = scores[np.arange(n.size), target[s : s + step]]
        rank = (scores > t_score[:, None]).sum(1)  # a target's rank: the movies scored above it
        total += float(np.where(rank < k, 1.0 / np.log2(rank + 2.0), 0.0).sum())
    return total / max(target.size, 1)
