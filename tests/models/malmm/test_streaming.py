"""`StreamingBank` (in place) against `Bank.append` (fresh values), the loop reference, and itself."""

from __future__ import annotations

import pytest
import torch

from mixma.models.malmm import Bank
from mixma.models.malmm.streaming import StreamingBank
from tests.models.malmm.test_memory import compress_reference


def video_like(b: int, t: int, p: int, c: int, dtype, seed: int = 0) -> torch.Tensor:
    """`[T, B, P, C]` frames that drift (adjacent similarities vary), with exact ties: position 0
    never changes and position 1 repeats every other frame."""
    g = torch.Generator().manual_seed(seed)
    frames = torch.cumsum(torch.randn(t, b, p, c, generator=g, dtype=dtype) * 0.5, 0) + torch.randn(1, b, p, c, generator=g, dtype=dtype)
    frames[:, :, 0] = frames[0, :, 0]
    frames[1::2, :, 1] = frames[0::2, :, 1][: frames[1::2].shape[0]]
    return frames


def stream_both(frames: torch.Tensor, length: int, compression: str):
    """Yield (functional bank, streaming bank) after every frame."""
    total = frames.shape[0]
    bank, streaming = None, StreamingBank(frames[0], length, compression, total)
    for x in frames:
        bank = Bank.of(x) if bank is None else bank.append(x, length, compression=compression, total_frames=total)
        streaming.push(x)
        streaming.settle()
        yield bank, streaming


@pytest.mark.parametrize("compression", ["mbc", "fifo", "mean", "concat"])
@pytest.mark.parametrize("length", [1, 2, 5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_equals_the_functional_bank_bit_for_bit_over_a_long_stream(compression, length, dtype):
    frames = video_like(2, 60, 6, 16, dtype, seed=length)
    for t, (bank, streaming) in enumerate(stream_both(frames, length, compression)):
        assert len(streaming) == len(bank), t
        assert torch.equal(streaming.values, bank.values), t
        assert torch.equal(streaming.sizes, bank.sizes.to(streaming.sizes.dtype)), t
    assert int(streaming.sizes.sum(1).min()) == (60 if compression != "fifo" else length)


def test_equals_the_loop_reference():
    """Against the literal statement of MBC, compression after compression."""
    frames = video_like(2, 14, 5, 8, torch.float64, seed=3)
    streaming = StreamingBank(frames[0], 3)
    values, sizes = frames[:1].transpose(0, 1), torch.ones(2, 1, 5, dtype=torch.float64)  # [B, 1, P, C]
    for x in frames:
        if streaming.frames:
            values, sizes = torch.cat([values, x[:, None]], 1), torch.cat([sizes, torch.ones(2, 1, 5, dtype=torch.float64)], 1)
            if values.shape[1] > 3:
                values, sizes = compress_reference(values, sizes)
        streaming.push(x)
        streaming.settle()
        torch.testing.assert_close(streaming.values, values, rtol=1e-12, atol=1e-12)
        assert torch.equal(streaming.sizes, sizes)


def test_push_returns_a_view_of_exactly_the_memory_and_the_new_slot():
    frames = video_like(2, 12, 4, 8, torch.float32, seed=5)
    streaming = StreamingBank(frames[0], 4)
    for x in frames:
        before = streaming.values  # [B, n, P, C], time order
        keys = streaming.push(x)
        assert keys.untyped_storage().data_ptr() == streaming.storage.untyped_storage().data_ptr()  # no copy
        want = torch.cat([before, x[:, None]], 1)
        got = keys.view(2, -1, 4, 8)
        # per position the same set of slots, in any order: compare sorted by the first channel
        order = lambda v: v.gather(1, v[..., :1].argsort(1).expand_as(v))  # noqa: E731
        assert torch.equal(order(got), order(want))
        streaming.settle()


def test_copies_and_conversions_are_independent_and_exact():
    frames = video_like(1, 20, 3, 8, torch.float64, seed=7)
    streaming = StreamingBank(frames[0], 4)
    for x in frames[:10]:
        streaming.push(x)
        streaming.settle()
    copy, snapshot = streaming.clone(), streaming.values.clone()
    copy.push(frames[10])
    copy.settle()
    assert torch.equal(streaming.values, snapshot)  # the original did not move
    again = StreamingBank.from_bank(streaming.to_bank(), 4)  # a functional bank back to streaming
    for x in frames[10:]:
        for bank in (streaming, again):
            bank.push(x)
            bank.settle()
    assert torch.equal(again.values, streaming.values) and torch.equal(again.sizes, streaming.sizes)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_agrees_up_to_rounding_with_exact_counts(dtype):
    frames = video_like(1, 30, 4, 8, torch.float32, seed=9).to(dtype)
    for bank, streaming in stream_both(frames, 3, "mbc"):
        pass
    assert streaming.sizes.dtype == torch.float32 and torch.all(streaming.sizes.sum(1) == 30)
    assert streaming.storage.dtype == dtype
    torch.testing.assert_close(streaming.sizes, bank.sizes)  # near-ties may differ: fine in 30 frames here
    torch.testing.assert_close(streaming.values, bank.values)


def test_misuse_is_refused():
    x = torch.randn(1, 2, 3)
    streaming = StreamingBank(x, 1)
    streaming.push(x)
    streaming.push(x)  # two slots, over length 1: allowed once, then it must settle
    with pytest.raises(RuntimeError, match="settle"):
        streaming.push(x)
    with pytest.raises(ValueError, match="needs its length"):
        StreamingBank(x, 2, "mean")
    with pytest.raises(ValueError, match="more than length"):
        StreamingBank.from_bank(Bank(torch.zeros(1, 3, 2, 3), torch.ones(1, 3, 2)), 2)


@pytest.mark.parametrize("compression", ["mbc", "fifo", "mean", "concat"])
def test_stacked_layer_banks_equal_separate_banks(compression):
    """`LayerBanks`: each layer's block staged in turn, one commit and settle per frame, gives
    each layer exactly the bank it would have alone."""
    from mixma.models.malmm.streaming import LayerBanks

    layers, total = 3, 25
    frames = [video_like(2, total, 5, 16, torch.float32, seed=10 + i) for i in range(layers)]  # per layer [T, B, P, C]
    stacked = LayerBanks.empty(frames[0][0], layers, 4, compression, total)
    alone = [StreamingBank(frames[i][0], 4, compression, total) for i in range(layers)]
    for t in range(total):
        for i in range(layers):
            keys = stacked.bank.stage(frames[i][t], i * 2)
            assert torch.equal(keys, alone[i].push(frames[i][t]))  # what attention reads, layer by layer
        stacked.bank.commit()
        stacked.bank.settle()
        for bank in alone:
            bank.settle()
        for i in range(layers):
            assert torch.equal(stacked[i].values, alone[i].values) and torch.equal(stacked[i].sizes, alone[i].sizes), (t, i)
    assert len(stacked) == layers and len(stacked[-1]) == len(alone[-1])
    copy = LayerBanks.from_banks([bank.to_bank() for bank in stacked], 4, compression, total)
    assert all(torch.equal(a.values, b.values) for a, b in zip(copy, stacked))
    with pytest.raises(IndexError):
        stacked[layers]
