"""One request's record from accept to end: what the access log line and the metrics say.

Why a context variable: the service starts each request in a task of its own
(service.py ``serve``), and everything that learns something about the
request runs inside that task (the router learns the target and the route,
the relay the bytes), so each can find the record without a handler passing
it along. A forward tunnel's task ends once its relay runs (relay.start): the
relay then holds the record and calls ``end()`` from its close path. Nothing here runs per chunk: the relay counts bytes itself and
hands the totals over once, when it ends.

The line at the end is GOST's handlers' "REMOTE >< LOCAL" line with its
fields (x/handler/*/handler.go: remote, local, client, duration, inputBytes,
outputBytes), plus the target (``dst``), the route and the error.
"""

from __future__ import annotations

import contextvars
import logging
import time
from typing import TYPE_CHECKING

from gostfast import logsetup, metrics
from gostfast.endpoint import Endpoint

if TYPE_CHECKING:
    from gostfast.traffic import Pace

current: contextvars.ContextVar[Tunnel | None] = contextvars.ContextVar("tunnel", default=None)


def tcp_peer(ep: Endpoint) -> str:
    """The TCP peer ``ip:port`` under every layer (websocket, TLS, smux stream)."""
    while True:
        inner = getattr(ep, "inner", None)
        if inner is None:
            session = getattr(ep, "session", None)
            inner = getattr(session, "conn", None)
        if inner is None:
            return ep.peer
        ep = inner


def client_of(ep: Endpoint, remote: str) -> str:
    """GOST's ``client``: the address a proxy in front named, else the TCP peer."""
    return ep.client_ip if ep.client_ip and ep.client_ip != ep.peer_ip else remote


class Tunnel:
    """A request of ``service`` from ``ep``; ``end()`` once, when its handler returns."""

    __slots__ = (
        "service",
        "ep",
        "log",
        "start",
        "target",
        "route",
        "error",
        "bytes_in",
        "bytes_out",
        "_token",
        "_series",
    )

    def __init__(self, service: str, ep: Endpoint, log: logging.Logger) -> None:
        self.service = service
        self.ep = ep
        self.log = log
        self.start = time.monotonic()
        self.target = ""
        self.route = ""
        self.error = ""
        self.bytes_in = 0  # client -> target (GOST's input)
        self.bytes_out = 0  # target -> client (GOST's output)
        self._token = current.set(self)
        m = metrics.active
        if m is None:
            self._series = None
        else:
            self._series = m.request_started(service, ep.client_ip)

    def dialling(self, target: str, route: str) -> None:
        """The router is reaching ``target`` by ``route`` (the last attempt is kept)."""
        self.target = target
        self.route = route

    def fail(self, error: str) -> None:
        self.error = error

    def relaying(self, opened: bool) -> None:
        series = self._series
        if series is not None:
            series.relaying(opened)

    def detach(self) -> None:
        """The handler's task is done but the tunnel goes on in a relay (relay.start):
        let go of the task's context variable now, in that task's context (a reset from
        the relay's callbacks would be in another), so ``end()`` later does not."""
        current.reset(self._token)
        self._token = None

    def end(self) -> None:
        seconds = time.monotonic() - self.start
        if self._token is not None:
            current.reset(self._token)
        ep = self.ep
        series = self._series
        if series is not None:
            # GOST counts bytes on the accepted TCP connection: its peer labels them
            if ep.peer_ip == ep.client_ip:
                series.ended(bool(self.error), seconds, self.bytes_in, self.bytes_out)
            else:
                series.ended(bool(self.error), seconds, 0, 0)
                m = metrics.active
                if m is not None:
                    m.client(self.service, ep.peer_ip).transferred(self.bytes_in, self.bytes_out)
        if self.log.isEnabledFor(logging.INFO):
            remote = tcp_peer(ep)
            target = self.target
            logsetup.access_line(
                self.log,
                f"{ep.peer} >< {target or '-'}",
                service=self.service,
                client=client_of(ep, remote),
                remote=remote,
                dst=target,
                route=self.route or ("direct" if target else ""),
                seconds=seconds,
                bytes_in=self.bytes_in,
                bytes_out=self.bytes_out,
                error=self.error,
            )
        # a task this one started may keep the context (and so this record) alive: let go
        # of the connection, which may hold TLS buffers (issue 18)
        self.ep = None  # type: ignore[assignment]


def now() -> Tunnel | None:
    """The request the running task serves, if any."""
    return current.get()


def counting(pace: Pace | None, inbound: bool) -> Pace | None:
    """A body copy's ``pace`` (http handler, _httpbody.py) that also adds each piece to
    the request's bytes: coroutine copies do not pass through the relay's counters."""
    tunnel = current.get()
    if tunnel is None:
        return pace

    async def count(n: int) -> None:
        if inbound:
            tunnel.bytes_in += n
        else:
            tunnel.bytes_out += n
        if pace is not None:
            await pace(n)

    return count
