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
        default=True,
        description=(
            "Score recommendation batches in a child process with its own copy of the engine "
            "(no interpreter-lock contention with the event loop: the way under load) instead of "
            "in this process's worker threads (False: one process, as the tests mostly run)."
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
    tmdb_rate: float = Field(default=20.0, gt=0, le=50, description="Artwork lookups per second at most.")
    tmdb_concurrency: int = Field(default=4, ge=1, le=32, description="Artwork lookups at once at most.")
    tmdb_timeout_s: float = Field(
        default=5.0, gt=0, le=60, description="Longest wait for one artwork lookup."
    )
    artwork_refresh_days: float = Field(
        default=30.0, gt=0, description="Artwork found on TMDB is looked up again after this many days."
    )
    artwork_missing_days: float = Field(
        default=7.0, gt=0, description="A movie TMDB did not know is asked for again after this many days."
    )
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, description="Largest request body; larger: 413.")
    body_timeout_s: float = Field(
        default=10.0, gt=0, le=600, description="Longest wait for a request body to arrive in full; then 408."
    )
    write_rate: float = Field(
        default=20.0, gt=0, le=1e6, description="Writes (POST/PUT/DELETE under /api/) per second per session."
    )
    write_burst: int = Field(default=40, ge=1, le=1_000_000, description="Writes a session may make at once.")
    address_write_rate: float = Field(
        default=100.0,
        gt=0,
        le=1e6,
        description=(
            "Writes per second per client address, whatever the sessions: bounds one client holding "
            "many sessions, while a household or office behind one address stays far below it."
        ),
    )
    address_write_burst: int = Field(
        default=200, ge=1, le=1_000_000, description="Writes an address may make at once."
    )
    session_create_rate: float = Field(
        default=1.0,
        gt=0,
        le=1e6,
        description="New sessions per second per client address (a session starts at its first write).",
    )
    session_create_burst: int = Field(
        default=30, ge=1, le=1_000_000, description="New sessions a client address may start at once."
    )
    store_wait_s: float = Field(
        default=5.0,
        gt=0,
        le=120,
        description=(
            "Longest wait for the sessions database (a lock held by another process, a reconnection); "
            "beyond it a request answers 503 with Retry-After and nothing is written."
        ),
    )
    session_empty_days: float = Field(
        default=30.0,
        gt=0,
        description="A session with no likes, dislikes or favourites goes after this many idle days.",
    )
    session_idle_days: float = Field(
        default=365.0, gt=0, description="Any session goes after this many days without a write."
    )
    session_sweep_s: float = Field(
        default=3600.0,
        gt=0,
        description="How often expired sessions are deleted (seconds; first sweep at start).",
    )
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
