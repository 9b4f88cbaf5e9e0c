"""GOST's bypass: which target addresses a service refuses, or a hop or node does not carry.

A bypass is a list of matchers, each one of (go-gost/x bypass, internal/matcher):

* a CIDR (``10.0.0.0/8``, ``fd00::/8``): the target's host, when an IP, is inside;
* an IP or an IP range (``192.168.1.9``, ``10.0.0.1-10.0.0.99``): any port;
* a glob with ``*``/``?`` (``*.example.com``, ``api?.example.com:8000-9000``): the
  lower-cased host matches (``*`` crosses dots), and the port range if given;
* anything else is a host with an optional port or port range: ``example.com``
  is that host only, ``.example.com`` is it and every name under it.

A plain bypass matches when any matcher does (the target is bypassed); a
``whitelist`` one bypasses every target that no matcher matches. Several
bypasses on one place combine as GOST's BypassGroup: bypassed when every
whitelist one says so (if there are any), or when any plain one does.

What "bypassed" means is up to the place: a handler refuses the target
(403, SOCKS "not allowed", relay Forbidden), a hop ends the route before
itself, a node is left out of its hop's selection.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence

from gostfast.chain.hosts import domain_keys
from gostfast.config.model import BypassConfig
from gostfast.proto.addr import split_host_port
from gostfast.proto.errors import AddressError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _split_host_port(addr: str) -> tuple[str, str]:
    """GOST's matcher splitHostPort: where Go's split fails (a bare host, a bare IPv6
    address) the whole text is the host; an empty host is the whole text too."""
    try:
        host, port = split_host_port(addr)
    except AddressError:
        return addr, ""
    return host or addr, port


def _port_range(text: str) -> tuple[int, int] | None:
    """GOST's PortRange.Parse: ``80`` or ``80-90``; anything else means any port."""
    parts = text.split("-")
    try:
        if len(parts) == 1:
            port = int(text)
            return (port, port) if 0 <= port <= 65535 else None
        if len(parts) == 2:
            return int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return None


def _port_of(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0  # Go's Atoi error value


def _in_ranges(ranges: Iterable[tuple[int, int] | None], port: int) -> bool:
    return any(r is None or r[0] <= port <= r[1] for r in ranges)


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _ip_range(pattern: str) -> tuple[IPAddress, IPAddress] | None:
    parts = pattern.split("-")
    if len(parts) == 1:
        ip = _ip(pattern)
        return (ip, ip) if ip is not None else None
    if len(parts) == 2:
        lo, hi = _ip(parts[0]), _ip(parts[1])
        if lo is not None and hi is not None:
            return lo, hi
    return None


def _glob_regex(pattern: str) -> re.Pattern[str] | None:
    """gobwas/glob without separators: ``*`` any run, ``?`` one character, ``[...]`` a
    class (``[!...]`` negated), ``{a,b}`` alternatives, ``\\`` escapes. None if malformed."""
    out, i, depth = [], 0, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                return None
            body = pattern[i + 1 : end]
            neg = body.startswith("!")
            body = body[1:] if neg else body
            if not body:
                return None
            out.append("[" + ("^" if neg else "") + body.replace("\\", "\\\\") + "]")
            i = end
        elif c == "{":
            depth += 1
            out.append("(?:")
        elif c == "}" and depth:
            depth -= 1
            out.append(")")
        elif c == "," and depth:
            out.append("|")
        else:
            out.append(re.escape(c))
        i += 1
    if depth:
        return None
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error:
        return None


class Matchers:
    """One bypass's patterns, sorted into GOST's four matcher kinds."""

    __slots__ = ("cidrs", "ranges", "addrs", "globs")

    def __init__(self, patterns: Iterable[str]) -> None:
        self.cidrs: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.ranges: list[tuple[IPAddress, IPAddress]] = []
        self.addrs: dict[str, list[tuple[int, int] | None]] = {}
        self.globs: list[tuple[re.Pattern[str], tuple[int, int] | None]] = []
        for pattern in patterns:
            self._add(pattern)

    def _add(self, pattern: str) -> None:
        if "/" in pattern:
            try:
                self.cidrs.append(ipaddress.ip_network(pattern, strict=False))
                return
            except ValueError:
                pass
        if "*" in pattern or "?" in pattern:
            host, port = _split_host_port(pattern)
            rx = _glob_regex(host.lower())
            if rx is not None:
                self.globs.append((rx, _port_range(port) if port else None))
                return
        ip_range = _ip_range(pattern)
        if ip_range is not None:
            self.ranges.append(ip_range)
            return
        host, port = _split_host_port(pattern)
        ranges = self.addrs.setdefault(host.lower(), [])
        ranges.append(_port_range(port) if port else None)

    def match(self, addr: str) -> bool:
        host, port_text = _split_host_port(addr)
        ip = _ip(host)
        if ip is not None:
            for lo, hi in self.ranges:
                if lo.version == ip.version and lo <= ip <= hi:
                    return True
        port = _port_of(port_text)
        name = host.lower()
        for key in domain_keys(name):  # .example.com covers www.example.com
            if key in self.addrs and _in_ranges(self.addrs[key], port):
                return True
        if ip is not None:
            mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
            probe = mapped or ip
            if any(probe.version == n.version and probe in n for n in self.cidrs):
                return True
        return any(
            rx.fullmatch(name) and (pr is None or pr[0] <= port <= pr[1]) for rx, pr in self.globs
        )


class Bypass:
    """Every bypass of one place (a service, hop or node), combined as GOST's group."""

    def __init__(self, rules: Sequence[BypassConfig]) -> None:
        self.reset(rules)

    def reset(self, rules: Sequence[BypassConfig]) -> None:
        """New rules (a loader reloaded one): compiled first, then swapped in whole."""
        compiled = [(r, Matchers(r.matchers)) for r in rules]
        self.rules, self._compiled = list(rules), compiled

    def __bool__(self) -> bool:
        return bool(self.rules)

    @staticmethod
    def _decide(rule: BypassConfig, m: Matchers, network: str, addr: str) -> bool:
        """GOST's localBypass.decide: True = bypass."""
        if rule.network and rule.network != network:
            return False
        if not rule.matchers:  # nothing to match: only a network-wide plain rule bypasses
            return bool(rule.network) and not rule.whitelist
        matched = m.match(addr)
        return not matched if rule.whitelist else matched

    def contains(self, addr: str, network: str = "tcp") -> bool:
        """Whether ``addr`` (``host:port``) is bypassed here (GOST's BypassGroup)."""
        if not addr:
            return False
        whitelists = [(r, m) for r, m in self._compiled if r.whitelist]
        if whitelists and all(self._decide(r, m, network, addr) for r, m in whitelists):
            return True
        return any(self._decide(r, m, network, addr) for r, m in self._compiled if not r.whitelist)
