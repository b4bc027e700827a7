"""``movierec train`` and ``movierec recommend``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from movierec.cli.common import DatasetOpt, JsonOpt, MirrorOpt, echo_json, settings

ModelName = Annotated[str, typer.Option("--model", "-m", help="Model name: pop, itemknn, ease, mf, als, neumf, sequence, ...")]


def train(
    model: ModelName = "pop",
    dataset: DatasetOpt = "ml-latest-small",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Model directory (default: HOME/models/NAME).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random generator.")] = 0,
    mirror: MirrorOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Train a model on a whole data set and save it as an artifact directory."""
    from movierec.data.load import load_dataset
    from movierec.models.artifacts import save_model
    from movierec.models.registry import create

    s = settings(mirror)
    data = load_dataset(dataset, s)
    rec = create(model)
    start = time.perf_counter()
    rec.fit(data, np.random.default_rng(seed))
    path = save_model(rec, out or s.models_dir / model)
    result = {"model": model, "dataset": data.name, "path": str(path), "fit_seconds": round(time.perf_counter() - start, 3)}
    if json_out:
        echo_json(result)
    else:
        typer.echo(f"trained {model} on {data.name} in {result['fit_seconds']} s -> {path}")


def register(app: typer.Typer) -> None:
    """Attach the model commands to the top-level app."""
    app.command("train")(train)
