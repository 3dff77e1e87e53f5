"""A memory bank that is updated in place while a video streams: the fast form of `Bank`.

`Bank.append` concatenates the new slot and `compress_memory` writes a fresh bank, so each frame
copies the whole bank twice and recomputes every adjacent similarity, though only one pair per
token position changes. A `StreamingBank` keeps its storage, the slots' norms and the adjacent
similarities, and per frame touches only what changes:

- `push(x)` writes the new slot into a free storage slot and computes one similarity (the new
  slot against the previous last one);
- `settle()` picks the pair to merge, writes the merge over the first of the two, frees the
  second, and recomputes the two similarities next to the merge.

Slots are never moved. Per (item, token position) `order[b, i, p]` names the storage slot of the
i-th slot in time, so the storage holds each position's slots in any order. That is no loss for
attention, which treats its keys as a set (the temporal embedding is already in the values, and
the padding mask depends on the position only); after `push` the storage is exactly the
memory plus the new frame, so the Q-Former reads it as a view, without the copy a concatenation
makes. `values` and `sizes` give the slots in time order (a gather), as `Bank` holds them.

`LayerBanks` stacks the query banks of all Q-Former layers into one `StreamingBank` (layer i's
items are a block): each layer `stage`s its new slot when the Q-Former reaches it, and one
`commit` and one `settle` per frame update all of them, at the per-operation cost of one bank.

The results equal `Bank.append`'s (and so `compress_memory`'s) bit for bit on the CPU in float32
and float64: the same similarity and merge computations run on the same rows. In other precisions
and devices they agree up to the rounding of reductions. A `StreamingBank` holds no autograd
graph: it is for inference and for the no-gradient frames of training.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mixma.models.malmm.memory import Bank, Compression, MemoryPolicy, merged_rows, row_dots, row_norms, segment


class StreamingBank:
    """A memory bank of `[B, n, P, C]` slots, compressed in place (see the module docstring).

    Args:
        like: `[B, P, C]`, a slot like those the bank will hold (its shape, dtype and device).
        length: slots kept (M); ignored by "concat", whose storage grows as needed.
        compression: as `MemoryPolicy.compression`.
        total_frames: the video's length ("mean" needs it).
    """

    def __init__(self, like: torch.Tensor, length: int, compression: Compression = "mbc",
                 total_frames: int | None = None):
        MemoryPolicy(length, compression)  # validates
        if compression == "mean":
            segment(0, total_frames, length)  # fails early without a length
        b, p, c = like.shape
        self.length, self.compression, self.total_frames = length, compression, total_frames
        self.compute = torch.promote_types(like.dtype, torch.float32)  # as compress_memory
        self.count = 0  # slots held
        self.frames = 0  # frames pushed
        self._allocate(b, length + 1 if compression != "concat" else 16, p, c, like.dtype, like.device)

    def _allocate(self, b: int, capacity: int, p: int, c: int, dtype: torch.dtype, device: torch.device) -> None:
        self.storage = torch.empty(b, capacity, p, c, dtype=dtype, device=device)
        self.slot_sizes = torch.zeros(b, capacity, p, dtype=self.compute, device=device)  # per storage slot
        self.order = torch.zeros(b, capacity, p, dtype=torch.long, device=device)  # time index -> storage slot
        self.free = torch.zeros(b, p, dtype=torch.long, device=device)  # where the next push writes
        if self.compression == "mbc":
            self.norms = torch.ones(b, capacity, p, dtype=self.compute, device=device)  # per storage slot
            self.similarity = torch.zeros(b, capacity - 1, p, dtype=self.compute, device=device)  # in time order
        # reused [B*P, C] buffers for gathered and merged rows: a fresh 6 MiB tensor per gather costs
        # more in page faults than the copy (MA-LMM's visual bank: B=4, P=257, C=1408)
        self._scratch = [torch.empty(b * p, c, dtype=dtype, device=device) for _ in range(3)]
        # row index of (item b, storage slot s, position p) in storage viewed as [B*S*P, C] is base + s*P
        self._base = (torch.arange(b, device=device)[:, None] * capacity * p + torch.arange(p, device=device)).flatten()

    # -- reading -------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.count

    @property
    def values(self) -> torch.Tensor:
        """`[B, n, P, C]`: the slots in time order (a gathered copy)."""
        return self.block(0, self.storage.shape[0])[0]

    @property
    def sizes(self) -> torch.Tensor:
        """`[B, n, P]`: how many frames each slot holds, in time order."""
        return self.block(0, self.storage.shape[0])[1]

    def block(self, first: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Items `first .. first + size`: their slots `[size, n, P, C]` and sizes `[size, n, P]`
        in time order (gathered copies)."""
        order = self.order[first : first + size, : self.count]  # [size, n, P]
        values = self.storage[first : first + size].gather(1, order[..., None].expand(-1, -1, -1, self.storage.shape[-1]))
        return values, self.slot_sizes[first : first + size].gather(1, order)

    def flat(self) -> torch.Tensor:
        """`[B, n * P, C]`: the slots in time order as one sequence (a copy; see `push` for a view)."""
        return self.values.flatten(1, 2)

    def to_bank(self) -> Bank:
        """The same memory as a `Bank` (time order)."""
        return Bank(self.values, self.sizes)

    # -- building ------------------------------------------------------------------------------------

    @classmethod
    def from_bank(cls, bank: Bank, length: int, compression: Compression = "mbc",
                  total_frames: int | None = None) -> StreamingBank:
        """A streaming copy of `bank` (at most `length` slots unless "concat")."""
        if len(bank) > length and compression != "concat":
            raise ValueError(f"the bank holds {len(bank)} slots, more than length={length}")
        streaming = cls(bank.values[:, 0], length, compression, total_frames)
        for i in range(len(bank)):
            streaming.push(bank.values[:, i])
        streaming.slot_sizes[:, : len(bank)] = bank.sizes.to(streaming.compute)  # storage in time order so far
        streaming.frames = bank.frames_held()
        return streaming

    def clone(self) -> StreamingBank:
        """An independent copy (states handed to the caller are never changed afterwards)."""
        other = object.__new__(StreamingBank)
        other.__dict__.update({k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in self.__dict__.items()})
        return other

    # -- updating ------------------------------------------------------------------------------------

    def _rows(self, slots: torch.Tensor) -> torch.Tensor:
        """`[B*P]` row indices of storage slots `slots [B, P]` (one per item and position)."""
        return self._base + slots.flatten() * self.storage.shape[2]

    def push(self, x: torch.Tensor) -> torch.Tensor:
        """Add `x [B, P, C]` (detached) as the newest slot, without compressing yet.

        Returns:
            `[B, n * P, C]`, a view of every slot held, the new one included (each position's
            slots in storage order): the keys and values for attention.
        """
        new_rows = x.detach().reshape(-1, x.shape[-1])  # [B*P, C]
        self._stage_rows(new_rows, 0)
        self.commit(new_rows)
        return self.storage[:, : self.count].flatten(1, 2)

    def stage(self, x: torch.Tensor, first: int = 0) -> torch.Tensor:
        """Write `x [b, P, C]` (detached) as the newest slot of items `first .. first + b` only: a
        bank stacking several banks along its items (`LayerBanks`) takes one block at a time,
        and `commit` then counts the new slot of every item at once.

        Returns:
            `[b, (n + 1) * P, C]`, a view of those items' slots, the new one included.
        """
        self._stage_rows(x.detach().reshape(-1, x.shape[-1]), first)
        return self.storage[first : first + x.shape[0], : self.count + 1].flatten(1, 2)

    def _stage_rows(self, new_rows: torch.Tensor, first: int) -> None:
        b, capacity, p, c = self.storage.shape
        if self.count > self.length and self.compression != "concat":
            raise RuntimeError("the bank is over its length: settle() it before the next push")
        if self.count == capacity:  # only "concat" fills its storage: grow it
            self._grow()
        target = self._rows(self.free)[first * p : first * p + new_rows.shape[0]]
        self.storage.view(-1, c).index_copy_(0, target, new_rows)

    def commit(self, new_rows: torch.Tensor | None = None) -> None:
        """Count the slot staged in every item (`new_rows [B*P, C]`: those rows, if at hand):
        its size, its place in time, and for MBC its norm and similarity to the previous slot."""
        b, capacity, p, c = self.storage.shape
        rows = self.storage.view(-1, c)
        target = self._rows(self.free)
        self.slot_sizes.view(-1).index_fill_(0, target, 1)
        self.order[:, self.count] = self.free
        if self.compression == "mbc":
            if new_rows is None:
                new_rows = torch.index_select(rows, 0, target, out=self._scratch[1])
            norm = row_norms(new_rows, self.compute)  # [B*P]
            self.norms.view(-1).index_copy_(0, target, norm)
            if self.count > 0:
                previous = self._rows(self.order[:, self.count - 1])
                dots = row_dots(torch.index_select(rows, 0, previous, out=self._scratch[0]), new_rows, self.compute)
                self.similarity[:, self.count - 1] = (dots / (self.norms.view(-1)[previous] * norm)).view(b, p)
        self.count += 1
        self.frames += 1
        if self.count < capacity:  # still filling: storage slots are in time order, the next is free
            self.free.fill_(self.count)

    def _grow(self) -> None:
        old = {name: getattr(self, name) for name in ("storage", "slot_sizes", "order")}
        b, capacity, p, c = self.storage.shape
        self._allocate(b, 2 * capacity, p, c, self.storage.dtype, self.storage.device)
        for name, tensor in old.items():
            getattr(self, name)[:, :capacity] = tensor
        self.free.fill_(capacity)  # every old slot is in use

    def settle(self) -> None:
        """Shrink back to `length` slots if the last push went past it (never for "concat"); for
        "mean", fold the newest slot into the last one if both hold frames of one segment."""
        if self.compression == "mean":
            last = self.frames - 1
            if last > 0 and segment(last, self.total_frames, self.length) == segment(last - 1, self.total_frames, self.length):
                self._merge(torch.full_like(self.free, self.count - 2))
            return
        if self.compression == "concat" or self.count <= self.length:
            return
        if self.compression == "fifo":
            self.free = self.order[:, 0].clone()
            self.order[:, : self.count - 1] = self.order[:, 1 : self.count].clone()
            self.count -= 1
            return
        self._merge(self.similarity[:, : self.count - 1].argmax(dim=1))  # [B, P]; the first maximum

    def _merge(self, k: torch.Tensor) -> None:
        """Merge the slots at time `k` and `k + 1` (`k [B, P]`) into `k`'s storage; free `k + 1`'s."""
        b, _, p, c = self.storage.shape
        n = self.count
        first = self.order.gather(1, k[:, None]).squeeze(1)  # [B, P] storage slots
        second = self.order.gather(1, k[:, None] + 1).squeeze(1)
        rows, sizes = self.storage.view(-1, c), self.slot_sizes.view(-1)
        at, gone = self._rows(first), self._rows(second)
        size_a, size_z = sizes[at], sizes[gone]
        a, z, merged = self._scratch
        merged = merged_rows(torch.index_select(rows, 0, at, out=a), torch.index_select(rows, 0, gone, out=z),
                             size_a, size_z, self.compute, out=merged)
        rows.index_copy_(0, at, merged)
        sizes.index_copy_(0, at, size_a + size_z)
        time = torch.arange(n - 1, device=k.device)[None, :, None]  # [1, n-1, 1]
        self.order[:, : n - 1] = self.order[:, :n].gather(1, time + (time > k[:, None]))  # drop time k+1
        self.free, self.count = second, n - 1
        if self.compression == "mbc":
            self._update_similarities(k, at, merged)

    def _update_similarities(self, k: torch.Tensor, at: torch.Tensor, merged: torch.Tensor) -> None:
        """After a merge at time `k` (the bank now holds `count` slots): the merged slot's norm,
        the similarity list shifted down past `k`, and the pairs `(k-1, k)` and `(k, k+1)` anew."""
        b, p = k.shape
        n = self.count  # after the merge
        norm = row_norms(merged, self.compute)  # [B*P]
        self.norms.view(-1).index_copy_(0, at, norm)
        if n < 2:
            return
        time = torch.arange(n - 1, device=k.device)[None, :, None]
        shifted = self.similarity[:, :n].gather(1, time + (time > k[:, None]))  # [B, n-1, P]; pair j>k was j+1
        norms = self.norms.view(-1)
        for neighbour, valid, pair in ((k - 1, k > 0, k - 1), (k + 1, k < n - 1, k)):
            index = neighbour.clamp(0, n - 1)
            other = self._rows(self.order.gather(1, index[:, None]).squeeze(1))
            rows = torch.index_select(self.storage.view(-1, merged.shape[1]), 0, other, out=self._scratch[0])
            new = (row_dots(rows, merged, self.compute)
                   / (norms[other] * norm)).view(b, p)
            pair = pair.clamp(0, n - 2)[:, None]
            shifted.scatter_(1, pair, torch.where(valid, new, shifted.gather(1, pair).squeeze(1))[:, None])
        self.similarity[:, : n - 1] = shifted


class BankView:
    """One block of a stacked `StreamingBank`'s items (one Q-Former layer's query bank), read as a
    `Bank` is: `len`, `values`, `sizes`, `flat()`, `to_bank()`."""

    def __init__(self, bank: StreamingBank, first: int, size: int):
        self.bank, self.first, self.size = bank, first, size

    def __len__(self) -> int:
        return len(self.bank)

    @property
    def values(self) -> torch.Tensor:
        return self.bank.block(self.first, self.size)[0]

    @property
    def sizes(self) -> torch.Tensor:
        return self.bank.block(self.first, self.size)[1]

    def flat(self) -> torch.Tensor:
        return self.values.flatten(1, 2)

    def to_bank(self) -> Bank:
        return Bank(*self.bank.block(self.first, self.size))


class LayerBanks(Sequence):
    """Every Q-Former layer's query bank as one `StreamingBank` whose items are layer-major
    (layer i holds items `i * B .. (i + 1) * B`), so that a frame settles all of them at once:
    a dozen small banks cost a dozen times the per-operation overhead, one stacked bank once.
    Every computation is per item and position, so the banks are the same as separate ones.
    Indexing gives each layer's bank (`BankView`)."""

    def __init__(self, bank: StreamingBank, layers: int):
        if bank.storage.shape[0] % layers:
            raise ValueError(f"{bank.storage.shape[0]} items do not split into {layers} layers")
        self.bank, self.layers = bank, layers
        self.batch = bank.storage.shape[0] // layers

    @classmethod
    def empty(cls, like: torch.Tensor, layers: int, length: int, compression: Compression = "mbc",
              total_frames: int | None = None) -> LayerBanks:
        """Banks for `layers` layers whose inputs look like `like [B, P, C]`."""
        stacked = like.new_empty((layers * like.shape[0], *like.shape[1:]))
        return cls(StreamingBank(stacked, length, compression, total_frames), layers)

    @classmethod
    def from_banks(cls, banks: Sequence[Bank], length: int, compression: Compression = "mbc",
                   total_frames: int | None = None) -> LayerBanks:
        """Stacked streaming copies of per-layer banks (all of one length)."""
        stacked = Bank(torch.cat([b.values for b in banks]), torch.cat([b.sizes for b in banks]))
        return cls(StreamingBank.from_bank(stacked, length, compression, total_frames), len(banks))

    def __len__(self) -> int:
        return self.layers

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.layers))]
        if not -self.layers <= i < self.layers:
            raise IndexError(i)
        return BankView(self.bank, (i % self.layers) * self.batch, self.batch)

    def clone(self) -> LayerBanks:
        return LayerBanks(self.bank.clone(), self.layers)
