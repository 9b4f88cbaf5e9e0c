"""GOST's ``metrics:`` block, ``-metrics`` and GOST_METRICS; redaction of URLs; log fields."""

from __future__ import annotations

import json
import logging

import pytest
from support import assert_config_error

from gostfast.cli import load_config
from gostfast.config import gost_output
from gostfast.config.errors import ConfigError
from gostfast.config.model import Auth
from gostfast.config.url import parse_metrics_flag, redact
from gostfast.config.yaml import load_text
from gostfast.logsetup import JSONFormatter, TextFormatter, go_duration


def test_metrics_block_with_auth_and_path() -> None:
    cfg = load_text(
        "metrics: {addr: ':9000', path: /m, auth: {username: u, password: p}}\n"
        "services: [{addr: ':1'}]"
    )
    assert (cfg.metrics.addr, cfg.metrics.path) == (":9000", "/m")
    assert cfg.metrics.auths == [Auth("u", "p")] and not cfg.metrics.auth_required


def test_metrics_auther_wins_over_auth_as_in_gost(caplog) -> None:
    cfg = load_text(
        "authers: [{name: a0, auths: [{username: x, password: y}, {username: z}]}]\n"
        "metrics: {addr: ':9000', auther: a0, auth: {username: u, password: p}}\n"
        "services: [{addr: ':1'}]"
    )
    assert cfg.metrics.auths == [Auth("x", "y"), Auth("z", "")]
    assert cfg.metrics.auth_required and cfg.metrics.path == "/metrics"
    assert "metrics.auth: not used when an auther is given" in caplog.text


def test_metrics_without_addr_is_off_as_in_gost() -> None:
    assert load_text("metrics: {path: /m}\nservices: [{addr: ':1'}]").metrics is None


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        ("metrics: {addr: ':9', auther: nope}", "metrics.auther", "unknown auther 'nope'"),
        ("metrics: {addr: ':9', path: m}", "metrics.path", "must start with /"),
        ("metrics: [1]", "metrics", "expected a mapping"),
    ],
)
def test_bad_metrics_blocks(text: str, path: str, message: str) -> None:
    assert_config_error(text + "\nservices: [{addr: ':1'}]", path, message)


def test_metrics_flag_as_gost_parses_it() -> None:
    m = parse_metrics_flag("user:pa%3Ass@127.0.0.1:9000?path=/prom")
    assert (m.addr, m.path, m.auths) == ("127.0.0.1:9000", "/prom", [Auth("user", "pa:ss")])
    assert parse_metrics_flag(":9000").addr == ":9000"
    assert parse_metrics_flag("unix:///run/m.sock").addr == "unix:///run/m.sock"
    with pytest.raises(ConfigError, match=r"-metrics 'u:\*\*\*@:x'.*invalid port"):
        parse_metrics_flag("u:secret@:x")


def test_env_sets_the_address_and_the_flag_wins() -> None:
    urls = ("tcp://:1/:2",)
    env = {"GOST_METRICS": ":9100"}
    assert load_config((), urls, (), environ=env).metrics.addr == ":9100"
    assert load_config((), urls, (), metrics=":9200", environ=env).metrics.addr == ":9200"
    assert load_config((), urls, (), environ={}).metrics is None


def test_output_writes_the_block_back() -> None:
    cfg = load_text("metrics: {addr: ':9000', auth: {username: u, password: p}}\nservices: []")
    assert gost_output.to_gost(cfg)["metrics"] == {
        "addr": ":9000",
        "path": "/metrics",
        "auth": {"username": "u", "password": "p"},
    }
    again = load_text(gost_output.render(cfg, "yaml"))
    assert again.metrics == cfg.metrics


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("http://u:secret@:8080", "http://u:***@:8080"),
        ("relay+ws://u:se@cret@h:1/t?x=1", "relay+ws://u:***@h:1/t?x=1"),
        ("socks5://u@:1080", "socks5://u@:1080"),
        (":8080?auth=dTpw&a=1", ":8080?auth=***&a=1"),
        ("tcp://:1/h:2", "tcp://:1/h:2"),
    ],
)
def test_redact_hides_passwords_and_auth(raw: str, shown: str) -> None:
    assert redact(raw) == shown


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0000005, "500ns"),
        (0.000350, "350µs"),
        (0.0015, "1.5ms"),
        (2.25, "2.25s"),
        (90.5, "1m30.5s"),
        (3600 + 61, "1h1m1s"),
    ],
)
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def _record(fields: dict) -> logging.LogRecord:
    rec = logging.LogRecord("gostfast.service.s", logging.INFO, "", 0, "a >< b", None, None)
    rec.fields = fields
    return rec


def test_fields_in_text_and_json_lines() -> None:
    fields = {"service": "s", "client": "203.0.113.7", "dst": "h:1", "route": "a@b > c@d"}
    fields |= {"duration": 1.5, "inputBytes": 3, "error": 'x "y"'}
    text = TextFormatter("%(message)s").format(_record(fields))
    assert text == (
        'a >< b service=s client=203.0.113.7 dst=h:1 route="a@b > c@d" duration=1.5s '
        'inputBytes=3 error="x \\"y\\""'
    )
    entry = json.loads(JSONFormatter().format(_record(fields)))
    assert entry["msg"] == "a >< b" and entry["duration"] == 1_500_000_000
    assert (entry["route"], entry["inputBytes"], entry["error"]) == ("a@b > c@d", 3, 'x "y"')
