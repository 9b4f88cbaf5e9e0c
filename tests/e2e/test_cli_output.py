"""``-O yaml|json``: the configuration printed in GOST's schema, as ``gost -O`` does.

The property that matters to a GOST user who turns a command line into a
config file: the printed file, loaded with ``-C``, is the same configuration
(``gostfast check`` resolves both to the same services and chains) and loads
without warnings the command line did not have.
"""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml
from support import GOSTFAST


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*GOSTFAST, *args], capture_output=True, text=True, timeout=30, input=stdin
    )


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "WARNING" in line]


COMMAND_LINES = {
    "forward": ["-L", "tcp://127.0.0.1:9000/a:1,b:2?strategy=fifo&maxFails=2&failTimeout=1m"],
    "proxy-chain": [
        "-L",
        "http://u:p%40ss@127.0.0.1:8080?idleTimeout=5s&proxyAgent=x/1",
        "-L",
        "socks5://:1080",
        "-F",
        "mws://127.0.0.1:8443,127.0.0.1:8444?path=/x&weight=2&mux.version=2",
        "-F",
        "relay+wss://v:w@example.com:443?host=cdn.example.com&keepalive=true&ttl=20s",
    ],
    "ws-server": [
        "-L",
        "mwss://:8443/127.0.0.1:22?path=/t&dialTimeout=3s&certFile=c.pem&keyFile=k.pem",
    ],
    "unknown-key-stays": ["-L", "ws://:8081?path=/p&bogus=1"],
    "traffic-limiter": [
        "-L",
        "ws://:8082/127.0.0.1:22?limiter.in=10MB&limiter.out=1.5MiB&limiter.conn.in=512KB"
        "&limiter.scope=conn",
    ],
    "bypass": [
        "-L",
        "http://:8080?bypass=~10.0.0.0/8,.cn&climiter=100&rlimiter=2.5",
        "-L",
        "socks5://:1080?bypass=*.ads.test&admission=~127.0.0.1,10.0.0.0/8&hosts=x.test:::1",
        "-F",
        "http://h:1?bypass=a.b:443&hosts=h:10.0.0.1",
        "-F",
        "http://g:1",
    ],
}


@pytest.mark.parametrize("fmt", ["yaml", "json"])
@pytest.mark.parametrize("name", list(COMMAND_LINES))
def test_printed_config_is_the_same_configuration(name: str, fmt: str, tmp_path) -> None:
    args = COMMAND_LINES[name]
    printed = _run(*args, "-O", fmt)
    assert printed.returncode == 0, printed.stderr
    data = json.loads(printed.stdout) if fmt == "json" else yaml.safe_load(printed.stdout)
    assert data["services"][0]["addr"]  # GOST's schema: services/chains/... at the top
    path = tmp_path / f"gost.{fmt}"
    path.write_text(printed.stdout)
    from_cli = _run("check", *args)
    from_file = _run("check", "-C", str(path))
    assert from_cli.returncode == from_file.returncode == 0, from_file.stderr
    assert from_file.stdout == from_cli.stdout
    # a key the command line copied to every part is written where it is read
    assert len(_warnings(from_file.stderr)) == (3 if name == "unknown-key-stays" else 0), (
        from_file.stderr
    )


def test_keys_are_gost_and_durations_are_go_text() -> None:
    out = _run(*COMMAND_LINES["forward"], "-O", "yaml")
    data = yaml.safe_load(out.stdout)
    assert data["services"][0]["forwarder"] == {
        "nodes": [{"name": "target-0", "addr": "a:1"}, {"name": "target-1", "addr": "b:2"}],
        "selector": {"strategy": "fifo", "maxFails": 2, "failTimeout": "1m"},
    }
    assert data["services"][0]["handler"] == {"type": "tcp"}
    assert "chains" not in data


def test_authers_and_labels_round_trip(tmp_path) -> None:
    """Several users (from authers) come out as one named auther; node labels as metadata."""
    src = tmp_path / "src.yaml"
    src.write_text(
        "services:\n"
        "- name: s\n  addr: 127.0.0.1:9001\n"
        "  handler: {type: http, authers: [a1, a2], chain: c}\n"
        "  forwarder: {nodes: [{addr: 'h:1', metadata: {backup: true, weight: 3}}]}\n"
        "- name: locked\n  addr: 127.0.0.1:9002\n"
        "  handler: {type: socks5, auther: empty}\n"
        "chains: [{name: c, hops: [{name: h0, nodes: [{name: n0, addr: 'p:1', "
        "metadata: {maxFails: 3, failTimeout: 1m}}]}]}]\n"
        "log: {level: debug, format: json}\n"
        "authers: [{name: a1, auths: [{username: x, password: '1'}]},"
        " {name: a2, auths: [{username: y, password: '2'}]}, {name: empty}]\n"
    )
    printed = _run("-C", str(src), "-O", "yaml")
    assert printed.returncode == 0, printed.stderr
    data = yaml.safe_load(printed.stdout)
    assert data["authers"] == [
        {
            "name": "auther-s",
            "auths": [{"username": "x", "password": "1"}, {"username": "y", "password": "2"}],
        },
        {"name": "auther-locked"},  # no users: GOST refuses everyone, as the source did
    ]
    assert data["services"][0]["handler"]["auther"] == "auther-s"
    assert data["services"][0]["forwarder"]["nodes"][0]["metadata"] == {"backup": True, "weight": 3}
    assert data["log"] == {"level": "debug", "format": "json", "output": "stderr"}
    out = tmp_path / "out.yaml"
    out.write_text(printed.stdout)
    assert _run("check", "-C", str(out)).stdout == _run("check", "-C", str(src)).stdout


def test_bad_format_and_bad_config_are_errors() -> None:
    bad = _run("-L", "tcp://:1/a:1", "-O", "toml")
    assert bad.returncode == 2
    assert "'toml' is not one of 'yaml', 'json'" in bad.stderr
    broken = _run("-L", "tcp://:1/a:1?strategy=hash", "-O", "yaml")
    assert broken.returncode == 2 and broken.stdout == ""
    assert "strategy 'hash' is not supported by gostfast yet" in broken.stderr


def test_top_level_hops_stay_named(tmp_path) -> None:
    """A hop chains name (GOST's top-level hops:) is printed once, under hops:, so the
    chains still share it when the file is loaded again."""
    src = tmp_path / "src.yaml"
    src.write_text(
        "hops: [{name: shared, nodes: [{name: p1, addr: 'p:1'}]}]\n"
        "chains:\n- {name: c1, hops: [{name: shared}]}\n"
        "- {name: c2, hops: [{nodes: [{addr: 'q:1'}]}, {name: shared}]}\n"
        "services:\n- {addr: '127.0.0.1:1', handler: {type: http, chain: c1}}\n"
        "- {addr: '127.0.0.1:2', handler: {type: http, chain: c2}}\n"
    )
    printed = _run("-C", str(src), "-O", "yaml")
    data = yaml.safe_load(printed.stdout)
    assert [h["name"] for h in data["hops"]] == ["shared"]
    assert data["chains"][0]["hops"] == [{"name": "shared"}]
    assert data["chains"][1]["hops"][1] == {"name": "shared"}
    out = tmp_path / "out.yaml"
    out.write_text(printed.stdout)
    assert _run("check", "-C", str(out)).stdout == _run("check", "-C", str(src)).stdout
