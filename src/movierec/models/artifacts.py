"""Model artifacts: a directory with ``config.json``, ``weights.safetensors``,
``vocab.json`` and ``meta.json`` (checksums, data version, metrics, times).

Written atomically (temporary directory, then rename); loaded without the
training data and without unpickling anything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from movierec.data.ratings import RatingScale
from movierec.data.vocab import Vocabulary
from movierec.models.base import Recommender
from movierec.models.configs import config_from_dict

FORMAT_VERSION = 1
_FILES = ("config.json", "weights.safetensors", "vocab.json")


class ArtifactError(RuntimeError):
    """A model directory that is missing, truncated, tampered with or incompatible."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


#: ``fit_info.extra`` key (``meta.json``'s ``extra``) of a stand-in model: the name of the model
#: training in the background to replace it (``movierec run`` on a first start).
STANDIN_KEY = "standin_for"


def save_model(model: Recommender, path: str | Path, *, metrics: dict[str, Any] | None = None) -> Path:
    """Write ``model`` to directory ``path`` atomically (replacing an older one)."""
    model._check_fitted()
    assert model.movies is not None and model.users is not None and model.tags is not None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        (tmp / "config.json").write_text(
            json.dumps(dataclasses.asdict(model.config), indent=2, sort_keys=True)
        )
        state = {k: np.ascontiguousarray(v) for k, v in model.state().items()}
        save_file(state or {"_empty": np.zeros(1, np.float32)}, str(tmp / "weights.safetensors"))
        vocab = {
            "users": model.users.to_list(),
            "movies": model.movies.to_list(),
            "tags": model.tags.to_list(),
            "scale": model.scale.to_dict() if model.scale else None,
        }
        (tmp / "vocab.json").write_text(json.dumps(vocab))
        meta = {
            "format": FORMAT_VERSION,
            "model": model.name,
            "dataset": model.fit_info.dataset,
            "data_fingerprint": model.fit_info.data_fingerprint,
            "fit_seconds": model.fit_info.fit_seconds,
            "epochs": model.fit_info.epochs,
            "history": model.fit_info.history,
            "extra": model.fit_info.extra,
            "metrics": metrics or {},
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "sha256": {name: _sha256(tmp / name) for name in _FILES},
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def read_meta(path: str | Path) -> dict[str, Any]:
    """The artifact's ``meta.json``; :class:`ArtifactError` if absent or unreadable."""
    path = Path(path)
    try:
        meta: dict[str, Any] = json.loads((path / "meta.json").read_text())
    except FileNotFoundError as exc:
        raise ArtifactError(
            f"{path} is not a movierec model directory (no meta.json); train one with `movierec train`"
        ) from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path / 'meta.json'} is unreadable ({exc}); retrain the model") from exc
    if meta.get("format") != FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: artifact format {meta.get('format')!r}, this movierec reads {FORMAT_VERSION}; retrain"
        )
    return meta


def load_model(path: str | Path, *, expect_fingerprint: str | None = None) -> Recommender:
    """Load a model directory written by :func:`save_model`, verifying checksums.

    ``expect_fingerprint`` refuses a model trained on other data.
    """
    from movierec.models.registry import model_class

    path = Path(path)
    meta = read_meta(path)
    for name in _FILES:
        f = path / name
        if not f.exists():
            raise ArtifactError(f"{f} is missing; the artifact is incomplete, retrain the model")
        if _sha256(f) != meta.get("sha256", {}).get(name):
            raise ArtifactError(
                f"{f} does not match its checksum in meta.json (truncated or modified); retrain the model"
            )
    if expect_fingerprint is not None and meta.get("data_fingerprint") != expect_fingerprint:
        raise ArtifactError(
            f"{path} was trained on other data (fingerprint {meta.get('data_fingerprint')}, expected {expect_fingerprint})"
        )
    cls = model_class(meta["model"])
    try:
        config = config_from_dict(cls.Config, json.loads((path / "config.json").read_text()))
    except (TypeError, ValueError) as exc:
        raise ArtifactError(f"{path}/config.json does not fit model {meta['model']!r}: {exc}") from exc
    model = cls(config)
    vocab = json.loads((path / "vocab.json").read_text())
    model.users = Vocabulary.from_list(vocab["users"], "user")
    model.movies = Vocabulary.from_list(vocab["movies"], "movie")
    model.tags = Vocabulary(np.asarray(vocab["tags"], dtype=object), "tag")
    model.scale = RatingScale(**vocab["scale"]) if vocab.get("scale") else None
    model.fit_info.dataset = meta.get("dataset", "")
    model.fit_info.data_fingerprint = meta.get("data_fingerprint", "")
    model.fit_info.fit_seconds = meta.get("fit_seconds", 0.0)
    model.fit_info.epochs = meta.get("epochs", 0)
    model.fit_info.history = meta.get("history", [])
    model.fit_info.extra = meta.get("extra", {})
    state = load_file(str(path / "weights.safetensors"))
    state.pop("_empty", None)
    try:
        model.load_state(state)
    except (KeyError, ValueError) as exc:
        raise ArtifactError(f"{path}: weights do not fit model {meta['model']!r}: {exc}") from exc
    return model
