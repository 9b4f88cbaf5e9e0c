"""GOST's value parsing rules: Go-style bools, ints, durations and named choices.

GOST reads metadata with Go's strconv and time.ParseDuration; a duration that
does not parse as a Go duration is read as a bare number of seconds. We follow
the same rules so a GOST config means the same thing here.
"""

from __future__ import annotations

import ipaddress
import re

from gostfast.config.errors import unsupported_message

_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_bool(value: object) -> bool:
    """Go's strconv.ParseBool; a YAML bool passes through."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
    raise ValueError(f"expected a boolean (true/false/1/0), got {value!r}")


def parse_int(value: object) -> int:
    """Go's strconv.Atoi; a YAML int passes through (a bool does not)."""
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[+-]?\d+", text):
            return int(text)
    raise ValueError(f"expected an integer, got {value!r}")


def parse_duration(value: object) -> float:
    """A duration in seconds: Go's ParseDuration ("1m30s"), else bare seconds ("30")."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 10s or 1m30s, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        sign = 1.0
        if text and text[0] in "+-":
            sign = -1.0 if text[0] == "-" else 1.0
            text = text[1:]
        if text == "0":
            return 0.0
        pos, total = 0, 0.0
        while pos < len(text):
            m = _DURATION_PART.match(text, pos)
            if not m:
                break
            total += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if text and pos == len(text):
            return sign * total
        if re.fullmatch(r"\d+", text):
            return sign * float(text)
    raise ValueError(f"expected a duration like 10s or 1m30s, got {value!r}")


def parse_str(value: object) -> str:
    """A scalar as text (YAML may give an int for a numeric string)."""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"expected a string, got {value!r}")


# GOST's selector strategies and their aliases (x/config/parsing: "rr", "random", "ha")
STRATEGY_NAMES = {
    "round": "round",
    "rr": "round",
    "rand": "rand",
    "random": "rand",
    "fifo": "fifo",
    "ha": "fifo",
}
# GOST's (logrus) log levels; "warning" and "panic" are logrus spellings too
LOG_LEVEL_NAMES = {
    "trace": "trace",
    "debug": "debug",
    "info": "info",
    "warn": "warn",
    "warning": "warn",
    "error": "error",
    "fatal": "fatal",
    "panic": "fatal",
}
LOG_FORMAT_NAMES = {"text": "text", "json": "json"}


def parse_choice(value: object, names: dict[str, str], what: str) -> str:
    """One of ``names`` (any case), as its canonical name; else a ValueError listing them.

    GOST falls back to a default on an unknown strategy or level; we refuse it,
    so a typo is not silently a different behaviour.
    """
    text = parse_str(value).strip().lower()
    if text in names:
        return names[text]
    raise ValueError(f"unknown {what} {text!r} (allowed: {', '.join(names)})")


def parse_strategy(value: object) -> str:
    """A selector strategy: round, rand or fifo (GOST's aliases rr, random, ha accepted)."""
    if parse_str(value).strip().lower() == "hash":
        raise ValueError(unsupported_message("strategy 'hash'"))
    return parse_choice(value, STRATEGY_NAMES, "strategy")


def parse_map(value: object) -> dict[str, str]:
    """A string-to-string map (e.g. ``header``)."""
    if isinstance(value, dict):
        return {str(k): parse_str(v) for k, v in value.items()}
    raise ValueError(f"expected a map of name: value, got {value!r}")


def format_duration(seconds: float) -> str:
    """Seconds back into Go-style text, for printing the resolved model."""
    if seconds == int(seconds):
        s = int(seconds)
        if s and s % 3600 == 0:
            return f"{s // 3600}h"
        if s and s % 60 == 0:
            return f"{s // 60}m"
        return f"{s}s"
    return f"{seconds * 1000:g}ms"


GLOBAL_LIMIT_KEY = "$"  # GOST's limiter lines: the whole service
PER_IP_LIMIT_KEY = "$$"  # each client IP no other line names


def _check_limit_key(key: str, line: str) -> None:
    if key not in (GLOBAL_LIMIT_KEY, PER_IP_LIMIT_KEY):
        try:
            ipaddress.ip_network(key, strict=False)
        except ValueError:
            raise ValueError(
                f"key in {line!r}: expected $, $$, an IP or a CIDR, got {key!r}"
            ) from None


def parse_limit_line(line: str, rate: bool) -> tuple[str, float]:
    """``KEY VALUE`` -> (key, value); ValueError naming what is wrong."""
    parts = line.replace("\t", " ").split()
    if len(parts) < 2:
        raise ValueError(
            f"expected 'KEY LIMIT' ($, $$, an IP or a CIDR, then a number), got {line!r}"
        )
    key, text = parts[0], parts[1]
    try:
        value = float(text) if rate else int(text)
    except ValueError:
        kind = "a number" if rate else "an integer"
        raise ValueError(f"limit in {line!r}: expected {kind}, got {text!r}") from None
    if value <= 0:
        raise ValueError(f"limit in {line!r} must be greater than 0")
    _check_limit_key(key, line)
    return key, value


def parse_conn_line(line: str) -> tuple[str, float]:
    """A ``climiters:`` line (connections open at once)."""
    return parse_limit_line(line, rate=False)


def parse_rate_line(line: str) -> tuple[str, float]:
    """An ``rlimiters:`` line (requests per second)."""
    return parse_limit_line(line, rate=True)


# GOST's byte sizes (alecthomas/units ParseBase2Bytes): every prefix is a power of
# 1024 whether spelt KB or KiB; "kB" and lower-case prefixes are not units there
_SIZE_UNITS = {"B": 1}
for _i, _p in enumerate("KMGTPE", start=1):
    _SIZE_UNITS[_p + "B"] = _SIZE_UNITS[_p + "iB"] = 1024**_i
_SIZE_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([A-Za-z]+)")


def parse_size(text: str) -> int:
    """GOST's size ("100MB", "1MiB", "512KB", "1.5GB", "1MB512KB") -> bytes; "0" is 0.

    GOST reads a size it cannot parse (a bare "100000", "10mb") as no limit at
    all; that silent fallback is refused here, so a typo is not an open pipe.
    """
    if text == "0":
        return 0
    pos, total = 0, 0.0
    while pos < len(text) or not text:
        m = _SIZE_PART.match(text, pos)
        if m is None or m.group(2) not in _SIZE_UNITS:
            raise ValueError(
                f"expected a size with a unit (B, KB, MB, GB, KiB, MiB, GiB: powers of "
                f"1024, as GOST), got {text!r}"
            )
        total += float(m.group(1)) * _SIZE_UNITS[m.group(2)]
        pos = m.end()
    return int(total)


def parse_traffic_line(line: str) -> tuple[str, int, int, int]:
    """GOST's traffic limiter line ``KEY IN [OUT [BURST]]`` -> (key, in, out, burst).

    Each is bytes per second (burst: bytes); 0 or absent = no limit that way
    (burst: the rate). ValueError naming what is wrong.
    """
    parts = line.replace("\t", " ").split()
    if not 2 <= len(parts) <= 4:
        raise ValueError(
            f"expected 'KEY IN [OUT [BURST]]' ($, $$, an IP or a CIDR, then sizes "
            f"per second such as 10MB), got {line!r}"
        )
    _check_limit_key(parts[0], line)
    sizes = []
    for text in parts[1:]:
        try:
            sizes.append(parse_size(text))
        except ValueError as exc:
            raise ValueError(f"in {line!r}: {exc}") from None
    sizes += [0] * (4 - len(parts))
    return parts[0], sizes[0], sizes[1], sizes[2]
