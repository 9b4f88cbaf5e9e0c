"""GOST's hosts: static name -> IP mappings, consulted before any DNS.

A service's hosts map the target of every request before it is routed (the
route, its bypasses and the last hop's connector then see the IP); a node's
hosts (or its hop's, for nodes without their own) map the node's own address
when it is dialled. Lookup order is GOST's (x/hosts): the name itself, then
``.name``, then each parent suffix (``.example.com`` covers every name under
it), then ``.`` (everything). The first mapped IP is used; a name with no
mapping goes on unchanged (DNS happens at the final dial, as in GOST).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from gostfast.config.model import HostsConfig


def domain_keys(name: str) -> Iterator[str]:
    """The keys GOST looks a name up under, in order (x/hosts, x/internal/matcher):
    ``a.b.c``, ``.a.b.c``, then each parent suffix ``.b.c``, ``.c``."""
    yield name
    yield "." + name
    rest = name
    while (dot := rest.find(".")) > 0:
        yield rest[dot:]
        rest = rest[dot + 1 :]


class HostMapper:
    """One hosts table: lower-cased names to the IPs mapped to them, in order."""

    def __init__(self, configs: Sequence[HostsConfig]) -> None:
        self.reset(configs)

    def reset(self, configs: Sequence[HostsConfig]) -> None:
        """New tables (a loader reloaded one): built first, then swapped in whole."""
        table: dict[str, list[str]] = {}
        for cfg in configs:
            for name, ip in cfg.mappings:
                table.setdefault(name.lower(), []).append(ip)
        self.table = table

    def __bool__(self) -> bool:
        return bool(self.table)

    def lookup(self, host: str) -> str | None:
        """The IP ``host`` maps to, or None."""
        for key in domain_keys(host.lower()):
            if key in self.table:
                return self.table[key][0]
        ips = self.table.get(".")
        return ips[0] if ips else None
