"""Node selection: strategies, GOST's fail filter and its backup filter."""

from __future__ import annotations

from dataclasses import dataclass

from gostfast.chain.selector import Selector
from gostfast.config.model import SelectorConfig


@dataclass(eq=False)
class Item:
    name: str
    backup: bool = False


def names(items) -> list[str]:
    return [i.name for i in items]


def test_round_robin_skips_backups_while_a_primary_is_healthy() -> None:
    a, b, bk = Item("a"), Item("b"), Item("bk", backup=True)
    sel = Selector([a, bk, b], SelectorConfig(strategy="round"))
    firsts = [sel.select().name for _ in range(6)]
    assert set(firsts) == {"a", "b"}
    assert names(sel.order())[-1] == "bk"  # tried last, after every healthy primary


def test_backup_first_once_every_primary_failed() -> None:
    a, bk = Item("a"), Item("bk", backup=True)
    sel = Selector([a, bk], SelectorConfig(strategy="fifo", max_fails=1, fail_timeout=60))
    assert sel.select() is a
    sel.mark_failed(a)
    assert names(sel.order()) == ["bk", "a"]
    sel.mark_ok(a)
    assert sel.select() is a


def test_fail_settings_at_or_below_zero_mean_gost_defaults() -> None:
    a, b = Item("a"), Item("b")
    sel = Selector([a, b], SelectorConfig(strategy="fifo", max_fails=0, fail_timeout=0))
    sel.mark_failed(a)  # maxFails <= 0 is 1: one failure takes a out (for 10 s, not 0)
    assert names(sel.order()) == ["b", "a"]


def test_every_node_failed_means_every_node_is_a_candidate_again() -> None:
    a, b = Item("a"), Item("b")
    sel = Selector([a, b], SelectorConfig(strategy="fifo", max_fails=1, fail_timeout=60))
    sel.mark_failed(a)
    sel.mark_failed(b)
    assert names(sel.order()) == ["a", "b"]


def test_chain_node_backup_reaches_the_plan() -> None:
    from gostfast.config.yaml import load_text
    from gostfast.service import plan

    p = plan(
        load_text(
            "services: [{addr: '127.0.0.1:1', handler: {type: http, chain: c}}]\n"
            "chains: [{name: c, hops: [{nodes: [{addr: 'h:1'}, "
            "{addr: 'h:2', metadata: {backup: 'true'}}]}]}]"
        )
    )
    assert [n.backup for n in p.chains["c"].hops[0]] == [False, True]
