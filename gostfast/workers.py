"""How many worker processes to run: ``--workers N|auto`` and YAML's top-level ``workers:``.

One process runs on one core; a gateway has many. N workers each run every
service on listening sockets the supervisor shares between them (see
supervisor.py). ``auto`` is the CPUs this process may run on
(``os.sched_getaffinity``, so a taskset or a container's cpuset counts, not the
machine's cores). 1, the default, is a single process with no supervisor,
exactly as gostfast ran before workers existed.
"""

from __future__ import annotations

import os
from typing import Any

#: the most workers one gateway may ask for (a typo such as 10000 is refused, not forked)
MAX_WORKERS = 1024
DEFAULT_WORKERS = 1
AUTO = "auto"


def usable_cpus() -> int:
    """CPUs this process may be scheduled on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def parse_workers(value: Any) -> int:
    """``auto`` or an integer 1..MAX_WORKERS -> the worker count (ValueError says why not)."""
    if isinstance(value, bool):
        raise ValueError(f"invalid worker count {value!r} (expected 1-{MAX_WORKERS} or auto)")
    text = str(value).strip()
    if text.lower() == AUTO:
        return min(usable_cpus(), MAX_WORKERS)
    try:
        n = int(text, 10)
    except ValueError:
        raise ValueError(
            f"invalid worker count {text!r} (expected 1-{MAX_WORKERS} or auto)"
        ) from None
    if not 1 <= n <= MAX_WORKERS:
        raise ValueError(f"worker count {n} is out of range (expected 1-{MAX_WORKERS} or auto)")
    return n
