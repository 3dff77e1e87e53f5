"""MPEG-4 Part 2 header parsing and display order, checked against FFmpeg's encoder and decoder."""

from __future__ import annotations

import math
from fractions import Fraction

import av
import pytest
from av.bitstream import BitStreamFilterContext

from mixma.video import _mpeg4
from tests.conftest import indexed_frame
from tests.video import footage


def encode(rate: Fraction, count: int, bframes: int, gop: int = 12, closed_gop: bool = False) -> list[av.Packet]:
    """MPEG-4 Part 2 packets from FFmpeg's encoder, in decoding order (pts = frame number)."""
    encoder = av.CodecContext.create("mpeg4", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 64, 48, "yuv420p"
    encoder.time_base, encoder.framerate = 1 / rate, rate
    encoder.max_b_frames, encoder.gop_size = bframes, gop
    encoder.options = {"qscale": "4", "threads": "1"}
    if closed_gop:
        encoder.options = {**encoder.options, "flags": "+cgop", "sc_threshold": "1000000000"}
    packets = []
    for i in range(count):
        frame = av.VideoFrame.from_ndarray(indexed_frame(i, 48, 64), format="rgb24")
        frame.pts = i
        packets += encoder.encode(frame)
    return packets + encoder.encode(None)


@pytest.mark.parametrize("rate", [Fraction(1), Fraction(16), Fraction(25), Fraction(2997, 125), Fraction(30000, 1001)])
def test_time_increment_bits_from_the_vol_header(rate):
    """ISO 14496-2: vop_time_increment has ceil(log2(vop_time_increment_resolution)) bits, at least 1;
    FFmpeg's encoder uses the time base's denominator as the resolution."""
    first = bytes(encode(rate, 1, 0)[0])
    resolution = (1 / rate).denominator
    assert _mpeg4.time_increment_bits(first) == max(1, math.ceil(math.log2(resolution)))
    assert _mpeg4.time_increment_bits(first[first.find(_mpeg4.VOP_START) :]) is None  # no VOL in a bare VOP


@pytest.mark.parametrize("bframes", [0, 1, 2, 3])
def test_vop_types_agree_with_the_encoder(bframes):
    """I-VOPs are the encoder's keyframes, and B-VOPs are exactly the reordered pictures (shown
    before a picture decoded earlier)."""
    packets = encode(Fraction(25), 30, bframes)
    bits = _mpeg4.time_increment_bits(bytes(packets[0]))
    types = [_mpeg4.vop_type(bytes(p), bits) for p in packets]
    assert [t == "I" for t in types] == [p.is_keyframe for p in packets]
    latest = -1
    for packet, kind in zip(packets, types):
        assert (kind == "B") == (packet.pts < latest), f"packet pts {packet.pts}: {kind}"
        latest = max(latest, packet.pts)
    assert _mpeg4.vop_type(footage._nvop(bits), bits) == "N"
    assert _mpeg4.vop_type(b"\x00\x00\x01\xb0\xf5", bits) is None
    with pytest.raises(ValueError):
        _mpeg4.vop_type(bytes(packets[1]), bits + 3)  # the wrong field width misses the marker bit


def decoder_order(packets: list[av.Packet | bytes], unpack: bool = False) -> list[int]:
    """Positions of `packets` in the order FFmpeg's decoder shows their pictures."""
    decoder = av.CodecContext.create("mpeg4", "r")
    decoder.copy_opaque = True
    shown = []
    for position, packet in enumerate(packets):
        packet = av.Packet(bytes(packet))
        packet.opaque = (position,)
        shown += [f.opaque[0] for f in decoder.decode(packet)]
    return shown + [f.opaque[0] for f in decoder.decode(None)]


def types_of(packets) -> list[str | None]:
    bits = _mpeg4.time_increment_bits(bytes(packets[0]))
    return [_mpeg4.vop_type(bytes(p), bits) for p in packets]


@pytest.mark.parametrize(("bframes", "closed_gop"), [(0, False), (1, False), (2, False), (3, True), (2, True)])
def test_display_order_is_the_decoders(bframes, closed_gop):
    packets = encode(Fraction(25), 40, bframes, closed_gop=closed_gop)
    assert _mpeg4.display_order(types_of(packets)) == decoder_order(packets)


def test_display_order_of_packed_bframes(footage_path):
    """A DivX-packed AVI, unpacked by FFmpeg's filter: the order FFmpeg's decoder shows."""
    with av.open(str(footage_path("mpeg4_packed.avi"))) as container:
        chunks = [p for p in container.demux(video=0) if p.size]
        vops = [bytes(p).count(_mpeg4.VOP_START) for p in chunks]
        bsf = BitStreamFilterContext("mpeg4_unpack_bframes", container.streams.video[0])
        unpacked = [q for p in chunks for q in bsf.filter(p)] + bsf.filter(None)
    assert max(vops) == 2 and len(chunks) == footage.NUM_FRAMES  # packed: one chunk per frame slot
    assert all(bytes(p).count(_mpeg4.VOP_START) == 1 for p in unpacked)
    types = types_of(unpacked)
    assert "N" not in types
    order = _mpeg4.display_order(types)
    assert order == decoder_order(unpacked)
    assert len(order) == footage.NUM_FRAMES


def test_display_order_where_ffmpeg_shows_nothing():
    """Streams that start inside an open GOP (B-VOPs without two references) and not-coded VOPs
    (dropped-frame placeholders): the order FFmpeg's decoder shows."""
    packets = [bytes(p) for p in encode(Fraction(25), 40, 2, gop=12)]
    bits = _mpeg4.time_increment_bits(packets[0])
    header = packets[0][: packets[0].find(_mpeg4.VOP_START)]  # VOS/VOL headers, for a stream cut later
    keys = [i for i, t in enumerate(types_of(packets)) if t == "I"]
    open_gop = [header + packets[keys[1]], *packets[keys[1] + 1 :]]
    low_delay = [bytes(p) for p in encode(Fraction(25), 20, 0)]  # dropped frames: N-VOPs in place of P-VOPs
    with_nvops = [*low_delay[:5], footage._nvop(bits, like=low_delay[5]), *low_delay[6:9], footage._nvop(bits, like=low_delay[9])]
    for stream in (open_gop, with_nvops):
        types = types_of(stream)
        assert _mpeg4.display_order(types) == decoder_order(stream), "".join(t or "-" for t in types)
    assert types_of(open_gop)[1] == "B" and types_of(with_nvops).count("N") == 2


def test_pictures_before_the_first_i_vop_are_not_counted():
    """FFmpeg decodes a stream that starts with a P-VOP against a grey picture, which it even shows
    (twice labelled as the first packet); such a cut stream is counted from its first I-VOP."""
    packets = [bytes(p) for p in encode(Fraction(25), 40, 2, gop=12)]
    header = packets[0][: packets[0].find(_mpeg4.VOP_START)]
    from_p = [header + packets[1], *packets[2:]]
    first_i = types_of(from_p).index("I")
    from_i = [header + from_p[first_i], *from_p[first_i + 1 :]]
    assert decoder_order(from_p)[:4] == [0, 1, 2, 0]  # the grey picture, two B-VOPs, the P-VOP
    expected = [first_i + p for p in decoder_order(from_i)]
    assert _mpeg4.display_order(types_of(from_p)) == expected
