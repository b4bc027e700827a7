"""The HTTP service: ``create_app(settings)`` builds the web app and JSON API."""

from movierec.service.app import create_app
from movierec.service.config import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]
