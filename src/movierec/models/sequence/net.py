"""The sequence network: step embeddings -> LSTM or causal transformer -> movie and tag heads,
with the structural dislike push, the tag terms and the learned transition prior."""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from movierec.models.sequence.config import Push, SequenceConfig

# feedback embedding rows: padding, dislike, seen, like, start step
FB_PAD, FB_START = 0, 4


@dataclass
class Batch:
    """Network input, right-padded.

    tokens: ``(B, L)`` int64 movie indices, ``n_movies`` = start step, ``n_movies + 1`` = padding.
    feedback: ``(B, L)`` int64 feedback rows (0 pad, 1 dislike, 2 seen, 3 like, 4 start).
    lengths: ``(B,)`` int64 valid steps per row (>= 1).
    chosen: ``(B, K)`` int64 tag indices chosen for the last step, or ``(B, L, K)`` for each
    step, ``n_tags`` = padding.
    disliked: ``(B, D)`` int64 movie indices the dislike push uses, ``>= n_movies`` = padding
    (``D`` may be 0); one row per output (``N`` rows with ``at``).
    prior: ``(B, n_movies)`` float32 log1p transition support from the input's last movies
    (``SequenceConfig.prior.transition_prior``), or ``None``; one row per output.
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
        self.fb_emb = nn.Embedding(5, d, padding_idx=FB_PAD)
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
        self.prior_gate = nn.Linear(out_dim, 1) if config.prior.transition_prior else None
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
            self.fb_emb.weight[FB_PAD].zero_()

    def encode(self, batch: Batch) -> torch.Tensor:
        """Last hidden state per row, ``(B, out_dim)`` float32."""
        h_all = self.encode_all(batch)
        return h_all[torch.arange(h_all.shape[0]), batch.lengths - 1]

    def encode_all(self, batch: Batch) -> torch.Tensor:
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

    def forward(self, batch: Batch, push: Push | None = None) -> tuple[torch.Tensor, torch.Tensor]:
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


def with_int8_heads(net: SequenceNet, keep_movie_head: bool = False) -> SequenceNet:
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
