"""The model registry: names to classes, and presets beside the models."""

from __future__ import annotations

import pytest

from movierec.models.registry import MODELS, PRESETS, UnknownModelError, create, preset


def test_every_served_preset_names_registered_models_and_real_fields() -> None:
    for name, overrides in PRESETS["served"].items():
        assert name in MODELS
        assert preset("served", name) == overrides  # no field the model's config lacks
        create(name, **preset("served", name))  # and the model accepts them


def test_preset_lookups() -> None:
    assert preset("served", "sequence-attn")["threads"] == 1
    assert preset("served", "ease") == {}  # a model the preset does not name keeps its defaults
    with pytest.raises(ValueError, match="unknown preset"):
        preset("fastest", "ease")
    with pytest.raises(UnknownModelError):
        preset("served", "nope")
