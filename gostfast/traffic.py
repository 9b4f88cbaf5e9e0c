"""GOST's traffic limiter (``limiters:``, ``limiter.in``/``limiter.out`` on -L): bytes per second.

Lines (go-gost/x limiter/traffic), ``KEY IN [OUT [BURST]]``, sizes in GOST's
units (KB = KiB = 1024 B, MB = MiB, ...; config/values.py parse_size):

* ``$ IN OUT``: one budget for the whole service, all its clients together;
* ``$$ IN OUT``: a budget for each connection (GOST keys it on the TCP peer's
  address, so the tunnels of one mws session share one, as there);
* ``IP IN OUT``: one budget for that client IP, all its connections together;
* ``CIDR IN OUT``: a budget for each client IP inside the network (an exact IP
  line wins; among networks the broadest holding the IP, as GOST's cidranger).

A tunnel is held to every budget that applies: ``$``, its connection's
``$$`` and its IP's line. "In" is what the client sends (client -> target:
GOST's Read on the accepted connection), "out" what it receives (target ->
client: GOST's Write). A side left out or 0 is not limited; BURST (default:
the rate) is how far a budget may run ahead, as golang.org/x/time/rate's burst.

The service metadata ``limiter.scope`` picks GOST's scopes: ``service`` (only
``$``) or ``conn`` (only ``$$`` and the IP lines); unset, both.

Pacing, never buffering: a chunk is forwarded the moment it arrives and
charged to its budgets; a budget in debt pauses reading from that source
until the debt is paid back (relay.LimitedRelay), so the sender is held back
by TCP's (or smux's) own flow control. The HTTP handler's forwarded request
and response bodies, copied by coroutines, sleep off the debt between pieces
(``Gate.pace``) on the same budgets.

Each worker process (``--workers``) keeps its own budgets: a limit holds per
worker, not per gateway.

Differences from GOST, both deliberate: GOST charges ``$`` on the raw TCP
connection (TLS and websocket framing included, well under 1 % more than
the payload at bulk sizes) and everything else on the tunnel's payload; here
every budget is charged the tunnel's payload. GOST forgets an exact IP's
budget 15 s after it was last used and then no longer applies that line;
here the line holds for the service's life.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Awaitable, Callable
from typing import Any

from gostfast.config.model import LimiterConfig
from gostfast.config.values import GLOBAL_LIMIT_KEY, PER_IP_LIMIT_KEY, parse_traffic_line

#: GOST's limiter scopes (service metadata ``limiter.scope``); "" = both
SCOPES = ("service", "conn")

#: awaited with a piece's size once it is passed on: returns when reading may go on
Pace = Callable[[int], Awaitable[None]]


class Bucket:
    """A token bucket in bytes that may go into debt: ``charge`` says how long to wait."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: int, burst: int) -> None:
        self.rate = float(rate)
        self.burst = float(burst or rate)
        self.tokens = self.burst  # starts full, as rate.NewLimiter
        self.stamp = time.monotonic()

    def charge(self, n: int, now: float) -> float:
        """Take ``n`` bytes; the seconds until the bucket is out of debt (0: none)."""
        tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate) - n
        self.tokens = tokens
        self.stamp = now
        return -tokens / self.rate if tokens < 0 else 0.0


def _pair(value: tuple[int, int, int]) -> tuple[Bucket | None, Bucket | None]:
    rate_in, rate_out, burst = value
    return (
        Bucket(rate_in, burst) if rate_in > 0 else None,
        Bucket(rate_out, burst) if rate_out > 0 else None,
    )


class Gate:
    """The budgets one tunnel is charged to, per direction; ``close`` once it ends."""

    __slots__ = ("inbound", "outbound", "_release")

    def __init__(self, inbound: list[Bucket], outbound: list[Bucket], release) -> None:
        self.inbound = inbound
        self.outbound = outbound
        self._release = release

    @staticmethod
    def charge(buckets: list[Bucket], n: int) -> float:
        """Charge ``n`` bytes to each bucket; the longest wait among them."""
        now = time.monotonic()
        wait = 0.0
        for b in buckets:
            w = b.charge(n, now)
            if w > wait:
                wait = w
        return wait

    def pace(self, inbound: bool) -> Pace | None:
        """For code that copies with coroutines (HTTP bodies): sleep off the debt after
        each piece instead of pausing a transport; None when that side is free."""
        buckets = self.inbound if inbound else self.outbound
        if not buckets:
            return None

        async def pace(n: int) -> None:
            wait = self.charge(buckets, n)
            if wait > 0.0:
                await asyncio.sleep(wait)

        return pace

    def close(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


def pacer(gate: Gate | None, inbound: bool) -> Pace | None:
    """``gate.pace(inbound)``, or None without a gate."""
    return gate.pace(inbound) if gate is not None else None


class _Shared:
    """Budgets made on demand and kept while some tunnel uses them (per connection, per
    CIDR client IP): GOST's 15 s cache, without its clock."""

    def __init__(self) -> None:
        self.entries: dict[Any, list] = {}

    def take(self, key: Any, value: tuple[int, int, int]) -> tuple[Bucket | None, Bucket | None]:
        entry = self.entries.get(key)
        if entry is None:
            entry = self.entries[key] = [0, *_pair(value)]
        entry[0] += 1
        return entry[1], entry[2]

    def give(self, key: Any) -> None:
        entry = self.entries[key]
        entry[0] -= 1
        if entry[0] == 0:
            del self.entries[key]


def connection_of(ep: Any) -> Any:
    """The transport connection under an endpoint's layers (an mws stream: its session's),
    which GOST's ``$$`` budget is per."""
    while True:
        inner = getattr(ep, "inner", None)
        if inner is None:
            session = getattr(ep, "session", None)
            if session is None:
                return ep
            inner = session.conn
        ep = inner


class TrafficLimiter:
    """One service's traffic limiter, built from GOST's lines (checked by the config)."""

    def __init__(self, cfg: LimiterConfig, scope: str = "") -> None:
        self._scope = scope
        self.reset(cfg)

    def reset(self, cfg: LimiterConfig) -> None:
        """New lines (a loader reloaded them): new budgets for the tunnels opened from
        now on; an open tunnel keeps the budgets it was given."""
        scope = self._scope
        found: dict[str, tuple[int, int, int]] = {}
        for line in cfg.limits:
            key, rate_in, rate_out, burst = parse_traffic_line(line)
            found[key] = (rate_in, rate_out, burst)  # a later line for a key wins, as GOST
        use_service = scope in ("", "service")
        use_conn = scope in ("", "conn")
        service = found.pop(GLOBAL_LIMIT_KEY, None)
        self._service = _pair(service) if service and use_service else (None, None)
        per_conn = found.pop(PER_IP_LIMIT_KEY, None)
        self._per_conn = per_conn if use_conn else None
        self._ips: dict[str, tuple[Bucket | None, Bucket | None]] = {}
        cidrs = []
        for key, value in found.items() if use_conn else ():
            if "/" in key:
                cidrs.append((ipaddress.ip_network(key, strict=False), value))
            else:
                self._ips[str(ipaddress.ip_address(key))] = _pair(value)
        cidrs.sort(key=lambda c: c[0].prefixlen)
        self._cidrs = cidrs
        self._conns = _Shared()
        self._hosts = _Shared()

    @property
    def active(self) -> bool:
        """False when no line limits anything (every tunnel takes the plain relay)."""
        return bool(any(self._service) or self._per_conn or self._ips or self._cidrs)

    def _cidr(self, ip_text: str) -> tuple[int, int, int] | None:
        try:
            ip = ipaddress.ip_address(ip_text)
        except ValueError:
            return None
        for net, value in self._cidrs:
            if ip.version == net.version and ip in net:
                return value
        return None

    def open(self, client: Any, peer_ip: str) -> Gate | None:
        """The gate for one tunnel from ``client`` (its endpoint) at ``peer_ip``, or None
        when nothing limits it."""
        pairs = [self._service]
        taken: list[tuple[_Shared, Any]] = []
        if self._per_conn is not None:
            key = connection_of(client)
            pairs.append(self._conns.take(key, self._per_conn))
            taken.append((self._conns, key))
        ip = self._ips.get(peer_ip)
        if ip is not None:
            pairs.append(ip)
        elif self._cidrs:
            value = self._cidr(peer_ip)
            if value is not None:
                pairs.append(self._hosts.take(peer_ip, value))
                taken.append((self._hosts, peer_ip))
        inbound = [p[0] for p in pairs if p[0] is not None]
        outbound = [p[1] for p in pairs if p[1] is not None]

        def release() -> None:
            for shared, key in taken:
                shared.give(key)

        if not inbound and not outbound:
            release()
            return None
        return Gate(inbound, outbound, release)
