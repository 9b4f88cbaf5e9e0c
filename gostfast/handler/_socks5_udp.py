"""SOCKS5 UDP ASSOCIATE (RFC 1928 section 7), as GOST serves it, and GOST's UDP-TUN.

GOST's ``handleUDP`` (x/handler/socks/v5/udp.go), ``socks.UDPConn``
(x/internal/util/socks/conn.go) and ``udp.Relay`` (x/internal/net/udp/relay.go),
kept here:

* The client-facing UDP socket is bound on the IP of the TCP connection the
  client came in on (so replies leave from BND.ADDR), on a port the system
  picks, or one from ``udp.bindRange.min..max`` when that range is set (scanned
  from a random offset, at most 64 tries, moving on only when a port is in
  use). Then the upstream is opened, before any reply (GOST: RFC 1928 section
  7): without a chain a UDP socket on all interfaces (``udp.direct``), with
  one a UDP-TUN stream through it to the last node (``Router.dial_udp``).
  Either failing: reply 0x01.
* Reply 0x00 with BND.ADDR = that IP (``publicAddr`` instead when it is an IP
  literal) and BND.PORT = the client-facing port. DST.ADDR/DST.PORT of the
  request are ignored, as GOST ignores them.
* Client datagrams are accepted only from the IP of the TCP control connection
  (any port); replies go to the source address of the latest one accepted.
* A client datagram is read into a ``udpBufferSize`` buffer (longer ones are cut
  there, as Go's ReadFrom cuts them), its header is stripped and the payload
  goes to DST.ADDR:DST.PORT through the upstream (a direct one resolves a
  domain name, the first IPv4 address preferred, as GOST's resolvePacketConn;
  a chain carries the name to the last node as it is).
* Datagrams coming back through the upstream, from any source, get the header
  ``00 00 00 ATYP source-IP source-port`` (IPv4 as ATYP 1) and go to the
  client; the payload is cut at ``udpBufferSize`` as GOST's relay buffer cuts it.
* The association lives while the TCP control connection does: bytes on it
  are read and thrown away; EOF or close ends the association, the UDP sockets
  are closed and the TCP connection is closed. The upstream stream ending (a
  chain's connection lost) ends it too.

UDP-TUN (command 0xF3, DST port 0, gated by ``udp``) is the same relay with
the client side on the SOCKS stream itself: UDP-TUN frames name the target,
replies carry the source (``udp.stream``); reply 0x00 with BND = the upstream's
local address. GOST's BIND flavour (a non-zero port) is not served.

Where gostfast differs, on purpose:

* A datagram with FRAG != 0 is dropped (RFC 1928: an implementation without
  reassembly MUST drop it). GOST ignores FRAG and relays such a fragment as if
  it were a whole datagram.
* A malformed datagram (bad ATYP, cut-off header) is dropped; in GOST the read
  error stops the client-to-target direction of the relay for good.
* A datagram from the target that arrives before the client sent anything is
  dropped (GOST's relay goroutine fails on it and stops that direction).

Memory is bounded: a socket or stream whose send buffer holds more than
``WRITE_LIMIT`` bytes drops further datagrams (UDP may drop; queueing would
not be bounded).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import socket
from collections.abc import Awaitable, Callable

from gostfast.chain.bypass import Bypass
from gostfast.endpoint import Endpoint
from gostfast.errors import DialError
from gostfast.proto import socks5 as s5
from gostfast.proto.addr import ATYP_DOMAIN, ATYP_IPV6, address_type, unmap_ip
from gostfast.proto.errors import ProtocolError
from gostfast.udp.direct import DatagramSide, backlogged
from gostfast.udp.packet import DEFAULT_BUFFER_SIZE, PacketTunnel
from gostfast.udp.pipe import BypassGate, pipe_packets, until_either
from gostfast.udp.stream import UdpTunStream

_BIND_RANGE_TRIES = 64

OpenUpstream = Callable[[], Awaitable[PacketTunnel]]


def _is_ip(host: str) -> bool:
    return bool(host) and address_type(host) != ATYP_DOMAIN


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


class UdpAssociation:
    """The client-facing UDP socket of one association and its datagram rules."""

    def __init__(
        self,
        client_ip: str,
        buffer_size: int,
        name: str,
        log: logging.Logger,
        bypass: Bypass | None = None,
    ) -> None:
        self.client_ip = client_ip
        self.buffer_size = buffer_size if buffer_size > 0 else DEFAULT_BUFFER_SIZE
        self.name = name
        self.log = log
        #: where replies go: the source of the latest datagram accepted from the client
        self.client_addr: tuple | None = None
        self.port = 0
        self.to_target = 0
        self.to_client = 0
        self.dropped = 0
        self.upstream: PacketTunnel | None = None
        self._gate = BypassGate(bypass, self._drop)
        self._client_side: asyncio.DatagramTransport | None = None
        self._closed = False

    async def bind(self, bind_host: str, bind_min: int = 0, bind_max: int = 0) -> None:
        """Bind the client-facing socket (OSError if it cannot be bound)."""
        loop = asyncio.get_running_loop()
        csock = _bind_udp(bind_host, bind_min, bind_max)
        try:
            self._client_side, _ = await loop.create_datagram_endpoint(
                lambda: DatagramSide(self.from_client, self.name, self.log), sock=csock
            )
        except BaseException:
            csock.close()
            raise
        self.port = csock.getsockname()[1]

    def connect(self, upstream: PacketTunnel) -> None:
        """Relay between the client socket and ``upstream`` from now on."""
        self.upstream = upstream
        upstream.listen(self.from_target)

    def close(self) -> None:
        self._closed = True
        if self._client_side is not None:
            self._client_side.close()
        if self.upstream is not None:
            self.upstream.close()
            self.dropped += self.upstream.dropped
            self.upstream.dropped = 0

    # ------------------------------------------------------------ client -> target
    def from_client(self, data: bytes, addr: tuple) -> None:
        if self._closed or self.upstream is None:
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
        if self._gate.blocks(header.host, header.port, "to"):
            return
        self.upstream.send(header.host, header.port, memoryview(data)[used:])
        self.to_target += 1

    # ------------------------------------------------------------ target -> client
    def from_target(self, host: str, port: int, data) -> None:
        t = self._client_side
        if self._closed or t is None:
            return
        if self.client_addr is None:
            self._drop("from %s: the client has not sent anything yet", host)
            return
        if self._gate.blocks(host, port, "from"):
            return
        try:
            header = s5.build_udp_header(host, port)
        except ValueError as exc:
            self._drop("from %s: %s", host, exc)
            return
        if len(data) > self.buffer_size:
            data = data[: self.buffer_size]
        if backlogged(t):
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


async def _open(open_upstream: OpenUpstream, ep: Endpoint, log: logging.Logger):
    """The upstream, or None after logging why (the caller replies)."""
    try:
        return await open_upstream()
    except (OSError, DialError) as exc:
        log.info("%s: socks5 udp: no upstream: %s", ep.peer, exc)
        return None


async def serve_udp_associate(
    ep: Endpoint,
    *,
    open_upstream: OpenUpstream,
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
            await assoc.bind(bind_host, bind_min, bind_max)
        except OSError as exc:
            log.info("%s: socks5 udp: cannot bind on %s: %s", ep.peer, bind_host, exc)
            ep.write(s5.build_reply(s5.REP_GENERAL_FAILURE))
            ep.close()
            return
        upstream = await _open(open_upstream, ep, log)
        if upstream is None:
            ep.write(s5.build_reply(s5.REP_GENERAL_FAILURE))
            ep.close()
            return
        assoc.connect(upstream)
        reply_host = public_addr if _is_ip(public_addr) else bind_host
        ep.write(s5.build_reply(s5.REP_SUCCEEDED, reply_host, assoc.port))
        log.debug("%s: socks5 udp: associated on %s:%d", ep.peer, bind_host, assoc.port)
        watch = _ControlWatch()
        ep.attach(watch)
        await until_either(watch.gone, upstream.done)
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


async def serve_udp_tun(
    ep: Endpoint,
    *,
    open_upstream: OpenUpstream,
    buffer_size: int = DEFAULT_BUFFER_SIZE,
    log: logging.Logger,
    bypass: Bypass | None = None,
) -> None:
    """Serve GOST's UDP-TUN (0xF3, port 0) on ``ep``: its frames relayed to the upstream."""
    upstream = await _open(open_upstream, ep, log)
    if upstream is None:
        ep.write(s5.build_reply(s5.REP_GENERAL_FAILURE))
        ep.close()
        return
    ep.write(s5.build_reply(s5.REP_SUCCEEDED, *upstream.local_address()))
    client = UdpTunStream(ep, ep.peer, log, buffer_size if buffer_size > 0 else DEFAULT_BUFFER_SIZE)
    await pipe_packets(client, upstream, bypass=bypass, log=log, what="socks5 udp-tun")
