"""The sequence recommenders behind the :class:`~movierec.models.base.Recommender` contract:
windows of a history as training examples, the fit, and scoring (see the package docstring)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
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
    tags_in_text,
    with_history,
)
from movierec.models.sequence.config import Push, SequenceConfig
from movierec.models.sequence.examples import window
from movierec.models.sequence.net import Batch, SequenceNet, with_int8_heads
from movierec.models.sequence.training import fit_sequence_model
from movierec.models.transitions import Transitions

#: :meth:`SequenceLSTM.explain` reasons read ``"because you liked {movie:<index>}"``;
#: the caller replaces the placeholder with the title (see :func:`parse_reason`).
REASON_PREFIX = "because you liked "


def parse_reason(reason: str | None) -> int | None:
    """The movie *index* named by an :meth:`~SequenceLSTM.explain` reason, or ``None``."""
    if not reason or "{movie:" not in reason:
        return None
    return int(reason.split("{movie:", 1)[1].split("}", 1)[0])


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
        self._last_run: tuple[list[Query], Push, np.ndarray, np.ndarray] | None = None
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
        """:func:`~movierec.models.sequence.examples.window` with this model's length and tokens."""
        return window(movie, fb, first, cut, self.config.max_len, self._start, self._pad)

    def _prior_of(
        self,
        tokens: np.ndarray,
        feedback: np.ndarray,
        rows: np.ndarray | None = None,
        at: np.ndarray | None = None,
    ) -> torch.Tensor | None:
        """The transition prior after the steps ``at`` of rows ``rows`` (both ``(N,)`` int64; by
        default each row's last step) of right-padded windows (``tokens``, ``feedback`` as in
        :class:`Batch`, ``(B, L)``): float32 ``(N, n_movies)``, its context the not-disliked
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

    def _query_batch(self, queries: Sequence[Query]) -> Batch:
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
        return Batch(
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
        fit_sequence_model(self, data, rng, valid)

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
            window=cfg.prior.transition_window,
            context=cfg.prior.transition_context,
            decay=cfg.prior.transition_decay,
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
            keep = self.config.push.dislike_push_space == "head"
            self._int8 = (net, versions, with_int8_heads(net, keep_movie_head=keep))
        return self._int8[2]

    def _run(self, queries: Sequence[Query]) -> tuple[np.ndarray, np.ndarray]:
        net = self._scoring_net()
        push = Push.of(self.config.push)
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
        self, net: SequenceNet, queries: Sequence[Query], push: Push
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
        return self._prior is None and not self.config.push.liked_tag_pull

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
        push = Push.of(self.config.push)
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

    def movie_embeddings(self) -> np.ndarray:
        """The network's input movie embeddings (what a step of a session reads), float32
        ``(n_movies, embed_dim)``, without the start and padding rows; not the output head
        (:meth:`item_vectors`). :meth:`explain` measures its cosines in this space."""
        net = self._net()
        with torch.no_grad():
            w = net.movie_emb.weight[: self.n_movies]
        return w.detach().cpu().numpy().astype(np.float32)

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
        if self.config.prior.transition_prior:
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


class SequenceAttention(SequenceLSTM):
    """The same sequence recommender with a SASRec-style causal transformer encoder."""

    name = "sequence-attn"
    default_encoder = "attention"
