"""The smux session engine over real socketpair-backed TCPEndpoints (no network mocks).

One end of a socketpair carries the Session under test; the other end is a plain
TCPEndpoint in handshake mode that plays the peer: it reads the exact bytes the session
writes and writes hand-built smux frames. Wire vectors are those of
shared/spec/gost-websocket.md section 3 and docs/smux-protocol.md.

Each test runs with the session's frame codec set to the pure twin and to the compiled one.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
from loops import run
from support import Recorder

import gostfast.mux.session as session_mod
from gostfast.config.errors import ConfigError
from gostfast.endpoint import TCPEndpoint
from gostfast.mux.config import MuxOptions, SmuxConfig
from gostfast.mux.session import GoAway, Session, SessionClosed

U32 = 0xFFFFFFFF


#: the codec of the conftest ``impl`` fixture (each twin in turn)
CODEC = "smux"


@pytest.fixture
def smux(impl, monkeypatch):
    """The codec the session module uses for this test (pure or compiled)."""
    monkeypatch.setattr(session_mod, "smux", impl)
    return impl


def h(text: str) -> bytes:
    return bytes.fromhex(text)


QUIET = dict(keepalive_disabled=True)


async def endpoints() -> tuple[TCPEndpoint, TCPEndpoint]:
    """Two TCPEndpoints joined by a socketpair: (session side, peer side)."""
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    _, ea = await loop.create_connection(TCPEndpoint, sock=a)
    _, eb = await loop.create_connection(TCPEndpoint, sock=b)
    return ea, eb


async def read_frame(peer: TCPEndpoint, timeout: float = 5.0) -> tuple[int, int, int, bytes]:
    """One smux frame as the peer sees it: (ver, cmd, sid, payload)."""
    head = await asyncio.wait_for(peer.readexactly(8), timeout)
    ver, cmd = head[0], head[1]
    length = int.from_bytes(head[2:4], "little")
    sid = int.from_bytes(head[4:8], "little")
    payload = await asyncio.wait_for(peer.readexactly(length), timeout) if length else b""
    return ver, cmd, sid, payload


async def read_raw(peer: TCPEndpoint, n: int, timeout: float = 5.0) -> bytes:
    return await asyncio.wait_for(peer.readexactly(n), timeout)


async def assert_silent(peer: TCPEndpoint, wait: float = 0.3) -> None:
    """Nothing more arrives from the session for ``wait`` seconds."""
    try:
        got = await asyncio.wait_for(peer.read(65536), wait)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"unexpected bytes from the session: {got[:64].hex()} ({len(got)} B)")


async def until(cond, timeout: float = 5.0, what: str = "condition") -> None:
    end = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def recording_server(conn, cfg=None, *, paused: bool = False):
    """A server session whose accepted streams deliver to one Recorder (paused from the
    start if asked): (session, {sid: stream}, recorder)."""
    streams, rec = {}, Recorder()

    def on_stream(st):
        streams[st.sid] = st
        st.attach(rec)
        if paused:
            st.pause_reading()

    s = Session(conn, cfg or SmuxConfig(**QUIET), client=False, on_stream=on_stream)
    return s, streams, rec


#: what every v1 session writes first: a NOP for sid 1, "this end is gostfast": it credits
#: (v1) and half-closes (issue 19); a v2 session writes the same NOP in v2
ANNOUNCE = h("0103000001000000")


async def announced(peer: TCPEndpoint, version: int = 1) -> None:
    """Read the session's first frame, its announcement."""
    assert await read_raw(peer, 8) == bytes([version]) + ANNOUNCE[1:]


def close_all(*eps: TCPEndpoint) -> None:
    for ep in eps:
        ep.abort()


# ------------------------------------------------------------------- stream ids and wire bytes


def test_client_stream_ids_are_3_5_7_and_syn_bytes(smux):
    async def main():
        conn, peer = await endpoints()
        s = Session(conn, SmuxConfig(**QUIET), client=True)
        await announced(peer)
        sids = [s.open_stream().sid for _ in range(3)]
        assert sids == [3, 5, 7]
        wire = await read_raw(peer, 24)
        assert wire == h("010000000300000001000000050000000100000007000000")
        assert sorted(s.streams) == [3, 5, 7]
        s.close()
        close_all(peer)

    run(main())


def test_syn_psh_fin_bytes_match_the_spec_vectors(smux):
    async def main():
        conn, peer = await endpoints()
        s = Session(conn, SmuxConfig(**QUIET), client=True)
        await announced(peer)
        st = s.open_stream()
        st.write(b"hello")
        st.write_eof()
        want = h("01 00 00 00 03 00 00 00")  # SYN
        want += h("01 02 05 00 03 00 00 00 68 65 6c 6c 6f")  # PSH "hello"
        want += h("01 01 00 00 03 00 00 00")  # FIN
        assert await read_raw(peer, len(want)) == want
        await assert_silent(peer)
        s.close()
        close_all(peer)

    run(main())


def test_nop_bytes_every_keepalive_interval(smux):
    async def main():
        conn, peer = await endpoints()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        s = Session(conn, SmuxConfig(keepalive_interval=0.1, keepalive_timeout=30.0), client=True)
        await announced(peer)
        nops = [await read_raw(peer, 8) for _ in range(3)]
        elapsed = loop.time() - t0
        assert nops == [h("01 03 00 00 00 00 00 00")] * 3
        assert elapsed >= 0.25, elapsed  # three intervals of 0.1 s, not fewer
        s.close()
        close_all(peer)

    run(main())


def test_write_is_split_at_max_frame_size(smux):
    async def main():
        conn, peer = await endpoints()
        s = Session(conn, SmuxConfig(max_frame_size=32768, **QUIET), client=True)
        await announced(peer)
        st = s.open_stream()
        data = bytes(range(256)) * 274  # 70144 bytes
        st.write(data)
        assert await read_frame(peer) == (1, 0, 3, b"")
        sizes, got = [], b""
        while len(got) < len(data):
            ver, cmd, sid, payload = await read_frame(peer)
            assert (ver, cmd, sid) == (1, 2, 3)
            sizes.append(len(payload))
            got += payload
        assert sizes == [32768, 32768, 70144 - 65536]
        assert got == data
        s.close()
        close_all(peer)

    run(main())


def test_server_session_accepts_syn_and_delivers_psh(smux):
    async def main():
        conn, peer = await endpoints()
        accepted = []
        s = Session(conn, SmuxConfig(**QUIET), client=False, on_stream=accepted.append)
        await announced(peer)
        peer.write(h("0100000003000000") + h("01020500030000006865") + b"llo")
        await until(lambda: accepted, what="the accepted stream")
        st = accepted[0]
        assert st.sid == 3
        assert await asyncio.wait_for(st.readexactly(5), 5) == b"hello"
        # the server answers on the same stream with a PSH for sid 3
        st.write(b"ok")
        assert await read_frame(peer) == (1, 2, 3, b"ok")
        # a SYN for a live sid is ignored; a SYN for a new sid is a new stream
        peer.write(h("0100000003000000") + h("0100000009000000"))
        await until(lambda: len(accepted) == 2, what="the second stream")
        assert accepted[1].sid == 9 and len(accepted) == 2
        s.close()
        close_all(peer)

    run(main())


# ---------------------------------------------------------------------- v2 flow control


def test_v2_upd_after_first_read_then_every_half_stream_buffer(smux):
    async def main():
        conn, peer = await endpoints()
        accepted = []
        cfg = SmuxConfig(version=2, max_stream_buffer=65536, **QUIET)
        s = Session(conn, cfg, client=False, on_stream=accepted.append)
        await announced(peer, 2)
        enc = smux
        peer.write(enc.encode_syn(2, 3) + bytes(enc.encode_data(2, 3, b"x" * 100, 32768)))
        # first read (100 bytes): UPD consumed=100, window=65536
        assert await read_raw(peer, 16) == h("02040800030000006400000000000100")
        st = accepted[0]
        assert await st.readexactly(100) == b"x" * 100
        # 32767 more bytes: below max_stream_buffer/2 since the last UPD -> no UPD
        peer.write(bytes(enc.encode_data(2, 3, b"y" * 32767, 32768)))
        await assert_silent(peer)
        # one more byte makes 32768 = max_stream_buffer/2 -> UPD consumed=100+32768
        peer.write(bytes(enc.encode_data(2, 3, b"z", 32768)))
        f = await read_frame(peer)
        assert f == (2, 4, 3, (32868).to_bytes(4, "little") + (65536).to_bytes(4, "little"))
        # then every 32768 bytes read: 8 frames of 16384 -> 4 UPDs
        consumed = 32868
        for i in range(8):
            peer.write(bytes(enc.encode_data(2, 3, bytes([i]) * 16384, 32768)))
            consumed += 16384
            if i % 2 == 1:
                f = await read_frame(peer)
                assert f == (2, 4, 3, consumed.to_bytes(4, "little") + h("00000100"))
            else:
                await assert_silent(peer, 0.1)
        s.close()
        close_all(peer)

    run(main())


def test_v2_upd_vector_consumed_65536(smux):
    async def main():
        conn, peer = await endpoints()
        cfg = SmuxConfig(version=2, max_stream_buffer=65536, **QUIET)
        s = Session(conn, cfg, client=False, on_stream=lambda st: None)
        await announced(peer, 2)
        peer.write(smux.encode_syn(2, 3) + bytes(smux.encode_data(2, 3, b"a" * 32768, 32768)))
        assert await read_raw(peer, 16) == h("02040800030000000080000000000100")
        peer.write(bytes(smux.encode_data(2, 3, b"b" * 32768, 32768)))
        # the spec's vector: UPD v2 consumed=65536 window=65536
        assert await read_raw(peer, 16) == h("02 04 08 00 03 00 00 00 00 00 01 00 00 00 01 00")
        s.close()
        close_all(peer)

    run(main())


def test_v2_paused_stream_sends_no_upd_until_it_reads(smux):
    async def main():
        conn, peer = await endpoints()
        s, streams, rec = recording_server(conn, SmuxConfig(version=2, **QUIET), paused=True)
        await announced(peer, 2)
        peer.write(smux.encode_syn(2, 3) + bytes(smux.encode_data(2, 3, b"q" * 1000, 32768)))
        await assert_silent(peer)  # queued, not read: no UPD
        assert rec.data == b""
        streams[3].resume_reading()
        assert await read_raw(peer, 16) == h("0204080003000000e803000000000100")
        assert rec.data == b"q" * 1000
        s.close()
        close_all(peer)

    run(main())


def test_v2_sender_stops_at_the_initial_peer_window_until_upd(smux):
    async def main():
        conn, peer = await endpoints()
        s = Session(conn, SmuxConfig(version=2, **QUIET), client=True)
        await announced(peer, 2)
        st = s.open_stream()
        data = bytes(i % 251 for i in range(300000))
        st.write(data)
        assert await read_frame(peer) == (2, 0, 3, b"")
        got = bytearray()
        while len(got) < 262144:
            ver, cmd, sid, payload = await read_frame(peer)
            assert (ver, cmd, sid) == (2, 2, 3)
            got += payload
        assert len(got) == 262144  # exactly the initial window
        await assert_silent(peer, 0.4)
        drain = asyncio.ensure_future(st.drain())
        await asyncio.sleep(0.05)
        assert not drain.done()  # the writer is paused
        # a UPD that opens no room keeps it stopped
        peer.write(smux.encode_upd(2, 3, 0, 262144))
        await assert_silent(peer, 0.2)
        assert not drain.done()
        # the peer read everything and now allows 65536 in flight
        peer.write(smux.encode_upd(2, 3, 262144, 65536))
        while len(got) < len(data):
            ver, cmd, sid, payload = await read_frame(peer)
            assert (ver, cmd, sid) == (2, 2, 3)
            got += payload
        assert got == data
        await asyncio.wait_for(drain, 2)
        s.close()
        close_all(peer)

    run(main())


async def window_spent(gostfast_peer: bool = False, eof: bool = False):
    """A v2 client session whose stream 3 wrote its 256 KiB window and a 4-byte tail that
    waits for window (``eof``: then write_eof); the peer read the SYN and the window.
    ``gostfast_peer``: the peer announced itself first (a half-closing gostfast end)."""
    conn, peer = await endpoints()
    s = Session(conn, SmuxConfig(version=2, **QUIET), client=True)
    await announced(peer, 2)
    if gostfast_peer:
        peer.write(bytes([2]) + ANNOUNCE[1:])
        await until(lambda: s.peer_gostfast, what="the announcement")
    st = s.open_stream()
    st.write(b"w" * 262144 + b"tail")
    if eof:
        st.write_eof()
    assert await read_frame(peer) == (2, 0, 3, b"")
    n = 0
    while n < 262144:
        n += len((await read_frame(peer))[3])
    return peer, s, st


def test_v2_fin_waits_behind_window_blocked_data(smux):
    async def main():
        peer, s, st = await window_spent(eof=True)
        await assert_silent(peer, 0.2)  # no FIN before the queued tail
        peer.write(smux.encode_upd(2, 3, 262144, 65536))
        assert await read_frame(peer) == (2, 2, 3, b"tail")
        assert await read_frame(peer) == (2, 1, 3, b"")
        s.close()
        close_all(peer)

    run(main())


def test_v2_data_waiting_for_window_ends_the_stream_at_a_smux_peer_s_fin(smux):
    """A smux peer sends no UPD after its FIN (writeV2: "future window update is
    impossible"), so what waits for window would wait for good, and the relay's source
    with it (issue 19's leak): the stream ends, sends its FIN, and the tail is dropped."""

    async def main():
        peer, s, st = await window_spent()
        assert not st.closed
        peer.write(smux.encode_fin(2, 3))
        assert await read_frame(peer) == (2, 1, 3, b"")  # our FIN, no tail
        await assert_silent(peer, 0.2)
        assert st.closed and 3 not in s.streams and not s.closed
        assert st.get_write_buffer_size() == 0
        st.write(b"more")  # a closed stream sends nothing
        await assert_silent(peer, 0.1)
        s.close()
        close_all(peer)

    run(main())


def test_v2_a_gostfast_peer_s_fin_is_a_half_close_and_lifts_the_window(smux):
    """A peer that announced itself (NOP sid 1) reads on after its FIN: the data that
    waited for window goes, unwindowed, as v1 sends after a FIN, and the stream stays."""

    async def main():
        peer, s, st = await window_spent(gostfast_peer=True)
        assert not s.peer_credits  # v2: windows are UPD's, not credits
        await assert_silent(peer, 0.2)  # windowed until the FIN
        peer.write(smux.encode_fin(2, 3))
        assert await read_frame(peer) == (2, 2, 3, b"tail")
        st.write(b"x" * 300000)  # beyond any window: sent whole
        got = 0
        while got < 300000:
            ver, cmd, sid, payload = await read_frame(peer)
            assert (ver, cmd, sid) == (2, 2, 3)
            got += len(payload)
        assert not st.closed and 3 in s.streams
        s.close()
        close_all(peer)

    run(main())


def test_v1_sender_has_no_stream_window(smux):
    async def main():
        conn, peer = await endpoints()
        s = Session(conn, SmuxConfig(version=1, **QUIET), client=True)
        st = s.open_stream()
        data = b"v" * 300000
        st.write(data)
        await read_frame(peer)
        n = 0
        while n < len(data):
            n += len((await read_frame(peer))[3])
        assert n == len(data)
        s.close()
        close_all(peer)

    run(main())


# -------------------------------------------- v1 stream credits (gostfast ends, issue 19)


def credit(sid: int) -> bytes:
    """gostfast's v1 credit: a NOP carrying the stream's sid (smux ignores any NOP)."""
    return b"\x01\x03\x00\x00" + sid.to_bytes(4, "little")


def test_v1_receiver_credits_every_64_kib_it_delivers_and_none_while_paused(smux):
    async def main():
        conn, peer = await endpoints()
        s, streams, rec = recording_server(conn, SmuxConfig(version=1, **QUIET))
        await announced(peer)
        peer.write(smux.encode_syn(1, 3) + bytes(smux.encode_data(1, 3, b"a" * 65535, 32768)))
        await until(lambda: len(rec.data) == 65535, what="65535 bytes delivered")
        await assert_silent(peer)  # one byte short of a credit
        peer.write(bytes(smux.encode_data(1, 3, b"b", 32768)))
        assert await read_raw(peer, 8) == credit(3)
        streams[3].pause_reading()
        peer.write(bytes(smux.encode_data(1, 3, b"c" * 200000, 32768)))
        await assert_silent(peer)  # held for a paused reader: not delivered, no credit
        streams[3].resume_reading()  # 200000 delivered: three more credits, one write
        assert await read_raw(peer, 24) == credit(3) * 3
        await assert_silent(peer)
        assert rec.data == b"a" * 65535 + b"b" + b"c" * 200000
        s.close()
        close_all(peer)

    run(main())


def test_v1_sender_keeps_256_kib_in_flight_once_the_peer_credits(smux):
    async def main():
        conn, peer = await endpoints()
        s = Session(conn, SmuxConfig(version=1, **QUIET), client=True)
        await announced(peer)
        st = s.open_stream()
        assert await read_frame(peer) == (1, 0, 3, b"")
        first = b"f" * 65536  # before any credit: smux v1, no window
        st.write(first)
        got = bytearray()
        while len(got) < len(first):
            got += (await read_frame(peer))[3]
        peer.write(credit(3))  # the peer delivered them: a gostfast end, windows from now
        await until(lambda: s.peer_credits, what="the credit")
        data = bytes(i % 251 for i in range(500000))
        st.write(data)
        got = bytearray()
        while len(got) < 262144:
            ver, cmd, sid, payload = await read_frame(peer)
            assert (ver, cmd, sid) == (1, 2, 3)
            got += payload
        assert len(got) == 262144  # the window
        await assert_silent(peer, 0.4)
        drain = asyncio.ensure_future(st.drain())
        await asyncio.sleep(0.05)
        assert not drain.done()  # the writer is paused, as for a full connection
        peer.write(credit(5) + credit(0))  # another stream's credit, a keepalive: no room
        await assert_silent(peer, 0.2)
        peer.write(credit(3) * 2)  # 128 KiB more delivered
        while len(got) < 262144 + 131072:
            got += (await read_frame(peer))[3]
        assert len(got) == 262144 + 131072
        await assert_silent(peer, 0.2)
        peer.write(credit(3) * 2)
        while len(got) < len(data):
            got += (await read_frame(peer))[3]
        assert got == data
        await asyncio.wait_for(drain, 2)
        s.close()
        close_all(peer)

    run(main())


def test_v1_announcement_windows_a_stream_from_its_first_byte(smux):
    """A peer's announcement (NOP sid 1) before any data: the first stream keeps 256 KiB in
    flight from byte 0. Before it, a sender learned only from the first credit, and what it
    sent meanwhile (4 MiB once, through an echo tunnel) spent the receiver's budget and hung
    the tunnel: the receiver stopped reading, and with it the credits its replies needed."""

    async def main():
        conn, peer = await endpoints()
        peer.write(ANNOUNCE)
        s = Session(conn, SmuxConfig(version=1, **QUIET), client=True)
        await announced(peer)
        await until(lambda: s.peer_credits, what="the announcement")
        st = s.open_stream()
        assert await read_frame(peer) == (1, 0, 3, b"")
        st.write(bytes(1 << 20))
        got = 0
        while got < 262144:
            got += len((await read_frame(peer))[3])
        assert got == 262144
        await assert_silent(peer, 0.3)
        s.close()
        close_all(peer)

    run(main())


def test_v1_windows_are_lifted_while_the_budget_stops_reading(smux):
    """Credits arrive on the connection a spent budget stopped reading: until it reads
    again a window-blocked stream sends as smux v1 does (an echo tunnel hung without)."""

    async def main():
        conn, peer = await endpoints()
        peer.write(ANNOUNCE)
        cfg = SmuxConfig(version=1, max_receive_buffer=65536, **QUIET)
        s = Session(conn, cfg, client=True)
        await announced(peer)
        await until(lambda: s.peer_credits, what="the announcement")
        st = s.open_stream()
        st.attach(Recorder())
        assert await read_frame(peer) == (1, 0, 3, b"")
        st.write(bytes(300000))
        got = 0
        while got < 262144:
            got += len((await read_frame(peer))[3])
        await assert_silent(peer, 0.2)  # the window: 37856 bytes wait for a credit
        st.pause_reading()  # its reader stops: what the peer sends now is charged
        peer.write(h("0102ffff03000000") + bytes(65535) + h("0102010003000000") + b"x")
        while got < 300000:  # the budget is spent: the rest goes without a credit
            got += len((await read_frame(peer))[3])
        assert got == 300000 and s._conn_read_paused
        s.close()
        close_all(peer)

    run(main())


def test_a_session_announcement_is_no_stream_s_credit(smux):
    """The announcement names no stream: a stream the peer never credited keeps its window."""

    async def main():
        conn, peer = await endpoints()
        s, streams, rec = recording_server(conn, SmuxConfig(version=1, **QUIET))
        await announced(peer)
        peer.write(h("0100000003000000") + ANNOUNCE)  # SYN 3, then an announcement
        await until(lambda: 3 in streams and s.peer_credits, what="SYN and announcement")
        assert streams[3]._room() == session_mod.INITIAL_PEER_WINDOW
        s.close()
        close_all(peer)

    run(main())


def test_v1_window_is_lifted_when_the_peer_sends_fin(smux):
    """After FIN a GOST peer has forgotten the stream: no credit may come, so the queued
    bytes go out at once (smux v1 drops them, or a half-closed peer reads them)."""

    async def main():
        conn, peer = await endpoints()
        s = Session(conn, SmuxConfig(version=1, **QUIET), client=True)
        await announced(peer)
        st = s.open_stream()
        assert await read_frame(peer) == (1, 0, 3, b"")
        peer.write(credit(7))  # a credit for no open stream still marks a crediting peer
        await until(lambda: s.peer_credits, what="the credit")
        st.write(b"x" * 300000)
        n = 0
        while n < 262144:
            n += len((await read_frame(peer))[3])
        await assert_silent(peer, 0.2)
        peer.write(smux.encode_fin(1, 3))
        while n < 300000:
            n += len((await read_frame(peer))[3])
        assert n == 300000
        s.close()
        close_all(peer)

    run(main())


def test_v2_session_ignores_stream_nops(smux):
    async def main():
        conn, peer = await endpoints()
        s = Session(conn, SmuxConfig(version=2, **QUIET), client=True)
        await announced(peer, 2)
        s.open_stream()
        peer.write(b"\x02\x03\x00\x00\x03\x00\x00\x00")
        await read_frame(peer)
        await asyncio.sleep(0.1)
        assert not s.peer_credits and not s.closed
        s.close()
        close_all(peer)

    run(main())


# ------------------------------------------------------------------------ session bucket


def test_session_bucket_pauses_the_shared_connection_and_resumes(smux):
    """Every open stream paused: reading stops as soon as the budget is spent (smux's
    recvLoop), other streams' frames wait behind, and the reader's resume frees them."""

    async def main():
        conn, peer = await endpoints()
        s, streams, rec = recording_server(
            conn, SmuxConfig(max_receive_buffer=256 * 1024, **QUIET), paused=True
        )
        chunk = bytes(range(256)) * 128  # 32768
        peer.write(smux.encode_syn(1, 3) + smux.encode_syn(1, 5))
        for _ in range(8):  # exactly 256 KiB for stream 3
            peer.write(bytes(smux.encode_data(1, 3, chunk, 32768)))
        await until(
            lambda: conn.transport is not None and not conn.transport.is_reading(),
            what="the shared connection to pause reading",
        )
        assert streams[3]._pending_bytes == 256 * 1024 and s._bucket == 0
        assert rec.data == b""
        # head-of-line: stream 5's data waits in the socket meanwhile (5 is paused too)
        peer.write(bytes(smux.encode_data(1, 5, b"after", 32768)))
        await asyncio.sleep(0.3)
        assert streams[5]._pending_bytes == 0 and not conn.transport.is_reading()
        streams[3].resume_reading()  # the paused stream reads: everything flows again
        await until(lambda: streams[5]._pending_bytes == 5, what="stream 5's data")
        assert conn.transport.is_reading()
        assert rec.data == chunk * 8
        assert streams[3]._pending_bytes == 0
        s.close()
        close_all(peer)

    run(main())


def test_a_stream_that_takes_data_lets_the_budget_overdraw_once(smux):
    """The overdraft (issue 19): while another open stream's reader takes data, a spent
    budget keeps the connection read until one more max_receive_buffer is held, so a
    reply behind the unread streams' frames still gets through; then reading stops.
    It stops at once when the last such stream pauses or gets FIN, and resumes when
    one takes data again while the overdraft has room."""

    class Sipping(Recorder):
        """Pauses its stream again after each payload while ``sip`` is set."""

        sip = False

        def on_data(self, ep, data) -> None:
            super().on_data(ep, data)
            if self.sip:
                ep.pause_reading()

    async def main():
        conn, peer = await endpoints()
        rec3, rec5 = Sipping(), Recorder()
        streams = {}

        def on_stream(st):
            streams[st.sid] = st
            st.attach(rec3 if st.sid == 3 else rec5)
            if st.sid == 3:
                st.pause_reading()

        budget = 256 * 1024
        cfg = SmuxConfig(max_receive_buffer=budget, **QUIET)
        s = Session(conn, cfg, client=False, on_stream=on_stream)
        chunk = bytes(range(256)) * 128  # 32768
        reading = lambda: conn.transport.is_reading()  # noqa: E731
        peer.write(smux.encode_syn(1, 3) + smux.encode_syn(1, 5))
        for _ in range(8):  # the budget, spent on stream 3
            peer.write(bytes(smux.encode_data(1, 3, chunk, 32768)))
        peer.write(bytes(smux.encode_data(1, 5, b"reply", 32768)))  # behind them
        await until(lambda: rec5.data == b"reply", what="stream 5's reply past the budget")
        assert s._bucket == 0 and reading()
        for _ in range(7):  # 7/8 of the overdraft
            peer.write(bytes(smux.encode_data(1, 3, chunk, 32768)))
        peer.write(bytes(smux.encode_data(1, 5, b"two", 32768)))
        await until(lambda: rec5.data == b"replytwo", what="stream 5's second reply")
        assert s._bucket == -7 * 32768 and reading()
        peer.write(bytes(smux.encode_data(1, 3, chunk, 32768)))  # the overdraft's last
        await until(lambda: not reading(), what="reading to stop at twice the budget")
        assert s._bucket == -budget and streams[3]._pending_bytes == 2 * budget
        peer.write(bytes(smux.encode_data(1, 5, b"late", 32768)))
        await asyncio.sleep(0.3)
        assert rec5.data == b"replytwo"  # held in the socket: the session holds 2x at most
        # stream 3 reads some: the overdraft has room again, and stream 5 takes data
        rec3.sip = True
        streams[3].resume_reading()  # delivers one payload, then pauses again
        await until(lambda: rec5.data == b"replytwolate", what="stream 5 after a refund")
        assert reading() and s._bucket > -budget
        # stream 5 pauses: no open stream takes data, so reading stops at once
        streams[5].pause_reading()
        assert not reading()
        streams[5].resume_reading()  # takes again: the overdraft has room, reading resumes
        assert reading()
        peer.write(smux.encode_fin(1, 5))  # no more for 5: no one takes, reading stops
        await until(lambda: not reading(), what="reading to stop after stream 5's FIN")
        rec3.sip = False
        streams[3].resume_reading()  # everything queued is delivered: the budget refills
        assert reading() and s._bucket == budget
        assert rec3.data == chunk * 16
        s.close()
        close_all(peer)

    run(main())


def test_a_stream_opened_while_reading_is_stopped_resumes_it(smux):
    """A new stream takes data, so it is a taker like any other (Session._taker_gained):
    opened while every stream is paused and the budget is spent but inside the
    overdraft, it resumes the connection's reading at once. Counted without resuming,
    reading stayed stopped until some refund, and the new stream's data with it."""

    async def main():
        conn, peer = await endpoints()
        budget = 32767  # one 32768-byte frame puts the bucket at -1
        cfg = SmuxConfig(max_receive_buffer=budget, max_stream_buffer=budget, **QUIET)
        s = Session(conn, cfg, client=True)
        await announced(peer)
        reading = lambda: conn.transport.is_reading()  # noqa: E731
        st3 = s.open_stream()
        st3.attach(Recorder())
        st3.pause_reading()  # no stream takes data now
        assert await read_frame(peer) == (1, smux.CMD_SYN, 3, b"")
        peer.write(bytes(smux.encode_data(1, 3, b"q" * 32768, 32768)))
        await until(lambda: not reading(), what="reading to stop on the spent budget")
        assert s._bucket == -1 and st3._pending_bytes == 32768
        st5 = s.open_stream()  # takes data: the bucket is inside the overdraft
        rec5 = Recorder()
        st5.attach(rec5)
        assert reading()
        assert await read_frame(peer) == (1, smux.CMD_SYN, 5, b"")
        peer.write(bytes(smux.encode_data(1, 5, b"reply", 32768)))
        await until(lambda: rec5.data == b"reply", what="the new stream's data")
        assert s._bucket == -1 and st3._pending_bytes == 32768  # 3's bytes still held
        s.close()
        close_all(peer)

    run(main())


def test_a_syn_parsed_after_reading_stopped_resumes_it(smux):
    """A received chunk is parsed to its end after the budget stops reading, so a SYN
    behind the frame that spent it opens a stream while reading is stopped. That stream
    takes data (it is not paused), so reading resumes, as for a stream opened here."""

    async def main():
        conn, peer = await endpoints()
        budget = 32767
        cfg = SmuxConfig(max_receive_buffer=budget, max_stream_buffer=budget, **QUIET)
        streams, rec = {}, Recorder()

        def on_stream(st):
            streams[st.sid] = st
            st.attach(rec)
            if st.sid == 3:
                st.pause_reading()

        s = Session(conn, cfg, client=False, on_stream=on_stream)
        reading = lambda: conn.transport.is_reading()  # noqa: E731
        # one write, read as one chunk: the SYN for 5 is parsed after reading stopped
        peer.write(
            bytes(smux.encode_syn(1, 3))
            + bytes(smux.encode_data(1, 3, b"q" * 32768, 32768))
            + bytes(smux.encode_syn(1, 5))
        )
        await until(lambda: 5 in streams, what="stream 5's SYN, in the same chunk")
        assert s._bucket == -1 and reading()
        peer.write(bytes(smux.encode_data(1, 5, b"reply", 32768)))
        await until(lambda: rec.data == b"reply", what="stream 5's data")
        s.close()
        close_all(peer)

    run(main())


def test_closing_a_paused_stream_refunds_the_bucket(smux):
    async def main():
        conn, peer = await endpoints()
        streams = {}
        rec5 = Recorder()

        def on_stream(st):
            streams[st.sid] = st
            if st.sid == 3:
                st.attach(Recorder())
                st.pause_reading()
            else:
                st.attach(rec5)

        cfg = SmuxConfig(max_receive_buffer=65536, max_stream_buffer=65536, **QUIET)
        s = Session(conn, cfg, client=False, on_stream=on_stream)
        peer.write(smux.encode_syn(1, 3) + smux.encode_syn(1, 5))
        # the budget and its overdraft (stream 5 takes data), all for stream 3
        peer.write(bytes(smux.encode_data(1, 3, b"p" * 131072, 32768)))
        await until(lambda: not conn.transport.is_reading(), what="pause")
        peer.write(bytes(smux.encode_data(1, 5, b"next", 32768)))
        streams[3].close()  # never read: its queued bytes go back to the bucket
        await until(lambda: rec5.data == b"next", what="stream 5's data")
        assert 3 not in s.streams
        s.close()
        close_all(peer)

    run(main())


def test_writers_resume_in_turn_after_each_write_pause(smux):
    """Each time the shared connection drains, a different stream's writer is resumed first.

    The first writer resumed is the first whose source gets read (and its chunk usually
    fills the connection again), so a fixed order let one stream take nearly all the
    bandwidth (issue 19); the start rotates instead.
    """

    async def main():
        conn, peer = await endpoints()
        s = Session(conn, SmuxConfig(**QUIET), client=True)
        order: list[int] = []

        class Writer(Recorder):
            def on_write_resumed(self, ep) -> None:
                order.append(ep.sid)

        streams = [s.open_stream() for _ in range(3)]
        for st in streams:
            st.attach(Writer())
        peer.attach(Recorder())  # the peer reads and keeps what it got
        rounds = []
        for _ in range(4):
            peer.pause_reading()
            while not s._conn_write_paused:  # fill the socketpair and the write buffer
                streams[0].write(b"x" * 65536)
                await asyncio.sleep(0)
            assert all(st._writing_paused for st in streams)
            order.clear()
            peer.resume_reading()
            await until(lambda: len(order) == 3, what="the writers to resume")
            rounds.append(list(order))
        assert rounds == [[3, 5, 7], [5, 7, 3], [7, 3, 5], [3, 5, 7]]
        s.close()
        close_all(peer)

    run(main())


# ----------------------------------------------------------------------------- FIN, close


def test_write_eof_sends_fin_and_the_stream_still_receives(smux):
    async def main():
        conn, peer = await endpoints()
        s = Session(conn, SmuxConfig(**QUIET), client=True)
        await announced(peer)
        st = s.open_stream()
        st.write_eof()
        assert await read_raw(peer, 16) == h("01000000030000000101000003000000")
        st.write(b"ignored after FIN")  # nothing is sent after our FIN
        await assert_silent(peer, 0.2)
        peer.write(bytes(smux.encode_data(1, 3, b"late reply", 32768)))
        assert await asyncio.wait_for(st.readexactly(10), 5) == b"late reply"
        assert 3 in s.streams  # FIN went one way only
        peer.write(smux.encode_fin(1, 3))
        assert await asyncio.wait_for(st.read(), 5) == b""
        assert 3 not in s.streams  # FIN both ways: forgotten
        s.close()
        close_all(peer)

    run(main())


def test_peer_fin_first_then_write_eof_forgets_the_stream(smux):
    async def main():
        conn, peer = await endpoints()
        s = Session(conn, SmuxConfig(**QUIET), client=True)
        await announced(peer)
        st = s.open_stream()
        await read_raw(peer, 8)
        peer.write(bytes(smux.encode_data(1, 3, b"data", 32768)) + smux.encode_fin(1, 3))
        assert await asyncio.wait_for(st.readexactly(4), 5) == b"data"
        assert await asyncio.wait_for(st.read(), 5) == b""
        assert 3 in s.streams
        st.write(b"still writable")  # smux v1.5.16/HEAD: writes after a received FIN
        assert await read_frame(peer) == (1, 2, 3, b"still writable")
        st.write_eof()
        assert await read_frame(peer) == (1, 1, 3, b"")
        assert 3 not in s.streams
        # data for the forgotten sid is discarded; the session keeps working
        peer.write(bytes(smux.encode_data(1, 3, b"stale", 32768)))
        st2 = s.open_stream()
        assert st2.sid == 5
        assert await read_frame(peer) == (1, 0, 5, b"")
        s.close()
        close_all(peer)

    run(main())


def test_close_sends_fin_once_and_forgets(smux):
    async def main():
        conn, peer = await endpoints()
        s = Session(conn, SmuxConfig(**QUIET), client=True)
        await announced(peer)
        st = s.open_stream()
        st.close()
        st.close()
        assert await read_raw(peer, 16) == h("01000000030000000101000003000000")
        await assert_silent(peer, 0.2)
        assert 3 not in s.streams
        assert st.closed
        s.close()
        close_all(peer)

    run(main())


def test_session_loss_closes_every_stream(smux):
    async def main():
        conn, peer = await endpoints()
        s = Session(conn, SmuxConfig(**QUIET), client=True)
        recs = []
        for _ in range(3):
            st = s.open_stream()
            r = Recorder()
            st.attach(r)
            recs.append(r)
        peer.abort()
        await until(lambda: all(r.closed for r in recs), what="every stream closed")
        assert s.closed
        assert isinstance(await asyncio.wait_for(s.done, 2), BaseException)
        with pytest.raises(SessionClosed):
            s.open_stream()

    run(main())


def test_a_draining_session_closes_once_its_last_stream_ends(smux):
    async def main():
        conn, peer = await endpoints()
        accepted = []
        s = Session(conn, SmuxConfig(**QUIET), client=False, on_stream=accepted.append)
        await announced(peer)
        peer.write(h("0100000003000000") + h("0100000005000000"))
        await until(lambda: len(accepted) == 2, what="two streams")
        s.drain()
        # open streams go on: a stream's data still flows both ways
        accepted[0].write(b"ok")
        assert await read_frame(peer) == (1, 2, 3, b"ok")
        accepted[0].close()
        assert await read_frame(peer) == (1, 1, 3, b"")
        await asyncio.sleep(0.05)
        assert not s.closed  # stream 5 is still open
        peer.write(h("0101000005000000"))  # the peer ends stream 5 (FIN) ...
        accepted[1].close()  # ... and the handler closes its side: nothing is left
        assert await read_frame(peer) == (1, 1, 5, b"")
        await until(lambda: s.closed, what="the drained session's close")
        assert await asyncio.wait_for(peer.read(65536), 5) == b""  # the connection ended

    run(main())


def test_an_idle_session_closes_as_it_is_drained(smux):
    async def main():
        conn, peer = await endpoints()
        s = Session(conn, SmuxConfig(**QUIET), client=False, on_stream=lambda st: None)
        await announced(peer)
        s.drain()
        assert s.closed
        assert await asyncio.wait_for(peer.read(65536), 5) == b""

    run(main())


def test_protocol_error_closes_the_session(smux):
    async def main():
        conn, peer = await endpoints()
        s = Session(conn, SmuxConfig(**QUIET), client=False, on_stream=lambda st: None)
        await announced(peer)
        peer.write(h("0207000000000000"))  # unknown command 7
        assert await asyncio.wait_for(peer.read(), 5) == b""
        assert s.closed

    run(main())


def test_keepalive_timeout_closes_a_silent_session(smux):
    async def main():
        conn, peer = await endpoints()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        s = Session(conn, SmuxConfig(keepalive_interval=0.1, keepalive_timeout=0.3), client=True)
        await announced(peer)
        st = s.open_stream()
        rec = Recorder()
        st.attach(rec)
        # within 3 s: far below the 30 s default, so it is keepaliveTimeout that closed it
        await asyncio.wait_for(s.done, 3)
        elapsed = loop.time() - t0
        assert elapsed >= 0.25, elapsed  # not before the 0.3 s timeout
        assert rec.closed
        data = b""
        while True:  # the peer saw the SYN, then NOPs, then the close
            b = await asyncio.wait_for(peer.read(), 2)
            if not b:
                break
            data += b
        assert data[:8] == h("0100000003000000")
        assert data[8:] == h("0103000000000000") * (len(data[8:]) // 8)
        assert len(data[8:]) >= 16

    run(main())


# ------------------------------------------------------------------------------- GoAway


def test_goaway_when_stream_ids_are_exhausted(smux):
    async def main():
        conn, peer = await endpoints()
        s = Session(conn, SmuxConfig(**QUIET), client=True)
        await announced(peer)
        s._next_id = U32 - 2  # the next id is the last one: 4294967295
        last = s.open_stream()
        assert last.sid == U32
        assert await read_raw(peer, 8) == h("01000000ffffffff")
        with pytest.raises(GoAway):
            s.open_stream()
        with pytest.raises(SessionClosed):  # GoAway is a SessionClosed for callers
            s.open_stream()
        # the session and its last stream keep working
        assert not s.closed
        last.write(b"z")
        assert await read_frame(peer) == (1, 2, U32, b"z")
        s.close()
        close_all(peer)

    run(main())


def test_server_session_ids_would_be_even():
    # a server session starts at 0 and adds 2 (GOST servers never open streams)
    async def main():
        conn, peer = await endpoints()
        s = Session(conn, SmuxConfig(**QUIET), client=False, on_stream=lambda st: None)
        assert [s.open_stream().sid for _ in range(2)] == [2, 4]
        s.close()
        close_all(peer)

    run(main())


# -------------------------------------------------------------------------------- config


def test_config_version_3_is_rejected_naming_the_option():
    with pytest.raises(ConfigError) as ei:
        SmuxConfig(version=3).verify()
    msg = str(ei.value)
    assert "mux.version" in msg and "1, 2" in msg, msg
    opts = MuxOptions.parse({"mux.version": "3"}, "-F 'mws://x:1'")
    with pytest.raises(ConfigError) as ei:
        opts.check("node")
    assert "mux.version" in str(ei.value) and "1, 2" in str(ei.value)


def test_config_timeout_below_interval_names_both():
    opts = MuxOptions.parse({"mux.keepaliveinterval": "60s", "mux.keepalivetimeout": "30s"}, "md")
    with pytest.raises(ConfigError) as ei:
        opts.check("node")
    msg = str(ei.value)
    assert "mux.keepaliveTimeout" in msg and "mux.keepaliveInterval" in msg, msg
    # only the interval set above the default timeout (GOST's classic trap) fails the same way
    opts = MuxOptions.parse({"mux.keepaliveinterval": "60s"}, "md")
    with pytest.raises(ConfigError, match="mux.keepaliveInterval"):
        opts.check("mux")
    # keepalive disabled: no check
    SmuxConfig(keepalive_disabled=True, keepalive_interval=60, keepalive_timeout=1).verify()


def test_config_defaults_are_smux_defaults():
    cfg = MuxOptions.parse({}, "md").smux
    assert cfg == SmuxConfig(
        version=1,
        keepalive_disabled=False,
        keepalive_interval=10.0,
        keepalive_timeout=30.0,
        max_frame_size=32768,
        max_receive_buffer=4194304,
        max_stream_buffer=65536,
    )


@pytest.mark.parametrize("value", ["", "smux", "xsmux", "Yamux"])
def test_config_mux_type_other_than_yamux_is_smux(value):
    """GOST (internal/util/mux muxType): "" and any value but exactly "yamux" mean smux."""
    opts = MuxOptions.parse({"mux.type": value}, "md")
    assert opts.mux_type == "smux"
    assert opts.smux == SmuxConfig()


def test_config_mux_type_yamux_is_refused_naming_the_option():
    with pytest.raises(ConfigError) as ei:
        MuxOptions.parse({"mux.type": "yamux"}, "-F 'mws://x:1' (dialer.metadata)")
    assert ei.value.path == "-F 'mws://x:1' (dialer.metadata.mux.type)"
    assert ei.value.message == "'yamux' is not allowed (allowed: smux)"


# ------------------------------------------------------------- what a paused stream keeps


def test_a_paused_stream_keeps_no_view_of_a_large_receive_buffer(smux):
    """Issue 17: a 1-byte payload in an 8 MiB-style buffer is copied out when queued."""

    async def main():
        conn, peer = await endpoints()
        s, streams, rec = recording_server(conn, paused=True)
        s.on_data(conn, bytes(smux.encode_syn(1, 3)))
        ghost = bytes(smux.encode_header(1, smux.CMD_PSH, 65000, 99)) + bytes(65000)
        big = bytearray(bytes(smux.encode_data(1, 3, b"x", 32768)) + ghost * 16)
        s.on_data(conn, big)
        big += b"resizable"  # BufferError if anything still viewed it
        assert streams[3]._pending_bytes == 1
        assert (s.dropped_frames, s.dropped_bytes) == (16, 16 * 65000)
        # a large payload that is nearly its whole buffer stays zero-copy
        whole = bytearray(smux.encode_data(1, 3, b"y" * 32768, 32768))
        s.on_data(conn, whole)
        assert type(streams[3]._pending[-1]) is memoryview
        streams[3].resume_reading()
        assert bytes(rec.data) == b"x" + b"y" * 32768
        s.close()
        close_all(peer)

    run(main())


def test_tiny_payloads_for_a_paused_stream_join_one_buffer(smux):
    async def main():
        conn, peer = await endpoints()
        s, streams, rec = recording_server(conn, paused=True)
        s.on_data(conn, bytes(smux.encode_syn(1, 3)))
        frames = b"".join(
            bytes(smux.encode_data(1, 3, bytes([i % 251]), 32768)) for i in range(3000)
        )
        s.on_data(conn, frames)
        st = streams[3]
        assert (len(st._pending), st._pending_bytes) == (1, 3000)
        st.resume_reading()
        assert bytes(rec.data) == bytes(i % 251 for i in range(3000))
        # once handed on, a joined buffer is never grown again (the sink may hold it)
        st.pause_reading()
        s.on_data(conn, bytes(smux.encode_data(1, 3, b"later", 32768)))
        assert st._pending[0] is not rec.data and len(st._pending) == 1
        st.resume_reading()
        assert bytes(rec.data).endswith(b"later")
        s.close()
        close_all(peer)

    run(main())


def test_a_session_of_only_frames_for_unknown_streams_is_closed(smux, monkeypatch, caplog):
    monkeypatch.setattr(session_mod, "JUNK_LIMIT", 200_000)

    async def main():
        conn, peer = await endpoints()
        s, streams, _ = recording_server(conn, paused=True)
        ghost = bytes(smux.encode_data(1, 99, bytes(30000), 32768))
        s.on_data(conn, bytes(smux.encode_syn(1, 3)) + ghost * 6)  # 180 KiB: not yet
        s.on_data(conn, bytes(smux.encode_data(1, 3, b"useful", 32768)))  # starts over
        s.on_data(conn, ghost * 6)
        assert not s.closed
        s.on_data(conn, ghost * 2)
        assert s.closed and s.dropped_frames == 13  # none counted after the close
        close_all(peer)

    with caplog.at_level("WARNING", logger="gostfast.mux"):
        run(main())
    lines = [
        r.getMessage() for r in caplog.records if "unknown or closed streams" in r.getMessage()
    ]
    assert len(lines) == 1, lines


def test_a_large_write_goes_out_in_connection_writes_of_at_most_256_kib(smux):
    """On mws each connection write is one websocket message, bounded at the far end."""

    sent = []

    class Counting(TCPEndpoint):
        def write(self, data) -> None:
            sent.append(len(data))
            super().write(data)

    async def main():
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        _, conn = await loop.create_connection(Counting, sock=a)
        _, peer = await loop.create_connection(TCPEndpoint, sock=b)
        s = Session(conn, SmuxConfig(**QUIET), client=True)
        await announced(peer)
        st = s.open_stream()
        data = bytes(range(256)) * 4096 * 5  # 5 MiB
        st.write(data)
        got = bytearray()
        await read_frame(peer)  # SYN
        while len(got) < len(data):
            _, cmd, sid, payload = await read_frame(peer)
            got += payload
        assert bytes(got) == data
        frames_per_write = -(-session_mod.SEND_MESSAGE_MAX // 32768)
        assert sent[:2] == [8, 8]  # the announcement, the SYN
        assert max(sent[2:]) <= session_mod.SEND_MESSAGE_MAX + 8 * frames_per_write
        assert len(sent) == 2 + 20
        s.close()
        close_all(peer)

    run(main())


def test_open_streams_are_what_the_session_holds_however_a_stream_ends(smux):
    """What the mws metrics read at a flush (``len(session.streams)``): a stream done
    both ways leaves, a new one with a gone sid counts, a closed session holds none."""

    async def main():
        conn, peer = await endpoints()
        accepted = []
        s = Session(conn, SmuxConfig(**QUIET), client=False, on_stream=accepted.append)
        await announced(peer)
        peer.write(smux.encode_syn(1, 3) + smux.encode_syn(1, 5) + smux.encode_syn(1, 7))
        await until(lambda: len(accepted) == 3, what="three streams")
        assert sorted(s.streams) == [3, 5, 7]
        accepted[0].close()  # our FIN, then the peer's: the stream is done
        assert await read_frame(peer) == (1, smux.CMD_FIN, 3, b"")
        peer.write(smux.encode_fin(1, 3))
        await until(lambda: sorted(s.streams) == [5, 7], what="stream 3 gone")
        peer.write(smux.encode_syn(1, 3))  # a duplicate of a gone sid is a new stream
        await until(lambda: len(accepted) == 4, what="the fourth stream")
        assert sorted(s.streams) == [3, 5, 7] and s.streams[3] is accepted[3]
        s.close()  # the rest go with the session
        assert s.streams == {}
        close_all(peer)

    run(main())
