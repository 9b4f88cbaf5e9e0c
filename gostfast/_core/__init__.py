"""Codec selection: each codec exists twice, compiled and pure.

A codec NAME is ``NAME_c`` (Cython, compiled by setup.py from ``NAME_c.pyx``)
and ``NAME_py`` (pure Python, same names and behaviour: the readable
specification and the fallback). ``select(NAME)`` returns the compiled module
unless ``GOSTFAST_NO_EXTENSIONS=1`` is set or it cannot be imported; the
property tests in tests/property prove the two agree.

Nothing in ``gostfast._core`` imports asyncio or touches a socket.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import warnings
from types import ModuleType

FORCE_PURE: bool = os.environ.get("GOSTFAST_NO_EXTENSIONS", "").strip() not in ("", "0")

_chosen: dict[str, ModuleType] = {}


def codec_names() -> list[str]:
    """Every codec that has a pure twin (``*_py`` module) in this package."""
    return sorted(m.name[:-3] for m in pkgutil.iter_modules(__path__) if m.name.endswith("_py"))


def pure(name: str) -> ModuleType:
    """The pure-Python twin of codec ``name``."""
    return importlib.import_module(f"{__name__}.{name}_py")


def compiled_module(name: str) -> ModuleType | None:
    """The compiled codec ``name``, or None when it is not built."""
    try:
        return importlib.import_module(f"{__name__}.{name}_c")
    except ImportError:
        return None


def select(name: str) -> ModuleType:
    """The implementation of codec ``name`` that gostfast runs."""
    mod = _chosen.get(name)
    if mod is None:
        mod = None if FORCE_PURE else compiled_module(name)
        if mod is None:
            if not FORCE_PURE:
                warnings.warn(
                    f"gostfast: compiled codec {name}_c is missing; using the slow pure twin",
                    RuntimeWarning,
                    stacklevel=2,
                )
            mod = pure(name)
        _chosen[name] = mod
    return mod


def all_compiled() -> bool:
    """True when every codec runs compiled (what ``gostfast.compiled`` reports)."""
    names = codec_names()
    return bool(names) and all(select(n).__name__.endswith("_c") for n in names)
