"""Component registries, by GOST's names: listener, handler, dialer, connector.

A component module registers itself at import with one line, e.g.::

    listeners.register("ws", WSListener, WSListenerOptions)

and ``load_builtins()`` imports every module of the component packages, so a
new transport or protocol is one module with one registration line.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gostfast.config.options import ComponentOptions

_PACKAGES = ("gostfast.transport", "gostfast.handler", "gostfast.connector")


@dataclass(frozen=True)
class Component:
    kind: str
    name: str
    factory: Callable[..., Any]
    #: the component's options class: ``options.parse(md, where)`` in the plan phase
    options: type[ComponentOptions]


class Registry:
    """Name -> component factory, for one kind of component."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, Component] = {}

    def register(
        self,
        name: str,
        factory: Callable[..., Any],
        options: type[ComponentOptions] = ComponentOptions,
    ) -> None:
        if name in self._items:
            raise ValueError(f"{self.kind} '{name}' registered twice")
        options.declared()  # a field declared wrong fails here, as its module is imported
        self._items[name] = Component(self.kind, name, factory, options)

    def get(self, name: str) -> Component | None:
        return self._items.get(name)

    def names(self) -> list[str]:
        """Registered names, sorted (messages list them; order must not depend on imports)."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items


listeners = Registry("listener")
handlers = Registry("handler")
dialers = Registry("dialer")
connectors = Registry("connector")

#: the registries by their kind ("listener", "handler", "dialer", "connector")
BY_KIND = {r.kind: r for r in (listeners, handlers, dialers, connectors)}

_loaded = False


def load_builtins() -> None:
    """Import every component module once (each registers itself)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for pkg_name in _PACKAGES:
        pkg = importlib.import_module(pkg_name)
        for mod in pkgutil.iter_modules(pkg.__path__):
            if not mod.name.startswith("_"):
                importlib.import_module(f"{pkg_name}.{mod.name}")


def names():
    """The registered names, for the CLI grammar's fallback rules."""
    from gostfast.config.url import Names

    load_builtins()
    return Names(
        handlers=set(handlers.names()),
        listeners=set(listeners.names()),
        connectors=set(connectors.names()),
        dialers=set(dialers.names()),
    )
