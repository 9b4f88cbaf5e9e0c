"""The config the web API serves and edits: GOST's schema as plain data, and its edits.

GOST's API reads and writes ``config.Global()``, the config as GOST's schema
(x/api). Ours is the same document: the ``-C`` sources' top-level mappings as
they were written (so authers, bypasses, ... keep their names), the ``-L``/``-F``
services and chains in GOST's schema (config/gost_output.py, as ``-O`` writes
them), and the effective ``api`` section, merged as the command line merges
them (lists appended in order; ``tls``, ``log``, ``api``, ``workers``: the last
one given).

An edit returns a new document and never changes this one: the caller parses
and plans the new one, applies it, and only then keeps it (api/controller.py).
Errors are GOST's (x/api/error.go): a JSON body ``{"code": N, "msg": "..."}``
with GOST's status for each code.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

#: the sections GOST's API edits (x/api/api.go), each with the noun its messages use
SECTIONS: dict[str, str] = {
    "services": "service",
    "chains": "chain",
    "hops": "hop",
    "authers": "auther",
    "admissions": "admission",
    "bypasses": "bypass",
    "hosts": "hosts",
    "limiters": "limiter",
    "climiters": "limiter",
    "rlimiters": "limiter",
}

# GOST's top-level keys as its encoder writes them (viper reads them in any case)
_CANONICAL = {
    k.lower(): k
    for k in (*SECTIONS, "tls", "log", "api", "metrics", "workers", "profiling", "plugins")
}
_SINGLE = ("tls", "log", "api", "workers", "metrics", "profiling")

# GOST's codes (x/api/error.go)
INVALID, DUPLICATE, FAILED, NOT_FOUND = 40001, 40002, 40003, 40004


@dataclass
class ApiError(Exception):
    """A request the API refuses: HTTP ``status`` with GOST's ``{"code", "msg"}`` body."""

    status: int
    code: int
    msg: str

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "msg": self.msg}


def _canonical_top(data: dict[str, Any]) -> dict[str, Any]:
    return {_CANONICAL.get(str(k).lower(), str(k)): v for k, v in data.items()}


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The parts' top-level mappings as one document, merged as the command line does."""
    doc: dict[str, Any] = {}
    for part in parts:
        for key, value in _canonical_top(part).items():
            if key in SECTIONS or key not in _SINGLE and isinstance(value, list):
                doc.setdefault(key, [])
                doc[key] = list(doc[key]) + list(value or [])
            else:
                doc[key] = value
    return copy.deepcopy(doc)


def entry_name(entry: Any) -> str | None:
    """An entry's ``name`` (keys in any case, as GOST's viper reads them)."""
    if not isinstance(entry, dict):
        return None
    for key, value in entry.items():
        if str(key).lower() == "name":
            return value.strip() if isinstance(value, str) else None
    return None


def _with_name(obj: dict[str, Any], name: str) -> dict[str, Any]:
    out = {k: v for k, v in obj.items() if str(k).lower() != "name"}
    return {"name": name, **out}


class Document:
    """One version of the config in GOST's schema; edits make new versions."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def section(self, section: str) -> list[Any]:
        value = self.data.get(section)
        return list(value) if isinstance(value, list) else []

    def find(self, section: str, name: str) -> tuple[int, Any] | None:
        for i, entry in enumerate(self.section(section)):
            if entry_name(entry) == name:
                return i, entry
        return None

    def _replace_section(self, section: str, entries: list[Any]) -> Document:
        data = copy.deepcopy(self.data)
        if entries:
            data[section] = entries
        else:
            data.pop(section, None)
        return Document(data)

    def create(self, section: str, obj: Any) -> tuple[Document, int]:
        """The document with ``obj`` appended to ``section``, and its index there."""
        noun = SECTIONS[section]
        name = entry_name(_object(obj))
        if not name:
            raise ApiError(400, INVALID, f"{noun} name is required")
        if self.find(section, name) is not None:
            raise ApiError(400, DUPLICATE, f"{noun} {name} already exists")
        entries = [*self.section(section), _with_name(obj, name)]
        return self._replace_section(section, entries), len(entries) - 1

    def update(self, section: str, name: str, obj: Any) -> tuple[Document, int]:
        """The document with entry ``name`` of ``section`` replaced (GOST: the name in
        the path wins over one in the body), and its index."""
        found = self._existing(section, name)
        entries = self.section(section)
        entries[found] = _with_name(_object(obj), name)
        return self._replace_section(section, entries), found

    def delete(self, section: str, name: str) -> Document:
        found = self._existing(section, name)
        entries = self.section(section)
        del entries[found]
        return self._replace_section(section, entries)

    def _existing(self, section: str, name: str) -> int:
        found = self.find(section, name.strip())
        if found is None:
            raise ApiError(400, NOT_FOUND, f"{SECTIONS[section]} {name.strip()} not found")
        return found[0]


def _object(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict):
        kind = "a list" if isinstance(obj, list) else type(obj).__name__
        raise ApiError(400, INVALID, f"expected a JSON object, got {kind}")
    return obj
