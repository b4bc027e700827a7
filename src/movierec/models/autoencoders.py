"""Variational autoencoders over a person's set of movies, for top-N recommendation.

* :class:`MultVAE` (``multvae``): Liang et al., "Variational Autoencoders for Collaborative
  Filtering" (WWW 2018). The L2-normalised binary row of a user (input dropout while
  training) is encoded to a Gaussian ``q(z|x)``; a decoder gives logits over every movie,
  trained by the multinomial log-likelihood of the row plus ``beta`` times the KL divergence
  to ``N(0, I)``, with ``beta`` annealed linearly from 0.
* :class:`RecVAE` (``recvae``): Shenbin et al., "RecVAE: a New Variational Autoencoder for
  Top-N Recommendations with Implicit Feedback" (WSDM 2020). A deeper encoder (densely
  connected layers with layer norm and swish), a composite prior (a mixture of ``N(0, I)``,
  the posterior of the encoder as it was after the previous epoch, and a wide Gaussian), a
  KL weight proportional to the row's number of movies (``gamma * |x|``), and alternating
  updates: ``enc_epochs`` passes training the encoder, then one pass training the decoder.

Both fold a new session in as they score a known user: the session's liked and seen movies
are the input row, so the page can serve them; a disliked movie pushes down what a row of
the dislikes alone would predict (``dislike_weight``). Scores are the decoder's
log-probabilities at the posterior mean (no sampling). Training runs on
the one loop (:func:`movierec.models.trainer.train`); with ``valid`` it stops early on the
validation metric ``fit`` is handed, over full rankings with training movies excluded.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from torch.nn import functional as F

from movierec.data.dataset import Dataset
from movierec.models.base import DISLIKE, NotFittedError, Query, Recommender
from movierec.models.knn import query_matrix
from movierec.models.pairs import init_weights
from movierec.models.trainer import TrainConfig, local_batch_size, shuffled_batches, torch_generator, train
from movierec.topn import top_n

__all__ = ["MultVAE", "MultVAEConfig", "RecVAE", "RecVAEConfig"]

#: rows scored at once (a dense ``(rows, n_movies)`` block)
_SCORE_ROWS = 512


def _dense_rows(x: sp.csr_matrix, rows: np.ndarray) -> torch.Tensor:
    """Rows ``rows`` of the CSR matrix ``x`` as a dense float32 tensor ``(len(rows), n_movies)``."""
    return torch.from_numpy(np.asarray(x[rows].toarray(), np.float32))


def _binary(x: sp.csr_matrix) -> sp.csr_matrix:
    """A float32 copy of ``x`` with every stored entry 1 (who has which movie)."""
    out = x.astype(np.float32)
    out.data[:] = 1.0
    return out


def _normalise(x: torch.Tensor) -> torch.Tensor:
    """Rows of ``x`` ``(B, n)`` scaled to unit L2 norm (an all-zero row stays zero)."""
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _drop(x: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Inverted dropout of ``x`` with keep probability ``1 - p``, drawn from ``generator``."""
    if p <= 0.0:
        return x
    keep = torch.rand(x.shape, generator=generator) >= p
    return x * keep / (1.0 - p)


def _gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(z; mu, exp(logvar)), same shape as ``z``."""
    return -0.5 * (logvar + np.log(2 * np.pi) + (z - mu) ** 2 / logvar.exp())


# --------------------------------------------------------------------- Mult-VAE


@dataclass
class MultVAEConfig:
    """Settings of :class:`MultVAE` (``n -> hidden -> latent -> hidden -> n``).

    ``hidden``, ``latent``, ``beta``, ``lr``, ``batch_size`` and ``epochs`` are the best of a
    random search (``benchmarks/tune_deep.py --models multvae --trials 9``, seed 0,
    2026-12-08) on ml-latest-small's ``topn`` protocol: its training part, a per-user 20 %
    of it held out, full-ranking NDCG@10 [95 % bootstrap CI], early-stopped::

        hidden latent dropout beta    lr  batch  NDCG@10               best epoch
           300    100     0.5  0.5  1e-3     16  0.191 [0.177, 0.205]  29  chosen
           600    200     0.5  0.2  1e-3     16  0.187                 27
           300    100     0.3  0.5  1e-3     16  0.187                 23
           600    200     0.5  0.2  1e-3     64  0.184                 30  (the paper's)
        (ease, same split: 0.218)
    """

    #: width of the encoder's and the decoder's hidden layer
    hidden: int = 300
    #: size of the latent code z
    latent: int = 100
    #: dropout on the (normalised) input row while training
    dropout: float = 0.5
    #: the KL weight's ceiling (the paper's best "anneal cap" on ML-20M is 0.2)
    beta: float = 0.5
    #: optimiser steps over which the KL weight rises linearly from 0 to ``beta``
    anneal_steps: int = 2000
    #: weight of the dislikes' own (centred) log-probabilities, subtracted from a session's scores
    dislike_weight: float = 0.5
    #: users of ``valid`` ranked for early stopping (all of them when fewer)
    valid_users: int = 2000
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(epochs=29, batch_size=16, lr=1e-3, patience=10, clip_norm=0.0)
    )


class _MultVAENet(nn.Module):
    def __init__(self, n_movies: int, hidden: int, latent: int, dropout: float) -> None:
        super().__init__()
        self.encoder = nn.Linear(n_movies, hidden)
        self.code = nn.Linear(hidden, 2 * latent)
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.Tanh(), nn.Linear(hidden, n_movies))
        self.dropout = dropout
        self.generator: torch.Generator | None = None

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = _normalise(x)
        if self.training:
            h = _drop(h, self.dropout, self.generator)
        mu, logvar = self.code(torch.tanh(self.encoder(h))).chunk(2, dim=1)
        return mu, logvar

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits ``(B, n_movies)``, and the posterior's mean and log variance ``(B, latent)``."""
        mu, logvar = self.encode(x)
        z = mu
        if self.training:
            z = mu + torch.randn(mu.shape, generator=self.generator) * (0.5 * logvar).exp()
        return self.decoder(z), mu, logvar


# ----------------------------------------------------------------------- RecVAE


@dataclass
class RecVAEConfig:
    """Settings of :class:`RecVAE` (the paper's: 600 hidden, 200 latent, gamma 0.005).

    ``hidden``, ``lr``, ``batch_size`` and ``epochs`` are the best of a random search
    (``benchmarks/tune_deep.py --models recvae --trials 7``, seed 0, 2026-12-08), as for
    :class:`MultVAEConfig`::

        hidden latent dropout  gamma    lr  batch  NDCG@10               best epoch
           300    200     0.5  0.005  5e-4     64  0.196 [0.182, 0.209]  15  chosen
           600    200     0.5  0.005  5e-4     64  0.193                 23  (the paper's)
           300    200     0.3  0.002  2e-4     16  0.192                 11
           600     50     0.5  0.005  5e-4     64  0.191                 20
        (ease, same split: 0.218)
    """

    #: width of the encoder's five dense layers
    hidden: int = 300
    #: size of the latent code z
    latent: int = 200
    #: dropout on the (normalised) input row in the encoder's passes
    dropout: float = 0.5
    #: the KL weight per movie of the row: beta = gamma * |x|
    gamma: float = 0.005
    #: encoder passes over the users per decoder pass (one trainer epoch holds both)
    enc_epochs: int = 3
    #: mixture weights of the composite prior: N(0, I), the previous epoch's posterior, a wide N(0, e^10)
    prior_mix: tuple[float, float, float] = (0.15, 0.75, 0.1)
    #: weight of the dislikes' own (centred) log-probabilities, subtracted from a session's scores
    dislike_weight: float = 0.5
    #: users of ``valid`` ranked for early stopping (all of them when fewer)
    valid_users: int = 2000
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(epochs=15, batch_size=64, lr=5e-4, patience=5, clip_norm=0.0)
    )


class _RecVAEEncoder(nn.Module):
    """Five dense layers (each sees the sum of all before it), layer norm and swish."""

    def __init__(self, n_movies: int, hidden: int, latent: int) -> None:
        super().__init__()
        self.inp = nn.Linear(n_movies, hidden)
        self.layers = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(4))
        self.norms = nn.ModuleList(nn.LayerNorm(hidden, eps=0.1) for _ in range(5))
        self.code = nn.Linear(hidden, 2 * latent)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.norms[0](F.silu(self.inp(x)))
        total = h
        for layer, norm in zip(self.layers, self.norms[1:], strict=True):
            h = norm(F.silu(layer(h) + total))
            total = total + h
        mu, logvar = self.code(h).chunk(2, dim=1)
        return mu, logvar


class _RecVAENet(nn.Module):
    def __init__(self, n_movies: int, hidden: int, latent: int, config: RecVAEConfig) -> None:
        super().__init__()
        self.encoder = _RecVAEEncoder(n_movies, hidden, latent)
        self.decoder = nn.Linear(latent, n_movies)
        #: the encoder as it was after the previous epoch (the composite prior's middle part)
        self.prior_encoder = _RecVAEEncoder(n_movies, hidden, latent)
        self.prior_encoder.load_state_dict(self.encoder.state_dict())
        self.prior_encoder.requires_grad_(False)
        self.config = config
        self.generator: torch.Generator | None = None

    def encode(self, x: torch.Tensor, dropout: float) -> tuple[torch.Tensor, torch.Tensor]:
        h = _normalise(x)
        if self.training:
            h = _drop(h, dropout, self.generator)
        return self.encoder(h)

    def log_prior(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Log density of ``z`` ``(B, latent)`` under the composite prior of rows ``x``, ``(B,)``."""
        with torch.no_grad():
            mu_old, logvar_old = self.prior_encoder(_normalise(x))
        zeros = torch.zeros_like(z)
        parts = (
            _gaussian_log_density(z, zeros, zeros),
            _gaussian_log_density(z, mu_old, logvar_old),
            _gaussian_log_density(z, zeros, zeros + 10.0),
        )
        weights = self.config.prior_mix
        stacked = torch.stack([g + float(np.log(w)) for g, w in zip(parts, weights, strict=True)], -1)
        return torch.logsumexp(stacked, -1).sum(-1)

    def forward(self, x: torch.Tensor, phase: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(B, n_movies)`` and the loss's KL term per row ``(B,)``.

        ``phase`` 1: an encoder step (input dropout; the decoder's weights are used but get
        no gradient), 2: a decoder step (no dropout; the encoder gets no gradient), 0: scoring.
        """
        if phase == 0:
            mu, _ = self.encode(x, 0.0)
            return self.decoder(mu), torch.zeros(x.shape[0])
        if phase == 2:
            with torch.no_grad():
                mu, logvar = self.encode(x, 0.0)
                z = mu + torch.randn(mu.shape, generator=self.generator) * (0.5 * logvar).exp()
            return self.decoder(z), torch.zeros(x.shape[0])
        mu, logvar = self.encode(x, self.config.dropout)
        z = mu + torch.randn(mu.shape, generator=self.generator) * (0.5 * logvar).exp()
        kl = _gaussian_log_density(z, mu, logvar).sum(-1) - self.log_prior(x, z)
        logits = F.linear(z, self.decoder.weight.detach(), self.decoder.bias.detach())
        return logits, kl

    def update_prior(self) -> None:
        self.prior_encoder.load_state_dict(self.encoder.state_dict())


# ------------------------------------------------------------------ recommenders


class _AutoencoderBase(Recommender):
    """Training glue, scoring and state of the user autoencoders.

    Subclasses give ``_build_net``, ``_batches`` (one trainer epoch's batches) and ``_loss``.
    """

    name: ClassVar[str] = "autoencoder"
    _net: nn.Module | None = None

    def _build_net(self) -> nn.Module:
        raise NotImplementedError

    def _batches(self, net: nn.Module, x: sp.csr_matrix, epoch: int, g: torch.Generator) -> Iterator[Any]:
        raise NotImplementedError

    def _loss(self, net: nn.Module, batch: Any) -> torch.Tensor:
        raise NotImplementedError

    def _init_weights(self, net: nn.Module, g: torch.Generator) -> None:
        """Every weight of a fresh ``net`` drawn from ``g``."""
        init_weights(net, g, emb_std=0.0)

    def _n_batches(self, n_users: int) -> int:
        return -(-n_users // local_batch_size(self.config.train.batch_size))

    @property
    def net(self) -> nn.Module:
        if self._net is None:
            raise NotFittedError(f"{self.name}: fit or load the model first")
        return self._net

    def _fit(self, data: Dataset, rng: np.random.Generator, valid: Dataset | None) -> None:
        c = self.config
        if c.hidden < 1 or c.latent < 1 or not 0.0 <= c.dropout < 1.0 or c.dislike_weight < 0:
            raise ValueError(f"invalid {type(self).__name__} settings: {c}")
        x = _binary(data.interactions())
        g = torch_generator(rng)
        net = self._build_net()
        self._init_weights(net, g)
        net.generator = g  # type: ignore[assignment]
        validate = self._validator(data, valid, net) if valid is not None and valid.n_ratings else None
        try:
            self.fit_info.history = train(
                net,
                lambda epoch: self._batches(net, x, epoch, g),
                self._loss,
                c.train,
                validate=validate,
                n_batches=self._n_batches(x.shape[0]),
                name=self.name,
                generators=(g,),
            )
        finally:
            net.generator = None  # type: ignore[assignment]
        self.fit_info.epochs = len(self.fit_info.history)
        net.eval()
        self._net = net

    def _validator(self, data: Dataset, valid: Dataset, net: nn.Module) -> Any:
        users = np.unique(valid.user).astype(np.int64)[: self.config.valid_users]
        train_m = data.interactions()[users]
        inputs = _binary(train_m)
        relevant = valid.interactions()[users]
        metric = self.valid_metric

        def ranking(_: nn.Module) -> float:
            scores = self._forward_rows(net, inputs)
            return metric(top_n(scores, metric.k, exclude=train_m)[0], relevant)

        return ranking

    def _forward_rows(self, net: nn.Module, x: sp.csr_matrix) -> np.ndarray:
        """Logits ``(n_rows, n_movies)`` float32 of the input rows ``x`` (posterior means)."""
        out = np.empty(x.shape, np.float32)
        was_training = net.training
        net.eval()
        with torch.no_grad():
            for s in range(0, x.shape[0], _SCORE_ROWS):
                rows = np.arange(s, min(s + _SCORE_ROWS, x.shape[0]))
                out[rows] = net(_dense_rows(x, rows))[0].numpy()
        net.train(was_training)
        return out

    def score(self, queries: Sequence[Query]) -> np.ndarray:
        """Scores ``(len(queries), n_movies)`` float32: the log-probabilities the decoder gives
        each movie from the query's liked and seen movies (a known user with no movies: their
        training row), minus ``dislike_weight`` times the centred log-probabilities from its
        disliked movies alone (so the neighbours of a disliked movie fall); NaN for a query
        with no movies."""
        self._check_fitted()
        net = self.net
        queries = list(queries)
        for q in queries:
            q.check(self.n_movies, self.n_tags)
        liked = query_matrix(queries, self.n_movies, self._train, 0.0)
        liked.eliminate_zeros()
        out = torch.log_softmax(torch.from_numpy(self._forward_rows(net, liked)), 1).numpy()
        has_dislikes = [i for i, q in enumerate(queries) if (q.feedback == DISLIKE).any()]
        if has_dislikes and self.config.dislike_weight > 0:
            rows = [queries[i].disliked for i in has_dislikes]
            disliked = sp.csr_matrix(
                (
                    np.ones(sum(r.size for r in rows), np.float32),
                    np.concatenate(rows),
                    np.concatenate([[0], np.cumsum([r.size for r in rows])]),
                ),
                shape=(len(rows), self.n_movies),
            )
            push = torch.log_softmax(torch.from_numpy(self._forward_rows(net, disliked)), 1).numpy()
            out[has_dislikes] -= self.config.dislike_weight * (push - push.mean(1, keepdims=True))
        out[np.diff(liked.indptr) + np.array([q.disliked.size for q in queries]) == 0] = np.nan
        return out

    def score_users(self, users: np.ndarray) -> np.ndarray:
        """Logits ``(B, n_movies)`` float32 from known user *indices*' ``(B,)`` training rows."""
        if self._train is None:
            raise NotFittedError(f"{self.name}: fit or load the model first")
        u = np.asarray(users, np.int64).ravel()
        if u.size and (u.min() < 0 or u.max() >= self._train.shape[0]):
            raise IndexError(f"user index out of range 0..{self._train.shape[0] - 1}")
        return self._forward_rows(self.net, _binary(self._train[u]))

    def movie_embeddings(self) -> np.ndarray:
        """Each movie's row of the decoder's last layer, float32 ``(n_movies, width)``: the
        output vectors its logits are the dot products with."""
        self._check_fitted()
        net = self.net
        last = net.decoder[-1] if isinstance(net.decoder, nn.Sequential) else net.decoder
        return last.weight.detach().numpy().astype(np.float32).copy()  # type: ignore[union-attr,operator]

    def state(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy().copy() for k, v in self.net.state_dict().items()}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        net = self._build_net()
        missing = set(net.state_dict()) - set(state)
        if missing:
            raise ValueError(f"{self.name}: weights lack {sorted(missing)[:3]}")
        net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
        net.eval()
        self._net = net


class MultVAE(_AutoencoderBase):
    """Mult-VAE (``multvae``); see the module docstring."""

    name = "multvae"
    Config = MultVAEConfig

    def _build_net(self) -> nn.Module:
        c = self.config
        return _MultVAENet(self.n_movies, c.hidden, c.latent, c.dropout)

    def _batches(self, net: nn.Module, x: sp.csr_matrix, epoch: int, g: torch.Generator) -> Iterator[Any]:
        c = self.config
        n_batches = self._n_batches(x.shape[0])
        for i, rows in enumerate(shuffled_batches(x.shape[0], local_batch_size(c.train.batch_size), g)):
            step = epoch * n_batches + i
            beta = c.beta * min(1.0, step / c.anneal_steps) if c.anneal_steps > 0 else c.beta
            yield _dense_rows(x, rows.numpy()), beta

    def _loss(self, net: nn.Module, batch: Any) -> torch.Tensor:
        x, beta = batch
        logits, mu, logvar = net(x)
        nll = -(F.log_softmax(logits, 1) * x).sum(1).mean()
        kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)).mean()
        return nll + beta * kl


class RecVAE(_AutoencoderBase):
    """RecVAE (``recvae``); see the module docstring."""

    name = "recvae"
    Config = RecVAEConfig

    def _build_net(self) -> nn.Module:
        c = self.config
        if len(c.prior_mix) != 3 or min(c.prior_mix) <= 0:
            raise ValueError(f"RecVAEConfig.prior_mix needs three positive weights, got {c.prior_mix}")
        return _RecVAENet(self.n_movies, c.hidden, c.latent, copy.deepcopy(c))

    def _init_weights(self, net: nn.Module, g: torch.Generator) -> None:
        super()._init_weights(net, g)
        if isinstance(net, _RecVAENet):
            net.update_prior()  # the prior starts as the freshly drawn encoder

    def _n_batches(self, n_users: int) -> int:
        return (self.config.enc_epochs + 1) * super()._n_batches(n_users)

    def _batches(self, net: nn.Module, x: sp.csr_matrix, epoch: int, g: torch.Generator) -> Iterator[Any]:
        c = self.config
        size = local_batch_size(c.train.batch_size)
        if epoch > 0 and isinstance(net, _RecVAENet):
            net.update_prior()
        for phase in [1] * c.enc_epochs + [2]:
            for rows in shuffled_batches(x.shape[0], size, g):
                yield _dense_rows(x, rows.numpy()), phase

    def _loss(self, net: nn.Module, batch: Any) -> torch.Tensor:
        x, phase = batch
        logits, kl = net(x, phase)
        nll = -(F.log_softmax(logits, 1) * x).sum(1)
        beta = self.config.gamma * x.sum(1)
        return (nll + beta * kl).mean()
