"""The fused ws data path's twins agree: same bytes to the same transports, same calls.

Both twins run the same random session against recording transports and protocols: chunks
from the plain side (any size, around every frame length form and around ``max_frame``),
chunks of a websocket stream cut anywhere (data frames, fragmented messages, pings, pongs,
close frames, frames that break the protocol, garbage), either connection lost at any point,
EOF and flow-control events, a write buffer that is sometimes non-empty (a payload view then
has to be copied). Each twin's ``WSConnection`` is the real proto/wsconnection.py one, and the
control callback runs its real ``receive_frame``, so the state both pipes read (``reading``,
``can_send``) moves as it does in a tunnel. The masks come from one seeded source, so even a
client's masked frames must be byte-identical.

On top of the twins' agreement, each twin's output is checked against the rule it implements:
every frame written is one binary message holding exactly the plain chunk (unmasked with the
key the frame carries), and the plain side receives exactly the data messages' payloads.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gostfast._core as core
from gostfast.proto.wsconnection import SEND, WSConnection

CODEC = "wspipe"
PURE = core.pure(CODEC)
WSFRAME = core.pure("wsframe")

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SIZES = [0, 1, 125, 126, 127, 4095, 4096, 4097, 65535, 65536, 65537]
sizes = st.one_of(st.sampled_from(SIZES), st.integers(0, 300))


class Transport:
    """Records what is written; ``backlog`` is what get_write_buffer_size reports."""

    def __init__(self, log: list, name: str) -> None:
        self.log = log
        self.name = name
        self.backlog = 0

    def write(self, data) -> None:
        # what the plain side gets may be a view (its type says whether it was copied);
        # a frame's type (bytes or bytearray) is the twin's own business
        kind = type(data).__name__ if self.name == "plain" else "frame"
        self.log.append((self.name, "write", kind, bytes(data)))

    def writelines(self, chunks) -> None:
        self.log.append((self.name, "writelines", [bytes(c) for c in chunks]))

    def get_write_buffer_size(self) -> int:
        return self.backlog


class Proto:
    """The endpoint that was the transport's protocol: records what is forwarded to it."""

    def __init__(self, log: list, name: str) -> None:
        self.log = log
        self.name = name

    def eof_received(self):
        self.log.append((self.name, "eof"))
        return True

    def connection_lost(self, exc) -> None:
        self.log.append((self.name, "lost", repr(exc)))

    def pause_writing(self) -> None:
        self.log.append((self.name, "pause"))

    def resume_writing(self) -> None:
        self.log.append((self.name, "resume"))


def frame(rng: random.Random, masked: bool) -> bytes:
    """One frame, usually valid for the receiver, sometimes not."""
    kind = rng.random()
    key = rng.randbytes(4) if masked else None
    if kind < 0.5:
        payload = rng.randbytes(rng.choice([0, 1, 5, 64, 125, 126, 300, 4097]))
        return bytes(WSFRAME.build_frame(rng.choice([1, 2]), payload, mask=key))
    if kind < 0.65:  # a fragmented message, maybe with a ping inside
        a, b = rng.randbytes(rng.randint(0, 50)), rng.randbytes(rng.randint(0, 50))
        ping = (
            bytes(WSFRAME.build_frame(9, rng.randbytes(3), mask=key)) if rng.random() < 0.5 else b""
        )
        return (
            bytes(WSFRAME.build_frame(2, a, fin=False, mask=key))
            + ping
            + bytes(WSFRAME.build_frame(0, b, mask=key))
        )
    if kind < 0.8:
        op = rng.choice([9, 10])
        return bytes(WSFRAME.build_frame(op, rng.randbytes(rng.randint(0, 125)), mask=key))
    if kind < 0.85:
        code = rng.choice([b"", b"\x03\xe8", b"\x03\xe9bye", b"\x00\x01", b"\x03"])
        return bytes(WSFRAME.build_frame(8, code, mask=key))
    if kind < 0.93:  # the wrong masking for this end, or reserved bits / opcodes
        wrong = bytes(WSFRAME.build_frame(2, b"xy", mask=None if masked else b"abcd"))
        bad = bytearray(WSFRAME.build_frame(2, b"xy", mask=key))
        bad[0] |= rng.choice([0x10, 0x20, 0x40]) if rng.random() < 0.5 else 0
        bad[0] = (bad[0] & 0xF0) | rng.choice([2, 3, 7, 11, 15])
        return rng.choice([wrong, bytes(bad)])
    return rng.randbytes(rng.randint(1, 20))


@st.composite
def sessions(draw):
    """(is_server, max_frame, max_message_size, seed, steps)."""
    is_server = draw(st.booleans())
    max_frame = draw(st.sampled_from([0, 0, 1, 100, 4096]))
    max_message = draw(st.sampled_from([0, 0, 200]))
    seed = draw(st.integers(0, 2**32))
    steps = []
    for _ in range(draw(st.integers(1, 14))):
        kind = draw(
            st.sampled_from(
                [
                    "plain",
                    "plain",
                    "ws",
                    "ws",
                    "ws",
                    "backlog",
                    "eof",
                    "flow",
                    "lost_ws",
                    "lost_plain",
                ]
            )
        )
        if kind == "plain":
            steps.append(("plain", draw(sizes)))
        elif kind == "ws":
            steps.append(
                ("ws", draw(st.integers(1, 4)), draw(st.lists(st.integers(0, 9000), max_size=4)))
            )
        elif kind == "backlog":
            steps.append(("backlog", draw(st.sampled_from([0, 1, 70000]))))
        else:
            steps.append((kind, draw(st.booleans())))
    return is_server, max_frame, max_message, seed, steps


def sent(frame_bytes, is_server: bool) -> list:
    """What a frame our end sent says: (opcode, payload) with the mask taken off."""
    return [(op, bytes(p)) for op, p in WSFRAME.FrameParser(not is_server).feed(frame_bytes)]


class Sink:
    """An smux session's place for a carrier: records each payload it is handed."""

    def __init__(self, log: list) -> None:
        self.log = log

    def on_data(self, ep, payload) -> None:
        self.log.append(("sink", ep, type(payload).__name__, bytes(payload)))


class Carried:
    """A carrier driven like a pipe: its ``write`` stands where the plain side's bytes were."""

    def __init__(self, carrier, log: list) -> None:
        self.carrier = carrier
        self.ws_side = carrier.ws_side
        self.plain_side = self  # the plain steps call data_received here
        self.log = log

    def data_received(self, data) -> None:
        self.carrier.write(data)

    def eof_received(self):
        return None

    def connection_lost(self, exc) -> None:
        self.log.append(("session", "lost"))

    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        pass


def run(impl, session, carrier: bool = False):
    """One twin through ``session``: the log of every call and the final counts and state
    (``carrier``: a WSCarrier, whose sink is a recorder and whose writes stand in for the
    plain side's chunks)."""
    is_server, max_frame, max_message, seed, steps = session
    rng = random.Random(seed)
    mask_rng = random.Random(seed + 1)
    impl.set_random_source(mask_rng.randbytes)
    log: list = []
    conn = WSConnection(is_server, max_message_size=max_message)
    ws_t, plain_t = Transport(log, "ws"), Transport(log, "plain")

    def on_control(op, payload):
        events = conn.receive_frame(op, payload)
        # a frame the connection sends (pong, close) carries a mask of its own pool: compare
        # what it says, not its bytes
        said = [(k, sent(v, is_server) if k == SEND else repr(v)) for k, v in events]
        log.append(("control", op, payload if type(payload) is tuple else bytes(payload), said))

    def write_fragmented(data):
        log.append(("fragmented", bytes(data)))

    if carrier:
        link = impl.WSCarrier(
            conn,
            is_server,
            max_frame,
            ws_t,
            Proto(log, "ws"),
            Sink(log),
            "the-endpoint",
            on_control,
            write_fragmented,
        )
        pipe = Carried(link, log)
    else:
        pipe = impl.WSPipe(
            conn,
            is_server,
            max_frame,
            ws_t,
            Proto(log, "ws"),
            plain_t,
            Proto(log, "plain"),
            on_control,
            write_fragmented,
        )
    ws_side, plain_side = pipe.ws_side, pipe.plain_side
    lost = {"ws": False, "plain": False}
    for step in steps:
        kind = step[0]
        if kind == "plain" and not lost["plain"]:
            data = rng.randbytes(step[1])
            plain_side.data_received(memoryview(data) if rng.random() < 0.2 else data)
        elif kind == "ws" and not lost["ws"]:
            stream = b"".join(frame(rng, is_server) for _ in range(step[1]))
            cuts = sorted({0, len(stream), *(c % (len(stream) + 1) for c in step[2])})
            for a, b in zip(cuts[:-1], cuts[1:], strict=True):
                ws_side.data_received(stream[a:b])
        elif kind == "backlog":
            plain_t.backlog = ws_t.backlog = step[1]
        elif kind == "eof":
            side = ws_side if step[1] else plain_side
            log.append(("eof returned", side.eof_received()))
        elif kind == "flow":
            (ws_side if rng.random() < 0.5 else plain_side).pause_writing()
            (ws_side if step[1] else plain_side).resume_writing()
        elif kind in ("lost_ws", "lost_plain"):
            name = kind[5:]
            if not lost[name]:
                lost[name] = True
                (ws_side if name == "ws" else plain_side).connection_lost(
                    None if step[1] else ConnectionResetError("gone")
                )
    state = (conn.reading, conn.can_send, conn.closed, conn.close_code, conn.close_received)
    if carrier:
        return log, pipe.carrier.n_from_ws, state
    return log, (pipe.n_from_ws, pipe.n_from_plain), state


@SETTINGS
@given(session=sessions())
def test_twins_write_the_same_bytes_and_make_the_same_calls(compiled, session):
    assert run(compiled, session) == run(PURE, session)


@SETTINGS
@given(session=sessions())
def test_carrier_twins_hand_over_and_write_the_same(compiled, session):
    assert run(compiled, session, carrier=True) == run(PURE, session, carrier=True)


@SETTINGS
@given(
    sizes_=st.lists(sizes, min_size=1, max_size=4),
    is_server=st.booleans(),
    seed=st.integers(0, 2**32),
)
def test_a_carrier_hands_each_message_whole_and_frames_each_write(impl, sizes_, is_server, seed):
    rng = random.Random(seed)
    payloads = [rng.randbytes(n) for n in sizes_]
    key = (lambda: rng.randbytes(4)) if is_server else (lambda: None)
    stream = b"".join(bytes(WSFRAME.build_frame(2, p, mask=key())) for p in payloads)
    log: list = []
    carrier = impl.WSCarrier(
        WSConnection(is_server),
        is_server,
        0,
        Transport(log, "ws"),
        Proto(log, "ws"),
        Sink(log),
        "ep",
        lambda op, p: log.append(("control", op)),
        log.append,
    )
    carrier.ws_side.data_received(stream)
    assert [e[3] for e in log] == [p for p in payloads if p]
    assert all(e[:2] == ("sink", "ep") for e in log)
    log.clear()
    for p in payloads:
        carrier.write(p)
    written = [e[-1] if e[1] == "write" else b"".join(e[-1]) for e in log]
    assert [WSFRAME.FrameParser(not is_server).feed(w)[0][1] for w in written] == [
        p for p in payloads if p
    ]


def unmask(frame_bytes: bytes) -> tuple[int, bytes]:
    """(opcode, payload) of one whole frame, unmasking with its own key."""
    parser = WSFRAME.FrameParser(True)
    ((op, payload),) = parser.feed(frame_bytes)
    return op, bytes(payload)


@SETTINGS
@given(size=sizes, is_server=st.booleans(), seed=st.integers(0, 2**32))
def test_a_plain_chunk_is_one_binary_frame_of_it(impl, size, is_server, seed):
    session = (is_server, 0, 0, seed, [("plain", size)])
    log, (n_ws, n_plain), _ = run(impl, session)
    data = random.Random(seed).randbytes(size)
    assert n_plain == size and n_ws == 0
    if size == 0:
        assert log == []
        return
    ((side, call, *rest),) = log
    assert side == "ws"
    wire = b"".join(rest[-1]) if call == "writelines" else rest[-1]
    assert call == ("writelines" if is_server and size > PURE.BIG_SERVER_WRITE else "write")
    if is_server:
        assert unmask_server(wire) == (2, data)
    else:
        assert unmask(wire) == (2, data)


def unmask_server(frame_bytes: bytes) -> tuple[int, bytes]:
    ((op, payload),) = WSFRAME.FrameParser(False).feed(frame_bytes)
    return op, bytes(payload)


@SETTINGS
@given(
    sizes_=st.lists(sizes, min_size=1, max_size=4),
    is_server=st.booleans(),
    cut=st.integers(0, 9000),
)
def test_data_messages_reach_the_plain_side_whole(impl, sizes_, is_server, cut):
    rng = random.Random(cut)
    payloads = [rng.randbytes(n) for n in sizes_]
    key = (lambda: rng.randbytes(4)) if is_server else (lambda: None)
    stream = b"".join(bytes(WSFRAME.build_frame(2, p, mask=key())) for p in payloads)
    log: list = []
    conn = WSConnection(is_server)
    pipe = impl.WSPipe(
        conn,
        is_server,
        0,
        Transport(log, "ws"),
        Proto(log, "ws"),
        Transport(log, "plain"),
        Proto(log, "plain"),
        lambda op, p: log.append(("control", op)),
        log.append,
    )
    cut %= len(stream) + 1
    pipe.ws_side.data_received(stream[:cut])
    pipe.ws_side.data_received(stream[cut:])
    got = b"".join(entry[3] for entry in log if entry[:2] == ("plain", "write"))
    assert got == b"".join(payloads)
    assert pipe.n_from_ws == len(got)
    assert all(entry[:2] == ("plain", "write") for entry in log)


def test_losing_both_connections_lets_go_of_everything(impl):
    """After both losses nothing in the pipe points back at the endpoints (no cycle)."""
    log: list = []
    pipe = impl.WSPipe(
        WSConnection(False),
        False,
        0,
        Transport(log, "ws"),
        Proto(log, "ws"),
        Transport(log, "plain"),
        Proto(log, "plain"),
        lambda op, p: None,
        log.append,
    )
    ws_side, plain_side = pipe.ws_side, pipe.plain_side
    ws_side.connection_lost(None)
    plain_side.connection_lost(None)
    assert log == [("ws", "lost", "None"), ("plain", "lost", "None")]
    assert pipe.ws_transport is None and pipe.plain_transport is None
    assert pipe.ws_side is None and pipe.plain_side is None
    assert ws_side.proto is None and plain_side.proto is None
    ws_side.data_received(b"late")  # nothing happens, nothing breaks
    assert log == [("ws", "lost", "None"), ("plain", "lost", "None")]


@pytest.mark.parametrize("bad", [b"", bytearray(3)])
def test_a_random_source_must_give_bytes(impl, bad):
    impl.set_random_source(lambda n: bad)
    try:
        pipe = impl.WSPipe(
            WSConnection(False),
            False,
            0,
            Transport([], "ws"),
            Proto([], "ws"),
            Transport([], "plain"),
            Proto([], "plain"),
            lambda op, p: None,
            print,
        )
        with pytest.raises(ValueError, match="random source"):
            pipe.plain_side.data_received(b"x")
    finally:
        import os

        impl.set_random_source(os.urandom)
