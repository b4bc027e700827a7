"""The package's public names: each resolves to the object its module defines, and importing
the package loads neither torch nor the web stack."""

from __future__ import annotations

import subprocess
import sys

import pytest

import movierec


@pytest.mark.parametrize("name", movierec.__all__)
def test_every_public_name_resolves(name: str) -> None:
    from importlib import import_module

    obj = getattr(movierec, name)
    assert obj is getattr(import_module(movierec._EXPORTS[name]), name)


def test_importing_the_package_is_light() -> None:
    code = (
        "import sys, movierec; print(sorted(m for m in ('torch', 'fastapi', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        movierec.nope  # noqa: B018
