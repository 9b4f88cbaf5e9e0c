"""The ``udp`` listener: one UDP socket, one association per client address.

As GOST's udp listener (x/listener/udp, x/internal/net/udp): a datagram from
an address not seen before starts an association (the service's handler gets
it as a ``UdpClient``); later ones from that address go to it. Its options:

* ``ttl`` (``keepalive.ttl``, default 5 s): every ttl, an association that
  carried no datagram either way since the last look is closed (so it ends
  between one and two ttl after its last datagram, as GOST's pool sweep).
* ``keepalive`` (default false, as GOST): without it an association ends as
  soon as one datagram went back to the client (one answer per query, the
  DNS pattern); with it, only the ttl ends it.
* ``readBufferSize`` (``udp.bufferSize``, default 4096): a client datagram
  longer than that is dropped with a debug line (Go's ReadFrom would cut it).
* ``readQueueSize`` (default 128): datagrams held for an association whose
  tunnel is still being dialled; past that they are dropped.
* ``backlog`` (default 128): in GOST the queue of associations not yet taken
  by the service; here the handler takes each at once, so it bounds the
  associations alive at once, and a new client past it is dropped (logged).

The service's admission and connection limiter judge each new client address.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass

from gostfast import registry
from gostfast.components import Listener, ListenerSpec
from gostfast.config.options import ComponentOptions, option, unsupported
from gostfast.config.url import join_host_port
from gostfast.proto.addr import unmap_ip
from gostfast.udp.direct import DatagramSide, backlogged
from gostfast.udp.packet import PacketTunnel


@dataclass(frozen=True)
class UDPListenOptions(ComponentOptions):
    """The udp listener's metadata (GOST's x/listener/udp metadata.go)."""

    ttl: float = option(5.0, "ttl", "keepalive.ttl", doc="idle time that ends an association")
    keepalive: bool = option(False, "keepalive", doc="keep an association after its first reply")
    read_buffer_size: int = option(4096, "readBufferSize", "udp.bufferSize", doc="longest datagram")
    read_queue_size: int = option(
        128, "readQueueSize", "recvQueueSize", doc="datagrams held while dialling"
    )
    backlog: int = option(128, "backlog", doc="associations alive at once")
    stateless: bool = unsupported("stateless", default=False)


def _listen_socket(host: str | None, port: int) -> socket.socket:
    """The service's UDP socket: on ``host``, or on every interface (dual-stack when the
    host has IPv6, as Go's ":port"; else IPv4)."""
    if host:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        family, addr = infos[0][0], infos[0][4]
    else:
        family, addr = socket.AF_INET6, ("::", port)
    try:
        sock = socket.socket(family, socket.SOCK_DGRAM)
    except OSError:
        if host:
            raise
        family, addr = socket.AF_INET, ("0.0.0.0", port)
        sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6 and not host:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(addr)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _positive(value, default):
    return value if value and value > 0 else default


class UdpClient(PacketTunnel):
    """One client address of a udp listener, as a datagram tunnel to that client."""

    def __init__(self, listener: UDPListener, addr: tuple, log: logging.Logger) -> None:
        host, port = unmap_ip(addr[0]), addr[1]
        super().__init__(join_host_port(host, port), log)
        self.peer = self.name
        self.peer_ip = self.client_ip = host
        self.addr = addr
        self.idle = False
        self.on_lost: Callable[[], None] | None = None
        self._listener = listener
        self._queue: list[bytes] | None = []

    def feed(self, data: bytes) -> None:
        """A datagram from the client."""
        self.idle = False
        queue = self._queue
        if queue is None:
            self._deliver(self.addr[0], self.addr[1], data)
        elif len(queue) < self._listener.read_queue_size:
            queue.append(data)
        else:
            self.drop("from the client: %d datagrams already wait for the tunnel", len(queue))

    def _start(self) -> None:
        queue, self._queue = self._queue, None
        for data in queue or ():
            self._deliver(self.addr[0], self.addr[1], data)

    def send(self, host: str, port: int, payload) -> None:
        t = self._listener.transport
        if t is None or self.done.done():
            return
        if backlogged(t):
            self.drop("to the client: send buffer full")
            return
        self.idle = False
        t.sendto(payload, self.addr)
        if not self._listener.keepalive:
            self.close()

    def close(self) -> None:
        if self.done.done():
            return
        self._listener.forget(self)
        if self.on_lost is not None:
            on_lost, self.on_lost = self.on_lost, None
            on_lost()
        self._finish()

    def abort(self) -> None:
        self.close()


class UDPListener(Listener[UDPListenOptions]):
    """Binds a UDP socket and turns each new client address into an association."""

    def __init__(self, spec: ListenerSpec[UDPListenOptions]) -> None:
        super().__init__(spec)
        options = spec.options
        self.ttl = _positive(options.ttl, 5.0)
        self.keepalive = options.keepalive
        self.read_buffer_size = _positive(options.read_buffer_size, 4096)
        self.read_queue_size = _positive(options.read_queue_size, 128)
        self.backlog = _positive(options.backlog, 128)
        self.transport: asyncio.DatagramTransport | None = None
        self._clients: dict[tuple, UdpClient] = {}
        self._on_accept: Callable | None = None
        self._sweeper: asyncio.Task | None = None

    async def start(self, on_accept) -> None:
        if self.spec.sockets:
            raise OSError("a udp listener cannot serve sockets bound by --workers (TCP)")
        loop = asyncio.get_running_loop()
        self._on_accept = on_accept
        sock = _listen_socket(self.spec.host, self.spec.port)
        try:
            self.transport, _ = await loop.create_datagram_endpoint(
                lambda: DatagramSide(self._on_datagram, self.spec.service, self.spec.log),
                sock=sock,
            )
        except BaseException:
            sock.close()
            raise
        self._sweeper = loop.create_task(self._sweep())

    def _on_datagram(self, data: bytes, addr: tuple) -> None:
        client = self._clients.get(addr)
        if client is None:
            client = self._admit(addr)
            if client is None:
                return
        if len(data) > self.read_buffer_size:
            client.drop("from the client: %d bytes, longer than readBufferSize", len(data))
            return
        client.feed(data)

    def _admit(self, addr: tuple) -> UdpClient | None:
        log = self.spec.log
        client = UdpClient(self, addr, log)
        if len(self._clients) >= self.backlog:
            log.info("%s: udp: %d associations alive (backlog); dropped", client.peer, self.backlog)
            return None
        admitted, release = self.judge_peer(client.peer_ip, client.peer)
        if not admitted:
            return None
        client.on_lost = release
        self._clients[addr] = client
        assert self._on_accept is not None
        self._on_accept(client)
        return client

    def forget(self, client: UdpClient) -> None:
        if self._clients.get(client.addr) is client:
            del self._clients[client.addr]

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.ttl)
            for client in list(self._clients.values()):
                if client.idle:
                    self.spec.log.debug(
                        "%s: udp: idle for %gs; association ended", client.peer, self.ttl
                    )
                    client.close()
                else:
                    client.idle = True

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for client in list(self._clients.values()):
            client.close()
        if self.transport is not None:
            self.transport.close()

    def addresses(self) -> list[str]:
        if self.transport is None:
            return []
        return [join_host_port(*self.transport.get_extra_info("sockname")[:2])]


registry.listeners.register("udp", UDPListener, UDPListenOptions)
