"""Reaching one of a service's forwarder nodes, with GOST's failover.

Nodes are tried in the selector's order; a node whose dial fails is marked
failed (left out for ``failTimeout`` after ``maxFails``) and the next one is
tried, so one dead target costs a client only the failed connect. Used by
the forward handler and by the relay handler's forward mode.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from gostfast.chain.route import Router
from gostfast.chain.selector import Selector
from gostfast.config.model import ForwardNode
from gostfast.config.url import split_host_port
from gostfast.endpoint import Endpoint
from gostfast.errors import DialError

T = TypeVar("T")


@functools.lru_cache(maxsize=1024)
def _host_port(addr: str, name: str) -> tuple[str, int]:
    """A node's (host, port), split once per address rather than once per connection
    (the configuration checked it; a live update brings new addresses, the cache keeps
    the last 1024)."""
    host, port = split_host_port(addr, name)
    return host, int(port)


async def dial_forwarder(
    forwarder: Selector[ForwardNode],
    router: Router,
    log: logging.Logger,
    peer: str,
    dial: Callable[[str, int], Awaitable[T]] | None = None,
) -> tuple[Endpoint | T, ForwardNode] | None:
    """The first node that answers (and the node), or None when every one failed (logged).

    ``dial`` reaches a node (default: a TCP connection through ``router``; the udp
    handler passes a datagram tunnel's)."""
    errors = []
    for node in forwarder.order():
        host, port = _host_port(node.addr, node.name)
        try:
            upstream = await (dial or router.dial)(host, port)
        except DialError as exc:
            forwarder.mark_failed(node)
            errors.append(str(exc))
            log.warning("%s -> %s: %s; trying the next target", peer, node.addr, exc)
            continue
        forwarder.mark_ok(node)
        log.debug("%s <-> %s (%s)", peer, node.addr, node.name)
        return upstream, node
    log.error("%s: every forward target failed: %s", peer, "; ".join(errors))
    return None
