"""The `mixma` entry point: every command registered in one place, and how errors are reported.

Each command module defines plain functions (their parameters are the options); `build_app`
registers them, so what the CLI offers is readable here, in order. Commands import the heavy
parts of the library (torch, transformers) only when they run.

Bad input (a file that is not a video, a malformed annotation, an invalid option) prints one line
starting with `error:` on stderr and exits with code 2, without a traceback. Set MIXMA_DEBUG=1 to
see the traceback instead.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable

import typer
from typer.exceptions import TyperException

from mixma.cli import ask, augment, bench, convert, data, evaluate, frames, index, info, serve, train
from mixma.errors import MixmaError
from mixma.train.registry import TRAINERS

SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def help_text(func: Callable) -> str:
    """A command's docstring for click, with its indented blocks (examples, lists) kept as written:
    click re-flows every paragraph unless it starts with its no-rewrap marker, a line holding \\b."""
    paragraphs = inspect.cleandoc(func.__doc__ or "").split("\n\n")
    kept = ["\b\n" + p if p.startswith(" ") else p for p in paragraphs]
    return "\n\n".join(kept)


def command(group: typer.Typer, name: str, func: Callable, **options) -> None:
    group.command(name, help=help_text(func), **options)(func)


def _group(help_text: str) -> typer.Typer:
    return typer.Typer(help=help_text, no_args_is_help=True, add_completion=False, rich_markup_mode=None,
                       context_settings=SETTINGS)


def build_app() -> typer.Typer:
    """The `mixma` command and its subcommands."""
    app = typer.Typer(
        name="mixma",
        help="Long-video understanding with language models: MixedFrame sampling, MA-LMM and MAMA.",
        no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
        context_settings=SETTINGS,
    )
    command(app, "frames", frames.frames, no_args_is_help=True)
    command(app, "info", info.info, no_args_is_help=True)
    command(app, "index", index.index, no_args_is_help=True)
    command(app, "search", index.search, no_args_is_help=True)

    bench_app = _group("The synthetic long-video benchmark (see `mixma bench make --help`).")
    command(bench_app, "make", bench.make, no_args_is_help=True)
    app.add_typer(bench_app, name="bench")

    data_app = _group("Standard datasets: list the readers, convert annotations to canonical JSONL.")
    command(data_app, "list", data.list_datasets)
    command(data_app, "convert", data.convert, no_args_is_help=True)
    app.add_typer(data_app, name="data")

    train_app = _group("Train a model from a YAML config (see configs/).")
    for kind, trainer in TRAINERS.items():
        command(train_app, kind, train.train_command(kind, trainer.summary), no_args_is_help=True)
    app.add_typer(train_app, name="train")

    command(app, "eval", evaluate.evaluate, no_args_is_help=True)
    command(app, "ask", ask.ask, no_args_is_help=True)
    command(app, "caption", ask.caption, no_args_is_help=True)
    command(app, "augment-captions", augment.augment_captions_command, no_args_is_help=True)

    convert_app = _group("Checkpoints of the original research code into mixma's formats, and back.")
    command(convert_app, "malmm-lavis", convert.malmm_lavis, no_args_is_help=True)
    app.add_typer(convert_app, name="convert")
    command(app, "serve", serve.serve, no_args_is_help=True)
    return app


app = build_app()


def _usage_error(exc: TyperException) -> int:
    if type(exc).__name__ == "NoArgsIsHelpError":
        exc.show()  # `mixma` or `mixma frames` alone: print the help, and fail (nothing was done)
        return 2
    ctx = getattr(exc, "ctx", None)
    hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    typer.echo(f"error: {exc.format_message()}{hint}", err=True)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 success, 2 bad input, 130 interrupted)."""
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
        return _usage_error(exc)
    except (MixmaError, ValueError, OSError) as exc:
        if debug:
            raise
        message = str(exc) if not isinstance(exc, OSError) or not exc.filename else f"{exc.filename}: {exc.strerror}"
        typer.echo(f"error: {message.splitlines()[0] if message else type(exc).__name__}", err=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
