"""ANN retrieval: planted answers, recall against exact, exclusions, filters, widening, bad input."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from movierec.retrieval import IndexKind, MipsConfig, MipsIndex, candidates_then_rescore
from movierec.topn import top_n

HAVE_FAISS = importlib.util.find_spec("faiss") is not None
needs_faiss = pytest.mark.skipif(not HAVE_FAISS, reason="faiss not installed (pip install 'movierec[ann]')")
KINDS: list[IndexKind] = ["ivf", "hnsw", "flat"]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One FAISS thread: deterministic builds and no oversubscription of the shared CPU."""
    if not HAVE_FAISS:
        yield
        return
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def clustered(n: int, d: int, n_queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Low-rank clustered item vectors with a bias column, and queries ending in 1; float32."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((20, d - 1)) * 2
    items = np.empty((n, d), np.float32)
    items[:, :-1] = centers[rng.integers(20, size=n)] + rng.standard_normal((n, d - 1))
    items[:, -1] = rng.standard_normal(n)
    queries = np.ones((n_queries, d), np.float32)
    queries[:, :-1] = centers[rng.integers(20, size=n_queries)] + rng.standard_normal((n_queries, d - 1))
    return items, queries


def exact(items: np.ndarray, queries: np.ndarray, k: int, **kw: object) -> np.ndarray:
    return top_n(queries @ items.T, k, **kw)[0]  # type: ignore[arg-type]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [np.intersect1d(f[f >= 0], t[t >= 0]).size for f, t in zip(found, truth, strict=True)]
    return float(np.sum(hits) / (truth >= 0).sum())


@needs_faiss
@pytest.mark.parametrize("kind", KINDS)
def test_planted_items_are_found_first(kind: IndexKind) -> None:
    rng = np.random.default_rng(1)
    n, d, n_q, per_q = 3000, 9, 6, 5
    items = (0.3 * rng.standard_normal((n, d))).astype(np.float32)
    unit = np.linalg.qr(rng.standard_normal((d, d)))[0][:n_q]  # orthonormal query directions
    queries = (3 * unit).astype(np.float32)
    planted = rng.choice(n, size=(n_q, per_q), replace=False)
    for j in range(per_q):  # item planted[i, j] points along query i, strength decreasing with j
        items[planted[:, j]] = (4.0 - 0.5 * j) * unit + 0.01 * rng.standard_normal((n_q, d))
    index = MipsIndex.build(items, MipsConfig(kind=kind), rng=np.random.default_rng(0))

    scores, idx = index.search(queries, per_q)
    np.testing.assert_array_equal(idx, planted)
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ items.T, planted, 1), rtol=1e-4)
    got, vals = candidates_then_rescore(index, queries, items, per_q)
    np.testing.assert_array_equal(got, planted)
    assert np.all(np.diff(vals, axis=1) <= 0)


@needs_faiss
def test_ivf_recall_against_exact_and_full_probe_is_exact() -> None:
    items, queries = clustered(20_000, 17, 40)
    k = 20
    truth = exact(items, queries, k)
    index = MipsIndex.build(items, rng=np.random.default_rng(0))
    found, _ = candidates_then_rescore(index, queries, items, k)
    assert recall(found, truth) >= 0.9
    index.config = MipsConfig(n_probe=10_000)  # probing every cell is an exhaustive search
    found, _ = candidates_then_rescore(index, queries, items, k)
    np.testing.assert_array_equal(found, truth)


@needs_faiss
def test_hnsw_recall_against_exact() -> None:
    items, queries = clustered(5_000, 17, 40)
    truth = exact(items, queries, 20)
    index = MipsIndex.build(items, MipsConfig(kind="hnsw", hnsw_m=16, ef_construction=40))
    found, _ = candidates_then_rescore(index, queries, items, 20)
    assert recall(found, truth) >= 0.9


@needs_faiss
def test_flat_candidates_match_top_n_with_exclusions_and_filters() -> None:
    items, queries = clustered(4_000, 9, 12, seed=3)
    rng = np.random.default_rng(3)
    k = 15
    allowed = rng.random(len(items)) < 0.3
    held = [rng.choice(len(items), size=int(rng.integers(0, 30)), replace=False) for _ in queries]
    truth_i, truth_v = top_n(queries @ items.T, k, exclude=held, allowed=allowed)
    index = MipsIndex.build(items, MipsConfig(kind="flat"))
    got_i, got_v = candidates_then_rescore(index, queries, items, k, exclude=held, allowed_mask=allowed)
    np.testing.assert_array_equal(got_i, truth_i)
    np.testing.assert_allclose(got_v, truth_v, rtol=1e-5)


@needs_faiss
def test_a_score_adjustment_is_exact_even_when_it_sinks_the_whole_first_pool() -> None:
    """A penalty (like a dislike push) on each query's 300 best items: the flat index's first
    pool (100) holds only penalised items, so it must widen to find the true top ``k``."""
    items, queries = clustered(3_000, 9, 8, seed=5)
    k = 10
    base = queries @ items.T
    sunk = np.argsort(-base, axis=1)[:, :300]
    penalty = np.zeros_like(base)
    np.put_along_axis(penalty, sunk, -1e3, axis=1)
    penalty[:, ::7] -= 0.5  # and a mild one everywhere else
    truth_i, truth_v = top_n(base + penalty, k)
    calls: list[int] = []

    def adjust(rows: np.ndarray, cand: np.ndarray) -> np.ndarray:
        calls.append(cand.shape[1])
        return np.take_along_axis(penalty[rows], cand, axis=1)

    index = MipsIndex.build(items, MipsConfig(kind="flat"))
    got_i, got_v = candidates_then_rescore(index, queries, items, k, adjust=adjust)
    np.testing.assert_array_equal(got_i, truth_i)
    np.testing.assert_allclose(got_v, truth_v, rtol=1e-5)
    assert calls[0] == 100 and max(calls) > 300  # it widened past the sunk items


@needs_faiss
@pytest.mark.parametrize("kind", KINDS)
def test_exclusions_and_filters_are_honoured(kind: IndexKind) -> None:
    items, queries = clustered(5_000, 9, 10, seed=4)
    k = 30
    truth = exact(items, queries, k)
    held = [t[:10] for t in truth]  # the 10 best of each query are already held
    allowed = np.ones(len(items), bool)
    allowed[truth[:, 10:20].ravel()] = False  # and the next 10 are filtered out
    index = MipsIndex.build(items, MipsConfig(kind=kind))
    for exclude in (
        held,
        sp.csr_matrix((np.ones(100), np.concatenate(held), np.arange(0, 101, 10)), (10, 5000)),
    ):
        got, vals = candidates_then_rescore(index, queries, items, k, exclude=exclude, allowed_mask=allowed)
        assert np.all(got >= 0) and np.all(np.isfinite(vals))
        assert allowed[got].all()
        for row, h in zip(got, held, strict=True):
            assert not np.isin(row, h).any()
        want = exact(items, queries, k, exclude=held, allowed=allowed)
        assert recall(got, want) >= 0.9


@needs_faiss
def test_widening_recovers_when_filters_empty_the_probed_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two far-apart clusters; queries point at cluster A but only cluster B is allowed,
    # so the IVF cells nearest the queries hold no allowed item at all.
    rng = np.random.default_rng(5)
    d, half = 8, 2_000
    a = rng.standard_normal((half, d)) + 20 * np.eye(d)[0]
    b = rng.standard_normal((half, d)) - 20 * np.eye(d)[0]
    items = np.vstack([a, b]).astype(np.float32)
    queries = (rng.standard_normal((5, d)) + 5 * np.eye(d)[0]).astype(np.float32)
    allowed = np.arange(2 * half) >= half
    k = 10
    want = exact(items, queries, k, allowed=allowed)
    index = MipsIndex.build(items, MipsConfig(n_lists=40, n_probe=1), rng=np.random.default_rng(0))

    pools: list[int] = []
    search = MipsIndex.search

    def spy(self: MipsIndex, q: np.ndarray, kk: int, **kw: object) -> tuple[np.ndarray, np.ndarray]:
        pools.append(kk)
        return search(self, q, kk, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(MipsIndex, "search", spy)
    got, _ = candidates_then_rescore(index, queries, items, k, n_candidates=k, allowed_mask=allowed)
    assert pools[:2] == [k, 4 * k], pools  # the pool was widened
    assert np.all(got >= 0) and allowed[got].all()
    assert recall(got, want) >= 0.8

    pools.clear()  # without retries and fallback, the short rows stay padded
    got, _ = candidates_then_rescore(
        index, queries, items, k, n_candidates=k, allowed_mask=allowed, max_retries=0, exact_fallback=False
    )
    assert pools == [k]
    assert (got == -1).any()


@needs_faiss
def test_padding_when_fewer_items_than_k_are_eligible() -> None:
    items, queries = clustered(500, 5, 3)
    index = MipsIndex.build(items)
    allowed = np.zeros(500, bool)
    allowed[[3, 7, 11]] = True
    got, vals = candidates_then_rescore(
        index, queries, items, 5, exclude=[[7], [], [3, 7, 11]], allowed_mask=allowed
    )
    assert set(got[0, :2]) == {3, 11} and np.all(got[0, 2:] == -1)
    assert set(got[1, :3]) == {3, 7, 11}
    assert np.all(got[2] == -1) and np.all(np.isneginf(vals[2]))
    _, idx = index.search(queries, 600)  # more than the catalogue
    assert idx.shape == (3, 600) and np.all(idx[:, 500:] == -1)


@needs_faiss
def test_same_seed_same_index_and_save_load_round_trip(tmp_path: Path) -> None:
    items, queries = clustered(5_000, 9, 10)
    one = MipsIndex.build(items, rng=np.random.default_rng(7))
    two = MipsIndex.build(items, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(one.search(queries, 20)[1], two.search(queries, 20)[1])
    path = tmp_path / "index.npz"
    one.save(path)
    back = MipsIndex.load(path)
    assert back.config == one.config and (back.n_items, back.dim) == (5_000, 9)
    for a, b in zip(one.search(queries, 20), back.search(queries, 20), strict=True):
        np.testing.assert_array_equal(a, b)


@needs_faiss
def test_zero_query_does_not_break_scores() -> None:
    items, _ = clustered(1_000, 5, 1)
    index = MipsIndex.build(items)
    scores, idx = index.search(np.zeros((1, 5), np.float32), 3)
    assert np.all(idx >= 0) and np.allclose(scores, 0, atol=1e-3)


@needs_faiss
def test_bad_input_gives_clear_errors() -> None:
    items, queries = clustered(1_000, 5, 2)
    index = MipsIndex.build(items, MipsConfig(kind="flat"))
    with pytest.raises(ValueError, match="dimension 4, but the index has dimension 5"):
        index.search(queries[:, :4], 3)
    with pytest.raises(ValueError, match="2-D"):
        index.search(queries[0], 3)
    with pytest.raises(TypeError, match="floats"):
        index.search(queries.astype(np.int64), 3)
    with pytest.raises(ValueError, match="NaN"):
        index.search(np.full((1, 5), np.nan, np.float32), 3)
    with pytest.raises(ValueError, match="positive integer"):
        index.search(queries, 0)
    with pytest.raises(ValueError, match=r"item_vectors has shape \(999, 5\)"):
        candidates_then_rescore(index, queries, items[:999], 3)
    with pytest.raises(TypeError, match="float32"):
        candidates_then_rescore(index, queries, items.astype(np.float64), 3)
    with pytest.raises(ValueError, match="bool array of shape"):
        candidates_then_rescore(index, queries, items, 3, allowed_mask=np.ones(1_000, np.int8))
    with pytest.raises(ValueError, match="n_candidates"):
        candidates_then_rescore(index, queries, items, 30, n_candidates=10)
    with pytest.raises(ValueError, match="outside"):
        candidates_then_rescore(index, queries, items, 3, exclude=[[1_000], []])
    with pytest.raises(ValueError, match="one per query"):
        candidates_then_rescore(index, queries, items, 3, exclude=[[1]])
    with pytest.raises(ValueError, match="kind"):
        MipsConfig(kind="lsh")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        MipsIndex.build(np.zeros((0, 5), np.float32))


def test_missing_faiss_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)  # makes `import faiss` raise ImportError
    with pytest.raises(ImportError, match=r"movierec\[ann\]"):
        MipsIndex.build(np.ones((3, 2), np.float32))
