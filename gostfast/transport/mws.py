"""The ``mws``/``mwss`` listener and dialer: smux multiplexing over one websocket (GOST's x/listener/mws, x/dialer/mws).

Listener: the ws listener, then an smux server session on each websocket;
every stream the client opens is one accepted endpoint for the handler.
Dialer: one session per node address shared by every tunnel through that
node, opened lazily; each dial opens a new stream (SYN). A dead session
(connection lost, keepalive timeout, protocol error) is dropped: the
tunnels on it see an error, the next dial builds a new session.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from gostfast import metrics, registry
from gostfast.components import DialerSpec, ListenerSpec, OpenConn
from gostfast.endpoint import Endpoint
from gostfast.mux.config import MuxOptions, SmuxConfig
from gostfast.mux.session import Session, SessionClosed
from gostfast.transport.ws import (
    WSDialer,
    WSDialerOptions,
    WSListener,
    WSListenerOptions,
    WSSListener,
    max_message_size_option,
    ws_handshake,
)


class _MuxServing:
    """Mixin: wrap each upgraded websocket in an smux server session.

    Closing the listener drains its sessions (``Session.drain``): each ends once
    its open streams have, so clients re-dial a live server for new tunnels. A
    websocket upgraded after the close (a client caught mid-upgrade) gets a
    session that ends with its last stream, not before its first.
    """

    def __init__(self, spec: ListenerSpec[MWSListenerOptions]) -> None:
        super().__init__(spec)
        self._smux: SmuxConfig = spec.options.smux
        self._sessions: set[Session] = set()
        self._draining = False

    def _accepted_ws(self, ws: Endpoint, on_accept: Callable[[Endpoint], None]) -> None:
        s = Session(ws, self._smux, client=False, on_stream=on_accept, name=ws.peer)
        s.draining = self._draining
        self._sessions.add(s)
        s.done.add_done_callback(lambda _: self._sessions.discard(s))

    async def start(self, on_accept: Callable[[Endpoint], None]) -> None:
        await super().start(on_accept)
        m = metrics.active
        if m is not None:  # the session and stream gauges read this listener
            m.mws_listener(self.spec.service, self)

    def session_count(self) -> int:
        return len(self._sessions)

    def stream_count(self) -> int:
        return sum(len(s.streams) for s in self._sessions)

    def close(self) -> None:
        self._draining = True
        super().close()
        for s in list(self._sessions):
            s.drain()


class MWSListener(_MuxServing, WSListener):
    scheme = "mws"


class MWSSListener(_MuxServing, WSSListener):
    scheme = "mwss"


class MWSDialer(WSDialer):
    """Streams of one shared session per node address."""

    multiplex = True

    def __init__(self, spec: DialerSpec[MWSDialerOptions]) -> None:
        super().__init__(spec)
        self.config: SmuxConfig = spec.options.smux
        self.sessions: dict[str, Session] = {}
        self._lock = asyncio.Lock()

    async def _session(self, addr: str, open_conn: OpenConn) -> Session:
        s = self.sessions.get(addr)
        if s is not None and not s.closed:
            return s
        async with self._lock:
            s = self.sessions.get(addr)
            if s is not None and not s.closed:
                return s
            raw = await self.transport(addr, open_conn)
            try:
                ws = await ws_handshake(raw, addr, self.spec.options, self.spec.log)
            except BaseException:
                raw.abort()
                raise
            s = Session(ws, self.config, client=True, name=f"{self.spec.node}@{addr}")
            self.sessions[addr] = s
            log = self.spec.log
            log.info("mws session to %s open (smux v%d)", addr, self.config.version)

            def ended(done) -> None:
                if not s.reason_logged:  # a failure was logged by the session itself
                    log.info("mws session to %s ended: %s", addr, done.result() or "closed")
                if self.sessions.get(addr) is s:
                    del self.sessions[addr]

            s.done.add_done_callback(ended)
            return s

    def dial_now(self, addr: str) -> Endpoint | None:
        """A new stream of the live session to ``addr`` (opening one never waits), or
        None when there is none or it refuses (``dial`` then does what it always did)."""
        s = self.sessions.get(addr)
        if s is None or s.closed:
            return None
        try:
            return s.open_stream()
        except SessionClosed:
            return None

    async def dial(self, addr: str, open_conn: OpenConn) -> Endpoint:
        s = await self._session(addr, open_conn)
        try:
            return s.open_stream()
        except SessionClosed:
            s.close()
            self.sessions.pop(addr, None)
            s = await self._session(addr, open_conn)
            return s.open_stream()


class MWSSDialer(MWSDialer):
    secure = True


#: the largest websocket message an mws/mwss end accepts unless ws.maxMessageSize says
#: otherwise: smux's default maxReceiveBuffer. GOST sets no read limit (gorilla's
#: default, unlimited) but its smux writes each frame as one message (<= 65535 + 8
#: bytes), and gostfast peers send one message per write (<= 256 KiB of frames), so
#: the bound only stops one message from making the connection hold more than the
#: session's whole receive budget (docs/limits.md)
MWS_MAX_MESSAGE_SIZE = 4194304


_MWS_MAX_MESSAGE_SIZE_DOC = (
    "gostfast: largest message accepted (1009 above it); 0 = unlimited as gorilla. "
    "Default 4 MiB, smux's default maxReceiveBuffer: GOST's smux sends one frame "
    "(<= 64 KiB) per message"
)


@dataclass(frozen=True)
class MWSListenerOptions(MuxOptions, WSListenerOptions):
    """The ws listener's options with mws's message limit, then GOST's ``mux.*``."""

    max_message_size: int = max_message_size_option(MWS_MAX_MESSAGE_SIZE, _MWS_MAX_MESSAGE_SIZE_DOC)


@dataclass(frozen=True)
class MWSDialerOptions(MuxOptions, WSDialerOptions):
    """The ws dialer's options with mws's message limit, then GOST's ``mux.*``."""

    max_message_size: int = max_message_size_option(MWS_MAX_MESSAGE_SIZE, _MWS_MAX_MESSAGE_SIZE_DOC)


registry.listeners.register("mws", MWSListener, MWSListenerOptions)
registry.listeners.register("mwss", MWSSListener, MWSListenerOptions)
registry.dialers.register("mws", MWSDialer, MWSDialerOptions)
registry.dialers.register("mwss", MWSSDialer, MWSDialerOptions)
