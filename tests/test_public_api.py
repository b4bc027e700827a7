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


def test_the_library_works_without_the_serve_extra() -> None:
    """fastapi, uvicorn and typer come with ``movierec[serve]``: without them (made unimportable
    here) the library still loads data, trains, recommends, evaluates and gives the engine's answer."""
    code = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("fastapi", "uvicorn", "typer", "starlette", "swagger_ui_bundle"):
            raise ModuleNotFoundError(f"blocked {name}")
sys.meta_path.insert(0, Block())
import numpy as np
import movierec as mr
from movierec.data.synthetic import checkerboard
from movierec.serving import Engine
data = checkerboard(40, 30, 0.6, np.random.default_rng(0))
model = mr.create("ease").fit(data)
top = mr.recommend(model, [mr.Query.session([0, 1])], 5)[0].movies
assert top.size == 5, top
res = mr.evaluate(["pop", "ease"], data, "topn")
assert len(res) == 2
class S:
    liked, disliked, liked_tags, disliked_tags, filters = [int(data.movies.ids[0])], [], [], [], {}
answer = Engine.from_dataset(model, data).recommend(S(), 5, 0)
assert len(answer.movies) == 5
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")
