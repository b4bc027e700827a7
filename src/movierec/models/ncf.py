"""Neural Collaborative Filtering (He et al., 2017) for top-N recommendation.

* :class:`GMF` (``gmf``): element-wise product of user and movie embeddings,
  weighted by a learned output vector.
* :class:`NCFMLP` (``mlp``): an MLP tower over concatenated user and movie embeddings.
* :class:`NeuMF` (``neumf``): separate GMF and MLP embeddings, the two last
  layers concatenated into one output; by default initialised from a GMF and
  an MLP trained first (``pretrain=True``, as the paper recommends).

Training is on implicit feedback: every rating (at or above ``min_rating``)
is a positive; each epoch draws ``negatives`` movies per positive uniformly
from the movies the user never rated (vectorised rejection sampling); the
loss is binary cross-entropy on the logits. ``explicit=True`` trains the same
networks on the ratings with MSE instead (then :meth:`predict` works).

Early stopping uses the validation metric ``fit`` is handed (NDCG@10 unless told
otherwise) of a full ranking (training movies excluded) of up to ``valid_users`` users of
``valid`` (RMSE in explicit mode).

New sessions are folded in (see :mod:`movierec.models.rating_mlp`): a user
vector is fitted by a few Adam steps with the network frozen, liked and seen
movies as positives, disliked movies and ``fold_negatives`` deterministic
samples per positive as negatives.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from movierec.data.dataset import Dataset
from movierec.models.base import DISLIKE, Query, Recommender
from movierec.models.pairs import GenDropout, PairNet, PairRecommender, init_weights, query_seed
from movierec.models.trainer import TrainConfig, local_batch_size, shuffled_batches, torch_generator
from movierec.topn import top_n

__all__ = ["GMF", "NCFMLP", "NCFConfig", "NeuMF", "sample_negatives"]


def sample_negatives(
    users: np.ndarray,
    n_movies: int,
    interacted: np.ndarray,
    rng: np.random.Generator,
    *,
    max_rounds: int = 30,
) -> np.ndarray:
    """One uniformly drawn movie index per entry of ``users`` that the user never rated.

    Parameters
    ----------
    users:
        User *indices* ``(n,)`` int64.
    n_movies:
        Size of the movie vocabulary.
    interacted:
        Sorted unique keys ``user * n_movies + movie`` (int64) of every rated pair.
    rng:
        Source of randomness.
    max_rounds:
        Rejection rounds; a draw still colliding after them is kept (only for
        users who rated nearly every movie).

    Returns
    -------
    Movie indices ``(n,)`` int64.
    """
    users = np.asarray(users, np.int64)
    neg = rng.integers(0, n_movies, users.size)
    todo = np.arange(users.size)
    for _ in range(max_rounds):
        keys = users[todo] * n_movies + neg[todo]
        pos = np.searchsorted(interacted, keys)
        hit = (pos < interacted.size) & (interacted[np.minimum(pos, interacted.size - 1)] == keys)
        todo = todo[hit]
        if todo.size == 0:
            break
        neg[todo] = rng.integers(0, n_movies, todo.size)
    return neg


@dataclass
class NCFConfig:
    """Settings of the NCF models.

    The defaults of ``factors``, ``mlp_layers``, ``dropout``, ``weight_decay``,
    ``negatives``, ``lr`` and ``epochs`` are the best of a small random search
    (``benchmarks/tune_deep.py --models neumf --trials 6``, seed 0, 2026-11-23)
    for ``neumf`` on ml-latest-small: ``topn`` protocol's training part, a
    per-user 20 % of it held out for validation, full-ranking NDCG@10::

        factors dropout   wd  neg    lr  epochs  NDCG@10 [95 % bootstrap CI]
              8     0.2 0.01    8  5e-3       8  0.159 [0.146, 0.172]  chosen
             32     0.0 0.0     4  5e-3      10  0.149 [0.138, 0.162]  old defaults
              8     0.0 0.0     2  5e-3       8  0.135 [0.123, 0.148]
             16     0.0 0.1     2  5e-3       5  0.132 [0.120, 0.144]
             16     0.0 0.0     2  2e-3       8  0.131 [0.118, 0.144]
             16     0.2 0.0     2  5e-3       3  0.119 [0.108, 0.131]

    (``mlp_layers`` follows ``factors`` as ``(2f, f, f/2)``.) More negatives
    helped most; the chosen settings also fit faster than the old defaults
    (70 s vs 109 s with pre-training, 1 thread). Only six trials: treat the
    margin over the old defaults as suggestive (their CIs overlap); a seventh
    trial (64 factors, 8 negatives) was stopped at the 3-minute limit per run.
    """

    #: GMF embedding size (predictive factors of GMF)
    factors: int = 8
    #: MLP tower widths; the first is the concatenated embedding width (half user, half movie)
    mlp_layers: tuple[int, ...] = (16, 8, 4)
    #: dropout after each MLP layer
    dropout: float = 0.2
    #: sampled negatives per positive, redrawn every epoch
    negatives: int = 8
    #: ratings at or above this count as positives (0: every rating)
    min_rating: float = 0.0
    #: train on explicit ratings with MSE instead of implicit feedback with BCE
    explicit: bool = False
    #: NeuMF only: initialise from a GMF and an MLP trained first
    pretrain: bool = True
    #: NeuMF only: weight of the GMF part in the fused output layer after pre-training
    alpha: float = 0.5
    #: NeuMF only: learning rate when fine-tuning a pre-trained NeuMF
    finetune_lr: float = 5e-4
    #: standard deviation of the initial embeddings
    init_std: float = 0.01
    #: training (``epochs``: per pre-training part and for fine-tuning in NeuMF; early stopping
    #: needs ``valid``)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(epochs=8, batch_size=4096, lr=5e-3, weight_decay=0.01, patience=2)
    )
    #: validation users ranked after each epoch (the first ones by index)
    valid_users: int = 1000
    #: Adam steps to fold a new session's user vector in
    fold_steps: int = 40
    #: learning rate of the fold-in steps
    fold_lr: float = 0.05
    #: L2 pull of a folded-in vector towards the mean user vector
    fold_l2: float = 0.01
    #: sampled negatives per positive when folding a session in
    fold_negatives: int = 20

    def __post_init__(self) -> None:
        self.mlp_layers = tuple(int(w) for w in self.mlp_layers)
        if not self.mlp_layers or self.mlp_layers[0] % 2:
            raise ValueError(f"mlp_layers must start with an even width, got {self.mlp_layers}")
        if self.negatives < 1:
            raise ValueError(f"negatives must be >= 1, got {self.negatives}")


# -------------------------------------------------------------------- nets


class _GMFNet(PairNet):
    def __init__(self, n_users: int, n_movies: int, factors: int) -> None:
        super().__init__()
        self.user_emb = nn.Embedding(n_users, factors)
        self.movie_emb = nn.Embedding(n_movies, factors)
        self.out = nn.Linear(factors, 1)

    @property
    def n_users(self) -> int:
        return int(self.user_emb.num_embeddings)

    def user_repr(self, users: torch.Tensor) -> torch.Tensor:
        return self.user_emb(users)

    def last(self, urep: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        return urep * self.movie_emb(movies)

    def forward_repr(self, urep: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        return self.out(self.last(urep, movies)).squeeze(-1)


def _tower(layers: tuple[int, ...], dropout: float) -> nn.Sequential:
    mods: list[nn.Module] = []
    for a, b in itertools.pairwise(layers):
        mods += [nn.Linear(a, b), nn.ReLU(), GenDropout(dropout)]
    return nn.Sequential(*mods)


class _MLPNet(PairNet):
    def __init__(self, n_users: int, n_movies: int, layers: tuple[int, ...], dropout: float) -> None:
        super().__init__()
        half = layers[0] // 2
        self.user_emb = nn.Embedding(n_users, half)
        self.movie_emb = nn.Embedding(n_movies, half)
        self.tower = _tower(layers, dropout)
        self.out = nn.Linear(layers[-1], 1)

    @property
    def n_users(self) -> int:
        return int(self.user_emb.num_embeddings)

    def user_repr(self, users: torch.Tensor) -> torch.Tensor:
        return self.user_emb(users)

    def last(self, urep: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        return self.tower(torch.cat([urep, self.movie_emb(movies)], dim=1))

    def forward_repr(self, urep: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        return self.out(self.last(urep, movies)).squeeze(-1)


class _NeuMFNet(PairNet):
    def __init__(
        self, n_users: int, n_movies: int, factors: int, layers: tuple[int, ...], dropout: float
    ) -> None:
        super().__init__()
        self.gmf = _GMFNet(n_users, n_movies, factors)
        self.mlp = _MLPNet(n_users, n_movies, layers, dropout)
        self.factors = factors
        self.out = nn.Linear(factors + layers[-1], 1)

    @property
    def n_users(self) -> int:
        return self.gmf.n_users

    def user_repr(self, users: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.gmf.user_repr(users), self.mlp.user_repr(users)], dim=1)

    def movie_vectors(self) -> torch.Tensor:
        """The GMF and the MLP movie embeddings side by side, ``(n_movies, factors + mlp_layers[0] // 2)``."""
        return torch.cat([self.gmf.movie_vectors(), self.mlp.movie_vectors()], dim=1)

    def forward_repr(self, urep: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        g = self.gmf.last(urep[:, : self.factors], movies)
        m = self.mlp.last(urep[:, self.factors :], movies)
        return self.out(torch.cat([g, m], dim=1)).squeeze(-1)


# ------------------------------------------------------------------ models


class _ExplicitRatings:
    """``supports_ratings`` of the NCF models: the instance's ``config.explicit``.

    A descriptor rather than a class attribute, because the same class ranks
    implicit feedback or predicts ratings depending on its config; read on the
    class it answers for the default config (``False``).
    """

    def __get__(self, obj: Recommender | None, owner: type | None = None) -> bool:
        return obj is not None and bool(obj.config.explicit)


class _NCFBase(PairRecommender):
    """Training (implicit with sampled negatives, or explicit), validation and fold-in."""

    Config = NCFConfig
    name: ClassVar[str] = "ncf"

    #: ``True`` per instance when configured with ``explicit=True`` (then :meth:`predict`
    #: gives ratings); ``False`` on the class, the default configuration's answer
    supports_ratings = _ExplicitRatings()

    def _output_score(self, out: torch.Tensor) -> torch.Tensor:
        return out

    # ---------------------------------------------------------------- fold-in
    def _fold_targets(self, query: Query) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = self.n_movies
        if self.config.explicit:
            assert self.scale is not None
            lo, hi = self.scale.low, self.scale.high
            target = query.ratings.astype(np.float32).copy()
            missing = np.isnan(target)
            target[missing] = np.where(
                query.feedback[missing] == DISLIKE, lo + 0.2 * (hi - lo), lo + 0.9 * (hi - lo)
            )
            return query.movies, target, np.ones(query.movies.size, np.float32)
        pos = query.movies[query.feedback != DISLIKE]
        dis = query.movies[query.feedback == DISLIKE]
        rng = np.random.default_rng(query_seed(query))
        k = self.config.fold_negatives * max(pos.size, 1)
        neg = rng.integers(0, n, k)
        neg = neg[~np.isin(neg, query.movies)]
        movies = np.concatenate([pos, dis, neg]).astype(np.int64)
        target = np.concatenate([np.ones(pos.size), np.zeros(dis.size + neg.size)]).astype(np.float32)
        # positives and (sampled) negatives weigh the same in total
        w_neg = pos.size / max(neg.size, 1) if pos.size else 1.0
        weight = np.concatenate([np.ones(pos.size + dis.size), np.full(neg.size, w_neg)]).astype(np.float32)
        return movies, target, weight

    def _fold_loss(self, out: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        if self.config.explicit:
            return (weight * (out - target) ** 2).sum()
        return F.binary_cross_entropy_with_logits(out, target, weight=weight, reduction="sum")

    def predict(self, users: np.ndarray, movies: np.ndarray) -> np.ndarray:
        """Predicted ratings ``(n,)`` float32 of user / movie *indices* ``(n,)``; only with ``explicit=True``."""
        self._check_fitted()
        if not self.config.explicit:
            raise NotImplementedError(f"{self.name} predicts ratings only when trained with explicit=True")
        assert self.scale is not None
        pred = self._pairs(users, movies).numpy()
        return np.clip(pred, self.scale.low, self.scale.high).astype(np.float32)

    def _extra_state(self) -> dict[str, np.ndarray]:
        return {"mu": np.array([self._mu], np.float32)}

    def _load_extra_state(self, state: dict[str, np.ndarray]) -> None:
        self._mu = float(state["mu"][0]) if "mu" in state else 0.0

    _mu: float = 0.0

    # --------------------------------------------------------------- training
    def _fit(self, data: Dataset, rng: np.random.Generator, valid: Dataset | None) -> None:
        if data.n_ratings == 0:
            raise ValueError(f"{self.name}: cannot fit on a data set without ratings")
        net, history = self._train_net(data, rng, valid)
        self._net = net
        self.fit_info.history = history
        self.fit_info.epochs = len(history)

    def _new_net(self, g: torch.Generator) -> PairNet:
        net = self._build_net()
        init_weights(net, g, self.config.init_std)
        return net

    def _train_net(
        self,
        data: Dataset,
        rng: np.random.Generator,
        valid: Dataset | None,
        net: PairNet | None = None,
        **train_overrides: Any,
    ) -> tuple[PairNet, list[dict[str, float]]]:
        """Train ``net`` (a fresh one if ``None``) on ``data``; returns it and the history."""
        c = self.config
        g = torch_generator(rng)
        self._mu = float(data.rating.mean())
        if net is None:
            net = self._new_net(g)
        n_movies = data.n_movies
        keep = data.rating >= c.min_rating
        pos_u = data.user[keep].astype(np.int64)
        pos_m = data.movie[keep].astype(np.int64)
        if pos_u.size == 0:
            raise ValueError(f"{self.name}: no rating reaches min_rating={c.min_rating}")
        interacted = np.unique(data.user.astype(np.int64) * n_movies + data.movie)
        bs = local_batch_size(c.train.batch_size)  # the global batch stays c.train.batch_size (trainer)

        if c.explicit:
            users = torch.as_tensor(data.user.astype(np.int64))
            movies = torch.as_tensor(data.movie.astype(np.int64))
            ratings = torch.as_tensor(data.rating.astype(np.float32) - self._mu)
            n_examples = data.n_ratings

            def batches(epoch: int) -> Iterator[tuple[torch.Tensor, ...]]:
                for idx in shuffled_batches(n_examples, bs, g):
                    yield users[idx], movies[idx], ratings[idx]

            def loss_fn(net: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
                u, m, r = batch
                return F.mse_loss(net(u, m), r)

        else:
            n_examples = pos_u.size * (1 + c.negatives)
            users = torch.as_tensor(np.concatenate([pos_u, np.repeat(pos_u, c.negatives)]))
            labels = torch.cat([torch.ones(pos_u.size), torch.zeros(pos_u.size * c.negatives)])
            pos_t = torch.as_tensor(pos_m)

            def batches(epoch: int) -> Iterator[tuple[torch.Tensor, ...]]:
                neg = sample_negatives(np.repeat(pos_u, c.negatives), n_movies, interacted, rng)
                movies = torch.cat([pos_t, torch.as_tensor(neg)])
                for idx in shuffled_batches(n_examples, bs, g):
                    yield users[idx], movies[idx], labels[idx]

            def loss_fn(net: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
                u, m, y = batch
                return F.binary_cross_entropy_with_logits(net(u, m), y)

        validate = self._validator(data, valid, net) if valid is not None and valid.n_ratings else None
        self._net = net
        history = self._run_training(
            net,
            batches,
            loss_fn,
            g,
            n_batches=-(-n_examples // bs),
            validate=validate,
            higher_is_better=not c.explicit,
            rng=rng,
            **train_overrides,
        )
        if c.explicit:
            # fold the mean into the output bias so the net predicts ratings directly
            with torch.no_grad():
                out = net.out
                assert isinstance(out, nn.Linear)
                bias = out.bias
                bias.add_(self._mu)
        return net, history

    def _validator(self, data: Dataset, valid: Dataset, net: PairNet) -> Any:
        c = self.config
        if c.explicit:
            vu = torch.as_tensor(valid.user.astype(np.int64))
            vm = torch.as_tensor(valid.movie.astype(np.int64))
            vr = valid.rating.astype(np.float64) - self._mu

            def rmse(_: nn.Module) -> float:
                return float(np.sqrt(np.mean((net(vu, vm).numpy() - vr) ** 2)))

            return rmse
        users = np.unique(valid.user).astype(np.int64)[: c.valid_users]
        train_m = data.interactions()[users]
        relevant = valid.interactions()[users]
        metric = self.valid_metric

        def ranking(_: nn.Module) -> float:
            with torch.no_grad():
                scores = self._score_reprs(net.user_repr(torch.as_tensor(users)))
            return metric(top_n(scores, metric.k, exclude=train_m)[0], relevant)

        return ranking


class GMF(_NCFBase):
    """Generalised matrix factorisation: ``h . (p_u * q_i) + b``."""

    name = "gmf"

    def _build_net(self) -> PairNet:
        assert self.users is not None and self.movies is not None
        return _GMFNet(len(self.users), len(self.movies), self.config.factors)


class NCFMLP(_NCFBase):
    """MLP tower over concatenated user and movie embeddings."""

    name = "mlp"

    def _build_net(self) -> PairNet:
        assert self.users is not None and self.movies is not None
        return _MLPNet(len(self.users), len(self.movies), self.config.mlp_layers, self.config.dropout)


class NeuMF(_NCFBase):
    """GMF and MLP with separate embeddings, fused at the output layer."""

    name = "neumf"

    def _build_net(self) -> PairNet:
        assert self.users is not None and self.movies is not None
        c = self.config
        return _NeuMFNet(len(self.users), len(self.movies), c.factors, c.mlp_layers, c.dropout)

    def _fit(self, data: Dataset, rng: np.random.Generator, valid: Dataset | None) -> None:
        if data.n_ratings == 0:
            raise ValueError(f"{self.name}: cannot fit on a data set without ratings")
        if not self.config.pretrain:
            super()._fit(data, rng, valid)
            return
        parts: dict[str, Any] = {}
        self._mu = float(data.rating.mean())  # the pre-trained parts' biases carry it (explicit mode)
        for cls in (GMF, NCFMLP):
            sub = cls(self.config)
            sub.users, sub.movies, sub.tags, sub.scale = self.users, self.movies, self.tags, self.scale
            sub._net, parts[cls.name] = sub._train_net(data, rng, valid)
            parts[cls.name + "_net"] = sub._net
        gmf_net, mlp_net = parts["gmf_net"], parts["mlp_net"]
        assert isinstance(gmf_net, _GMFNet) and isinstance(mlp_net, _MLPNet)
        net = self._build_net()
        assert isinstance(net, _NeuMFNet)
        a = self.config.alpha
        with torch.no_grad():
            net.gmf.load_state_dict(gmf_net.state_dict())
            net.mlp.load_state_dict(mlp_net.state_dict())
            net.out.weight.copy_(torch.cat([a * gmf_net.out.weight, (1 - a) * mlp_net.out.weight], dim=1))
            net.out.bias.copy_(a * gmf_net.out.bias + (1 - a) * mlp_net.out.bias)
            if self.config.explicit:  # both parts already carry the mean in their bias
                net.out.bias.sub_(self._mu)
        net_t, history = self._train_net(data, rng, valid, net=net, lr=self.config.finetune_lr)
        self._net = net_t
        self.fit_info.history = history
        self.fit_info.epochs = len(history)
        self.fit_info.extra["pretrain"] = {"gmf": parts["gmf"], "mlp": parts["mlp"]}
