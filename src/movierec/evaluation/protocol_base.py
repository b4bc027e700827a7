"""The shared base of the evaluation protocols: :class:`Protocol` (what a protocol does),
:class:`Prepared` (a split made once and shared by all models), :class:`Result` (one model
under one protocol), :class:`UnsupportedError`, and the helpers the protocols share.

The protocols themselves, their registry and :func:`~movierec.evaluation.protocols.run`
are in :mod:`movierec.evaluation.protocols`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from movierec.data.dataset import Dataset
from movierec.evaluation import metrics as M
from movierec.models.base import Recommender

__all__ = ["BATCH_USERS", "Prepared", "Protocol", "Result", "UnsupportedError", "size_key"]

#: users scored per call of ``score_users`` / ``score``
BATCH_USERS = 512


class UnsupportedError(ValueError):
    """The model cannot be evaluated under this protocol (e.g. no rating predictions)."""


@dataclass
class Prepared:
    """A split made once by :meth:`Protocol.prepare` and shared by all models.

    Attributes
    ----------
    data:
        The full data set.
    train, test:
        Disjoint parts of ``data`` (same vocabularies).
    valid:
        Validation part for early stopping, or ``None``.
    users:
        Evaluated user *indices*, shape ``(n_eval,)`` int64, ascending.
    extra:
        Protocol-specific arrays (e.g. sampled candidates).
    """

    data: Dataset
    train: Dataset
    test: Dataset
    valid: Dataset | None = None
    users: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    split: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Result:
    """One model evaluated under one protocol.

    Attributes
    ----------
    metrics:
        Mean per metric; keys lower-case with ``@k`` (``ndcg@10``, ``rmse``, ``coverage@10``).
    per_user:
        Per-user values, each shape ``(len(users),)`` float64 aligned with ``users``
        (NaN where a user has no value).
    users:
        User *indices* of the rows of ``per_user``, shape ``(n_eval,)`` int64.
    ci:
        95 % bootstrap interval ``(low, high)`` per metric that has per-user (or per-row) values.
    by_k:
        Per session size ``k`` (protocols with sizes: ``session``), the mean of each metric
        at that size; ``metrics`` then holds the average over the sizes.
    curves:
        Extras for reports: ``ndcg_at`` (NDCG@k for k = 1..max(ks)), ``rec_popularity``
        (training rating count of every recommended movie, top max(ks) of every user).
    supported:
        ``False`` when the model cannot do the protocol; ``message`` says why.
    notes:
        Caveats printed with the result (e.g. that a sampled protocol is only for paper comparison).
    """

    protocol: str
    dataset: str
    model: str
    metrics: dict[str, float] = field(default_factory=dict)
    per_user: dict[str, np.ndarray] = field(default_factory=dict)
    users: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    fit_seconds: float = 0.0
    eval_seconds: float = 0.0
    n_users: int = 0
    split: str = ""
    seed: int = 0
    supported: bool = True
    message: str = ""
    notes: list[str] = field(default_factory=list)
    curves: dict[str, np.ndarray] = field(default_factory=dict)
    by_k: dict[int, dict[str, float]] = field(default_factory=dict)

    def to_dict(self, *, with_ci: bool = True) -> dict[str, Any]:
        """JSON-able summary (no per-user arrays)."""
        out: dict[str, Any] = {
            "protocol": self.protocol,
            "dataset": self.dataset,
            "model": self.model,
            "metrics": {k: _round(v) for k, v in self.metrics.items()},
            "fit_seconds": round(self.fit_seconds, 3),
            "eval_seconds": round(self.eval_seconds, 3),
            "n_users": self.n_users,
            "split": self.split,
            "seed": self.seed,
            "supported": self.supported,
        }
        if self.by_k:
            out["metrics"]["by_k"] = {
                str(size): {k: _round(v) for k, v in values.items()} for size, values in self.by_k.items()
            }
        if with_ci:
            out["ci"] = {k: [_round(lo), _round(hi)] for k, (lo, hi) in self.ci.items()}
        if self.message:
            out["message"] = self.message
        if self.notes:
            out["notes"] = list(self.notes)
        return out


def _round(x: float) -> float | None:
    return None if not math.isfinite(x) else round(float(x), 6)


# ------------------------------------------------------------------ helpers


def user_rows(m: sp.csr_matrix, users: np.ndarray) -> sp.csr_matrix:
    """Rows ``users`` of ``m``, a CSR matrix of its own."""
    return sp.csr_matrix(m[users])


def train_popularity(train: Dataset) -> np.ndarray:
    """Distinct training users per movie, ``(n_movies,)`` int64 (ratings are unique per pair)."""
    return np.asarray(train.movie_popularity, np.int64)


def ndcg_curve(ranked: np.ndarray, relevant: sp.csr_matrix, k_max: int) -> np.ndarray:
    """Mean NDCG@k for k = 1..k_max, shape ``(k_max,)``."""
    hits = M.hits_matrix(ranked[:, :k_max], relevant)
    n_rel = M.count_relevant(relevant)
    keep = n_rel > 0
    return np.array([float(np.nanmean(M.ndcg(hits[keep], n_rel[keep], k))) for k in range(1, k_max + 1)])


# ---------------------------------------------------------------- protocols


class Protocol(ABC):
    """A named evaluation protocol."""

    name: ClassVar[str]
    #: what the protocol measures, one line
    description: ClassVar[str] = ""
    #: caveats attached to every result
    notes: ClassVar[tuple[str, ...]] = ()
    #: ranking cut-offs used when the caller names none
    default_ks: ClassVar[tuple[int, ...]] = (10, 20)

    @abstractmethod
    def prepare(self, data: Dataset, rng: np.random.Generator, *, split: str | None = None) -> Prepared:
        """Split ``data`` once; the result is shared by every model evaluated."""

    def check(self, model: Recommender) -> None:
        """Raise :class:`UnsupportedError` if ``model`` cannot be evaluated here."""
        return None

    @abstractmethod
    def evaluate(
        self, model: Recommender, prepared: Prepared, ks: tuple[int, ...]
    ) -> tuple[dict[str, np.ndarray], dict[str, float], dict[str, np.ndarray]]:
        """Score a fitted model: (per-user arrays aligned with ``prepared.users``,
        scalar metrics without per-user values, curves for reports)."""


def size_key(metric: str, size: int) -> str:
    """Key of ``metric`` at session size ``size`` in per-user and scalar dicts: ``"ndcg@24[k=3]"``."""
    return f"{metric}[k={size}]"


def split_size_key(key: str) -> tuple[str, int | None]:
    """``"ndcg@24[k=3]"`` -> ``("ndcg@24", 3)``; a plain key -> ``(key, None)``."""
    if key.endswith("]") and "[k=" in key:
        name, _, size = key[:-1].rpartition("[k=")
        return name, int(size)
    return key, None
