"""The `mixma` command: thin callers of the library API, one module per command group."""

from mixma.cli.app import app, main

__all__ = ["app", "main"]
