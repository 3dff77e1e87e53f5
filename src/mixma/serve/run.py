"""Running the app with uvicorn on a socket bound first, so a port in use is a one-line error
and port 0 picks a free port whose URL can be printed (and used by tests)."""

from __future__ import annotations

import ipaddress
import logging
import socket
import sys
import threading

import uvicorn

from mixma.errors import MixmaError

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str = "127.0.0.1", port: int = 8000) -> socket.socket:
    """A listening socket (IPv6 for an IPv6 address).

    Raises:
        MixmaError: the address cannot be bound (in use, not this machine's).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise MixmaError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def server(app, sock: socket.socket, **config) -> uvicorn.Server:
    """A uvicorn server for `app` on `sock`; our own request log replaces uvicorn's access log."""
    # keep-alive beyond uvicorn's 5 s: a client reusing a connection the server is closing sees
    # a reset (httpx's own expiry is also 5 s: a race the load test met); browsers keep longer
    options = {"log_config": None, "access_log": False, "timeout_graceful_shutdown": 5, "timeout_keep_alive": 30, **config}
    host, port = sock.getsockname()[:2]
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, **options))


def log_to_stderr(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    for name in ("mixma.serve", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(level)


class BackgroundServer:
    """The app served from a thread on a free loopback port (tests, benchmarks, screenshots):

        with BackgroundServer(app) as url: requests.get(url + "api/health")
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        self.sock = bind(host, port)
        self.url = url_of(self.sock)
        self.server = server(app, self.sock)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                return self.url
            if not self.thread.is_alive():
                raise RuntimeError("the server stopped while starting")
            threading.Event().wait(0.01)
        raise RuntimeError("the server did not start in 5 s")

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
