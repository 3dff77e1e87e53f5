"""`mixma serve`: the HTTP API and the web page over an index."""

from __future__ import annotations

from pathlib import Path

import typer

from mixma.cli._common import quiet_transformers, warn
from mixma.serve.options import ServeOptions

D = ServeOptions  # every default lives in ServeOptions


def default_upload_dir(index: Path) -> Path:
    """`my.index` keeps its uploads in `my.index-uploads`: beside the index folder, as the index
    never takes in files from inside its own folder."""
    index = index.resolve()
    return index.with_name(index.name + "-uploads")


def serve(
    index: Path = typer.Argument(..., metavar="INDEX", help="An index folder made by `mixma index`."),
    malmm: Path = typer.Option(None, "--malmm", help="A trained MA-LMM run (or checkpoint) folder: questions are answered with it."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback: only this machine can connect)."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port (0: any free port)."),
    token: str = typer.Option(None, "--token", envvar="MIXMA_SERVE_TOKEN", help="Require this token on every API call (open the page as /?token=...). [env: MIXMA_SERVE_TOKEN]"),
    allow_upload: bool = typer.Option(False, "--allow-upload", help="Accept video uploads from the page, indexed as they arrive."),
    upload_dir: Path = typer.Option(None, "--upload-dir", help="Where uploads are kept (outside the index folder). [default: INDEX-uploads beside it]"),
    max_upload_mb: int = typer.Option(D.max_upload_bytes // 2**20, "--max-upload-mb", min=1, help="Largest upload, in MiB."),
    ask_timeout: float = typer.Option(D.ask_timeout_s, "--ask-timeout", min=1, help="Seconds a question may take before it answers 504."),
    threads: int = typer.Option(D.torch_threads, "--threads", min=1, help="torch threads per model call (requests run side by side)."),
):
    """Serve an index over HTTP: a search page at / and a JSON API under /api (described at /docs).

    Search for a moment, play it from its start, and ask MA-LMM about it (with --malmm). Only the
    indexed videos can be fetched, by their ids. Loopback only unless --host says otherwise; use
    --token when others can reach the port.

    Examples:

      mixma serve my.index

      mixma serve my.index --malmm runs/malmm --port 8080

      mixma serve my.index --host 0.0.0.0 --token "$(openssl rand -hex 16)" --allow-upload
    """
    from mixma.index import VideoIndex
    from mixma.serve import create_app
    from mixma.serve.run import bind, is_loopback, log_to_stderr, server, url_of

    if not is_loopback(host) and token is None:
        warn(f"listening on {host} without --token: anyone who can reach the port can search and watch the videos")
    options = ServeOptions(token=token, ask_timeout_s=ask_timeout, allow_upload=allow_upload,
                           upload_dir=(upload_dir or default_upload_dir(index)) if allow_upload else None,
                           max_upload_bytes=max_upload_mb * 2**20, torch_threads=threads)
    import torch

    torch.set_num_threads(options.torch_threads)
    quiet_transformers()  # the index's text model and MA-LMM load without progress bars
    idx = VideoIndex.open(index)
    assistant = None
    if malmm is not None:
        from mixma.inference import VideoAssistant

        assistant = VideoAssistant.from_checkpoint(malmm)
    sock = bind(host, port)
    url = url_of(sock) + (f"?token={token}" if token else "")
    typer.echo(f"mixma serve: {idx.num_videos()} videos, {len(idx)} moments ({idx.model_name}); "
               f"ask {'on' if assistant else 'off (--malmm RUN)'}; uploads {'on' if allow_upload else 'off'}", err=True)
    typer.echo(f"open {url}  (Ctrl-C stops)", err=True)
    log_to_stderr()
    server(create_app(idx, assistant, options), sock).run(sockets=[sock])
