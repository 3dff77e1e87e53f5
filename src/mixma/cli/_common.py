"""What every command shares: failing with one `error:` line, quieting transformers, warnings as
`warning:` lines, and the one-line summary of a training run."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator

import typer


def fail(message: str) -> typer.Exit:
    """Print `error: message` and return an exception that exits with code 2 (raise it)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


@contextlib.contextmanager
def warnings_as_lines() -> Iterator[None]:
    """Show the library's warnings as one `warning: ...` line each (no file and line number)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            yield
        finally:
            for w in caught:
                if issubclass(w.category, UserWarning):
                    warn(str(w.message))


def quiet_transformers() -> None:
    """Hide transformers' loading/saving progress bars and advisory warnings (our own bars and
    messages say what is going on); MIXMA_DEBUG=1 keeps them."""
    if os.environ.get("MIXMA_DEBUG") == "1":
        return
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def training_summary(summary: dict, output_dir: str) -> str:
    """`trained 120 steps in 31.4 s; best top1 45.10 at step 110; run in runs/x` (+ what was left out)."""
    best = summary.get("best")
    tail = f"; best {best['metric']} {best['value']:.2f} at step {best['step']}" if best else ""
    line = f"trained {summary['steps']} steps in {summary['seconds']} s{tail}; run in {output_dir}"
    for split, counts in summary.get("data", {}).items():
        left = {k: v for k, v in counts.items() if k != "records" and v}
        if left:
            line += f"; {split}: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in left.items()) + " left out"
    return line
