"""``movierec data ...``: fetch, inspect, ingest into Parquet and build the catalogue."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from movierec.cli.common import JsonOpt, MirrorOpt, echo_json, settings

app = typer.Typer(help="Get MovieLens data, inspect it, build the catalogue database.", no_args_is_help=True)

NameArg = Annotated[
    str,
    typer.Argument(
        help="Data set name (ml-latest-small, ml-100k, ml-1m, ml-25m, ...), a folder/zip, "
        "or a folder written by `movierec data ingest`."
    ),
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

    The catalogue is built in a new file and swapped in at once (the database path becomes
    a link to it), so a server running on it is never held up; it serves the new catalogue
    after a model reload or a restart. Sessions and favourites live in their own file and
    are untouched.
    """
    from movierec.data.load import load_dataset
    from movierec.storage.catalog import build_catalog_file

    s = settings(mirror)
    start = time.perf_counter()
    ds = load_dataset(name, s)
    load_seconds = time.perf_counter() - start
    path = db if db else s.database_path
    counts = build_catalog_file(ds, path)
    result = {"database": str(path), "dataset": ds.name, **counts, "load_seconds": round(load_seconds, 3)}
    if json_out:
        echo_json(result)
        return
    for key, value in result.items():
        typer.echo(f"{key:>14}: {value}")


@app.command("ingest")
def ingest_cmd(
    source: Annotated[
        str,
        typer.Argument(
            help="A folder or zip in the csv (ml-latest, ml-20m/25m/32m) or dat (ml-1m, ml-10m) layout, "
            "or a data set name (fetched first)."
        ),
    ],
    out: Annotated[Path, typer.Argument(help="Folder of Parquet files to create.")],
    chunk_rows: Annotated[
        int, typer.Option("--chunk-rows", min=1, help="Lines read and written at a time (bounds memory).")
    ] = 250_000,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace OUT if it is an earlier ingest.")
    ] = False,
    mirror: MirrorOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Stream a large data set into columnar Parquet files, in bounded memory.

    Every later command accepts OUT wherever it takes a data set, and loads it faster than the text files.
    """
    import resource

    from movierec.data.columnar import ingest, read_manifest

    path = Path(source).expanduser()
    if not path.exists():
        from movierec.data.fetch import resolve_dataset_path

        path = resolve_dataset_path(source, settings(mirror))
    start = time.perf_counter()
    written = ingest(path, out, chunk_rows=chunk_rows, overwrite=overwrite)
    seconds = time.perf_counter() - start
    manifest = read_manifest(written)
    result = {
        "path": str(written),
        "layout": manifest["layout"],
        **{f"{table}_rows": n for table, n in manifest["rows"].items()},
        "seconds": round(seconds, 3),
        # Linux reports ru_maxrss in KiB
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if json_out:
        echo_json(result)
        return
    for key, value in result.items():
        typer.echo(f"{key:>20}: {value}")
