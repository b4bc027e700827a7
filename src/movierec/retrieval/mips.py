"""The FAISS maximum-inner-product index (:class:`MipsIndex`) and how it is built
(:class:`MipsConfig`); FAISS is imported only when an index is built or loaded.

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
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np

__all__ = ["IndexKind", "MipsConfig", "MipsIndex"]

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


def as_vectors(x: Any, what: str, dim: int | None = None) -> np.ndarray:
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


def check_mask(mask: Any, n: int) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.dtype != np.bool_ or arr.shape != (n,):
        raise ValueError(f"allowed mask must be a bool array of shape ({n},), got {arr.dtype} {arr.shape}")
    return arr


def check_k(k: int, what: str = "k") -> int:
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
        items = as_vectors(item_vectors, "item_vectors")
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
        k = check_k(k)
        q = as_vectors(query_vectors, "query_vectors", self.dim)
        b = q.shape[0]
        kk = min(k, self.n_items)
        n_allowed = self.n_items
        sel_kw: dict[str, Any] = {}
        if allowed is not None:
            mask = check_mask(allowed, self.n_items)
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
