"""The ``movierec`` command line: it parses, validates and calls the library, nothing more."""

from __future__ import annotations

import logging
import sys

try:
    import typer
except ModuleNotFoundError as exc:  # the library is installed without the command line
    raise SystemExit(
        f"the movierec command needs the serve extra: pip install 'movierec[serve]' ({exc.name} is missing)"
    ) from exc

import movierec.cli.data as data_cmd
import movierec.cli.evaluate as evaluate_cmd
import movierec.cli.models as models_cmd
import movierec.cli.serve as serve_cmd

app = typer.Typer(
    name="movierec",
    help="MovieLens data, recommendation models, evaluation and the web app.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data_cmd.app, name="data")
models_cmd.register(app)
evaluate_cmd.register(app)
serve_cmd.register(app)


def main() -> None:
    """Console-script entry point: library errors become one clear line and exit code 2."""
    from movierec.cli.common import USER_ERRORS

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except USER_ERRORS as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(2)


__all__ = ["app", "main"]
