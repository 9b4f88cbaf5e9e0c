"""The listening sockets the supervisor of ``--workers`` binds once and holds.

Every service address gets one SO_REUSEPORT socket per worker slot, so the
kernel spreads new connections over the workers evenly, and the sockets
outlive any worker (a connection queued for a dead or replaced worker waits
for the next one instead of being refused). Each new address is first probed
with a plain bind, without SO_REUSEPORT: otherwise a second gostfast, or any
program of the same user holding the port with SO_REUSEPORT, would share it
silently instead of the start failing with "address in use".
"""

from __future__ import annotations

import errno
import os
import socket
from typing import cast

from gostfast.service import Plan, ServicePlan
from gostfast.transport.accept import listen_addrinfos, listen_socket
from gostfast.transport.tcp import ServerSocketOptions, listen_backlog

AddrKey = tuple[str | None, int]


class BindError(Exception):
    """An address could not be bound; the message names the service and the address."""


def _reason(exc: OSError) -> str:
    return os.strerror(exc.errno) if exc.errno else str(exc)


class ListenSockets:
    """Every service address's SO_REUSEPORT group: ``slots`` listening sockets each."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.by_addr: dict[AddrKey, list[list[socket.socket]]] = {}  # [slot][family]

    def bind(self, services: list[ServicePlan]) -> list[AddrKey]:
        """Bind the addresses not bound yet; on failure close those and raise BindError."""
        new: list[AddrKey] = []
        wanted: set[AddrKey] = set()
        try:
            for sp in services:
                if sp.config.listener.type == "udp":
                    raise BindError(
                        f"{sp.config.name}: a udp listener does not run under --workers "
                        "(the shared sockets are TCP); serve it from a gostfast without --workers"
                    )
                key = (sp.host, sp.port)
                if key in wanted and sp.port != 0:  # two services, one address
                    raise BindError(
                        f"{sp.config.name}: cannot listen on {sp.config.addr}: "
                        f"{os.strerror(errno.EADDRINUSE)}"
                    )
                wanted.add(key)
                if key in self.by_addr:
                    continue
                try:
                    self.by_addr[key] = self._bind_group(sp)
                except OSError as exc:
                    raise BindError(
                        f"{sp.config.name}: cannot listen on {sp.config.addr}: {_reason(exc)}"
                    ) from None
                new.append(key)
        except BindError:
            self.close(new)
            raise
        return new

    def _bind_group(self, sp: ServicePlan) -> list[list[socket.socket]]:
        options = cast(ServerSocketOptions, sp.listener.options)  # every TCP-based listener's
        backlog = listen_backlog(options.backlog)
        groups: list[list[socket.socket]] = [[] for _ in range(self.slots)]
        try:
            port = sp.port
            for family, type_, proto, addr in listen_addrinfos(sp.host, sp.port):
                # the probe: a plain bind fails where anyone (another gostfast included)
                # holds the address, which SO_REUSEPORT alone would share silently
                try:
                    probe = listen_socket(family, type_, proto)
                except OSError as exc:
                    if exc.errno == errno.EAFNOSUPPORT:
                        continue
                    raise
                with probe:
                    probe.bind((addr[0], port, *addr[2:]))
                    port = probe.getsockname()[1]  # port 0: the port the system chose
                bound = (addr[0], port, *addr[2:])
                for group in groups:
                    sock = listen_socket(family, type_, proto, reuseport=True)
                    group.append(sock)
                    sock.bind(bound)
                    sock.listen(backlog)
                    sock.setblocking(False)
        except OSError:
            for group in groups:
                for sock in group:
                    sock.close()
            raise
        return groups

    def for_slot(self, plan: Plan, slot: int) -> dict[str, list[socket.socket]]:
        return {sp.config.name: self.by_addr[(sp.host, sp.port)][slot] for sp in plan.services}

    def all_sockets(self) -> list[socket.socket]:
        return [s for groups in self.by_addr.values() for g in groups for s in g]

    def close(self, keys: list[AddrKey] | None = None) -> None:
        for key in list(self.by_addr) if keys is None else keys:
            for group in self.by_addr.pop(key, []):
                for sock in group:
                    sock.close()

    def unused(self, plan: Plan) -> list[AddrKey]:
        used = {(sp.host, sp.port) for sp in plan.services}
        return [key for key in self.by_addr if key not in used]
