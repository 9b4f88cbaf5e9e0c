"""Node selection with GOST's strategies, fail filter and node labels.

Strategies: ``round`` (round-robin), ``rand`` (weighted by each node's
``weight`` label, as GOST's RandomStrategy), ``fifo`` (always the first
healthy one: primary/backup). A node that failed ``max_fails`` times is left
out for ``fail_timeout`` seconds (GOST's FailFilter; defaults 1 and 10 s; a
node's own ``maxFails``/``failTimeout`` labels override the selector's, and
a value <= 0 means that default, as GOST's effectiveFailSettings). A node
labelled ``backup`` is tried only after every healthy one that is not
(GOST's BackupFilter). If every node is marked failed, all are candidates
again rather than none.

GOST's selector picks one node; ``order()`` gives every node in the order to
try them, the first being GOST's pick.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from gostfast.config.model import NodeLabels, SelectorConfig

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
        labels = [getattr(item, "labels", None) or NodeLabels() for item in self.items]
        self._backup = [lb.backup for lb in labels]
        self._weight = [max(lb.weight, 1) for lb in labels]
        self._limits = [self._fail_limits(lb) for lb in labels]

    def _fail_limits(self, labels: NodeLabels) -> tuple[int, float]:
        """(maxFails, failTimeout) for one node: its labels over the selector's."""
        c = self.config
        max_fails = c.max_fails if labels.max_fails is None else labels.max_fails
        fail_timeout = c.fail_timeout if labels.fail_timeout is None else labels.fail_timeout
        return (
            max_fails if max_fails > 0 else 1,
            fail_timeout if fail_timeout > 0 else DEFAULT_FAIL_TIMEOUT,
        )

    def _healthy(self, i: int, now: float) -> bool:
        max_fails, fail_timeout = self._limits[i]
        if self._fails[i] < max_fails:
            return True
        return now - self._failed_at[i] >= fail_timeout

    def _weighted_order(self) -> list[int]:
        """Every index once, each next pick drawn in proportion to the weights left
        (Efraimidis-Spirakis keys): the first is GOST's weighted random pick."""
        keys = [random.random() ** (1.0 / w) for w in self._weight]
        return sorted(range(len(keys)), key=keys.__getitem__, reverse=True)

    def order(self, exclude: Callable[[T], bool] | None = None) -> list[T]:
        """All items in the order to try them: healthy ones by strategy (backups after the
        others), then the rest; without those ``exclude`` rejects (a node's bypass)."""
        n = len(self.items)
        if n == 1:  # one node (a plain -F or forward target): every strategy gives it
            item = self.items[0]
            return [] if exclude is not None and exclude(item) else [item]
        now = time.monotonic()
        strategy = self.config.strategy
        if strategy == "round":
            start = self._next % n
            self._next += 1
            idx = [(start + k) % n for k in range(n)]
        elif strategy == "rand":
            idx = self._weighted_order()
        else:  # fifo
            idx = list(range(n))
        if exclude is not None:
            idx = [i for i in idx if not exclude(self.items[i])]
        healthy = [i for i in idx if self._healthy(i, now)]
        rest = [i for i in idx if i not in healthy]
        healthy.sort(key=self._backup.__getitem__)  # stable: strategy order kept within each
        return [self.items[i] for i in healthy + rest]

    def select(self, exclude: Callable[[T], bool] | None = None) -> T | None:
        """GOST's pick: the first of ``order``; None when ``exclude`` rejects every item."""
        order = self.order(exclude)
        return order[0] if order else None

    def mark_failed(self, item: T) -> None:
        i = self.items.index(item)
        self._fails[i] += 1
        self._failed_at[i] = time.monotonic()

    def mark_ok(self, item: T) -> None:
        i = self.items.index(item)
        self._fails[i] = 0
