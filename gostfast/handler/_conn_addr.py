"""The socket addresses behind an accepted endpoint (GOST's ``conn.LocalAddr/RemoteAddr``).

SOCKS5 BIND and UDP ASSOCIATE need the IP the client connected to (to listen
on it and to put it in BND.ADDR) and the client's IP (a UDP association only
accepts datagrams from it). An endpoint may be a TCP connection or a layer
over one (TLS, websocket, an smux stream of a session): the address is the one
of the TCP socket at the bottom, as Go's ``net.Conn`` wrappers report it.

IPv4-mapped IPv6 addresses (a dual-stack listener's ``::ffff:a.b.c.d``) are
given back as dotted IPv4, as Go prints them, so they bind IPv4 sockets and go
out as ATYP 1.
"""

from __future__ import annotations

import ipaddress

from gostfast.endpoint import Endpoint
from gostfast.proto.addr import AddressError, split_host_port, unmap_ip

_MAX_DEPTH = 8  # layers to look through (TLS over ws over an smux stream is 3)


def _below(ep: object) -> object | None:
    """The endpoint a layer runs over (TLS/ws: ``inner``; an smux stream: its session's)."""
    inner = getattr(ep, "inner", None)
    if inner is not None:
        return inner
    session = getattr(ep, "session", None)
    return getattr(session, "conn", None) if session is not None else None


def _socket_address(ep: Endpoint, which: str) -> tuple | None:
    node: object | None = ep
    for _ in range(_MAX_DEPTH):
        if node is None:
            return None
        transport = getattr(node, "transport", None)
        if transport is not None:
            addr = transport.get_extra_info(which)
            if isinstance(addr, tuple) and len(addr) >= 2:
                return addr
        node = _below(node)
    return None


def _host_of_peer_text(peer: str) -> str | None:
    """The host in ``Endpoint.peer`` text (``1.2.3.4:5``, ``[::1]:5``, ``x:5#3``)."""
    try:
        host, _ = split_host_port(peer.split("#", 1)[0])
    except AddressError:
        return None
    return host or None


def local_ip(ep: Endpoint) -> str | None:
    """The IP of the socket the client connected to, or None when it is unknown."""
    addr = _socket_address(ep, "sockname")
    if addr is None:
        local = getattr(ep, "local_address", None)
        addr = local() if local is not None else None
    if isinstance(addr, tuple) and addr and isinstance(addr[0], str):
        return unmap_ip(addr[0])
    return None


def peer_ip(ep: Endpoint) -> str | None:
    """The client's IP, or None when it is unknown."""
    addr = _socket_address(ep, "peername")
    if addr is not None and isinstance(addr[0], str):
        return unmap_ip(addr[0])
    host = _host_of_peer_text(ep.peer)
    if host is None:
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return unmap_ip(host)
