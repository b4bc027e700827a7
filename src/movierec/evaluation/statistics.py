"""Statistics over per-user metric values, as pure functions: :func:`bootstrap_ci` (mean and
bootstrap confidence interval) and :func:`paired_comparison` (two systems on the same users).
Both ignore NaN, the value of a user without relevant movies (:mod:`movierec.evaluation.metrics`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["bootstrap_ci", "paired_comparison"]

FloatArray = NDArray[np.float64]

#: Upper bound on the elements of one temporary (resamples x values) block.
_BLOCK_ELEMENTS = 4_000_000


def _finite_1d(values: ArrayLike, name: str) -> FloatArray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per user), got shape {v.shape}")
    return v


def _check_resampling(n_resamples: int, level: float = 0.95) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")


def _bootstrap_means(v: FloatArray, rng: np.random.Generator, n_resamples: int) -> FloatArray:
    """Means of ``n_resamples`` resamples (with replacement) of ``v``, in memory-bounded blocks."""
    n = v.size
    block = max(1, _BLOCK_ELEMENTS // n)
    parts = []
    for start in range(0, n_resamples, block):
        size = min(block, n_resamples - start)
        idx = rng.integers(0, n, size=(size, n))
        parts.append(v[idx].mean(axis=1))
    return np.concatenate(parts)


def bootstrap_ci(
    values: ArrayLike, rng: np.random.Generator, n_resamples: int = 1000, level: float = 0.95
) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap confidence interval, ignoring NaN.

    Parameters
    ----------
    values:
        Shape ``(n,)`` float, e.g. a per-user metric; NaN entries (users without
        relevant movies) are dropped first.
    rng:
        Source of randomness for the resamples.
    n_resamples:
        Number of bootstrap resamples (>= 1).
    level:
        Confidence level in (0, 1).

    Returns
    -------
    tuple[float, float, float]
        ``(mean, low, high)``.

    Raises
    ------
    ValueError
        No non-NaN value is left.
    """
    _check_resampling(n_resamples, level)
    v = _finite_1d(values, "values")
    v = v[~np.isnan(v)]
    if v.size == 0:
        raise ValueError("bootstrap_ci: no non-NaN values to summarise")
    means = _bootstrap_means(v, rng, n_resamples)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(v.mean()), float(low), float(high)


def paired_comparison(
    a: ArrayLike, b: ArrayLike, rng: np.random.Generator, n_resamples: int = 1000
) -> dict[str, float]:
    """Compare two systems on the same users: mean difference, its CI and a p-value.

    Users where either value is NaN are dropped. The p-value is two-sided, from
    a paired sign-flip (permutation) test of ``mean(a - b) = 0``: exact over all
    ``2^n`` sign patterns when ``2^n <= n_resamples``, otherwise Monte Carlo with
    ``p = (1 + #{|mean(s d)| >= |mean(d)|}) / (n_resamples + 1)``.

    Parameters
    ----------
    a, b:
        Per-user metric values of systems A and B, shape ``(n_users,)`` float, same users in the same order.
    rng:
        Source of randomness for bootstrap and sign flips.
    n_resamples:
        Bootstrap resamples and random sign patterns (>= 1).

    Returns
    -------
    dict[str, float]
        ``n`` (users compared), ``mean_a``, ``mean_b``, ``mean_diff`` (A - B),
        ``ci_low`` and ``ci_high`` (95 % bootstrap CI of the mean difference) and ``p_value``.
    """
    _check_resampling(n_resamples)
    x = _finite_1d(a, "a")
    y = _finite_1d(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b must cover the same users, got shapes {x.shape} and {y.shape}")
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    if x.size == 0:
        raise ValueError("paired_comparison: no user has non-NaN values in both a and b")
    d = x - y
    n = d.size
    mean_diff, low, high = bootstrap_ci(d, rng, n_resamples, 0.95)
    observed = abs(mean_diff)
    tol = 1e-12 * max(1.0, float(np.abs(d).max()))
    if n < 63 and 2**n <= n_resamples:
        codes = np.arange(2**n, dtype=np.int64)[:, None]
        signs = 1.0 - 2.0 * ((codes >> np.arange(n)) & 1)
        flipped = np.abs((signs * d).mean(axis=1))
        p = float(np.mean(flipped >= observed - tol))
    else:
        block = max(1, _BLOCK_ELEMENTS // n)
        extreme = 0
        for start in range(0, n_resamples, block):
            size = min(block, n_resamples - start)
            signs = rng.choice(np.array([-1.0, 1.0]), size=(size, n))
            extreme += int(np.sum(np.abs((signs * d).mean(axis=1)) >= observed - tol))
        p = (1.0 + extreme) / (n_resamples + 1.0)
    return {
        "n": float(n),
        "mean_a": float(x.mean()),
        "mean_b": float(y.mean()),
        "mean_diff": mean_diff,
        "ci_low": low,
        "ci_high": high,
        "p_value": p,
    }
