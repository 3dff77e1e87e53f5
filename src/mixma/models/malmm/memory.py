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

import torch
import torch.nn.functional as F


def compress_memory(bank: torch.Tensor, sizes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One MBC step: merge the most similar adjacent pair of slots, per item and token position.

    For each batch item `b` and token position `p`, find the adjacent pair `(k, k + 1)` whose
    vectors have the highest cosine similarity over the channels (ties go to the lowest `k`),
    replace slot `k` by the size-weighted mean of the two, add their sizes, and drop slot `k + 1`.
    The size-weighted mean keeps every slot equal to the exact mean of the original frames merged
    into it (the paper writes a plain mean; the released code weights by size, as here).

    Similarities and the merge are computed in at least float32 whatever the bank's dtype
    (half-precision counts stop at 2048, and `value * count` overflows fp16); the result has the
    bank's dtype and the sizes that precision.

    Args:
        bank: `[B, N, P, C]` slots (N >= 2).
        sizes: `[B, N, P]`, how many original frames each slot holds.

    Returns:
        `([B, N - 1, P, C], [B, N - 1, P])`.
    """
    if bank.dim() != 4 or sizes.shape != bank.shape[:3]:
        raise ValueError(f"expected bank [B, N, P, C] and sizes [B, N, P], got {tuple(bank.shape)} and {tuple(sizes.shape)}")
    if bank.shape[1] < 2:
        raise ValueError("compressing needs at least two slots")
    b, n, p, c = bank.shape
    compute = torch.promote_types(bank.dtype, torch.float32)  # at least float32
    sizes = sizes.to(compute)
    # cosine of each adjacent pair. One slot pair at a time: the product stays in cache, where a
    # whole-bank product (or einsum's many tiny matmuls) costs several times more.
    norms = torch.linalg.vector_norm(bank, dim=-1, dtype=compute).clamp_min(1e-8)  # [B, N, P]
    dots = torch.empty(b, n - 1, p, dtype=compute, device=bank.device)
    for j in range(n - 1):
        dots[:, j] = torch.linalg.vecdot(bank[:, j], bank[:, j + 1], dim=-1).to(compute)
    similarity = dots / (norms[:, :-1] * norms[:, 1:])  # [B, N-1, P]
    k = similarity.argmax(dim=1, keepdim=True)  # [B, 1, P]; argmax returns the first maximum

    # output slot j is source slot j before k and j + 1 from k on; slot k then gets the merge
    before_k = torch.arange(n - 1, device=bank.device).view(1, n - 1, 1) < k  # [B, N-1, P]
    if bank.requires_grad and torch.is_grad_enabled():  # `out=` writes cannot be differentiated
        out = torch.where(before_k.unsqueeze(-1), bank[:, :-1], bank[:, 1:])
    else:
        out = torch.empty(b, n - 1, p, c, dtype=bank.dtype, device=bank.device)
        for j in range(n - 1):
            torch.where(before_k[:, j, :, None], bank[:, j], bank[:, j + 1], out=out[:, j])
    k_c = k.unsqueeze(-1).expand(b, 1, p, c)
    size_k, size_next = sizes.gather(1, k), sizes.gather(1, k + 1)  # [B, 1, P]
    first, second = bank.gather(1, k_c).to(compute), bank.gather(1, k_c + 1).to(compute)  # [B, 1, P, C]
    merged = first + (second - first) * (size_next / (size_k + size_next)).unsqueeze(-1)
    out.scatter_(1, k_c, merged.to(bank.dtype))
    out_sizes = torch.where(before_k, sizes[:, :-1], sizes[:, 1:]).scatter_(1, k, size_k + size_next)
    return out, out_sizes


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
