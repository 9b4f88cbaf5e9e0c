"""An smux session over one byte-stream endpoint, each stream an Endpoint (xtaci/smux on the wire).

See docs/smux-protocol.md for what xtaci/smux does; this engine matches it on
the wire and differs inside only where callbacks replace goroutines:

* Receiving: frames from the shared connection go straight to each stream's
  sink (the relay) in the arrival callback. A stream whose reader is paused
  (its relay's destination is full) queues payloads; queued bytes are
  charged to the session-wide budget (``max_receive_buffer``). When that is
  spent the shared connection stops reading until streams drain, as smux's
  bucket, unless some open stream's reader still takes data: then it goes on
  until one more ``max_receive_buffer`` is held (the overdraft; at most twice
  the budget per session), so a reply queued behind unread streams' frames
  still arrives more often (in v1 with a smux peer nothing bounds those frames:
  docs/smux-protocol.md section 12). Bytes handed to a sink
  count as read: that is what v2 UPD frames report (after the first read, then
  every ``max_stream_buffer/2``) and what v1 credits count.
* Sending: PSH frames go out at once while they fit (backpressure comes from
  the shared connection's write buffer, signalled to every stream; when it
  drains, the writers resume starting one further along each time, so no
  stream takes the connection for itself); v2 also keeps smux's per-stream
  window (``peer window`` minus bytes in flight) and queues what does not fit,
  pausing that stream's writer until a UPD.
* v1 credits, between gostfast ends (docs/smux-protocol.md section 12): smux
  v1 has no per-stream window, so a stream whose reader stopped filled the
  receiver's budget and stalled every other stream (iperf3 -R, issue 19). A
  receiver sends a NOP carrying the stream's sid per ``CREDIT`` bytes it
  delivered (smux sends NOP with sid 0 only and ignores any NOP), and every v1
  end says it credits with a first NOP for ``ANNOUNCE_SID``; a sender that got
  either knows its peer credits and keeps at most ``INITIAL_PEER_WINDOW``
  uncredited bytes in flight per stream, as in v2. A peer that never credits
  (GOST, refpeer) is sent to as smux v1 is, without limit.
* After the peer's FIN (docs/smux-protocol.md section 12): a smux peer sends no
  UPD after its FIN (smux's writeV2 returns io.EOF when it would wait for one),
  so with a smux peer a v2 stream whose data must wait for window then ends
  (``_window_shut``), as smux's writer does and GOST's relay after it; else its
  source stayed paused and unread for good (issue 19: iperf3 -R leaked a target
  connection per data stream). A gostfast peer half-closes and reads on, so every
  end announces itself with a first NOP for ``ANNOUNCE_SID`` in v2 as in v1, and
  to an announced peer a stream that received FIN is sent unwindowed, as v1 is.
* FIN: ``write_eof`` sends FIN and keeps reading (the far end may still
  send: refpeer's smux and smux HEAD do; GOST's v1.5.31 treats FIN as a full
  close, which is what GOST itself does on EOF). A stream is forgotten once
  FIN went both ways, or on ``close``.
* Keepalive: NOP every ``keepalive_interval``; the session closes when no
  frame at all arrived during a whole ``keepalive_timeout`` window.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from gostfast._core import select
from gostfast.endpoint import Endpoint
from gostfast.errors import GostfastError
from gostfast.mux.config import SmuxConfig
from gostfast.pinning import owned

smux = select("smux")

log = logging.getLogger("gostfast.mux")

INITIAL_PEER_WINDOW = 262144
#: gostfast's v1 stream credit (docs/smux-protocol.md section 12): a NOP whose sid
#: is a stream's says "I delivered CREDIT more bytes of this stream". smux sends
#: NOP with sid 0 only and ignores every NOP, whatever its sid. Both ends must count
#: the same, so this is a constant of the extension, not a setting
CREDIT = 65536
#: the sid of the NOP each end sends first in a session: "I am gostfast" (v1: "I credit";
#: both: "I half-close and read on after my FIN, so my FIN does not end your writing"). No
#: stream has it
#: (client streams are 3, 5, ...; server streams even), so an older gostfast counts it
#: as a credit for no stream and smux ignores it. Without it a sender learned of its
#: peer's credits only from the first credit, after the peer delivered 64 KiB: in the
#: meantime it sent without limit, and 4 MiB sent so spent the receiver's budget,
#: stopped its reading and with it the credits its own replies waited for (an echo
#: tunnel hung: docs/smux-protocol.md section 12)
ANNOUNCE_SID = 1
_U32 = 0xFFFFFFFF
#: payloads queued for a paused stream that are smaller than this are joined into
#: one buffer of the stream's own, so a flood of tiny frames costs its bytes, not a
#: Python object (and a pinned receive buffer) per frame
JOIN_MAX = 16384
#: the most stream data one write to the connection carries (on mws: one websocket
#: message, and the far end refuses messages over its ws.maxMessageSize, 4 MiB by
#: default); a relay writes at most a read (256 KiB), a ws hop in a chain may hand
#: over a whole 16 MiB message
SEND_MESSAGE_MAX = 262144
#: wire bytes of frames for unknown or closed streams a session may receive in a
#: row (no frame for an open stream, no SYN, in between) before it is closed
JUNK_LIMIT = 64 * 1024 * 1024


class SessionClosed(GostfastError, ConnectionError):
    """The smux session is gone (its connection closed, a protocol error, or keepalive timeout)."""


class GoAway(SessionClosed):
    """Stream ids are exhausted on this session; open a new one."""


class Stream(Endpoint):
    """One smux stream as an Endpoint."""

    __slots__ = (
        "session",
        "sid",
        "_reading_paused",
        "_pending",
        "_pending_bytes",
        "_tail",
        "_fin_received",
        "_fin_sent",
        "_gone",
        "_num_read",
        "_incr",
        "_num_written",
        "_peer_consumed",
        "_peer_window",
        "_sendq",
        "_sendq_bytes",
        "_window_blocked",
    )

    def __init__(self, session: Session, sid: int) -> None:
        super().__init__()
        self.session = session
        self.sid = sid
        self.peer = f"{session.conn.peer}#{sid}"
        self.client_ip = session.conn.client_ip
        self.peer_ip = session.conn.peer_ip
        self._reading_paused = False
        self._pending: deque = deque()  # payloads received while paused
        self._pending_bytes = 0
        self._tail: bytearray | None = None  # the last of _pending, while small ones join it
        self._fin_received = False
        self._fin_sent = False
        self._gone = False  # removed from the session
        # v2 flow control
        self._num_read = 0
        self._incr = 0
        self._num_written = 0
        self._peer_consumed = 0
        self._peer_window = INITIAL_PEER_WINDOW
        self._sendq: deque = deque()  # v2: bytes waiting for window
        self._sendq_bytes = 0
        self._window_blocked = False

    # ------------------------------------------------------- from the session
    def _on_psh(self, payload) -> None:
        if self._fin_received:  # data after FIN: smux would have dropped the stream already
            self.session._drop(len(payload))
            return
        if self._reading_paused:
            self._queue(payload)
            return
        self._deliver(payload)

    def _queue(self, payload) -> None:
        """Keep a payload until the reader resumes, charged to the session's budget.

        What is kept pins no more than its own bytes (docs/limits.md): a payload
        is a view into the whole received buffer (an 8 MiB websocket message may
        carry one 1-byte frame for us), so small payloads are copied into the
        stream's own joining buffer and a large one is copied unless it covers
        its buffer nearly whole (GOST's one frame per message stays zero-copy).
        """
        n = len(payload)
        tail = self._tail
        if tail is not None and len(tail) + n <= JOIN_MAX:
            tail += payload
        elif n < JOIN_MAX:
            self._tail = bytearray(payload)
            self._pending.append(self._tail)
        else:
            self._tail = None
            self._pending.append(owned(payload))
        self._pending_bytes += n
        self.session._charge(n)

    def _deliver(self, payload) -> None:
        n = len(payload)
        sink = self._sink
        if sink is not None:  # Endpoint._feed, inlined: one Python frame less per frame
            sink.on_data(self, payload)
        else:
            self._feed(payload)
        s = self.session
        if s.version == 1:  # a credit per CREDIT bytes delivered (sent to any peer)
            self._incr += n
            if self._incr >= CREDIT:
                k = self._incr // CREDIT
                self._incr -= k * CREDIT
                s._credits += smux.encode_header(1, smux.CMD_NOP, 0, self.sid) * k
        else:
            self._num_read = (self._num_read + n) & _U32
            self._incr += n
            if self._incr >= s.config.max_stream_buffer // 2 or self._num_read == n:
                self._incr = 0
                s._send(smux.encode_upd(2, self.sid, self._num_read, s.config.max_stream_buffer))

    def _on_fin(self) -> None:
        if self._fin_received:
            return
        was = self._takes()
        self._fin_received = True
        if was:
            self.session._taker_lost()
        if not self._pending:
            self._feed_eof()
        if self._gone:  # the EOF ended the tunnel (and with it this stream)
            return
        if self._fin_sent:
            self.session._forget(self)
        elif self._sendq:  # v1: no credits may come now (the peer may have forgotten us)
            self._flush_sendq()

    def _on_credit(self) -> None:
        self._peer_consumed = (self._peer_consumed + CREDIT) & _U32
        if self._sendq:
            self._flush_sendq()

    def _on_upd(self, consumed: int, window: int) -> None:
        self._peer_consumed = consumed
        self._peer_window = window
        self._flush_sendq()

    def _session_lost(self, exc: BaseException | None) -> None:
        self._gone = True
        self._closed_by_peer(exc)

    # ------------------------------------------------------------- sending
    def _room(self) -> int:
        s = self.session
        if self._fin_received:
            if s.version == 1 or s.peer_gostfast:
                # after FIN no credit is sure to come (v1.5.31 forgot the stream); a
                # gostfast peer reads on but may close at any time: sent as smux v1 sends
                return 1 << 62
            # a smux v2 peer: windowed still, and data that must wait ends the stream
        elif s.version == 1 and (not s.peer_credits or s._conn_read_paused):
            # smux v1: no limit; and while our own reading is stopped we would not see a
            # credit (Session._charge)
            return 1 << 62
        inflight = (self._num_written - self._peer_consumed) & _U32
        if inflight >= 1 << 31:  # peer consumed more than we wrote: smux's ErrConsumed
            return 0
        return self._peer_window - inflight

    def _send_data(self, data) -> None:
        s = self.session
        n = len(data)
        self._num_written = (self._num_written + n) & _U32
        if n <= SEND_MESSAGE_MAX:
            s._send(smux.encode_data(s.version, self.sid, data, s.config.max_frame_size))
            return
        view = memoryview(data)  # one message per piece: the far end bounds message size
        for pos in range(0, n, SEND_MESSAGE_MAX):
            piece = view[pos : pos + SEND_MESSAGE_MAX]
            s._send(smux.encode_data(s.version, self.sid, piece, s.config.max_frame_size))

    def _flush_sendq(self) -> None:
        while self._sendq:
            room = self._room()
            if room <= 0:
                break
            chunk = self._sendq[0]
            if len(chunk) <= room:
                self._sendq.popleft()
                self._sendq_bytes -= len(chunk)
                self._send_data(chunk)
            else:
                self._sendq[0] = chunk[room:]
                self._sendq_bytes -= room
                self._send_data(chunk[:room])
                break
        if self._sendq:  # still waiting for window
            if self._fin_received:
                self._window_shut()
            return
        if self._window_blocked:
            self._window_blocked = False
            if self._fin_sent:
                self._send_fin_now()
            elif not self.session._conn_write_paused:
                self._write_resumed()

    def write(self, data) -> None:
        n = len(data)
        if self._fin_sent or self._gone or not n:
            return
        s = self.session
        if self._sendq:  # behind what waits (_flush_sendq sends it when it may)
            self._sendq.append(memoryview(data))
            self._sendq_bytes += n
            return
        if (s.version == 1 and (not s.peer_credits or s._conn_read_paused)) or self._room() >= n:
            if n <= SEND_MESSAGE_MAX and not s.closed:  # _send_data and _send, inlined
                self._num_written = (self._num_written + n) & _U32
                s._write(smux.encode_data(s.version, self.sid, data, s.config.max_frame_size))
            else:
                self._send_data(data)
            return
        room = self._room()
        view = memoryview(data)
        if room > 0:
            self._send_data(view[:room])
            view = view[room:]
        self._sendq.append(view)
        self._sendq_bytes += len(view)
        if self._fin_received:
            self._window_shut()
            return
        if not self._window_blocked:
            self._window_blocked = True
            self._write_paused()

    def _window_shut(self) -> None:
        """Data waits for window after the peer's FIN: it can never go, so the stream ends.

        A UPD comes only from a peer still reading the stream, and its FIN says it has
        stopped (or forgotten the stream), so what waits would wait for good, and the
        relay with it: its source stays paused, unread, never closed (a target
        connection per iperf3 -R data stream leaked, with its unread megabytes, until the
        kernel's TCP memory ran out: issue 19). smux's writeV2 returns io.EOF here ("if fin
        arrived, future window update is impossible"), and GOST then closes both ends;
        closing the stream does the same (its sink, the relay, closes the other side).
        """
        log.debug(
            "smux session %s: stream %d: %d byte(s) wait for window after the peer's FIN; "
            "closing the stream",
            self.session.name,
            self.sid,
            self._sendq_bytes,
        )
        self.close()

    def _send_fin_now(self) -> None:
        self.session._send(smux.encode_fin(self.session.version, self.sid))
        if self._fin_received:
            self.session._forget(self)

    def write_eof(self) -> None:
        if self._fin_sent or self._gone:
            return
        self._fin_sent = True
        if not self._sendq:  # else: sent after the queued data (_flush_sendq)
            self._send_fin_now()

    def close(self) -> None:
        if self._gone:
            return
        if not self._fin_sent or self._sendq:  # else FIN is on the wire already
            # (a write_eof behind queued data has not sent its FIN yet: it goes now)
            self._fin_sent = True
            self._sendq.clear()
            self._sendq_bytes = 0
            self._send_fin_now()
        self.session._forget(self)
        self._closed_by_peer(None)

    def abort(self) -> None:
        self.close()

    def get_write_buffer_size(self) -> int:
        return self._sendq_bytes + self.session.conn.get_write_buffer_size()

    # ------------------------------------------------------------- reading
    def _takes(self) -> bool:
        """Whether a payload for this stream now would reach its reader (Session._takers)."""
        return not (self._reading_paused or self._fin_received or self._gone)

    def pause_reading(self) -> None:
        if self._reading_paused:
            return
        was = self._takes()
        self._reading_paused = True
        if was:
            self.session._taker_lost()

    def resume_reading(self) -> None:
        if not self._reading_paused:
            return
        self._reading_paused = False
        s = self.session
        if self._takes():
            s._taker_gained()
        while self._pending and not self._reading_paused:
            payload = self._pending.popleft()
            if payload is self._tail:  # handed on: nothing may join (resize) it now
                self._tail = None
            n = len(payload)
            self._pending_bytes -= n
            s._refund(n)
            self._deliver(payload)
        if s._credits:
            s._send_credits()
        if not self._pending and self._fin_received:
            self._feed_eof()

    def _drop_pending(self) -> None:
        if self._pending_bytes:
            self.session._refund(self._pending_bytes)
        self._pending.clear()
        self._pending_bytes = 0
        self._tail = None


class Session:
    """smux over ``conn`` (an Endpoint in handshake mode, which this session attaches to)."""

    def __init__(
        self,
        conn: Endpoint,
        config: SmuxConfig,
        *,
        client: bool,
        on_stream: Callable[[Stream], None] | None = None,
        name: str = "",
    ) -> None:
        self.conn = conn
        self.config = config
        self.version = config.version
        self.client = client
        self.name = name or conn.peer
        self.on_stream = on_stream
        self.streams: dict[int, Stream] = {}
        self._next_id = 1 if client else 0
        self._parser = smux.FrameParser(config.version, strict=True)
        #: v1: the peer sent a stream NOP, so it credits what it delivers (a gostfast
        #: end); from then each stream keeps at most its window in flight, as in v2
        self.peer_credits = False
        #: the peer sent a NOP with a sid (its ANNOUNCE_SID first): a gostfast end, which
        #: half-closes (Stream._room after FIN), any version
        self.peer_gostfast = False
        self._credits = bytearray()  # credit NOPs due, sent in one write per received chunk
        self._bucket = config.max_receive_buffer
        #: open streams whose reader takes data now (not paused, no FIN received): while
        #: one does, a spent budget may overdraw by one more max_receive_buffer (_charge)
        self._takers = 0
        self._conn_read_paused = False
        self._conn_write_paused = False
        self._resume_turn = 0  # where on_write_resumed starts next (fairness)
        self.closed = False
        self.close_reason: BaseException | None = None
        self.reason_logged = False  # _fail already logged why the session ended
        self._data_ready = False
        #: frames for unknown or closed streams, dropped as smux drops them (counted
        #: here; the session closes after JUNK_LIMIT bytes of nothing else)
        self.dropped_frames = 0
        self.dropped_bytes = 0
        self._junk_run = 0  # wire bytes of such frames since the last useful one
        self._timers: list[asyncio.TimerHandle] = []
        self.draining = False  # close once no stream is open (``drain``)
        self.done: asyncio.Future = asyncio.get_running_loop().create_future()
        #: what sends one message on the connection: its ``write``, or the fused
        #: path's (a websocket over plain TCP carries the session: Endpoint.carry)
        self._write = conn.write
        # first, before any frame the bytes already read may cause; smux ignores NOPs
        conn.write(smux.encode_header(self.version, smux.CMD_NOP, 0, ANNOUNCE_SID))
        conn.attach(self)
        if not self.closed:
            self._write = conn.carry(self) or conn.write
        if not config.keepalive_disabled:
            self._start_keepalive()

    # ------------------------------------------------------------- streams
    def open_stream(self) -> Stream:
        """A new stream (client side: ids 3, 5, 7, ...); its SYN is sent now."""
        if self.closed:
            raise SessionClosed(f"smux session {self.name} is closed")
        sid = self._next_id + 2
        if sid > _U32:
            raise GoAway(f"smux session {self.name}: stream ids exhausted")
        self._next_id = sid
        st = Stream(self, sid)
        self.streams[sid] = st
        self._send(smux.encode_syn(self.version, sid))
        self._taker_gained()  # a new stream takes data: reading may resume (_may_read)
        if self._conn_write_paused:
            st._write_paused()
        return st

    def _forget(self, st: Stream) -> None:
        if self.streams.get(st.sid) is st:
            del self.streams[st.sid]
        was = st._takes()
        st._gone = True
        if was:
            self._taker_lost()
        st._drop_pending()
        if self.draining and not self.streams:
            asyncio.get_running_loop().call_soon(self._close_if_idle)

    def drain(self) -> None:
        """Close the session as soon as no stream is open (now, if none is).

        A stopping listener's sessions (a drain, a reload retiring a worker):
        smux has no goodbye frame, so a client learns that a server is going
        only when its session ends, and until then sends every new tunnel into
        it, to be cut when the grace runs out. Ending each session when it goes
        idle sends the client's next tunnel to a live server (the next dial,
        through a load balancer or to a new worker) while open tunnels finish.
        """
        self.draining = True
        if not self.streams:
            self._close_if_idle()

    def _close_if_idle(self) -> None:
        if not self.closed and not self.streams:
            log.debug("smux session %s: idle while draining; closing it", self.name)
            self.close()

    # ------------------------------------------------------ sink of ``conn``
    def on_data(self, ep: Endpoint, data) -> None:
        try:
            frames = self._parser.feed(data)
        except smux.SmuxProtocolError as exc:
            for frame in exc.frames:
                self._dispatch(*frame)
            self._fail(f"protocol error: {exc}")
            return
        self._data_ready = True
        for cmd, sid, payload in frames:
            if cmd == 2:  # PSH, the hot path
                st = self.streams.get(sid)
                if st is None:
                    self._drop(len(payload))
                    continue
                self._junk_run = 0
                if st._reading_paused or st._fin_received:
                    st._on_psh(payload)  # queued, or dropped after FIN
                else:
                    st._deliver(payload)  # what _on_psh does for a reading stream
            else:
                self._dispatch(cmd, sid, payload)
        if self._credits:
            self._send_credits()

    def _send_credits(self) -> None:
        credits, self._credits = self._credits, bytearray()
        self._send(credits)

    def _drop(self, payload_len: int) -> None:
        """A frame for no open stream: counted, never kept; a session of only these is closed.

        smux ignores such frames (a stream may have just closed); it fails a session
        only on frames it cannot parse. A peer that sends nothing else for
        JUNK_LIMIT bytes makes us read and discard without end, so it goes.
        """
        if self.closed:
            return
        self.dropped_frames += 1
        self.dropped_bytes += payload_len
        self._junk_run += 8 + payload_len
        if self._junk_run > JUNK_LIMIT:
            self._fail(
                f"{self._junk_run} bytes of frames for unknown or closed streams and nothing "
                f"else ({self.dropped_frames} frames dropped in all)"
            )

    def _dispatch(self, cmd: int, sid: int, payload) -> None:
        st = self.streams.get(sid)
        if cmd == smux.CMD_NOP:
            # sid 0: liveness only (smux sends no other). Else a gostfast peer's
            # announcement (ANNOUNCE_SID) or credit for that stream (v1): from then
            # this peer's streams are windowed (v1) and half-closed (any version)
            if sid:
                self.peer_gostfast = True
                if self.version == 1:
                    self.peer_credits = True
                    if st is not None:
                        st._on_credit()
            return
        if cmd == smux.CMD_SYN:
            if st is not None or self.closed:  # a duplicate: smux ignores it
                self._drop(0)
                return
            self._junk_run = 0
            st = Stream(self, sid)
            self.streams[sid] = st
            # reading may have stopped earlier in this chunk (it is parsed to its end)
            self._taker_gained()
            if self._conn_write_paused:
                st._write_paused()
            if self.on_stream is not None:
                self.on_stream(st)
            else:  # a client session does not accept streams
                st.close()
            return
        if st is None:  # PSH, FIN or UPD for no open stream
            self._drop(len(payload) if cmd == smux.CMD_PSH else 8 if cmd == smux.CMD_UPD else 0)
            return
        self._junk_run = 0
        if cmd == smux.CMD_PSH:
            st._on_psh(payload)
        elif cmd == smux.CMD_FIN:
            st._on_fin()
        elif cmd == smux.CMD_UPD:
            st._on_upd(*payload)

    def on_eof(self, ep: Endpoint) -> None:
        self._close(SessionClosed(f"smux session {self.name}: connection closed by peer"))

    def on_close(self, ep: Endpoint, exc: BaseException | None) -> None:
        self._close(exc or SessionClosed(f"smux session {self.name}: connection closed"))

    def on_write_paused(self, ep: Endpoint) -> None:
        self._conn_write_paused = True
        for st in list(self.streams.values()):
            st._write_paused()

    def on_write_resumed(self, ep: Endpoint) -> None:
        """Resume the streams' writers, starting one further along each time.

        The first writer resumed is the first whose source is read, and its chunk
        usually fills the connection's buffer again, pausing everyone else; resuming
        in a fixed order gave the lowest stream id nearly all the bandwidth (one
        iperf3 stream ran tens of MiB ahead and alone filled the receiver's
        budget). Rotating the start shares the connection between streams, as
        smux's shaper does (v1.5.16: least written first; HEAD: round-robin).
        """
        self._conn_write_paused = False
        streams = list(self.streams.values())
        if not streams:
            return
        turn = self._resume_turn % len(streams)
        self._resume_turn = turn + 1
        for st in streams[turn:] + streams[:turn]:
            if self._conn_write_paused:
                return  # a resumed writer filled the connection again
            if not st._window_blocked:
                st._write_resumed()

    # ---------------------------------------------------------- the budget
    def _charge(self, n: int) -> None:
        self._bucket -= n
        if self._bucket <= 0 and not self._conn_read_paused and not self._may_read():
            self._stop_reading()

    def _may_read(self) -> bool:
        """Whether the connection may be read with the budget where it is: the overdraft.

        Within the budget, always. Once it is spent, only while some open stream's
        reader can take data, and until one more ``max_receive_buffer`` is held: the
        frames for that stream (iperf3 -R's control stream, its results) may sit behind
        more of the paused streams' frames than the budget holds, and a smux v1 peer
        bounds nothing per stream (docs/smux-protocol.md section 12). Every stream
        paused: no frame read now can reach a reader, so reading stops at once, as
        smux's ``recvLoop``. Memory: at most twice the budget per session.
        """
        b = self._bucket
        return b > 0 or (self._takers > 0 and b > -self.config.max_receive_buffer)

    def _stop_reading(self) -> None:
        self._conn_read_paused = True
        self.conn.pause_reading()
        if self.version == 1 and self.peer_credits:
            self._lift_windows()

    def _taker_lost(self) -> None:
        self._takers -= 1
        if not self._takers and self._bucket <= 0 and not self._conn_read_paused:
            self._stop_reading()  # the overdraft was for a stream that now takes nothing

    def _taker_gained(self) -> None:
        self._takers += 1
        if self._conn_read_paused and self._may_read():
            self._start_reading()

    def _start_reading(self) -> None:
        self._conn_read_paused = False
        self.conn.resume_reading()

    def _lift_windows(self) -> None:
        """v1 credits while the budget stops our reading: send as smux v1 does, unwindowed.

        The peer's credits arrive on the connection we stopped reading, so a stream
        waiting for one would wait for good, and with it whatever its source is: an
        echo-like target that stops reading while it cannot write keeps our paused
        streams full, which keeps the budget spent (32 echo tunnels whose clients read
        late hung so). smux v1 senders never wait for the receiver; until our reading
        resumes, neither do ours. What they send meanwhile stays counted: once credits
        flow again a stream that went ahead waits until they cover it.
        """
        for st in list(self.streams.values()):
            if st._sendq:
                st._flush_sendq()

    def _refund(self, n: int) -> None:
        self._bucket += n
        if self._conn_read_paused and self._may_read():
            self._start_reading()

    # --------------------------------------------------------------- output
    def _send(self, frame) -> None:
        if not self.closed:
            self._write(frame)

    # ------------------------------------------------------------ keepalive
    # Bound methods, not closures that reschedule themselves: a nested function that
    # names itself is a reference cycle (function -> closure cell -> function) holding
    # the session, its connection and, over TLS, that connection's buffers until the
    # cyclic GC gets round to it (issue 18).
    def _start_keepalive(self) -> None:
        loop = asyncio.get_running_loop()
        self._timers = [
            loop.call_later(self.config.keepalive_interval, self._ping),
            loop.call_later(self.config.keepalive_timeout, self._check_alive),
        ]

    def _ping(self) -> None:
        if self.closed:
            return
        self._send(smux.encode_nop(self.version))
        self._timers[0] = asyncio.get_running_loop().call_later(
            self.config.keepalive_interval, self._ping
        )

    def _check_alive(self) -> None:
        if self.closed:
            return
        timeout = self.config.keepalive_timeout
        if not self._data_ready and not self._conn_read_paused:
            self._fail(f"keepalive timeout: no frame for {timeout:g}s")
            return
        self._data_ready = False
        self._timers[1] = asyncio.get_running_loop().call_later(timeout, self._check_alive)

    # ------------------------------------------------------------- closing
    def _fail(self, reason: str) -> None:
        """Protocol error or silence: drop the connection at once, as smux/GOST do (no goodbye)."""
        self.conn.abort()
        self.reason_logged = True
        log.warning(
            "smux session %s: %s; closing it and its %d stream(s)",
            self.name,
            reason,
            len(self.streams),
        )
        self._close(SessionClosed(f"smux session {self.name}: {reason}"))

    def close(self) -> None:
        """Close every stream and the connection (smux sends no goodbye frame)."""
        self._close(SessionClosed(f"smux session {self.name}: closed"))
        self.conn.close()

    def _close(self, exc: BaseException | None) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_reason = exc
        for t in self._timers:
            t.cancel()
        self._timers = []
        streams = list(self.streams.values())
        self.streams.clear()
        for st in streams:
            st._drop_pending()
            st._session_lost(exc)
        if not self.done.done():
            self.done.set_result(exc)
        self.conn.close()
