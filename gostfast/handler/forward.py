"""The ``forward`` handler (also registered as ``tcp``): port forwarding.

No protocol bytes: each accepted connection is piped to one of the service's
forwarder nodes, through the service's chain when it has one, with GOST's
selection and failover (gostfast/chain/forwarder.py). ``idleTimeout`` ends a
direction of the tunnel after that long without bytes, as GOST's pipe does.
"""

from __future__ import annotations

from gostfast import registry
from gostfast.chain.forwarder import dial_forwarder
from gostfast.components import Handler
from gostfast.config.options import idle_timeout_opt, non_positive_is, unsupported
from gostfast.endpoint import Endpoint
from gostfast.relay import relay

FORWARD_OPTIONS = (
    # GOST (handler/forward/local): the sniffing read deadline (<= 0 = 15s)
    unsupported(
        "read_timeout",
        "readTimeout",
        default=15.0,
        kind="duration",
        convert=non_positive_is(15.0),
    ),
    idle_timeout_opt("end a direction of the tunnel after this long without bytes (0: never)"),
    unsupported("sniffing", "sniffing", default=False),
    unsupported("proxyProtocol", "proxyprotocol"),
)


class ForwardHandler(Handler):
    async def handle(self, ep: Endpoint) -> None:
        log = self.spec.log
        forwarder = self.spec.forwarder
        if forwarder is None:
            log.warning("%s: no forward target configured; closing", ep.peer)
            ep.close()
            return
        found = await dial_forwarder(forwarder, self.spec.router, log, ep.peer)
        if found is None:
            ep.close()
            return
        upstream, _ = found
        await relay(ep, upstream, self.spec.options.idle_timeout)


registry.handlers.register("forward", ForwardHandler, FORWARD_OPTIONS)
registry.handlers.register("tcp", ForwardHandler, FORWARD_OPTIONS)
