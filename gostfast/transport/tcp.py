"""The ``tcp`` listener and dialer: plain TCP connections as endpoints."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from gostfast import registry
from gostfast.components import Dialer, Listener, OpenConn
from gostfast.config.options import opt, unsupported
from gostfast.endpoint import Endpoint, TCPEndpoint
from gostfast.transport.accept import socket_addresses

#: listener-side TCP socket options shared by every TCP-based listener (GOST's names)
TCP_LISTEN_OPTIONS = (
    opt("keepalive", "bool", False, "keepalive", doc="TCP keepalive on accepted sockets"),
    opt("keepalive_idle", "duration", 0.0, "keepalive.idle"),
    opt("keepalive_interval", "duration", 0.0, "keepalive.interval"),
    opt("keepalive_count", "int", 0, "keepalive.count", minimum=0),
    opt(
        "backlog",
        "int",
        0,
        "backlog",
        minimum=0,
        doc="listen(2) queue length; 0 = the system maximum (net.core.somaxconn), as Go's",
    ),
    unsupported("mptcp", "mptcp", default=False),
    unsupported("reuseport", "reuseport", default=False, kind="bool"),
    unsupported("proxyProtocol", "proxyprotocol"),
)

#: GOST's tcp dialer (x/dialer/tcp): TCP keepalive on the dialed socket, not implemented
TCP_DIAL_OPTIONS = (
    unsupported("keepalive", "keepalive", default=False, kind="bool"),
    unsupported("keepalive_idle", "keepalive.idle", default=0.0, kind="duration"),
    unsupported("keepalive_interval", "keepalive.interval", default=0.0, kind="duration"),
    unsupported("keepalive_count", "keepalive.count", default=0, kind="int"),
)


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


async def open_servers(spec, factory, ssl=None) -> list[asyncio.AbstractServer]:
    """The servers a listener accepts on: its own bind of ``host:port``, or, under the
    supervisor (``--workers``), one server per socket the supervisor bound and shared.

    Only socket creation lives here; what happens to an accepted connection is the
    protocol ``factory``'s business.
    """
    loop = asyncio.get_running_loop()
    backlog = listen_backlog(spec.options.get("backlog"))
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


def apply_keepalive(sock: socket.socket | None, options) -> None:
    """Turn on TCP keepalive with GOST's idle/interval/count options when asked."""
    if sock is None or not options.get("keepalive"):
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, attr in (
        ("keepalive_idle", "TCP_KEEPIDLE"),
        ("keepalive_interval", "TCP_KEEPINTVL"),
    ):
        if options.get(name) and hasattr(socket, attr):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, attr), max(1, int(options[name])))
    if options.get("keepalive_count") and hasattr(socket, "TCP_KEEPCNT"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, options["keepalive_count"])


class TCPListener(Listener):
    """Accepts TCP connections; each is a TCPEndpoint handed to the service."""

    def __init__(self, spec) -> None:
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


class TCPDialer(Dialer):
    """The raw connection is the transport."""

    async def dial(self, addr: str, open_conn: OpenConn) -> Endpoint:
        return await open_conn()


registry.listeners.register("tcp", TCPListener, TCP_LISTEN_OPTIONS)
registry.dialers.register("tcp", TCPDialer, TCP_DIAL_OPTIONS)
