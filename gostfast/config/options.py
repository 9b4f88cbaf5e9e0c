"""Component options: declared once per component, parsed once at start.

GOST keeps each component's metadata keys and defaults in a metadata.go
beside it; we keep them in an ``OPTIONS`` tuple beside each component. The
orchestrator parses every component's metadata with ``parse_options`` before
it opens a socket, so a wrong type is an error at start, never at first use.

GOST rules kept here: keys are case-insensitive; where an option has aliases
the first key present wins (``ws.path`` beats ``path``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gostfast.config import values
from gostfast.config.errors import ConfigError, not_supported, unsupported_message

_PARSERS = {
    "bool": values.parse_bool,
    "int": values.parse_int,
    "duration": values.parse_duration,
    "str": values.parse_str,
    "map": values.parse_map,
}


@dataclass(frozen=True)
class Option:
    """One metadata option: its GOST keys (first present wins), type and default."""

    name: str
    kind: str
    default: Any
    keys: tuple[str, ...] = ()
    doc: str = ""
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    supported: bool = True
    #: GOST's normalisation of a parsed value (e.g. "<= 0 means the default"), applied
    #: before choices and bounds; a ValueError it raises is a config error at the key
    convert: Callable[[Any], Any] | None = None

    def all_keys(self) -> tuple[str, ...]:
        return tuple(k.lower() for k in (self.keys or (self.name,)))


def opt(name: str, kind: str, default: Any, *aliases: str, **kw: Any) -> Option:
    """Shorthand: ``opt("path", "str", "/ws", "ws.path", "path")``.

    With no aliases the option's only key is its name.
    """
    if kind not in _PARSERS:
        raise ValueError(f"unknown option kind {kind!r}")
    return Option(name=name, kind=kind, default=default, keys=tuple(aliases), **kw)


def unsupported(
    name: str,
    *aliases: str,
    default: Any = None,
    kind: str = "str",
    convert: Callable[[Any], Any] | None = None,
) -> Option:
    """A GOST option gostfast does not implement: setting it is an error naming it.

    A value that means GOST's default (``default`` after parsing as ``kind`` and
    ``convert``, e.g. ``idleTimeout: 0s``) is what gostfast does anyway, so it is
    accepted.
    """
    return Option(
        name=name,
        kind=kind,
        default=default,
        keys=tuple(aliases),
        supported=False,
        convert=convert,
    )


def non_positive_is(default: float) -> Callable[[float], float]:
    """GOST's ``if v <= 0 { v = default }``, as an option's ``convert``."""
    return lambda v: default if v <= 0 else v


def negative_is_zero(v: float) -> float:
    """GOST's ``if v < 0 { v = 0 }`` (a negative timeout means none), as a ``convert``."""
    return 0.0 if v < 0 else v


def idle_timeout_opt(doc: str) -> Option:
    """GOST's ``idleTimeout`` of the forward and http handlers' pipe (< 0 = 0 = never)."""
    return opt("idle_timeout", "duration", 0.0, "idleTimeout", convert=negative_is_zero, doc=doc)


def _means_default(o: Option, raw: Any) -> bool:
    """Whether an unsupported option's value asks for nothing but GOST's default."""
    if raw in (None, "", False, "false", "0", 0) or raw == o.default:
        return True
    try:
        value = _PARSERS[o.kind](raw)
        if o.convert is not None:
            value = o.convert(value)
    except ValueError:
        return False
    return value == o.default


class Options(dict):
    """Parsed options: ``opts.path`` or ``opts["path"]``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def refused_when(bad: Any, what: str) -> Callable[[Any], Any]:
    """``convert`` for a GOST option gostfast implements for some values only: writing
    ``bad`` is refused by name (what is unset keeps GOST's default, unchecked)."""

    def check(value: Any) -> Any:
        if value == bad:
            raise ValueError(unsupported_message(what))
        return value

    return check


def notls_opt(doc: str) -> Option:
    """GOST's SOCKS5 ``notls`` (handler and connector): gostfast never runs GOST's TLS
    methods inside SOCKS5, so true (or unset) is what it does and false is refused."""
    return opt(
        "notls",
        "bool",
        False,
        "notls",
        convert=refused_when(False, "notls=false (TLS methods inside SOCKS5)"),
        doc=doc,
    )


def known_keys(spec: Iterable[Option]) -> set[str]:
    return {k for o in spec for k in o.all_keys()}


def parse_options(spec: Sequence[Option], md: Mapping[str, Any], where: str) -> Options:
    """Parse metadata ``md`` (keys already lower-case) against ``spec``.

    ``where`` is the YAML path of the metadata map, used in error messages.
    """
    out = Options()
    for o in spec:
        key = next((k for k in o.all_keys() if k in md), None)
        if key is None:
            out[o.name] = o.default
            continue
        raw = md[key]
        path = f"{where[:-1]}.{key})" if where.endswith(")") else f"{where}.{key}"
        if not o.supported:
            if _means_default(o, raw):
                out[o.name] = o.default
                continue
            raise not_supported(path, f"option '{key}'")
        try:
            value = _PARSERS[o.kind](raw)
            if o.convert is not None:
                value = o.convert(value)
        except ValueError as exc:
            raise ConfigError(path, str(exc)) from None
        if o.choices and value not in o.choices:
            allowed = ", ".join(str(c) for c in o.choices)
            raise ConfigError(path, f"{value!r} is not allowed (allowed: {allowed})")
        if o.minimum is not None and value < o.minimum:
            raise ConfigError(path, f"{raw!r} is below the minimum {o.minimum:g}")
        if o.maximum is not None and value > o.maximum:
            raise ConfigError(path, f"{raw!r} is above the maximum {o.maximum:g}")
        out[o.name] = value
    return out
