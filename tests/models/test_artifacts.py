"""save_model / load_model refuse damaged or mismatched artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from movierec.data.synthetic import checkerboard
from movierec.models.artifacts import ArtifactError, load_model, read_meta, save_model
from movierec.models.base import Query
from movierec.models.knn import ItemKNN


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, ItemKNN, str]:
    data = checkerboard(10, 12, 0.5, np.random.default_rng(0))
    model = ItemKNN(k=5).fit(data)
    return save_model(model, tmp_path / "knn", metrics={"ndcg@10": 0.5}), model, data.fingerprint()


def test_round_trip_keeps_scores_config_and_meta(saved: tuple[Path, ItemKNN, str]) -> None:
    path, model, fp = saved
    loaded = load_model(path, expect_fingerprint=fp)
    assert isinstance(loaded, ItemKNN) and loaded.config == model.config
    q = [Query.session(liked=[0, 2])]
    np.testing.assert_array_equal(loaded.score(q), model.score(q))
    meta = read_meta(path)
    assert meta["model"] == "itemknn" and meta["metrics"] == {"ndcg@10": 0.5}


def test_tampered_config_fails_the_checksum(saved: tuple[Path, ItemKNN, str]) -> None:
    path, _, _ = saved
    cfg = json.loads((path / "config.json").read_text())
    cfg["k"] = 6
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ArtifactError, match="checksum"):
        load_model(path)


def test_truncated_weights_fail(saved: tuple[Path, ItemKNN, str]) -> None:
    path, _, _ = saved
    weights = path / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(ArtifactError, match="truncated or modified"):
        load_model(path)


def test_missing_file_and_missing_directory(saved: tuple[Path, ItemKNN, str], tmp_path: Path) -> None:
    path, _, _ = saved
    (path / "vocab.json").unlink()
    with pytest.raises(ArtifactError, match="missing"):
        load_model(path)
    with pytest.raises(ArtifactError, match="not a movierec model directory"):
        load_model(tmp_path / "nowhere")


def test_wrong_fingerprint_is_refused(saved: tuple[Path, ItemKNN, str]) -> None:
    path, _, fp = saved
    with pytest.raises(ArtifactError, match="other data"):
        load_model(path, expect_fingerprint="0" * 16)
    load_model(path, expect_fingerprint=fp)  # the right one loads


def test_saving_again_replaces_atomically(saved: tuple[Path, ItemKNN, str]) -> None:
    path, model, _ = saved
    save_model(model, path)
    assert sorted(p.name for p in path.iterdir()) == [
        "config.json",
        "meta.json",
        "vocab.json",
        "weights.safetensors",
    ]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]
