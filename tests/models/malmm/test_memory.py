"""`compress_memory` (MBC) against a slow loop that states the algorithm literally."""

from __future__ import annotations

import math

import pytest
import torch

from mixma.models.malmm import Bank, compress_memory


def compress_reference(bank: torch.Tensor, sizes: torch.Tensor):
    """Per item, per token position: merge the most similar adjacent pair (lowest k on ties)."""
    b, n, p, c = bank.shape
    out = torch.empty(b, n - 1, p, c, dtype=bank.dtype)
    out_sizes = torch.empty(b, n - 1, p, dtype=sizes.dtype)
    for i in range(b):
        for pos in range(p):
            vectors, counts = list(bank[i, :, pos]), list(sizes[i, :, pos])
            sims = [torch.nn.functional.cosine_similarity(vectors[k], vectors[k + 1], dim=0) for k in range(n - 1)]
            best = 0
            for k in range(1, n - 1):
                if sims[k] > sims[best]:
                    best = k
            merged = (vectors[best] * counts[best] + vectors[best + 1] * counts[best + 1]) / (counts[best] + counts[best + 1])
            vectors[best : best + 2] = [merged]
            counts[best : best + 2] = [counts[best] + counts[best + 1]]
            out[i, :, pos] = torch.stack(vectors)
            out_sizes[i, :, pos] = torch.stack(counts)
    return out, out_sizes


@pytest.mark.parametrize("layout", ["contiguous", "strided"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", [(1, 2, 1, 3), (2, 5, 7, 16), (3, 11, 4, 8)])
def test_matches_reference_on_random_banks_with_uneven_sizes(shape, dtype, layout):
    g = torch.Generator().manual_seed(sum(shape))
    bank = torch.randn(*shape, generator=g, dtype=dtype)
    if layout == "strided":  # the same values in another memory order: the CPU path reads raw strides
        bank = bank.permute(2, 0, 3, 1).contiguous().permute(1, 3, 0, 2)
    sizes = torch.randint(1, 6, shape[:3], generator=g).to(dtype)
    got, got_sizes = compress_memory(bank, sizes)
    want, want_sizes = compress_reference(bank, sizes)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got_sizes, want_sizes)


@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_writes_into_preallocated_buffers(layout):
    g = torch.Generator().manual_seed(3)
    bank = torch.randn(2, 6, 5, 8, generator=g, dtype=torch.float64)
    if layout == "strided":  # a view with the same values: the row gather must still see them right
        bank = bank.transpose(0, 1).contiguous().transpose(0, 1)
    sizes = torch.randint(1, 6, (2, 6, 5), generator=g).to(torch.float64)
    out = (torch.full((2, 5, 5, 8), float("nan"), dtype=torch.float64), torch.full((2, 5, 5), -1.0, dtype=torch.float64))
    got = compress_memory(bank, sizes, out=out)
    assert got[0] is out[0] and got[1] is out[1]
    want, want_sizes = compress_reference(bank, sizes)
    torch.testing.assert_close(out[0], want)
    torch.testing.assert_close(out[1], want_sizes)


def test_bad_out_buffers():
    bank, sizes = torch.randn(1, 3, 2, 4), torch.ones(1, 3, 2)
    with pytest.raises(ValueError, match=r"out values must be \[1, 2, 2, 4\] torch.float32"):
        compress_memory(bank, sizes, out=(torch.empty(1, 3, 2, 4), torch.empty(1, 2, 2)))
    with pytest.raises(ValueError, match="out sizes must be"):
        compress_memory(bank, sizes, out=(torch.empty(1, 2, 2, 4), torch.empty(1, 2, 2, dtype=torch.float64)))
    with pytest.raises(ValueError, match="contiguous"):
        compress_memory(bank, sizes, out=(torch.empty(1, 2, 4, 2).transpose(2, 3), torch.empty(1, 2, 2)))
    with pytest.raises(TypeError, match="pair"):
        compress_memory(bank, sizes, out=torch.empty(1, 2, 2, 4))
    with pytest.raises(RuntimeError, match="autograd"):
        compress_memory(bank.requires_grad_(), sizes, out=(torch.empty(1, 2, 2, 4), torch.empty(1, 2, 2)))


def test_ties_go_to_the_lowest_pair():
    slot = torch.tensor([1.0, 2.0, 3.0])
    bank = torch.stack([slot, slot, slot, -slot])[None, :, None, :]  # pairs (0,1) and (1,2) tie
    sizes = torch.tensor([[[1.0], [2.0], [3.0], [1.0]]])
    got, got_sizes = compress_memory(bank, sizes)
    want, want_sizes = compress_reference(bank, sizes)
    torch.testing.assert_close(got, want)
    assert got_sizes[0, :, 0].tolist() == [3.0, 3.0, 1.0]  # slots 0 and 1 merged


def test_each_token_position_chooses_its_own_pair():
    bank = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.1], [1.0, 0.0]], [[0.0, 1.0], [1.0, 0.1]]]])  # [1, 3, 2, 2]
    got, got_sizes = compress_memory(bank, torch.ones(1, 3, 2))
    assert got_sizes[0, :, 0].tolist() == [2.0, 1.0]  # position 0 merges slots 0 and 1
    assert got_sizes[0, :, 1].tolist() == [1.0, 2.0]  # position 1 merges slots 1 and 2


def test_slots_stay_exact_means_of_their_frames():
    """Size weighting: compressing repeatedly still gives each slot the mean of its frames."""
    frames = torch.randn(1, 9, 3, 4, dtype=torch.float64)
    bank = Bank.of(frames[:, 0])
    members = [[0]]
    for t in range(1, 9):
        before = bank
        bank = bank.append(frames[:, t], max_length=4)
        assert len(bank) == min(t + 1, 4)
    # every slot, at every position, is the mean of a contiguous run of frames of its size
    for pos in range(3):
        start = 0
        for slot in range(4):
            size = int(bank.sizes[0, slot, pos])
            torch.testing.assert_close(bank.values[0, slot, pos], frames[0, start : start + size, pos].mean(0))
            start += size
        assert start == 9


def test_bad_shapes():
    with pytest.raises(ValueError, match="expected bank"):
        compress_memory(torch.zeros(2, 3, 4), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="at least two slots"):
        compress_memory(torch.zeros(1, 1, 2, 3), torch.ones(1, 1, 2))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_counts_stay_exact_and_merges_do_not_overflow(dtype):
    bank = Bank.of(torch.full((1, 2, 4), 100.0, dtype=dtype))
    for _ in range(2999):
        bank = bank.append(torch.full((1, 2, 4), 100.0, dtype=dtype), max_length=2)
    assert bank.sizes.dtype == torch.float32 and bank.sizes.sum().item() == 2 * 3000
    assert torch.isfinite(bank.values).all() and torch.allclose(bank.values.float(), torch.tensor(100.0))


def test_compression_is_differentiable():
    bank = torch.randn(2, 4, 3, 5, dtype=torch.float64, requires_grad=True)
    sizes = torch.randint(1, 4, (2, 4, 3)).double()
    assert torch.autograd.gradcheck(lambda x: compress_memory(x, sizes)[0], (bank,))


# -- the other ways a bank shrinks (MA-LMM Table 8) --------------------------------------------------


def stream(frames: torch.Tensor, length: int, compression: str) -> Bank:
    bank = Bank.of(frames[:, 0])
    for t in range(1, frames.shape[1]):
        bank = bank.append(frames[:, t], length, compression=compression)
    return bank


def test_fifo_keeps_exactly_the_newest_slots():
    frames = torch.randn(2, 9, 3, 4)
    for length in (1, 3):
        bank = stream(frames, length, "fifo")
        assert torch.equal(bank.values, frames[:, -length:]) and torch.equal(bank.sizes, torch.ones(2, length, 3))


def test_concat_keeps_every_frame():
    frames = torch.randn(1, 7, 2, 3)
    bank = stream(frames, 2, "concat")
    assert torch.equal(bank.values, frames) and len(bank) == 7


@pytest.mark.parametrize("length, total", [(1, 9), (3, 9), (4, 10), (5, 3), (4, 23)])
def test_mean_pooling_averages_equal_segments(length, total):
    """Temporal average pooling, stated directly: frame f of T belongs to segment floor(f M / T),
    i.e. segment j holds frames [ceil(j T / M), ceil((j+1) T / M)); after t frames slot j is the
    mean of segment j's frames among them, whatever the content."""
    frames = torch.randn(2, total, 3, 4, dtype=torch.float64)
    bounds = [math.ceil(j * total / length) for j in range(length + 1)]
    bank = Bank.of(frames[:, 0])
    for t in range(1, total):
        bank = bank.append(frames[:, t], length, compression="mean", total_frames=total)
        seen = t + 1
        runs = [(lo, min(hi, seen)) for lo, hi in zip(bounds, bounds[1:]) if hi > lo and lo < seen]
        assert len(bank) == len(runs) <= length
        for slot, (lo, hi) in enumerate(runs):
            torch.testing.assert_close(bank.values[:, slot], frames[:, lo:hi].mean(1))
            assert torch.all(bank.sizes[:, slot] == hi - lo)
    with pytest.raises(ValueError, match="needs its length"):
        bank.append(frames[:, 0], length, compression="mean")


def test_policy_and_dispatch_validate():
    from mixma.models.malmm.memory import MemoryPolicy, compress

    with pytest.raises(ValueError, match="at least one slot"):
        MemoryPolicy(0)
    with pytest.raises(ValueError, match="compression must be one of"):
        MemoryPolicy(2, "tome")
    with pytest.raises(ValueError, match="does not shrink a full bank"):
        compress(torch.zeros(1, 2, 1, 2), torch.ones(1, 2, 1), "concat")
