"""Approximate top-N for large catalogues: a FAISS maximum-inner-product index
plus exact re-scoring of its candidates.

A model whose movie scores are an inner product, ``score = q @ items.T`` (the
sequence model folds its bias in as an extra column), can rank a catalogue of
millions without scoring every movie: an approximate nearest-neighbour (ANN)
index proposes a few hundred candidates per query, numpy scores those exactly,
and exclusions / filters are applied to them, widening the pool if the filters
leave too few.

FAISS is an optional dependency (the ``ann`` extra: ``pip install 'movierec[ann]'``,
i.e. ``faiss-cpu``); it is imported only when an index is built or loaded.

Index kinds (:class:`MipsConfig.kind`)
--------------------------------------
``"ivf"`` (default)
    The MIPS -> L2 reduction (Bachrach et al., 2014: append
    ``sqrt(M^2 - |x|^2)`` to every item, ``0`` to every query, so that the
    nearest item in L2 is the one with the largest inner product) followed by
    ``IndexIVFFlat``: k-means splits the items into ``n_lists`` cells and a
    query scans the ``n_probe`` nearest cells exhaustively. Builds in seconds
    on one core (k-means on a sample + one assignment pass), memory is the raw
    vectors, and ``n_probe`` trades latency for recall linearly. Scores inside
    the probed cells are exact.
``"hnsw"``
    The same reduction followed by ``IndexHNSWFlat`` (a navigable small-world
    graph). No training, but the build is slow single-threaded (20 s for
    50,000 items, so many minutes for a million), the graph costs
    ``~2 * hnsw_m * 4`` extra bytes per item, the build is deterministic only
    with one OpenMP thread, and it needs a wide search beam: recall@100 0.75 /
    0.94 at ``ef_search`` 200 / 800 on 50,000 benchmark items. (HNSW with
    ``METRIC_INNER_PRODUCT`` on the raw vectors did well on isotropic data but
    reached only 0.44-0.47 once the popularity-bias column mattered.)
``"flat"``
    Exact ``IndexFlatIP`` (brute force); a reference and for small catalogues.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from movierec.topn import top_n

#: ``adjust(rows (r,) int64, candidates (r, C) int64) -> (r, C) float``: see :func:`candidates_then_rescore`
Adjust = Callable[[np.ndarray, np.ndarray], np.ndarray]

__all__ = ["MipsConfig", "MipsIndex", "candidates_then_rescore"]

IndexKind = Literal["ivf", "hnsw", "flat"]
_FORMAT = 1


def _faiss() -> ModuleType:
    """Import FAISS lazily, with an error that says how to install it."""
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "movierec.retrieval needs FAISS: install the 'ann' extra "
            "(pip install 'movierec[ann]') or pip install faiss-cpu"
        ) from exc
    return faiss


@dataclass(frozen=True)
class MipsConfig:
    """How to build a :class:`MipsIndex`.

    Attributes
    ----------
    kind:
        ``"ivf"`` (default), ``"hnsw"`` or ``"flat"``; see the module docstring.
    n_lists:
        IVF cells; ``None`` means ``round(sqrt(n_items))`` (1,000 for a million
        items). More cells make each probe cheaper but need more probes for the
        same recall and make training and assignment slower (both scale with it).
    n_probe:
        IVF cells scanned per query (at least; :meth:`MipsIndex.search` raises it
        so that the probed cells hold about ``2 * k`` items, and for filters).
        Recall and latency both grow with it: on the 1,000,000-item benchmark
        (``benchmarks/bench_ann.py``, 1,000 cells) recall@100 was 0.84 / 0.94 /
        0.97 at 16 / 32 / 48 probes, for ~1-2 ms per query on one core against
        ~125 ms for the exact scan (contended CPU).
    train_per_list:
        k-means training points per cell (sampled from the items with the
        given generator; FAISS warns below 39).
    n_iter:
        k-means iterations.
    hnsw_m:
        HNSW graph degree: higher gives better recall and more memory.
    ef_construction:
        HNSW build beam width: higher gives a better graph and a slower build.
    ef_search:
        HNSW search beam width (at least; raised to ``k``): recall vs latency.
    """

    kind: IndexKind = "ivf"
    n_lists: int | None = None
    n_probe: int = 32
    train_per_list: int = 64
    n_iter: int = 10
    hnsw_m: int = 32
    ef_construction: int = 64
    ef_search: int = 512

    def __post_init__(self) -> None:
        if self.kind not in ("ivf", "hnsw", "flat"):
            raise ValueError(f"kind must be 'ivf', 'hnsw' or 'flat', got {self.kind!r}")
        for name in ("n_probe", "train_per_list", "n_iter", "hnsw_m", "ef_construction", "ef_search"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_lists is not None and self.n_lists < 1:
            raise ValueError(f"n_lists must be >= 1 or None, got {self.n_lists}")


def _as_vectors(x: Any, what: str, dim: int | None = None) -> np.ndarray:
    """Validate a 2-D float array and return it as C-contiguous float32."""
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (rows, dim), got shape {arr.shape}")
    if arr.dtype.kind != "f":
        raise TypeError(f"{what} must hold floats, got dtype {arr.dtype}")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{what} has dimension {arr.shape[1]}, but the index has dimension {dim}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    return arr


def _check_mask(mask: Any, n: int) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.dtype != np.bool_ or arr.shape != (n,):
        raise ValueError(f"allowed mask must be a bool array of shape ({n},), got {arr.dtype} {arr.shape}")
    return arr


def _check_k(k: int, what: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"{what} must be a positive integer, got {k!r}")
    return int(k)


class MipsIndex:
    """Maximum-inner-product search over fixed item vectors.

    Build with :meth:`build`; ``search`` returns the (approximately) highest
    ``query @ item`` scores.

    Attributes
    ----------
    config:
        The :class:`MipsConfig` it was built with.
    n_items, dim:
        Number of indexed items and their dimension (``d + 1`` for a model that
        folds its bias in).
    """

    def __init__(self, index: Any, config: MipsConfig, n_items: int, dim: int, max_norm: float) -> None:
        # Prefer MipsIndex.build / MipsIndex.load.
        self._index = index
        self.config = config
        self.n_items = int(n_items)
        self.dim = int(dim)
        self._max_norm = float(max_norm)

    @classmethod
    def build(
        cls,
        item_vectors: np.ndarray,
        config: MipsConfig | None = None,
        *,
        rng: np.random.Generator | None = None,
    ) -> MipsIndex:
        """Index ``item_vectors``.

        Parameters
        ----------
        item_vectors:
            ``(n_items, dim)`` float array; row ``i`` is movie *index* ``i``.
        config:
            Index kind and parameters; defaults to ``MipsConfig()`` (IVF).
        rng:
            Picks the k-means training sample and seeds FAISS's k-means, so the
            same seed gives the same IVF index (for a fixed FAISS thread count).
            Defaults to ``np.random.default_rng(0)``. HNSW's build does not take
            a seed; it is deterministic only with one OpenMP thread.
        """
        faiss = _faiss()
        config = config or MipsConfig()
        rng = rng if rng is not None else np.random.default_rng(0)
        items = _as_vectors(item_vectors, "item_vectors")
        n, dim = items.shape
        if n == 0:
            raise ValueError("item_vectors is empty: nothing to index")
        if config.kind == "flat":
            index = faiss.IndexFlatIP(dim)
            index.add(items)
            return cls(index, config, n, dim, 0.0)
        sq = np.einsum("ij,ij->i", items, items, dtype=np.float64)
        max_norm = float(np.sqrt(sq.max())) or 1.0  # any M >= every norm works; 0 would divide
        extra = np.sqrt(np.maximum(max_norm**2 - sq, 0.0)).astype(np.float32)
        aug = np.empty((n, dim + 1), np.float32)
        aug[:, :dim] = items
        aug[:, dim] = extra
        if config.kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim + 1, config.hnsw_m, faiss.METRIC_L2)
            index.hnsw.efConstruction = config.ef_construction
            index.add(aug)
            return cls(index, config, n, dim, max_norm)
        n_lists = min(config.n_lists or max(1, round(math.sqrt(n))), n)
        quantizer = faiss.IndexFlatL2(dim + 1)
        index = faiss.IndexIVFFlat(quantizer, dim + 1, n_lists, faiss.METRIC_L2)
        index.cp.seed = int(rng.integers(2**31 - 1))
        index.cp.niter = config.n_iter
        n_train = min(n, n_lists * config.train_per_list)
        index.cp.max_points_per_centroid = max(1, math.ceil(n_train / n_lists))  # no re-sampling
        sample = np.sort(rng.choice(n, size=n_train, replace=False)) if n_train < n else np.arange(n)
        index.train(aug[sample])
        index.add(aug)
        return cls(index, config, n, dim, max_norm)

    def search(
        self, query_vectors: np.ndarray, k: int, *, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top ``k`` items by inner product, per query.

        Parameters
        ----------
        query_vectors:
            ``(B, dim)`` float array.
        k:
            How many items per query.
        allowed:
            Optional bool ``(n_items,)``: search only these items (a FAISS
            ``IDSelectorBitmap``, so disallowed items cost a bit test, not a
            distance). The filtered top ``k`` lies deeper in the unfiltered
            ranking, so IVF then probes ``n_probe / sqrt(allowed fraction)`` cells
            (a heuristic: recall@100 0.79 -> 0.97 at 10% allowed on the benchmark's data).

        Returns
        -------
        scores:
            ``(B, k)`` float32 inner products, best first (``-inf`` at padding).
            Exact for ``"flat"``; for ``"ivf"`` and ``"hnsw"`` recovered from L2
            distances, so equal to the exact score up to float32 rounding (rescore
            with :func:`candidates_then_rescore` where exact ties matter).
        indices:
            ``(B, k)`` int64 item *indices*, ``-1`` where fewer than ``k`` were found
            (``k`` larger than the catalogue, or too few items in the probed IVF cells).
        """
        faiss = _faiss()
        k = _check_k(k)
        q = _as_vectors(query_vectors, "query_vectors", self.dim)
        b = q.shape[0]
        kk = min(k, self.n_items)
        n_allowed = self.n_items
        sel_kw: dict[str, Any] = {}
        if allowed is not None:
            mask = _check_mask(allowed, self.n_items)
            n_allowed = int(mask.sum())
            bits = np.packbits(mask, bitorder="little")  # referenced until the search returns
            sel_kw["sel"] = faiss.IDSelectorBitmap(self.n_items, faiss.swig_ptr(bits))
        if b == 0 or n_allowed == 0:
            return np.full((b, k), -np.inf, np.float32), np.full((b, k), -1, np.int64)
        if self.config.kind == "flat":
            scores, idx = self._index.search(q, kk, params=faiss.SearchParameters(**sel_kw))
        else:
            # Scale each query to norm M, the items' sphere: the ranking within a cell is
            # unchanged, and cells are then chosen by inner product with their centroid
            # rather than penalised for the centroid's norm (recall@100 0.91 -> 0.93 at
            # 32 probes on the benchmark's data).
            norm = np.sqrt(np.einsum("ij,ij->i", q, q))[:, None]
            scale = np.where(norm > 0, self._max_norm / np.maximum(norm, 1e-30), 1.0).astype(np.float32)
            aug = np.zeros((b, self.dim + 1), np.float32)
            aug[:, : self.dim] = q * scale
            params: Any
            if self.config.kind == "hnsw":
                params = faiss.SearchParametersHNSW(efSearch=max(self.config.ef_search, kk), **sel_kw)
            else:
                n_lists = int(self._index.nlist)
                n_probe = max(
                    math.ceil(self.config.n_probe * math.sqrt(self.n_items / n_allowed)),
                    math.ceil(2 * kk * n_lists / n_allowed),  # cells holding ~2k allowed items
                )
                params = faiss.SearchParametersIVF(nprobe=min(n_lists, n_probe), **sel_kw)
            dist, idx = self._index.search(aug, kk, params=params)
            # |s q - x|^2 = |s q|^2 + M^2 - 2 s q.x  (every augmented item has norm M)
            sq_norm = (scale * norm) ** 2  # M^2, or 0 for a zero query
            scores = (sq_norm + np.float32(self._max_norm**2) - dist) / (2 * scale)
        idx = np.asarray(idx, np.int64)
        scores = np.where(idx >= 0, scores, -np.inf).astype(np.float32)
        if kk < k:
            idx = np.pad(idx, ((0, 0), (0, k - kk)), constant_values=-1)
            scores = np.pad(scores, ((0, 0), (0, k - kk)), constant_values=-np.inf)
        return scores, idx

    @property
    def nbytes(self) -> int:
        """Size of the serialised FAISS index in bytes (close to its memory footprint)."""
        return int(_faiss().serialize_index(self._index).size)

    def save(self, path: str | Path) -> None:
        """Write the index to one ``.npz`` file (no pickle)."""
        faiss = _faiss()
        meta = {
            "format": _FORMAT,
            "config": asdict(self.config),
            "n_items": self.n_items,
            "dim": self.dim,
            "max_norm": self._max_norm,
        }
        with open(path, "wb") as fh:
            np.savez(
                fh,
                faiss=faiss.serialize_index(self._index),
                meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
            )

    @classmethod
    def load(cls, path: str | Path) -> MipsIndex:
        """Read an index written by :meth:`save`."""
        faiss = _faiss()
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes().decode())
            if meta.get("format") != _FORMAT:
                raise ValueError(f"{path}: unsupported MipsIndex format {meta.get('format')!r}")
            index = faiss.deserialize_index(np.ascontiguousarray(z["faiss"]))
        return cls(index, MipsConfig(**meta["config"]), meta["n_items"], meta["dim"], meta["max_norm"])


def _exclusion_keys(
    exclude: sp.spmatrix | sp.sparray | Sequence[np.ndarray] | None, b: int, n: int
) -> np.ndarray:
    """Sorted ``row * n + movie`` keys of the excluded (query, movie index) pairs."""
    if exclude is None:
        return np.zeros(0, np.int64)
    if sp.issparse(exclude):
        ex = sp.csr_matrix(exclude)
        if ex.shape != (b, n):
            raise ValueError(f"exclude has shape {ex.shape}, expected ({b}, {n})")
        rows = np.repeat(np.arange(b, dtype=np.int64), np.diff(ex.indptr))
        cols = ex.indices.astype(np.int64)
    else:
        lists = [np.asarray(x).ravel() for x in exclude]
        if len(lists) != b:
            raise ValueError(f"exclude has {len(lists)} rows, expected one per query ({b})")
        for x in lists:
            if x.size and x.dtype.kind not in "iu":
                raise TypeError(f"exclude must hold integer movie indices, got dtype {x.dtype}")
        rows = np.repeat(np.arange(b, dtype=np.int64), [x.size for x in lists])
        cols = np.concatenate([x.astype(np.int64) for x in lists]) if lists else np.zeros(0, np.int64)
    if cols.size and (cols.min() < 0 or cols.max() >= n):
        raise ValueError(f"exclude holds movie indices outside [0, {n})")
    return np.unique(rows * n + cols)


def _select(scores: np.ndarray, cand: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top ``k`` per row of ``scores`` (``-inf`` = ineligible), ties by lower movie index:
    :func:`movierec.topn.top_n` over the candidates put in index order.

    ``cand`` is ``(r, C)`` or ``(C,)`` (shared by all rows). Returns indices ``(r, k)``
    (``-1`` padded), scores ``(r, k)`` and the number of eligible candidates per row.
    """
    n_ok = np.isfinite(scores).sum(axis=1)
    if scores.shape[1] == 0 or k <= 0:
        return (
            np.full((scores.shape[0], k), -1, np.int64),
            np.full((scores.shape[0], k), -np.inf, np.float32),
            n_ok,
        )
    if cand.ndim == 1:
        order = np.argsort(cand, kind="stable")
        pos, vals = top_n(scores[:, order], k)
        ids = cand[order][np.maximum(pos, 0)]
    else:
        order = np.argsort(cand, axis=1, kind="stable")
        pos, vals = top_n(np.take_along_axis(scores, order, axis=1), k)
        ids = np.take_along_axis(np.take_along_axis(cand, order, axis=1), np.maximum(pos, 0), axis=1)
    return np.where(pos >= 0, ids, -1).astype(np.int64), vals, n_ok


def _mask(
    scores: np.ndarray,
    cand: np.ndarray,
    rows: np.ndarray,
    n: int,
    ex_keys: np.ndarray,
    allowed: np.ndarray | None,
) -> None:
    """Set ``scores`` to ``-inf`` in place where the candidate is padding, excluded or not allowed."""
    full = np.broadcast_to(cand, scores.shape)
    bad = full < 0
    safe = np.where(bad, 0, full)
    if allowed is not None:
        bad |= ~allowed[safe]
    if ex_keys.size:
        bad |= np.isin(rows[:, None] * n + safe, ex_keys)
    scores[bad] = -np.inf


def _exact(
    q: np.ndarray,
    rows: np.ndarray,
    items: np.ndarray,
    k: int,
    ex_keys: np.ndarray,
    allowed: np.ndarray | None,
    adjust: Adjust | None = None,
    chunk_elems: int = 1 << 22,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top ``k`` over all allowed items for the queries ``q`` (original rows ``rows``)."""
    n = items.shape[0]
    cand = np.flatnonzero(allowed) if allowed is not None else np.arange(n, dtype=np.int64)
    sub = items[cand] if allowed is not None else items
    ex_rows, ex_cols = np.divmod(ex_keys, n)
    pos = np.minimum(np.searchsorted(cand, ex_cols), max(cand.size - 1, 0))
    hit = cand[pos] == ex_cols if cand.size else np.zeros(ex_cols.size, bool)
    ex_rows, pos = ex_rows[hit], pos[hit]  # excluded (row, position in cand) pairs
    out_i = np.full((q.shape[0], k), -1, np.int64)
    out_v = np.full((q.shape[0], k), -np.inf, np.float32)
    step = max(1, chunk_elems // max(1, cand.size))
    for s in range(0, q.shape[0], step):
        chunk = rows[s : s + step]
        scores = q[s : s + step] @ sub.T
        if adjust is not None:
            scores += adjust(chunk, np.broadcast_to(cand, scores.shape))
        local = np.searchsorted(chunk, ex_rows)  # rows are sorted
        local = np.minimum(local, chunk.size - 1)
        sel = chunk[local] == ex_rows
        scores[local[sel], pos[sel]] = -np.inf
        out_i[s : s + step], out_v[s : s + step], _ = _select(scores, cand, k)
    return out_i, out_v


def _ann_pass(
    index: MipsIndex,
    q: np.ndarray,
    rows: np.ndarray,
    items: np.ndarray,
    k: int,
    pool: int,
    ex_keys: np.ndarray,
    allowed: np.ndarray | None,
    adjust: Adjust | None = None,
    chunk_elems: int = 1 << 23,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One candidate pass: search ``pool`` per query, rescore exactly, mask, keep ``k``.

    With ``adjust`` (never positive), a row counts as done only if its ``k``-th adjusted
    score is no lower than its pool's lowest unadjusted one, the best any movie outside
    the pool can score: else its ``n_ok`` is reported as short so the pool widens.
    """
    ids = np.empty((q.shape[0], k), np.int64)
    vals = np.empty((q.shape[0], k), np.float32)
    n_ok = np.empty(q.shape[0], np.int64)
    step = max(1, chunk_elems // (pool * items.shape[1]))
    for s in range(0, q.shape[0], step):
        qs = q[s : s + step]
        _, cand = index.search(qs, pool, allowed=allowed)
        safe = np.where(cand >= 0, cand, 0)
        scores = np.matmul(items[safe], qs[:, :, None])[:, :, 0]
        floor = None
        if adjust is not None:
            floor = np.where(cand >= 0, scores, np.inf).min(axis=1)
            scores += adjust(rows[s : s + step], safe)
        _mask(scores, cand, rows[s : s + step], index.n_items, ex_keys, allowed)
        ids[s : s + step], vals[s : s + step], n_ok[s : s + step] = _select(scores, cand, k)
        if floor is not None:
            unsure = vals[s : s + step, k - 1] < floor
            n_ok[s : s + step][unsure] = 0
    return ids, vals, n_ok


def candidates_then_rescore(
    index: MipsIndex,
    query_vectors: np.ndarray,
    item_vectors: np.ndarray,
    k: int,
    n_candidates: int | None = None,
    *,
    exclude: sp.spmatrix | sp.sparray | Sequence[np.ndarray] | None = None,
    allowed_mask: np.ndarray | None = None,
    max_retries: int = 3,
    widen_factor: int = 4,
    exact_fallback: bool = True,
    adjust: Adjust | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` items per query: ANN candidates, exact scores, exclusions and filters.

    The ANN index proposes ``n_candidates`` allowed items per query (at least
    ``k`` plus the largest number of excluded movies in a row; ``allowed_mask``
    is applied inside the index search); they are scored exactly
    (``query @ item_vectors[candidate]``), excluded ones are dropped and the
    best ``k`` kept. Rows left with fewer than ``k`` eligible candidates
    are searched again with a pool ``widen_factor`` times larger, at most
    ``max_retries`` times; rows still short then get an exact scan of all allowed
    items (``exact_fallback``), so they are padded only when fewer than ``k``
    items are eligible at all. When the allowed set is no larger than the pool,
    the allowed items are scored exactly without the index.

    Parameters
    ----------
    index:
        A :class:`MipsIndex` built from ``item_vectors``.
    query_vectors:
        ``(B, dim)`` float array.
    item_vectors:
        ``(n_items, dim)`` float32 array the index was built from (row = movie *index*).
    k:
        How many items per query.
    n_candidates:
        Initial candidate pool per query (``>= k``); default ``max(4 * k, 100)``.
    exclude:
        Movie *indices* to drop per query: a sparse ``(B, n_items)`` matrix or a
        list of ``B`` int arrays (the query's own movies), as in
        :func:`movierec.topn.top_n`.
    allowed_mask:
        Bool ``(n_items,)``: only these items may be returned (filters).
    max_retries, widen_factor:
        Bounds on widening the pool when exclusions / filters leave fewer than ``k``.
    exact_fallback:
        Scan all allowed items exactly for rows still short after the retries.
    adjust:
        ``adjust(rows, candidates) -> (r, C)`` float, never positive: added to the exact
        scores of the candidate item *indices* ``candidates`` ``(r, C)`` of the query rows
        ``rows`` ``(r,)`` (a model's score terms that are not an inner product, such as
        the sequence model's dislike push). A row's pool widens until its top ``k`` is
        exact: no adjusted candidate in it below the pool's lowest unadjusted score.

    Returns
    -------
    indices:
        ``(B, k)`` int64 movie *indices*, best first (ties: lower index first),
        ``-1`` where fewer than ``k`` were found. Same order of outputs as
        :func:`movierec.topn.top_n`.
    scores:
        ``(B, k)`` float32 exact scores (``-inf`` at padding).
    """
    k = _check_k(k)
    if max_retries < 0 or widen_factor < 2:
        raise ValueError("max_retries must be >= 0 and widen_factor >= 2")
    q = _as_vectors(query_vectors, "query_vectors", index.dim)
    items = np.asarray(item_vectors)
    if items.ndim != 2 or items.shape != (index.n_items, index.dim):
        raise ValueError(
            f"item_vectors has shape {items.shape}, but the index holds ({index.n_items}, {index.dim})"
        )
    if items.dtype != np.float32:
        raise TypeError(f"item_vectors must be float32 (convert once, not per call), got {items.dtype}")
    n, b = index.n_items, q.shape[0]
    allowed: np.ndarray | None = None
    n_allowed = n
    if allowed_mask is not None:
        allowed = _check_mask(allowed_mask, n)
        n_allowed = int(allowed.sum())
    pool = _check_k(n_candidates, "n_candidates") if n_candidates is not None else max(4 * k, 100)
    if pool < k:
        raise ValueError(f"n_candidates ({pool}) must be >= k ({k})")
    ex_keys = _exclusion_keys(exclude, b, n)
    out_i = np.full((b, k), -1, np.int64)
    out_v = np.full((b, k), -np.inf, np.float32)
    if b == 0 or n_allowed == 0:
        return out_i, out_v
    if ex_keys.size:  # room for the most-excluded row's held movies
        pool = max(pool, k + int(np.bincount(ex_keys // n, minlength=b).max()))
    todo = np.arange(b, dtype=np.int64)
    for _ in range(max_retries + 1):
        if pool >= n_allowed:  # scoring the allowed items exactly is as cheap as the index
            break
        ids, vals, n_ok = _ann_pass(index, q[todo], todo, items, k, pool, ex_keys, allowed, adjust)
        done = n_ok >= k
        out_i[todo[done]], out_v[todo[done]] = ids[done], vals[done]
        short = ~done
        if not exact_fallback:  # keep the best we have; later passes may improve it
            out_i[todo[short]], out_v[todo[short]] = ids[short], vals[short]
        todo = todo[short]
        if todo.size == 0:
            return out_i, out_v
        pool = min(n, pool * widen_factor)
    else:
        if not exact_fallback:
            return out_i, out_v
    out_i[todo], out_v[todo] = _exact(q[todo], todo, items, k, ex_keys, allowed, adjust)
    return out_i, out_v
