"""MPEG-4 Part 2 (DivX, Xvid) headers: just enough to know which packets are which pictures.

AVI stores no presentation timestamps, only one chunk per frame slot in decoding order. For
MPEG-4 Part 2 with B-frames FFmpeg guesses the presentation order, and its guess is wrong for
DivX-style *packed* bitstreams (two pictures in one chunk, then an empty "N-VOP" placeholder).
Once the packets are unpacked (FFmpeg's `mpeg4_unpack_bframes` filter), the order in which the
decoder shows pictures follows from their coding types alone: a B-VOP is shown as soon as it is
decoded, an I/P/S-VOP (an anchor) is held back until the next anchor arrives. A VOP that is "not
coded" (`vop_coded == 0`, a dropped-frame placeholder) is not shown at all.

Reference: ISO/IEC 14496-2, 6.2.3 (video_object_layer) and 6.2.5 (video_object_plane).
"""

from __future__ import annotations

from collections.abc import Sequence

VOP_START = b"\x00\x00\x01\xb6"
_CODING_TYPES = "IPBS"
_EXTENDED_PAR = 15
_GRAYSCALE = 3


class _Bits:
    """MSB-first reader over the `size` bytes from `start`; raises EOFError past them."""

    def __init__(self, data: bytes, start: int, size: int):
        chunk = data[start : start + size]
        self.value, self.size, self.pos = int.from_bytes(chunk, "big"), len(chunk) * 8, 0

    def read(self, n: int) -> int:
        if self.pos + n > self.size:
            raise EOFError
        self.pos += n
        return (self.value >> (self.size - self.pos)) & ((1 << n) - 1)


def time_increment_bits(data: bytes) -> int | None:
    """Bits of `vop_time_increment`, from the first video object layer header in `data`.

    Returns:
        The bit count, or None when `data` holds no (readable) VOL header.
    """
    start = 0
    while True:
        start = data.find(b"\x00\x00\x01", start)
        if start < 0 or start + 4 >= len(data):
            return None
        if data[start + 3] >> 4 == 2:
            break
        start += 3
    bits = _Bits(data, start + 4, 32)
    try:
        bits.read(1 + 8)  # random_accessible_vol, video_object_type_indication
        verid = 1
        if bits.read(1):  # is_object_layer_identifier
            verid = bits.read(4)
            bits.read(3)
        if bits.read(4) == _EXTENDED_PAR:
            bits.read(16)
        if bits.read(1):  # vol_control_parameters
            bits.read(3)  # chroma_format, low_delay
            if bits.read(1):  # vbv_parameters: 79 bits of rates, sizes and markers
                bits.read(79)
        shape = bits.read(2)
        if shape == _GRAYSCALE and verid != 1:
            bits.read(4)
        if not bits.read(1):
            return None  # marker bit missing: not a VOL header we understand
        resolution = bits.read(16)
    except EOFError:
        return None
    if resolution == 0:
        return None
    return max(1, (resolution - 1).bit_length())  # FFmpeg: av_log2(resolution - 1) + 1


def vop_type(data: bytes, increment_bits: int) -> str | None:
    """The picture in a packet: "I", "P", "B", "S", "N" (not coded) or None (no VOP found).

    Raises:
        ValueError: the VOP header does not parse with `increment_bits` (wrong or missing VOL).
    """
    start = data.find(VOP_START)
    if start < 0:
        return None
    bits = _Bits(data, start + 4, 16)  # a VOP header needs at most ~40 bits
    try:
        coding = _CODING_TYPES[bits.read(2)]
        while bits.read(1):  # modulo_time_base: whole seconds, one 1-bit each
            pass
        if not bits.read(1):
            raise ValueError("marker bit before vop_time_increment missing")
        bits.read(increment_bits)
        if not bits.read(1):
            raise ValueError("marker bit after vop_time_increment missing")
        coded = bits.read(1)
    except EOFError:
        raise ValueError("VOP header cut short") from None
    return coding if coded else "N"


def display_order(types: Sequence[str | None]) -> list[int]:
    """Packet positions in the order FFmpeg's decoder shows their pictures.

    Args:
        types: per packet in decoding order, what `vop_type` returned.

    Returns:
        The positions of the packets that produce a picture, in display order. B-VOPs before
        the decoder holds two references (the start of an open GOP) are not shown: FFmpeg skips
        them. Pictures before the first I-VOP (a stream cut mid-GOP) are not counted: FFmpeg
        decodes them against a grey picture, which it shows too. A stream without B-VOPs that
        ends with N-VOPs shows its last picture once more (FFmpeg keeps the frame count), labelled
        with the last packet.
    """
    order: list[int] = []
    held = None  # the last anchor, shown when the next one arrives
    has_backward_ref = False  # FFmpeg's `last_pic`: the anchor before `held`
    started = False  # an I-VOP was seen
    for position, kind in enumerate(types):
        started = started or kind == "I"
        if not started or kind is None or kind == "N":
            continue
        if kind == "B":
            if has_backward_ref:
                order.append(position)
            continue
        has_backward_ref = held is not None
        if held is not None:
            order.append(held)
        held = position
    if held is not None:
        order.append(held)
    shown = [p for p, kind in enumerate(types) if kind is not None]
    if started and shown and types[shown[-1]] == "N" and "B" not in types:
        order.append(shown[-1])  # FFmpeg's `skipped_last_frame`: low-delay streams only
    return order
