"""Relaying datagrams between two PacketTunnels (GOST's udp.Relay), bypass applied."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from gostfast.chain.bypass import Bypass
from gostfast.config.url import join_host_port
from gostfast.udp.packet import PacketTunnel


class BypassGate:
    """The service's bypass applied to datagrams both ways (GOST's udp.Relay drops them)."""

    def __init__(self, bypass: Bypass | None, drop: Callable[..., None]) -> None:
        self.bypass = bypass
        self.drop = drop

    def blocks(self, host: str, port: int, way: str) -> bool:
        if self.bypass and self.bypass.contains(join_host_port(host, port), "udp"):
            self.drop("%s %s:%d: bypassed", way, host, port)
            return True
        return False


async def until_either(*futures: asyncio.Future) -> None:
    await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)


async def pipe_packets(
    client: PacketTunnel,
    upstream: PacketTunnel,
    *,
    bypass: Bypass | None,
    log: logging.Logger,
    what: str,
    target: tuple[str, int] | None = None,
) -> None:
    """Datagrams from ``client`` go to the address they name (or to ``target``)
    through ``upstream``; what comes back goes to ``client`` with its source,
    until either side ends."""
    gate = BypassGate(bypass, client.drop)

    def to_target(host: str, port: int, data) -> None:
        if target is not None:
            host, port = target
        if not gate.blocks(host, port, "to"):
            upstream.send(host, port, data)

    def to_client(host: str, port: int, data) -> None:
        if not gate.blocks(host, port, "from"):
            client.send(host, port, data)

    upstream.listen(to_client)
    client.listen(to_target)
    log.debug("%s: %s: relaying datagrams", client.name, what)
    try:
        await until_either(client.done, upstream.done)
    finally:
        client.close()
        upstream.close()
        log.debug(
            "%s: %s: ended (%d datagrams dropped)",
            client.name,
            what,
            client.dropped + upstream.dropped,
        )
