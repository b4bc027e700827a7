"""``movierec data ...``: fetch, inspect and build the catalogue."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from movierec.cli.common import JsonOpt, MirrorOpt, echo_json, settings

app = typer.Typer(help="Get MovieLens data, inspect it, build the catalogue database.", no_args_is_help=True)

NameArg = Annotated[
    str, typer.Argument(help="Data set name (ml-latest-small, ml-100k, ml-1m, ml-25m, ...) or a folder/zip.")
]


@app.command("fetch")
def fetch_cmd(
    name: NameArg,
    mirror: MirrorOpt = None,
    force: Annotated[bool, typer.Option(help="Fetch again even if cached.")] = False,
) -> None:
    """Download (or copy from the mirror), verify and unpack a data set into the cache."""
    from movierec.data.fetch import fetch

    path = fetch(name, settings(mirror), force=force)
    typer.echo(str(path))


@app.command("info")
def info_cmd(name: NameArg, mirror: MirrorOpt = None, json_out: JsonOpt = False) -> None:
    """Counts of a data set: ratings, users, movies, tags (with their sources)."""
    from movierec.data.load import load_dataset

    start = time.perf_counter()
    ds = load_dataset(name, settings(mirror))
    summary = ds.summary()
    summary["load_seconds"] = round(time.perf_counter() - start, 3)
    if json_out:
        echo_json(summary)
        return
    for key, value in summary.items():
        typer.echo(f"{key:>22}: {value}")


@app.command("build")
def build_cmd(
    name: Annotated[
        str, typer.Argument(help="Data set name (ml-latest-small, ml-100k, ...) or a folder/zip.")
    ] = "ml-latest-small",
    db: Annotated[
        str | None, typer.Option("--db", help="Catalogue database to write (default: HOME/movierec.sqlite3).")
    ] = None,
    mirror: MirrorOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Load a data set and write its movies, tags and search index to the catalogue database.

    The previous catalogue in that database is replaced; sessions and favourites are kept.
    """
    from movierec.data.load import load_dataset
    from movierec.storage.catalog import build_catalog
    from movierec.storage.db import connect

    s = settings(mirror)
    start = time.perf_counter()
    ds = load_dataset(name, s)
    load_seconds = time.perf_counter() - start
    path = db if db else s.database_path
    conn = connect(path)
    try:
        counts = build_catalog(ds, conn)
    finally:
        conn.close()
    result = {"database": str(path), "dataset": ds.name, **counts, "load_seconds": round(load_seconds, 3)}
    if json_out:
        echo_json(result)
        return
    for key, value in result.items():
        typer.echo(f"{key:>14}: {value}")
