"""The websocket connection state machine (proto/wsconnection.py), with no socket and no loop.

Bytes in, events out: data messages, frames to send (decoded here to check their opcode,
payload and mask direction), EOF on the peer's close frame, CLOSE when the handshake is
complete, FAIL with the status codes and reasons of today's log lines (1002, 1007, 1009),
ABORT when keepalive found the peer silent. The last test drives WSEndpoint (the adapter,
over an inner endpoint that records what it is given) and the state machine's reference
loop with the same bytes: the adapter's inlined data path must do what the machine says.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import Recorder

from gostfast._core import select
from gostfast.endpoint import Endpoint
from gostfast.proto.wsconnection import (
    ABORT,
    CLOSE,
    EOF,
    FAIL,
    SEND,
    WSConnection,
    WSProtocolError,
)
from gostfast.proto.wsdeflate import Deflater
from gostfast.transport.wsconn import WSEndpoint

ws = select("wsframe")
MASK = b"\x01\x02\x03\x04"


def from_client(op: int, payload: bytes = b"", fin: bool = True, rsv1: bool = False) -> bytes:
    """A frame as a client sends it (masked): what a server-side connection receives."""
    return bytes(ws.build_frame(op, payload, fin, MASK, rsv1))


def from_server(op: int, payload: bytes = b"", fin: bool = True) -> bytes:
    """A frame as a server sends it (unmasked): what a client-side connection receives."""
    return bytes(ws.build_frame(op, payload, fin, None))


def close_frame(code: int | None, reason: str = "", *, to_server: bool = True) -> bytes:
    payload = ws.build_close_payload(code, reason)
    return from_client(ws.OP_CLOSE, payload) if to_server else from_server(ws.OP_CLOSE, payload)


def sent(events: list, *, by_server: bool = True) -> list[tuple[int, bytes]]:
    """The frames of the SEND events, decoded by the peer's parser (which checks the mask)."""
    peer = ws.FrameParser(not by_server)
    frames = []
    for kind, value in events:
        if kind == SEND:
            frames += [(op, bytes(p)) for op, p in peer.feed(value)]
    return frames


def kinds(events: list) -> list[int]:
    return [kind for kind, _ in events]


def server(**options) -> WSConnection:
    return WSConnection(True, **options)


# ------------------------------------------------------------------ data messages
def test_data_messages_pass_through_in_order():
    conn = server()
    chunk = (
        from_client(ws.OP_BINARY, b"one")
        + from_client(ws.OP_TEXT, b"two")  # text counts as data (GOST)
        + from_client(ws.OP_BINARY, b"")  # empty: the adapter skips it
        + from_client(ws.OP_BINARY, b"thr", fin=False)
        + from_client(ws.OP_CONT, b"ee")
    )
    events = conn.receive_events(chunk, now=5.0)
    assert [(op, bytes(p)) for op, p in events] == [
        (ws.OP_BINARY, b"one"),
        (ws.OP_TEXT, b"two"),
        (ws.OP_BINARY, b""),
        (ws.OP_BINARY, b"three"),
    ]
    assert conn.last_received == 5.0


def test_receive_data_hands_out_the_parsers_events_for_receive_frame():
    conn = server()
    events = conn.receive_data(from_client(ws.OP_BINARY, b"a") + from_client(ws.OP_PING, b"p"), 0)
    assert [(op, bytes(p)) for op, p in events] == [(ws.OP_BINARY, b"a"), (ws.OP_PING, b"p")]
    assert sent(conn.receive_frame(*events[1])) == [(ws.OP_PONG, b"p")]


# ---------------------------------------------------------------------- pings
@pytest.mark.parametrize("is_server", [True, False], ids=["server", "client"])
def test_ping_is_answered_with_its_payload(is_server):
    conn = WSConnection(is_server)
    ping = from_client(ws.OP_PING, b"hi") if is_server else from_server(ws.OP_PING, b"hi")
    events = conn.receive_events(ping, 0)
    assert kinds(events) == [SEND]
    assert sent(events, by_server=is_server) == [(ws.OP_PONG, b"hi")]  # masked by a client


def test_pongs_only_refresh_liveness():
    conn = server(now=1.0)
    assert conn.receive_events(from_client(ws.OP_PONG, b"x"), 9.0) == []
    assert conn.last_received == 9.0


def test_one_pong_is_owed_while_writing_is_paused_for_the_latest_ping():
    conn = server()
    conn.pause_writing()
    pings = b"".join(from_client(ws.OP_PING, b"p%d" % i) for i in range(50))
    assert conn.receive_events(pings, 0) == []  # nothing queued behind a full buffer
    assert sent(conn.resume_writing()) == [(ws.OP_PONG, b"p49")]
    assert conn.resume_writing() == []  # owed once
    assert sent(conn.receive_events(from_client(ws.OP_PING, b"again"), 0)) == [
        (ws.OP_PONG, b"again")
    ]


def test_no_pong_after_our_close_frame():
    conn = server()
    conn.pause_writing()
    conn.receive_events(from_client(ws.OP_PING, b"owed"), 0)
    conn.send_eof()
    assert conn.resume_writing() == []  # the owed pong is not sent behind our close frame
    assert conn.receive_events(from_client(ws.OP_PING, b"late"), 0) == []


# ------------------------------------------------------------- close handshake
def test_close_handshake_peer_first():
    conn = server()
    events = conn.receive_events(close_frame(1000), 0)
    assert events == [(EOF, (1000, ""))]  # the stream above ends; we answer when done sending
    assert (conn.close_received, conn.close_code, conn.close_sent) == (True, 1000, False)
    events = conn.send_eof()
    assert sent(events) == [(ws.OP_CLOSE, ws.build_close_payload(1000))]
    assert kinds(events) == [SEND, CLOSE]  # handshake complete: the transport closes


def test_close_handshake_we_first():
    conn = server()
    events = conn.send_eof()
    assert kinds(events) == [SEND]
    assert sent(events) == [(ws.OP_CLOSE, ws.build_close_payload(1000))]
    assert not conn.can_send  # data written now is dropped
    assert conn.send_eof() == []
    assert conn.receive_events(from_client(ws.OP_BINARY, b"still read"), 0) == [
        (ws.OP_BINARY, b"still read")
    ]  # reading goes on until the peer's close frame
    assert conn.receive_events(close_frame(1000), 0) == [(EOF, (1000, "")), (CLOSE, None)]


def test_close_handshake_between_a_client_and_a_server():
    client, srv = WSConnection(False), WSConnection(True)
    to_server = client.send_eof()  # the client's sending is done (half-close)
    assert srv.receive_events(b"".join(v for _, v in to_server), 0) == [(EOF, (1000, ""))]
    back = srv.send_eof()
    assert kinds(back) == [SEND, CLOSE]
    assert client.receive_events(b"".join(v for k, v in back if k == SEND), 0) == [
        (EOF, (1000, "")),
        (CLOSE, None),
    ]
    assert client.close_code == srv.close_code == 1000


def test_close_sends_a_normal_closure_once_then_closes():
    conn = server()
    events = conn.close()
    assert kinds(events) == [SEND, CLOSE]
    assert sent(events) == [(ws.OP_CLOSE, ws.build_close_payload(1000))]
    assert conn.close() == [(CLOSE, None)]


def test_nothing_is_sent_once_the_transport_is_gone():
    conn = server()
    conn.connection_lost()
    assert (conn.closed, conn.can_send) == (True, False)
    assert conn.send_eof() == []
    assert conn.close() == [(CLOSE, None)]
    assert conn.receive_events(from_client(ws.OP_BINARY, b"x"), 0) == []


# gorilla echoes the code it received, or sends an empty close payload for none (1005);
# GOST itself closes the socket without a close frame; codes 1001, 1011 and the
# application range are what other peers say
@pytest.mark.parametrize(
    "payload, code, reason",
    [
        (b"", None, ""),
        (ws.build_close_payload(1000), 1000, ""),
        (ws.build_close_payload(1001, "going away"), 1001, "going away"),
        (ws.build_close_payload(1011), 1011, ""),
        (ws.build_close_payload(3000), 3000, ""),
        (ws.build_close_payload(4999, "app"), 4999, "app"),
    ],
)
def test_close_codes_peers_send_end_the_stream(payload, code, reason):
    conn = server()
    assert conn.receive_events(from_client(ws.OP_CLOSE, payload), 0) == [(EOF, (code, reason))]
    assert conn.close_code == code


# ---------------------------------------------------------------- protocol errors
def _rsv2_frame() -> bytes:
    frame = bytearray(from_client(ws.OP_BINARY, b"x"))
    frame[0] |= 0x20
    return bytes(frame)


def _compressed(body: bytes) -> bytes:
    return from_client(ws.OP_BINARY, body, rsv1=True)


FAILURES = [
    # (connection options, bytes in, close code, reason: what the log line says today)
    ({}, from_server(ws.OP_BINARY, b"x"), 1002, "unmasked frame from a client"),
    ({"is_server": False}, from_client(ws.OP_BINARY, b"x"), 1002, "masked frame from a server"),
    ({}, _rsv2_frame(), 1002, "reserved bits set without a negotiated extension"),
    ({}, _compressed(b"x"), 1002, "reserved bits set without a negotiated extension"),
    ({}, from_client(3, b""), 1002, "unknown opcode 3"),
    ({}, from_client(ws.OP_CONT, b"x"), 1002, "continuation frame without a message"),
    (
        {},
        from_client(ws.OP_BINARY, b"a", fin=False) + from_client(ws.OP_BINARY, b"b"),
        1002,
        "new data frame inside a fragmented message",
    ),
    ({}, bytes([ws.OP_PING, 0x80]) + MASK, 1002, "fragmented control frame"),  # FIN clear
    ({}, from_client(ws.OP_CLOSE, b"\x03"), 1002, "close frame with a 1-byte payload"),
    ({}, from_client(ws.OP_CLOSE, (1005).to_bytes(2, "big")), 1002, "invalid close code 1005"),
    ({}, from_client(ws.OP_CLOSE, b"\x03\xe8\xff"), 1007, "close reason is not valid UTF-8"),
    ({"max_message_size": 10}, from_client(ws.OP_BINARY, bytes(11)), 1009, "message too big"),
    (
        {"max_message_size": 10},
        from_client(ws.OP_BINARY, bytes(6), fin=False) + from_client(ws.OP_CONT, bytes(6)),
        1009,
        "message too big",
    ),
    (
        {"compressed": True, "max_message_size": 100},
        _compressed(bytes(Deflater().message(bytes(101)))),
        1009,
        "compressed message inflates to over 100 bytes",
    ),
]


@pytest.mark.parametrize("options, data, code, reason", FAILURES, ids=[f[3] for f in FAILURES])
def test_protocol_errors_fail_with_their_code_and_reason(options, data, code, reason):
    options = dict(options)
    is_server = options.pop("is_server", True)
    conn = WSConnection(is_server, **options)
    events = conn.receive_events(data, 0)
    assert kinds(events) == [SEND, FAIL]
    assert sent(events, by_server=is_server) == [(ws.OP_CLOSE, ws.build_close_payload(code))]
    exc = events[1][1]
    assert isinstance(exc, WSProtocolError)
    assert (exc.close_code, exc.reason) == (code, reason)
    assert (conn.closed, conn.can_send, conn.reading) == (True, False, False)
    assert conn.receive_events(from_client(ws.OP_BINARY, b"more"), 0) == []
    assert conn.fail(1002, "again") == []  # failed once


def test_corrupt_deflate_data_is_1007():
    conn = server(compressed=True)
    events = conn.receive_events(_compressed(b"\xff\xfe\xfd"), 0)
    assert kinds(events) == [SEND, FAIL]
    assert events[1][1].close_code == 1007
    assert events[1][1].reason.startswith("compressed message does not inflate: ")


def test_compressed_messages_are_inflated_and_plain_ones_passed_on():
    conn = server(compressed=True)
    chunk = _compressed(bytes(Deflater().message(b"hello"))) + from_client(ws.OP_BINARY, b"raw")
    assert [(op, bytes(p)) for op, p in conn.receive_events(chunk, 0)] == [
        (ws.OP_BINARY, b"hello"),
        (ws.OP_BINARY, b"raw"),
    ]


def test_messages_before_a_bad_frame_are_delivered_first():
    conn = server()
    events = conn.receive_events(from_client(ws.OP_BINARY, b"ok") + from_server(2, b"bad"), 0)
    assert kinds(events) == [ws.OP_BINARY, SEND, FAIL]
    assert bytes(events[0][1]) == b"ok"


def test_a_failure_after_our_close_frame_sends_no_second_one():
    conn = server()
    conn.send_eof()
    events = conn.receive_events(from_client(3), 0)
    assert kinds(events) == [FAIL]
    assert events[0][1].close_code == 1002


# ------------------------------------------------------------ after the close frame
def test_nothing_after_the_peers_close_frame_is_read():
    conn = server()
    chunk = (
        from_client(ws.OP_BINARY, b"before")
        + close_frame(1000)
        + from_client(ws.OP_BINARY, b"after")
        + from_client(ws.OP_PING, b"p")
        + from_client(3)  # not even a bad frame fails the connection now
    )
    events = conn.receive_events(chunk, 0)
    assert [(k, bytes(v) if k > 0 else v) for k, v in events] == [
        (ws.OP_BINARY, b"before"),
        (EOF, (1000, "")),
    ]
    assert conn.receive_events(from_client(ws.OP_BINARY, b"later"), 0) == []
    assert not conn.closed  # the transport is ours to close, once our sending is done
    assert kinds(conn.send_eof()) == [SEND, CLOSE]


# ------------------------------------------------------------------- keepalive
def test_keepalive_pings_and_aborts_after_two_ttls_of_silence():
    conn = WSConnection(False)
    conn.start_keepalive(10.0, now=100.0)
    events, delay = conn.keepalive_due(105.0)
    assert sent(events, by_server=False) == [(ws.OP_PING, b"")] and delay == 10.0
    conn.receive_events(from_server(ws.OP_PONG), 112.0)  # any frame proves the peer alive
    events, delay = conn.keepalive_due(125.0)
    assert kinds(events) == [SEND] and delay == 7.0  # the tick lands at 2 x ttl of silence
    events, delay = conn.keepalive_due(132.0)
    assert events == [(ABORT, 20.0)] and delay is None


def test_keepalive_ticks_stop_when_the_connection_is_gone():
    conn = server()
    conn.start_keepalive(1.0, now=0.0)
    conn.connection_lost()
    assert conn.keepalive_due(0.5) == ([], None)


# ----------------------------------------------- the adapter does what the machine says
class _RecordingInner(Endpoint):
    """An inner endpoint that records what the websocket writes and whether it closed it."""

    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.closed_by_ws = False

    def write(self, data) -> None:
        self.out += data

    def writelines(self, chunks: list) -> None:
        for c in chunks:
            self.out += c

    def close(self) -> None:
        self.closed_by_ws = True

    def abort(self) -> None:
        self.closed_by_ws = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


FRAMES = [
    from_client(ws.OP_BINARY, b"data"),
    from_client(ws.OP_TEXT, b"text"),
    from_client(ws.OP_BINARY, b""),
    from_client(ws.OP_BINARY, b"frag", fin=False) + from_client(ws.OP_CONT, b"ment"),
    from_client(ws.OP_PING, b"ping"),
    from_client(ws.OP_PONG, b"pong"),
    close_frame(1000),
    close_frame(1001, "bye"),
    from_client(ws.OP_CLOSE, b"\x03"),
    from_server(ws.OP_BINARY, b"unmasked"),
    from_client(3),
]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(FRAMES), max_size=8), st.data())
def test_ws_endpoint_agrees_with_the_state_machine(frames, data):
    wire = b"".join(frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=4)))
    chunks = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]

    conn = server()
    want_data, want_sent, want_eof, want_fail = bytearray(), bytearray(), False, None
    for chunk in chunks:
        for kind, value in conn.receive_events(chunk, 0):
            if kind > 0:
                want_data += value
            elif kind == SEND:
                want_sent += value
            elif kind == EOF:
                want_eof = True
            elif kind == FAIL:
                want_fail = (value.close_code, value.reason)

    inner, sink = _RecordingInner(), Recorder()
    endpoint = WSEndpoint(inner, is_server=True)
    endpoint.attach(sink)
    for chunk in chunks:
        endpoint.on_data(inner, chunk)
    assert bytes(sink.data) == bytes(want_data)
    assert bytes(inner.out) == bytes(want_sent)
    assert sink.eof == want_eof
    got = sink.close_exc
    assert ((got.close_code, got.reason) if got is not None else None) == want_fail
