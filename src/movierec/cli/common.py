"""Options and helpers shared by the commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from movierec.data.validation import DataError
from movierec.data.vocab import UnknownIdError
from movierec.settings import Settings

MirrorOpt = Annotated[
    Path | None,
    typer.Option(
        "--mirror",
        help="Directory of official GroupLens zips to use instead of the network (env MOVIEREC_MIRROR).",
    ),
]
DatasetOpt = Annotated[
    str,
    typer.Option(
        "--dataset",
        "-d",
        help="Data set name (ml-latest-small, ml-100k, ml-1m, ...) or a folder holding one.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _user_errors() -> tuple[type[BaseException], ...]:
    from movierec.models.artifacts import ArtifactError
    from movierec.models.registry import UnknownModelError

    errors: list[type[BaseException]] = [
        DataError,
        UnknownIdError,
        ArtifactError,
        UnknownModelError,
        FileNotFoundError,
    ]
    try:
        from movierec.data.registry import FetchError

        errors.append(FetchError)
    except ImportError:  # pragma: no cover - fetch is part of the package
        pass
    return tuple(errors)


USER_ERRORS = _user_errors()


def settings(mirror: Path | None = None) -> Settings:
    """Settings from the environment, with a command-line mirror taking precedence."""
    s = Settings()
    if mirror is not None:
        s = s.model_copy(update={"mirror": mirror})
    return s


def echo_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=None, default=_default))


def _default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
