"""``movierec train`` and ``movierec recommend``."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
import pandas as pd
import typer

from movierec.cli.common import DatasetOpt, JsonOpt, MirrorOpt, echo_json, settings

if TYPE_CHECKING:
    import sqlite3

    from movierec.data.dataset import Dataset
    from movierec.serving import Engine

ModelName = Annotated[
    str, typer.Option("--model", "-m", help="Model name: pop, itemknn, ease, mf, als, neumf, sequence, ...")
]


def train(
    model: ModelName = "pop",
    dataset: DatasetOpt = "ml-latest-small",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Model directory (default: HOME/models/NAME).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random generator.")] = 0,
    checkpoint_dir: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint-dir",
            help="Write a training checkpoint here after every epoch (neural models; one "
            "sub-directory per trained network).",
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Continue from the checkpoints in --checkpoint-dir instead of starting afresh."
        ),
    ] = False,
    settings_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="A config setting, NAME=VALUE (repeatable): --set epochs=8 --set lr=1e-3; names "
            "as --help-config lists them (a unique last part is enough).",
        ),
    ] = None,
    help_config: Annotated[
        bool,
        typer.Option("--help-config", help="List the model's settings (types, defaults, meaning) and exit."),
    ] = False,
    valid_metric: Annotated[
        str,
        typer.Option(
            "--valid-metric",
            help="What early stopping (and any tuning inside training) maximises: ndcg, recall, hr, "
            "precision or mrr at a cut-off, e.g. ndcg@10.",
        ),
    ] = "ndcg@10",
    mirror: MirrorOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Train a model on a whole data set and save it as an artifact directory.

    Under ``torchrun --nproc_per_node N .venv/bin/movierec train ...`` the neural
    models train with DistributedDataParallel over N processes (same seed on
    every rank); only rank 0 writes the artifact and prints the result.
    """
    from movierec.data.load import load_dataset
    from movierec.distributed import is_main, main_first, process_group, world
    from movierec.models.artifacts import save_model
    from movierec.models.configs import describe, parse_assignments
    from movierec.models.registry import UnknownModelError, model_class
    from movierec.models.trainer import CheckpointError, checkpointing

    try:
        cls = model_class(model)
    except UnknownModelError as exc:
        raise typer.BadParameter(str(exc), param_hint="--model") from exc
    if help_config:
        typer.echo(f"settings of {model} (movierec train --model {model} --set NAME=VALUE):\n")
        typer.echo(describe(cls.Config, cls().config))
        return
    try:
        overrides = parse_assignments(settings_ or [])
        rec = cls(**overrides)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--set") from exc
    metric = _parse_metric(valid_metric)
    if resume and checkpoint_dir is None:
        raise typer.BadParameter("--resume needs --checkpoint-dir")
    s = settings(mirror)
    with process_group():
        with main_first():  # rank 0 fetches into the cache, the others then read it
            data = load_dataset(dataset, s)
        start = time.perf_counter()
        scope: AbstractContextManager[Any] = (
            checkpointing(checkpoint_dir, resume=resume) if checkpoint_dir is not None else nullcontext()
        )
        try:
            with scope:
                rec.fit(data, np.random.default_rng(seed), metric=metric)
        except CheckpointError as exc:
            typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
            raise typer.Exit(2) from exc
        fit_seconds = round(time.perf_counter() - start, 3)
        n_proc = world()
        if not is_main():
            return
    path = save_model(rec, out or s.models_dir / model)
    result: dict[str, Any] = {
        "model": model,
        "dataset": data.name,
        "path": str(path),
        "fit_seconds": fit_seconds,
    }
    if n_proc > 1:
        result["processes"] = n_proc
    if json_out:
        echo_json(result)
    else:
        on = f" on {n_proc} processes" if n_proc > 1 else ""
        typer.echo(f"trained {model} on {data.name}{on} in {result['fit_seconds']} s -> {path}")


def _parse_metric(text: str) -> Any:
    """``"ndcg@10"`` -> :class:`~movierec.evaluation.metrics.ValidationMetric`; a clear error otherwise."""
    from movierec.evaluation.metrics import ValidationMetric

    name, _, k = text.strip().lower().partition("@")
    try:
        return ValidationMetric(name, int(k) if k else 10)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r}: {exc}", param_hint="--valid-metric") from exc


def _resolve_movies(conn: Any, titles: list[str], data: Any) -> list[int]:
    """Movie indices of typed titles; ambiguous or unknown titles stop with a clear message."""
    from movierec.storage.catalog import resolve_title

    out = []
    for text in titles:
        if text.strip().isdigit() and int(text) in data.movies:
            out.append(data.movies.index_one(int(text)))
            continue
        found = resolve_title(conn, text, limit=8)
        exact = [r for r in found if r.get("match") == "exact"]
        pick = exact if exact else found
        if not pick:
            raise typer.BadParameter(f"no movie matches {text!r}; try `movierec search` words from its title")
        if len(pick) > 1 and not (exact and len(exact) == 1):
            listing = "; ".join(f"{r['display_title']} ({r['year']}) [id {r['movie_id']}]" for r in pick)
            raise typer.BadParameter(
                f"{text!r} is ambiguous: {listing}. Add the year, e.g. 'Heat (1995)', or pass the id."
            )
        out.append(data.movies.index_one(int(pick[0]["movie_id"])))
    return out


def _resolve_tags(names: list[str], data: Any) -> list[int]:
    from movierec.data.titles import normalise_tags

    norm = normalise_tags(pd.Series(names, dtype=object)).tolist() if names else []
    missing = [n for n in norm if n not in data.tags]
    if missing:
        raise typer.BadParameter(
            f"unknown tag(s) {missing}; `movierec data info` lists the tag vocabulary size"
        )
    return [data.tags.index_one(n) for n in norm]


@contextmanager
def page_engine(
    model_dir: Path, dataset: str | None, mirror: Path | None
) -> Iterator[tuple[Dataset, sqlite3.Connection, Engine]]:
    """The web page's engine over ``model_dir`` and the catalogue of its data set (default: the
    one the model was trained on), with the catalogue connection open for resolving titles:
    what ``recommend``, ``similar`` and ``ask`` answer with, so their answers are the page's."""
    from movierec.data.load import load_dataset
    from movierec.models.artifacts import read_meta
    from movierec.service.engine import build_engine
    from movierec.storage.catalog import open_catalog

    s = settings(mirror)
    data = load_dataset(dataset or read_meta(model_dir).get("dataset") or "ml-latest-small", s)
    conn = open_catalog(data, s.database_path)
    try:
        engine = build_engine(model_dir, conn)
        if engine.model.movies != data.movies:
            raise typer.BadParameter(f"model {model_dir} was trained on another movie list than {data.name}")
        yield data, conn, engine
    finally:
        conn.close()


def recommend(
    model_dir: Annotated[
        Path, typer.Option("--model", "-m", help="Model directory written by `movierec train`.")
    ],
    like: Annotated[
        list[str] | None,
        typer.Option(
            "--like", help="A liked movie (title, 'Title (year)' or id); repeat, most important last."
        ),
    ] = None,
    dislike: Annotated[
        list[str] | None, typer.Option("--dislike", help="A disliked movie; repeatable.")
    ] = None,
    like_tag: Annotated[list[str] | None, typer.Option("--like-tag", help="A liked tag; repeatable.")] = None,
    dislike_tag: Annotated[
        list[str] | None, typer.Option("--dislike-tag", help="A disliked tag; repeatable.")
    ] = None,
    query: Annotated[
        str | None, typer.Option("--query", "-q", help="Free-text taste, for content models.")
    ] = None,
    n: Annotated[int, typer.Option("-n", min=1, max=500, help="How many movies.")] = 10,
    n_tags: Annotated[
        int, typer.Option("--n-tags", min=0, max=100, help="How many tags (models with a tag head).")
    ] = 10,
    min_rating: Annotated[
        float | None,
        typer.Option(
            help="Minimum rating: the mean shrunk toward the average of all ratings (10 ratings' weight), so a few 5-star ratings do not pass."
        ),
    ] = None,
    year_min: Annotated[int | None, typer.Option(help="Earliest release year.")] = None,
    year_max: Annotated[int | None, typer.Option(help="Latest release year.")] = None,
    genre: Annotated[
        list[str] | None, typer.Option("--genre", help="Keep movies of any of these genres; repeatable.")
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", "-d", help="Data set (default: the one the model was trained on)."),
    ] = None,
    mirror: MirrorOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Recommend movies (and tags) for a session of liked and disliked movies and tags.

    The answer is the web page's for the same session: the same engine (the model aligned
    with the catalogue database), filters, reasons and tag suggestions.
    """
    from movierec.storage.session_state import SessionState

    with page_engine(model_dir, dataset, mirror) as (data, conn, engine):
        ids = data.movies.ids
        tag_names = data.tags.ids
        unknown = [g for g in genre or () if g not in engine.genre_names]
        if unknown:
            raise typer.BadParameter(f"unknown genre(s) {unknown}; known: {list(engine.genre_names)}")
        filters: dict[str, Any] = {
            "min_rating": min_rating,
            "year_min": year_min,
            "year_max": year_max,
            "genres": list(genre or ()),
        }
        if query:
            filters["text"] = query
        state = SessionState(
            liked=[int(ids[i]) for i in _resolve_movies(conn, like or [], data)],
            disliked=[int(ids[i]) for i in _resolve_movies(conn, dislike or [], data)],
            liked_tags=[str(tag_names[t]) for t in _resolve_tags(like_tag or [], data)],
            disliked_tags=[str(tag_names[t]) for t in _resolve_tags(dislike_tag or [], data)],
            filters={k: v for k, v in filters.items() if v not in (None, [])},
        )
        answer = engine.recommend(state, n, n_tags)
    cards = engine.cards or {}
    movies: list[dict[str, Any]] = [
        {
            "movie_id": m.movie_id,
            "title": str(cards.get(m.movie_id, {}).get("display_title", "")),
            "year": int(cards.get(m.movie_id, {}).get("year") or 0),
            "genres": list(cards.get(m.movie_id, {}).get("genres") or []),
            "score": m.score,
            "reason": m.reason,
        }
        for m in answer.movies
    ]
    if json_out:
        echo_json(
            {
                "model": engine.model.name,
                "fallback": answer.fallback,
                "movies": movies,
                "tags": [dataclasses.asdict(t) for t in answer.tags],
                "notes": list(answer.notes),
            }
        )
        return
    for rank_no, m in enumerate(movies, 1):
        why = f"  ({m['reason']})" if m["reason"] else ""
        typer.echo(f"{rank_no:>3}. {m['title']} ({m['year']})  {', '.join(m['genres'])}{why}")
    if answer.tags:
        typer.echo("tags: " + ", ".join(t.tag for t in answer.tags))


def similar(
    title: Annotated[str, typer.Argument(help="A movie title ('Heat (1995)') or id.")],
    model_dir: Annotated[
        Path | None,
        typer.Option("--model", "-m", help="Model directory (default: HOME/models/default, the page's)."),
    ] = None,
    n: Annotated[int, typer.Option("-n", min=1, max=200, help="How many movies.")] = 10,
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", "-d", help="Data set (default: the one the model was trained on)."),
    ] = None,
    space: Annotated[
        Literal["page", "embedding"],
        typer.Option(
            "--space",
            help="page: the page's similar movies (the model's neighbours blended with shared "
            "tags); embedding: the cosine of the model's own movie vectors (mf, als, the "
            "neural and sequence models, content).",
        ),
    ] = "page",
    mirror: MirrorOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """The movies a trained model puts nearest to one movie: the page's "similar movies"
    (the model's own neighbours, else its scores for a session of that one like, blended with
    shared tags), or with --space embedding the nearest in the model's own embedding space."""
    from movierec.serving import nearest_movies

    model_dir = model_dir or settings(mirror).home / "models" / "default"
    with page_engine(model_dir, dataset, mirror) as (data, conn, engine):
        movie = _resolve_movies(conn, [title], data)[0]
    movie_id = int(data.movies.ids[movie])
    if not engine.knows_movie(movie_id):
        raise typer.BadParameter(
            f"model {model_dir} does not know {data.movie_info.at[movie, 'display_title']}"
        )
    if space == "embedding":
        model = engine.model
        assert model.movies is not None  # a loaded model has its vocabularies
        try:
            found = nearest_movies(model, model.movies.index_one(movie_id), n)
        except ValueError as exc:
            raise typer.BadParameter(f"{exc}; use --space page", param_hint="--space") from exc
    else:
        found = engine.similar(movie_id, n)
    rows = [
        {"movie_id": f.movie_id, "title": engine.movie_label(f.movie_id), "score": f.score} for f in found
    ]
    if json_out:
        echo_json({"movie_id": movie_id, "model": engine.model.name, "space": space, "similar": rows})
        return
    typer.echo(f"like {engine.movie_label(movie_id)}, by {engine.model.name}:")
    for k, r in enumerate(rows, 1):
        typer.echo(f"{k:>3}. {r['title']}")


def search(
    text: Annotated[
        str, typer.Argument(help="Words of a title (the last one may be a prefix), or of a tag.")
    ],
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=100, help="How many of each.")] = 10,
    dataset: DatasetOpt = "ml-latest-small",
    mirror: MirrorOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Search the catalogue as the page's search box does: movies by title, and tags."""
    from movierec.data.load import load_dataset
    from movierec.storage.catalog import open_catalog, search_movies, search_tags

    s = settings(mirror)
    conn = open_catalog(load_dataset(dataset, s), s.database_path)
    try:
        movies, tags = search_movies(conn, text, limit), search_tags(conn, text, limit)
    finally:
        conn.close()
    if json_out:
        keep = ("movie_id", "display_title", "year", "genres", "rating", "rating_count", "match")
        echo_json({"movies": [{k: m.get(k) for k in keep} for m in movies], "tags": tags})
        return
    if not movies and not tags:
        typer.echo(f"nothing matches {text!r}")
        return
    for m in movies:
        stars = f"  ★ {m['rating']:.1f} ({m['rating_count']})" if m.get("rating") is not None else ""
        year = f" ({m['year']})" if m.get("year") else ""
        typer.echo(f"{m['movie_id']:>7}  {m['display_title']}{year}  {' · '.join(m['genres'])}{stars}")
    if tags:
        typer.echo("tags: " + ", ".join(f"#{t['name']} ({t['movie_count']})" for t in tags))


def ask(
    model_dir: Annotated[
        Path, typer.Option("--model", "-m", help="Model directory written by `movierec train`.")
    ],
    like: Annotated[
        list[str] | None, typer.Option("--like", help="A movie liked before the questions start; repeatable.")
    ] = None,
    questions: Annotated[
        int, typer.Option("--questions", min=1, max=50, help="Questions to ask at most.")
    ] = 5,
    answers: Annotated[
        str | None,
        typer.Option(
            "--answers",
            help="Answer without asking, for scripts: a comma list of 1, 2, n (neither), s (skip).",
        ),
    ] = None,
    n: Annotated[int, typer.Option("-n", min=1, max=100, help="How many movies to show.")] = 10,
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", "-d", help="Data set (default: the one the model was trained on)."),
    ] = None,
    mirror: MirrorOpt = None,
) -> None:
    """Find tonight's movie by answering questions (the page's "Help me choose", in a terminal).

    Each question is the one whose answer tells the model the most; 1 or 2 picks an option,
    n says neither, s skips, q stops. The list after every answer, and at the end.
    """
    from movierec.serving import change_items, changed_filters
    from movierec.storage.sessions import SessionStore

    with page_engine(model_dir, dataset, mirror) as (data, conn, engine):
        liked = _resolve_movies(conn, like or [], data)
    # the session as the page keeps it, in memory: answers change it the way the API's do
    store = SessionStore(":memory:")
    token = store.create()
    for i in liked:
        store.add(token, "movie", int(data.movies.ids[i]), "like")
    state = store.get(token)
    scripted = [a.strip().lower() for a in answers.split(",")] if answers is not None else None
    avoid: list[tuple[str, list[int | str]]] = []

    def show() -> None:
        rec = engine.recommend(state, n, 0)
        for k, m in enumerate(rec.movies, 1):
            typer.echo(f"{k:>3}. {engine.movie_label(m.movie_id)}")

    for number in range(1, questions + 1):
        q = engine.question(state, avoid)
        if q is None:
            typer.echo("nothing left worth asking")
            break
        avoid.append((q.kind, list(q.values)))
        typer.echo(f"\n{number}. {q.prompt}")
        for k, option in enumerate(q.options, 1):
            typer.echo(f"   {k}) {option.label}")
        typer.echo("   n) neither   s) skip   q) stop")
        if scripted is not None:
            if not scripted:
                break
            reply = scripted.pop(0)
            typer.echo(f"> {reply}")
        else:
            reply = typer.prompt(">", default="s").strip().lower()
        if reply in ("q", "quit"):
            break
        replies: dict[str, int | str] = {"1": 0, "2": 1, "n": "neither", "neither": "neither"}
        choice = replies.get(reply, "skip")
        change = engine.answer_change(q.kind, q.values, choice)
        for kind, value, feedback in change_items(change):
            state = store.add(token, kind, value, feedback)
        state = store.set_filters(token, changed_filters(state.filters, change))
        show()
    typer.echo("\nyour list:")
    show()


def register(app: typer.Typer) -> None:
    """Attach the model commands to the top-level app."""
    app.command("train")(train)
    app.command("recommend")(recommend)
    app.command("similar")(similar)
    app.command("search")(search)
    app.command("ask")(ask)
