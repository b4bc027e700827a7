"""Evaluate several models under one protocol on one split."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from movierec.data.dataset import Dataset
from movierec.evaluation.protocols import Result, get_protocol, run
from movierec.models.registry import create

__all__ = ["evaluate"]

log = logging.getLogger(__name__)

# child seeds of the run seed: the split, each model's fit, the bootstrap
_SPLIT, _FIT, _STATS = 0, 1, 2


def evaluate(
    models: Sequence[str],
    data: Dataset,
    protocol: str,
    seed: int = 0,
    ks: Sequence[int] | None = None,
    split: str | None = None,
    model_overrides: Mapping[str, Mapping[str, Any]] | None = None,
    n_resamples: int = 1000,
) -> list[Result]:
    """Split ``data`` once with ``protocol``, then fit and evaluate each model on it.

    Parameters
    ----------
    models:
        Registered model names (:mod:`movierec.models.registry`), each fitted fresh.
    data:
        The full data set.
    protocol:
        A protocol name (:data:`movierec.evaluation.protocols.PROTOCOLS`).
    seed:
        Seeds the split, every model's fit (each model gets the same fit seed,
        whatever its place in ``models``) and the bootstrap.
    ks:
        Ranking cut-offs (``None``: the protocol's own, 24 for ``session``, else 10 and 20).
    split:
        A canonical ml-100k split (``u1``..``u5``, ``ua``, ``ub``) for ``rating`` / ``topn``.
    model_overrides:
        Per model name, config fields to override, e.g. ``{"mf": {"epochs": 5}}``.
    n_resamples:
        Bootstrap resamples for the confidence intervals.

    Returns
    -------
    list[Result]
        One per model, in order; a model that cannot do the protocol has
        ``supported=False`` and a ``message``.
    """
    if not models:
        raise ValueError("no models to evaluate")
    proto = get_protocol(protocol)
    overrides = dict(model_overrides or {})
    unknown = set(overrides) - set(models)
    if unknown:
        raise ValueError(f"model_overrides names model(s) not evaluated: {sorted(unknown)}")
    prepared = proto.prepare(data, np.random.default_rng([seed, _SPLIT]), split=split)
    log.info(
        "%s on %s: %d train / %d test rows, %d users",
        protocol,
        data.name,
        prepared.train.n_ratings,
        prepared.test.n_ratings,
        len(prepared.users),
    )
    results = []
    for name in models:
        model = create(name, **dict(overrides.get(name, {})))
        result = run(
            model,
            proto,
            prepared,
            fit_rng=np.random.default_rng([seed, _FIT]),
            stats_rng=np.random.default_rng([seed, _STATS]),
            ks=None if ks is None else tuple(ks),
            model_name=name,
            n_resamples=n_resamples,
            seed=seed,
        )
        if not result.supported:
            log.warning("%s: %s", name, result.message)
        results.append(result)
    return results
