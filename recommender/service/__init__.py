"""The HTTP service: FastAPI app, settings, routers, jobs."""

from .app import create_app
from .settings import Settings, get_settings

__all__ = ["Settings", "create_app", "get_settings"]
