"""Fresh large tensors advised into huge pages: the advice lands, and it is only ever a hint."""

from __future__ import annotations

import sys

import pytest
import torch

from mixma import _hugepages
from mixma._hugepages import empty_large


def vm_flags(address: int) -> list[str]:
    """The VmFlags of the mapping that holds `address` (Linux /proc/self/smaps)."""
    flags, inside = None, False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                low, high = (int(x, 16) for x in head.split("-"))
                inside = low <= address < high
            elif inside and head == "VmFlags:":
                flags = line.split()[1:]
    assert flags is not None, "no mapping holds the address"
    return flags


@pytest.mark.skipif(not sys.platform.startswith("linux") or _hugepages._madvise is None, reason="Linux madvise")
def test_a_large_tensor_is_advised_into_huge_pages():
    large = empty_large((8, 1 << 20), torch.float32, torch.device("cpu"))  # 32 MiB
    middle = large.data_ptr() + large.numel() * 2  # halfway in: inside the advised pages
    assert "hg" in vm_flags(middle)
    large.fill_(1.5)
    assert large.shape == (8, 1 << 20) and large.dtype == torch.float32 and float(large.sum()) == 1.5 * large.numel()


def test_small_tensors_and_no_madvise_give_a_plain_empty(monkeypatch):
    small = empty_large((3, 4), torch.float16, torch.device("cpu"))
    assert small.shape == (3, 4) and small.dtype == torch.float16
    monkeypatch.setattr(_hugepages, "_madvise", None)  # not Linux, or libc without madvise
    large = empty_large((2, 1 << 20), torch.float64, torch.device("cpu"))
    assert large.shape == (2, 1 << 20) and large.dtype == torch.float64
