"""I-AutoRec: an item-based autoencoder for rating prediction (Sedhain et al., WWW 2015).

Each movie is the vector of its ratings by every training user (``(n_users,)``, 0 where
unrated). The network encodes it, ``h_i = sigmoid(V r_i + mu)`` ``(hidden,)``, and decodes
``r_hat_i = W h_i + b`` ``(n_users,)``; training minimises the squared error on the observed
ratings only, plus ``l2 / 2 * (|W|^2 + |V|^2)``. User ``u``'s rating of movie ``i`` is
``W_u . h_i + b_u``: ``h_i`` is the movie's code, ``(W_u, b_u)`` a linear read-out per user.
With ``residual`` (the default) the network learns the residuals of a baseline
``mu + b_u + b_i`` instead, which is added back to every prediction.

A new session is folded in the way :class:`~movierec.models.mf.BiasedMF` folds one in: with
the movie codes fixed, the session's read-out ``(w, b)`` is the ridge solution over its
movies (its explicit rating where given, else the scale's top for a like, its bottom for a
dislike, the movie's mean prediction for "seen"), shrunk towards the users' mean read-out.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from movierec.data.dataset import Dataset
from movierec.models.base import NotFittedError, Query, Recommender
from movierec.models.mf import check_pairs, clip_to_scale, ridge_fold_in
from movierec.models.pairs import init_weights
from movierec.models.trainer import TrainConfig, local_batch_size, shuffled_batches, torch_generator, train

__all__ = ["AutoRec", "AutoRecConfig", "KernelLinear", "SparseFC", "SparseFCConfig"]


@dataclass
class AutoRecConfig:
    """Settings of :class:`AutoRec`.

    ``hidden``, ``l2``, ``dropout``, ``lr``, ``batch_size`` and ``epochs`` are the best of a
    random search (``benchmarks/tune_deep.py --models autorec --trials 14``, seed 0,
    2026-12-08) on ml-latest-small's ``rating`` protocol: its training part, a random 10 % of
    it held out, RMSE [95 % bootstrap CI], early-stopped (``epochs`` is the best epoch)::

        hidden  l2  dropout    lr  batch  RMSE                      best epoch
           100  30     0.5   3e-4     64  0.847 [0.831, 0.861]  76  chosen
           100  30     0.5   1e-3    128  0.849 [0.833, 0.864]  33
           100  10     0.5   3e-4    256  0.850 [0.833, 0.863] 108
           200  30     0.25  3e-4     64  0.851
           500  10     0     1e-4    128  0.862
           500   1     0     1e-3     64  0.877  (the paper's shape, no dropout)
        (mf, same split: 0.862)

    A second search around the winner on seed 1's validation part (the grid tune_deep.py
    holds now: widths 50-150, ``l2`` 20-50, dropout 0.4-0.7; 12 trials) found nothing better:
    the defaults 0.841, a 50-unit code 0.841, the rest 0.842-0.849.

    Input dropout (denoising) and a small code helped most; the paper's 500 units overfit
    this data in a few epochs. Learning residuals of the bias baseline took the paper's shape
    from 0.927 to 0.877.
    """

    #: width of the movie code h_i (and of every hidden layer)
    hidden: int = 100
    #: sigmoid layers between a movie's rating column and its code
    layers: int = 1
    #: > 0: kernel-sparsified layers (:class:`KernelLinear`) with this many kernel dimensions
    kernel_dim: int = 0
    #: penalty on the kernel's squared values (sparsity), with ``kernel_dim`` > 0
    kernel_l2: float = 0.0
    #: learn the residuals of the baseline ``mu + b_u + b_i`` (regularised means) instead of
    #: the raw ratings: a movie with few ratings then falls back to its baseline
    residual: bool = True
    #: shrinkage of the baseline's user and movie biases (a count added to the denominator);
    #: validation RMSE, seeds 0 / 1: 2 → 0.847 / 0.841, 5 → 0.846 / 0.840, 10 → 0.847 / 0.841,
    #: 25 → 0.849 / 0.842, 50 → 0.850 / 0.844
    bias_reg: float = 5.0
    #: share of a movie's observed ratings hidden from its input while training (they are
    #: still predicted: a denoising autoencoder); 0 trains on the full columns
    dropout: float = 0.5
    #: L2 penalty ``l2 / 2 * (|W|^2 + |V|^2)``, added to the summed squared error of an epoch
    l2: float = 30.0
    #: ridge penalty of a session's read-out (towards the users' mean), times the session's length
    fold_reg: float = 0.1
    #: ridge penalty of a session's bias (not scaled by its length)
    fold_bias_reg: float = 5.0
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(epochs=76, batch_size=64, lr=3e-4, patience=10, clip_norm=0.0)
    )


def baseline(
    user: np.ndarray,
    movie: np.ndarray,
    rating: np.ndarray,
    n_users: int,
    n_movies: int,
    reg: float,
    rounds: int = 3,
) -> tuple[float, np.ndarray, np.ndarray]:
    """``(mu, b_u (n_users,), b_i (n_movies,))``: the mean rating and biases as regularised means
    of the residuals (``reg`` added to each count), alternating movie and user ``rounds`` times.

    ``user``, ``movie``: *indices* ``(n,)`` int64; ``rating`` ``(n,)``.
    """
    r = np.asarray(rating, np.float64)
    mu = float(r.mean()) if r.size else 0.0
    bu, bi = np.zeros(n_users), np.zeros(n_movies)
    n_u = np.bincount(user, minlength=n_users) + reg
    n_i = np.bincount(movie, minlength=n_movies) + reg
    for _ in range(rounds):
        bi = np.bincount(movie, r - mu - bu[user], minlength=n_movies) / np.maximum(n_i, 1e-12)
        bu = np.bincount(user, r - mu - bi[movie], minlength=n_users) / np.maximum(n_u, 1e-12)
    return mu, bu, bi


class KernelLinear(nn.Module):
    """A linear layer whose weights are sparsified by a learned kernel (Muller et al., "Kernel
    based sparse weights", 2018, the local kernel of GLocal-K): ``W * max(0, 1 - |v_o - u_i|^2)``
    with a ``kernel_dim`` vector per input ``u_i`` and per output ``v_o``. Vectors start near
    zero, so the layer starts dense; the penalty on the kernel's values lets it thin out."""

    def __init__(self, n_in: int, n_out: int, kernel_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_out, n_in))
        self.bias = nn.Parameter(torch.zeros(n_out))
        self.u = nn.Parameter(torch.empty(n_in, kernel_dim))
        self.v = nn.Parameter(torch.empty(n_out, kernel_dim))
        self.in_features, self.out_features = n_in, n_out

    def init_from(self, generator: torch.Generator) -> None:
        with torch.no_grad():
            nn.init.xavier_uniform_(self.weight, generator=generator)
            nn.init.zeros_(self.bias)
            nn.init.normal_(self.u, 0.0, 1e-3, generator=generator)
            nn.init.normal_(self.v, 0.0, 1e-3, generator=generator)

    def kernel(self) -> torch.Tensor:
        """``(n_out, n_in)`` values in [0, 1]."""
        return (1.0 - torch.cdist(self.v, self.u).pow(2)).clamp_min(0.0)

    def effective_weight(self) -> torch.Tensor:
        return self.weight * self.kernel()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.effective_weight(), self.bias)


class _AutoRecNet(nn.Module):
    """``layers`` sigmoid layers from a movie's ``(n_users,)`` rating column down to its code,
    then a linear read-out back to every user; dense layers, or kernel-sparsified ones
    (``kernel_dim`` > 0)."""

    def __init__(self, n_users: int, hidden: int, layers: int, kernel_dim: int) -> None:
        super().__init__()
        widths = [n_users] + [hidden] * layers

        def layer(a: int, b: int) -> nn.Module:
            return KernelLinear(a, b, kernel_dim) if kernel_dim > 0 else nn.Linear(a, b)

        self.encoder = nn.ModuleList(layer(a, b) for a, b in itertools.pairwise(widths))
        self.decoder = layer(hidden, n_users)
        self.hidden = hidden

    def init_from(self, generator: torch.Generator) -> None:
        init_weights(self, generator, emb_std=0.0)
        for m in self.modules():
            if isinstance(m, KernelLinear):
                m.init_from(generator)

    def code(self, r: torch.Tensor) -> torch.Tensor:
        """Movie codes ``(B, hidden)`` of rating columns ``r`` ``(B, n_users)``."""
        h = r
        for layer in self.encoder:
            h = torch.sigmoid(layer(h))
        return h

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """Reconstructed ratings ``(B, n_users)`` of the movies' rating vectors ``r`` ``(B, n_users)``."""
        return self.decoder(self.code(r))

    def readout(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The read-out's weight ``(n_users, hidden)`` and bias ``(n_users,)``."""
        d = self.decoder
        w = d.effective_weight() if isinstance(d, KernelLinear) else d.weight
        return w, d.bias  # type: ignore[return-value]

    def penalty(self, kernel_l2: float) -> torch.Tensor:
        """Summed squared weights, plus ``kernel_l2`` times the summed squared kernel values."""
        total = torch.zeros(())
        for m in self.modules():
            if isinstance(m, KernelLinear):
                total = total + m.weight.pow(2).sum() + kernel_l2 * m.kernel().pow(2).sum()
            elif isinstance(m, nn.Linear):
                total = total + m.weight.pow(2).sum()
        return total


class AutoRec(Recommender):
    """I-AutoRec (``autorec``); see the module docstring."""

    name = "autorec"
    Config = AutoRecConfig
    supports_ratings = True

    def _fit(self, data: Dataset, rng: np.random.Generator, valid: Dataset | None) -> None:
        c = self.config
        if (
            c.hidden < 1
            or c.layers < 1
            or c.kernel_dim < 0
            or c.kernel_l2 < 0
            or c.l2 < 0
            or c.fold_reg < 0
            or c.fold_bias_reg <= 0
            or c.bias_reg < 0
            or not 0 <= c.dropout < 1
        ):
            raise ValueError(f"invalid AutoRec settings: {c}")
        n_users, n_movies = data.n_users, data.n_movies
        user, movie = data.user.astype(np.int64), data.movie.astype(np.int64)
        mu, bu, bi = baseline(user, movie, data.rating, n_users, n_movies, c.bias_reg)
        if not c.residual:
            mu, bu, bi = 0.0, np.zeros(n_users), np.zeros(n_movies)
        target = (data.rating - mu - bu[user] - bi[movie]).astype(np.float32)
        target[target == 0] = np.float32(1e-6)  # a stored zero would read as "unrated"
        cols = sp.csr_matrix((target, (movie, user)), shape=(n_movies, n_users))
        cols.sum_duplicates()
        g = torch_generator(rng)
        net = _AutoRecNet(n_users, c.hidden, c.layers, c.kernel_dim)
        net.init_from(g)
        if not c.residual:
            with torch.no_grad():
                net.readout()[1].fill_(float(data.rating.mean()) if data.n_ratings else 0.0)
        offsets = (mu + bu, bi)
        batch = local_batch_size(c.train.batch_size)
        share = batch / max(n_movies, 1)  # the L2 penalty is spread over an epoch's batches

        def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            for rows in shuffled_batches(n_movies, batch, g):
                block = cols[rows.numpy()]
                dense = torch.from_numpy(np.asarray(block.toarray(), np.float32))
                mask = torch.from_numpy(np.asarray((block != 0).toarray(), np.float32))
                yield dense, mask

        def loss_fn(model: nn.Module, b: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            r, mask = b
            x = r
            if c.dropout > 0:
                x = r * (torch.rand(r.shape, generator=g) >= c.dropout)
            err = ((model(x) - r) * mask).pow(2).sum()
            penalty = net.penalty(c.kernel_l2 / max(c.l2, 1e-12))
            return (err + 0.5 * c.l2 * share * penalty) / mask.sum().clamp_min(1.0)

        validate = None
        if valid is not None and valid.n_ratings:
            vu, vm, vr = valid.user.astype(np.int64), valid.movie.astype(np.int64), valid.rating

            def validate(_: nn.Module) -> float:
                self._set_from(net, cols, *offsets)
                return float(np.sqrt(np.mean((self.predict(vu, vm) - vr) ** 2)))

        self.fit_info.history = train(
            net,
            batches,
            loss_fn,
            c.train,
            validate=validate,
            higher_is_better=False,
            n_batches=-(-n_movies // batch),
            name=self.name,
            generators=(g,),
        )
        self.fit_info.epochs = len(self.fit_info.history)
        self._set_from(net, cols, *offsets)

    def _set_from(
        self, net: _AutoRecNet, cols: sp.csr_matrix, user_offset: np.ndarray, movie_offset: np.ndarray
    ) -> None:
        """Keep what scoring needs: every movie's code and bias, the users' read-outs and biases."""
        net.eval()
        codes = np.empty((cols.shape[0], net.hidden), np.float32)
        with torch.no_grad():
            for s in range(0, cols.shape[0], 1024):
                block = torch.from_numpy(np.asarray(cols[s : s + 1024].toarray(), np.float32))
                codes[s : s + 1024] = net.code(block).numpy()
        net.train()
        self._codes = codes
        with torch.no_grad():
            w, b = net.readout()
        self._w = w.detach().numpy().copy()
        self._b = (b.detach().numpy() + user_offset).astype(np.float32)
        self._bi = np.asarray(movie_offset, np.float32)

    # ------------------------------------------------------------------ scoring
    def _require(self) -> None:
        self._check_fitted()
        if getattr(self, "_codes", None) is None:
            raise NotFittedError(f"{self.name}: fit or load the model first")

    def movie_embeddings(self) -> np.ndarray:
        """The movie codes ``h_i``, float32 ``(n_movies, hidden)`` (a copy)."""
        self._require()
        return self._codes.copy()

    def predict(self, users: np.ndarray, movies: np.ndarray) -> np.ndarray:
        """Ratings of user *indices* ``(n,)`` for movie *indices* ``(n,)``, float32, clipped to the scale."""
        self._require()
        u, m = check_pairs(users, movies, self._w.shape[0], self._codes.shape[0])
        pred = np.einsum("nk,nk->n", self._w[u], self._codes[m]) + self._b[u] + self._bi[m]
        return clip_to_scale(pred, self.scale)

    def score_users(self, users: np.ndarray) -> np.ndarray:
        """Predicted ratings (unclipped) of every movie for known user *indices* ``(B,)``: ``(B, n_movies)``."""
        self._require()
        u = np.asarray(users, np.int64).ravel()
        if u.size and (u.min() < 0 or u.max() >= self._w.shape[0]):
            raise IndexError(f"user index out of range 0..{self._w.shape[0] - 1}")
        return np.asarray(self._w[u] @ self._codes.T + self._b[u, None] + self._bi[None, :], np.float32)

    def fold_in(self, query: Query) -> tuple[np.ndarray, float]:
        """Read-out ``(hidden,)`` float64 and bias of a new session (see the module docstring)."""
        self._require()
        c = self.config
        w0, b0 = self._w.mean(0).astype(np.float64), float(self._b.mean())
        h = self._codes[query.movies]
        base = h @ w0 + b0 + self._bi[query.movies]
        b, x = ridge_fold_in(query, h, base, self.scale, c.fold_reg, c.fold_bias_reg)
        return w0 + x, b0 + b

    def score(self, queries: Sequence[Query]) -> np.ndarray:
        self._require()
        out = np.full((len(queries), self.n_movies), np.nan, np.float32)
        for i, q in enumerate(queries):  # over queries; each is one small closed-form solve
            q.check(self.n_movies, self.n_tags)
            if q.user is not None:
                out[i] = self.score_users(np.array([q.user]))[0]
            elif q.movies.size:
                w, b = self.fold_in(q)
                out[i] = self._codes @ w.astype(np.float32) + b + self._bi
        return out

    # -------------------------------------------------------------- persistence
    def state(self) -> dict[str, np.ndarray]:
        self._require()
        return {"codes": self._codes, "w": self._w, "b": self._b, "bi": self._bi}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        codes, w, b, bi = (np.asarray(state[k], np.float32) for k in ("codes", "w", "b", "bi"))
        if (
            codes.shape[0] != self.n_movies
            or w.shape != (b.size, codes.shape[1])
            or bi.shape != (self.n_movies,)
        ):
            raise ValueError(
                f"AutoRec weights of shapes {codes.shape}, {w.shape}, {b.shape}, {bi.shape} do not fit together"
            )
        self._codes, self._w, self._b, self._bi = codes, w, b, bi


@dataclass
class SparseFCConfig(AutoRecConfig):
    """Settings of :class:`SparseFC` (GLocal-K's local kernel: two layers, 5 kernel dimensions).

    ``hidden``, ``l2``, ``kernel_l2``, ``dropout``, ``lr``, ``batch_size`` and ``epochs`` are
    the best of a random search (``benchmarks/tune_deep.py --models sparsefc --trials 8``,
    seed 0, 2026-12-08), as for :class:`AutoRecConfig`::

        hidden  l2  kernel_l2  dropout    lr  batch  RMSE                  best epoch
           200  10      0.001     0.25  1e-3    256  0.859 [0.842, 0.873]  14  chosen
           500  30      0.03      0     3e-4    128  0.865                 31
           200  10      0.006     0.5   1e-3    256  0.865                 35
           500   1      0.006     0     1e-3     64  0.869                  5
        (autorec's best: 0.847; mf: 0.862)

    On this data the kernel's sparsity does not pay: the two-layer network overfits sooner
    than the one-layer I-AutoRec, at any penalty tried.
    """

    hidden: int = 200
    layers: int = 2
    bias_reg: float = 10.0
    kernel_dim: int = 5
    kernel_l2: float = 0.001
    dropout: float = 0.25
    l2: float = 10.0
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(epochs=14, batch_size=256, lr=1e-3, patience=10, clip_norm=0.0)
    )


class SparseFC(AutoRec):
    """I-AutoRec with two kernel-sparsified layers (``sparsefc``; Muller et al. 2018, the
    local kernel GLocal-K pre-trains): the same training, read-out and fold-in as :class:`AutoRec`."""

    name = "sparsefc"
    Config = SparseFCConfig
