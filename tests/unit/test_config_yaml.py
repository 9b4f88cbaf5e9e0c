"""GOST's YAML config file (config/yaml.py) -> the config model.

Structure only: component types and metadata values are checked against the
registries later, by the plan phase (tested end to end in tests/e2e).
"""

from __future__ import annotations

import logging
import textwrap

import pytest
from support import assert_config_error

from gostfast.config.errors import ConfigError
from gostfast.config.model import Auth, BypassConfig, LogConfig
from gostfast.config.yaml import from_dict, load_file, load_text

FULL_CONFIG = """
services:
- name: ws-server
  addr: ":8443"
  handler:
    type: relay
    chain: upstream
    auth: {username: alice, password: a1}
    auther: users
    metadata:
      readTimeout: 15s
      NoDelay: true
  listener:
    type: wss
    tls: {certFile: cert.pem, keyFile: key.pem, caFile: ca.pem}
    metadata:
      Path: /tun
      keepAlive: true
  metadata:
    Foo: bar
- name: fwd
  addr: 127.0.0.1:2222
  handler: {type: tcp}
  listener: {type: tcp}
  forwarder:
    nodes:
    - name: primary
      addr: 10.0.0.1:22
    - addr: 10.0.0.2:22
    selector: {strategy: fifo, maxFails: 3, failTimeout: 1m30s}
- addr: ":2223"
  handler: {type: forward}
  forwarder:
    targets: [10.0.0.3:22, "[::1]:22"]
chains:
- name: upstream
  selector: {strategy: rand, maxFails: 2, failTimeout: 30}
  hops:
  - name: edge
    selector: {strategy: round}
    nodes:
    - name: cdn-a
      addr: a.example:443
      connector:
        type: relay
        auth: {username: u, password: p}
        metadata: {NoDelay: false}
      dialer:
        type: mwss
        tls: {secure: true, serverName: sni.example}
        metadata: {PATH: /ws, Host: cdn.example}
      metadata: {weight: 1}
    - addr: b.example:443
  - nodes:
    - addr: "[2001:db8::1]:8080"
tls:
  certFile: g.pem
  keyFile: g.key
  validity: 8760h
  commonName: gost.run
  organization: GOST
authers:
- name: users
  auths:
  - {username: bob, password: b1}
  - {username: carol}
"""


@pytest.fixture
def cfg():
    return load_text(FULL_CONFIG, "full.yaml")


def y(text: str):
    return load_text(textwrap.dedent(text), "t.yaml")


def err(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as exc:
        y(text)
    return exc.value


# ---------------------------------------------------------------- a full config


def test_services_in_order(cfg) -> None:
    assert [(s.name, s.addr) for s in cfg.services] == [
        ("ws-server", ":8443"),
        ("fwd", "127.0.0.1:2222"),
        ("service-2", ":2223"),
    ]
    assert [s.origin for s in cfg.services] == ["services[0]", "services[1]", "services[2]"]


def test_handler(cfg) -> None:
    h = cfg.services[0].handler
    assert (h.type, h.chain) == ("relay", "upstream")
    # as GOST: with an auther its users count and the inline auth is not used
    assert h.auths == [Auth("bob", "b1"), Auth("carol", "")]
    assert h.auth_required
    assert h.metadata == {"readtimeout": "15s", "nodelay": True}


def test_listener_and_tls(cfg) -> None:
    ln = cfg.services[0].listener
    assert ln.type == "wss"
    assert (ln.tls.cert_file, ln.tls.key_file, ln.tls.ca_file) == ("cert.pem", "key.pem", "ca.pem")
    assert ln.metadata == {"path": "/tun", "keepalive": True}
    assert cfg.services[0].metadata == {"foo": "bar"}


def test_forwarder_nodes_and_selector(cfg) -> None:
    fwd = cfg.services[1].forwarder
    assert [(n.name, n.addr) for n in fwd.nodes] == [
        ("primary", "10.0.0.1:22"),
        ("target-1", "10.0.0.2:22"),
    ]
    sel = fwd.selector
    assert (sel.strategy, sel.max_fails, sel.fail_timeout) == ("fifo", 3, 90.0)


def test_forwarder_older_targets_form(cfg) -> None:
    fwd = cfg.services[2].forwarder
    assert [(n.name, n.addr) for n in fwd.nodes] == [
        ("target-0", "10.0.0.3:22"),
        ("target-1", "[::1]:22"),
    ]
    assert fwd.selector is None
    assert cfg.services[2].handler.type == "forward"


def test_chain_hops_nodes(cfg) -> None:
    assert [c.name for c in cfg.chains] == ["upstream"]
    chain = cfg.chain("upstream")
    assert (chain.selector.strategy, chain.selector.max_fails, chain.selector.fail_timeout) == (
        "rand",
        2,
        30.0,
    )
    assert [h.name for h in chain.hops] == ["edge", "hop-1"]
    edge = chain.hops[0]
    assert edge.selector.strategy == "round"
    assert (edge.selector.max_fails, edge.selector.fail_timeout) == (1, 10.0)  # GOST defaults
    assert [(n.name, n.addr) for n in edge.nodes] == [
        ("cdn-a", "a.example:443"),
        ("node-1", "b.example:443"),
    ]
    assert chain.hops[1].nodes[0].addr == "[2001:db8::1]:8080"
    assert chain.hops[1].selector is None


def test_node_connector_dialer(cfg) -> None:
    n = cfg.chain("upstream").hops[0].nodes[0]
    assert n.connector.type == "relay"
    assert n.connector.auth == Auth("u", "p")
    assert n.connector.metadata == {"nodelay": False}
    assert n.dialer.type == "mwss"
    assert (n.dialer.tls.secure, n.dialer.tls.server_name) == (True, "sni.example")
    assert n.dialer.metadata == {"path": "/ws", "host": "cdn.example"}
    assert n.metadata == {"weight": 1}
    assert n.origin == "chains[0].hops[0].nodes[0]"


def test_global_tls(cfg) -> None:
    t = cfg.tls
    assert (t.cert_file, t.key_file) == ("g.pem", "g.key")
    assert t.validity == 8760 * 3600.0
    assert (t.common_name, t.organization) == ("gost.run", "GOST")


def test_chain_lookup_by_name(cfg) -> None:
    assert cfg.chain("upstream") is cfg.chains[0]
    assert cfg.chain("nope") is None


def test_json_is_yaml_too() -> None:
    cfg = load_text(
        '{"services": [{"name": "s", "addr": ":80", "handler": {"type": "tcp"},'
        ' "forwarder": {"nodes": [{"addr": "h:1"}]}}]}',
        "c.json",
    )
    assert cfg.services[0].forwarder.nodes[0].addr == "h:1"


def test_load_file(tmp_path) -> None:
    path = tmp_path / "gost.yaml"
    path.write_text(FULL_CONFIG, encoding="utf-8")
    assert [s.name for s in load_file(str(path)).services] == ["ws-server", "fwd", "service-2"]


# ---------------------------------------------------------------- defaults


def test_defaults() -> None:
    cfg = y(
        """
        services:
        - addr: ":1"
        - addr: ":2"
          handler: {}
          listener: {}
        chains:
        - hops:
          - nodes:
            - addr: h:1
            - addr: h:2
              connector: {}
              dialer: {}
        - hops:
          - nodes: [{addr: h:3}]
          - nodes: [{addr: h:4}]
        """
    )
    for i, s in enumerate(cfg.services):
        assert s.name == f"service-{i}"
        assert (s.handler.type, s.listener.type) == ("auto", "tcp")
        assert (s.handler.chain, s.handler.auths, s.handler.metadata) == ("", [], {})
        assert (s.listener.tls, s.listener.metadata, s.forwarder, s.metadata) == (
            None,
            {},
            None,
            {},
        )
    assert [c.name for c in cfg.chains] == ["chain-0", "chain-1"]
    assert [h.name for h in cfg.chains[1].hops] == ["hop-0", "hop-1"]
    nodes = cfg.chains[0].hops[0].nodes
    assert [n.name for n in nodes] == ["node-0", "node-1"]
    for n in nodes:
        assert (n.connector.type, n.dialer.type) == ("http", "tcp")
        assert (n.connector.auth, n.dialer.tls, n.metadata) == (None, None, {})
    assert cfg.tls is None


def test_empty_sections_are_fine() -> None:
    cfg = y(
        """
        services: []
        chains: []
        authers: []
        """
    )
    assert (cfg.services, cfg.chains) == ([], [])


def test_numeric_scalars_read_as_text() -> None:
    cfg = y(
        """
        services:
        - name: 8080
          addr: ":8080"
          handler: {type: tcp}
          forwarder: {nodes: [{name: 1, addr: "h:1"}]}
        """
    )
    assert cfg.services[0].name == "8080"
    assert cfg.services[0].forwarder.nodes[0].name == "1"


def test_node_tls_server_name_defaults_to_addr_host() -> None:
    cfg = y(
        """
        services: [{addr: ":1"}]
        chains:
        - hops:
          - nodes:
            - addr: srv.example:443
              dialer: {type: wss, tls: {secure: true}}
        """
    )
    assert cfg.chains[0].hops[0].nodes[0].dialer.tls.server_name == "srv.example"


# ---------------------------------------------------------------- metadata keys


def test_metadata_keys_case_insensitive_everywhere() -> None:
    cfg = y(
        """
        services:
        - addr: ":1"
          metadata: {A: 1}
          handler: {metadata: {ProxyAgent: x}}
          listener: {metadata: {WS.Path: /p}}
        chains:
        - hops:
          - nodes:
            - addr: h:1
              metadata: {B: 2}
              connector: {metadata: {NoDelay: true}}
              dialer: {metadata: {Header: {X-Real: y}}}
        """
    )
    s = cfg.services[0]
    assert (s.metadata, s.handler.metadata, s.listener.metadata) == (
        {"a": 1},
        {"proxyagent": "x"},
        {"ws.path": "/p"},
    )
    n = cfg.chains[0].hops[0].nodes[0]
    assert n.metadata == {"b": 2}
    assert n.connector.metadata == {"nodelay": True}
    # keys are lower-cased, values (even nested maps) kept as written
    assert n.dialer.metadata == {"header": {"X-Real": "y"}}


def test_metadata_key_given_twice_in_different_case_is_an_error() -> None:
    e = err(
        """
        services:
        - addr: ":1"
          listener: {metadata: {path: /a, PATH: /b}}
        """
    )
    assert e.path == "services[0].listener.metadata"
    assert "'PATH' given twice" in e.message


def test_metadata_must_be_a_mapping() -> None:
    e = err(
        """
        services:
        - addr: ":1"
          handler: {metadata: [a, b]}
        """
    )
    assert (e.path, e.message) == ("services[0].handler.metadata", "expected a mapping, got a list")


# ---------------------------------------------------------------- unknown keys warn


def test_unknown_keys_warn_naming_the_key(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="gostfast.config")
    y(
        """
        servics: []
        services:
        - addr: ":1"
          handlr: {type: tcp}
          handler: {typ: tcp}
          listener: {type: tcp, metdata: {}}
          forwarder: {nodes: [{addr: "h:1", weight: 2}], selector: {strategy: fifo, max: 1}}
        chains:
        - name: c
          hops:
          - nodes:
            - addr: h:1
              connecter: {type: http}
              dialer: {type: tcp, tls: {serverNme: x}}
        authers:
        - name: a
          auths: [{username: u, pass: p}]
          extra: 1
        """
    )
    text = caplog.text
    for where, key in [
        ("config", "servics"),
        ("services[0]", "handlr"),
        ("services[0].handler", "typ"),
        ("services[0].listener", "metdata"),
        ("services[0].forwarder.nodes[0]", "weight"),
        ("services[0].forwarder.selector", "max"),
        ("chains[0].hops[0].nodes[0]", "connecter"),
        ("chains[0].hops[0].nodes[0].dialer.tls", "serverNme"),
        ("authers[0].auths[0]", "pass"),
        ("authers[0]", "extra"),
    ]:
        assert f"{where}: unknown key '{key}' ignored" in text, (where, key)
    assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_known_keys_do_not_warn(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="gostfast.config")
    load_text(FULL_CONFIG, "full.yaml")
    # the one warning: GOST ignores a handler's own auth next to an auther
    assert [r.getMessage() for r in caplog.records] == [
        "services[0].handler.auth: not used when an auther is given (as GOST)"
    ]


# ---------------------------------------------------------------- authers (GOST's rules)


def test_handler_authers_list_and_auther_union() -> None:
    c = y(
        "authers: [{name: a, auths: [{username: u1}]}, {name: b, auths: [{username: u2}]}]\n"
        "services: [{addr: ':1', handler: {type: http, auther: a, authers: [b]}}]"
    )
    h = c.services[0].handler
    assert (h.auths, h.auth_required) == ([Auth("u1"), Auth("u2")], True)


def test_inline_auth_alone_is_used_and_not_required_when_absent() -> None:
    h = y("services: [{addr: ':1', handler: {auth: {username: u, password: p}}}]").services[0]
    assert (h.handler.auths, h.handler.auth_required) == ([Auth("u", "p")], False)
    h = y("services: [{addr: ':1'}]").services[0]
    assert (h.handler.auths, h.handler.auth_required) == ([], False)


def test_an_auther_without_users_still_requires_log_in() -> None:
    h = y("authers: [{name: a}]\nservices: [{addr: ':1', handler: {auther: a}}]").services[0]
    assert (h.handler.auths, h.handler.auth_required) == ([], True)


def test_auther_plugin_is_refused_by_name() -> None:
    e = err("authers: [{name: a, plugin: {addr: ':1'}}]\nservices: [{addr: ':1'}]")
    assert (e.path, e.message) == ("authers[0].plugin", "'plugin' is not supported by gostfast yet")


def test_unknown_auther_in_the_list_is_named() -> None:
    e = err("authers: [{name: a}]\nservices: [{addr: ':1', handler: {authers: [a, zz]}}]")
    assert (e.path, e.message) == (
        "services[0].handler.authers[1]",
        "unknown auther 'zz' (authers: a)",
    )


def test_forwarder_node_backup_metadata() -> None:
    c = y(
        "services: [{addr: ':1', forwarder: {nodes: [{addr: 'h:1'}, "
        "{addr: 'h:2', metadata: {backup: true}}]}}]"
    )
    assert [n.labels.backup for n in c.services[0].forwarder.nodes] == [False, True]
    e = err(
        "services: [{addr: ':1', forwarder: {nodes: [{addr: 'h:1', metadata: {backup: maybe}}]}}]"
    )
    assert e.path == "services[0].forwarder.nodes[0].metadata.backup"


# ---------------------------------------------------------------- keys are case-insensitive (viper)


def test_struct_keys_are_case_insensitive_as_with_viper() -> None:
    c = y(
        "Services:\n- Name: s\n  ADDR: ':1'\n  Listener: {Type: wss, TLS: {certfile: c.pem, KeyFile: k.pem}}\n"
        "  Forwarder: {Nodes: [{addr: 'h:1'}], Selector: {Strategy: fifo, maxfails: 3}}"
    )
    s = c.services[0]
    assert (s.name, s.addr, s.listener.type) == ("s", ":1", "wss")
    assert (s.listener.tls.cert_file, s.listener.tls.key_file) == ("c.pem", "k.pem")
    assert (s.forwarder.selector.strategy, s.forwarder.selector.max_fails) == ("fifo", 3)


def test_a_key_given_twice_in_different_case_is_an_error() -> None:
    e = err("services: [{addr: ':1', Addr: ':2'}]")
    assert e.path == "services[0].Addr"
    assert "given twice" in e.message and "case-insensitive" in e.message


# ---------------------------------------------------------------- log and selector names


def test_log_block() -> None:
    c = y("services: [{addr: ':1'}]\nlog: {level: WARN, format: json, output: /var/log/g.log}")
    assert c.log == LogConfig(level="warn", format="json", output="/var/log/g.log")


def test_log_block_defaults_and_logrus_spellings() -> None:
    assert y("services: [{addr: ':1'}]\nlog: {}").log == LogConfig()
    assert y("services: [{addr: ':1'}]").log is None
    assert y("services: [{addr: ':1'}]\nlog: {level: warning}").log.level == "warn"
    assert y("services: [{addr: ':1'}]\nlog: {level: panic}").log.level == "fatal"


@pytest.mark.parametrize("given,strategy", [("rr", "round"), ("random", "rand"), ("ha", "fifo")])
def test_gost_strategy_aliases(given: str, strategy: str) -> None:
    c = y(
        "services: [{addr: ':1', forwarder: {nodes: [{addr: 'h:1'}], "
        f"selector: {{strategy: {given}}}}}}}]"
    )
    assert c.services[0].forwarder.selector.strategy == strategy


# ---------------------------------------------------------------- unsupported GOST features


@pytest.mark.parametrize(
    "text,path",
    [
        (
            "bypasses: [{name: b0, plugin: {addr: ':1'}}]\nservices: [{addr: ':1'}]",
            "bypasses[0].plugin",
        ),
        (
            "services: [{addr: ':1', handler: {type: socks5, limiter: l0}}]",
            "services[0].handler.limiter",
        ),
        ("services: [{addr: ':1', resolver: r0}]", "services[0].resolver"),
        ("services: [{addr: ':1', sockopts: {mark: 1}}]", "services[0].sockopts"),
        ("services: [{addr: ':1', listener: {auth: {username: u}}}]", "services[0].listener.auth"),
        ("services: [{addr: ':1', listener: {chain: c}}]", "services[0].listener.chain"),
        (
            "services: [{addr: ':1', forwarder: {nodes: [{addr: 'h:1', host: x}]}}]",
            "services[0].forwarder.nodes[0].host",
        ),
        (
            "limiters: [{name: l0, plugin: {addr: ':1'}}]\nservices: [{addr: ':1'}]",
            "limiters[0].plugin",
        ),
        (
            "services: [{addr: ':1', listener: {type: wss, tls: {rejectUnknownSNI: true}}}]",
            "services[0].listener.tls.rejectUnknownSNI",
        ),
        ("tls: {serverNames: [a.example]}\nservices: [{addr: ':1'}]", "tls.serverNames"),
        (
            "log: {output: /tmp/g.log, rotation: {maxSize: 10}}\nservices: [{addr: ':1'}]",
            "log.rotation",
        ),
        (
            "services: [{addr: ':1', handler: {bypass: b}}]",
            "services[0].handler.bypass",
        ),
        (
            "services: [{addr: ':1'}]\nchains: [{name: c, hops: [{nodes: [{addr: 'h:1', interface: eth0}]}]}]",
            "chains[0].hops[0].nodes[0].interface",
        ),
        (
            "services: [{addr: ':1'}]\ntls: {certFile: c, keyFile: k, options: {minVersion: VersionTLS12}}",
            "tls.options",
        ),
    ],
)
def test_unsupported_features_are_errors_naming_the_path(text: str, path: str) -> None:
    e = err(text)
    assert e.path == path
    assert "not supported by gostfast" in e.message
    assert str(e).startswith(f"{path}: ")


# ---------------------------------------------------------------- structural errors


@pytest.mark.parametrize(
    "text,path,message",
    [
        ("services: {addr: ':1'}", "services", "expected a list, got a mapping"),
        ("services: [':1']", "services[0]", "expected a mapping, got a string"),
        ("services: [{name: x}]", "services[0].addr", "is required"),
        ("services: [{addr: [1]}]", "services[0].addr", "expected a string"),
        ("services: [{addr: ':1', handler: tcp}]", "services[0].handler", "expected a mapping"),
        ("services: [{addr: ':1', handler: {type: [tcp]}}]", "services[0].handler.type", "string"),
        (
            "services: [{addr: ':1', forwarder: {nodes: []}}]",
            "services[0].forwarder",
            "a forwarder needs at least one node",
        ),
        (
            "services: [{addr: ':1', forwarder: {}}]",
            "services[0].forwarder",
            "a forwarder needs at least one node",
        ),
        (
            "services: [{addr: ':1', forwarder: {nodes: [{name: a}]}}]",
            "services[0].forwarder.nodes[0].addr",
            "is required",
        ),
        (
            "services: [{addr: ':1', forwarder: {targets: ['h:1', 5]}}]",
            "services[0].forwarder.targets[1]",
            "expected an address host:port",
        ),
        (
            "services: [{addr: ':1', forwarder: {nodes: [{addr: 'h:1'}], selector: {strategy: hash}}}]",
            "services[0].forwarder.selector.strategy",
            "strategy 'hash' is not supported by gostfast yet",
        ),
        (
            "services: [{addr: ':1', forwarder: {nodes: [{addr: 'h:1'}], selector: {strategy: lru}}}]",
            "services[0].forwarder.selector.strategy",
            "unknown strategy 'lru' (allowed: round, rr, rand, random, fifo, ha)",
        ),
        ("services: [{addr: ':1'}]\nlog: {level: loud}", "log.level", "unknown log level 'loud'"),
        (
            "services: [{addr: ':1'}]\nlog: {format: xml}",
            "log.format",
            "unknown log format 'xml' (allowed: text, json)",
        ),
        ("services: [{addr: ':1'}]\nlog: [info]", "log", "expected a mapping, got a list"),
        (
            "services: [{addr: ':1', forwarder: {nodes: [{addr: 'h:1'}], selector: {maxFails: x}}}]",
            "services[0].forwarder.selector.maxFails",
            "expected an integer, got 'x'",
        ),
        (
            "services: [{addr: ':1', forwarder: {nodes: [{addr: 'h:1'}], selector: {failTimeout: soon}}}]",
            "services[0].forwarder.selector.failTimeout",
            "expected a duration like 10s or 1m30s, got 'soon'",
        ),
        (
            "services: [{addr: ':1', handler: {auth: {password: p}}}]",
            "services[0].handler.auth.username",
            "is required",
        ),
        (
            "services: [{addr: ':1', handler: {auther: nope}}]",
            "services[0].handler.auther",
            "unknown auther 'nope' (authers: none defined)",
        ),
        (
            "authers: [{name: a0, auths: []}]\nservices: [{addr: ':1', handler: {auther: a1}}]",
            "services[0].handler.auther",
            "unknown auther 'a1' (authers: a0)",
        ),
        ("authers: [{auths: []}]", "authers[0].name", "is required"),
        (
            "services: [{addr: ':1', handler: {chain: nope}}]",
            "services[0].handler.chain",
            "unknown chain 'nope' (chains: none defined)",
        ),
        (
            "chains: [{name: c0, hops: [{nodes: [{addr: 'h:1'}]}]}]\n"
            "services: [{addr: ':1', handler: {chain: c1}}]",
            "services[0].handler.chain",
            "unknown chain 'c1' (chains: c0)",
        ),
        (
            "services: [{name: s, addr: ':1'}, {name: t, addr: ':2'}, {name: s, addr: ':3'}]",
            "services[2].name",
            "duplicate service name 's'",
        ),
        (
            "services: [{addr: ':1'}, {addr: ':2', name: service-0}]",
            "services[1].name",
            "duplicate service name 'service-0'",
        ),
        (
            "chains: [{name: c, hops: [{nodes: [{addr: 'h:1'}]}]}, {name: c, hops: [{nodes: [{addr: 'h:1'}]}]}]",
            "chains[1].name",
            "duplicate chain name 'c'",
        ),
        ("chains: [{name: c}]", "chains[0].hops", "a chain needs at least one hop"),
        (
            "chains: [{name: c, hops: [{}]}]",
            "chains[0].hops[0].nodes",
            "a hop needs at least one node",
        ),
        (
            "chains: [{name: c, hops: [{nodes: [{name: n}]}]}]",
            "chains[0].hops[0].nodes[0].addr",
            "is required",
        ),
        (
            "services: [{addr: ':1', listener: {tls: {certFile: c.pem}}}]",
            "services[0].listener.tls",
            "certFile and keyFile must be given together",
        ),
        (
            "services: [{addr: ':1', listener: {tls: {keyFile: k.pem}}}]",
            "services[0].listener.tls",
            "certFile and keyFile must be given together",
        ),
        (
            "chains: [{name: c, hops: [{nodes: [{addr: 'h:1', dialer: {tls: {secure: maybe}}}]}]}]",
            "chains[0].hops[0].nodes[0].dialer.tls.secure",
            "expected a boolean",
        ),
        ("tls: {validity: forever}", "tls.validity", "expected a duration"),
        ("tls: {certFile: c.pem}", "tls", "certFile and keyFile must be given together"),
    ],
)
def test_structural_errors_name_the_path(text: str, path: str, message: str) -> None:
    e = err(text)
    assert e.path == path
    assert message in e.message
    assert str(e) == f"{e.path}: {e.message}"


def test_yaml_syntax_error_names_file_line_and_column() -> None:
    with pytest.raises(ConfigError) as exc:
        load_text("services:\n- addr: ':1'\n  handler: {type: tcp\n  listener: x\n", "bad.yaml")
    assert exc.value.path == "bad.yaml:4:11"
    assert exc.value.message.startswith("invalid YAML: ")


def test_yaml_tags_are_not_executed() -> None:
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_text("services: !!python/object/apply:os.system ['true']\n", "evil.yaml")


def test_empty_file_is_an_error() -> None:
    with pytest.raises(ConfigError) as exc:
        load_text("# only a comment\n", "empty.yaml")
    assert (exc.value.path, exc.value.message) == ("empty.yaml", "config file is empty")


@pytest.mark.parametrize("text", ["[]", "- a\n- b\n", "42", "just text"])
def test_top_level_must_be_a_mapping(text: str) -> None:
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_text(text, "top.yaml")


def test_top_level_not_a_mapping_names_the_file() -> None:
    with pytest.raises(ConfigError) as exc:
        load_text("- a\n- b\n", "top.yaml")
    assert "top.yaml" in str(exc.value)


def test_missing_file_is_an_error(tmp_path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as exc:
        load_file(str(path))
    assert exc.value.path == str(path)
    assert "cannot read config file" in exc.value.message


def test_non_utf8_file_is_an_error(tmp_path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"services: [{addr: ':1', name: caf\xe9}]\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_file(str(path))


def test_from_dict_accepts_parsed_data() -> None:
    cfg = from_dict({"services": [{"addr": ":1", "handler": {"type": "http"}}]})
    assert cfg.services[0].handler.type == "http"


TOP_HOPS = (
    "hops:\n"
    "- name: shared\n"
    "  selector: {strategy: fifo}\n"
    "  nodes: [{name: p1, addr: 'p:1'}, {name: p2, addr: 'p:2', metadata: {backup: true}}]\n"
)


def test_chains_name_top_level_hops_and_share_them() -> None:
    """GOST's top-level hops: a chain hop with only a name is that hop, one object for
    every chain that names it (GOST's hop registry)."""
    c = load_text(
        TOP_HOPS + "chains:\n"
        "- {name: c1, hops: [{name: shared}]}\n"
        "- {name: c2, hops: [{nodes: [{addr: 'q:1'}]}, {name: shared}]}\n"
    )
    c1, c2 = c.chains
    assert c1.hops[0] is c2.hops[1]
    assert [n.addr for n in c1.hops[0].nodes] == ["p:1", "p:2"]
    assert c1.hops[0].selector.strategy == "fifo"
    assert c2.hops[0].nodes[0].addr == "q:1"


def test_a_shared_hop_is_one_runtime_hop() -> None:
    from gostfast.service import Orchestrator, plan

    p = plan(
        load_text(
            TOP_HOPS + "chains:\n- {name: c1, hops: [{name: shared}]}\n"
            "- {name: c2, hops: [{name: shared}]}\n"
            "services:\n- {addr: '127.0.0.1:1', handler: {type: http, chain: c1}}\n"
            "- {addr: '127.0.0.1:2', handler: {type: http, chain: c2}}\n"
        )
    )
    orch = Orchestrator(p)
    (h1,), (h2,) = orch._hops("c1"), orch._hops("c2")
    assert h1 is h2  # a failure marked through one chain counts for the other
    assert [n.name for n in h1.selector.items] == ["p1", "p2"]


TOP_HOP_ERRORS = [
    (
        TOP_HOPS + "chains: [{name: c, hops: [{name: other}]}]",
        "chains[0].hops[0].name",
        "unknown hop 'other' (hops: shared)",
    ),
    (
        "chains: [{name: c, hops: [{name: h}]}]",
        "chains[0].hops[0].name",
        "unknown hop 'h' (hops: none defined)",
    ),
    (
        TOP_HOPS + "chains: [{name: c, hops: [{name: shared, selector: {strategy: rand}}]}]",
        "chains[0].hops[0].selector",
        "'selector' beside a hop reference: hop 'shared' is defined under hops:, set it there",
    ),
    ("hops: [{nodes: [{addr: 'h:1'}]}]", "hops[0]", "a hop under hops: needs a name"),
    ("hops: [{name: h}]", "hops[0].nodes", "a hop needs at least one node"),
    (
        "hops: [{name: h, nodes: [{addr: 'a:1'}]}, {name: h, nodes: [{addr: 'b:1'}]}]",
        "hops[1].name",
        "duplicate hop name 'h'",
    ),
    ("hops: [{name: h, nodes: [{name: x}]}]", "hops[0].nodes[0].addr", "is required"),
]


BYPASSES = (
    "bypasses:\n"
    "- {name: lan, matchers: [10.0.0.0/8, '*.local']}\n"
    "- {name: only-cn, whitelist: true, matchers: [.cn]}\n"
    "- {name: old, reverse: true, network: TCP, matchers: [a.b]}\n"
)


def test_bypasses_are_named_by_services_hops_and_nodes() -> None:
    c = load_text(
        BYPASSES + "services:\n- {addr: ':1', bypass: lan, bypasses: [only-cn], "
        "handler: {type: http, chain: c}}\n"
        "chains: [{name: c, hops: [{bypasses: [lan], nodes: [{addr: 'h:1', bypass: old}]}]}]\n"
    )
    lan = BypassConfig("lan", ("10.0.0.0/8", "*.local"))
    only_cn = BypassConfig("only-cn", (".cn",), whitelist=True)
    assert c.services[0].bypass == [lan, only_cn]
    assert c.chains[0].hops[0].bypass == [lan]
    assert c.chains[0].hops[0].nodes[0].bypass == [BypassConfig("old", ("a.b",), True, "tcp")]


BYPASS_ERRORS = [
    (
        BYPASSES + "services: [{addr: ':1', bypass: wan}]",
        "services[0].bypass",
        "unknown bypass 'wan' (bypasses: lan, only-cn, old)",
    ),
    (
        "services: [{addr: ':1', bypasses: [x]}]",
        "services[0].bypasses[0]",
        "unknown bypass 'x' (bypasses: none defined)",
    ),
    ("bypasses: [{matchers: [a]}]", "bypasses[0].name", "is required"),
    ("bypasses: [{name: a}, {name: a}]", "bypasses[1].name", "duplicate bypass name 'a'"),
    ("bypasses: [{name: a, network: ip}]", "bypasses[0].network", "expected tcp or udp"),
    ("bypasses: [{name: a, whitelist: maybe}]", "bypasses[0].whitelist", "expected a boolean"),
    ("bypasses: [{name: a, redis: {key: k}}]", "bypasses[0].redis.addr", "is required"),
    (
        "bypasses: [{name: a, redis: {addr: x, type: list}}]",
        "bypasses[0].redis.type",
        "a redis set",
    ),
    ("bypasses: [{name: a, file: {}}]", "bypasses[0].file.path", "is required"),
]


@pytest.mark.parametrize(("text", "path", "message"), TOP_HOP_ERRORS + BYPASS_ERRORS)
def test_hop_and_bypass_errors_name_the_path(text: str, path: str, message: str) -> None:
    test_structural_errors_name_the_path(text, path, message)


def test_handler_retries() -> None:
    c = load_text("services: [{addr: ':1', handler: {type: http, retries: 3}}]")
    assert c.services[0].handler.retries == 3
    assert_config_error(
        "services: [{addr: ':1', handler: {retries: lots}}]",
        "services[0].handler.retries",
        "expected an integer",
    )
