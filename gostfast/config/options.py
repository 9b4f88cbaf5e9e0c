"""Component options: one frozen dataclass per component, parsed once at start.

GOST keeps each component's metadata keys and defaults in a metadata.go
struct beside it; gostfast keeps them in a frozen dataclass beside each
component, a ``ComponentOptions`` whose every field declares one option in
one place: its type (the annotation), default, GOST keys, conversion and doc::

    @dataclass(frozen=True)
    class WSListenerOptions(ComponentOptions):
        path: str = option("/ws", "ws.path", "path")

The orchestrator parses every component's metadata with ``parse`` before it
opens a socket, so a wrong type is an error at start, never at first use; the
components read typed attributes, so a misspelt one is an AttributeError (and
a type checker's complaint), never a silent default.

A field's annotation says how a value is read: ``bool``, ``int``, ``str``,
``float`` (a GOST duration, in seconds) or ``dict[str, str]`` (a map), each
possibly ``| None``. GOST rules kept here: keys are case-insensitive; where an
option has aliases the first key present wins (``ws.path`` beats ``path``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from gostfast.config import values
from gostfast.config.errors import ConfigError, not_supported, unsupported_message

_PARSERS = {
    "bool": values.parse_bool,
    "int": values.parse_int,
    "duration": values.parse_duration,
    "str": values.parse_str,
    "map": values.parse_map,
}

#: a field annotation's type -> how its values are parsed
_KINDS = {bool: "bool", int: "int", float: "duration", str: "str", dict: "map"}

#: where option() and unsupported() keep a field's Option (dataclasses' field metadata)
_META = "gostfast.option"


@dataclass(frozen=True)
class Option:
    """One metadata option: its field name, how it is parsed, its default and GOST keys."""

    name: str
    kind: str
    default: Any
    keys: tuple[str, ...]
    doc: str = ""
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    supported: bool = True
    #: GOST's normalisation of a parsed value (e.g. "<= 0 means the default"), applied
    #: before choices and bounds; a ValueError it raises is a config error at the key
    convert: Callable[[Any], Any] | None = None

    def all_keys(self) -> tuple[str, ...]:
        return tuple(k.lower() for k in self.keys)

    def read(self, md: Mapping[str, Any], where: str) -> Any:
        """This option's value in metadata ``md`` (keys lower-case) at YAML path ``where``."""
        key = next((k for k in self.all_keys() if k in md), None)
        if key is None:
            return self.default
        raw = md[key]
        path = f"{where[:-1]}.{key})" if where.endswith(")") else f"{where}.{key}"
        if not self.supported:
            if self._means_default(raw):
                return self.default
            raise not_supported(path, f"option '{key}'")
        try:
            value = self._parse(raw)
        except ValueError as exc:
            raise ConfigError(path, str(exc)) from None
        if self.choices and value not in self.choices:
            allowed = ", ".join(str(c) for c in self.choices)
            raise ConfigError(path, f"{value!r} is not allowed (allowed: {allowed})")
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(path, f"{raw!r} is below the minimum {self.minimum:g}")
        if self.maximum is not None and value > self.maximum:
            raise ConfigError(path, f"{raw!r} is above the maximum {self.maximum:g}")
        return value

    def _parse(self, raw: Any) -> Any:
        value = _PARSERS[self.kind](raw)
        return self.convert(value) if self.convert is not None else value

    def _means_default(self, raw: Any) -> bool:
        """Whether an unsupported option's value asks for nothing but GOST's default."""
        if raw in (None, "", False, "false", "0", 0) or raw == self.default:
            return True
        try:
            return self._parse(raw) == self.default
        except ValueError:
            return False


def _field(default: Any, keys: tuple[str, ...], kind: str = "", **kw: Any) -> Any:
    if not keys:
        raise ValueError("an option needs its GOST key(s)")
    # the name, the default and (unless given) the kind are the field's: see _declared
    return dataclasses.field(
        default=default, metadata={_META: Option(name="", kind=kind, default=None, keys=keys, **kw)}
    )


def option(
    default: Any,
    *keys: str,
    doc: str = "",
    choices: tuple[Any, ...] = (),
    minimum: float | None = None,
    maximum: float | None = None,
    convert: Callable[[Any], Any] | None = None,
) -> Any:
    """A ComponentOptions field for a GOST option: ``option("/ws", "ws.path", "path")``."""
    return _field(
        default, keys, doc=doc, choices=choices, minimum=minimum, maximum=maximum, convert=convert
    )


def unsupported(
    *keys: str,
    default: Any = None,
    kind: str = "",
    convert: Callable[[Any], Any] | None = None,
) -> Any:
    """A field for a GOST option gostfast does not implement: setting it is an error naming it.

    A value that means GOST's default (``default`` after parsing, e.g.
    ``idleTimeout: 0s``) is what gostfast does anyway, so it is accepted. It is
    parsed as the annotation says unless ``kind`` is given: ``kind="str"`` on a
    GOST bool accepts only false, 0 or empty as "the default".
    """
    if kind and kind not in _PARSERS:
        raise ValueError(f"unknown option kind {kind!r}")
    return _field(default, keys, kind=kind, supported=False, convert=convert)


def non_positive_is(default: float) -> Callable[[float], float]:
    """GOST's ``if v <= 0 { v = default }``, as an option's ``convert``."""
    return lambda v: default if v <= 0 else v


def negative_is_zero(v: float) -> float:
    """GOST's ``if v < 0 { v = 0 }`` (a negative timeout means none), as a ``convert``."""
    return 0.0 if v < 0 else v


def refused_when(bad: Any, what: str) -> Callable[[Any], Any]:
    """``convert`` for a GOST option gostfast implements for some values only: writing
    ``bad`` is refused by name (what is unset keeps GOST's default, unchecked)."""

    def check(value: Any) -> Any:
        if value == bad:
            raise ValueError(unsupported_message(what))
        return value

    return check


def idle_timeout_option(doc: str) -> Any:
    """GOST's ``idleTimeout`` of the forward and http handlers' pipe (< 0 = 0 = never)."""
    return option(0.0, "idleTimeout", convert=negative_is_zero, doc=doc)


def notls_option(doc: str) -> Any:
    """GOST's SOCKS5 ``notls`` (handler and connector): gostfast never runs GOST's TLS
    methods inside SOCKS5, so true (or unset) is what it does and false is refused."""
    return option(
        False,
        "notls",
        convert=refused_when(False, "notls=false (TLS methods inside SOCKS5)"),
        doc=doc,
    )


def _kind_of(annotation: Any, where: str) -> str:
    """How values of a field annotated ``annotation`` are parsed (``X | None`` as ``X``)."""
    args = (annotation,)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = tuple(a for a in typing.get_args(annotation) if a is not type(None))
    if len(args) == 1:
        kind = _KINDS.get(typing.get_origin(args[0]) or args[0])
        if kind is not None:
            return kind
    raise TypeError(f"{where}: no option kind for the annotation {annotation!r}")


#: each options class's resolved fields, made at its first use (registration)
_DECLARED: dict[type, tuple[Option, ...]] = {}


def _declared(cls: type[ComponentOptions]) -> tuple[Option, ...]:
    found = _DECLARED.get(cls)
    if found is None:
        found = _DECLARED[cls] = _resolve(cls)
    return found


def _resolve(cls: type[ComponentOptions]) -> tuple[Option, ...]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        o = f.metadata.get(_META)
        if o is None:
            raise TypeError(f"{cls.__name__}.{f.name}: declare it with option() or unsupported()")
        kind = o.kind or _kind_of(hints[f.name], f"{cls.__name__}.{f.name}")
        out.append(dataclasses.replace(o, name=f.name, kind=kind, default=f.default))
    return tuple(out)


OptionsT = TypeVar("OptionsT", bound="ComponentOptions")


@dataclass(frozen=True)
class ComponentOptions:
    """A component's parsed metadata. Subclasses declare fields with ``option``/``unsupported``;
    this base, with none, serves the components that read no metadata."""

    @classmethod
    def declared(cls) -> tuple[Option, ...]:
        """The options, in declaration order (resolved once per class)."""
        return _declared(cls)

    @classmethod
    def known_keys(cls) -> frozenset[str]:
        """Every metadata key (lower-case) an option reads: the others are logged as ignored."""
        return frozenset(k for o in cls.declared() for k in o.all_keys())

    @classmethod
    def parse(cls: type[OptionsT], md: Mapping[str, Any], where: str) -> OptionsT:
        """Parse metadata ``md`` (keys already lower-case); ``where`` is the YAML path of
        the metadata map, used in error messages."""
        return cls(**{o.name: o.read(md, where) for o in cls.declared()})

    def check(self, where: str) -> None:
        """Checks across options, run in the plan phase once every part is parsed: raises
        ConfigError at ``where`` (the metadata's YAML path). None by default."""

    def items(self) -> list[tuple[str, Any]]:
        """(field name, value) in declaration order, as ``gostfast check`` prints them."""
        return [(o.name, getattr(self, o.name)) for o in self.declared()]
