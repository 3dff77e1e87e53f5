"""`mixma bench`: the synthetic long-video benchmark."""

from __future__ import annotations

import typer

from mixma.cli.app import app

bench_app = typer.Typer(help="The synthetic long-video benchmark.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
