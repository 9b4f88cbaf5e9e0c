"""The one interface for "somewhere datagrams go": a UDP socket, or a chain's tunnel.

GOST hands its UDP relays a ``net.PacketConn`` whatever carries the datagrams
(a UDP socket for a direct association, a UDP-TUN or relay stream through a
chain). ``PacketTunnel`` is that here: ``send`` a payload to an address, get
replies with their source address through ``receiver``. UDP may drop: nothing
here queues without bound, a full send buffer drops the datagram.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from gostfast.config.options import option

#: (source host, source port, payload) of a datagram coming back
Receiver = Callable[[str, int, bytes | memoryview], None]

#: bytes waiting in a send buffer past which further datagrams are dropped
WRITE_LIMIT = 256 * 1024

DEFAULT_BUFFER_SIZE = 4096
"""GOST's ``udpBufferSize`` when it is unset or <= 0 (x/internal/util/socks, udp.Relay)."""


def udp_buffer_size_option(doc: str) -> Any:
    """GOST's ``udp.bufferSize``/``udpBufferSize`` handler option (socks5, relay)."""
    return option(DEFAULT_BUFFER_SIZE, "udp.bufferSize", "udpBufferSize", doc=doc)


class PacketTunnel(ABC):
    """Datagrams to and from addresses; ``done`` resolves when the carrier is gone."""

    def __init__(self, name: str, log: logging.Logger) -> None:
        self.name = name
        self.log = log
        self.receiver: Receiver | None = None
        self.dropped = 0
        self.done: asyncio.Future = asyncio.get_running_loop().create_future()

    def listen(self, receiver: Receiver) -> None:
        """Datagrams coming back go to ``receiver`` from now on (and not before)."""
        self.receiver = receiver
        self._start()

    def _start(self) -> None:  # noqa: B027 (a hook: most carriers read from the start)
        """Begin reading (a stream is attached here, so no datagram finds nobody)."""

    @abstractmethod
    def send(self, host: str, port: int, payload: bytes | memoryview) -> None:
        """Send one datagram to host:port (a name may be resolved, or sent as it is)."""

    @abstractmethod
    def close(self) -> None: ...

    def local_address(self) -> tuple[str, int]:
        """The address replies to the client name as BND (0.0.0.0:0 when there is none)."""
        return "0.0.0.0", 0

    def _deliver(self, host: str, port: int, payload: bytes | memoryview) -> None:
        if self.receiver is None:
            self.drop("from %s:%d: nobody listens yet", host, port)
            return
        self.receiver(host, port, payload)

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def drop(self, fmt: str, *args) -> None:
        """Count a dropped datagram and say why in one debug line."""
        self.dropped += 1
        self.log.debug("%s: udp: datagram dropped " + fmt, self.name, *args)
