"""Fresh large CPU tensors backed by transparent huge pages, where Linux offers them.

A fresh 100 MiB tensor is mmapped by the allocator and faults in one 4 KiB page at a time on first
write: ~55 ms for 110 MiB on our CPU machine, several times the cost of the copy into it. Asking
the kernel for 2 MiB pages (`madvise(MADV_HUGEPAGE)`, as NumPy does for its large arrays) cuts
that to ~9 ms. Where THP is off, the platform is not Linux, or the call fails, the tensor is a
plain `torch.empty`. (PyTorch's own `THP_MEM_ALLOC_ENABLE=1` does this for every allocation, but
only when set before the process's first allocation.)
"""

from __future__ import annotations

import ctypes
import mmap
import sys

import torch

_MADV_HUGEPAGE = 14  # linux/mman.h
_THRESHOLD = 4 << 20  # below this, page faults cost little and the heap usually reuses memory


def _load_madvise():
    if not sys.platform.startswith("linux"):
        return None
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    return madvise


_madvise = _load_madvise()


def empty_large(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """`torch.empty(shape)`, with huge pages advised for a large CPU tensor (a hint: never fails)."""
    tensor = torch.empty(shape, dtype=dtype, device=device)
    nbytes = tensor.numel() * tensor.element_size()
    if _madvise is not None and tensor.device.type == "cpu" and nbytes >= _THRESHOLD:
        page = mmap.PAGESIZE
        start = -(-tensor.data_ptr() // page) * page  # madvise takes whole pages inside the buffer
        end = (tensor.data_ptr() + nbytes) // page * page
        _madvise(start, end - start, _MADV_HUGEPAGE)  # the result is ignored: it is only advice
    return tensor
