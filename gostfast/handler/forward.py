"""The ``forward`` handler (also registered as ``tcp``): port forwarding.

No protocol bytes: each accepted connection is piped to one of the service's
forwarder nodes, through the service's chain when it has one, with GOST's
selection and failover (gostfast/chain/forwarder.py). ``idleTimeout`` ends a
direction of the tunnel after that long without bytes, as GOST's pipe does.
"""

from __future__ import annotations

from dataclasses import dataclass

from gostfast import registry
from gostfast.chain.forwarder import dial_forwarder
from gostfast.components import Handler
from gostfast.config.options import (
    ComponentOptions,
    idle_timeout_option,
    non_positive_is,
    unsupported,
)
from gostfast.endpoint import Endpoint
from gostfast.relay import Relay, start


@dataclass(frozen=True)
class ForwardOptions(ComponentOptions):
    """The forward/tcp handler's metadata (GOST's x/handler/forward/local metadata.go)."""

    # GOST: the sniffing read deadline (<= 0 = 15s)
    read_timeout: float = unsupported("readTimeout", default=15.0, convert=non_positive_is(15.0))
    idle_timeout: float = idle_timeout_option(
        "end a direction of the tunnel after this long without bytes (0: never)"
    )
    sniffing: bool = unsupported("sniffing", default=False)
    proxyProtocol: str | None = unsupported("proxyprotocol")


class ForwardHandler(Handler[ForwardOptions]):
    async def handle(self, ep: Endpoint) -> Relay | None:
        """The running relay once the target answered (the service hands the tunnel
        over to it, relay.start: no task waits for the tunnel's end), None otherwise."""
        log = self.spec.log
        forwarder = self.spec.forwarder
        if forwarder is None:
            log.warning("%s: no forward target configured; closing", ep.peer)
            ep.close()
            return None
        found = await dial_forwarder(forwarder, self.spec.router, log, ep.peer)
        if found is None:
            ep.close()
            return None
        upstream, _ = found
        return start(ep, upstream, self.spec.options.idle_timeout)


registry.handlers.register("forward", ForwardHandler, ForwardOptions)
registry.handlers.register("tcp", ForwardHandler, ForwardOptions)
