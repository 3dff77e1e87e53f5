"""MA-LMM's memory banks as explicit values, and memory bank compression (MBC).

MA-LMM processes a video one frame at a time. A *visual* memory bank keeps the features of past
frames for the Q-Former's cross-attention, and each Q-Former self-attention layer keeps a *query*
memory bank of its past inputs. When a bank grows past `memory_bank_length` slots, MBC merges its
two most similar adjacent slots, so memory stays bounded however long the video is.

The original code kept these banks as attributes of the modules and deleted them when a frame
counter reached the configured number of frames, so banks leaked into the next video when it was
shorter and were wiped mid-video when it was longer. Here a `MemoryState` is created per video,
passed into every step and returned from it; nothing survives in the modules.

How a bank stays at `length` slots (`MemoryPolicy.compression`): MBC (MA-LMM's), or for the
paper's comparisons (Table 8) FIFO (drop the oldest slot), mean pooling (temporal average pooling:
the video is cut into `length` equal segments and each slot is the mean of its segment's frames
so far, content-blind; it needs the video's length) or none ("concat": the bank keeps every
frame and grows). `Bank` is the functional form (a new value per
step, differentiable); `mixma.models.malmm.streaming.StreamingBank` updates a bank in place while a
video streams, with the same results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

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
    _check_bank(bank, sizes)
    compute = torch.promote_types(bank.dtype, torch.float32)  # at least float32
    sizes = sizes.to(compute)
    differentiable = torch.is_grad_enabled() and (bank.requires_grad or sizes.requires_grad)
    if out is not None:
        _check_out(out, bank, sizes, differentiable)
    norms, dots = _norms_and_adjacent_dots(bank, compute, differentiable)  # [B, N, P], [B, N-1, P]
    norms = norms.clamp_min(1e-8)
    similarity = dots / (norms[:, :-1] * norms[:, 1:])  # [B, N-1, P]
    k = similarity.argmax(dim=1, keepdim=True)  # [B, 1, P]; argmax returns the first maximum
    return _merge_adjacent(bank, sizes, k, out, differentiable)


def _merge_adjacent(bank: torch.Tensor, sizes: torch.Tensor, k: torch.Tensor, out, differentiable: bool
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge slots `k` and `k + 1` (`k [B, 1, P]`, per item and position) by their size-weighted
    mean and drop slot `k + 1`. `sizes` are already in the compute precision."""
    b, n, p, c = bank.shape
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
    merged = merged_rows(rows.index_select(0, first), rows.index_select(0, first + p), size_k, size_next, sizes.dtype)

    if differentiable:  # `out=` writes cannot be differentiated
        values = rows.index_select(0, source).view(b, n - 1, p, c)
        new_sizes = torch.where(slot < k, sizes[:, :-1], sizes[:, 1:])
    else:  # into `out`, or a fresh result in huge pages where the OS offers them (mixma._hugepages)
        values, new_sizes = out or (empty_large((b, n - 1, p, c), bank.dtype, device),
                                    torch.empty(b, n - 1, p, dtype=sizes.dtype, device=device))
        torch.index_select(rows, 0, source, out=values.view(b * (n - 1) * p, c))
        torch.where(slot < k, sizes[:, :-1], sizes[:, 1:], out=new_sizes)
    values.view(b * (n - 1) * p, c).index_copy_(0, target, merged)
    return values, new_sizes.scatter_(1, k, size_k + size_next)


def merged_rows(a: torch.Tensor, z: torch.Tensor, size_a: torch.Tensor, size_z: torch.Tensor, compute: torch.dtype,
                out: torch.Tensor | None = None) -> torch.Tensor:
    """`[R, C]`: the size-weighted means of rows `a` and `z` (sizes `R` values each), computed in
    `compute` and returned in the rows' dtype (into `out` when given and no cast is needed). The
    one statement of the merge, shared with the streaming bank so that both give the same bits."""
    weight = (size_z / (size_a + size_z)).reshape(-1, 1)
    if out is not None and a.dtype == compute:
        return torch.lerp(a, z, weight, out=out)
    return torch.lerp(a.to(compute), z.to(compute), weight).to(a.dtype)  # a + (z - a) * weight


def drop_oldest(bank: torch.Tensor, sizes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """FIFO: forget the oldest slot. Shapes as `compress_memory`."""
    _check_bank(bank, sizes)
    return bank[:, 1:], sizes[:, 1:]


def merge_last(bank: torch.Tensor, sizes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold the newest slot into the one before it (a running mean). Shapes as `compress_memory`."""
    _check_bank(bank, sizes)
    compute = torch.promote_types(bank.dtype, torch.float32)
    k = torch.full((bank.shape[0], 1, bank.shape[2]), bank.shape[1] - 2, dtype=torch.long, device=bank.device)
    differentiable = torch.is_grad_enabled() and bank.requires_grad
    return _merge_adjacent(bank, sizes.to(compute), k, None, differentiable)


def segment(frame: int, total_frames: int | None, length: int) -> int:
    """Mean pooling's segment of frame `frame` (0-based) when a video of `total_frames` frames is
    cut into `length` equal segments: `floor(frame * length / total_frames)` (frames past
    `total_frames` join the last one)."""
    if total_frames is None:
        raise ValueError("compression='mean' pools the video into equal segments and needs its length "
                         "(total_frames)")
    return min(frame * length // total_frames, length - 1)


Compression = Literal["mbc", "fifo", "mean", "concat"]
COMPRESSIONS: tuple[str, ...] = get_args(Compression)


def compress(bank: torch.Tensor, sizes: torch.Tensor, method: Compression = "mbc") -> tuple[torch.Tensor, torch.Tensor]:
    """Shrink a full bank by one slot with `method`, "mbc" or "fifo" ("mean" merges by segment,
    see `Bank.append`; "concat" never shrinks)."""
    if method == "mbc":
        return compress_memory(bank, sizes)
    if method == "fifo":
        return drop_oldest(bank, sizes)
    raise ValueError(f"{method!r} does not shrink a full bank; choose 'mbc' or 'fifo'")


def _check_bank(bank: torch.Tensor, sizes: torch.Tensor) -> None:
    if bank.dim() != 4 or sizes.shape != bank.shape[:3]:
        raise ValueError(f"expected bank [B, N, P, C] and sizes [B, N, P], got {tuple(bank.shape)} and {tuple(sizes.shape)}")
    if bank.shape[1] < 2:
        raise ValueError("compressing needs at least two slots")


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


def _numpy_ok(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and not x.requires_grad


def row_norms(rows: torch.Tensor, compute: torch.dtype) -> torch.Tensor:
    """`[R]`: the norm of each row of `rows [R, C]`, clamped as `compress_memory` clamps it, by the
    same computation (the streaming bank's similarities must equal a fresh bank's bit for bit)."""
    if _numpy_ok(rows):
        x = rows.detach().numpy()
        return torch.from_numpy(np.vecdot(x, x)).sqrt_().clamp_min_(1e-8)
    return torch.linalg.vector_norm(rows, dim=-1, dtype=compute).clamp_min(1e-8)


def row_dots(a: torch.Tensor, z: torch.Tensor, compute: torch.dtype) -> torch.Tensor:
    """`[R]`: the dot product of each row of `a [R, C]` with the same row of `z`."""
    if _numpy_ok(a) and _numpy_ok(z):
        return torch.from_numpy(np.vecdot(a.detach().numpy(), z.detach().numpy()))
    return torch.linalg.vecdot(a, z, dim=-1).to(compute)


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
class MemoryPolicy:
    """What MA-LMM remembers and how a full bank shrinks; `MALMM.memory_policy` builds it from the
    model's configuration.

    Attributes:
        length: slots per bank (M >= 1); ignored by "concat".
        compression: "mbc" (MA-LMM), "fifo", "mean" or "concat" (see the module docstring).
        visual: keep the visual bank (frame features for cross-attention).
        queries: keep the query banks (each Q-Former layer's past inputs for self-attention).
        total_frames: the video's length, which "mean" needs (None if unknown).
    """

    length: int
    compression: Compression = "mbc"
    visual: bool = True
    queries: bool = True
    total_frames: int | None = None

    def __post_init__(self):
        if self.length < 1:
            raise ValueError(f"a memory bank needs at least one slot, got length={self.length}")
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, got {self.compression!r}")


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

    def append(self, x: torch.Tensor, max_length: int, detach: bool = True, compression: Compression = "mbc",
               total_frames: int | None = None) -> Bank:
        """Add `x [B, P, C]` as a new slot, then shrink back to `max_length` slots if needed
        (never with "concat"; with "mean", fold it into the last slot when both are frames of the
        same segment of a `total_frames`-frame video).

        Raises:
            ValueError: "mean" without `total_frames`.
        """
        new = Bank.of(x, detach)
        frame = self.frames_held()  # the new frame's index
        bank = Bank(torch.cat([self.values, new.values], 1), torch.cat([self.sizes, new.sizes], 1))
        if compression == "mean":
            if segment(frame, total_frames, max_length) == segment(frame - 1, total_frames, max_length):
                bank = Bank(*merge_last(bank.values, bank.sizes))
            return bank
        while compression != "concat" and len(bank) > max_length:
            bank = Bank(*compress(bank.values, bank.sizes, compression))
        return bank

    def frames_held(self) -> int:
        """How many frames went into the bank (exact for banks that never drop a frame)."""
        return int(self.sizes[0, :, 0].sum())

    def to_bank(self) -> Bank:
        return self


@dataclass(frozen=True)
class MemoryState:
    """Everything MA-LMM remembers about one batch of videos between frames.

    Attributes:
        visual: past frame features (with their temporal embedding) for cross-attention, or None
            (before the first frame, or when the policy keeps no visual bank).
        queries: one bank per Q-Former layer with that layer's past inputs, or None.
        frames_seen: how many frames have gone by (indexes the temporal embedding).

    The banks are `Bank`s, or after a streaming (no-gradient) step a `StreamingBank` and a
    `LayerBanks` (the query banks stacked; indexing gives each layer's bank); either reads the
    same (`len`, `values`, `sizes`, `flat()`, `to_bank()`). `MALMM` never changes a state it
    was given.
    """

    visual: Bank | None = None
    queries: tuple[Bank, ...] | None = None
    frames_seen: int = 0

    def remember(self, frame_features: torch.Tensor, layer_inputs: list[torch.Tensor], policy: MemoryPolicy,
                 detach: bool = True) -> MemoryState:
        """The state after one more frame: each kept bank gains a slot and shrinks if too long.

        `detach=False` keeps the autograd graph through memory (see `MALMM.get_video_features`).
        """
        def step(bank, x):
            if bank is None:
                return Bank.of(x, detach)
            return bank.to_bank().append(x, policy.length, detach, policy.compression, policy.total_frames)

        visual = step(self.visual, frame_features) if policy.visual else None
        queries = None
        if policy.queries:
            old = self.queries or (None,) * len(layer_inputs)
            queries = tuple(step(bank, h) for bank, h in zip(old, layer_inputs))
        return MemoryState(visual, queries, self.frames_seen + 1)
