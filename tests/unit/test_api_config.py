"""The web API's pieces without sockets: -api parsing, api: in YAML, the document's edits,
and the plan diff that decides what a change touches."""

from __future__ import annotations

import pytest

from gostfast.api.document import ApiError, Document, merge
from gostfast.config import gost_output
from gostfast.config.api_flag import parse_api_flag
from gostfast.config.errors import ConfigError
from gostfast.config.model import Auth
from gostfast.config.yaml import from_dict
from gostfast.live import diff
from gostfast.service import plan


@pytest.mark.parametrize(
    ("text", "addr", "auths", "prefix", "accesslog"),
    [
        (":18080", ":18080", [], "", False),
        ("127.0.0.1:18080", "127.0.0.1:18080", [], "", False),
        ("user:pass@:18080", ":18080", [Auth("user", "pass")], "", False),
        (
            "u%40x:p%3Aw@:1?pathPrefix=/api/&accesslog=true",
            ":1",
            [Auth("u@x", "p:w")],
            "/api",
            True,
        ),
        ("http://:9?PATHPREFIX=/x", ":9", [], "/x", False),
    ],
)
def test_api_flag_forms(text, addr, auths, prefix, accesslog) -> None:
    api = parse_api_flag(text)
    assert (api.addr, api.auths, api.path_prefix, api.accesslog) == (addr, auths, prefix, accesslog)


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        (":1?colour=red", "-api (colour)", "unknown option 'colour'"),
        (":1?pathPrefix=api", "-api (pathPrefix)", "starting with /"),
        (":1?accesslog=maybe", "-api (accesslog)", "maybe"),
        ("", "-api", "expected an address"),
    ],
)
def test_api_flag_errors_name_the_option(text, where, message) -> None:
    with pytest.raises(ConfigError) as e:
        parse_api_flag(text)
    assert e.value.path == where and message in e.value.message


def test_api_in_yaml_takes_auth_and_the_users_of_its_auther() -> None:
    cfg = from_dict(
        {
            "authers": [{"name": "admins", "auths": [{"username": "a", "password": "1"}]}],
            "api": {"addr": ":18080", "pathPrefix": "/gost", "accesslog": True, "auther": "admins"},
        }
    )
    assert cfg.api.auths == [Auth("a", "1")] and cfg.api.path_prefix == "/gost"
    # -O writes it back as GOST's schema, and it reads back the same
    assert from_dict(gost_output.to_gost(cfg)).api == cfg.api
    with pytest.raises(ConfigError) as e:
        from_dict({"api": {"addr": ":1", "auther": "nobody"}})
    assert e.value.path == "api.auther"
    with pytest.raises(ConfigError) as e:
        from_dict({"api": {"pathPrefix": "/x"}})
    assert e.value.path == "api.addr"


def test_plan_runs_with_only_an_api() -> None:
    assert plan(from_dict({"api": {"addr": ":1"}})).services == []
    with pytest.raises(ConfigError):
        plan(from_dict({"log": {"level": "info"}}))


def _svc(name: str, port: int, target: str = "127.0.0.1:9", **extra) -> dict:
    return {
        "name": name,
        "addr": f"127.0.0.1:{port}",
        "handler": {"type": "tcp"},
        "listener": {"type": "tcp"},
        "forwarder": {"nodes": [{"name": "t", "addr": target}]},
        **extra,
    }


def test_document_edits_return_new_versions_with_gost_errors() -> None:
    doc = Document(merge([{"Services": [_svc("a", 1)]}, {"services": [_svc("b", 2)]}]))
    assert [s["name"] for s in doc.section("services")] == ["a", "b"]
    added, index = doc.create("services", _svc(" c ", 3))
    assert index == 2 and added.find("services", "c")[1]["name"] == "c"
    assert doc.find("services", "c") is None, "the edit left the old version as it was"
    updated, index = added.update("services", "a", _svc("other", 4))
    assert index == 0 and updated.find("services", "a")[1]["addr"] == "127.0.0.1:4"
    assert updated.delete("services", "b").section("services")[1]["name"] == "c"
    assert doc.delete("services", "a").delete("services", "b").data == {}
    for call, status, code in [
        (lambda: doc.create("services", {"addr": ":1"}), 400, 40001),
        (lambda: doc.create("services", _svc("a", 5)), 400, 40002),
        (lambda: doc.update("services", "zz", _svc("zz", 5)), 400, 40004),
        (lambda: doc.delete("chains", "zz"), 400, 40004),
        (lambda: doc.create("services", ["not", "an", "object"]), 400, 40001),
    ]:
        with pytest.raises(ApiError) as e:
            call()
        assert (e.value.status, e.value.code) == (status, code)


def _plan(services, **top):
    return plan(from_dict({"services": services, **top}))


def test_diff_touches_only_what_changed() -> None:
    chain = {"name": "c", "hops": [{"name": "h", "nodes": [{"name": "n", "addr": "h:1"}]}]}
    moved_chain = {"name": "c", "hops": [{"name": "h", "nodes": [{"name": "n", "addr": "h:2"}]}]}
    bypasses = [{"name": "b", "matchers": ["10.0.0.0/8"]}]
    old = _plan(
        [
            _svc("keep", 1),
            _svc("gone", 2),
            _svc("target", 3),
            _svc("port", 4),
            {**_svc("chained", 5), "handler": {"type": "tcp", "chain": "c"}},
            {**_svc("guarded", 6), "admission": "adm"},
        ],
        chains=[chain],
        bypasses=bypasses,
        admissions=[{"name": "adm", "matchers": ["10.0.0.1"]}],
    )
    new = _plan(
        [
            _svc("new", 7),  # listed first: the others' positions (origins) all move
            _svc("keep", 1),
            _svc("target", 3, target="127.0.0.1:10"),
            _svc("port", 40),
            {**_svc("chained", 5), "handler": {"type": "tcp", "chain": "c"}},
            {**_svc("guarded", 6), "admission": "adm"},
        ],
        chains=[moved_chain],
        bypasses=bypasses,
        admissions=[{"name": "adm", "matchers": ["10.0.0.2"]}],
    )
    d = diff(old, new)
    assert (d.added, d.removed) == (["new"], ["gone"])
    assert sorted(d.relisten) == ["guarded", "port"]
    assert sorted(d.reroute) == ["chained", "target"]
    assert d.chains == {"c"}
    assert diff(old, old).empty()


def test_gost_api_sets_the_address_and_the_flag_replaces_it_all(monkeypatch, tmp_path) -> None:
    from gostfast.cli import load_config

    path = tmp_path / "gost.yaml"
    path.write_text("api: {addr: ':1', pathPrefix: /p}\n")
    monkeypatch.setenv("GOST_API", "127.0.0.1:2")
    api = load_config((str(path),), (), ()).api
    assert (api.addr, api.path_prefix) == ("127.0.0.1:2", "/p")
    api = load_config((str(path),), (), (), "u:p@127.0.0.1:3").api
    assert (api.addr, api.path_prefix, api.auths) == ("127.0.0.1:3", "", [Auth("u", "p")])
    monkeypatch.delenv("GOST_API")
    assert load_config((), (), (), ":4").services == [], "-api alone reads no default file"
