"""GOST's connection and request-rate limiters (``climiter``, ``rlimiter``).

Both read GOST's limit lines, ``KEY VALUE`` (go-gost/x limiter/conn, limiter/rate):

* ``$ N``: one limit for the whole service;
* ``$$ N``: a limit for each client IP that no line below names;
* ``IP N``: one limit for that IP;
* ``CIDR N``: a limit for each client IP inside the network.

A client gets its IP's limit (an exact IP first, else the first CIDR holding
it, else ``$$``) together with ``$``; it must pass all of them.

* A connection limiter counts TCP connections open at once, per service:
  the one over its limit is closed as it is accepted, and a slot is freed
  when a connection closes. On websocket listeners it counts the TCP
  connections, not the tunnels inside an mws session, as GOST wraps the TCP
  listener.
* A rate limiter is a token bucket per limit (VALUE requests per second,
  burst VALUE + 1, as GOST's golang.org/x/time/rate use): each request a
  handler starts takes one token, and a client with none left is closed.

The client IP is the TCP peer's, as GOST's listener and handlers take it.

Under ``--workers`` every counter and bucket is shared by the workers
(shared_limits.py), so each limit holds for the gateway, as in GOST.
"""

from __future__ import annotations

import contextlib
import ipaddress
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from gostfast.config.model import LimiterConfig
from gostfast.config.values import GLOBAL_LIMIT_KEY as GLOBAL_KEY
from gostfast.config.values import PER_IP_LIMIT_KEY as PER_IP_KEY
from gostfast.config.values import parse_limit_line

if TYPE_CHECKING:
    from gostfast.shared_limits import SharedScope

#: clients remembered before the idle ones are forgotten (a gateway sees many IPs)
CACHE_LIMIT = 65536


class _Limits:
    """GOST's lookup from a client IP to the limits that apply, one object per limit.

    GOST keeps every client's limiters for good; here a client whose limiters
    are back at rest (``idle``: no connection open, a full bucket) is
    forgotten once more than CACHE_LIMIT are known. Such limiters are the same
    as new ones, so forgetting them changes nothing but the memory held.
    """

    def __init__(
        self,
        cfg: LimiterConfig,
        rate: bool,
        make: Callable[[float], object],
        idle: Callable[[object], bool],
        make_shared: Callable[[str, float], object] | None = None,
        previous: _Limits | None = None,
    ) -> None:
        # under --workers every limit is counted by all workers together, by name
        # (shared_limits.py): the line's key, and for per-IP limits the client IP too
        new = make_shared or (lambda _name, value: make(value))
        # reloaded lines (a loader): a limit of the same name keeps its count or bucket,
        # retuned to the new value, so open connections still count against it
        carried = previous._busy() if previous is not None else {}
        reuse = make_shared is None  # a shared limit is found by name in the table anyway

        def make_named(name: str, value: float) -> object:
            # a key given twice: the later line retunes the same limit (GOST: it wins)
            old = carried.pop(name, None) or (self._named.get(name) if reuse else None)
            if old is None:
                obj = new(name, value)
            else:
                old.retune(value)
                obj = old
            self._named[name] = obj
            return obj

        self._named: dict[str, object] = {}
        self._make = make_named
        self._idle = idle
        self._prune_at = CACHE_LIMIT
        self._global = None
        self._per_ip: float | None = None
        self._ips: dict[str, object] = {}
        self._cidrs: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, float]] = []
        self._cache: dict[str, list] = {}
        for line in cfg.limits:
            key, value = parse_limit_line(line, rate)
            if key == GLOBAL_KEY:
                self._global = self._make(key, value)
            elif key == PER_IP_KEY:
                self._per_ip = value
            elif "/" in key:
                self._cidrs.append((ipaddress.ip_network(key, strict=False), value))
            else:
                ip = str(ipaddress.ip_address(key))
                self._ips[ip] = self._make(ip, value)

    def for_client(self, ip_text: str) -> list:
        cached = self._cache.get(ip_text)
        if cached is not None:
            return cached
        found: list = []
        try:
            ip = ipaddress.ip_address(ip_text)
        except ValueError:
            ip = None
        if ip is not None:
            if str(ip) in self._ips:
                found.append(self._ips[str(ip)])
            else:
                for net, value in self._cidrs:
                    if ip.version == net.version and ip in net:
                        # a limit of its own per IP
                        found.append(self._make(f"{net}\0{ip}", value))
                        break
        if not found and self._per_ip is not None:
            found.append(self._make(f"{PER_IP_KEY}\0{ip_text}", self._per_ip))
        if self._global is not None:
            found.append(self._global)
        if len(self._cache) >= self._prune_at:
            self._forget_idle()
            # mostly busy clients: look again only once the cache has doubled, so a
            # flood of busy IPs costs amortised O(1) per new client, not a scan each
            self._prune_at = max(CACHE_LIMIT, 2 * len(self._cache))
        self._cache[ip_text] = found
        return found

    def _busy(self) -> dict[str, object]:
        """The limits not at rest, by name (a reload carries them over)."""
        return {n: x for n, x in self._named.items() if not self._idle(x)}

    def _forget_idle(self) -> None:
        shared = {id(x) for x in self._ips.values()} | {id(self._global)}
        self._cache = {
            ip: lims
            for ip, lims in self._cache.items()
            if not all(id(x) in shared or self._idle(x) for x in lims)
        }
        # the per-IP limits by name, as few as the cache holds (idle ones are as new)
        self._named = {n: x for n, x in self._named.items() if id(x) in shared or not self._idle(x)}


class _Counter:
    __slots__ = ("limit", "current")

    def __init__(self, limit: float) -> None:
        self.limit = int(limit)
        self.current = 0

    def retune(self, limit: float) -> None:
        self.limit = int(limit)

    def add(self, delta: int) -> None:
        self.current += delta

    def idle(self) -> bool:
        return self.current == 0


def _lock(shared: SharedScope | None) -> contextlib.AbstractContextManager:
    return shared.shared.locked() if shared is not None else contextlib.nullcontext()


class _Limiter:
    """One limiter's limits, kept in this process or (``shared``) with the other workers."""

    _rate = False
    _make: Callable[[float], object]

    def __init__(self, cfg: LimiterConfig, shared: SharedScope | None = None) -> None:
        self._shared = shared
        self._limits: _Limits | None = None
        self.reset(cfg)

    def reset(self, cfg: LimiterConfig) -> None:
        """New lines (a loader reloaded them): applied to the next connection or request;
        a limit whose line stays keeps its count (retuned to the new value)."""
        shared = self._shared
        make_shared = None
        if shared is not None:  # the shared table keeps counts by name across reloads
            make_shared = shared.bucket if self._rate else shared.counter
        self._limits = _Limits(
            cfg,
            rate=self._rate,
            make=self._make,
            idle=lambda x: x.idle(),
            make_shared=make_shared,
            previous=self._limits if shared is None else None,
        )


class ConnLimiter(_Limiter):
    """Connections open at once, per GOST's limit lines (``shared``: counted with the
    other workers, see shared_limits.py)."""

    _make = _Counter

    def acquire(self, client_ip: str) -> Callable[[], None] | None:
        """A slot for one more connection from ``client_ip`` and the callable that frees it,
        or None when a limit is reached (nothing is taken then)."""
        counters = self._limits.for_client(client_ip)
        with _lock(self._shared):
            if any(c.current >= c.limit for c in counters):
                return None
            for c in counters:
                c.add(1)
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                with _lock(self._shared):
                    for c in counters:
                        c.add(-1)

        return release


class _Bucket:
    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.burst = int(rate) + 1  # GOST's NewLimiter(r, int(r)+1)
        self.tokens = float(self.burst)
        self.stamp = time.monotonic()

    def retune(self, rate: float) -> None:
        self.refill(time.monotonic())
        self.rate = rate
        self.burst = int(rate) + 1
        self.tokens = min(self.tokens, float(self.burst))

    def refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def full(self) -> bool:
        """Back at its burst: the same as a new bucket."""
        self.refill(time.monotonic())
        return self.tokens >= self.burst

    idle = full

    def take(self, now: float) -> bool:
        """Refill to ``now`` and say whether a token is there (taken by ``spend``)."""
        self.refill(now)
        return self.tokens >= 1

    def spend(self) -> None:
        self.tokens -= 1


class RateLimiter(_Limiter):
    """Requests per second, per GOST's limit lines (token buckets; ``shared``: drawn
    from with the other workers, see shared_limits.py)."""

    _rate = True
    _make = _Bucket

    def allow(self, client_ip: str) -> bool:
        """Take a token from every bucket that applies; False (taking none) if one is empty."""
        buckets = self._limits.for_client(client_ip)
        now = time.monotonic()
        with _lock(self._shared):
            if not all([b.take(now) for b in buckets]):  # every bucket refilled first
                return False
            for b in buckets:
                b.spend()
        return True
