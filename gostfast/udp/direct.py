"""Datagrams straight to their targets from one UDP socket (no chain).

As GOST's direct UDP association (x/internal/net/udp, resolvePacketConn): the
socket is bound on all interfaces, dual-stack when the host has IPv6; a domain
name is resolved (the first IPv4 address preferred) and kept for
``RESOLVED_TTL``; datagrams from any source come back with their source
address. Memory is bounded: nothing is queued per datagram except while a name
resolves (at most ``MAX_RESOLVING`` names, ``MAX_QUEUED_PER_NAME`` datagrams
each).
"""

from __future__ import annotations

import asyncio
import logging
import socket

from gostfast.proto.addr import ATYP_DOMAIN, address_type, unmap_ip
from gostfast.udp.packet import WRITE_LIMIT, PacketTunnel

MAX_RESOLVING = 16
MAX_QUEUED_PER_NAME = 32
RESOLVED_CACHE_SIZE = 64
RESOLVED_TTL = 30.0


def _bound_socket(host: str, port: int) -> tuple[socket.socket, bool]:
    """A socket on ``host:port`` (a relay BIND names where): IPv6 literals dual-stack."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock, family == socket.AF_INET6


def _relay_socket() -> tuple[socket.socket, bool]:
    """A socket on all interfaces: dual-stack if possible, else IPv4."""
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


def backlogged(transport) -> bool:
    """True when ``transport``'s send buffer holds more than WRITE_LIMIT bytes."""
    size = getattr(transport, "get_write_buffer_size", None)
    return size is not None and size() > WRITE_LIMIT


class DatagramSide(asyncio.DatagramProtocol):
    """One UDP socket; datagrams go to ``on_datagram(data, addr)``."""

    def __init__(self, on_datagram, name: str, log: logging.Logger) -> None:
        self.on_datagram = on_datagram
        self.name = name
        self.log = log

    def datagram_received(self, data: bytes, addr) -> None:
        self.on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        self.log.debug("%s: udp: %s", self.name, exc)


class DirectPacket(PacketTunnel):
    """A UDP socket that sends to any target and hands back what any source sends."""

    def __init__(self, name: str, log: logging.Logger) -> None:
        super().__init__(name, log)
        self.sent = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._sock: socket.socket | None = None
        self._dual_stack = False
        self._resolving: dict[str, list[tuple[bytes, int]]] = {}
        self._resolved: dict[str, tuple[str, float]] = {}
        self._tasks: set[asyncio.Task] = set()
        self._closed = False

    @classmethod
    async def open(
        cls, name: str, log: logging.Logger, bind: tuple[str, int] | None = None
    ) -> DirectPacket:
        """Bind the socket, on all interfaces or on ``bind`` (OSError if it cannot be)."""
        self = cls(name, log)
        if bind is None or (bind[0] in ("", "0.0.0.0", "::") and bind[1] == 0):
            sock, self._dual_stack = _relay_socket()
        else:
            sock, self._dual_stack = _bound_socket(bind[0] or "0.0.0.0", bind[1])
        try:
            self._transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
                lambda: DatagramSide(self._from_target, name, log), sock=sock
            )
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        return self

    def local_address(self) -> tuple[str, int]:
        if self._sock is None:
            return super().local_address()
        host, port = self._sock.getsockname()[:2]
        return ("0.0.0.0" if host == "::" else unmap_ip(host)), port

    def close(self) -> None:
        self._closed = True
        if self._transport is not None:
            self._transport.close()
        for task in self._tasks:
            task.cancel()
        self._resolving.clear()
        self._finish()

    def send(self, host: str, port: int, payload) -> None:
        if address_type(host) == ATYP_DOMAIN:
            self._resolve_then_send(host, port, payload)
        else:
            self._send_ip(host, port, payload)

    def _from_target(self, data: bytes, addr: tuple) -> None:
        if not self._closed:
            self._deliver(unmap_ip(addr[0]), addr[1], data)

    def _send_ip(self, ip: str, port: int, payload) -> None:
        t = self._transport
        if t is None or self._closed:
            return
        ip = unmap_ip(ip)
        if ":" in ip:
            if not self._dual_stack:
                self.drop("to %s: no IPv6 relay socket", ip)
                return
            dest = (ip, port)
        else:
            dest = ("::ffff:" + ip, port) if self._dual_stack else (ip, port)
        if backlogged(t):
            self.drop("to %s: send buffer full", ip)
            return
        try:
            if len(payload):
                t.sendto(payload, dest)
            elif self._sock is not None:  # the transport skips empty datagrams; Go sends them
                self._sock.sendto(b"", dest)
        except (OSError, ValueError) as exc:
            self.drop("to %s:%d: %s", ip, port, exc)
            return
        self.sent += 1

    def _resolve_then_send(self, name: str, port: int, payload) -> None:
        loop = asyncio.get_running_loop()
        hit = self._resolved.get(name)
        if hit is not None and hit[1] > loop.time():
            self._send_ip(hit[0], port, payload)
            return
        queue = self._resolving.get(name)
        if queue is not None:
            if len(queue) < MAX_QUEUED_PER_NAME:
                queue.append((bytes(payload), port))
            else:
                self.drop("to %s: too many datagrams wait for its address", name)
            return
        if len(self._resolving) >= MAX_RESOLVING:
            self.drop("to %s: too many names being resolved", name)
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
            self._send_ip(ip, port, payload)
