"""The ``ws``/``wss`` listener and dialer (GOST's x/listener/ws, x/dialer/ws).

Listener: serves HTTP/1.1 on one path (``path``, default ``/ws``); answers
everything else as Go's ServeMux and gorilla's Upgrader do (404 for other
paths, 400/405 for broken upgrades); a good upgrade becomes a WSEndpoint
handed to the service's handler. Dialer: sends GOST's upgrade request (Host =
``host`` option or the node address), checks the 101, and returns a
WSEndpoint; ``keepalive`` pings every ``ttl``.

Option names and defaults are GOST's; where GOST has a gorilla tuning knob we
give it a meaning here (documented per option) rather than ignoring it.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from gostfast import metrics, registry
from gostfast.components import Dialer, DialerSpec, Listener, ListenerSpec, OpenConn
from gostfast.config.options import ComponentOptions, non_positive_is, option, unsupported
from gostfast.endpoint import Endpoint, TCPEndpoint
from gostfast.errors import HandshakeError
from gostfast.proto import http1, wshandshake
from gostfast.timeouts import within
from gostfast.tlsutil.endpoint import describe_start_tls_failure
from gostfast.transport.accept import Acceptor, bind_sockets, peer_text, socket_addresses
from gostfast.transport.tcp import (
    apply_keepalive,
    close_servers,
    listen_backlog,
    open_servers,
    server_addresses,
)
from gostfast.transport.wsconn import WSEndpoint, random_pool
from gostfast.transport.wsconn_deflate import DeflateWSEndpoint

log = logging.getLogger("gostfast.ws")


def _compression(doc: str):
    """GOST's enableCompression: gorilla's permessage-deflate, no context takeover."""
    return option(False, "ws.enableCompression", "enableCompression", doc=doc)


def max_message_size_option(default: int, doc: str):
    """gostfast's ``ws.maxMessageSize`` (gorilla's read limit, which GOST leaves unset)."""
    return option(default, "ws.maxMessageSize", "maxMessageSize", minimum=0, doc=doc)


@dataclass(frozen=True)
class WSListenerOptions(ComponentOptions):
    """The ws/wss listener's metadata (GOST's x/listener/ws metadata.go)."""

    path: str = option("/ws", "ws.path", "path")
    backlog: int = option(
        0,
        "ws.backlog",
        "backlog",
        minimum=0,
        doc="GOST: the queue of accepted connections (128); gostfast hands every connection "
        "to the handler at once, so it sizes the listen(2) queue instead; 0 = the system "
        "maximum (net.core.somaxconn), as Go's listen",
    )
    handshake_timeout: float = option(
        0.0,
        "ws.handshakeTimeout",
        "handshakeTimeout",
        doc="whole upgrade (request read + answer); 0 = none, as GOST",
    )
    read_header_timeout: float = option(
        0.0,
        "ws.readHeaderTimeout",
        "readHeaderTimeout",
        doc="reading the request head; 0 = none, as GOST",
    )
    read_buffer_size: int = option(
        0,
        "ws.readBufferSize",
        "readBufferSize",
        minimum=0,
        doc="SO_RCVBUF of accepted sockets when > 0",
    )
    write_buffer_size: int = option(
        0,
        "ws.writeBufferSize",
        "writeBufferSize",
        minimum=0,
        doc="largest frame payload we send (messages above it are fragmented); 0 = no limit",
    )
    header: dict[str, str] | None = option(
        None, "ws.header", "header", doc="extra headers in the 101 response"
    )
    max_message_size: int = max_message_size_option(
        16 * 1024 * 1024,
        "gostfast: largest message accepted (1009 above it); 0 = unlimited as gorilla. "
        "GOST peers send one message per write (<= 64 KiB), so 16 MiB only stops abuse",
    )
    enable_compression: bool = _compression(
        "permessage-deflate when a client offers it; an inflated message over "
        "maxMessageSize closes with 1009"
    )
    keepalive: bool = option(False, "keepalive", doc="TCP keepalive on accepted sockets")
    keepalive_idle: float = option(0.0, "keepalive.idle")
    keepalive_interval: float = option(0.0, "keepalive.interval")
    keepalive_count: int = option(0, "keepalive.count", minimum=0)
    mptcp: bool = unsupported("mptcp", default=False)
    proxyProtocol: str | None = unsupported("proxyprotocol")


@dataclass(frozen=True)
class WSDialerOptions(ComponentOptions):
    """The ws/wss dialer's metadata (GOST's x/dialer/ws metadata.go)."""

    host: str = option("", "ws.host", "host", doc="Host header (default: the node address)")
    path: str = option("/ws", "ws.path", "path")
    header: dict[str, str] | None = option(None, "ws.header", "header", doc="extra request headers")
    keepalive: bool = option(False, "ws.keepalive", "keepalive", doc="websocket ping keepalive")
    ttl: float = option(
        15.0,
        "ttl",
        "keepalive.interval",
        convert=non_positive_is(15.0),
        doc="ping period (<= 0: 15s, as GOST)",
    )
    handshake_timeout: float = option(0.0, "ws.handshakeTimeout", "handshakeTimeout")
    max_message_size: int = max_message_size_option(
        16 * 1024 * 1024, "gostfast: largest message accepted; 0 = unlimited"
    )
    read_buffer_size: int = option(
        0,
        "ws.readBufferSize",
        "readBufferSize",
        minimum=0,
        doc="SO_RCVBUF of the first hop's socket when > 0",
    )
    write_buffer_size: int = option(
        0,
        "ws.writeBufferSize",
        "writeBufferSize",
        minimum=0,
        doc="largest frame payload we send; 0 = no limit",
    )
    enable_compression: bool = _compression("offer permessage-deflate; used if the server agrees")
    # GOST (x/dialer/ws, x/dialer/mws): TCP keepalive on the dialed socket
    tcp_keepalive: bool = unsupported("tcp.keepalive", default=False)
    tcp_keepalive_idle: float = unsupported("tcp.keepalive.idle", default=0.0)
    tcp_keepalive_interval: float = unsupported("tcp.keepalive.interval", default=0.0)
    tcp_keepalive_count: int = unsupported("tcp.keepalive.count", default=0)


def ws_endpoint_class(compressed: bool) -> type[WSEndpoint]:
    """The endpoint for a negotiated websocket: with permessage-deflate or without."""
    return DeflateWSEndpoint if compressed else WSEndpoint


def _timeout(value: float) -> float | None:
    return value if value and value > 0 else None


LINGER = 1.0


def _answer_and_close(ep: TCPEndpoint, response: bytes) -> None:
    """Send an error response, then close without a reset.

    Closing a socket with unread request bytes makes the kernel send RST,
    which can destroy the response before the client reads it; so we shut
    down our sending side and keep reading (and discarding) for a moment,
    as Go's server does.
    """
    ep.write(response)
    ep.write_eof()
    ep.attach(_Discard())
    asyncio.get_running_loop().call_later(LINGER, ep.close)


class _Discard:
    """A sink that drops what a rejected client still sends."""

    def on_data(self, ep, data) -> None:
        pass

    def on_eof(self, ep) -> None:
        ep.close()

    def on_close(self, ep, exc) -> None:
        pass

    def on_write_paused(self, ep) -> None:
        pass

    def on_write_resumed(self, ep) -> None:
        pass


def forwarded_ip(req: http1.Request) -> str:
    """The client a proxy in front named, as GOST reads it (CF-Connecting-IP, the first
    X-Forwarded-For entry, X-Real-IP), or ""."""
    fwd = req.get("X-Forwarded-For", "") or ""
    return (
        (req.get("CF-Connecting-IP", "") or "").strip()
        or fwd.split(",")[0].strip()
        or (req.get("X-Real-IP", "") or "").strip()
    )


def _ip_or_empty(text: str) -> str:
    if not text:  # the common case: no proxy header, so no exception to pay for
        return ""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return ""


def client_address(req: http1.Request, peer: str) -> str:
    """The client as a log names it: X-Forwarded-For / X-Real-IP when a proxy set them."""
    real = forwarded_ip(req)
    return f"{real} (via {peer})" if real else peer


class _Upgrade:
    """The server side of one websocket upgrade, as callbacks of the accepted endpoint.

    Bytes are gathered in the endpoint's arrival callback until the request head
    is complete, then answered in the same call: no task, no coroutine, no
    waiter future per connection. ``handshakeTimeout`` and ``readHeaderTimeout``
    start together at accept and both end with the head (the answer is written
    at once), so one timer serves both: the shorter.
    """

    __slots__ = ("listener", "ep", "on_accept", "buf", "timer", "_waiter")

    def __init__(self, listener: WSListener, ep: TCPEndpoint, on_accept) -> None:
        self.listener = listener
        self.ep = ep
        self.on_accept = on_accept
        self.buf = bytearray()
        self.timer: asyncio.TimerHandle | None = None
        self._waiter: asyncio.Future | None = None
        limit = listener._upgrade_limit
        if limit is not None:
            self.timer = asyncio.get_running_loop().call_later(limit, self._timed_out)
        listener._upgrading.add(self)
        ep.attach(self)

    def waiter(self) -> asyncio.Future:
        """Done when this upgrade is (a drain waits on it); cancelling it aborts the
        connection. Made only when asked: a connection that is never drained pays none."""
        if self._waiter is None:
            self._waiter = asyncio.get_running_loop().create_future()
            self._waiter.add_done_callback(self._waiter_done)
        return self._waiter

    def _waiter_done(self, fut: asyncio.Future) -> None:
        if fut.cancelled() and self in self.listener._upgrading:
            self._stop()
            self.ep.abort()  # the drain gave up on it: no half-open connection

    def _stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.listener._upgrading.discard(self)
        self.ep.detach()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def on_data(self, ep: TCPEndpoint, data) -> None:
        buf = self.buf
        start = max(0, len(buf) - 3)
        buf += data
        end = buf.find(b"\r\n\r\n", start)
        listener = self.listener
        if end < 0:
            if len(buf) > http1.MAX_HEAD:
                self._stop()
                listener._reject(
                    ep, 431, "Request Header Fields Too Large", "request header too large"
                )
                listener._failed("too_large")
            return
        end += 4
        self._stop()
        if len(buf) > end:  # the client's first frames: the websocket reads them
            ep.unread(bytes(buf[end:]))
        try:
            listener._serve_head(ep, bytes(buf[:end]), self.on_accept)
        except ConnectionError:
            listener._failed("closed")
            ep.abort()  # gone while answering: nothing to say
        except Exception:  # never let one client's failure reach the loop's handler
            log.exception("%s %s: upgrade failed", listener.scheme, ep.peer)
            listener._failed("error")
            ep.abort()

    def on_eof(self, ep: TCPEndpoint) -> None:
        self._stop()
        self.listener._failed("closed")
        ep.abort()  # gone before upgrading: nothing to say

    def on_close(self, ep: TCPEndpoint, exc: BaseException | None) -> None:
        if self in self.listener._upgrading:
            self.listener._failed("closed")
        self._stop()

    def on_write_paused(self, ep: TCPEndpoint) -> None:
        pass

    def on_write_resumed(self, ep: TCPEndpoint) -> None:
        pass

    def _timed_out(self) -> None:
        self.timer = None
        o = self.listener.spec.options
        scheme, peer = self.listener.scheme, self.ep.peer
        if _timeout(o.read_header_timeout) == _shorter(o.handshake_timeout, o.read_header_timeout):
            log.info("%s %s: no request head within %gs", scheme, peer, o.read_header_timeout)
        else:
            log.info(
                "%s %s: upgrade timed out (handshakeTimeout %gs)", scheme, peer, o.handshake_timeout
            )
        self._stop()
        self.listener._failed("timeout")
        self.ep.abort()


def _shorter(*timeouts: float) -> float | None:
    """The shortest of the timeouts that are set (> 0), or None."""
    set_ = [t for t in timeouts if t and t > 0]
    return min(set_) if set_ else None


class WSListener(Listener[WSListenerOptions]):
    """HTTP/1.1 upgrade server; each websocket is one accepted endpoint."""

    secure = False
    scheme = "ws"

    def __init__(self, spec: ListenerSpec[WSListenerOptions]) -> None:
        super().__init__(spec)
        self._servers: list[asyncio.AbstractServer] = []
        #: wss: the TLS handshakes in flight (tasks); every ws upgrade in flight
        self._pending: set[asyncio.Task] = set()
        self._upgrading: set[_Upgrade] = set()
        o = spec.options
        #: handshakeTimeout and readHeaderTimeout, the shorter (one timer per upgrade)
        self._upgrade_limit = _shorter(o.handshake_timeout, o.read_header_timeout)
        #: GOST's own upgrade request to this path, answered without a parse
        self._plain_key = wshandshake.plain_request_matcher(o.path)
        self._extra = list((o.header or {}).items())
        for name, _ in self._extra:  # fail at start, not on the first client
            if not http1.is_token(name):
                from gostfast.config.errors import ConfigError

                raise ConfigError(
                    f"{spec.service} listener header", f"invalid header name {name!r}"
                )

    async def start(self, on_accept: Callable[[Endpoint], None]) -> None:
        opts = self.spec.options
        listener = self

        class Accepted(TCPEndpoint):
            def connection_made(self, transport) -> None:
                super().connection_made(transport)
                if not listener.admit_connection(self):
                    return
                sock = transport.get_extra_info("socket")
                apply_keepalive(sock, opts)
                if opts.read_buffer_size and sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, opts.read_buffer_size)
                _Upgrade(listener, self, on_accept)

        self._servers = await open_servers(self.spec, Accepted)

    def _failed(self, reason: str) -> None:
        """A websocket upgrade failed: gostfast_ws_handshake_failures_total{reason}."""
        m = metrics.active
        if m is not None:
            m.ws_failure(self.spec.service, reason)

    def _serve_head(self, ep: TCPEndpoint, head: bytes, on_accept) -> None:
        """Answer one complete request head: the 101 and a websocket, or an error response."""
        plain = self._plain_key
        key = plain(head) if plain is not None else None
        if key is not None:  # what GOST's (gorilla's) dialer sends: valid, no proxy, no deflate
            ep.write(wshandshake.build_server_response(key, self._extra))
            self._open_ws(ep, False, ep.peer, ep.client_ip, on_accept)
            return
        o = self.spec.options
        try:
            req = http1.parse_request(head)
        except http1.HTTPHeadError as exc:
            self._reject(ep, 400, "Bad Request", f"malformed request: {exc}")
            self._failed("malformed")
            return
        try:
            key = wshandshake.check_server_request(
                req, wshandshake.path_matches(o.path, req.target)
            )
        except wshandshake.HandshakeRejected as exc:
            log.warning(
                "%s %s: %s %s: %s",
                self.scheme,
                client_address(req, ep.peer),
                req.method,
                req.target,
                exc,
            )
            _answer_and_close(ep, wshandshake.build_rejection(exc))
            self._failed(exc.reason)
            return
        forwarded = _ip_or_empty(forwarded_ip(req))
        admission = self.spec.admission
        if forwarded and admission and not admission.admits(forwarded):
            # judged in addition to the TCP peer (admitted at accept), never instead
            log.info(
                "%s %s: admission: forwarded client %s is denied",
                self.scheme,
                client_address(req, ep.peer),
                forwarded,
            )
            ep.close()  # no answer to the upgrade, as to a client denied at accept
            self._failed("admission")
            return
        compress = o.enable_compression and wshandshake.offers_deflate(req)
        ep.write(wshandshake.build_server_response(key, self._extra, compress))
        self._open_ws(
            ep, compress, client_address(req, ep.peer), forwarded or ep.client_ip, on_accept
        )

    def _open_ws(
        self, ep: TCPEndpoint, compress: bool, peer: str, client_ip: str, on_accept
    ) -> None:
        """The 101 is written: the websocket over ``ep``, handed on."""
        o = self.spec.options
        ws = ws_endpoint_class(compress)(
            ep,
            is_server=True,
            max_message_size=o.max_message_size,
            max_frame_size=o.write_buffer_size,
            peer=peer,
        )
        # for logs and handlers: the client a proxy in front named, else the TCP peer;
        # limiters key on ``peer_ip`` (the TCP peer), which a header cannot choose
        ws.client_ip = client_ip
        self._accepted_ws(ws, on_accept)

    def _accepted_ws(self, ws: Endpoint, on_accept: Callable[[Endpoint], None]) -> None:
        """A websocket is ready: for ws it is the accepted connection (mws overrides)."""
        on_accept(ws)

    def _reject(self, ep: TCPEndpoint, status: int, text: str, why: str) -> None:
        log.warning("%s %s: %s (answered %d)", self.scheme, ep.peer, why, status)
        body = f"{status} {text}".encode()
        _answer_and_close(
            ep,
            b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n%s"
            % (status, text.encode(), len(body), body),
        )

    def close(self) -> None:
        """Stop accepting. Upgrades under way are left to finish (bounded by their
        timeouts) and are served: a connection this listener accepted just before a
        reload or a live update closed it is answered, not left hanging or reset."""
        close_servers(self._servers)

    def handshakes(self) -> set[asyncio.Future]:
        return set(self._pending) | {u.waiter() for u in self._upgrading}

    def addresses(self) -> list[str]:
        return server_addresses(self._servers)


class _AcceptedTLS(TCPEndpoint):
    """A wss/mwss listener's endpoint: ``release`` (its admission slot) runs when the
    connection ends once TLS is up; a failed handshake releases it where it fails.

    One class for every connection: it was made per connection inside the handshake's
    coroutine, and making a class (its slots, its MRO) cost ~100k instructions per
    wss connection, more than the rest of the listener's own Python."""

    __slots__ = ("_release",)

    def __init__(self, release: Callable[[], None] | None) -> None:
        super().__init__()
        self._release = release

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.on_lost = self._release  # from now on freed when the connection ends


class WSSListener(WSListener):
    """``ws`` over TLS (the loop's TLS, terminated before HTTP as GOST does).

    Connections are accepted in Python (transport/accept.py) so that the
    admission and the connection limiter judge the TCP peer before TLS, as
    GOST's listener: a refused client gets no handshake, nothing is written.
    """

    secure = True
    scheme = "wss"

    def __init__(self, spec: ListenerSpec[WSListenerOptions]) -> None:
        super().__init__(spec)
        self._acceptor: Acceptor | None = None
        self._ssl: ssl.SSLContext | None = None

    async def start(self, on_accept: Callable[[Endpoint], None]) -> None:
        from gostfast.tlsutil.contexts import server_context

        loop = asyncio.get_running_loop()
        self._ssl = server_context(self.spec.tls, self.spec.global_tls, self.spec.log)
        spec = self.spec
        # under --workers the supervisor bound the sockets (transport/tcp.py open_servers)
        socks = list(spec.sockets) or bind_sockets(
            spec.host, spec.port, listen_backlog(spec.options.backlog)
        )
        self._acceptor = Acceptor(
            loop, socks, lambda sock, addr: self._accepted_socket(sock, addr, on_accept)
        )

    def _accepted_socket(self, sock: socket.socket, addr, on_accept) -> None:
        peer = peer_text(addr)
        admitted, release = self.judge_peer(addr[0], peer)
        if not admitted:
            sock.close()  # as GOST: a plain close, nothing read or written
            return
        opts = self.spec.options
        apply_keepalive(sock, opts)
        if opts.read_buffer_size:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, opts.read_buffer_size)
        task = asyncio.get_running_loop().create_task(
            self._tls_then_upgrade(sock, peer, release, on_accept)
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _tls_then_upgrade(self, sock, peer: str, release, on_accept) -> None:
        """TLS within ``readHeaderTimeout`` (Go's http.Server bounds a TLS handshake by it;
        none set: the loop's 60 s), then the websocket upgrade."""

        ep = _AcceptedTLS(release)
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            # uvloop answers with its SSL protocol, not ours: the endpoint is ``ep``
            await loop.connect_accepted_socket(
                lambda: ep,
                sock,
                ssl=self._ssl,
                ssl_handshake_timeout=_timeout(self.spec.options.read_header_timeout),
            )
        except BaseException as exc:
            if release is not None:
                release()
            if isinstance(exc, (OSError, ssl.SSLError, asyncio.TimeoutError, EOFError)):
                reason = describe_start_tls_failure(exc)
                log.info("%s %s: TLS handshake failed: %s", self.scheme, peer, reason)
                self._failed("tls")
                return
            raise
        m = metrics.active
        if m is not None:
            m.tls_handshake_took(self.spec.service, loop.time() - start)
        _Upgrade(self, ep, on_accept)

    def close(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
        super().close()

    def addresses(self) -> list[str]:
        return socket_addresses(self._acceptor.socks) if self._acceptor else []


@functools.lru_cache(maxsize=256)
def _request_parts(host: str, path: str, headers: tuple, compress: bool) -> tuple[bytes, bytes]:
    """A dialer's upgrade request, built and checked once per node (see client_request_parts)."""
    return wshandshake.client_request_parts(host, path, headers, compress)


async def ws_handshake(
    raw: Endpoint, addr: str, options: WSDialerOptions, log_: logging.Logger
) -> WSEndpoint:
    """GOST's client upgrade over ``raw``; returns the websocket endpoint or raises HandshakeError."""
    host = options.host or addr
    key = wshandshake.make_key(random_pool.take(16))
    try:
        prefix, suffix = _request_parts(
            host,
            options.path,
            tuple((options.header or {}).items()),
            options.enable_compression,
        )
    except ValueError as exc:
        raise HandshakeError(f"ws {addr}: {exc}") from None
    raw.write(b"%s%s%s" % (prefix, key.encode("ascii"), suffix))
    try:
        read = raw.readuntil(b"\r\n\r\n", http1.MAX_HEAD)
        limit = options.handshake_timeout  # GOST's default, 0: none, so no within() frame
        head = await (within(limit, read) if limit > 0 else read)
        if wshandshake.is_plain_accept(head, key):  # what gorilla and gostfast answer
            compress = False
        else:
            resp = http1.parse_response(head)
            wshandshake.check_client_response(resp, key)
            compress = options.enable_compression and wshandshake.accepts_deflate(resp)
    except asyncio.TimeoutError:
        raise HandshakeError(
            f"ws {addr}: no upgrade response within {options.handshake_timeout:g}s"
        ) from None
    except asyncio.IncompleteReadError:
        raise HandshakeError(f"ws {addr}: connection closed during the upgrade") from None
    except asyncio.LimitOverrunError:
        raise HandshakeError(f"ws {addr}: upgrade response header too large") from None
    except (http1.HTTPHeadError, wshandshake.HandshakeError) as exc:
        raise HandshakeError(f"ws {addr}: bad handshake: {exc}") from None
    ws = ws_endpoint_class(compress)(
        raw,
        is_server=False,
        max_message_size=options.max_message_size,
        max_frame_size=options.write_buffer_size,
    )
    if options.keepalive:
        ws.start_keepalive(options.ttl)
    return ws


class WSDialer(Dialer[WSDialerOptions]):
    secure = False

    def __init__(self, spec: DialerSpec[WSDialerOptions]) -> None:
        super().__init__(spec)
        self._ssl = None
        if self.secure:
            from gostfast.tlsutil.contexts import client_context

            self._ssl = client_context(spec.tls, spec.log)

    async def transport(self, addr: str, open_conn: OpenConn) -> Endpoint:
        """The raw connection to the node, with TLS on it for wss."""
        raw = await open_conn()
        o = self.spec.options
        if o.read_buffer_size and isinstance(raw, TCPEndpoint) and raw.transport is not None:
            sock = raw.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, o.read_buffer_size)
        if self._ssl is not None:
            from gostfast.config.url import split_host_port
            from gostfast.tlsutil.contexts import server_hostname_for
            from gostfast.tlsutil.endpoint import wrap_client

            host, _ = split_host_port(addr, addr)
            try:
                raw = await wrap_client(
                    raw,
                    self._ssl,
                    server_hostname_for(self.spec.tls, host),
                    _timeout(o.handshake_timeout) or 30.0,
                )
            except BaseException:
                raw.abort()
                raise
        return raw

    async def dial(self, addr: str, open_conn: OpenConn) -> Endpoint:
        if self._ssl is None and not self.spec.options.read_buffer_size:
            raw = await open_conn()  # transport()'s plain case, without its coroutine
        else:
            raw = await self.transport(addr, open_conn)
        try:
            return await ws_handshake(raw, addr, self.spec.options, self.spec.log)
        except BaseException:
            raw.abort()
            raise


class WSSDialer(WSDialer):
    secure = True


registry.listeners.register("ws", WSListener, WSListenerOptions)
registry.listeners.register("wss", WSSListener, WSListenerOptions)
registry.dialers.register("ws", WSDialer, WSDialerOptions)
registry.dialers.register("wss", WSSDialer, WSDialerOptions)
