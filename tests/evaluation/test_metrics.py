"""Tests for movierec.evaluation.metrics and movierec.evaluation.beyond_accuracy: hand-computed cases
and hypothesis properties."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from movierec.evaluation.beyond_accuracy import coverage, intra_list_diversity, novelty, popularity_percentile
from movierec.evaluation.metrics import (
    count_relevant,
    hit_rate,
    hits_matrix,
    mae,
    mrr,
    ndcg,
    precision,
    ranking_metrics,
    recall,
    rmse,
)

FAST = settings(max_examples=60, deadline=None)


def relevant_csr(sets: list[set[int]] | list[list[int]], n_movies: int) -> sp.csr_matrix:
    """CSR (n_users, n_movies) with ones at the given movie indices per user."""
    rows = [u for u, s in enumerate(sets) for _ in s]
    cols = [m for s in sets for m in s]
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(sets), n_movies))


# ---------------------------------------------------------------- rating


def test_rmse_and_mae_hand_computed() -> None:
    assert rmse([1.0, 2.0, 3.0], [1.0, 2.0, 5.0]) == pytest.approx(math.sqrt(4 / 3))
    assert mae([1.0, 2.0, 3.0], [1.0, 2.0, 5.0]) == pytest.approx(2 / 3)
    assert rmse([[3.5]], [[3.5]]) == 0.0


@pytest.mark.parametrize("fn", [rmse, mae])
def test_rating_metrics_reject_bad_input(fn: Callable[[object, object], float]) -> None:
    with pytest.raises(ValueError, match="same shape"):
        fn([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="empty"):
        fn([], [])
    with pytest.raises(ValueError, match="finite"):
        fn([np.nan], [1.0])


# ------------------------------------------------------------ hits matrix


def test_hits_matrix_hand_computed() -> None:
    ranked = np.array([[3, 0, 2, -1], [1, 2, 4, 0], [4, 3, -1, -1]])
    rel = relevant_csr([{0, 2}, {4}, set()], n_movies=5)
    expected = np.array(
        [[False, True, True, False], [False, False, True, False], [False, False, False, False]]
    )
    np.testing.assert_array_equal(hits_matrix(ranked, rel), expected)
    np.testing.assert_array_equal(count_relevant(rel), [2, 1, 0])


def test_hits_matrix_ignores_explicit_zeros_and_handles_unsorted_duplicates() -> None:
    # row 0: movie 1 stored as an explicit zero (not relevant); row 1: movie 3 twice, unsorted
    rel = sp.csr_matrix(
        (np.array([0.0, 1.0, 1.0, 1.0, 1.0]), np.array([1, 2, 3, 0, 3]), np.array([0, 2, 5])),
        shape=(2, 4),
    )
    assert not rel.has_canonical_format
    ranked = np.array([[1, 2], [3, 1]])
    np.testing.assert_array_equal(hits_matrix(ranked, rel), [[False, True], [True, False]])
    np.testing.assert_array_equal(count_relevant(rel), [1, 2])


def test_hits_matrix_rejects_bad_input() -> None:
    rel = relevant_csr([{0}, {1}], n_movies=3)
    with pytest.raises(ValueError, match="rows"):
        hits_matrix(np.array([[0, 1]]), rel)
    with pytest.raises(ValueError, match="only 3 movies"):
        hits_matrix(np.array([[0, 3], [1, 2]]), rel)
    with pytest.raises(ValueError, match="-1 is padding"):
        hits_matrix(np.array([[0, -2], [1, 2]]), rel)
    with pytest.raises(ValueError, match="row 1 repeats movie index 2"):
        hits_matrix(np.array([[0, 1], [2, 2]]), rel)
    with pytest.raises(ValueError, match="integer"):
        hits_matrix(np.array([[0.0, 1.0], [2.0, 1.0]]), rel)
    with pytest.raises(TypeError, match=r"scipy\.sparse"):
        hits_matrix(np.array([[0, 1], [2, 1]]), np.eye(2, 3))


# -------------------------------------------------------- ranking metrics


def test_ranking_metrics_hand_computed() -> None:
    # user 0: hits at ranks 1 and 3, 2 relevant; user 1: hits at ranks 2 and 4, 3 relevant;
    # user 2: no hit, 1 relevant; user 3: no relevant movie at all.
    ranked = np.array([[0, 5, 1, 6], [5, 0, 6, 1], [5, 6, 7, 8], [0, 1, 2, 3]])
    rel = relevant_csr([{0, 1}, {0, 1, 2}, {9}, set()], n_movies=10)
    hits = hits_matrix(ranked, rel)
    n_rel = count_relevant(rel)
    k = 4
    l2, l3, l4, l5 = (math.log2(x) for x in (2, 3, 4, 5))
    exp_ndcg = [(1 + 1 / l4) / (1 + 1 / l3), (1 / l3 + 1 / l5) / (1 + 1 / l3 + 1 / l4), 0.0, np.nan]
    assert l2 == 1.0
    np.testing.assert_allclose(ndcg(hits, n_rel, k), exp_ndcg)
    np.testing.assert_allclose(recall(hits, n_rel, k), [1.0, 2 / 3, 0.0, np.nan])
    np.testing.assert_allclose(precision(hits, k, n_relevant=n_rel), [0.5, 0.5, 0.0, np.nan])
    np.testing.assert_allclose(hit_rate(hits, k, n_relevant=n_rel), [1.0, 1.0, 0.0, np.nan])
    np.testing.assert_allclose(mrr(hits, k, n_relevant=n_rel), [1.0, 0.5, 0.0, np.nan])
    # without n_relevant the hits-only metrics do not know who has nothing relevant
    np.testing.assert_allclose(mrr(hits, k), [1.0, 0.5, 0.0, 0.0])
    # at k = 2: user 0 has one hit out of min(2, 2) ideal; user 1 one hit at rank 2 of min(2, 3)
    np.testing.assert_allclose(ndcg(hits, n_rel, 2), [1 / (1 + 1 / l3), (1 / l3) / (1 + 1 / l3), 0.0, np.nan])
    np.testing.assert_allclose(recall(hits, n_rel, 2), [0.5, 0.5, 0.0, np.nan])
    np.testing.assert_allclose(precision(hits, 1), [1.0, 0.0, 0.0, 0.0])

    out = ranking_metrics(ranked, rel, ks=(2, 4))
    assert set(out) == {f"{m}@{k}" for m in ("hr", "recall", "precision", "ndcg", "mrr") for k in (2, 4)}
    np.testing.assert_allclose(out["ndcg@4"], exp_ndcg)
    np.testing.assert_allclose(out["recall@2"], [0.5, 0.5, 0.0, np.nan])
    np.testing.assert_allclose(out["mrr@2"], [1.0, 0.5, 0.0, np.nan])
    assert all(v.shape == (4,) and v.dtype == np.float64 for v in out.values())


def test_recall_caps_denominator_at_k() -> None:
    # 5 relevant, top-2 both hits: recall@2 = 2 / min(2, 5) = 1
    hits = np.array([[True, True, False]])
    assert recall(hits, np.array([5]), 2)[0] == 1.0
    assert recall(hits, np.array([5]), 3)[0] == pytest.approx(2 / 3)


def test_padding_counts_as_a_miss() -> None:
    ranked = np.array([[2, -1, -1]])
    rel = relevant_csr([{2, 0}], n_movies=3)
    out = ranking_metrics(ranked, rel, ks=(3,))
    assert out["precision@3"][0] == pytest.approx(1 / 3)
    assert out["recall@3"][0] == pytest.approx(1 / 2)


def test_ranking_metric_argument_errors() -> None:
    hits = np.array([[True, False]])
    with pytest.raises(ValueError, match=r"1\.\.2"):
        hit_rate(hits, 3)
    with pytest.raises(ValueError, match=r"1\.\.2"):
        precision(hits, 0)
    with pytest.raises(TypeError, match="int"):
        precision(hits, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shape"):
        recall(hits, np.array([1, 1]), 2)
    with pytest.raises(ValueError, match="do not match"):
        ndcg(np.array([[True, True]]), np.array([1]), 2)
    with pytest.raises(ValueError, match="boolean"):
        mrr(np.array([[2, 0]]), 1)
    with pytest.raises(ValueError, match=r"1\.\.4"):
        ranking_metrics(np.arange(4)[None, :], relevant_csr([{0}], 5), ks=(10,))


# ----------------------------------------------------- hypothesis: ranking


@st.composite
def ranking_case(draw: st.DrawFn) -> tuple[np.ndarray, sp.csr_matrix, int]:
    """Random (ranked, relevant, k): permutation prefixes with padding, random relevant sets."""
    n_movies = draw(st.integers(1, 12))
    n_users = draw(st.integers(1, 5))
    k_max = draw(st.integers(1, 8))
    rows, sets = [], []
    for _ in range(n_users):
        perm = draw(st.permutations(range(n_movies)))
        length = draw(st.integers(0, min(k_max, n_movies)))
        rows.append(list(perm[:length]) + [-1] * (k_max - length))
        sets.append(draw(st.sets(st.integers(0, n_movies - 1), max_size=n_movies)))
    k = draw(st.integers(1, k_max))
    return np.array(rows, dtype=np.int64).reshape(n_users, k_max), relevant_csr(sets, n_movies), k


@FAST
@given(ranking_case())
def test_hits_matrix_matches_loop(case: tuple[np.ndarray, sp.csr_matrix, int]) -> None:
    ranked, rel, _ = case
    dense = rel.toarray() != 0
    expected = np.array([[m >= 0 and bool(dense[u, m]) for m in row] for u, row in enumerate(ranked)])
    np.testing.assert_array_equal(hits_matrix(ranked, rel), expected.reshape(ranked.shape))


@FAST
@given(ranking_case())
def test_all_ranking_metrics_in_unit_interval_nan_iff_nothing_relevant(
    case: tuple[np.ndarray, sp.csr_matrix, int],
) -> None:
    ranked, rel, k = case
    n_rel = count_relevant(rel)
    for name, values in ranking_metrics(ranked, rel, ks=(k,)).items():
        np.testing.assert_array_equal(np.isnan(values), n_rel == 0, err_msg=name)
        ok = values[~np.isnan(values)]
        assert np.all((ok >= 0) & (ok <= 1 + 1e-12)), name


@FAST
@given(ranking_case(), st.data())
def test_perfect_ranking_scores_one(case: tuple[np.ndarray, sp.csr_matrix, int], data: st.DataObject) -> None:
    _, rel, k = case
    n_movies = rel.shape[1]
    dense = rel.toarray() != 0
    rows = []
    for u in range(rel.shape[0]):
        relevant = list(np.flatnonzero(dense[u]))
        if not relevant or len(relevant) > k:
            continue
        others = [m for m in range(n_movies) if m not in relevant]
        row = data.draw(st.permutations(relevant)) + data.draw(st.permutations(others))
        rows.append((u, row[:k] + [-1] * (k - len(row[:k]))))
    if not rows:
        return
    ranked = np.array([r for _, r in rows])
    sub = rel[[u for u, _ in rows]]
    out = ranking_metrics(ranked, sub, ks=(k,))
    for name in ("ndcg", "hr", "recall", "mrr"):
        np.testing.assert_allclose(out[f"{name}@{k}"], 1.0, err_msg=name)


@FAST
@given(ranking_case(), st.randoms(use_true_random=False))
def test_set_metrics_invariant_to_order_within_top_k(
    case: tuple[np.ndarray, sp.csr_matrix, int], rnd: random.Random
) -> None:
    ranked, rel, k = case
    shuffled = ranked.copy()
    for row in shuffled:
        head = list(row[:k])
        rnd.shuffle(head)
        row[:k] = head
    a = ranking_metrics(ranked, rel, ks=(k,))
    b = ranking_metrics(shuffled, rel, ks=(k,))
    for name in ("hr", "recall", "precision"):
        np.testing.assert_allclose(a[f"{name}@{k}"], b[f"{name}@{k}"], err_msg=name)


@FAST
@given(ranking_case())
def test_ndcg_and_mrr_never_beat_hits_moved_to_front(case: tuple[np.ndarray, sp.csr_matrix, int]) -> None:
    ranked, rel, k = case
    hits = hits_matrix(ranked, rel)
    n_rel = count_relevant(rel)
    front = np.zeros_like(hits)
    front[:, :k] = -np.sort(-hits[:, :k].astype(int), axis=1) > 0  # same hits, at the top
    for fn in (lambda h: ndcg(h, n_rel, k), lambda h: mrr(h, k, n_relevant=n_rel)):
        before, after = fn(hits), fn(front)
        mask = ~np.isnan(before)
        assert np.all(before[mask] <= after[mask] + 1e-12)


# --------------------------------------------------------- beyond accuracy


def test_coverage_hand_computed() -> None:
    ranked = np.array([[0, 1, 2], [1, 2, 3], [-1, -1, -1]])
    assert coverage(ranked, n_movies=10, k=2) == pytest.approx(0.3)
    assert coverage(ranked, n_movies=10, k=3) == pytest.approx(0.4)
    with pytest.raises(ValueError, match="only 3 movies"):
        coverage(ranked, n_movies=3, k=3)


def test_novelty_hand_computed() -> None:
    # 9 training users; smoothed p = (pop + 1) / 10 = [1, 0.1, 0.5] -> [0, log2(10), 1] bits
    pop = np.array([9, 0, 4])
    ranked = np.array([[0, 1], [2, -1], [-1, -1]])
    np.testing.assert_allclose(novelty(ranked, pop, 9, k=2), [math.log2(10) / 2, 1.0, np.nan])
    np.testing.assert_allclose(novelty(ranked, pop, 9, k=1), [0.0, 1.0, np.nan])
    with pytest.raises(ValueError, match="distinct training users"):
        novelty(ranked, pop, 5, k=2)


def test_popularity_percentile_hand_computed() -> None:
    # ascending average ranks: movie1 -> 1, movies 2 and 3 tie -> 2.5, movie0 -> 4; pct = (rank-1)/3
    pop = np.array([5, 1, 3, 3])
    ranked = np.array([[0, 1], [2, 3], [0, 2], [1, -1]])
    np.testing.assert_allclose(popularity_percentile(ranked, pop, k=2), [0.5, 0.5, 0.75, 0.0])
    np.testing.assert_allclose(popularity_percentile(np.array([[0]]), np.array([7]), k=1), [0.5])


def test_intra_list_diversity_hand_computed() -> None:
    # genres: movie0 {a}, movie1 {a, b}, movie2 {c}, movie3 none
    feats = sp.csr_matrix(np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 0, 0]], dtype=float))
    c01 = 1 / math.sqrt(2)
    ranked = np.array([[0, 1, 2], [0, 1, -1], [0, -1, -1], [3, 0, -1]])
    expected = [((1 - c01) + 1 + 1) / 3, 1 - c01, np.nan, 1.0]
    np.testing.assert_allclose(intra_list_diversity(ranked, feats, k=3), expected)
    np.testing.assert_allclose(
        intra_list_diversity(ranked, feats.toarray(), k=2), [1 - c01, 1 - c01, np.nan, 1.0]
    )


def brute_ild(ranked: np.ndarray, feats: np.ndarray, k: int) -> np.ndarray:
    out = []
    for row in ranked[:, :k]:
        items = [m for m in row if m >= 0]
        if len(items) < 2:
            out.append(np.nan)
            continue
        dists: list[float] = []
        for i in items:
            for j in items:
                if i == j:
                    continue
                ni, nj = np.linalg.norm(feats[i]), np.linalg.norm(feats[j])
                cos = 0.0 if ni == 0 or nj == 0 else float(feats[i] @ feats[j]) / (ni * nj)
                dists.append(float(1.0 - cos))
        out.append(sum(dists) / len(dists))
    return np.array(out)


@FAST
@given(ranking_case(), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_intra_list_diversity_matches_brute_force(
    case: tuple[np.ndarray, sp.csr_matrix, int], n_features: int, seed: int
) -> None:
    ranked, rel, k = case
    rng = np.random.default_rng(seed)
    feats = rng.integers(0, 3, size=(rel.shape[1], n_features)) * (
        rng.random((rel.shape[1], n_features)) < 0.5
    )
    got = intra_list_diversity(ranked, sp.csr_matrix(feats.astype(float)), k)
    np.testing.assert_allclose(got, brute_ild(ranked, feats.astype(float), k), atol=1e-9)
    ok = got[~np.isnan(got)]
    assert np.all((ok >= 0) & (ok <= 1 + 1e-12))  # non-negative features: cosine in [0, 1], up to rounding


@FAST
@given(ranking_case(), st.integers(1, 20), st.integers(0, 2**32 - 1))
def test_catalogue_metrics_in_range(
    case: tuple[np.ndarray, sp.csr_matrix, int], n_train: int, seed: int
) -> None:
    ranked, rel, k = case
    n_movies = rel.shape[1]
    pop = np.random.default_rng(seed).integers(0, n_train + 1, size=n_movies)
    assert 0.0 <= coverage(ranked, n_movies, k) <= 1.0
    nov = novelty(ranked, pop, n_train, k)
    pct = popularity_percentile(ranked, pop, k)
    empty = (ranked[:, :k] < 0).all(axis=1)
    np.testing.assert_array_equal(np.isnan(nov), empty)
    np.testing.assert_array_equal(np.isnan(pct), empty)
    assert np.all((nov[~empty] >= 0) & (nov[~empty] <= math.log2(n_train + 1) + 1e-12))
    assert np.all((pct[~empty] >= 0) & (pct[~empty] <= 1))
