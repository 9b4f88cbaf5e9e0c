"""WebSocket frame codec (wsframe): RFC 6455 vectors, every rule with its close code, limits,
the writer, close payloads, and interop with the ``websockets`` library's framing.

Each test runs on the pure twin and on the compiled one (skipped when it is not built, or when
GOSTFAST_NO_EXTENSIONS=1 asks for the pure twins only).
"""

from __future__ import annotations

import random

import pytest

from gostfast._core import wsframe_common as common
from gostfast._core.wsframe_common import WSProtocolError

#: the codec of the conftest ``impl`` fixture (each twin in turn)
CODEC = "wsframe"


@pytest.fixture
def ws(impl):
    return impl


def h(text: str) -> bytes:
    return bytes.fromhex(text)


KEY = h("37fa213d")


def masked(payload: bytes, key: bytes) -> bytes:
    return bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def raw_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    key: bytes | None = None,
    rsv: int = 0,
    form: str | None = None,
    length: int | None = None,
) -> bytes:
    """Hand-built frame bytes (any length form, RSV bits, lying lengths) for the tests."""
    n = len(payload) if length is None else length
    form = form or ("7" if n < 126 else "16" if n < 65536 else "64")
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mbit = 0x80 if key is not None else 0
    if form == "7":
        head = bytes((b0, mbit | n))
    elif form == "16":
        head = bytes((b0, mbit | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((b0, mbit | 127)) + n.to_bytes(8, "big")
    if key is not None:
        return head + key + masked(payload, key)
    return head + payload


def norm(events):
    return [(op, bytes(p)) for op, p in events]


def feed_split(parser, data: bytes, step: int = 1):
    out = []
    for i in range(0, len(data), step):
        out += parser.feed(data[i : i + step])
    return norm(out)


def error_of(parser, data: bytes) -> WSProtocolError:
    with pytest.raises(WSProtocolError) as info:
        parser.feed(data)
    return info.value


# -- RFC 6455 section 5.7 examples ---------------------------------------------------

RFC_TEXT_HELLO = h("810548656c6c6f")
RFC_MASKED_HELLO = h("818537fa213d7f9f4d5158")
RFC_FRAGMENTED = h("010348656c") + h("80026c6f")
RFC_PING = h("890548656c6c6f")
RFC_MASKED_PONG = h("8a8537fa213d7f9f4d5158")


def test_rfc_unmasked_text(ws):
    parser = ws.FrameParser(is_server=False)
    events = parser.feed(RFC_TEXT_HELLO)
    assert norm(events) == [(ws.OP_TEXT, b"Hello")]


def test_rfc_masked_text(ws):
    parser = ws.FrameParser(is_server=True)
    assert norm(parser.feed(RFC_MASKED_HELLO)) == [(ws.OP_TEXT, b"Hello")]


def test_rfc_fragmented_text(ws):
    parser = ws.FrameParser(is_server=False)
    assert norm(parser.feed(RFC_FRAGMENTED)) == [(ws.OP_TEXT, b"Hello")]


def test_rfc_ping_and_masked_pong(ws):
    assert norm(ws.FrameParser(False).feed(RFC_PING)) == [(ws.OP_PING, b"Hello")]
    assert norm(ws.FrameParser(True).feed(RFC_MASKED_PONG)) == [(ws.OP_PONG, b"Hello")]


def test_rfc_256_bytes_16_bit_length(ws):
    payload = bytes(range(256))
    data = h("827e0100") + payload
    assert raw_frame(2, payload) == data
    assert norm(ws.FrameParser(False).feed(data)) == [(ws.OP_BINARY, payload)]
    assert feed_split(ws.FrameParser(False), data, 7) == [(ws.OP_BINARY, payload)]


def test_rfc_64k_binary_64_bit_length(ws):
    payload = random.Random(64).randbytes(65536)
    data = h("827f0000000000010000") + payload
    assert raw_frame(2, payload) == data
    assert norm(ws.FrameParser(False).feed(data)) == [(ws.OP_BINARY, payload)]
    srv = raw_frame(2, payload, key=KEY)
    assert norm(ws.FrameParser(True).feed(srv)) == [(ws.OP_BINARY, payload)]
    assert feed_split(ws.FrameParser(True), srv, 1000) == [(ws.OP_BINARY, payload)]


@pytest.mark.parametrize(
    "is_server,data,expected",
    [
        (False, RFC_TEXT_HELLO, [(1, b"Hello")]),
        (True, RFC_MASKED_HELLO, [(1, b"Hello")]),
        (False, RFC_FRAGMENTED, [(1, b"Hello")]),
        (False, RFC_PING, [(9, b"Hello")]),
        (True, RFC_MASKED_PONG, [(10, b"Hello")]),
        (True, raw_frame(2, bytes(300), key=KEY), [(2, bytes(300))]),
    ],
)
def test_every_split(ws, is_server, data, expected):
    for cut in range(len(data) + 1):
        parser = ws.FrameParser(is_server)
        got = norm(parser.feed(data[:cut]) + parser.feed(data[cut:]))
        assert got == expected, cut
    assert feed_split(ws.FrameParser(is_server), data, 1) == expected


# -- messages and events -------------------------------------------------------------


def test_ping_between_fragments_is_delivered_first(ws):
    data = (
        raw_frame(2, b"ab", fin=False, key=KEY)
        + raw_frame(9, b"p1", key=KEY)
        + raw_frame(0, b"cd", fin=False, key=KEY)
        + raw_frame(10, b"", key=KEY)
        + raw_frame(8, h("03e8") + b"bye", key=KEY)
        + raw_frame(0, b"ef", key=KEY)
        + raw_frame(1, b"next", key=KEY)
    )
    expected = [
        (ws.OP_PING, b"p1"),
        (ws.OP_PONG, b""),
        (ws.OP_CLOSE, h("03e8") + b"bye"),
        (ws.OP_BINARY, b"abcdef"),
        (ws.OP_TEXT, b"next"),
    ]
    assert norm(ws.FrameParser(True).feed(data)) == expected
    assert feed_split(ws.FrameParser(True), data, 1) == expected
    assert feed_split(ws.FrameParser(True), data, 5) == expected


def test_gorilla_client_style_fragmentation(ws):
    """gorilla's client sends a 32 KiB write as ~4 KiB masked fragments."""
    payload = random.Random(3).randbytes(32768)
    data = b""
    for i in range(0, len(payload), 4096):
        piece = payload[i : i + 4096]
        opcode = 2 if i == 0 else 0
        data += raw_frame(
            opcode, piece, fin=i + 4096 >= len(payload), key=bytes([i >> 12, 1, 2, 3])
        )
    assert norm(ws.FrameParser(True).feed(data)) == [(2, payload)]
    assert feed_split(ws.FrameParser(True), data, 1500) == [(2, payload)]


def test_empty_messages_are_delivered(ws):
    data = raw_frame(2, b"") + raw_frame(1, b"", fin=False) + raw_frame(0, b"") + raw_frame(9)
    assert norm(ws.FrameParser(False).feed(data)) == [(2, b""), (1, b""), (9, b"")]


def test_text_is_not_utf8_validated(ws):
    assert norm(ws.FrameParser(False).feed(raw_frame(1, b"\xff\xfe"))) == [(1, b"\xff\xfe")]


def test_longer_length_forms_are_accepted(ws):
    """16-bit form below 126 and 64-bit form below 65536: gorilla accepts both, so do we."""
    data = raw_frame(2, b"abc", form="16") + raw_frame(2, b"xyz" * 100, form="64")
    assert norm(ws.FrameParser(False).feed(data)) == [(2, b"abc"), (2, b"xyz" * 100)]


def test_client_payload_is_a_view_of_the_chunk(ws):
    chunk = bytearray(raw_frame(2, b"hello") + raw_frame(2, b"world"))
    events = ws.FrameParser(False).feed(chunk)
    assert [bytes(p) for _, p in events] == [b"hello", b"world"]
    for _, payload in events:
        assert isinstance(payload, memoryview)
        assert payload.obj is chunk
    chunk[2] = ord("j")
    assert bytes(events[0][1]) == b"jello"  # a view, not a copy


def test_server_payload_is_an_unmasked_copy(ws):
    chunk = bytearray(raw_frame(2, b"hello", key=KEY))
    ((op, payload),) = ws.FrameParser(True).feed(chunk)
    assert isinstance(payload, (bytes, bytearray))
    chunk[:] = bytes(len(chunk))
    assert bytes(payload) == b"hello"


def test_feed_accepts_any_buffer(ws):
    data = raw_frame(2, b"payload", key=KEY)
    for chunk in (data, bytearray(data), memoryview(data), memoryview(b"xx" + data)[2:]):
        assert norm(ws.FrameParser(True).feed(chunk)) == [(2, b"payload")]
    assert ws.FrameParser(True).feed(b"") == []
    with pytest.raises(TypeError):
        ws.FrameParser(True).feed(memoryview(data)[::2])


# -- rules and close codes -----------------------------------------------------------


@pytest.mark.parametrize("rsv", [1, 2, 4, 7])
def test_rsv_bits(ws, rsv):
    exc = error_of(ws.FrameParser(False), raw_frame(2, b"x", rsv=rsv))
    assert exc.close_code == 1002


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 11, 12, 13, 14, 15])
def test_unknown_opcodes(ws, opcode):
    exc = error_of(ws.FrameParser(False), raw_frame(opcode, b""))
    assert exc.close_code == 1002
    assert str(exc) == exc.reason == f"unknown opcode {opcode}"


def test_mask_direction(ws):
    assert error_of(ws.FrameParser(True), RFC_TEXT_HELLO).close_code == 1002
    assert error_of(ws.FrameParser(False), RFC_MASKED_HELLO).close_code == 1002


@pytest.mark.parametrize("opcode", [8, 9, 10])
def test_control_frame_rules(ws, opcode):
    too_long = raw_frame(opcode, bytes(126))
    assert error_of(ws.FrameParser(False), too_long).close_code == 1002
    lying_form = raw_frame(opcode, bytes(5), form="16")  # 126 in the 7-bit field
    assert error_of(ws.FrameParser(False), lying_form).close_code == 1002
    fragmented = raw_frame(opcode, b"", fin=False)
    assert error_of(ws.FrameParser(False), fragmented).close_code == 1002
    assert norm(ws.FrameParser(False).feed(raw_frame(opcode, bytes(125)))) == [(opcode, bytes(125))]


def test_message_sequence_rules(ws):
    assert error_of(ws.FrameParser(False), raw_frame(0, b"x")).close_code == 1002
    parser = ws.FrameParser(False)
    exc = error_of(parser, raw_frame(1, b"a", fin=False) + raw_frame(2, b"b"))
    assert exc.close_code == 1002
    assert exc.reason == "new data frame inside a fragmented message"


def test_64_bit_length_with_top_bit(ws):
    data = h("827f8000000000000000")
    exc = error_of(ws.FrameParser(False), data)
    assert exc.close_code == 1002


def test_max_message_size_single_frame(ws):
    parser = ws.FrameParser(True, max_message_size=100)
    assert norm(parser.feed(raw_frame(2, bytes(100), key=KEY))) == [(2, bytes(100))]
    exc = error_of(parser, raw_frame(2, bytes(101), key=KEY))
    assert exc.close_code == 1009


def test_max_message_size_is_checked_from_the_header(ws):
    parser = ws.FrameParser(False, max_message_size=1 << 20)
    header_only = h("827f0000010000000000")  # claims 1 TiB; no payload byte follows
    assert error_of(parser, header_only).close_code == 1009


def test_max_message_size_reassembled(ws):
    parser = ws.FrameParser(False, max_message_size=10)
    data = raw_frame(2, bytes(6), fin=False) + raw_frame(9, bytes(50)) + raw_frame(0, bytes(4))
    assert norm(parser.feed(data)) == [(9, bytes(50)), (2, bytes(10))]  # control not counted
    data = raw_frame(2, bytes(6), fin=False) + raw_frame(0, bytes(4), fin=False)
    exc = error_of(parser, data + raw_frame(0, bytes(1)))
    assert exc.close_code == 1009
    assert exc.reason == "message too big"


def test_error_is_sticky_and_carries_earlier_events(ws):
    parser = ws.FrameParser(False)
    exc = error_of(parser, raw_frame(2, b"ok") + raw_frame(9, b"") + raw_frame(3))
    assert norm(exc.events) == [(2, b"ok"), (9, b"")]
    again = error_of(parser, raw_frame(2, b"more"))
    assert (again.close_code, again.reason, again.events) == (1002, exc.reason, [])
    assert error_of(parser, b"").close_code == 1002


def test_error_split_over_chunks(ws):
    parser = ws.FrameParser(False)
    assert parser.feed(b"\x82") == []
    assert error_of(parser, b"\xfe").close_code == 1002  # masked frame from a server


def test_garbage_http_text_is_refused(ws):
    assert error_of(ws.FrameParser(True), b"GET / HTTP/1.1\r\n").close_code == 1002


def test_max_message_size_validation(ws):
    with pytest.raises(ValueError):
        ws.FrameParser(True, max_message_size=-1)
    parser = ws.FrameParser(True, max_message_size=1 << 80)  # effectively unlimited
    assert norm(parser.feed(raw_frame(2, b"x", key=KEY))) == [(2, b"x")]


# -- writer --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "length,prefix",
    [
        (0, "8200"),
        (125, "827d"),
        (126, "827e007e"),
        (65535, "827effff"),
        (65536, "827f0000000000010000"),
        (2**63 - 1, "827f7fffffffffffffff"),
    ],
)
def test_frame_header_forms(ws, length, prefix):
    assert ws.frame_header(2, length) == h(prefix)
    masked_head = ws.frame_header(2, length, mask=KEY)
    assert masked_head[1] & 0x80
    assert masked_head[2:] == h(prefix)[2:] + KEY


def test_frame_header_flags(ws):
    assert ws.frame_header(1, 3, fin=False) == h("0103")
    assert ws.frame_header(0, 3) == h("8003")
    assert ws.frame_header(9, 0, mask=KEY) == h("8980") + KEY


def test_frame_header_errors(ws):
    for args, kwargs in [
        ((16, 0), {}),
        ((-1, 0), {}),
        ((2, -1), {}),
        ((2, 2**63), {}),
        ((9, 126), {}),
        ((8, 0), {"fin": False}),
        ((2, 0), {"mask": b"abc"}),
    ]:
        with pytest.raises(ValueError):
            ws.frame_header(*args, **kwargs)


def test_build_frame_matches_rfc(ws):
    assert ws.build_frame(1, b"Hello") == RFC_TEXT_HELLO
    assert ws.build_frame(1, b"Hello", mask=KEY) == RFC_MASKED_HELLO
    assert ws.build_frame(9, b"Hello") == RFC_PING
    assert ws.build_frame(1, b"Hel", fin=False) == RFC_FRAGMENTED[:5]
    assert ws.build_frame(0, memoryview(b"lo")) == RFC_FRAGMENTED[5:]


@pytest.mark.parametrize("n", [0, 1, 125, 126, 65535, 65536, 100000])
def test_build_frame_sizes_round_trip(ws, n):
    payload = random.Random(n).randbytes(n)
    out = ws.build_frame(2, bytearray(payload), mask=KEY)
    assert isinstance(out, bytearray)
    assert bytes(out) == raw_frame(2, payload, key=KEY)
    assert norm(ws.FrameParser(True).feed(out)) == [(2, payload)]
    plain = ws.build_frame(2, payload)
    assert plain == raw_frame(2, payload)
    assert norm(ws.FrameParser(False).feed(plain)) == [(2, payload)]


def test_build_frame_errors(ws):
    with pytest.raises(ValueError):
        ws.build_frame(9, bytes(126))
    with pytest.raises(ValueError):
        ws.build_frame(2, b"x", mask=b"12345")
    with pytest.raises(TypeError):
        ws.build_frame(2, "text")


# -- close payloads and shared names -------------------------------------------------


def test_shared_names_are_the_same_objects(ws):
    assert ws.WSProtocolError is WSProtocolError
    for name in common.__all__:
        assert getattr(ws, name) is getattr(common, name), name
    assert (ws.OP_CONT, ws.OP_TEXT, ws.OP_BINARY) == (0, 1, 2)
    assert (ws.OP_CLOSE, ws.OP_PING, ws.OP_PONG) == (8, 9, 10)
    assert (ws.CLOSE_NORMAL, ws.CLOSE_PROTOCOL_ERROR, ws.CLOSE_TOO_BIG) == (1000, 1002, 1009)
    assert (ws.CLOSE_GOING_AWAY, ws.CLOSE_UNSUPPORTED, ws.CLOSE_INVALID_DATA) == (1001, 1003, 1007)
    assert (ws.CLOSE_POLICY, ws.CLOSE_INTERNAL) == (1008, 1011)


def test_parse_close_payload():
    assert common.parse_close_payload(b"") == (None, "")
    assert common.parse_close_payload(h("03e8")) == (1000, "")
    assert common.parse_close_payload(memoryview(h("0fa0") + "é".encode())) == (4000, "é")
    for code in (
        1000,
        1001,
        1002,
        1003,
        1007,
        1008,
        1009,
        1010,
        1011,
        1012,
        1013,
        1014,
        3000,
        4999,
    ):
        assert common.parse_close_payload(code.to_bytes(2, "big"))[0] == code
    for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535):
        with pytest.raises(WSProtocolError) as info:
            common.parse_close_payload(code.to_bytes(2, "big"))
        assert info.value.close_code == 1002, code
    with pytest.raises(WSProtocolError) as info:
        common.parse_close_payload(b"\x03")
    assert info.value.close_code == 1002
    with pytest.raises(WSProtocolError) as info:
        common.parse_close_payload(h("03e8") + b"\xff")
    assert info.value.close_code == 1007


def test_build_close_payload():
    assert common.build_close_payload(None) == b""
    assert common.build_close_payload(1000) == h("03e8")
    assert common.build_close_payload(1001, "bye") == h("03e9") + b"bye"
    assert common.parse_close_payload(common.build_close_payload(4000, "ü" * 61)) == (
        4000,
        "ü" * 61,
    )
    for code, reason in [(None, "x"), (1005, ""), (999, ""), (1000, "x" * 124)]:
        with pytest.raises(ValueError):
            common.build_close_payload(code, reason)


def test_protocol_error_shape():
    exc = WSProtocolError(1009, "message too big")
    assert (exc.close_code, exc.reason, str(exc), exc.events) == (
        1009,
        "message too big",
        "message too big",
        [],
    )


# -- interop with the websockets library's framing (independent implementation) -----

frames = pytest.importorskip("websockets.frames")
streams = pytest.importorskip("websockets.streams")


def _websockets_parse(data: bytes, mask: bool):
    reader = streams.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    out = []
    while True:
        gen = frames.Frame.parse(reader.read_exact, mask=mask)
        try:
            next(gen)
        except StopIteration as stop:
            out.append(stop.value)
            continue
        except EOFError:
            return out
        return out


@pytest.mark.parametrize("n", [0, 5, 125, 126, 65535, 65536])
def test_websockets_reads_what_we_write(ws, n):
    payload = random.Random(n).randbytes(n)
    for mask in (None, KEY):
        data = bytes(ws.build_frame(2, payload, mask=mask)) + bytes(
            ws.build_frame(9, b"pp", mask=mask)
        )
        parsed = _websockets_parse(data, mask=mask is not None)
        assert [(f.opcode.value, bytes(f.data), f.fin) for f in parsed] == [
            (2, payload, True),
            (9, b"pp", True),
        ]


@pytest.mark.parametrize("n", [0, 5, 125, 126, 65535, 65536])
def test_we_read_what_websockets_writes(ws, n):
    payload = random.Random(n).randbytes(n)
    for is_server in (True, False):
        data = frames.Frame(frames.Opcode.BINARY, payload, fin=False).serialize(mask=is_server)
        data += frames.Frame(frames.Opcode.PING, b"x").serialize(mask=is_server)
        data += frames.Frame(frames.Opcode.CONT, b"tail").serialize(mask=is_server)
        expected = [(9, b"x"), (2, payload + b"tail")]
        assert norm(ws.FrameParser(is_server).feed(data)) == expected
        assert feed_split(ws.FrameParser(is_server), data, 777) == expected
