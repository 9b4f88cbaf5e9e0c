"""GOST's web API against a running gostfast: real HTTP (http.client), real tunnels.

While services are added, updated and deleted through the API, tunnels opened
through other services (a TCP forward and an mws session) stay open and keep
passing bytes, and a tunnel opened through the edited service keeps the
target it started with. Targets are echo servers that first send a tag, so
each check says which target a connection reached.
"""

from __future__ import annotations

import base64
import socket

import pytest
from api_support import (
    PASSWORD,
    USER,
    Api,
    TcpTunnel,
    keep_services,
    start_with_api,
    targets_fixture,  # noqa: F401 (the targets fixture)
    ws_service,
    ws_tag,
)
from metrics_support import value, wait_value
from proxy_support import recv_head
from support import free_port, is_listening, output, wait_port
from workers_support import MWSClient, WSClient, wait_for


def test_add_tunnel_update_delete_leaves_other_tunnels_up(procs, tmp_path, targets) -> None:
    a, b = targets
    tcp_port, mws_port, ws_port, api_port = free_port(), free_port(), free_port(), free_port()
    proc = start_with_api(
        procs, tmp_path, keep_services(tcp_port, mws_port, a), api_port, tcp_port, mws_port
    )
    api = Api(api_port)
    tcp = TcpTunnel(tcp_port)
    mws = MWSClient(mws_port, timeout=30)
    assert tcp.tag == b"A" and mws.recv_exact(1) == b"A"
    step = 0

    def others_pass_bytes() -> None:
        nonlocal step
        step += 1
        data = b"step %d " % step * 500
        assert tcp.echo(data) == data
        assert mws.echo(data) == data

    others_pass_bytes()
    api.ok("POST", "/config/services", ws_service("web", ws_port, a))
    wait_port(ws_port, proc=proc)
    first = WSClient(ws_port, timeout=30)
    assert ws_tag(first) == b"A"
    assert first.echo(b"through web " * 100) == b"through web " * 100
    others_pass_bytes()

    api.ok("PUT", "/config/services/web", ws_service("web", ws_port, b))
    second = WSClient(ws_port, timeout=30)
    assert ws_tag(second) == b"B", "a new connection goes to the updated target"
    assert second.echo(b"to B " * 100) == b"to B " * 100
    assert first.echo(b"still A " * 100) == b"still A " * 100, "an open tunnel keeps its target"
    others_pass_bytes()
    assert [s["name"] for s in api.config()["services"]] == ["keep-tcp", "keep-mws", "web"]
    fwd = api.call("GET", "/config/services/web")[2]["data"]["forwarder"]
    assert fwd["nodes"][0]["addr"] == f"127.0.0.1:{b}"

    api.ok("DELETE", "/config/services/web")
    wait_for(lambda: not is_listening(ws_port), 10, "web to stop listening", proc=proc)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", ws_port), timeout=5).close()
    assert first.echo(b"after delete " * 10) == b"after delete " * 10  # as GOST: tunnels run on
    others_pass_bytes()
    assert [s["name"] for s in api.config()["services"]] == ["keep-tcp", "keep-mws"]
    for c in (first, second, mws):
        c.close()
    tcp.sock.close()
    assert proc.poll() is None, output(proc)
    log = output(proc)
    assert "keep-tcp: listening" in log and log.count("keep-tcp: listening") == 1, log
    assert PASSWORD not in log


def test_bad_input_answers_gost_errors_and_changes_nothing(procs, tmp_path, targets) -> None:
    a, _ = targets
    tcp_port, mws_port, api_port = free_port(), free_port(), free_port()
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen(1)
    held_port = held.getsockname()[1]
    yaml_text = keep_services(tcp_port, mws_port, a) + (
        "bypasses:\n- name: inner\n  matchers: [10.0.0.0/8]\n"
        "chains:\n- name: c\n  hops:\n  - name: h\n    bypass: inner\n"
        f"    nodes: [{{name: n, addr: '127.0.0.1:{a}', connector: {{type: forward}}}}]\n"
    )
    proc = start_with_api(procs, tmp_path, yaml_text, api_port, tcp_port, mws_port)
    api = Api(api_port)
    tcp = TcpTunnel(tcp_port)
    before = api.config()

    status, headers, got = Api(api_port, auth=None).call("GET", "/config")
    assert (status, got) == (401, {"code": 401, "msg": "Unauthorized"})
    assert headers["WWW-Authenticate"] == "Basic"
    assert Api(api_port, auth=(USER, "wrong")).call("GET", "/config/services")[0] == 401

    cases = [
        (("POST", "/config/services", None, b'{"name": "x", '), 400, 40001, "malformed JSON"),
        (
            ("POST", "/config/services", {"addr": ":1"}, None),
            400,
            40001,
            "service name is required",
        ),
        (
            ("POST", "/config/services", ws_service("x", free_port(), a, colour="red"), None),
            400,
            40001,
            "services[2].colour",
        ),
        (
            ("POST", "/config/services", ws_service("x", held_port, a), None),
            500,
            40003,
            f"cannot listen on 127.0.0.1:{held_port}",
        ),
        (
            ("POST", "/config/services", ws_service("keep-tcp", free_port(), a), None),
            400,
            40002,
            "service keep-tcp already exists",
        ),
        (
            ("PUT", "/config/services/nope", ws_service("nope", 1, a), None),
            400,
            40004,
            "not found",
        ),
        (("DELETE", "/config/chains/nope", None, None), 400, 40004, "chain nope not found"),
        (
            ("DELETE", "/config/bypasses/inner", None, None),
            500,
            40003,
            "unknown bypass 'inner'",
        ),
        (
            (
                "PUT",
                "/config/services/keep-tcp",
                {"addr": "127.0.0.1:1", "listener": {"type": "nope"}},
                None,
            ),
            500,
            40003,
            "unknown listener 'nope'",
        ),
    ]
    for (method, path, body, raw), status, code, text in cases:
        got_status, _, got = api.call(method, path, body, raw)
        assert got_status == status and got["code"] == code and text in got["msg"], (path, got)
        assert api.config() == before, f"{method} {path} changed the config"
        data = b"still up " * 100
        assert tcp.echo(data) == data
    assert api.call("GET", "/config/resolvers")[0] == 501
    assert api.call("GET", "/config/nothing")[0] == 404
    tcp.sock.close()
    held.close()
    assert proc.poll() is None, output(proc)


def test_chain_and_named_list_updates_reach_new_connections(procs, tmp_path, targets) -> None:
    """A chain's node moved to another target: new connections of the service using it go
    there, an open one stays. An admission made to refuse us: new connections are refused,
    the open tunnel runs on (the listener is restarted on its address)."""
    a, b = targets
    front, guarded, api_port = free_port(), free_port(), free_port()
    yaml_text = (
        "services:\n"
        f"- name: front\n  addr: 127.0.0.1:{front}\n  handler: {{type: tcp, chain: c}}\n"
        f"  listener: {{type: tcp}}\n  forwarder: {{nodes: [{{name: t, addr: '127.0.0.1:9'}}]}}\n"
        f"- name: guarded\n  addr: 127.0.0.1:{guarded}\n  admission: adm\n  handler: {{type: tcp}}\n"
        f"  listener: {{type: tcp}}\n  forwarder: {{nodes: [{{name: t, addr: '127.0.0.1:{a}'}}]}}\n"
        "admissions:\n- name: adm\n  whitelist: true\n  matchers: [127.0.0.1]\n"
        "chains:\n- name: c\n  hops:\n  - name: h\n"
        f"    nodes: [{{name: n, addr: '127.0.0.1:{a}', connector: {{type: forward}}}}]\n"
    )
    proc = start_with_api(procs, tmp_path, yaml_text, api_port, front, guarded)
    api = Api(api_port)
    old_front, old_guarded = TcpTunnel(front), TcpTunnel(guarded)
    assert (old_front.tag, old_guarded.tag) == (b"A", b"A")

    chain = api.call("GET", "/config/chains/c")[2]["data"]
    chain["hops"][0]["nodes"][0]["addr"] = f"127.0.0.1:{b}"
    api.ok("PUT", "/config/chains/c", chain)
    assert TcpTunnel(front).tag == b"B"
    assert old_front.echo(b"x" * 1000) == b"x" * 1000

    api.ok("PUT", "/config/admissions/adm", {"matchers": ["127.0.0.1"]})  # now a blacklist
    refused = socket.create_connection(("127.0.0.1", guarded), timeout=30)
    assert refused.recv(1) == b"", "a new connection is refused by the updated admission"
    refused.close()
    assert old_guarded.echo(b"y" * 1000) == b"y" * 1000
    assert TcpTunnel(front).tag == b"B", "front was not touched by the admission change"
    for t in (old_front, old_guarded):
        t.sock.close()
    assert proc.poll() is None, output(proc)


def test_api_address_that_cannot_bind_exits_1_naming_it(procs, targets) -> None:
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen(1)
    port = held.getsockname()[1]
    proc = procs.gostfast(
        "-L", f"tcp://127.0.0.1:{free_port()}/127.0.0.1:{targets[0]}", f"-api=127.0.0.1:{port}"
    )
    assert proc.wait(60) == 1, output(proc)
    assert f"api: cannot listen on 127.0.0.1:{port}: Address already in use" in output(proc)
    held.close()


def test_api_alone_under_a_path_prefix(procs) -> None:
    """GOST runs with only the API (services come later), its routes under pathPrefix."""
    api_port, svc_port = free_port(), free_port()
    proc = procs.gostfast(f"-api=127.0.0.1:{api_port}?pathPrefix=/gost&accesslog=true")
    wait_port(api_port, proc=proc)
    api = Api(api_port, auth=None)
    assert api.call("GET", "/config")[0] == 404, "routes live under the prefix"
    status, _, got = api.call("GET", "/gost/config?format=yaml")
    assert status == 200 and f"addr: 127.0.0.1:{api_port}" in got and "pathPrefix: /gost" in got
    status, _, got = api.call(
        "POST",
        "/gost/config/services",
        {
            "name": "s",
            "addr": f"127.0.0.1:{svc_port}",
            "handler": {"type": "auto"},
            "listener": {"type": "tcp"},
        },
    )
    assert (status, got) == (200, {"msg": "OK"})
    wait_port(svc_port, proc=proc)
    assert "| 200 |" in output(proc) and "POST    /gost/config/services" in output(proc)


def test_command_line_services_are_not_touched_by_an_unrelated_change(procs, targets) -> None:
    """-L services live in the API's document as -O writes them (a query key only in the
    parts that read it): the first change must not count them as changed."""
    a, _ = targets
    mws_port, api_port, new_port = free_port(), free_port(), free_port()
    proc = procs.gostfast(
        "-L",
        f"mws://127.0.0.1:{mws_port}/127.0.0.1:{a}?keepalive=true&ttl=10s&path=/ws",
        f"-api=127.0.0.1:{api_port}",
    )
    for p in (mws_port, api_port):
        wait_port(p, proc=proc)
    mws = MWSClient(mws_port, timeout=30)
    assert mws.recv_exact(1) == b"A"
    Api(api_port, auth=None).ok("POST", "/config/services", ws_service("web", new_port, a))
    wait_port(new_port, proc=proc)
    assert mws.echo(b"z" * 5000) == b"z" * 5000
    log = output(proc)
    assert log.count("service-0: listening") == 1 and "service-0: serving new" not in log, log
    mws.close()


def _connect_status(port: int, target: int, user: str, password: str) -> bytes:
    """The status line an HTTP proxy answers a CONNECT with these credentials."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(
            f"CONNECT 127.0.0.1:{target} HTTP/1.1\r\nHost: 127.0.0.1:{target}\r\n"
            f"Proxy-Authorization: Basic {token}\r\n\r\n".encode()
        )
        return recv_head(s).split(b"\r\n", 1)[0]


def test_authers_hops_and_limiters_through_their_endpoints(procs, tmp_path, targets) -> None:
    """An auther's new password holds for new connections of the proxy using it; a
    top-level hop's node moved re-routes the chain using it; a climiter created and
    named by an updated service applies there."""
    a, b = targets
    proxy, front, api_port = free_port(), free_port(), free_port()
    yaml_text = (
        "services:\n"
        f"- name: proxy\n  addr: 127.0.0.1:{proxy}\n  handler: {{type: http, auther: users}}\n"
        "  listener: {type: tcp}\n"
        f"- name: front\n  addr: 127.0.0.1:{front}\n  handler: {{type: tcp, chain: c}}\n"
        "  listener: {type: tcp}\n  forwarder: {nodes: [{name: t, addr: '127.0.0.1:9'}]}\n"
        "authers:\n- name: users\n  auths: [{username: u, password: old}]\n"
        "hops:\n- name: h\n"
        f"  nodes: [{{name: n, addr: '127.0.0.1:{a}', connector: {{type: forward}}}}]\n"
        "chains:\n- name: c\n  hops: [{name: h}]\n"
    )
    proc = start_with_api(procs, tmp_path, yaml_text, api_port, proxy, front)
    api = Api(api_port)
    assert _connect_status(proxy, a, "u", "old").split()[1] == b"200"
    api.ok("PUT", "/config/authers/users", {"auths": [{"username": "u", "password": "new"}]})
    assert _connect_status(proxy, a, "u", "old").split()[1] == b"407"
    assert _connect_status(proxy, a, "u", "new").split()[1] == b"200"

    assert TcpTunnel(front).tag == b"A"
    hop = api.call("GET", "/config/hops/h")[2]["data"]
    hop["nodes"][0]["addr"] = f"127.0.0.1:{b}"
    api.ok("PUT", "/config/hops/h", hop)
    assert TcpTunnel(front).tag == b"B"

    api.ok("POST", "/config/climiters", {"name": "one", "limits": ["$ 1"]})
    service = api.call("GET", "/config/services/front")[2]["data"]
    api.ok("PUT", "/config/services/front", {**service, "climiter": "one"})
    held = TcpTunnel(front)
    over = socket.create_connection(("127.0.0.1", front), timeout=30)
    assert over.recv(1) == b"", "a second connection is over the new climiter's $ 1"
    over.close()
    assert held.echo(b"q" * 100) == b"q" * 100
    status, _, got = api.call("DELETE", "/config/climiters/one")
    assert status == 500 and "unknown climiter 'one'" in got["msg"], got
    held.sock.close()
    assert proc.poll() is None, output(proc)


def test_config_shows_and_serves_the_metrics_the_command_line_set(procs, targets) -> None:
    """``-metrics`` beside ``-api``: the address is served, and GET /config names it."""
    svc, api_port, m = free_port(), free_port(), free_port()
    proc = procs.gostfast(
        "-L", f"tcp://127.0.0.1:{svc}/127.0.0.1:{targets[0]}",
        f"-api=127.0.0.1:{api_port}", f"-metrics=prom:s3cret@127.0.0.1:{m}?path=/m",
    )  # fmt: skip
    for p in (svc, api_port, m):
        wait_port(p, proc=proc)
    assert TcpTunnel(svc).tag == b"A"
    samples = wait_value(m, "gost_service_requests_total", 1, ("prom", "s3cret"), path="/m")
    assert value(samples, "gost_services") == 1
    got = Api(api_port, auth=None).config()["metrics"]
    assert got == {
        "addr": f"127.0.0.1:{m}",
        "path": "/m",
        "auth": {"username": "prom", "password": "s3cret"},
    }
    assert proc.poll() is None, output(proc)
