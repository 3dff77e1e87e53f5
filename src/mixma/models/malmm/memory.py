"""MA-LMM's memory banks as explicit values, and memory bank compression (MBC).

MA-LMM processes a video one frame at a time. A *visual* memory bank keeps the features of past
frames for the Q-Former's cross-attention, and each Q-Former self-attention layer keeps a *query*
memory bank of its past inputs. When a bank grows past `memory_bank_length` slots, MBC merges its
two most similar adjacent slots, so memory stays bounded however long the video is.

The original code kept these banks as attributes of the modules and deleted them when a frame
counter reached the configured number of frames, so banks leaked into the next video when it was
shorter and were wiped mid-video when it was longer. Here a `MemoryState` is created per video,
passed into every step and returned from it; nothing survives in the modules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mixma._hugepages import empty_large


def compress_memory(
    bank: torch.Tensor, sizes: torch.Tensor, *, out: tuple[torch.Tensor, torch.Tensor] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One MBC step: merge the most similar adjacent pair of slots, per item and token position.

    For each batch item `b` and token position `p`, find the adjacent pair `(k, k + 1)` whose
    vectors have the highest cosine similarity over the channels (ties go to the lowest `k`),
    replace slot `k` by the size-weighted mean of the two, add their sizes, and drop slot `k + 1`.
    The size-weighted mean keeps every slot equal to the exact mean of the original frames merged
    into it (the paper writes a plain mean; the released code weights by size, as here).

    Similarities and the merge are computed in at least float32 whatever the bank's dtype
    (half-precision counts stop at 2048, and `value * count` overflows fp16); the result has the
    bank's dtype, and the sizes that precision.

    Args:
        bank: `[B, N, P, C]` slots (N >= 2).
        sizes: `[B, N, P]`, how many original frames each slot holds.
        out: optional preallocated `([B, N - 1, P, C], [B, N - 1, P])` tensors to write the result
            into (contiguous; the dtypes the result would have; the bank's device; not under
            autograd). A fresh result of a large bank is mostly page faults (110 MiB cost ~55 ms on
            our CPU machine before a byte is copied, more than the work itself), so repeated
            calls on same-shaped banks should reuse buffers.

    Returns:
        `([B, N - 1, P, C], [B, N - 1, P])`: `out` when given.
    """
    if bank.dim() != 4 or sizes.shape != bank.shape[:3]:
        raise ValueError(f"expected bank [B, N, P, C] and sizes [B, N, P], got {tuple(bank.shape)} and {tuple(sizes.shape)}")
    if bank.shape[1] < 2:
        raise ValueError("compressing needs at least two slots")
    b, n, p, c = bank.shape
    compute = torch.promote_types(bank.dtype, torch.float32)  # at least float32
    sizes = sizes.to(compute)
    differentiable = torch.is_grad_enabled() and (bank.requires_grad or sizes.requires_grad)
    if out is not None:
        _check_out(out, bank, sizes, differentiable)
    norms, dots = _norms_and_adjacent_dots(bank, compute, differentiable)  # [B, N, P], [B, N-1, P]
    norms = norms.clamp_min(1e-8)
    similarity = dots / (norms[:, :-1] * norms[:, 1:])  # [B, N-1, P]
    k = similarity.argmax(dim=1, keepdim=True)  # [B, 1, P]; argmax returns the first maximum

    # Every (item, slot, position) is a row of C channels: the output is a row gather (slot j
    # comes from source slot j before k and j + 1 from k on), then slot k is overwritten by the
    # merge. Copying whole rows is a memcpy each; elementwise selects and gathers cost 3x more.
    device = bank.device
    item = torch.arange(b, device=device).view(b, 1, 1)
    slot = torch.arange(n - 1, device=device).view(1, n - 1, 1)
    position = torch.arange(p, device=device).view(1, 1, p)
    rows = bank.reshape(b * n * p, c)  # a view when the bank is contiguous
    source = ((item * n + slot + (slot >= k)) * p + position).flatten()  # [B*(N-1)*P]
    first = ((item * n + k) * p + position).flatten()  # [B*P]: slot k's rows
    target = ((item * (n - 1) + k) * p + position).flatten()  # where the merge goes
    size_k, size_next = sizes.gather(1, k), sizes.gather(1, k + 1)  # [B, 1, P]
    weight = (size_next / (size_k + size_next)).reshape(b * p, 1)
    a, z = rows.index_select(0, first).to(compute), rows.index_select(0, first + p).to(compute)  # [B*P, C]
    merged = torch.lerp(a, z, weight).to(bank.dtype)  # a + (z - a) * weight

    if differentiable:  # `out=` writes cannot be differentiated
        values = rows.index_select(0, source).view(b, n - 1, p, c)
        new_sizes = torch.where(slot < k, sizes[:, :-1], sizes[:, 1:])
    else:  # into `out`, or a fresh result in huge pages where the OS offers them (mixma._hugepages)
        values, new_sizes = out or (empty_large((b, n - 1, p, c), bank.dtype, device),
                                    torch.empty(b, n - 1, p, dtype=compute, device=device))
        torch.index_select(rows, 0, source, out=values.view(b * (n - 1) * p, c))
        torch.where(slot < k, sizes[:, :-1], sizes[:, 1:], out=new_sizes)
    values.view(b * (n - 1) * p, c).index_copy_(0, target, merged)
    return values, new_sizes.scatter_(1, k, size_k + size_next)


def _norms_and_adjacent_dots(bank: torch.Tensor, compute: torch.dtype, differentiable: bool
                             ) -> tuple[torch.Tensor, torch.Tensor]:
    """`([B, N, P], [B, N-1, P])`: each slot's norm, and its dot product with the next slot."""
    if bank.device.type == "cpu" and bank.dtype in (torch.float32, torch.float64) and not differentiable:
        # NumPy's vecdot runs a BLAS dot per row with no temporary (torch's vecdot writes the
        # elementwise product out, ~2.3x slower). One call gives both quantities in one pass:
        # views [B, P, N-1, 2, C] pair row x[n] with itself (→ squared norm) and with x[n+1] (→ dot),
        # and walking positions outermost keeps a position's N rows (N·C values) in cache while
        # they are read twice. Same float32 accumulation as torch.
        x = bank.detach().numpy()
        b, n, p, c = x.shape
        sb, sn, sp, sc = x.strides
        shape = (b, p, n - 1, 2, c)
        itself = np.lib.stride_tricks.as_strided(x, shape, (sb, sp, sn, 0, sc), writeable=False)
        itself_then_next = np.lib.stride_tricks.as_strided(x, shape, (sb, sp, sn, sn, sc), writeable=False)
        both = torch.from_numpy(np.vecdot(itself, itself_then_next))  # [B, P, N-1, 2]
        squares = torch.empty(b, n, p, dtype=both.dtype)
        squares[:, :-1] = both[..., 0].transpose(1, 2)
        squares[:, -1] = torch.from_numpy(np.vecdot(x[:, -1], x[:, -1]))
        return squares.sqrt_(), both[..., 1].transpose(1, 2)
    # one slot pair at a time: the product stays in cache, where a whole-bank product (or
    # einsum's many tiny matmuls) costs several times more
    b, n, p, _ = bank.shape
    norms = torch.linalg.vector_norm(bank, dim=-1, dtype=compute)
    dots = torch.empty(b, n - 1, p, dtype=compute, device=bank.device)
    for j in range(n - 1):
        dots[:, j] = torch.linalg.vecdot(bank[:, j], bank[:, j + 1], dim=-1).to(compute)
    return norms, dots


def _check_out(out, bank: torch.Tensor, sizes: torch.Tensor, differentiable: bool) -> None:
    b, n, p, c = bank.shape
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise TypeError("out must be a (values, sizes) pair of tensors")
    values, out_sizes = out
    want = [((b, n - 1, p, c), bank), ((b, n - 1, p), sizes)]
    for name, tensor, (shape, like) in zip(("values", "sizes"), (values, out_sizes), want):
        if tuple(tensor.shape) != shape or tensor.dtype != like.dtype or tensor.device != like.device:
            raise ValueError(f"out {name} must be {list(shape)} {like.dtype} on {like.device}, "
                             f"got {list(tensor.shape)} {tensor.dtype} on {tensor.device}")
        if not tensor.is_contiguous():
            raise ValueError(f"out {name} must be contiguous")
    if differentiable:
        raise RuntimeError("out= writes cannot be differentiated; call without out under autograd")


@dataclass(frozen=True)
class Bank:
    """A memory bank: `values [B, m, P, C]` and `sizes [B, m, P]` (float32: frames merged into each slot)."""

    values: torch.Tensor
    sizes: torch.Tensor

    @classmethod
    def of(cls, x: torch.Tensor, detach: bool = True) -> Bank:
        """A one-slot bank holding `x [B, P, C]`, detached unless asked (MA-LMM detaches memory)."""
        x = (x.detach() if detach else x).unsqueeze(1)
        return cls(x, torch.ones(x.shape[:3], dtype=torch.float32, device=x.device))  # counts stay exact

    def __len__(self) -> int:
        return self.values.shape[1]

    def flat(self) -> torch.Tensor:
        """`[B, m * P, C]`: every slot's tokens in one sequence (keys/values for attention)."""
        return self.values.flatten(1, 2)

    def append(self, x: torch.Tensor, max_length: int, detach: bool = True) -> Bank:
        """Add `x [B, P, C]` as a new slot, then compress back to `max_length` slots if needed."""
        new = Bank.of(x, detach)
        bank = Bank(torch.cat([self.values, new.values], 1), torch.cat([self.sizes, new.sizes], 1))
        while len(bank) > max_length:
            bank = Bank(*compress_memory(bank.values, bank.sizes))
        return bank


@dataclass(frozen=True)
class MemoryState:
    """Everything MA-LMM remembers about one batch of videos between frames.

    Attributes:
        visual: past frame features (with their temporal embedding) for cross-attention, or None
            before the first frame.
        queries: one bank per Q-Former layer with that layer's past inputs, or None.
        frames_seen: how many frames have gone by (indexes the temporal embedding).
    """

    visual: Bank | None = None
    queries: tuple[Bank, ...] | None = None
    frames_seen: int = 0

    def remember(self, frame_features: torch.Tensor, layer_inputs: list[torch.Tensor], max_length: int,
                 detach: bool = True) -> MemoryState:
        """The state after one more frame: each bank gains a slot and is compressed if too long.

        `detach=False` keeps the autograd graph through memory (see `MALMM.get_video_features`).
        """
        if self.visual is None:
            return MemoryState(Bank.of(frame_features, detach), tuple(Bank.of(h, detach) for h in layer_inputs),
                               self.frames_seen + 1)
        return MemoryState(
            self.visual.append(frame_features, max_length, detach),
            tuple(bank.append(h, max_length, detach) for bank, h in zip(self.queries, layer_inputs)),
            self.frames_seen + 1,
        )
