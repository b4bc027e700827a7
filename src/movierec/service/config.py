"""Settings of the HTTP service (paths come from :class:`movierec.settings.Settings`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from movierec.serving import ANN_MIN_MOVIES
from movierec.settings import Settings


class ServiceSettings(BaseModel):
    """Where the service finds its model and database, and its limits."""

    model_config = ConfigDict(frozen=True)

    settings: Settings = Field(default_factory=Settings, description="Data, model and database locations.")
    model_dir: Path | None = Field(
        default=None, description="Model artifact directory; default HOME/models/default."
    )
    database_path: Path | None = Field(
        default=None, description="SQLite catalogue + sessions database; default HOME/movierec.sqlite3."
    )
    database_url: str | None = Field(
        default=None,
        description=(
            "Sessions and favourites database URL (postgresql://... to share them between workers); "
            "default: settings.database_url, else the catalogue's SQLite file."
        ),
    )
    max_inference_threads: int = Field(default=2, ge=1, le=64, description="Concurrent model calls.")
    max_waiting: int = Field(
        default=32,
        ge=0,
        le=10_000,
        description="Model calls allowed to wait; beyond that: 503 + Retry-After.",
    )
    inference_process: bool = Field(
        default=False,
        description=(
            "Score recommendation batches in a child process with its own copy of the engine "
            "(no interpreter-lock contention with the event loop: the way under load; "
            "`movierec serve` turns it on) instead of in this process's worker threads."
        ),
    )
    prefetch_n: int = Field(
        default=24,
        ge=0,
        le=100,
        description=(
            "After a change to a session, start scoring its recommendations at once (this many "
            "movies, as the page asks for), so the page's next request finds them ready or in "
            "progress; 0: off (for API clients that change sessions without asking)."
        ),
    )
    prefetch_n_tags: int = Field(default=12, ge=0, le=50, description="Tags of that prefetch.")
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, description="Largest request body; larger: 413.")
    write_rate: float = Field(
        default=20.0, gt=0, le=1e6, description="Writes (POST/PUT/DELETE under /api/) per second per session."
    )
    write_burst: int = Field(default=40, ge=1, le=1_000_000, description="Writes a session may make at once.")
    rate_limit_buckets: int = Field(
        default=100_000, ge=1, description="Most sessions tracked by the write rate limit (LRU beyond)."
    )
    ann_min_movies: int = Field(
        default=ANN_MIN_MOVIES,
        ge=0,
        description=(
            "Catalogue size from which recommendations come from an approximate nearest-neighbour "
            "index (exact re-scoring of its candidates) when the model offers vectors; 0 disables it. "
            "Needs the 'ann' extra (faiss-cpu); without it the service logs a warning and scores exactly."
        ),
    )
    int8_heads: bool = Field(
        default=True,
        description=(
            "Score with int8 weights in the sequence models' output heads (most of a recommendation's "
            "CPU; see SequenceConfig.int8_heads); other models ignore it."
        ),
    )
    cookie_name: str = Field(default="movierec_session", description="Name of the anonymous session cookie.")
    cookie_max_age: int = Field(default=365 * 24 * 3600, ge=60, description="Cookie lifetime in seconds.")

    @property
    def resolved_model_dir(self) -> Path:
        return self.model_dir or self.settings.models_dir / "default"

    @property
    def resolved_database_path(self) -> Path:
        return self.database_path or self.settings.database_path

    @property
    def resolved_database_url(self) -> str | None:
        """The sessions database URL, or ``None`` for the catalogue's SQLite file."""
        return self.database_url or self.settings.database_url
