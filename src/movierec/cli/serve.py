"""``movierec serve`` (the web app over an existing model and catalogue) and
``movierec run`` (fetch data, build the catalogue, train a default model if
none exists, then serve): the product's main job in one command.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from movierec.cli.common import DatasetOpt, MirrorOpt, settings

log = logging.getLogger(__name__)

HostOpt = Annotated[str, typer.Option("--host", help="Interface to listen on (0.0.0.0 for every interface).")]
PortOpt = Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port to listen on.")]
ForwardedOpt = Annotated[
    str | None,
    typer.Option(
        "--forwarded-allow-ips",
        help="Comma list of trusted reverse proxies (e.g. 127.0.0.1, 10.0.0.0/8) whose X-Forwarded-For "
        "and X-Forwarded-Proto are believed: visitors' addresses for rate limits, https for Secure "
        "cookies. Default: MOVIEREC_FORWARDED_ALLOW_IPS, else none (the headers are ignored).",
    ),
]


#: What ``run`` changes in a model's library defaults when it trains one (fields a model's
#: config lacks are skipped). The sequence models train with their defaults, the configuration
#: benchmarks/bench_session_protocol.py measures (README), on one torch thread: on a busy 2-core
#: machine two threads made one fit more than 5x slower.
def default_model_name() -> str:
    """``sequence-attn`` (the winner of the ``session`` protocol) if it imports, else ``itemknn``,
    else ``pop``."""
    from movierec.models.registry import UnknownModelError, model_class

    for name in ("sequence-attn", "itemknn"):
        try:
            model_class(name)
        except (UnknownModelError, ImportError):
            continue
        return name
    return "pop"


WorkersOpt = Annotated[
    int,
    typer.Option(
        "--workers",
        min=1,
        max=64,
        help="Server processes, each loading the model (on 2 cores, 2 beat 1 under load). "
        "Sessions live in the shared database; the write rate limit is per process.",
    ),
]
# the defaults of both switches are ServiceSettings' (one place): None here means "not given"
InferenceProcessOpt = Annotated[
    bool | None,
    typer.Option(
        "--inference-process/--inference-threads",
        help="Score recommendations in a child process per server process (default; no lock "
        "contention with the request handling) or in worker threads of the server process.",
        show_default=False,
    ),
]
Int8HeadsOpt = Annotated[
    bool | None,
    typer.Option(
        "--int8-heads/--float-heads",
        help="Score with int8 weights in the sequence models' output heads (default: most of a "
        "recommendation's CPU, ranking nearly unchanged) or in float32 as evaluated.",
        show_default=False,
    ),
]


def _given(**switches: bool | None) -> dict[str, Any]:
    """The switches given on the command line (the rest keep ServiceSettings' defaults)."""
    return {k: v for k, v in switches.items() if v is not None}


WatchOpt = Annotated[
    float,
    typer.Option(
        "--watch-model",
        min=0.0,
        help="Reload the model when its directory changes, checked every this many seconds (0: off). "
        "Without it: POST /api/admin/reload from this machine (with an X-Movierec-Admin header), "
        "or SIGHUP (one process).",
    ),
]


def _answering(svc: Any, host: str) -> Any:
    """``svc`` with the listening ``host`` added to the allowed Host names (a specific address
    is one visitors type); a wildcard address (0.0.0.0, ::) adds nothing, and says how to."""
    s = svc.settings
    if host in ("0.0.0.0", "::", ""):
        typer.echo(
            f"note: answering only to Host names {s.allowed_hosts}; visitors who type this machine's "
            "name or address need it in MOVIEREC_ALLOWED_HOSTS (comma list)"
        )
        return svc
    name = f"[{host}]" if ":" in host else host.lower()
    if name in s.allowed_host_list or "*" in s.allowed_host_list:
        return svc
    return svc.model_copy(
        update={"settings": s.model_copy(update={"allowed_hosts": f"{s.allowed_hosts},{name}"})}
    )


def _proxy_options(svc: Any, forwarded_allow_ips: str | None) -> dict[str, Any]:
    """uvicorn's proxy settings: believe forwarding headers only from the trusted proxies
    (the option, else ``MOVIEREC_FORWARDED_ALLOW_IPS``); none by default. (uvicorn alone
    trusts 127.0.0.1, so any process on the machine could pick its address per request.)"""
    ips = forwarded_allow_ips if forwarded_allow_ips is not None else svc.settings.forwarded_allow_ips
    ips = ",".join(p.strip() for p in ips.split(",") if p.strip())
    return {"proxy_headers": bool(ips), "forwarded_allow_ips": ips or None}


def _uvicorn(
    svc: Any,
    host: str,
    port: int,
    workers: int = 1,
    watch_model_s: float = 0.0,
    forwarded_allow_ips: str | None = None,
) -> None:
    """Run the app under uvicorn (uvloop and httptools when installed), in ``workers`` processes."""
    svc = _answering(svc, host)
    proxy = _proxy_options(svc, forwarded_allow_ips)

    import uvicorn

    from movierec.service.app import SETTINGS_ENV, create_app, limit_torch_threads

    watch = watch_model_s or None
    if workers == 1:
        limit_torch_threads()
        app = create_app(svc, watch_model_s=watch)
        uvicorn.run(app, host=host, port=port, log_level="info", **proxy)
        return
    os.environ[SETTINGS_ENV] = json.dumps(
        {"settings": json.loads(svc.model_dump_json()), "watch_model_s": watch}
    )
    uvicorn.run(
        "movierec.service.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        **proxy,
    )


def serve(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    model: Annotated[
        Path | None, typer.Option("--model", help="Model directory (default: HOME/models/default).")
    ] = None,
    db: Annotated[
        Path | None, typer.Option("--db", help="Catalogue database (default: HOME/movierec.sqlite3).")
    ] = None,
    workers: WorkersOpt = 1,
    watch_model: WatchOpt = 0.0,
    inference_process: InferenceProcessOpt = None,
    int8_heads: Int8HeadsOpt = None,
    forwarded_allow_ips: ForwardedOpt = None,
) -> None:
    """Serve the web app and JSON API (OpenAPI at /docs) over a trained model and a built catalogue.

    Reload the model without a restart: `curl -X POST -H 'X-Movierec-Admin: 1'
    http://127.0.0.1:PORT/api/admin/reload` on the server's machine (or from anywhere with
    `-H 'Authorization: Bearer TOKEN'` when MOVIEREC_ADMIN_TOKEN is set: the way behind a proxy), `kill -HUP PID` of a one-process server, or --watch-model SECONDS (the way with
    --workers: the endpoint reaches one worker only, and uvicorn answers SIGHUP by restarting every
    worker, which a broken model would stop). A model that fails to load (missing, truncated or
    tampered files) or to answer a probe is refused, and the previous one keeps serving.
    """
    from movierec.service.config import ServiceSettings

    s = settings()
    svc = ServiceSettings(
        settings=s,
        model_dir=model,
        database_path=db,
        **_given(inference_process=inference_process, int8_heads=int8_heads),
    )
    if not (svc.resolved_model_dir / "meta.json").exists():
        raise FileNotFoundError(
            f"no model at {svc.resolved_model_dir}; train one (`movierec train -o DIR`) or use `movierec run`"
        )
    if not svc.resolved_database_path.exists():
        raise FileNotFoundError(
            f"no catalogue database at {svc.resolved_database_path}; `movierec run` builds it"
        )
    typer.echo(f"movierec: http://{host}:{port}/  (API docs: http://{host}:{port}/docs)")
    _uvicorn(svc, host, port, workers, watch_model, forwarded_allow_ips)


#: Models ``run`` trains before serving (seconds on ml-latest-small). Any other default model
#: trains in the background while a popularity stand-in serves; the model watch swaps it in.
QUICK_MODELS = frozenset({"pop", "itemknn"})
#: How often the server checks the model directory while a background training runs.
STANDIN_WATCH_S = 5.0


def train_default(
    dataset: str,
    mirror: str | None,
    name: str,
    model_dir: str,
    *,
    standin: bool = False,
    progress: bool = True,
) -> float:
    """Load ``dataset`` and :func:`fit_default` on it (the background training's entry point)."""
    from movierec.data.load import load_dataset

    data = load_dataset(dataset, settings(Path(mirror) if mirror else None))
    return fit_default(data, name, model_dir, standin=standin, progress=progress)


def fit_default(
    data: Any, name: str, model_dir: str, *, standin: bool = False, progress: bool = True
) -> float:
    """Train ``name`` (with its ``served`` preset, :data:`movierec.models.registry.PRESETS`) on ``data`` and save it to ``model_dir``
    atomically; returns the seconds taken. ``standin``: train popularity instead and mark it as
    standing in for ``name`` (the page then says "personalising soon")."""
    from movierec.models.artifacts import STANDIN_KEY, save_model
    from movierec.models.registry import create, preset

    start = time.perf_counter()
    overrides = preset("served", name)
    if "progress" in overrides:
        overrides["progress"] = progress  # no progress bars in a log file
    rec = create("pop") if standin else create(name, **overrides)
    rec.fit(data, np.random.default_rng(0))
    if standin:
        rec.fit_info.extra[STANDIN_KEY] = name
    save_model(rec, model_dir)
    return time.perf_counter() - start


def standin_for(model_dir: Path) -> str | None:
    """The model training to replace the stand-in in ``model_dir``; None if it is no stand-in
    (or unreadable)."""
    from movierec.models.artifacts import STANDIN_KEY, ArtifactError, read_meta

    try:
        name = read_meta(model_dir).get("extra", {}).get(STANDIN_KEY)
    except ArtifactError:
        return None
    return str(name) if name else None


def prepare(
    dataset: str, mirror: Path | None = None, *, model_name: str | None = None, background: bool = False
) -> tuple[Path, Path]:
    """Everything ``run`` does before serving: data, catalogue, default model.

    Returns the model directory and the database path. The catalogue is rebuilt
    when missing or built from other data (fingerprint differs); the model is
    trained only when ``HOME/models/default`` holds none. With ``background``, a model
    not in :data:`QUICK_MODELS` is left to :func:`train_in_background`: a popularity
    stand-in is saved now, so the page answers at once.
    """
    from movierec.data.load import load_dataset
    from movierec.models.artifacts import ArtifactError, read_meta
    from movierec.storage.catalog import ensure_catalog

    s = settings(mirror)
    typer.echo(f"loading {dataset} ...")
    data = load_dataset(dataset, s)
    fingerprint = data.fingerprint()
    built = ensure_catalog(data, s.database_path)
    if built is not None:
        typer.echo(
            f"built the catalogue in {s.database_path}: {built.get('movies')} movies, {built.get('tags')} tags"
        )
    model_dir = s.models_dir / "default"
    try:
        meta = read_meta(model_dir)
        if meta.get("data_fingerprint") != fingerprint:
            typer.echo(f"note: the model in {model_dir} was trained on other data; delete it to retrain")
    except ArtifactError:
        name = model_name or default_model_name()
        if background and name not in QUICK_MODELS:
            fit_default(data, name, str(model_dir), standin=True)
            typer.echo(f"serving popular movies until {name} has trained (in the background)")
        else:
            typer.echo(f"training the default model ({name}) on {data.name} ...")
            seconds = fit_default(data, name, str(model_dir))
            typer.echo(f"  trained in {seconds:.1f} s -> {model_dir}")
    return model_dir, s.database_path


def train_in_background(dataset: str, mirror: Path | None, model_dir: Path) -> subprocess.Popen[bytes] | None:
    """If ``model_dir`` holds a stand-in, start training the model it stands in for, in a child
    process at low priority that replaces it when done (the server's model watch then swaps it in);
    returns the process (None: nothing to train). Its output goes to ``model_dir``'s
    ``.training.log`` beside it."""
    name = standin_for(model_dir)
    if name is None:
        return None
    log_path = model_dir.with_name(f"{model_dir.name}.training.log")
    args = {
        "dataset": dataset,
        "mirror": str(mirror) if mirror else None,
        "name": name,
        "model_dir": str(model_dir),
        "progress": False,  # a log file is no terminal: per-epoch lines, no progress bars
    }
    code = (
        "import json, logging, sys\n"
        "logging.basicConfig(level=logging.INFO, format='%(asctime)s %(message)s', stream=sys.stdout)\n"
        "from movierec.cli.serve import train_default\n"
        "s = train_default(**json.loads(sys.argv[1]))\n"
        "print(f'trained in {s:.1f} s', flush=True)\n"
    )
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, json.dumps(args)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=lambda: os.nice(10),  # the page's server keeps the CPU it needs
        )
    typer.echo(f"training {name} in the background (pid {proc.pid}, log {log_path})")
    return proc


def run(
    dataset: DatasetOpt = "ml-latest-small",
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    mirror: MirrorOpt = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Model to train when HOME/models/default holds none (default: sequence-attn, else itemknn, else pop).",
        ),
    ] = None,
    workers: WorkersOpt = 1,
    watch_model: WatchOpt = 0.0,
    inference_process: InferenceProcessOpt = None,
    int8_heads: Int8HeadsOpt = None,
    forwarded_allow_ips: ForwardedOpt = None,
) -> None:
    """Fetch the data, build the catalogue, train a default model if there is none, and serve the web app."""
    from movierec.service.config import ServiceSettings

    model_dir, db = prepare(dataset, mirror, model_name=model, background=True)
    trainer = train_in_background(dataset, mirror, model_dir)
    if trainer is not None and not watch_model:
        watch_model = STANDIN_WATCH_S  # the trained model replaces the stand-in by itself
    svc = ServiceSettings(
        settings=settings(mirror),
        model_dir=model_dir,
        database_path=db,
        **_given(inference_process=inference_process, int8_heads=int8_heads),
    )
    typer.echo(f"movierec: http://{host}:{port}/  (API docs: http://{host}:{port}/docs)")
    try:
        _uvicorn(svc, host, port, workers, watch_model, forwarded_allow_ips)
    finally:
        if trainer is not None and trainer.poll() is None:
            trainer.terminate()  # the stand-in stays; the next run trains again
            trainer.wait(10)


def register(app: typer.Typer) -> None:
    """Attach ``serve`` and ``run`` to the top-level app."""
    app.command("serve")(serve)
    app.command("run")(run)
