"""smux frame codec: wire vectors, framing rules and every error, against both twins.

Each test runs on the pure twin and on the compiled one (skipped when it is not built, or when
GOSTFAST_NO_EXTENSIONS=1 asks for the pure twins only).
"""

from __future__ import annotations

import array

import pytest

import gostfast._core as core
from gostfast._core import smux_common
from gostfast._core.smux_common import SmuxProtocolError

#: the codec of the conftest ``impl`` fixture (each twin in turn)
CODEC = "smux"


@pytest.fixture
def smux(impl):
    return impl


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def norm(frames):
    """Frames with payloads as plain bytes (PSH payloads may be views or bytearrays)."""
    return [(c, s, p if isinstance(p, tuple) else bytes(p)) for c, s, p in frames]


def feed_bytewise(parser, data: bytes):
    out = []
    for i in range(len(data)):
        out += parser.feed(data[i : i + 1])
    return out


PSH_HELLO = h("01 02 05 00 03 00 00 00 68 65 6c 6c 6f")
SYN_3 = h("01 00 00 00 03 00 00 00")
FIN_3 = h("01 01 00 00 03 00 00 00")
NOP = h("01 03 00 00 00 00 00 00")
# v2 window update for stream 3: consumed 65536, window 65536 (smux's default MaxStreamBuffer)
UPD_V2 = h("02 04 08 00 03 00 00 00 00 00 01 00 00 00 01 00")


# --- shared names -------------------------------------------------------------------------


def test_common_names_reexported(smux):
    assert smux.HEADER_SIZE == 8
    assert (smux.CMD_SYN, smux.CMD_FIN, smux.CMD_PSH, smux.CMD_NOP, smux.CMD_UPD) == (0, 1, 2, 3, 4)
    assert smux.UPD_SIZE == 8
    assert smux.MAX_FRAME_SIZE_LIMIT == 65535
    assert smux.SmuxProtocolError is smux_common.SmuxProtocolError


def test_select_honours_no_extensions():
    chosen = core.select("smux")
    if core.FORCE_PURE or core.compiled_module("smux") is None:
        assert chosen is core.pure("smux")
    else:
        assert chosen is core.compiled_module("smux")


# --- encoding: the spec's vectors ------------------------------------------------------------


def test_encode_vectors(smux):
    assert bytes(smux.encode_data(1, 3, b"hello", 32768)) == PSH_HELLO
    assert smux.encode_syn(1, 3) == SYN_3
    assert smux.encode_fin(1, 3) == FIN_3
    assert smux.encode_nop(1) == NOP
    assert smux.encode_upd(2, 3, 65536, 65536) == UPD_V2
    assert smux.encode_header(1, smux.CMD_PSH, 5, 3) == PSH_HELLO[:8]
    assert smux.encode_header(2, 255, 65535, 0xFFFFFFFF) == h("02 ff ff ff ff ff ff ff")
    assert isinstance(smux.encode_syn(1, 3), bytes)
    assert isinstance(smux.encode_upd(2, 3, 0, 0), bytes)


def test_encode_data_splits_100k_into_32k_frames(smux):
    data = bytes(range(256)) * 400  # 102400 bytes
    out = smux.encode_data(1, 5, data, 32768)
    assert isinstance(out, bytearray)
    sizes = [32768, 32768, 32768, 102400 - 3 * 32768]
    assert sizes[-1] == 4096
    assert len(out) == len(data) + 8 * len(sizes)
    at = 0
    start = 0
    for size in sizes:
        assert out[at : at + 8] == smux.encode_header(1, smux.CMD_PSH, size, 5)
        assert out[at + 8 : at + 8 + size] == data[start : start + size]
        at += 8 + size
        start += size
    assert at == len(out)


def test_encode_data_edge_sizes(smux):
    assert smux.encode_data(1, 3, b"", 32768) == bytearray()
    assert isinstance(smux.encode_data(1, 3, b"", 32768), bytearray)
    exact = smux.encode_data(2, 7, b"x" * 65535, 65535)
    assert exact[:8] == h("02 02 ff ff 07 00 00 00") and len(exact) == 65543
    ones = smux.encode_data(1, 3, b"abc", 1)
    assert bytes(ones) == b"".join(smux.encode_header(1, 2, 1, 3) + bytes([c]) for c in b"abc")


def test_encode_data_accepts_any_contiguous_buffer(smux):
    words = array.array("I", [1, 2, 3])
    expected = smux.encode_data(1, 3, words.tobytes(), 5)
    assert smux.encode_data(1, 3, words, 5) == expected
    assert smux.encode_data(1, 3, memoryview(bytearray(words.tobytes())), 5) == expected
    with pytest.raises(TypeError, match="contiguous"):
        smux.encode_data(1, 3, memoryview(b"abcdef")[::2], 5)
    with pytest.raises(TypeError):
        smux.encode_data(1, 3, "text", 5)


def test_encode_upd_wraps_consumed(smux):
    assert smux.encode_upd(2, 3, 2**32 + 5, 0)[8:12] == h("05 00 00 00")
    assert smux.encode_upd(2, 3, 2**70 + 6, 0)[8:12] == h("06 00 00 00")
    assert smux.encode_upd(2, 3, -1, 0)[8:12] == h("ff ff ff ff")
    assert smux.encode_upd(2, 3, 0, 0xFFFFFFFF)[12:] == h("ff ff ff ff")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.encode_header(256, 0, 0, 0), "smux: version 256 out of range [0, 255]"),
        (lambda m: m.encode_header(1, -1, 0, 0), "smux: cmd -1 out of range [0, 255]"),
        (lambda m: m.encode_header(1, 2, 65536, 0), "smux: length 65536 out of range [0, 65535]"),
        (lambda m: m.encode_syn(1, 2**32), "smux: sid 4294967296 out of range [0, 4294967295]"),
        (lambda m: m.encode_fin(1, 2**80), f"smux: sid {2**80} out of range [0, 4294967295]"),
        (
            lambda m: m.encode_data(1, 3, b"x", 0),
            "smux: max_frame_size 0 out of range [1, 65535]",
        ),
        (
            lambda m: m.encode_data(1, 3, b"x", 65536),
            "smux: max_frame_size 65536 out of range [1, 65535]",
        ),
        (
            lambda m: m.encode_upd(2, 3, 0, 2**32),
            "smux: window 4294967296 out of range [0, 4294967295]",
        ),
        (lambda m: m.FrameParser(3), "smux: session version must be 1 or 2, not 3"),
        (lambda m: m.FrameParser(0), "smux: session version must be 1 or 2, not 0"),
    ],
)
def test_encoder_argument_errors(smux, call, message):
    with pytest.raises(ValueError) as info:
        call(smux)
    assert str(info.value) == message


def test_encoder_rejects_non_integers(smux):
    with pytest.raises(TypeError):
        smux.encode_header(1.0, 0, 0, 0)
    with pytest.raises(TypeError):
        smux.encode_upd(2, 3, 1.5, 0)
    with pytest.raises(TypeError):
        smux.FrameParser(1.0)


# --- parsing ---------------------------------------------------------------------------------


def test_parse_vectors(smux):
    p = smux.FrameParser(1)
    assert p.version == 1 and p.strict is True and p.error is None
    frames = p.feed(SYN_3 + PSH_HELLO + NOP + FIN_3)
    assert norm(frames) == [(0, 3, b""), (2, 3, b"hello"), (3, 0, b""), (1, 3, b"")]
    p2 = smux.FrameParser(2)
    assert p2.feed(UPD_V2) == [(4, 3, (65536, 65536))]


def test_parse_byte_at_a_time(smux):
    stream = SYN_3 + PSH_HELLO + NOP + FIN_3
    assert norm(feed_bytewise(smux.FrameParser(1), stream)) == [
        (0, 3, b""),
        (2, 3, b"hello"),
        (3, 0, b""),
        (1, 3, b""),
    ]
    upd_stream = h("02 00 00 00 03 00 00 00") + UPD_V2 + smux.encode_upd(2, 3, 2**32 - 1, 7)
    assert feed_bytewise(smux.FrameParser(2), upd_stream) == [
        (0, 3, b""),
        (4, 3, (65536, 65536)),
        (4, 3, (2**32 - 1, 7)),
    ]


def test_whole_psh_payload_is_a_view_of_the_chunk(smux):
    chunk = SYN_3 + PSH_HELLO
    (_, (cmd, sid, payload)) = smux.FrameParser(1).feed(chunk)
    assert (cmd, sid) == (2, 3)
    assert isinstance(payload, memoryview)
    assert payload.obj is chunk  # no copy: a slice of what was fed
    assert payload == b"hello"

    buf = bytearray(PSH_HELLO)
    (_, _, view) = smux.FrameParser(1).feed(buf)[0]
    buf[8] = ord("j")
    assert bytes(view) == b"jello"  # proves the payload aliases the caller's buffer


def test_split_psh_payload_is_assembled_once(smux):
    data = bytes(range(200)) * 300  # 60000 bytes
    wire = bytes(smux.encode_data(1, 9, data, 65535))
    p = smux.FrameParser(1)
    assert p.feed(wire[:5]) == []
    assert p.feed(wire[5:20000]) == []
    assert p.feed(wire[20000:40000]) == []
    ((cmd, sid, payload),) = p.feed(wire[40000:])
    assert (cmd, sid) == (2, 9)
    assert isinstance(payload, bytearray)
    assert payload == data


def test_max_length_psh_and_max_sid(smux):
    data = b"\xaa" * 65535
    wire = bytes(smux.encode_data(2, 0xFFFFFFFF, data, 65535))
    frames = smux.FrameParser(2).feed(wire)
    assert norm(frames) == [(2, 0xFFFFFFFF, data)]


def test_zero_length_psh_is_skipped(smux):
    # smux's recvLoop skips PSH frames with length 0; the parser never delivers them
    empty_psh = smux.encode_header(1, smux.CMD_PSH, 0, 3)
    p = smux.FrameParser(1)
    assert p.feed(empty_psh) == []
    assert norm(p.feed(empty_psh + PSH_HELLO + empty_psh)) == [(2, 3, b"hello")]
    assert feed_bytewise(smux.FrameParser(1), empty_psh) == []


def test_parser_accepts_frames_larger_than_own_max_frame_size(smux):
    # smux's receiver has no MaxFrameSize check: any uint16 length is legal
    wire = bytes(smux.encode_data(1, 3, b"y" * 40000, 40000))
    assert norm(smux.FrameParser(1).feed(wire)) == [(2, 3, b"y" * 40000)]


def test_feed_accepts_bytes_like(smux):
    p = smux.FrameParser(1)
    assert norm(p.feed(bytearray(PSH_HELLO))) == [(2, 3, b"hello")]
    assert norm(p.feed(memoryview(PSH_HELLO))) == [(2, 3, b"hello")]
    assert p.feed(b"") == []
    assert p.feed(bytearray()) == []
    with pytest.raises(TypeError, match="contiguous"):
        p.feed(memoryview(PSH_HELLO * 2)[::2])
    with pytest.raises(TypeError):
        p.feed("text")


# --- protocol errors -------------------------------------------------------------------------

ERRORS = [
    # (session version, strict, bytes, message)
    (
        1,
        True,
        h("02 02 05 00 03 00 00 00"),
        "smux: frame version 2 does not match session version 1",
    ),
    (
        2,
        True,
        h("01 03 00 00 00 00 00 00"),
        "smux: frame version 1 does not match session version 2",
    ),
    (
        1,
        False,
        h("00 03 00 00 00 00 00 00"),
        "smux: frame version 0 does not match session version 1",
    ),
    (1, True, h("01 07 00 00 00 00 00 00"), "smux: unknown command 7"),
    (2, True, h("02 05 00 00 03 00 00 00"), "smux: unknown command 5"),
    (1, False, h("01 ff 00 00 03 00 00 00"), "smux: unknown command 255"),
    (2, True, h("02 04 05 00 03 00 00 00"), "smux: UPD frame length 5 (must be 8)"),
    (2, False, h("02 04 00 00 03 00 00 00"), "smux: UPD frame length 0 (must be 8)"),
    (1, False, h("01 04 10 00 03 00 00 00"), "smux: UPD frame length 16 (must be 8)"),
    (1, True, h("01 04 08 00 03 00 00 00"), "smux: UPD frame in a version 1 session"),
    (1, True, h("01 04 05 00 03 00 00 00"), "smux: UPD frame in a version 1 session"),
    (1, True, h("01 00 01 00 03 00 00 00"), "smux: SYN frame length 1 (must be 0)"),
    (1, True, h("01 01 00 01 03 00 00 00"), "smux: FIN frame length 256 (must be 0)"),
    (2, True, h("02 03 ff ff 00 00 00 00"), "smux: NOP frame length 65535 (must be 0)"),
]


@pytest.mark.parametrize(("version", "strict", "wire", "message"), ERRORS)
def test_protocol_errors(smux, version, strict, wire, message):
    for feed in (lambda p: p.feed(wire), lambda p: feed_bytewise(p, wire)):
        p = smux.FrameParser(version, strict)
        with pytest.raises(SmuxProtocolError) as info:
            feed(p)
        assert str(info.value) == message
        assert p.error == message
        # the parser is dead: valid input is refused with the same reason
        with pytest.raises(SmuxProtocolError) as again:
            p.feed(smux.encode_nop(version))
        assert str(again.value) == message
        with pytest.raises(SmuxProtocolError):
            p.feed(b"")


def test_error_carries_frames_completed_before_it(smux):
    p = smux.FrameParser(1)
    with pytest.raises(SmuxProtocolError) as info:
        p.feed(SYN_3 + PSH_HELLO + h("01 09 00 00 00 00 00 00") + NOP)
    assert str(info.value) == "smux: unknown command 9"
    assert norm(info.value.frames) == [(0, 3, b""), (2, 3, b"hello")]


def test_error_in_a_header_split_across_chunks(smux):
    p = smux.FrameParser(1)
    assert p.feed(PSH_HELLO[:10]) == []  # collecting a payload
    assert norm(p.feed(PSH_HELLO[10:] + h("09 02"))) == [(2, 3, b"hello")]
    assert p.feed(h("05 00 03 00")) == []  # still collecting the header
    with pytest.raises(SmuxProtocolError) as info:
        p.feed(h("00 00") + PSH_HELLO)
    assert str(info.value) == "smux: frame version 9 does not match session version 1"
    assert info.value.frames == []


# --- lax mode (smux v1.5.31 / v1.5.16 framing) ------------------------------------------------


def test_lax_ignores_length_of_control_frames(smux):
    # v1.5.31 never read a payload for SYN/FIN/NOP: the next byte starts the next header
    syn_with_length = h("01 00 08 00 03 00 00 00")
    stream = syn_with_length + NOP + h("01 01 ff ff 05 00 00 00") + PSH_HELLO
    expected = [(0, 3, b""), (3, 0, b""), (1, 5, b""), (2, 3, b"hello")]
    assert norm(smux.FrameParser(1, strict=False).feed(stream)) == expected
    assert norm(feed_bytewise(smux.FrameParser(1, strict=False), stream)) == expected
    with pytest.raises(SmuxProtocolError, match="SYN frame length 8"):
        smux.FrameParser(1).feed(stream)


def test_lax_accepts_upd_in_version_1(smux):
    upd_v1 = smux.encode_upd(1, 3, 100, 65536)
    p = smux.FrameParser(1, strict=False)
    assert p.strict is False
    assert p.feed(upd_v1 + NOP) == [(4, 3, (100, 65536)), (3, 0, b"")]
    with pytest.raises(SmuxProtocolError, match="UPD frame in a version 1 session"):
        smux.FrameParser(1).feed(upd_v1)
