"""Process-wide settings, read from ``MOVIEREC_*`` environment variables.

Settings are passed explicitly (``Settings()`` built once by the CLI or the
app factory); nothing in the library reads the environment on its own.
"""

from __future__ import annotations

from pathlib import Path

import platformdirs
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Schemes ``database_url`` accepts (see :mod:`movierec.storage.sessions`).
_URL_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg", "sqlite")


def _default_home() -> Path:
    return Path(platformdirs.user_data_dir("movierec", appauthor=False))


class Settings(BaseSettings):
    """Where movierec keeps its data and where it finds data sets.

    Every field can be set with an environment variable named
    ``MOVIEREC_<FIELD>`` (for example ``MOVIEREC_MIRROR=/srv/movielens``).
    """

    model_config = SettingsConfigDict(env_prefix="MOVIEREC_", extra="ignore")

    home: Path = Field(
        default_factory=_default_home,
        description="Directory holding the download cache, the catalogue database and model artifacts.",
    )
    mirror: Path | None = Field(
        default=None,
        description="Directory of official GroupLens zips (e.g. ml-latest-small.zip) used instead of the network.",
    )
    metadata: Path | None = Field(
        default=None,
        description="Optional movie-metadata directory (TMDB keywords.csv, tmdb_5000_movies.csv, ...).",
    )
    base_url: str = Field(
        default="https://files.grouplens.org/datasets/movielens/",
        description="Where official MovieLens zips are downloaded from when no mirror holds them.",
    )

    database_url: str | None = Field(
        default=None,
        description=(
            "Where sessions and favourites live. Unset: in the catalogue's SQLite file (one machine). "
            "postgresql://user[:password]@host:5432/dbname: a PostgreSQL database that several workers "
            "and machines share. sqlite:///relative/path or sqlite:////absolute/path: another SQLite file. "
            "The movie catalogue always stays in the SQLite file."
        ),
    )

    allowed_hosts: str = Field(
        default="localhost,127.0.0.1,[::1]",
        description=(
            "Comma list of the host names the web app answers to (the request's Host header, without "
            "the port); any other Host gets 400, so a web page elsewhere cannot reach the app through "
            "DNS rebinding. '*.example.com' allows a domain's subdomains, '*' every host (only behind a "
            "proxy that checks the Host itself). `movierec serve --host ADDRESS` adds ADDRESS."
        ),
    )
    forwarded_allow_ips: str = Field(
        default="",
        description=(
            "Comma list of the reverse proxies (addresses or networks, '*' for any) whose "
            "X-Forwarded-For / X-Forwarded-Proto headers `movierec serve` believes: the visitor's "
            "address (rate limits) and https (Secure cookies) then come from them. Empty (default): "
            "no proxy is trusted and those headers are ignored, so no client can pick its own address."
        ),
    )
    admin_token: str | None = Field(
        default=None,
        description=(
            "Secret that admin endpoints (POST /api/admin/reload) require as 'Authorization: Bearer "
            "TOKEN'; with it they answer from any address (behind a reverse proxy, every visitor "
            "looks like loopback). Unset: loopback only, no proxy headers. At least 16 characters."
        ),
    )

    tmdb_api_key: str | None = Field(
        default=None,
        description=(
            "TMDB API read access token (v4, sent as a Bearer token) or API key (v3): with it the "
            "web app looks up posters, stills and trailers of the movies it shows, in the background, "
            "and caches them beside the catalogue. Unset: no request leaves the machine for artwork."
        ),
    )
    tmdb_api_url: str = Field(
        default="https://api.themoviedb.org/3", description="The TMDB API the artwork lookups ask."
    )
    tmdb_image_url: str = Field(
        default="https://image.tmdb.org/t/p",
        description="Where the page loads TMDB images from (+ a size and the image path); the page's "
        "Content-Security-Policy allows images from this origin.",
    )

    @field_validator("tmdb_api_url", "tmdb_image_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc or any(c in value for c in " ;,'\""):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value.strip().rstrip("/")

    @field_validator("tmdb_api_key")
    @classmethod
    def _check_tmdb_key(cls, value: str | None) -> str | None:
        return value.strip() if value and value.strip() else None

    @field_validator("allowed_hosts")
    @classmethod
    def _check_allowed_hosts(cls, value: str) -> str:
        for host in (h.strip() for h in value.split(",")):
            if "*" in host[1:] or (host.startswith("*") and host != "*" and not host.startswith("*.")):
                raise ValueError(
                    f"MOVIEREC_ALLOWED_HOSTS: {host!r}: a wildcard may only start a name ('*.example.com') or stand alone ('*')"
                )
            if ":" in host and not host.startswith("["):
                raise ValueError(
                    f"MOVIEREC_ALLOWED_HOSTS: {host!r}: write IPv6 addresses in brackets, without a port"
                )
        return value

    @field_validator("admin_token")
    @classmethod
    def _check_admin_token(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if len(value.strip()) < 16:
            raise ValueError(
                "MOVIEREC_ADMIN_TOKEN must be at least 16 characters (e.g. `openssl rand -hex 24`)"
            )
        return value.strip()

    @property
    def allowed_host_list(self) -> list[str]:
        """:attr:`allowed_hosts` as a list, lower case (IPv6 addresses in brackets, as in a Host header)."""
        return [h.strip().lower() for h in self.allowed_hosts.split(",") if h.strip()]

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        scheme = value.strip().split("://", 1)[0].lower() if "://" in value else ""
        if scheme not in _URL_SCHEMES:
            raise ValueError(
                "MOVIEREC_DATABASE_URL must start with postgresql:// (or postgres://) or sqlite:///, "
                f"got {scheme + '://...' if scheme else 'no scheme'}"
            )
        return value.strip()

    @property
    def cache_dir(self) -> Path:
        """Unpacked data sets and downloaded zips: ``HOME/datasets``."""
        return self.home / "datasets"

    @property
    def models_dir(self) -> Path:
        """Trained model artifacts: ``HOME/models``."""
        return self.home / "models"

    @property
    def database_path(self) -> Path:
        """The SQLite catalogue and session database: ``HOME/movierec.sqlite3``."""
        return self.home / "movierec.sqlite3"
