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
    Histories,
    NotFittedError,
    Query,
    Recommender,
    feedback_from_ratings,
    with_history,
)
from movierec.models.knn import ItemKNN
from movierec.models.trainer import TrainConfig, torch_generator, train
from movierec.models.transitions import Transitions, context_movies
from movierec.ranking import top_per_row

__all__ = [
    "BLEND_WEIGHTS",
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


#: the candidate weights that turn the transition blend on (``SequenceConfig.transition_weights``)
BLEND_WEIGHTS: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)


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
    #: ml-latest-small (bench_session.py part 2b, 4 epochs) a dislike then moves its 10 item-kNN
    #: neighbours' median rank 74 -> 85 (without the push 42 -> 32: they rose) for -0.0005
    #: next-item NDCG@10 (95% CI +-0.007); 5 and more cost over 0.002
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
    #: also apply the push while training (on the dislikes in each example's input window), so
    #: the network learns with it in place; ``False``: inference only
    dislike_push_train: bool = False
    #: ratings at or above this are likes
    like_threshold: float = 4.0
    #: ratings at or below this are dislikes
    dislike_threshold: float = 2.0
    #: train only on liked targets (``False``: every rated movie is a target)
    liked_targets_only: bool = True
    #: multi-target: predict all future likes (up to ``future_window`` ahead), not just the next
    multi_target: bool = False
    #: how far ahead the multi-target looks
    future_window: int = 20
    #: users held out for early stopping when ``fit`` gets no validation set
    holdout_share: float = 0.1
    #: cut-off of the validation NDCG used for early stopping
    valid_k: int = 10
    #: maximum passes over the training examples
    epochs: int = 12
    #: examples per mini-batch
    batch_size: int = 256
    #: Adam learning rate
    lr: float = 2e-3
    #: decoupled weight decay
    weight_decay: float = 0.0
    #: epochs without validation improvement before stopping (0: never stop early)
    patience: int = 2
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
    #: blend in item-to-item transitions (:class:`~movierec.models.transitions.Transitions`,
    #: counted on the same training data): a movie's score gains ``w * log1p(its transition
    #: weight from the query's last transition_context movies)``, ``w`` picked from these on the
    #: validation item after training, one for sessions without liked tags and one with
    #: (0 is always a candidate; ``(0,)``, the default, turns it off). On ml-latest-small
    #: next-item (4 epochs) :data:`BLEND_WEIGHTS` took sequence-attn to NDCG@10 0.061 / 0.064
    #: (seeds 0, 1; 0.033-0.036 alone) and the LSTM to 0.054, but next-item-tags fell from 0.17
    #: to 0.12 and a disliked movie's neighbours no longer fell (median rank 115 -> 108): an
    #: option for next-item accuracy, not the interactive default
    transition_weights: tuple[float, ...] = (0.0,)
    #: pairs up to this many steps apart are counted (weight 1 / distance)
    transition_window: int = 2
    #: the query's last this many not-disliked movies reach their successors (most recent first)
    transition_context: int = 3
    #: weight of a context movie ``age`` steps before the last: ``decay ** age``
    transition_decay: float = 0.5

    def train_config(self) -> TrainConfig:
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            patience=self.patience,
            lr_decay=self.lr_decay,
            threads=self.threads,
            clip_norm=self.clip_norm,
            progress=self.progress,
        )


@dataclass
class _Batch:
    """Network input, right-padded.

    tokens: ``(B, L)`` int64 movie indices, ``n_movies`` = start step, ``n_movies + 1`` = padding.
    feedback: ``(B, L)`` int64 feedback rows (0 pad, 1 dislike, 2 seen, 3 like, 4 start).
    lengths: ``(B,)`` int64 valid steps per row (>= 1).
    chosen: ``(B, K)`` int64 tag indices chosen for the last step, ``n_tags`` = padding.
    disliked: ``(B, D)`` int64 movie indices the dislike push uses, ``>= n_movies`` = padding
    (``D`` may be 0).
    """

    tokens: torch.Tensor
    feedback: torch.Tensor
    lengths: torch.Tensor
    chosen: torch.Tensor
    disliked: torch.Tensor | None = None


@dataclass(frozen=True)
class _Push:
    """Settings of the structural dislike push (see :meth:`SequenceNet.dislike_penalty`)."""

    strength: float = 0.0
    space: str = "input"
    agg: str = "max"
    floor: float = 0.0

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
        return cls(
            float(config.dislike_push),
            config.dislike_push_space,
            config.dislike_push_agg,
            float(config.dislike_push_floor),
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
        self.movie_head = nn.Linear(out_dim, n_movies)
        self.tag_head = nn.Linear(out_dim, n_tags)
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
        tokens, lengths = batch.tokens, batch.lengths
        b, length = tokens.shape
        tag_idx = self.movie_tags[tokens]  # (B, L, T)
        tag_sum = self.tag_emb(tag_idx).sum(2)
        tag_cnt = (tag_idx != self.n_tags).sum(2).to(tag_sum.dtype)
        rows = torch.arange(b)
        last = lengths - 1
        x = (
            self.movie_emb(tokens)
            + tag_sum / tag_cnt.clamp(min=1.0).unsqueeze(-1)
            + self.fb_emb(batch.feedback)
        )
        if batch.chosen.shape[1]:
            # chosen tags ("what I want next") have their own embedding table: the same tag as a
            # property of the current movie means something else (it predicts what follows it)
            chosen_cnt = (batch.chosen != self.n_tags).sum(1, keepdim=True).to(tag_sum.dtype)
            chosen_mean = self.want_emb(batch.chosen).sum(1) / chosen_cnt.clamp(min=1.0)
            x = x.index_put((rows, last), chosen_mean, accumulate=True)
        if self.encoder == "lstm":
            packed = nn.utils.rnn.pack_padded_sequence(
                self.drop(x), lengths.cpu(), batch_first=True, enforce_sorted=False
            )
            _, (h, _) = self.rnn(packed)
            out = h[-1]
        else:
            steps = torch.arange(length)
            # learned recency positions: the last step is position 0
            pos = (last.unsqueeze(1) - steps.unsqueeze(0)).clamp(min=0)
            x = self.drop(x + self.pos_emb(pos))
            causal = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)
            pad = steps.unsqueeze(0) >= lengths.unsqueeze(1)
            h_all = self.blocks(x, mask=causal, src_key_padding_mask=pad)
            out = self.norm(h_all[rows, last])
        return self.drop(out)

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
        """Log-probabilities over movies ``(B, n_movies)`` and tags ``(B, n_tags)``.

        With ``push`` (strength > 0) and ``batch.disliked``, the movie logits first lose
        ``push.strength * dislike_penalty(batch.disliked, ...)``.
        """
        h = self.encode(batch)
        logits = self.movie_head(h)
        if push is not None and push.strength and batch.disliked is not None and batch.disliked.shape[1]:
            penalty = self.dislike_penalty(batch.disliked, push.space, push.agg, push.floor)
            logits = logits - push.strength * penalty
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
        # the transition counts blended into the movie scores, and their weights (0: none) for
        # sessions without and with liked tags
        self._transitions: Transitions | None = None
        self._transition_weights = (0.0, 0.0)

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
        return _Batch(
            torch.from_numpy(tokens),
            torch.from_numpy(feedback),
            torch.from_numpy(n),
            torch.from_numpy(chosen),
            torch.from_numpy(disliked),
        )

    # ----------------------------------------------------------------- fitting
    def _fit(self, data: Dataset, rng: np.random.Generator, valid: Dataset | None) -> None:
        cfg = self.config
        if cfg.max_len < 2:
            raise ValueError(f"SequenceConfig.max_len must be at least 2, got {cfg.max_len}")
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
        weights = sorted({float(w) for w in cfg.transition_weights} | {0.0})
        if min(weights) < 0:
            raise ValueError(f"SequenceConfig.transition_weights must be >= 0, got {cfg.transition_weights}")
        self._transitions, self._transition_weights = None, (0.0, 0.0)
        if len(weights) > 1:
            self._transitions = self._new_transitions().fit(data, rng)

        # validation: (sequence start, cut, target) triples
        targets_ok = fb == LIKE if cfg.liked_targets_only else np.ones(movie.size, bool)
        if valid is not None and valid.n_ratings:
            v_user = np.asarray(valid.user, np.int64)
            v_movie = np.asarray(valid.movie, np.int64)
            has = ptr[v_user + 1] > ptr[v_user]
            v_user, v_movie = v_user[has], v_movie[has]
            v_first, v_cut = ptr[v_user], ptr[v_user + 1]
            train_ok = targets_ok
        else:
            liked_pos = np.flatnonzero(fb == LIKE)
            # last liked position per user with at least one earlier rating
            last_liked = np.full(data.n_users, -1, np.int64)
            np.maximum.at(last_liked, user[liked_pos], liked_pos)
            cand = np.flatnonzero(last_liked > ptr[:-1])
            n_hold = round(cfg.holdout_share * cand.size) if cand.size >= 10 else 0
            v_user = np.sort(rng.choice(cand, n_hold, replace=False)) if n_hold else np.zeros(0, np.int64)
            v_cut = last_liked[v_user]
            v_first, v_movie = ptr[v_user], movie[v_cut]
            after = np.zeros(movie.size + 1, np.int64)  # drop held-out targets and what follows them
            np.add.at(after, v_cut, 1)
            np.add.at(after, ptr[v_user + 1], -1)
            train_ok = targets_ok & (np.cumsum(after)[:-1] == 0)
        v_excl = [movie[a:b] for a, b in zip(v_first, v_cut, strict=True)]

        ex_pos = np.flatnonzero(train_ok)
        ex_first = ptr[user[ex_pos]]
        ex_end = ptr[user[ex_pos] + 1]
        if ex_pos.size == 0:
            raise ValueError(f"{self.name}: no training examples (no liked ratings in {data.name!r})")
        tag_t = torch.from_numpy(self._tag_matrix)
        n_batches = math.ceil(ex_pos.size / cfg.batch_size)
        # a dislike must also push down the movies like it: their item-kNN neighbours on the
        # training interactions, (n_movies + 2, K) indices padded with n_movies (start/pad rows empty)
        nbr_t: torch.Tensor | None = None
        if cfg.dislike_neighbours and cfg.dislike_neighbour_weight and (fb == DISLIKE).any():
            sim = ItemKNN().fit(data, rng)._require()
            nbrs = top_per_row(sim, cfg.dislike_neighbours)
            nbr_t = torch.from_numpy(np.vstack([nbrs, np.full((2, nbrs.shape[1]), self.n_movies, np.int64)]))

        def batches(epoch: int) -> Iterator[tuple[_Batch, torch.Tensor, torch.Tensor | None]]:
            perm = rng.permutation(ex_pos.size)
            give = rng.random(ex_pos.size) < cfg.tag_prob
            for start in range(0, ex_pos.size, cfg.batch_size):
                sel = perm[start : start + cfg.batch_size]
                cut, first = ex_pos[sel], ex_first[sel]
                tokens, feedback, n = self._window(movie, fb, first, cut)
                target = movie[cut]
                chosen = self._tag_matrix[target].copy()  # type: ignore[index]
                drop = (rng.random(chosen.shape) >= cfg.tag_keep) | ~give[sel][:, None]
                chosen[drop] = self.n_tags
                future: torch.Tensor | None = None
                if cfg.multi_target:
                    idx = cut[:, None] + np.arange(cfg.future_window)[None, :]
                    ok = idx < ex_end[sel][:, None]
                    idx = np.where(ok, idx, cut[:, None])
                    ok &= fb[idx] == LIKE
                    ok[:, 0] = True
                    future = torch.from_numpy(np.where(ok, movie[idx], -1))
                disliked = np.where(feedback == DISLIKE + 2, tokens, self._pad) if train_push else None
                yield (
                    _Batch(
                        torch.from_numpy(tokens),
                        torch.from_numpy(feedback),
                        torch.from_numpy(n),
                        torch.from_numpy(chosen),
                        None if disliked is None else torch.from_numpy(disliked),
                    ),
                    torch.from_numpy(target),
                    future,
                )

        def loss_fn(net: nn.Module, batch: tuple[_Batch, torch.Tensor, torch.Tensor | None]) -> torch.Tensor:
            inp, target, future = batch
            logp, tlogp = net(inp, train_push)
            if future is None:
                loss = F.nll_loss(logp, target)
            else:
                ok = future >= 0
                picked = logp.gather(1, future.clamp(min=0)) * ok
                loss = -(picked.sum(1) / ok.sum(1)).mean()
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
                dis = inp.feedback == DISLIKE + 2
                if bool(dis.any()):
                    p = logp.gather(1, inp.tokens.clamp(max=self.n_movies - 1)).exp()
                    ul = -torch.log1p(-p.clamp(max=1 - 1e-6))
                    loss = loss + cfg.dislike_weight * ul[dis].sum() / target.shape[0]
                    if nbr_t is not None:
                        rows, steps = dis.nonzero(as_tuple=True)
                        nb = nbr_t[inp.tokens[rows, steps]]  # (D, K) neighbours of each dislike
                        ok = nb < self.n_movies
                        pn = logp[rows].gather(1, nb.clamp(max=self.n_movies - 1)).exp()
                        uln = -torch.log1p(-pn.clamp(max=1 - 1e-6)) * ok
                        loss = loss + cfg.dislike_neighbour_weight * uln.sum() / target.shape[0]
            return loss

        def validate(net: nn.Module) -> float:
            if v_user.size == 0:
                return 0.0
            return _ndcg_at(self, net, movie, fb, v_first, v_cut, v_movie, v_excl, cfg.valid_k, train_push)[0]

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
        self.fit_info.epochs = len(history)
        self.fit_info.history = history
        self.fit_info.extra = {"n_examples": int(ex_pos.size), "n_valid": int(v_user.size)}
        if self._transitions is not None:
            # the transitions' weights: the best on the validation item (ties: the smallest),
            # without tags and with the target's 3 heaviest tags given (as next-item-tags does:
            # a visitor's chosen tags say more about the next movie than what usually follows)
            found = {"plain": [0.0] * len(weights), "tags": [0.0] * len(weights)}
            if v_user.size:
                given = self._tag_matrix[v_movie][:, :3]
                net.eval()
                with torch.inference_mode():
                    for kind, tags in (("plain", None), ("tags", given)):
                        found[kind] = _ndcg_at(
                            self,
                            net,
                            movie,
                            fb,
                            v_first,
                            v_cut,
                            v_movie,
                            v_excl,
                            cfg.valid_k,
                            push,
                            self._transitions,
                            weights,
                            tags,
                        )
            self._transition_weights = (
                weights[int(np.argmax(found["plain"]))],
                weights[int(np.argmax(found["tags"]))],
            )
            if not any(self._transition_weights):
                self._transitions = None
            self.fit_info.extra["transition_weights"] = list(self._transition_weights)
            self.fit_info.extra["transition_valid_ndcg"] = {
                kind: dict(zip(map(str, weights), v, strict=True)) for kind, v in found.items()
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
        """Checked queries; one naming only a known user gets that user's ordered training history."""
        return with_history(queries, self._history, self.n_movies, self.n_tags)

    def _new_transitions(self) -> Transitions:
        """The transition counter of the blend, as the config sets it (no popularity term)."""
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
        With a transition blend (``transition_weights``), its term is added to that: the weight
        picked for sessions with liked tags or without, and, with the dislike push on, a
        movie's transition support shrinks by its push similarity to the session's dislikes
        (``1 - penalty``: a disliked movie keeps none, the movies like it little).
        """
        scores = self._run(queries)[0]
        if self._transitions is None or not any(self._transition_weights):
            return scores
        qs = self._with_history(queries)
        plain, tagged = self._transition_weights
        w = np.array([tagged if q.liked_tags.size else plain for q in qs], np.float32)
        if not w.any():
            return scores
        push = _Push.of(self.config)
        penalty = None
        if push.strength and any(q.disliked.size for q in qs):
            penalty = -self.dislike_adjustment(qs) / push.strength
        term = _transition_term(self._transitions, [(q.movies, q.feedback) for q in qs], penalty)
        # not in place: _run's arrays are also its cache of the last batch
        return scores + w[:, None] * term

    @property
    def transition_weight(self) -> float:
        """Weight of the transition blend picked at fit time for sessions without liked tags (0: none)."""
        return self._transition_weights[0]

    @property
    def transition_weight_with_tags(self) -> float:
        """The same, for sessions with liked tags."""
        return self._transition_weights[1]

    @property
    def retrieval_exact(self) -> bool:
        """Whether ``query_vectors`` / ``item_vectors`` (and ``dislike_adjustment``) reproduce
        :meth:`score`: not with a transition blend, whose term is no inner product."""
        return self._transitions is None

    def score_tags(self, queries: Sequence[Query]) -> np.ndarray:
        """Log-probability of each tag describing the next liked movie, float32 ``(len(queries), n_tags)``."""
        return self._run(queries)[1]

    def score_users(self, users: np.ndarray) -> np.ndarray:
        """Scores for known user *indices* ``(B,)`` from their time-ordered training histories."""
        if self._history is None:
            raise NotFittedError(f"{self.name}: score_users needs the training data of fit()")
        return self.score([Query(user=int(u)) for u in np.asarray(users)])

    def dislike_adjustment(self, queries: Sequence[Query], movies: np.ndarray | None = None) -> np.ndarray:
        """What the structural dislike push adds to each movie's logit, float32 ``(B, n_movies)``
        (or ``(B, C)`` for the movie *indices* ``movies`` ``(B, C)`` int64, e.g. retrieval
        candidates; entries outside the catalogue get 0).

        ``-dislike_push * penalty`` (see :meth:`SequenceNet.dislike_penalty`); all zero when the
        push is off or a query has no dislikes. ``query_vectors @ item_vectors().T +
        dislike_adjustment`` equals :meth:`score` up to a per-row constant, so retrieval
        re-scores its candidates exactly with it.
        """
        net = self._net()
        push = _Push.of(self.config)
        queries = self._with_history(queries)
        shape = (len(queries), self.n_movies) if movies is None else np.shape(movies)
        if movies is not None and (len(shape) != 2 or shape[0] != len(queries)):
            raise ValueError(f"movies must be a (len(queries), C) index array, got shape {shape}")
        if not queries or not push.strength:
            return np.zeros(shape, np.float32)
        batch = self._query_batch(queries)
        assert batch.disliked is not None
        with torch.inference_mode():
            at = None if movies is None else torch.from_numpy(np.array(movies, np.int64))  # writable copy
            penalty = net.dislike_penalty(batch.disliked, push.space, push.agg, push.floor, at)
        return (-push.strength * penalty).numpy().astype(np.float32)

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
        if self._transitions is not None:
            out |= {f"transitions.{k}": v for k, v in self._transitions.state().items()}
            out["transition_weight"] = np.array(self._transition_weights, np.float32)
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
        self._transitions, self._transition_weights = None, (0.0, 0.0)
        if "transition_weight" in state:  # artifacts from before the blend have none
            trans = self._new_transitions()
            trans.movies = self.movies
            trans.load_state({k[12:]: v for k, v in state.items() if k.startswith("transitions.")})
            self._transitions = trans
            w = np.asarray(state["transition_weight"], np.float64).ravel()
            self._transition_weights = (float(w[0]), float(w[-1]))


def _transition_term(
    transitions: Transitions, sessions: Sequence[tuple[np.ndarray, np.ndarray]], penalty: np.ndarray | None
) -> np.ndarray:
    """The blend's term before its weight, float32 ``(B, n_movies)``: each session's (movie
    indices, feedback) transition support, scaled by ``1 - penalty`` (the dislike push's
    ``(B, n_movies)`` similarity to the session's dislikes, in [0, 1]) when there is one."""
    term = transitions.transition_scores([context_movies(m, f) for m, f in sessions])
    if penalty is not None:
        term *= 1.0 - penalty
    return term


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
    transitions: Transitions | None = None,
    weights: Sequence[float] = (0.0,),
    tags: np.ndarray | None = None,
) -> list[float]:
    """Mean NDCG@k of ``target`` movie indices ``(V,)`` given the flat histories
    ``[first, cut)``, full ranking over all movies minus each history ``exclude``
    (with ``push``, the dislikes of each input window push their movies down), one per
    weight of the ``transitions`` blend (``weights``; without ``transitions`` only 0 counts;
    damped by the push as :meth:`SequenceLSTM.score` does). ``tags``: ``(V, K)`` tag indices
    given as chosen (padding ``n_tags``), or none."""
    totals = np.zeros(len(weights))
    step = 512
    for s in range(0, target.size, step):
        tokens, feedback, n = model._window(movie, fb, first[s : s + step], cut[s : s + step])
        chosen = (
            torch.zeros((n.size, 0), dtype=torch.int64)
            if tags is None
            else torch.from_numpy(np.ascontiguousarray(tags[s : s + step], np.int64))
        )
        disliked = torch.from_numpy(np.where(feedback == DISLIKE + 2, tokens, model._pad)) if push else None
        logp, _ = net(
            _Batch(
                torch.from_numpy(tokens), torch.from_numpy(feedback), torch.from_numpy(n), chosen, disliked
            ),
            push,
        )
        base = logp.numpy()
        extra = None
        if transitions is not None:
            penalty = None
            if push is not None and push.strength and disliked is not None:
                penalty = model._net().dislike_penalty(disliked, push.space, push.agg, push.floor).numpy()
            spans = zip(first[s : s + step], cut[s : s + step], strict=True)
            extra = _transition_term(transitions, [(movie[a:b], fb[a:b]) for a, b in spans], penalty)
        rows = np.repeat(np.arange(n.size), [e.size for e in exclude[s : s + step]])
        cols = np.concatenate(exclude[s : s + step]) if rows.size else rows
        tgt = target[s : s + step]
        for j, w in enumerate(weights):
            if w and extra is None:
                continue
            scores = base + w * extra if w and extra is not None else base.copy()
            scores[rows, cols] = -np.inf
            t_score = scores[np.arange(n.size), tgt]
            rank = (scores > t_score[:, None]).sum(1)
            totals[j] += float(np.where(rank < k, 1.0 / np.log2(rank + 2.0), 0.0).sum())
    return (totals / max(target.size, 1)).tolist()
