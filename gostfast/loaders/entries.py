"""Loaded entries -> a named list's items, as GOST parses each part's data source.

Text (a file, an HTTP body, a Redis set or list) is read a line or an item at
a time: ``#`` starts a comment (for authers only a line starting with ``#``,
so a password may hold one, as GOST), blanks are skipped. Each part:

* authers: ``user password`` (tabs as spaces; the password may be empty: any
  password then, as GOST); a Redis hash maps user -> password directly;
* bypasses, admissions: one matcher per line;
* hosts: ``IP hostname [alias...]`` (an /etc/hosts file reads as is);
* climiters, rlimiters, limiters: GOST's limit lines (``$ 100``, ``$$ 1MB``).

What GOST silently drops or misreads (a hosts line with a bad IP, a limit that
is no number, a matcher with a space inside) is reported to ``bad(entry,
reason)`` and skipped; the caller logs it with the list and source names.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from gostfast.config import values
from gostfast.config.model import Auth
from gostfast.loaders.sources import Entries

Bad = Callable[[str, str], None]


def _uncomment(line: str) -> str:
    return line.split("#", 1)[0].strip()


def _auths(raw: Entries, bad: Bad) -> tuple[Auth, ...]:
    """GOST's parseAuths (or, for a Redis hash, its Map)."""
    out: list[Auth] = []
    if isinstance(raw, dict):
        for user, password in raw.items():
            if not user.strip():
                bad("(an empty user name)", "a user needs a name")
                continue
            out.append(Auth(user.strip(), password.strip()))
        return tuple(out)
    for line in raw:
        line = line.replace("\t", " ").strip()
        if not line or line.startswith("#"):
            continue
        user, _, password = line.partition(" ")
        out.append(Auth(user.strip(), password.strip()))
    return tuple(out)


def _matchers(raw: Entries, bad: Bad) -> tuple[str, ...]:
    out = []
    for item in _lines(raw):
        text = _uncomment(item)
        if not text:
            continue
        if len(text.split()) > 1:
            bad(text, "one matcher per line (it has a space inside)")
            continue
        out.append(text)
    return tuple(out)


def _hosts(raw: Entries, bad: Bad) -> tuple[tuple[str, str], ...]:
    """GOST's hosts parseLine: ``IP name [name...]``."""
    out: list[tuple[str, str]] = []
    for item in _lines(raw):
        fields = _uncomment(item.replace("\t", " ")).split()
        if not fields:
            continue
        if len(fields) < 2:
            bad(" ".join(fields), "expected 'IP hostname [alias...]'")
            continue
        try:
            ip = str(ipaddress.ip_address(fields[0]))
        except ValueError:
            bad(" ".join(fields), f"'{fields[0]}' is not an IP address")
            continue
        out += [(name, ip) for name in fields[1:]]
    return tuple(out)


def _limit_lines(check: Callable[[str], Any]) -> Callable[[Entries, Bad], tuple[str, ...]]:
    def parse(raw: Entries, bad: Bad) -> tuple[str, ...]:
        out = []
        for item in _lines(raw):
            text = " ".join(_uncomment(item.replace("\t", " ")).split())
            if not text:
                continue
            try:
                check(text)
            except ValueError as exc:
                bad(text, str(exc))
                continue
            out.append(text)
        return tuple(out)

    return parse


def _lines(raw: Entries) -> list[str]:
    """A source's entries as lines (a hash, for a part that reads lines: ``key value``)."""
    if isinstance(raw, dict):
        return [f"{k} {v}" for k, v in raw.items()]
    return raw


#: each part's section name -> (the config field loaded entries extend, the parser)
PARSERS: dict[str, tuple[str, Callable[[Entries, Bad], tuple]]] = {
    "authers": ("auths", _auths),
    "bypasses": ("matchers", _matchers),
    "admissions": ("matchers", _matchers),
    "hosts": ("mappings", _hosts),
    "climiters": ("limits", _limit_lines(values.parse_conn_line)),
    "rlimiters": ("limits", _limit_lines(values.parse_rate_line)),
    "limiters": ("limits", _limit_lines(values.parse_traffic_line)),
}
