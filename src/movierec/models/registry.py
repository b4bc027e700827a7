"""Model names used on the command line, mapped lazily to their classes."""

from __future__ import annotations

import importlib
from typing import Any

from movierec.models.base import Recommender
from movierec.models.configs import knows

#: name -> "module:Class"; imported only when asked for (heavy extras stay lazy).
MODELS: dict[str, str] = {
    "pop": "movierec.models.popularity:Popularity",
    "itemknn": "movierec.models.knn:ItemKNN",
    "userknn": "movierec.models.knn:UserKNN",
    "mf": "movierec.models.mf:BiasedMF",
    "als": "movierec.models.als:ALS",
    "ease": "movierec.models.ease:EASE",
    "mlp-reg": "movierec.models.rating_mlp:RatingRegressor",
    "mlp-clf": "movierec.models.rating_mlp:RatingClassifier",
    "gmf": "movierec.models.ncf:GMF",
    "mlp": "movierec.models.ncf:NCFMLP",
    "neumf": "movierec.models.ncf:NeuMF",
    "autorec": "movierec.models.autorec:AutoRec",
    "sparsefc": "movierec.models.autorec:SparseFC",
    "multvae": "movierec.models.autoencoders:MultVAE",
    "recvae": "movierec.models.autoencoders:RecVAE",
    "transitions": "movierec.models.transitions:Transitions",
    "sequence": "movierec.models.sequence:SequenceLSTM",
    "sequence-attn": "movierec.models.sequence:SequenceAttention",
    "content": "movierec.models.content:ContentRecommender",
    "hybrid": "movierec.models.hybrid:Hybrid",
}


#: Named presets: config overrides per model for one purpose. ``served``: what ``movierec run``
#: trains as the page's default model (one torch thread: on a busy 2-core machine 2 threads made
#: a fit more than 5x slower; a progress bar for the training log; item-kNN's 100 neighbours).
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "served": {
        "sequence-attn": {"threads": 1, "progress": True},
        "sequence": {"threads": 1, "progress": True},
        "itemknn": {"k": 100},
        "pop": {},
    },
}


def preset(purpose: str, name: str) -> dict[str, Any]:
    """Config overrides of preset ``purpose`` for model ``name`` (only fields its config has;
    ``{}`` for a model the preset does not name)."""
    if purpose not in PRESETS:
        raise ValueError(f"unknown preset {purpose!r}; choose one of: {', '.join(PRESETS)}")
    wanted = PRESETS[purpose].get(name, {})
    config = model_class(name).Config
    return {k: v for k, v in wanted.items() if knows(config, k)}


class UnknownModelError(ValueError):
    """A model name that is not registered."""


def available() -> list[str]:
    """Registered names whose module can be imported in this install."""
    out = []
    for name in MODELS:
        try:
            model_class(name)
        except (UnknownModelError, ImportError):
            continue
        out.append(name)
    return out


def model_class(name: str) -> type[Recommender]:
    """The class registered under ``name``."""
    if name not in MODELS:
        raise UnknownModelError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    module, _, cls = MODELS[name].partition(":")
    try:
        found: type[Recommender] = getattr(importlib.import_module(module), cls)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("movierec"):
            raise UnknownModelError(f"model {name!r} is not implemented in this version") from exc
        raise
    return found


def create(name: str, **overrides: Any) -> Recommender:
    """A new, unfitted model ``name`` with config fields overridden by ``overrides``."""
    return model_class(name)(**overrides)
