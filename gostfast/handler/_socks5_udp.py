"""SOCKS5 UDP ASSOCIATE (RFC 1928 section 7) without a chain, as GOST serves it.

GOST's ``handleUDP`` (x/handler/socks/v5/udp.go), ``socks.UDPConn``
(x/internal/util/socks/conn.go) and ``udp.Relay`` (x/internal/net/udp/relay.go),
kept here:

* The client-facing UDP socket is bound on the IP of the TCP connection the
  client came in on (so replies leave from BND.ADDR), on a port the system
  picks, or one from ``udp.bindRange.min..max`` when that range is set (scanned
  from a random offset, at most 64 tries, moving on only when a port is in
  use). The relay socket that talks to targets is bound on all interfaces
  (dual-stack when the host has IPv6). Either failing: reply 0x01.
* Reply 0x00 with BND.ADDR = that IP (``publicAddr`` instead when it is an IP
  literal) and BND.PORT = the client-facing port. DST.ADDR/DST.PORT of the
  request are ignored, as GOST ignores them.
* Client datagrams are accepted only from the IP of the TCP control connection
  (any port); replies go to the source address of the latest one accepted.
* A client datagram is read into a ``udpBufferSize`` buffer (longer ones are cut
  there, as Go's ReadFrom cuts them), its header is stripped and the payload
  goes to DST.ADDR:DST.PORT from the relay socket. A domain name is resolved
  (the first IPv4 address is preferred, as GOST's resolvePacketConn does).
* Datagrams arriving at the relay socket, from any source, get the header
  ``00 00 00 ATYP source-IP source-port`` (IPv4 as ATYP 1) and go to the
  client; the payload is cut at ``udpBufferSize`` as GOST's relay buffer cuts it.
* The association lives while the TCP control connection does: bytes on it
  are read and thrown away; EOF or close ends the association, the UDP sockets
  are closed and the TCP connection is closed.

Where gostfast differs, on purpose:

* A datagram with FRAG != 0 is dropped (RFC 1928: an implementation without
  reassembly MUST drop it). GOST ignores FRAG and relays such a fragment as if
  it were a whole datagram.
* A malformed datagram (bad ATYP, cut-off header) is dropped; in GOST the read
  error stops the client-to-target direction of the relay for good.
* A datagram from the target that arrives before the client sent anything is
  dropped (GOST's relay goroutine fails on it and stops that direction).

Memory is bounded: nothing is queued per datagram except while a domain name
resolves (at most ``MAX_RESOLVING`` names, ``MAX_QUEUED_PER_NAME`` datagrams
each); a socket whose send buffer holds more than ``WRITE_LIMIT`` bytes drops
further datagrams (UDP may drop; queueing would not be bounded).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import socket

from gostfast.chain.bypass import Bypass
from gostfast.config.url import join_host_port
from gostfast.endpoint import Endpoint
from gostfast.handler._conn_addr import unmap_ip
from gostfast.proto import socks5 as s5
from gostfast.proto.addr import ATYP_DOMAIN, ATYP_IPV6, address_type
from gostfast.proto.errors import ProtocolError

DEFAULT_BUFFER_SIZE = 4096
"""GOST's ``udpBufferSize`` when it is unset or <= 0 (x/internal/util/socks, udp.Relay)."""

WRITE_LIMIT = 256 * 1024
MAX_RESOLVING = 16
MAX_QUEUED_PER_NAME = 32
RESOLVED_CACHE_SIZE = 64
RESOLVED_TTL = 30.0
_BIND_RANGE_TRIES = 64


def _is_ip(host: str) -> bool:
    return bool(host) and address_type(host) != ATYP_DOMAIN


class _Side(asyncio.DatagramProtocol):
    """One UDP socket of an association; datagrams go to ``on_datagram``."""

    def __init__(self, on_datagram, name: str, log: logging.Logger) -> None:
        self.on_datagram = on_datagram
        self.name = name
        self.log = log

    def datagram_received(self, data: bytes, addr) -> None:
        self.on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        self.log.debug("%s: udp: %s", self.name, exc)


def _bind_udp(host: str, lo: int, hi: int) -> socket.socket:
    """A UDP socket bound on ``host``, on port lo..hi when that is a range, else any port."""
    family = socket.AF_INET6 if address_type(host) == ATYP_IPV6 else socket.AF_INET
    ports = [0]
    if lo > 0 and hi >= lo:
        span = hi - lo + 1
        offset = random.randrange(span)
        ports = [lo + (offset + i) % span for i in range(min(span, _BIND_RANGE_TRIES))]
    last: OSError | None = None
    for port in ports:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            last = exc
            if exc.errno != errno.EADDRINUSE:
                raise
            continue
        sock.setblocking(False)
        return sock
    assert last is not None
    raise last


def _relay_socket() -> tuple[socket.socket, bool]:
    """The target-facing socket on all interfaces: dual-stack if possible, else IPv4."""
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    except OSError:
        sock = None
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind(("::", 0))
            sock.setblocking(False)
            return sock, True
        except OSError:
            sock.close()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("0.0.0.0", 0))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock, False


def _backlogged(transport: asyncio.DatagramTransport) -> bool:
    size = getattr(transport, "get_write_buffer_size", None)
    return size is not None and size() > WRITE_LIMIT


class UdpAssociation:
    """The two UDP sockets of one association and the datagram rules between them."""

    def __init__(
        self,
        client_ip: str,
        buffer_size: int,
        name: str,
        log: logging.Logger,
        bypass: Bypass | None = None,
    ) -> None:
        self.client_ip = client_ip
        #: the service's bypass: datagrams to or from a bypassed address are dropped (GOST)
        self.bypass = bypass
        self.buffer_size = buffer_size if buffer_size > 0 else DEFAULT_BUFFER_SIZE
        self.name = name
        self.log = log
        #: where replies go: the source of the latest datagram accepted from the client
        self.client_addr: tuple | None = None
        self.port = 0
        self.to_target = 0
        self.to_client = 0
        self.dropped = 0
        self._client_side: asyncio.DatagramTransport | None = None
        self._relay_side: asyncio.DatagramTransport | None = None
        self._relay_sock: socket.socket | None = None
        self._dual_stack = False
        self._resolving: dict[str, list[tuple[bytes, int]]] = {}
        self._resolved: dict[str, tuple[str, float]] = {}
        self._tasks: set[asyncio.Task] = set()
        self._closed = False

    async def open(self, bind_host: str, bind_min: int = 0, bind_max: int = 0) -> None:
        """Bind both sockets (OSError if either cannot be bound)."""
        loop = asyncio.get_running_loop()
        csock = _bind_udp(bind_host, bind_min, bind_max)
        try:
            rsock, self._dual_stack = _relay_socket()
        except BaseException:
            csock.close()
            raise
        try:
            self._client_side, _ = await loop.create_datagram_endpoint(
                lambda: _Side(self.from_client, self.name, self.log), sock=csock
            )
        except BaseException:
            csock.close()
            rsock.close()
            raise
        try:
            self._relay_side, _ = await loop.create_datagram_endpoint(
                lambda: _Side(self.from_target, self.name, self.log), sock=rsock
            )
        except BaseException:
            rsock.close()
            self.close()
            raise
        self._relay_sock = rsock
        self.port = csock.getsockname()[1]

    def close(self) -> None:
        self._closed = True
        for t in (self._client_side, self._relay_side):
            if t is not None:
                t.close()
        for task in self._tasks:
            task.cancel()
        self._resolving.clear()

    # ------------------------------------------------------------ client -> target
    def from_client(self, data: bytes, addr: tuple) -> None:
        if self._closed:
            return
        if unmap_ip(addr[0]) != self.client_ip:
            self._drop("from %s: not the client's address %s", addr[0], self.client_ip)
            return
        self.client_addr = addr
        if len(data) > self.buffer_size:
            data = data[: self.buffer_size]
        try:
            parsed = s5.parse_udp_header(data)
        except ProtocolError as exc:
            self._drop("from the client: %s", exc)
            return
        if parsed is None:
            self._drop("from the client: header cut short (%d bytes)", len(data))
            return
        header, used = parsed
        if self.bypass and self.bypass.contains(join_host_port(header.host, header.port), "udp"):
            self._drop("to %s:%d: bypassed", header.host, header.port)
            return
        payload = memoryview(data)[used:]
        if address_type(header.host) == ATYP_DOMAIN:
            self._resolve_then_send(header.host, header.port, payload)
        else:
            self._send_to_target(header.host, header.port, payload)

    def _send_to_target(self, ip: str, port: int, payload) -> None:
        t = self._relay_side
        if t is None or self._closed:
            return
        ip = unmap_ip(ip)
        if ":" in ip:
            if not self._dual_stack:
                self._drop("to %s: no IPv6 relay socket", ip)
                return
            dest = (ip, port)
        else:
            dest = ("::ffff:" + ip, port) if self._dual_stack else (ip, port)
        if _backlogged(t):
            self._drop("to %s: send buffer full", ip)
            return
        try:
            if len(payload):
                t.sendto(payload, dest)
            elif self._relay_sock is not None:  # the transport skips empty datagrams; Go sends them
                self._relay_sock.sendto(b"", dest)
        except (OSError, ValueError) as exc:
            self._drop("to %s:%d: %s", ip, port, exc)
            return
        self.to_target += 1

    def _resolve_then_send(self, name: str, port: int, payload) -> None:
        loop = asyncio.get_running_loop()
        hit = self._resolved.get(name)
        if hit is not None and hit[1] > loop.time():
            self._send_to_target(hit[0], port, payload)
            return
        queue = self._resolving.get(name)
        if queue is not None:
            if len(queue) < MAX_QUEUED_PER_NAME:
                queue.append((bytes(payload), port))
            else:
                self._drop("to %s: too many datagrams wait for its address", name)
            return
        if len(self._resolving) >= MAX_RESOLVING:
            self._drop("to %s: too many names being resolved", name)
            return
        self._resolving[name] = [(bytes(payload), port)]
        task = loop.create_task(self._resolve(name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve(self, name: str) -> None:
        loop = asyncio.get_running_loop()
        ip = None
        try:
            infos = await loop.getaddrinfo(name, None, type=socket.SOCK_DGRAM)
        except (OSError, UnicodeError) as exc:
            self.log.debug("%s: udp: resolve %s: %s", self.name, name, exc)
        else:
            usable = [i for i in infos if i[0] == socket.AF_INET or self._dual_stack]
            pick = next(
                (i for i in usable if i[0] == socket.AF_INET), usable[0] if usable else None
            )
            ip = pick[4][0] if pick is not None else None
        queued = self._resolving.pop(name, [])
        if self._closed:
            return
        if ip is None:
            self.dropped += len(queued)
            return
        if len(self._resolved) >= RESOLVED_CACHE_SIZE:
            self._resolved.pop(next(iter(self._resolved)))
        self._resolved[name] = (ip, loop.time() + RESOLVED_TTL)
        for payload, port in queued:
            self._send_to_target(ip, port, payload)

    # ------------------------------------------------------------ target -> client
    def from_target(self, data: bytes, addr: tuple) -> None:
        t = self._client_side
        if self._closed or t is None:
            return
        if self.client_addr is None:
            self._drop("from %s: the client has not sent anything yet", addr[0])
            return
        if self.bypass and self.bypass.contains(join_host_port(unmap_ip(addr[0]), addr[1]), "udp"):
            self._drop("from %s:%d: bypassed", addr[0], addr[1])
            return
        try:
            header = s5.build_udp_header(unmap_ip(addr[0]), addr[1])
        except ValueError as exc:
            self._drop("from %s: %s", addr[0], exc)
            return
        if len(data) > self.buffer_size:
            data = data[: self.buffer_size]
        if _backlogged(t):
            self._drop("to the client: send buffer full")
            return
        try:
            t.sendto(header + data, self.client_addr)
        except (OSError, ValueError) as exc:
            self._drop("to the client: %s", exc)
            return
        self.to_client += 1

    def _drop(self, fmt: str, *args) -> None:
        self.dropped += 1
        self.log.debug("%s: udp: datagram dropped " + fmt, self.name, *args)


class _ControlWatch:
    """Sink on the TCP control connection: bytes are thrown away, EOF/close ends it."""

    __slots__ = ("gone",)

    def __init__(self) -> None:
        self.gone: asyncio.Future = asyncio.get_running_loop().create_future()

    def on_data(self, ep: Endpoint, data) -> None:
        pass  # GOST: io.Copy(io.Discard, conn)

    def on_eof(self, ep: Endpoint) -> None:
        if not self.gone.done():
            self.gone.set_result(None)

    def on_close(self, ep: Endpoint, exc: BaseException | None) -> None:
        if not self.gone.done():
            self.gone.set_result(None)

    def on_write_paused(self, ep: Endpoint) -> None:
        pass

    def on_write_resumed(self, ep: Endpoint) -> None:
        pass


async def serve_udp_associate(
    ep: Endpoint,
    *,
    local_ip: str | None,
    client_ip: str | None,
    buffer_size: int = DEFAULT_BUFFER_SIZE,
    bind_min: int = 0,
    bind_max: int = 0,
    public_addr: str = "",
    log: logging.Logger,
    bypass: Bypass | None = None,
) -> None:
    """Serve one UDP ASSOCIATE on ``ep`` (handshake done, no reply sent yet)."""
    if client_ip is None:
        log.info("%s: socks5 udp: the client's IP is unknown", ep.peer)
        ep.write(s5.build_reply(s5.REP_GENERAL_FAILURE))
        ep.close()
        return
    bind_host = local_ip or "0.0.0.0"
    assoc = UdpAssociation(client_ip, buffer_size, ep.peer, log, bypass)
    try:
        try:
            await assoc.open(bind_host, bind_min, bind_max)
        except OSError as exc:
            log.info("%s: socks5 udp: cannot bind on %s: %s", ep.peer, bind_host, exc)
            ep.write(s5.build_reply(s5.REP_GENERAL_FAILURE))
            ep.close()
            return
        reply_host = public_addr if _is_ip(public_addr) else bind_host
        ep.write(s5.build_reply(s5.REP_SUCCEEDED, reply_host, assoc.port))
        log.debug("%s: socks5 udp: associated on %s:%d", ep.peer, bind_host, assoc.port)
        watch = _ControlWatch()
        ep.attach(watch)
        await watch.gone
        ep.close()
    finally:
        assoc.close()
        log.debug(
            "%s: socks5 udp: association ended (%d datagrams to targets, %d to the client, "
            "%d dropped)",
            ep.peer,
            assoc.to_target,
            assoc.to_client,
            assoc.dropped,
        )
