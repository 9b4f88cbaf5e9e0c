"""The ``tcp`` listener and dialer: plain TCP connections as endpoints."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gostfast import registry
from gostfast.components import Dialer, Listener, ListenerSpec, OpenConn
from gostfast.config.options import ComponentOptions, option, unsupported
from gostfast.endpoint import Endpoint, TCPEndpoint
from gostfast.transport.accept import socket_addresses


@dataclass(frozen=True)
class TCPListenOptions(ComponentOptions):
    """The tcp listener's metadata (GOST's x/listener/tcp metadata.go)."""

    keepalive: bool = option(False, "keepalive", doc="TCP keepalive on accepted sockets")
    keepalive_idle: float = option(0.0, "keepalive.idle")
    keepalive_interval: float = option(0.0, "keepalive.interval")
    keepalive_count: int = option(0, "keepalive.count", minimum=0)
    backlog: int = option(
        0,
        "backlog",
        minimum=0,
        doc="listen(2) queue length; 0 = the system maximum (net.core.somaxconn), as Go's",
    )
    mptcp: bool = unsupported("mptcp", default=False)
    reuseport: bool = unsupported("reuseport", default=False)
    proxyProtocol: str | None = unsupported("proxyprotocol")


@dataclass(frozen=True)
class TCPDialOptions(ComponentOptions):
    """GOST's tcp dialer (x/dialer/tcp): TCP keepalive on the dialed socket, not implemented."""

    keepalive: bool = unsupported("keepalive", default=False)
    keepalive_idle: float = unsupported("keepalive.idle", default=0.0)
    keepalive_interval: float = unsupported("keepalive.interval", default=0.0)
    keepalive_count: int = unsupported("keepalive.count", default=0)


class ServerSocketOptions(Protocol):
    """What a TCP-based listener's options (tcp's, ws's) say about its sockets: the
    listen queue and TCP keepalive on accepted connections, under GOST's names."""

    @property
    def backlog(self) -> int: ...
    @property
    def keepalive(self) -> bool: ...
    @property
    def keepalive_idle(self) -> float: ...
    @property
    def keepalive_interval(self) -> float: ...
    @property
    def keepalive_count(self) -> int: ...


def system_backlog() -> int:
    """The kernel's largest listen queue (net.core.somaxconn), which Go's listeners use.

    A queue smaller than a burst of connects makes the kernel drop SYNs, and
    each dropped client retries only after a second; GOST never has that
    problem below somaxconn, so neither should we.
    """
    try:
        with open("/proc/sys/net/core/somaxconn") as f:
            value = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return socket.SOMAXCONN
    return max(1, min(value, 65535))


def listen_backlog(configured: int | None) -> int:
    """The listen(2) queue for a listener: the ``backlog`` option when set (> 0), else the system's."""
    return configured if configured and configured > 0 else system_backlog()


def server_addresses(servers: list[asyncio.AbstractServer]) -> list[str]:
    """``host:port`` of every socket the servers listen on (``[v6]:port`` for IPv6)."""
    return [addr for server in servers for addr in socket_addresses(server.sockets)]


async def open_servers(spec: ListenerSpec[Any], factory, ssl=None) -> list[asyncio.AbstractServer]:
    """The servers a listener accepts on: its own bind of ``host:port``, or, under the
    supervisor (``--workers``), one server per socket the supervisor bound and shared.

    Only socket creation lives here; what happens to an accepted connection is the
    protocol ``factory``'s business.
    """
    loop = asyncio.get_running_loop()
    backlog = listen_backlog(spec.options.backlog)  # tcp's and ws's: ServerSocketOptions
    if spec.sockets:
        return [
            await loop.create_server(factory, sock=sock, backlog=backlog, ssl=ssl)
            for sock in spec.sockets
        ]
    server = await loop.create_server(
        factory, spec.host, spec.port, backlog=backlog, reuse_address=True, ssl=ssl
    )
    return [server]


def close_servers(servers: list[asyncio.AbstractServer]) -> None:
    for server in servers:
        server.close()


def apply_keepalive(sock: socket.socket | None, options: ServerSocketOptions) -> None:
    """Turn on TCP keepalive with GOST's idle/interval/count options when asked."""
    if sock is None or not options.keepalive:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for value, attr in (
        (options.keepalive_idle, "TCP_KEEPIDLE"),
        (options.keepalive_interval, "TCP_KEEPINTVL"),
    ):
        if value and hasattr(socket, attr):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, attr), max(1, int(value)))
    if options.keepalive_count and hasattr(socket, "TCP_KEEPCNT"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, options.keepalive_count)


class TCPListener(Listener[TCPListenOptions]):
    """Accepts TCP connections; each is a TCPEndpoint handed to the service."""

    def __init__(self, spec: ListenerSpec[TCPListenOptions]) -> None:
        super().__init__(spec)
        self._servers: list[asyncio.AbstractServer] = []

    def _protocol_factory(self, on_accept: Callable[[Endpoint], None]):
        options = self.spec.options
        listener = self

        class Accepted(TCPEndpoint):
            def connection_made(self, transport) -> None:
                super().connection_made(transport)
                if not listener.admit_connection(self):
                    return
                apply_keepalive(transport.get_extra_info("socket"), options)
                on_accept(self)

        return Accepted

    async def start(self, on_accept: Callable[[Endpoint], None]) -> None:
        self._servers = await open_servers(self.spec, self._protocol_factory(on_accept))

    def close(self) -> None:
        close_servers(self._servers)

    def addresses(self) -> list[str]:
        return server_addresses(self._servers)


class TCPDialer(Dialer[TCPDialOptions]):
    """The raw connection is the transport."""

    async def dial(self, addr: str, open_conn: OpenConn) -> Endpoint:
        return await open_conn()


registry.listeners.register("tcp", TCPListener, TCPListenOptions)
registry.dialers.register("tcp", TCPDialer, TCPDialOptions)
