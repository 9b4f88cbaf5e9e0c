"""Listening sockets accepted in Python, so a TCP peer is judged before TLS starts.

``loop.create_server(ssl=...)`` runs the whole TLS handshake before the
protocol hears of the connection, so a client that the service's admission
denies (or its connection limiter refuses) would still get a ServerHello and
cost a handshake. GOST wraps its TCP listener in admission and climiter
before TLS; TLS listeners here do the same: ``Acceptor`` accepts from the
listening sockets that ``bind_sockets`` made, hands each new socket with its
peer address to a callback that judges it (closing a refused one with
nothing written), and the callback gives an admitted one to the loop's own
TLS transport (``loop.connect_accepted_socket``). Plain listeners keep the
loop's C accept path: there the judgement runs in ``connection_made``,
before a byte is read.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable

from gostfast.config.url import join_host_port

log = logging.getLogger("gostfast.accept")

#: connections taken per wake-up before the loop serves others (uvloop accepts a burst too)
ACCEPT_BURST = 64
#: pause before accepting again when the process is out of file descriptors
EMFILE_PAUSE = 0.1

_OUT_OF_FDS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def listen_addrinfos(host: str | None, port: int) -> list[tuple]:
    """(family, type, proto, address) to listen on for ``host`` (None: every
    interface), each address once, as ``loop.create_server`` resolves them."""
    infos = socket.getaddrinfo(
        host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
    )
    seen, out = set(), []
    for family, type_, proto, _, addr in infos:
        if (family, addr) not in seen:
            seen.add((family, addr))
            out.append((family, type_, proto, addr))
    return out


def listen_socket(family: int, type_: int, proto: int, reuseport: bool = False) -> socket.socket:
    """A socket set up as ``loop.create_server``'s: SO_REUSEADDR, IPv6 ones v6-only
    (and SO_REUSEPORT when asked: the supervisor's per-worker groups)."""
    sock = socket.socket(family, type_, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuseport:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    return sock


def bind_sockets(host: str | None, port: int, backlog: int) -> list[socket.socket]:
    """Non-blocking listening sockets for ``host`` (None: every interface). Raises
    OSError (with the errno of the failing bind) and leaves nothing open."""
    socks: list[socket.socket] = []
    try:
        for family, type_, proto, addr in listen_addrinfos(host, port):
            sock = listen_socket(family, type_, proto)
            socks.append(sock)
            sock.bind(addr)
            sock.listen(backlog)
            sock.setblocking(False)
    except OSError:
        for s in socks:
            s.close()
        raise
    return socks


def socket_addresses(socks) -> list[str]:
    """``host:port`` of every listening socket (``[v6]:port`` for IPv6)."""
    return [join_host_port(*s.getsockname()[:2]) for s in socks]


def peer_text(addr) -> str:
    """A peer address as the logs write it (``[v6]:port`` for IPv6)."""
    return join_host_port(addr[0], addr[1])


class Acceptor:
    """Accepts from listening sockets on the loop and hands every connection on.

    ``on_socket(sock, addr)`` owns the accepted (non-blocking) socket from then
    on. A full file-descriptor table pauses accepting for EMFILE_PAUSE instead
    of spinning on a readable socket that cannot be accepted.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        socks: list[socket.socket],
        on_socket: Callable[[socket.socket, tuple], None],
    ) -> None:
        self._loop = loop
        self.socks = socks
        self._on_socket = on_socket
        self._closed = False
        for s in socks:
            s.setblocking(False)  # a supervisor's inherited socket may be blocking
            loop.add_reader(s.fileno(), self._ready, s)

    def _ready(self, lsock: socket.socket) -> None:
        for _ in range(ACCEPT_BURST):
            try:
                sock, addr = lsock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_FDS:
                    log.warning(
                        "accept on %s: %s; pausing %gs",
                        socket_addresses([lsock])[0],
                        exc.strerror,
                        EMFILE_PAUSE,
                    )
                    self._loop.remove_reader(lsock.fileno())
                    self._loop.call_later(EMFILE_PAUSE, self._resume, lsock)
                    return
                raise
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as the loop's transports
            self._on_socket(sock, addr)

    def _resume(self, lsock: socket.socket) -> None:
        if not self._closed:
            self._loop.add_reader(lsock.fileno(), self._ready, lsock)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for s in self.socks:
            self._loop.remove_reader(s.fileno())
            s.close()
