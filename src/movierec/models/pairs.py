"""The shared machinery of the pairwise (user, movie) neural models: the rating networks
(:mod:`movierec.models.rating_mlp`) and Neural Collaborative Filtering (:mod:`movierec.models.ncf`).

:class:`PairRecommender` is the base shared with :mod:`movierec.models.ncf`:
the network maps a *user representation* (a row of the user embedding
tables) and a movie index to an output. Known users use their learned row;
a new session is **folded in**: a fresh user row is fitted by a few Adam
steps on the session's movies with every network weight frozen (rating
targets for rating models; liked movies against deterministic sampled
negatives for implicit models), starting from the mean user row and pulled
towards it by an L2 penalty. A query with no movies and no user cannot be
scored (a row of NaN, the ranking layer falls back to popularity).
"""

from __future__ import annotations

import dataclasses
import hashlib
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from movierec.models.base import NotFittedError, Query, Recommender
from movierec.models.trainer import TrainConfig, train

__all__ = ["SCORE_CHUNK_PAIRS", "GenDropout", "PairNet", "PairRecommender", "init_weights"]

#: (user, movie) pairs pushed through a network at once when scoring all movies
SCORE_CHUNK_PAIRS = 1 << 19


# ------------------------------------------------------------------ layers


class GenDropout(nn.Module):
    """Dropout drawing its mask from an explicit ``torch.Generator`` (never the global one).

    ``generator`` is set by the model before training; in eval mode (or with
    ``p == 0``) the layer is the identity.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {p}")
        self.p = p
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.generator is None:
            raise RuntimeError("GenDropout.generator must be set before training")
        keep = torch.rand(x.shape, generator=self.generator, dtype=x.dtype) >= self.p
        return x * keep / (1.0 - self.p)


class PairNet(nn.Module):
    """A network over (user representation, movie index) pairs.

    Subclasses implement :meth:`user_repr` (user *indices* ``(N,)`` int64 ->
    float ``(N, R)``) and :meth:`forward_repr` (``(N, R)`` representations and
    movie indices ``(N,)`` -> output ``(N,)`` or ``(N, L)`` logits).
    """

    @abstractmethod
    def user_repr(self, users: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def forward_repr(self, urep: torch.Tensor, movies: torch.Tensor) -> torch.Tensor: ...

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        return self.forward_repr(self.user_repr(users), movies)

    def movie_vectors(self) -> torch.Tensor:
        """The network's own movie vectors ``(n_movies, D)``: its ``movie_emb`` table's weights;
        a network with several movie tables overrides it (side by side)."""
        emb = getattr(self, "movie_emb", None)
        if not isinstance(emb, nn.Embedding):
            raise NotImplementedError(f"{type(self).__name__} has no movie_emb table")
        return emb.weight

    def all_user_reprs(self) -> torch.Tensor:
        """Representations of every training user, ``(n_users, R)``."""
        n = self.n_users
        return self.user_repr(torch.arange(n))

    @property
    def n_users(self) -> int:
        raise NotImplementedError

    def set_generator(self, generator: torch.Generator | None) -> None:
        """Give every :class:`GenDropout` layer its generator."""
        for m in self.modules():
            if isinstance(m, GenDropout):
                m.generator = generator


def init_weights(net: nn.Module, generator: torch.Generator, emb_std: float) -> None:
    """Re-initialise every embedding (normal, ``emb_std``) and linear layer (Xavier
    uniform, zero bias) from ``generator``, so the same seed gives the same net."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, 0.0, emb_std, generator=generator)
            elif isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight, generator=generator)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)


# ------------------------------------------------------------ shared base


def query_seed(query: Query) -> int:
    """A deterministic seed from a query's content (same query, same fold-in)."""
    h = hashlib.blake2b(digest_size=8)
    h.update(np.ascontiguousarray(query.movies).tobytes())
    h.update(np.ascontiguousarray(query.feedback).tobytes())
    return int.from_bytes(h.digest(), "little")


class PairRecommender(Recommender):
    """Base of the embedding models: training glue, scoring, fold-in and state.

    Subclasses provide ``_build_net`` (a fresh :class:`PairNet` for the
    vocabularies), ``_output_score`` (net output -> score / rating, ``(N,)``),
    ``_fold_targets`` (per query: movies, targets, weights) and ``_fold_loss``.
    Their ``Config`` must carry the fields used here: ``fold_steps``,
    ``fold_lr``, ``fold_l2``, ``epochs``, ``batch_size``, ``lr``,
    ``weight_decay``, ``patience``, ``threads``, ``progress``.
    """

    name: ClassVar[str] = "pair"
    _net: PairNet | None = None
    #: chunk size for scoring many pairs
    score_chunk_pairs: ClassVar[int] = SCORE_CHUNK_PAIRS

    # ----------------------------------------------------------------- hooks
    @abstractmethod
    def _build_net(self) -> PairNet:
        """A fresh network for the current vocabularies and config."""

    @abstractmethod
    def _output_score(self, out: torch.Tensor) -> torch.Tensor:
        """Network output -> one float per pair ``(N,)`` (a rating or a logit)."""

    @abstractmethod
    def _fold_targets(self, query: Query) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Movies ``(n,)`` int64, targets ``(n,)`` float32, weights ``(n,)`` float32 to fold ``query`` in."""

    @abstractmethod
    def _fold_loss(self, out: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Summed (not averaged, so rows stay independent) fold-in loss."""

    def _extra_state(self) -> dict[str, np.ndarray]:
        return {}

    def _load_extra_state(self, state: dict[str, np.ndarray]) -> None:
        return None

    # -------------------------------------------------------------- helpers
    @property
    def net(self) -> PairNet:
        if self._net is None:
            raise NotFittedError(f"{self.name}: fit or load the model first")
        return self._net

    def _train_config(self, **overrides: Any) -> TrainConfig:
        train: TrainConfig = self.config.train
        return dataclasses.replace(train, **overrides) if overrides else train

    def _run_training(
        self,
        net: PairNet,
        batches: Any,
        loss_fn: Any,
        generator: torch.Generator,
        n_batches: int,
        validate: Any | None,
        higher_is_better: bool,
        rng: np.random.Generator | None = None,
        **train_overrides: Any,
    ) -> list[dict[str, float]]:
        """Run :func:`train`; ``generator`` (and ``rng``, when batches draw from it) are
        checkpointed with the weights so a resumed run draws what an uninterrupted one would."""
        net.set_generator(generator)
        try:
            history = train(
                net,
                batches,
                loss_fn,
                self._train_config(**train_overrides),
                validate=validate,
                higher_is_better=higher_is_better,
                n_batches=n_batches,
                name=self.name,
                generators=(generator,) if rng is None else (generator, rng),
            )
        finally:
            net.set_generator(None)
        return history

    def _score_reprs(self, urep: torch.Tensor) -> np.ndarray:
        """Scores of every movie for user representations ``(B, R)`` -> float32 ``(B, n_movies)``."""
        net = self.net
        n = self.n_movies
        b = urep.shape[0]
        out = np.empty((b, n), np.float32)
        if b == 0 or n == 0:
            return out
        movies = torch.arange(n)
        rows = max(1, self.score_chunk_pairs // n)
        net.eval()
        with torch.no_grad():
            for s in range(0, b, rows):
                r = urep[s : s + rows]
                c = r.shape[0]
                o = self._output_score(net.forward_repr(r.repeat_interleave(n, 0), movies.repeat(c)))
                out[s : s + c] = o.reshape(c, n).numpy()
        return out

    def _pairs(self, users: np.ndarray, movies: np.ndarray) -> torch.Tensor:
        """Outputs for user / movie *index* pairs (chunked), as :meth:`_output_score` gives them."""
        net = self.net
        u = torch.as_tensor(np.asarray(users, np.int64).ravel())
        m = torch.as_tensor(np.asarray(movies, np.int64).ravel())
        if u.shape != m.shape:
            raise ValueError(f"users and movies must have the same length, got {u.shape[0]} and {m.shape[0]}")
        self._check_indices(u, m)
        net.eval()
        parts = []
        with torch.no_grad():
            for s in range(0, u.shape[0], self.score_chunk_pairs):
                parts.append(net(u[s : s + self.score_chunk_pairs], m[s : s + self.score_chunk_pairs]))
        return torch.cat(parts) if parts else torch.zeros(0)

    def _check_indices(self, u: torch.Tensor, m: torch.Tensor) -> None:
        n_users = self.net.n_users
        if u.numel() and (int(u.min()) < 0 or int(u.max()) >= n_users):
            raise IndexError(f"user index out of range 0..{n_users - 1}")
        if m.numel() and (int(m.min()) < 0 or int(m.max()) >= self.n_movies):
            raise IndexError(f"movie index out of range 0..{self.n_movies - 1}")

    def movie_embeddings(self) -> np.ndarray:
        """The network's movie embedding table(s), float32 ``(n_movies, D)`` (a copy; see
        :meth:`PairNet.movie_vectors`)."""
        self._check_fitted()
        with torch.no_grad():
            w = self.net.movie_vectors()
        return w.detach().cpu().numpy().astype(np.float32)

    # -------------------------------------------------------------- scoring
    def score_users(self, users: np.ndarray) -> np.ndarray:
        """Scores ``(B, n_movies)`` float32 of known user *indices* ``(B,)`` from their learned embeddings."""
        u = torch.as_tensor(np.asarray(users, np.int64).ravel())
        self._check_indices(u, torch.zeros(0, dtype=torch.int64))
        with torch.no_grad():
            urep = self.net.user_repr(u)
        return self._score_reprs(urep)

    def score(self, queries: Sequence[Query]) -> np.ndarray:
        """Scores ``(len(queries), n_movies)`` float32: learned embedding for a known
        ``user``, a folded-in user vector for a session, NaN for an empty query."""
        self._check_fitted()
        net = self.net
        queries = list(queries)
        for q in queries:
            q.check(self.n_movies, self.n_tags)
        out = np.full((len(queries), self.n_movies), np.nan, np.float32)
        known = [i for i, q in enumerate(queries) if q.user is not None and 0 <= q.user < net.n_users]
        known_set = set(known)
        new = [i for i, q in enumerate(queries) if i not in known_set and q.movies.size]
        if known:
            out[known] = self.score_users(np.array([queries[i].user for i in known], np.int64))
        if new:
            out[new] = self._score_reprs(self.fold_in([queries[i] for i in new]))
        return out

    def fold_in(self, queries: Sequence[Query]) -> torch.Tensor:
        """User representations ``(len(queries), R)`` fitted to each query's movies.

        ``fold_steps`` Adam steps (rate ``fold_lr``) on the summed fold-in loss
        plus ``fold_l2 * ||r - mean||^2``, network frozen; each row depends
        only on its own query.
        """
        net = self.net
        net.eval()
        parts = [self._fold_targets(q) for q in queries]
        row = torch.as_tensor(np.repeat(np.arange(len(parts)), [p[0].size for p in parts]))
        movies = torch.as_tensor(np.concatenate([p[0] for p in parts]).astype(np.int64))
        target = torch.as_tensor(np.concatenate([p[1] for p in parts]).astype(np.float32))
        weight = torch.as_tensor(np.concatenate([p[2] for p in parts]).astype(np.float32))
        with torch.no_grad():
            mean = net.all_user_reprs().mean(0, keepdim=True)
        urep = mean.repeat(len(parts), 1).clone().requires_grad_(True)
        opt = torch.optim.Adam([urep], lr=self.config.fold_lr)
        for _ in range(self.config.fold_steps):
            out = net.forward_repr(urep[row], movies)
            loss = self._fold_loss(out, target, weight) + self.config.fold_l2 * ((urep - mean) ** 2).sum()
            (grad,) = torch.autograd.grad(loss, urep)
            urep.grad = grad
            opt.step()
        return urep.detach()

    # ----------------------------------------------------------- persistence
    def state(self) -> dict[str, np.ndarray]:
        state = {f"net.{k}": v.detach().cpu().numpy().copy() for k, v in self.net.state_dict().items()}
        state.update(self._extra_state())
        return state

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self._load_extra_state(state)
        net = self._build_net()
        weights = {k[4:]: torch.from_numpy(np.array(v)) for k, v in state.items() if k.startswith("net.")}
        net.load_state_dict(weights)
        net.eval()
        self._net = net
