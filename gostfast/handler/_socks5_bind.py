"""SOCKS5 BIND (RFC 1928 section 4) as GOST serves it (x/handler/socks/v5/bind.go).

GOST's ``handleBind``/``bindLocal``/``serveBind``, kept here:

* The listener is opened on the address in the request (DST.ADDR:DST.PORT),
  not on an address the server picks: an IPv4 request listens on IPv4 only
  (Go's ``tcp4``), an IPv6 one on IPv6 only (``tcp6``), a domain name is
  resolved and the first address (IPv4 preferred) is used. A port already in
  use, an address that is not local, a name that does not resolve: reply
  0x01 (general failure) and close.
* First reply: REP 0x00, BND.ADDR = the IP of the connection the client came
  in on (``conn.LocalAddr``), or ``publicAddr`` when set; BND.PORT = the
  listener's port.
* ONE connection is accepted, then the listener is closed. Second reply:
  REP 0x00 with the connecting host's address and port; then the client
  connection and the accepted one are relayed until both ends finish.
* If the client closes (or half-closes) its connection before anyone
  connects, the listener is closed and so is the client connection, with no
  second reply.
* BIND never uses the service's chain: GOST's comment is "BIND does not
  support chain", it listens on this host whatever the chain is.

What GOST does not have: a limit on the wait for the incoming connection (its
accept waits until the client goes away). gostfast waits at most
``BIND_ACCEPT_TIMEOUT`` (30 s) and then answers 0x01 (what GOST answers when
its accept fails) and closes, so a forgotten BIND cannot hold a port forever.

Bytes the client sends before the second reply are kept (up to
``EARLY_BYTES_LIMIT``; then reading pauses) and delivered to the accepted
connection first, as GOST's pipe delivers them.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from gostfast.endpoint import Endpoint, TCPEndpoint
from gostfast.handler._conn_addr import local_ip
from gostfast.proto import socks5 as s5
from gostfast.proto.addr import ATYP_IPV4, ATYP_IPV6, address_type, unmap_ip
from gostfast.relay import relay

BIND_ACCEPT_TIMEOUT = 30.0
"""Seconds to wait for the incoming connection (GOST waits without limit)."""

EARLY_BYTES_LIMIT = 64 * 1024
"""Client bytes kept while waiting for the incoming connection; above it reading pauses."""

_BACKLOG = 8


class _WaitingClient:
    """Sink on the client endpoint while BIND waits: keeps early bytes, notices EOF/close."""

    __slots__ = ("ep", "held", "gone", "paused")

    def __init__(self, ep: Endpoint) -> None:
        self.ep = ep
        self.held = bytearray()
        self.gone: asyncio.Future = asyncio.get_running_loop().create_future()
        self.paused = False

    def on_data(self, ep: Endpoint, data) -> None:
        self.held += data
        if len(self.held) >= EARLY_BYTES_LIMIT and not self.paused:
            self.paused = True
            ep.pause_reading()

    def on_eof(self, ep: Endpoint) -> None:
        if not self.gone.done():
            self.gone.set_result("closed its side")

    def on_close(self, ep: Endpoint, exc: BaseException | None) -> None:
        if not self.gone.done():
            self.gone.set_result("went away")

    def on_write_paused(self, ep: Endpoint) -> None:
        pass

    def on_write_resumed(self, ep: Endpoint) -> None:
        pass

    def release(self) -> None:
        """Back to handshake mode with the early bytes in front, for the relay to take."""
        self.ep.detach()
        if self.held:
            self.ep.unread(bytes(self.held))
            self.held.clear()


async def _listen(host: str, port: int) -> socket.socket:
    """A non-blocking listening socket on host:port, chosen as Go's ``net.Listen`` does."""
    host = unmap_ip(host)
    atyp = address_type(host)
    if atyp == ATYP_IPV4:
        family, addr = socket.AF_INET, (host, port)
    elif atyp == ATYP_IPV6:
        family, addr = socket.AF_INET6, (host, port)
    else:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        if not infos:
            raise OSError(f"no address for {host!r}")
        info = next((i for i in infos if i[0] == socket.AF_INET), infos[0])
        family, addr = info[0], info[4]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Go's listeners
        if atyp == ATYP_IPV6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # Go's "tcp6"
        sock.bind(addr)
        sock.listen(_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _reply(ep: Endpoint, rep: int, host: str = "0.0.0.0", port: int = 0) -> None:
    try:
        ep.write(s5.build_reply(rep, host, port))
    except ValueError:  # an unencodable publicAddr: the address GOST would fail to write too
        ep.write(s5.build_reply(rep))


async def serve_bind(
    ep: Endpoint,
    host: str,
    port: int,
    *,
    public_addr: str = "",
    accept_timeout: float = BIND_ACCEPT_TIMEOUT,
    log: logging.Logger,
) -> None:
    """Serve one BIND request for ``host:port`` on ``ep`` (handshake done, no reply sent)."""
    loop = asyncio.get_running_loop()
    try:
        lsock = await _listen(host, port)
    except (OSError, ValueError) as exc:  # ValueError: a name that cannot be encoded (IDNA)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        log.info("%s: socks5 bind %s:%d: %s", ep.peer, host, port, reason)
        _reply(ep, s5.REP_GENERAL_FAILURE)
        ep.close()
        return

    accepted: socket.socket | None = None
    raddr: tuple = ("0.0.0.0", 0)
    waiting = _WaitingClient(ep)
    accept = loop.create_task(loop.sock_accept(lsock))
    try:
        lhost, lport = lsock.getsockname()[:2]
        _reply(ep, s5.REP_SUCCEEDED, public_addr or local_ip(ep) or unmap_ip(lhost), lport)
        log.debug("%s: socks5 bind: listening on %s:%d", ep.peer, lhost, lport)
        ep.attach(waiting)
        await asyncio.wait(
            (accept, waiting.gone), timeout=accept_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if accept.done():
            exc = accept.exception()
            if exc is None:
                accepted, raddr = accept.result()
            else:
                log.info("%s: socks5 bind: accept failed: %s", ep.peer, exc)
        elif waiting.gone.done():
            log.info(
                "%s: socks5 bind: client %s before a peer connected", ep.peer, waiting.gone.result()
            )
        else:
            log.info("%s: socks5 bind: no peer connected within %gs", ep.peer, accept_timeout)
    finally:
        if not accept.done():
            accept.cancel()
            await asyncio.wait((accept,))
        elif accepted is None and not accept.cancelled() and accept.exception() is None:
            accept.result()[0].close()  # accepted in the instant the wait was cancelled
        lsock.close()  # one connection only: later ones are refused
        if accepted is None:
            ep.detach()

    if accepted is None:
        if not waiting.gone.done():
            _reply(ep, s5.REP_GENERAL_FAILURE)
        ep.close()
        return

    try:
        _, peer_ep = await loop.connect_accepted_socket(TCPEndpoint, accepted)
    except BaseException:
        accepted.close()
        ep.detach()
        raise
    waiting.release()
    if waiting.paused:
        ep.resume_reading()  # the relay attaches below before anything more can arrive
    _reply(ep, s5.REP_SUCCEEDED, unmap_ip(str(raddr[0])), int(raddr[1]))
    log.debug("%s <-> %s (socks5 bind)", ep.peer, peer_ep.peer)
    await relay(ep, peer_ep)
