"""Node selection with GOST's strategies and fail filter.

Strategies: ``round`` (round-robin), ``rand``, ``fifo`` (always the first
healthy one: primary/backup). A node that failed ``max_fails`` times is left
out for ``fail_timeout`` seconds (GOST's FailFilter; defaults 1 and 10 s, and
a value <= 0 means that default, as GOST's effectiveFailSettings). A node
marked ``backup`` is tried only after every healthy one that is not (GOST's
BackupFilter). If every node is marked failed, all are candidates again
rather than none.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Generic, TypeVar

from gostfast.config.model import SelectorConfig

T = TypeVar("T")

DEFAULT_FAIL_TIMEOUT = 10.0  # seconds, GOST's selector.DefaultFailTimeout


class Selector(Generic[T]):
    def __init__(self, items: Sequence[T], config: SelectorConfig | None = None) -> None:
        if not items:
            raise ValueError("a selector needs at least one item")
        self.items = list(items)
        self.config = config or SelectorConfig()
        self._next = 0
        self._fails = [0] * len(self.items)
        self._failed_at = [0.0] * len(self.items)
        self._backup = [bool(getattr(item, "backup", False)) for item in self.items]

    def _healthy(self, i: int, now: float) -> bool:
        c = self.config
        max_fails = c.max_fails if c.max_fails > 0 else 1
        fail_timeout = c.fail_timeout if c.fail_timeout > 0 else DEFAULT_FAIL_TIMEOUT
        if self._fails[i] < max_fails:
            return True
        return now - self._failed_at[i] >= fail_timeout

    def order(self) -> list[T]:
        """All items in the order to try them: healthy ones by strategy (backups after the
        others), then the rest."""
        now = time.monotonic()
        n = len(self.items)
        strategy = self.config.strategy
        if strategy == "round":
            start = self._next % n
            self._next += 1
            idx = [(start + k) % n for k in range(n)]
        elif strategy == "rand":
            idx = random.sample(range(n), n)
        else:  # fifo
            idx = list(range(n))
        healthy = [i for i in idx if self._healthy(i, now)]
        rest = [i for i in idx if i not in healthy]
        healthy.sort(key=self._backup.__getitem__)  # stable: strategy order kept within each
        return [self.items[i] for i in healthy + rest]

    def select(self) -> T:
        return self.order()[0]

    def mark_failed(self, item: T) -> None:
        i = self.items.index(item)
        self._fails[i] += 1
        self._failed_at[i] = time.monotonic()

    def mark_ok(self, item: T) -> None:
        i = self.items.index(item)
        self._fails[i] = 0
