"""Tests for movierec.evaluation.statistics: bootstrap intervals and paired comparisons."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from movierec.evaluation.statistics import bootstrap_ci, paired_comparison

FAST = settings(max_examples=60, deadline=None)


def test_bootstrap_ci_constant_and_nan() -> None:
    rng = np.random.default_rng(0)
    assert bootstrap_ci([0.5, np.nan, 0.5, 0.5], rng) == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match="no non-NaN"):
        bootstrap_ci([np.nan], rng)
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci([1.0], rng, level=1.0)


def test_bootstrap_ci_is_reproducible_and_roughly_right() -> None:
    values = np.random.default_rng(1).random(400)
    a = bootstrap_ci(values, np.random.default_rng(7), n_resamples=500)
    b = bootstrap_ci(values, np.random.default_rng(7), n_resamples=500)
    assert a == b
    mean, low, high = a
    se = values.std(ddof=1) / math.sqrt(values.size)
    # the 95 % interval of a mean is about +-1.96 standard errors wide
    assert (high - low) / (2 * 1.96 * se) == pytest.approx(1.0, abs=0.15)
    assert low < mean < high


@FAST
@given(
    st.lists(st.floats(0.0, 1.0) | st.just(float("nan")), min_size=1, max_size=40).filter(
        lambda v: any(not math.isnan(x) for x in v)
    ),
    st.integers(0, 2**32 - 1),
)
def test_bootstrap_ci_contains_mean(values: list[float], seed: int) -> None:
    mean, low, high = bootstrap_ci(values, np.random.default_rng(seed), n_resamples=200)
    assert mean == pytest.approx(float(np.nanmean(values)))
    assert low - 1e-12 <= mean <= high + 1e-12


def test_paired_comparison_exact_sign_flip() -> None:
    # d = [1, 1, 1]: of the 8 sign patterns only +++ and --- reach |mean| = 1 -> p = 2/8
    out = paired_comparison([1.0, 1.0, 1.0, np.nan], [0.0, 0.0, 0.0, 0.3], np.random.default_rng(0))
    assert out["n"] == 3
    assert out["mean_diff"] == 1.0
    assert (out["ci_low"], out["ci_high"]) == (1.0, 1.0)
    assert out["p_value"] == pytest.approx(0.25)
    assert (out["mean_a"], out["mean_b"]) == (1.0, 0.0)


def test_paired_comparison_identical_and_clear_difference() -> None:
    rng = np.random.default_rng(3)
    a = rng.random(200)
    same = paired_comparison(a, a, rng)
    assert same["mean_diff"] == 0.0 and same["p_value"] == 1.0
    better = paired_comparison(a + 0.1 + 0.01 * rng.random(200), a, rng, n_resamples=999)
    assert better["p_value"] == pytest.approx(1 / 1000)
    assert 0.1 < better["ci_low"] < better["mean_diff"] < better["ci_high"] < 0.11
    # same distribution, noise only (fixed seeds): no evidence of a difference
    null = paired_comparison(rng.random(200), rng.random(200), np.random.default_rng(5))
    assert null["ci_low"] < 0.0 < null["ci_high"]
    assert null["p_value"] > 0.05


def test_paired_comparison_rejects_mismatched_users() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="same users"):
        paired_comparison([1.0, 2.0], [1.0], rng)
    with pytest.raises(ValueError, match="no user"):
        paired_comparison([np.nan], [1.0], rng)
