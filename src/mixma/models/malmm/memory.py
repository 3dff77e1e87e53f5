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
    similarity = F.cosine_similarity(bank[:, :-1], bank[:, 1:], dim=-1)  # [B, N-1, P]
    k = similarity.argmax(dim=1, keepdim=True)  # [B, 1, P]; argmax returns the first maximum

    # output slot j reads source slot j before k and j + 1 after it; slot k is the merge
    j = torch.arange(n - 1, device=bank.device).view(1, n - 1, 1)
    source = j + (j > k).long()  # [B, N-1, P]
    size_k, size_next = sizes.gather(1, k), sizes.gather(1, k + 1)  # [B, 1, P]
    k_c = k.unsqueeze(-1).expand(b, 1, p, c)
    merged = (bank.gather(1, k_c) * size_k.unsqueeze(-1) + bank.gather(1, k_c + 1) * size_next.unsqueeze(-1)) / (
        size_k + size_next
    ).unsqueeze(-1)  # [B, 1, P, C]
    out = bank.gather(1, source.unsqueeze(-1).expand(b, n - 1, p, c)).scatter(1, k_c, merged.to(bank.dtype))
    out_sizes = sizes.gather(1, source).scatter(1, k, size_k + size_next)
    return out, out_sizes


@dataclass(frozen=True)
class Bank:
    """A memory bank: `values [B, m, P, C]` and `sizes [B, m, P]` (frames merged into each slot)."""

    values: torch.Tensor
    sizes: torch.Tensor

    @classmethod
    def of(cls, x: torch.Tensor) -> Bank:
        """A one-slot bank holding `x [B, P, C]`, detached (memory never carries gradients)."""
        x = x.detach().unsqueeze(1)
        return cls(x, torch.ones(x.shape[:3], dtype=x.dtype, device=x.device))

    def __len__(self) -> int:
        return self.values.shape[1]

    def flat(self) -> torch.Tensor:
        """`[B, m * P, C]`: every slot's tokens in one sequence (keys/values for attention)."""
        return self.values.flatten(1, 2)

    def append(self, x: torch.Tensor, max_length: int) -> Bank:
        """Add `x [B, P, C]` as a new slot, then compress back to `max_length` slots if needed."""
        new = Bank.of(x)
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

    def remember(self, frame_features: torch.Tensor, layer_inputs: list[torch.Tensor], max_length: int) -> MemoryState:
        """The state after one more frame: each bank gains a slot and is compressed if too long."""
        if self.visual is None:
            return MemoryState(Bank.of(frame_features), tuple(Bank.of(h) for h in layer_inputs), self.frames_seen + 1)
        return MemoryState(
            self.visual.append(frame_features, max_length),
            tuple(bank.append(h, max_length) for bank, h in zip(self.queries, layer_inputs)),
            self.frames_seen + 1,
        )
