"""The `mixma` command: thin callers of the library API, one module per command group, registered
in `mixma.cli.app`."""


def main(argv: list[str] | None = None) -> int:
    """Run the CLI (see `mixma.cli.app.main`)."""
    from mixma.cli.app import main as run  # noqa: PLC0415  (the app imports every command module)

    return run(argv)


__all__ = ["main"]
