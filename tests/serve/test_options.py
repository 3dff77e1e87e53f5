"""ServeOptions refuses what cannot work, when it is made."""

from __future__ import annotations

import pytest

from mixma.serve import ServeOptions
from mixma.serve.run import is_loopback


@pytest.mark.parametrize("options, message", [
    ({"max_body_bytes": 0}, "max_body_bytes must be at least 1"), ({"ask_workers": 0}, "ask_workers"),
    ({"ask_queue": -1}, "ask_queue"), ({"ask_timeout_s": 0}, "ask_timeout_s"), ({"token": " "}, "token is empty"),
    ({"allow_upload": True}, "allow_upload needs an upload_dir"), ({"torch_threads": 0}, "torch_threads")])
def test_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        ServeOptions(**options)


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("localhost", True),
                                            ("0.0.0.0", False), ("192.168.1.5", False), ("::", False), ("example.org", False)])
def test_loopback(host, loopback):
    assert is_loopback(host) is loopback
