"""`mixma serve`: an HTTP API and one web page over a video index (see `app.create_app`)."""

from mixma.serve.app import create_app
from mixma.serve.options import ServeOptions

__all__ = ["ServeOptions", "create_app"]
