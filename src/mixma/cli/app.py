"""The `mixma` entry point and how it reports errors.

Bad input (a file that is not a video, a malformed annotation, an invalid option) prints one line
starting with `error:` on stderr and exits with code 2, without a traceback. Set MIXMA_DEBUG=1 to
see the traceback instead.
"""

from __future__ import annotations

import os
import sys

import typer
from typer.exceptions import TyperException

from mixma.errors import MixmaError

app = typer.Typer(
    name="mixma",
    help="Long-video understanding with language models: MixedFrame sampling, MA-LMM and MAMA.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def fail(message: str) -> typer.Exit:
    """Print `error: message` and return an exception that exits with code 2 (raise it)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def quiet_transformers() -> None:
    """Hide transformers' loading/saving progress bars and advisory warnings (our own bars and
    messages say what is going on); MIXMA_DEBUG=1 keeps them."""
    if os.environ.get("MIXMA_DEBUG") == "1":
        return
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 success, 2 bad input, 130 interrupted)."""
    from mixma.cli import ask, augment, bench, data, evaluate, frames, train  # noqa: F401  (registers the commands)

    debug = os.environ.get("MIXMA_DEBUG") == "1"
    try:
        result = app(args=argv, prog_name="mixma", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("error: interrupted", err=True)
        return 130
    except TyperException as exc:  # usage errors raised by typer's bundled click
        if type(exc).__name__ == "NoArgsIsHelpError":
            exc.show()  # `mixma` or `mixma frames` alone: print the help
            return 0
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        typer.echo(f"error: {exc.format_message()}{hint}", err=True)
        return 2
    except (MixmaError, ValueError, OSError) as exc:
        if debug:
            raise
        message = str(exc) if not isinstance(exc, OSError) or not exc.filename else f"{exc.filename}: {exc.strerror}"
        typer.echo(f"error: {message}", err=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
