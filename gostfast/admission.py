"""GOST's admission: which clients a service accepts, by their IP.

A service names admissions (top-level ``admissions:``, or ``admission=`` on
-L). Each has matchers: an IP, a CIDR, or a host name that is resolved once
at start (GOST resolves it when it loads the list; one that does not resolve
matches nothing, and we say so in the log). A plain admission denies the
clients it matches; a ``whitelist`` one admits only them. A client must pass
every admission of the service (GOST's AdmissionGroup); one that does not
is closed before any byte is read, and the rest of the service goes on.

Who is judged (README, "Which address each check judges"): the TCP peer,
always, as the listener accepts it (``Listener.judge_peer``, before any byte
is read or written and, on TLS listeners, before the handshake), as GOST
wraps its TCP listener; on websocket listeners also the address a proxy in
front put in CF-Connecting-IP / X-Forwarded-For / X-Real-IP, after the
upgrade request (transport/ws.py). A header is judged in addition to the
peer, never instead, so a client cannot pick the address it is judged by.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Sequence

from gostfast.config.model import AdmissionConfig

log = logging.getLogger("gostfast.admission")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _unmapped(ip: ipaddress.IPv4Address | ipaddress.IPv6Address):
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _resolve(name: str):
    """The first address ``name`` resolves to (Go's ResolveIPAddr), or None."""
    try:
        infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None
    return ipaddress.ip_address(infos[0][4][0]) if infos else None


class _Rule:
    __slots__ = ("whitelist", "networks")

    def __init__(self, cfg: AdmissionConfig) -> None:
        self.whitelist = cfg.whitelist
        self.networks: list[Network] = []
        for pattern in cfg.matchers:
            try:
                self.networks.append(ipaddress.ip_network(_unmapped_text(pattern), strict=False))
                continue
            except ValueError:
                pass
            ip = _resolve(pattern)
            if ip is None:
                log.warning(
                    "admission %s: '%s' is no IP, CIDR or resolvable name", cfg.name, pattern
                )
                continue
            log.debug("admission %s: %s -> %s", cfg.name, pattern, ip)
            self.networks.append(ipaddress.ip_network(_unmapped(ip)))

    def admits(self, ip) -> bool:
        matched = ip is not None and any(ip.version == n.version and ip in n for n in self.networks)
        return matched if self.whitelist else not matched


def _unmapped_text(pattern: str) -> str:
    """An IPv4-mapped IPv6 pattern as its IPv4 form (GOST compares unmapped addresses)."""
    try:
        return str(_unmapped(ipaddress.ip_address(pattern)))
    except ValueError:
        return pattern


class Admission:
    """Every admission of one service (GOST's group: a client must pass all)."""

    def __init__(self, configs: Sequence[AdmissionConfig]) -> None:
        self.rules = self.compile(configs)

    @staticmethod
    def compile(configs: Sequence[AdmissionConfig]) -> list[_Rule]:
        """The rules of ``configs``; resolves host names, so may block (a reload runs it
        in a thread, see ``reload``)."""
        return [_Rule(c) for c in configs]

    async def reload(self, configs: Sequence[AdmissionConfig]) -> None:
        """New admissions (a loader reloaded one): names resolved off the event loop,
        then the rules swapped in whole."""
        self.rules = await asyncio.to_thread(self.compile, configs)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def admits(self, client_ip: str) -> bool:
        if not client_ip:  # GOST admits an empty address
            return True
        try:
            ip = _unmapped(ipaddress.ip_address(client_ip.split("%")[0]))
        except ValueError:
            ip = None
        return all(rule.admits(ip) for rule in self.rules)
