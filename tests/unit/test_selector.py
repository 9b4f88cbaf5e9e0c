"""Node selection: strategies, GOST's fail filter and its node labels (backup, weight,
maxFails, failTimeout)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

import pytest

from gostfast import registry
from gostfast.chain.selector import Selector
from gostfast.config.model import NodeLabels, SelectorConfig


@dataclass(eq=False)
class Item:
    name: str
    labels: NodeLabels = field(default_factory=NodeLabels)


def backup(name: str) -> Item:
    return Item(name, NodeLabels(backup=True))


def names(items) -> list[str]:
    return [i.name for i in items]


def test_round_robin_skips_backups_while_a_primary_is_healthy() -> None:
    a, b, bk = Item("a"), Item("b"), backup("bk")
    sel = Selector([a, bk, b], SelectorConfig(strategy="round"))
    firsts = [sel.select().name for _ in range(6)]
    assert set(firsts) == {"a", "b"}
    assert names(sel.order())[-1] == "bk"  # tried last, after every healthy primary


def test_backup_first_once_every_primary_failed() -> None:
    a, bk = Item("a"), backup("bk")
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
    assert [n.labels.backup for n in p.chains["c"].hops[0]] == [False, True]


def test_rand_picks_in_proportion_to_weight() -> None:
    """GOST's RandomStrategy: weight 3 against 1 is picked ~3 times as often."""
    random.seed(7)
    heavy, light = Item("heavy", NodeLabels(weight=3)), Item("light")
    sel = Selector([light, heavy], SelectorConfig(strategy="rand"))
    picks = [sel.select().name for _ in range(4000)]
    assert 2.6 < picks.count("heavy") / picks.count("light") < 3.4
    assert sorted(names(sel.order())) == ["heavy", "light"]  # every node, once


def test_weight_at_or_below_zero_counts_as_one() -> None:
    random.seed(11)
    a, b = Item("a", NodeLabels(weight=0)), Item("b", NodeLabels(weight=-5))
    sel = Selector([a, b], SelectorConfig(strategy="rand"))
    picks = [sel.select().name for _ in range(4000)]
    assert 0.85 < picks.count("a") / picks.count("b") < 1.15


def test_round_robin_ignores_weight() -> None:
    a, b = Item("a", NodeLabels(weight=9)), Item("b")
    sel = Selector([a, b], SelectorConfig(strategy="round"))
    assert [sel.select().name for _ in range(4)] == ["a", "b", "a", "b"]


def test_node_max_fails_overrides_the_selector() -> None:
    """A node labelled maxFails 3 stays a candidate through two failures; its
    neighbour with the selector's maxFails 1 does not."""
    tough, weak = Item("tough", NodeLabels(max_fails=3)), Item("weak")
    sel = Selector([tough, weak], SelectorConfig(strategy="fifo", max_fails=1, fail_timeout=60))
    sel.mark_failed(tough)
    sel.mark_failed(tough)
    assert sel.select() is tough
    sel.mark_failed(tough)
    assert sel.select() is weak
    sel.mark_failed(weak)
    assert names(sel.order()) == ["tough", "weak"]  # both out: every node again


def test_node_fail_timeout_overrides_the_selector(monkeypatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    quick, slow = Item("quick", NodeLabels(fail_timeout=2.0)), Item("slow")
    sel = Selector([quick, slow, Item("spare")], SelectorConfig(strategy="fifo", fail_timeout=60))
    sel.mark_failed(quick)
    sel.mark_failed(slow)
    assert sel.select().name == "spare"
    now[0] += 2.0  # quick's own 2 s are over, slow's 60 s are not
    assert names(sel.order()) == ["quick", "spare", "slow"]


def test_node_fail_settings_at_or_below_zero_mean_gost_defaults(monkeypatch) -> None:
    """GOST's effectiveFailSettings: a label <= 0 is 1 failure / 10 s, not the selector's."""
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    a = Item("a", NodeLabels(max_fails=0, fail_timeout=0))
    sel = Selector([a, Item("b")], SelectorConfig(strategy="fifo", max_fails=5, fail_timeout=60))
    sel.mark_failed(a)
    assert sel.select().name == "b"
    now[0] += 10.0
    assert sel.select() is a


def test_labels_reach_the_plan_from_yaml_and_from_f() -> None:
    from gostfast.config.url import from_urls
    from gostfast.config.yaml import load_text
    from gostfast.service import plan

    p = plan(
        load_text(
            "services: [{addr: '127.0.0.1:1', handler: {type: http, chain: c},\n"
            "  forwarder: {nodes: [{addr: 'h:9', metadata: {Weight: 4, failTimeout: 3s}}]}}]\n"
            "chains: [{name: c, hops: [{nodes: [{addr: 'h:1', metadata: {weight: '2', "
            "maxFails: 3, failTimeout: 1m}}]}]}]"
        )
    )
    assert p.chains["c"].hops[0][0].labels == NodeLabels(weight=2, max_fails=3, fail_timeout=60.0)
    assert p.services[0].config.forwarder.nodes[0].labels == NodeLabels(weight=4, fail_timeout=3.0)
    registry.load_builtins()
    hops = ["http://h:1?weight=5&backup=true"]
    p = plan(from_urls(["http://127.0.0.1:1"], hops, registry.names()))
    assert p.chains["chain-0"].hops[0][0].labels == NodeLabels(backup=True, weight=5)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("{weight: heavy}", "chains[0].hops[0].nodes[0].metadata.weight"),
        ("{maxFails: 1.5}", "chains[0].hops[0].nodes[0].metadata.maxfails"),
        ("{failTimeout: soon}", "chains[0].hops[0].nodes[0].metadata.failtimeout"),
    ],
)
def test_bad_label_names_its_spot(text: str, where: str) -> None:
    from gostfast.config.errors import ConfigError
    from gostfast.config.yaml import load_text
    from gostfast.service import plan

    with pytest.raises(ConfigError) as e:
        plan(
            load_text(
                "services: [{addr: '127.0.0.1:1', handler: {type: http, chain: c}}]\n"
                f"chains: [{{name: c, hops: [{{nodes: [{{addr: 'h:1', metadata: {text}}}]}}]}}]"
            )
        )
    assert e.value.path == where
