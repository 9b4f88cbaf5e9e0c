"""What a new plan changes for the running services: the diff behind live updates.

The web API (gostfast/api/) edits the config, plans the whole new config (as a
reload does: a bad one changes nothing), and hands the new plan to
``Orchestrator.apply``, which touches only what this diff names:

* ``added`` / ``removed``: services to start / stop.
* ``relisten``: services whose listening side changed (address, listener type,
  options or TLS, admission, climiter, the global TLS): a new listener replaces
  the old one.
* ``reroute``: services where only what serves a connection changed (handler,
  auth, forwarder, bypass, hosts, rlimiter, traffic limiter, or the chain they
  use, with its hops and nodes): the listening socket stays and new
  connections are served by a new handler.

Open tunnels are never part of it: they keep the handler and route they started
with until they end (GOST's behaviour too: closing a service closes its
listener, not its connections).

Services are compared by value, as the model holds them after the named
lists (bypasses, admissions, hosts, limiters, authers) are resolved into them,
so an edit of a named list changes exactly the services that use it.
``origin`` (where a part was written, e.g. ``services[3]``) is left out: adding
a service before another must not count as changing it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gostfast.service import Plan, ServicePlan

_IGNORED_FIELDS = frozenset({"origin", "shared_keys"})


def canonical(value: Any) -> Any:
    """``value`` as nested tuples, without the fields that say where it was written."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (
            type(value).__name__,
            tuple(
                (f.name, canonical(getattr(value, f.name)))
                for f in dataclasses.fields(value)
                if f.name not in _IGNORED_FIELDS
            ),
        )
    if isinstance(value, dict):
        return ("dict", tuple(sorted((str(k), canonical(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return tuple(canonical(v) for v in value)
    if isinstance(value, (set, frozenset)):
        return ("set", tuple(sorted(map(repr, value))))
    return value


def _listening_side(p: Plan, sp: ServicePlan) -> Any:
    svc = sp.config
    return canonical((svc.addr, svc.listener, svc.admission, svc.climiter, p.config.tls))


def _chain_of(p: Plan, sp: ServicePlan) -> Any:
    name = sp.config.handler.chain
    chain = p.chains.get(name) if name else None
    return canonical(chain.config) if chain is not None else None


def _whole(p: Plan, sp: ServicePlan) -> Any:
    return (canonical(sp.config), _chain_of(p, sp), _listening_side(p, sp))


@dataclass
class PlanDiff:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    relisten: list[str] = field(default_factory=list)
    reroute: list[str] = field(default_factory=list)
    #: chains whose hops or nodes changed, or that are gone: their runtime hops are rebuilt
    chains: set[str] = field(default_factory=set)

    def empty(self) -> bool:
        return not (self.added or self.removed or self.relisten or self.reroute)


def diff(old: Plan, new: Plan) -> PlanDiff:
    """Which services of ``old`` the change to ``new`` touches, and how."""
    before = {sp.config.name: sp for sp in old.services}
    after = {sp.config.name: sp for sp in new.services}
    d = PlanDiff()
    d.removed = [n for n in before if n not in after]
    for name, sp in after.items():
        was = before.get(name)
        if was is None:
            d.added.append(name)
        elif _listening_side(old, was) != _listening_side(new, sp):
            d.relisten.append(name)
        elif _whole(old, was) != _whole(new, sp):
            d.reroute.append(name)
    for name, cp in old.chains.items():
        kept = new.chains.get(name)
        if kept is None or canonical(kept.config) != canonical(cp.config):
            d.chains.add(name)
    return d
