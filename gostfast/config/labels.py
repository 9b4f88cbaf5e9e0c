"""GOST's selector labels on a node: ``backup``, ``weight``, ``maxFails``, ``failTimeout``.

GOST reads them from the metadata of a chain node or a forwarder node
(go-gost/x selector: BackupFilter, RandomStrategy, FailFilter's per-item
override), so a YAML node and a ``-F`` URL's query carry them the same way.
One parser serves both, given the caller's ``convert(key, parse, default)``,
which knows where a bad value sits in the config.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gostfast.config import values
from gostfast.config.model import NodeLabels

LABEL_KEYS = frozenset({"backup", "weight", "maxfails", "failtimeout"})  # lower-cased

Convert = Callable[[str, Callable[[Any], Any], Any], Any]


def parse_labels(convert: Convert) -> NodeLabels:
    """The labels a node's metadata sets; a key left out keeps GOST's meaning of absent."""
    return NodeLabels(
        backup=convert("backup", values.parse_bool, False),
        weight=convert("weight", values.parse_int, 1),
        max_fails=convert("maxfails", values.parse_int, None),
        fail_timeout=convert("failtimeout", values.parse_duration, None),
    )
