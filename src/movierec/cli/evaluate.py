"""``movierec evaluate``: compare models under a named protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from movierec.cli.common import DatasetOpt, JsonOpt, MirrorOpt, settings


def evaluate(
    models: Annotated[
        str, typer.Option("--models", "-m", help="Comma-separated model names, e.g. pop,itemknn,mf.")
    ] = "pop",
    dataset: DatasetOpt = "ml-latest-small",
    protocol: Annotated[
        str,
        typer.Option(
            "--protocol",
            "-p",
            help="session, session-tags, rating, topn, topn-sampled (paper comparison only), next-item, "
            "next-item-tags or next-item-untied.",
        ),
    ] = "topn",
    seed: Annotated[int, typer.Option(help="Seed of the split, the fits and the bootstrap.")] = 0,
    k: Annotated[
        list[int] | None,
        typer.Option(
            "--k", help="Ranking cut-off; repeat for several (default 24 for session, else 10 and 20)."
        ),
    ] = None,
    split: Annotated[
        str | None, typer.Option("--split", help="Canonical ml-100k split (u1..u5, ua, ub) for rating/topn.")
    ] = None,
    json_out: JsonOpt = False,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Also write a Markdown report with plots into this directory."),
    ] = None,
    mirror: MirrorOpt = None,
) -> None:
    """Split the data once, fit every model on the training part and print its metrics,
    with 95% intervals and paired differences against the first model."""
    import os

    from movierec.data.load import load_dataset
    from movierec.evaluation.harness import evaluate as run_evaluation
    from movierec.evaluation.protocols import PROTOCOLS
    from movierec.evaluation.report import format_table, json_lines, write_report

    if os.environ.get("WORLD_SIZE", "").strip() not in ("", "0", "1"):
        # each rank would run the whole evaluation on its own: the same figures, twice the cost
        raise typer.BadParameter(
            "evaluate runs in one process; start it without torchrun (`movierec train` is the "
            "command that trains across processes)"
        )
    names = [m.strip() for m in models.split(",") if m.strip()]
    if not names:
        raise typer.BadParameter("give at least one model name", param_hint="--models")
    if protocol not in PROTOCOLS:
        raise typer.BadParameter(f"choose one of: {', '.join(PROTOCOLS)}", param_hint="--protocol")
    ks = tuple(k) if k else PROTOCOLS[protocol].default_ks
    if min(ks) < 1:
        raise typer.BadParameter("cut-offs must be >= 1", param_hint="--k")
    data = load_dataset(dataset, settings(mirror))
    try:
        results = run_evaluation(names, data, protocol, seed=seed, ks=ks, split=split)
    except ValueError as exc:
        from movierec.cli.common import USER_ERRORS

        if isinstance(exc, USER_ERRORS):
            raise
        raise typer.BadParameter(str(exc)) from exc
    if json_out:
        for line in json_lines(results):
            typer.echo(line)
    else:
        typer.echo(format_table(results, ci=True))
    if report is not None:
        path = write_report(results, report)
        if not json_out:
            typer.echo(f"report written to {path}")


def register(app: typer.Typer) -> None:
    """Attach ``evaluate`` to the top-level app."""
    app.command("evaluate")(evaluate)
