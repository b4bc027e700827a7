"""movierec: an interactive movie recommender and the library behind it.

The names most uses need, importable from the package itself (loaded on first use, so
``import movierec`` stays light: torch and the web stack load only with what needs them)::

    import movierec as mr

    data = mr.load_dataset("ml-latest-small")
    model = mr.create("ease").fit(data)
    matrix = data.movies.index_one(2571)  # movie id -> the models' index
    top = mr.recommend(model, [mr.Query.session([matrix])], 10)[0].movies
    results = mr.evaluate(["pop", "ease"], data, "session")

Everything else lives in the subpackages: ``movierec.data``, ``movierec.models``,
``movierec.ranking``, ``movierec.evaluation``, ``movierec.serving``, ``movierec.service``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: public name -> the module that defines it
_EXPORTS = {
    "Dataset": "movierec.data.dataset",
    "load_dataset": "movierec.data.load",
    "Settings": "movierec.settings",
    "Query": "movierec.models.base",
    "Recommender": "movierec.models.base",
    "create": "movierec.models.registry",
    "available": "movierec.models.registry",
    "save_model": "movierec.models.artifacts",
    "load_model": "movierec.models.artifacts",
    "Catalog": "movierec.ranking",
    "Filters": "movierec.ranking",
    "recommend": "movierec.ranking",
    "evaluate": "movierec.evaluation.harness",
    "Engine": "movierec.serving",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'movierec' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
