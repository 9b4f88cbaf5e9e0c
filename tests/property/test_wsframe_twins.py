"""WebSocket frame codec properties: round trips under every split, and the twins agree.

* parse(build(messages)) == messages for every chunking of the stream, masked (client to
  server) and unmasked, payload sizes around every length-form boundary (0, 125, 126, 65535,
  65536), fragmented messages with control frames between fragments (each implementation).
* pure and compiled parsers give the same events per feed call, or the same WSProtocolError
  (code, reason, events before it) at the same call, on random frame streams that break rules
  (RSV bits, opcodes, mask direction, lengths, sequencing, limits) and on random garbage.
* frame_header/build_frame give the same bytes or the same exception in both twins.
* permessage-deflate's RSV1: with ``allow_rsv1`` a message whose first frame has RSV1
  round-trips as ``opcode | COMPRESSED``; without it (or on a control or continuation
  frame) both twins refuse it the same way (random streams draw RSV1 often then).
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gostfast._core as core
from gostfast._core.wsframe_common import WSProtocolError

#: the codec of the conftest ``impl`` and ``compiled`` fixtures
CODEC = "wsframe"
PURE = core.pure(CODEC)

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

BOUNDARY_SIZES = [0, 1, 2, 3, 4, 5, 124, 125, 126, 127, 200, 65535, 65536, 65537]
sizes = st.one_of(st.sampled_from(BOUNDARY_SIZES), st.integers(0, 300))
keys = st.binary(min_size=4, max_size=4)


def payload_of(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


def norm(events):
    return [(op, bytes(p)) for op, p in events]


def chunks(data: bytes, cuts):
    bounds = sorted({0, len(data), *(c for c in cuts if 0 <= c <= len(data))})
    return [data[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def run(impl, is_server: bool, max_size: int, pieces, allow_rsv1: bool = False):
    """Per-feed outcomes (events, or the error) plus one more feed to see the error stick."""
    parser = impl.FrameParser(is_server, max_size, allow_rsv1)
    out = []
    for piece in [*pieces, b""]:
        try:
            out.append(("ok", norm(parser.feed(piece))))
        except WSProtocolError as exc:
            out.append(("error", exc.close_code, exc.reason, norm(exc.events)))
    return out


# -- round trips ---------------------------------------------------------------------


@st.composite
def conversations(draw):
    """Messages (opcode, payload, fragment sizes) with control frames in between."""
    items = []
    for _ in range(draw(st.integers(1, 5))):
        if draw(st.booleans()):
            opcode = draw(st.sampled_from([8, 9, 10]))
            items.append(
                ("control", opcode, payload_of(draw(st.integers()), draw(st.integers(0, 125))))
            )
            continue
        opcode = draw(st.sampled_from([1, 2]))
        payload = payload_of(draw(st.integers()), draw(sizes))
        cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=3)))
        controls = [
            (
                draw(st.sampled_from([9, 10])),
                payload_of(draw(st.integers()), draw(st.integers(0, 5))),
            )
            for _ in cuts
        ]
        items.append(("message", opcode, payload, cuts, controls))
    return items


def encode(impl, items, key_for):
    """Build the stream with the implementation's writer; return it and the expected events."""
    out = bytearray()
    expected = []
    for item in items:
        if item[0] == "control":
            _, opcode, payload = item
            out += impl.build_frame(opcode, payload, mask=key_for())
            expected.append((opcode, payload))
            continue
        _, opcode, payload, cuts, controls = item
        bounds = [0, *cuts, len(payload)]
        pieces = [payload[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        for i, piece in enumerate(pieces):
            first, last = i == 0, i == len(pieces) - 1
            out += impl.build_frame(opcode if first else 0, piece, fin=last, mask=key_for())
            if not last:
                ctl_op, ctl_payload = controls[i]
                out += impl.build_frame(ctl_op, ctl_payload, mask=key_for())
                expected.append((ctl_op, ctl_payload))
        expected.append((opcode, payload))
    return bytes(out), expected


@SETTINGS
@given(items=conversations(), masked=st.booleans(), data=st.data())
def test_round_trip_under_any_split(impl, items, masked, data):
    rng = random.Random(data.draw(st.integers()))
    key_for = (lambda: rng.randbytes(4)) if masked else (lambda: None)
    stream, expected = encode(impl, items, key_for)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    parser = impl.FrameParser(is_server=masked)
    got = []
    for piece in chunks(stream, cuts):
        got += norm(parser.feed(piece))
    assert got == expected


@SETTINGS
@given(size=sizes, seed=st.integers(), masked=st.booleans(), cut=st.integers(0, 2**20))
def test_single_frame_every_shape(impl, size, seed, masked, cut):
    payload = payload_of(seed, size)
    key = payload_of(seed + 1, 4) if masked else None
    frame = bytes(impl.build_frame(2, payload, mask=key))
    cut %= len(frame) + 1
    parser = impl.FrameParser(is_server=masked, max_message_size=size)
    assert norm(parser.feed(frame[:cut]) + parser.feed(frame[cut:])) == [(2, payload)]


@settings(max_examples=40, deadline=None)
@given(size=st.sampled_from([0, 1, 125, 126, 127, 300]), masked=st.booleans())
def test_single_frame_every_cut_point(impl, size, masked):
    payload = payload_of(size, size)
    frame = bytes(impl.build_frame(1, payload, mask=b"\x01\x02\x03\x04" if masked else None))
    for cut in range(len(frame) + 1):
        parser = impl.FrameParser(is_server=masked)
        got = norm(parser.feed(frame[:cut]) + parser.feed(frame[cut:]))
        assert got == [(1, payload)], cut


# -- twins agree on anything ---------------------------------------------------------


def rarely(draw) -> bool:
    """True about one time in twelve: a field breaks its rule."""
    return draw(st.integers(0, 11)) == 0


@st.composite
def raw_frames(draw, is_server: bool, in_message: bool, limit: int = 0, rsv1: bool = False):
    """One frame, mostly valid for the side and the message state, any field may break.

    ``rsv1``: RSV1 is set on about half the frames (valid on a message's first frame).

    Returns (frame bytes, whether a data message is in progress after it if it is valid).
    """
    if in_message:
        opcode = draw(st.sampled_from([0, 0, 0, 9, 10, 8]))
    else:
        opcode = draw(st.sampled_from([1, 2, 2, 9, 10, 8]))
    if rarely(draw):
        opcode = draw(st.integers(0, 15))
    fin = True if opcode >= 8 else draw(st.booleans())
    if rarely(draw):
        fin = not fin
    rsv = draw(st.sampled_from([1, 2, 4, 7])) if rarely(draw) else 0
    if rsv1 and not rsv and draw(st.booleans()):
        rsv = 4
    masked = is_server != rarely(draw)
    if opcode >= 8 and not rarely(draw):
        n = draw(st.integers(0, 125))
    else:
        near_limit = [limit - 1, limit, limit, limit + 1] if limit else BOUNDARY_SIZES
        n = draw(
            st.one_of(
                st.integers(0, 140), st.sampled_from(BOUNDARY_SIZES), st.sampled_from(near_limit)
            )
        )
        n = max(n, 0)
    form = draw(st.sampled_from(["16", "64", "64top"])) if rarely(draw) else "min"
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mbit = 0x80 if masked else 0
    if form == "min":
        form = "7" if n < 126 else "16" if n < 65536 else "64"
    if form == "7":
        head = bytes((b0, mbit | n))
    elif form == "16" and n < 65536:
        head = bytes((b0, mbit | 126)) + n.to_bytes(2, "big")
    elif form == "64top":
        head = bytes((b0, mbit | 127)) + (n | (1 << 63)).to_bytes(8, "big")
    else:
        head = bytes((b0, mbit | 127)) + n.to_bytes(8, "big")
    if masked:
        head += draw(keys)
    if opcode in (1, 2):
        in_message = not fin
    elif opcode == 0:
        in_message = not fin
    return head + payload_of(draw(st.integers()), n), in_message


@st.composite
def frame_streams(draw, is_server: bool, limit: int = 0, rsv1: bool = False):
    out = []
    in_message = False
    for _ in range(draw(st.integers(0, 10))):
        frame, in_message = draw(raw_frames(is_server, in_message, limit, rsv1))
        out.append(frame)
    if rarely(draw):
        out.append(draw(st.binary(max_size=40)))
    return b"".join(out)


def streams_for(is_server: bool, limit: int = 0, rsv1: bool = False):
    """Frame streams (mostly valid, sizes near ``limit``) or plain garbage."""
    frames = frame_streams(is_server, limit, rsv1)
    return st.one_of(frames, frames, st.binary(max_size=300))


@SETTINGS
@given(
    is_server=st.booleans(),
    max_size=st.sampled_from([0, 0, 0, 1, 2, 125, 126, 200, 65536]),
    allow_rsv1=st.booleans(),
    rsv1_often=st.booleans(),
    data=st.data(),
)
def test_twins_agree_on_random_streams(compiled, is_server, max_size, allow_rsv1, rsv1_often, data):
    stream = data.draw(streams_for(is_server, max_size, rsv1_often))
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=10))
    pieces = chunks(stream, cuts)
    assert run(PURE, is_server, max_size, pieces, allow_rsv1) == run(
        compiled, is_server, max_size, pieces, allow_rsv1
    )


@SETTINGS
@given(is_server=st.booleans(), data=st.data())
def test_twins_agree_byte_by_byte(compiled, is_server, data):
    stream = data.draw(streams_for(is_server))
    pieces = [stream[i : i + 1] for i in range(len(stream))][:2000]
    assert run(PURE, is_server, 0, pieces) == run(compiled, is_server, 0, pieces)


def _outcome(fn, *args, **kwargs):
    try:
        return ("ok", bytes(fn(*args, **kwargs)))
    except (ValueError, TypeError) as exc:
        return ("error", type(exc))


@SETTINGS
@given(
    opcode=st.integers(-2, 17),
    length=st.one_of(st.integers(-2, 70000), st.integers(2**63 - 2, 2**63 + 1)),
    fin=st.booleans(),
    mask=st.one_of(st.none(), st.binary(min_size=3, max_size=5)),
    rsv1=st.booleans(),
)
def test_twins_agree_on_headers(compiled, opcode, length, fin, mask, rsv1):
    assert _outcome(PURE.frame_header, opcode, length, fin, mask, rsv1) == _outcome(
        compiled.frame_header, opcode, length, fin, mask, rsv1
    )


@SETTINGS
@given(
    opcode=st.integers(-1, 16),
    payload=st.binary(max_size=300),
    fin=st.booleans(),
    mask=st.one_of(st.none(), st.binary(min_size=3, max_size=5)),
    rsv1=st.booleans(),
)
def test_twins_agree_on_frames(compiled, opcode, payload, fin, mask, rsv1):
    assert _outcome(PURE.build_frame, opcode, payload, fin, mask, rsv1) == _outcome(
        compiled.build_frame, opcode, payload, fin, mask, rsv1
    )


# -- permessage-deflate's RSV1 ---------------------------------------------------------


@SETTINGS
@given(
    opcode=st.sampled_from([1, 2]),
    size=sizes,
    seed=st.integers(),
    masked=st.booleans(),
    frag=st.integers(0, 3),
    data=st.data(),
)
def test_rsv1_message_round_trips_flagged(impl, opcode, size, seed, masked, frag, data):
    """RSV1 on the first frame only; the message comes out as ``opcode | COMPRESSED``."""
    rng = random.Random(seed)
    payload = payload_of(seed, size)
    cuts = sorted(rng.randrange(size + 1) for _ in range(frag))
    parts = chunks(payload, cuts) or [b""]
    frames = []
    for i, part in enumerate(parts):
        key = rng.randbytes(4) if masked else None
        op = opcode if i == 0 else 0
        frames.append(impl.build_frame(op, part, i == len(parts) - 1, key, i == 0))
    stream = b"".join(bytes(f) for f in frames) + bytes(
        impl.build_frame(opcode, b"x", True, None if not masked else b"abcd")
    )
    split = data.draw(st.lists(st.integers(0, len(stream)), max_size=6))
    parser = impl.FrameParser(masked, 0, True)
    events = []
    for piece in chunks(stream, split):
        events += norm(parser.feed(piece))
    assert events == [(opcode | impl.COMPRESSED, payload), (opcode, b"x")]


@pytest.mark.parametrize("opcode", [0, 8, 9, 10])
def test_rsv1_refused_on_control_and_continuation(impl, opcode):
    parser = impl.FrameParser(False, 0, True)
    stream = bytes(impl.build_frame(2, b"ab", False)) if opcode == 0 else b""
    stream += bytes(((0x80 | 0x40 | opcode), 0))
    with pytest.raises(WSProtocolError) as err:
        parser.feed(stream)
    assert (err.value.close_code, err.value.reason) == (
        1002,
        "RSV1 set on a control or continuation frame",
    )


def test_rsv1_refused_without_negotiation(impl):
    with pytest.raises(WSProtocolError) as err:
        impl.FrameParser(False).feed(impl.build_frame(2, b"ab", rsv1=True))
    assert err.value.close_code == 1002
