"""smux codec properties: round trips under every split, and the twins agree on everything.

* parse(encode(frames)) == frames for any chunking of the stream (each implementation).
* encode_data: payloads concatenate back to the data, each at most max_frame_size.
* pure and compiled twins produce the same frames, or the same SmuxProtocolError (same message,
  same frames before it), on valid streams and on random/malformed bytes; encoders give the
  same bytes or the same ValueError.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gostfast._core as core
from gostfast._core.smux_common import CMD_FIN, CMD_NOP, CMD_PSH, CMD_SYN, CMD_UPD

#: the codec of the conftest ``impl`` and ``compiled`` fixtures
CODEC = "smux"
PURE = core.pure(CODEC)


@pytest.fixture(scope="module")
def mod(impl):
    """The codec under test (each twin), by this file's name for it."""
    return impl


SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

U32 = 0xFFFFFFFF
sids = st.one_of(st.sampled_from([0, 1, 3, 5, 2, U32]), st.integers(0, U32))
payloads = st.one_of(
    st.binary(min_size=1, max_size=64),
    st.binary(min_size=1, max_size=2000),
    st.integers(1, 65535).map(lambda n: bytes([n & 0xFF]) * n),
)


@st.composite
def frames_for(draw, version: int):
    """A valid frame list for a session of ``version`` (UPD only in v2)."""
    cmds = [CMD_SYN, CMD_FIN, CMD_PSH, CMD_NOP] + ([CMD_UPD] if version == 2 else [])
    out = []
    for _ in range(draw(st.integers(0, 12))):
        cmd = draw(st.sampled_from(cmds))
        if cmd == CMD_NOP:
            out.append((cmd, 0, b""))
        elif cmd == CMD_PSH:
            out.append((cmd, draw(sids), draw(payloads)))
        elif cmd == CMD_UPD:
            out.append((cmd, draw(sids), (draw(st.integers(0, U32)), draw(st.integers(0, U32)))))
        else:
            out.append((cmd, draw(sids), b""))
    return out


def encode(mod, version: int, frames) -> bytes:
    parts = []
    for cmd, sid, payload in frames:
        if cmd == CMD_PSH:
            parts.append(bytes(mod.encode_data(version, sid, payload, 65535)))
        elif cmd == CMD_UPD:
            parts.append(mod.encode_upd(version, sid, *payload))
        elif cmd == CMD_NOP:
            parts.append(mod.encode_nop(version))
        elif cmd == CMD_SYN:
            parts.append(mod.encode_syn(version, sid))
        else:
            parts.append(mod.encode_fin(version, sid))
    return b"".join(parts)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks, last = [], 0
    for p in points + [len(data)]:
        chunks.append(data[last:p])
        last = p
    return chunks


def norm(frames):
    return [(c, s, p if isinstance(p, tuple) else bytes(p)) for c, s, p in frames]


def run(mod, version: int, strict: bool, chunks):
    """Feed chunks; a trace of per-chunk results or ('error', message, frames) entries."""
    parser = mod.FrameParser(version, strict)
    trace = []
    for chunk in chunks:
        try:
            trace.append(norm(parser.feed(chunk)))
        except mod.SmuxProtocolError as exc:
            trace.append(("error", str(exc), norm(exc.frames)))
    return trace


# --- round trips -----------------------------------------------------------------------------


@SETTINGS
@given(data=st.data(), version=st.sampled_from([1, 2]), cuts=st.lists(st.integers(0, 10**6)))
def test_parse_encode_round_trip_any_split(mod, data, version, cuts):
    frames = data.draw(frames_for(version))
    wire = encode(mod, version, frames)
    parser = mod.FrameParser(version)
    got = []
    for chunk in split(wire, cuts):
        got += parser.feed(chunk)
    assert norm(got) == frames


@settings(max_examples=40, deadline=None)
@given(version=st.sampled_from([1, 2]), frames=st.data())
def test_round_trip_byte_at_a_time(mod, version, frames):
    frames = frames.draw(frames_for(version).filter(lambda f: sum(len(p) for _, _, p in f) < 3000))
    wire = encode(mod, version, frames)
    parser = mod.FrameParser(version)
    got = []
    for i in range(len(wire)):
        got += parser.feed(wire[i : i + 1])
    assert norm(got) == frames


@SETTINGS
@given(
    data=st.one_of(st.binary(max_size=3000), st.integers(0, 200_000).map(lambda n: b"\x5a" * n)),
    max_frame_size=st.one_of(st.integers(1, 64), st.integers(1, 65535), st.just(32768)),
    sid=sids,
    version=st.sampled_from([1, 2]),
)
def test_encode_data_payloads_concatenate_to_data(mod, data, max_frame_size, sid, version):
    wire = mod.encode_data(version, sid, data, max_frame_size)
    assert isinstance(wire, bytearray)
    frames = mod.FrameParser(version).feed(wire)
    sizes = [len(p) for _, _, p in frames]
    assert b"".join(bytes(p) for _, _, p in frames) == data
    assert all(c == CMD_PSH and s == sid for c, s, _ in frames)
    assert all(0 < n <= max_frame_size for n in sizes)
    assert all(n == max_frame_size for n in sizes[:-1])
    assert len(wire) == len(data) + 8 * len(frames)


# --- twins agree -----------------------------------------------------------------------------


@st.composite
def garbage(draw, version: int):
    """Byte soup: mostly well-formed frames of the session's version, mixed with headers that
    break one rule (version, command, control/UPD length), bodies of the wrong size, and noise.
    """
    other = 3 - version
    parts = []
    for _ in range(draw(st.integers(0, 10))):
        kind = draw(st.sampled_from(["frame"] * 8 + ["odd"] * 3 + ["noise"]))
        if kind == "noise":
            parts.append(draw(st.binary(max_size=40)))
            continue
        cmd = draw(st.sampled_from([0, 1, 2, 3, 4] * 8 + [5, 7, 255]))
        sid = draw(sids)
        if kind == "frame":  # well-formed unless cmd is UPD in v1 (strict) or unknown
            ver = version
            length = {2: draw(st.integers(0, 3000)), 4: 8}.get(cmd, 0)
            body = length
        else:  # one field off
            ver = draw(st.sampled_from([version] * 9 + [other, 0, 255]))
            length = draw(st.sampled_from([1, 2, 3, 7, 8, 9, 256, 65535]) | st.integers(0, 65535))
            body = draw(st.sampled_from([0, min(length, 3000), 8]) | st.integers(0, 64))
        parts.append(PURE.encode_header(ver, cmd, length, sid))
        parts.append(draw(st.binary(min_size=body, max_size=body)))
    return b"".join(parts)


@SETTINGS
@given(
    data=st.data(),
    version=st.sampled_from([1, 2]),
    strict=st.booleans(),
    cuts=st.lists(st.integers(0, 10**6), max_size=12),
)
def test_twins_agree_on_valid_streams(compiled, data, version, strict, cuts):
    frames = data.draw(frames_for(version))
    wire = encode(PURE, version, frames)
    assert encode(compiled, version, frames) == wire
    chunks = split(wire, cuts)
    assert run(PURE, version, strict, chunks) == run(compiled, version, strict, chunks)


@SETTINGS
@given(
    data=st.data(),
    version=st.sampled_from([1, 2]),
    strict=st.booleans(),
    cuts=st.lists(st.integers(0, 10**6), max_size=12),
)
def test_twins_agree_on_garbage(compiled, data, version, strict, cuts):
    soup = data.draw(garbage(version))
    chunks = split(soup, cuts) + [PURE.encode_nop(version)]  # probe the state after the soup
    assert run(PURE, version, strict, chunks) == run(compiled, version, strict, chunks)


@SETTINGS
@given(soup=st.binary(max_size=200), version=st.sampled_from([1, 2]), strict=st.booleans())
def test_twins_agree_on_random_bytes(compiled, soup, version, strict):
    chunks = [soup[i : i + 1] for i in range(len(soup))] + [soup]
    assert run(PURE, version, strict, chunks) == run(compiled, version, strict, chunks)


def outcome(call, mod):
    try:
        return ("ok", bytes(call(mod)))
    except (ValueError, TypeError) as exc:
        return (type(exc).__name__, str(exc) if isinstance(exc, ValueError) else "")


wide = st.one_of(
    st.integers(-5, 70_000), st.integers(-(2**66), 2**66), st.sampled_from([U32, U32 + 1])
)


@SETTINGS
@given(a=wide, b=wide, c=wide, d=wide)
def test_twins_agree_on_encoder_arguments(compiled, a, b, c, d):
    calls = [
        lambda m: m.encode_header(a, b, c, d),
        lambda m: m.encode_upd(a, b, c, d),
        lambda m: m.encode_syn(a, b),
        lambda m: m.encode_fin(a, b),
        lambda m: m.encode_nop(a),
        lambda m: m.encode_data(a, b, b"abc" * 7, c),
    ]
    for call in calls:
        assert outcome(call, PURE) == outcome(call, compiled)
