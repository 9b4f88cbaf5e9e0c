"""GOST's metrics on a running gostfast, read by Prometheus's own text parser after real traffic.

One gostfast process serves five services (a tcp forwarder, an mwss listener, a tcp
entry whose chain reaches that mwss listener, a ws listener behind a "proxy" that
names its client in X-Forwarded-For, and a service whose chain is dead) and the
metrics endpoint with basic auth. The test drives known byte counts through each
and checks every metric of docs/metrics.md against them, exactly.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time

import pytest
from metrics_support import (
    FORWARDED,
    Echo,
    echo_through,
    fetch,
    scrape,
    value,
    wait_value,
    ws_echo_forwarded,
)
from support import free_port, output, wait_port

from gostfast.proto import wshandshake

AUTH = ("prom", "s3cret")


def _config(tmp_path, ports: dict[str, int], echo: int, closed: int) -> str:
    fwd_echo = f"  forwarder: {{nodes: [{{name: echo, addr: '127.0.0.1:{echo}'}}]}}\n"
    nowhere = "  forwarder: {nodes: [{name: t, addr: '127.0.0.1:9'}]}\n"
    text = (
        "services:\n"
        f"- name: fwd\n  addr: 127.0.0.1:{ports['fwd']}\n"
        "  handler: {type: tcp}\n  listener: {type: tcp}\n"
        + fwd_echo
        + f"- name: mux\n  addr: 127.0.0.1:{ports['mux']}\n"
        "  handler: {type: forward}\n  listener: {type: mwss}\n"
        + fwd_echo
        + f"- name: entry\n  addr: 127.0.0.1:{ports['entry']}\n"
        "  handler: {type: tcp, chain: via-mux}\n  listener: {type: tcp}\n"
        + nowhere
        + f"- name: wsv\n  addr: 127.0.0.1:{ports['wsv']}\n"
        "  handler: {type: forward}\n  listener: {type: ws}\n"
        + fwd_echo
        + f"- name: broken\n  addr: 127.0.0.1:{ports['broken']}\n"
        "  handler: {type: tcp, chain: dead}\n  listener: {type: tcp}\n" + nowhere + "chains:\n"
        "- name: via-mux\n  hops:\n  - name: hop0\n    nodes:\n"
        f"    - name: mux-node\n      addr: 127.0.0.1:{ports['mux']}\n"
        "      connector: {type: forward}\n      dialer: {type: mwss}\n"
        "- name: dead\n  hops:\n  - name: hop0\n    nodes:\n"
        f"    - name: dead-node\n      addr: 127.0.0.1:{closed}\n"
        "      connector: {type: forward}\n      dialer: {type: tcp}\n"
        f"metrics:\n  addr: 127.0.0.1:{ports['metrics']}\n"
        f"  auth: {{username: {AUTH[0]}, password: {AUTH[1]}}}\n"
    )
    path = tmp_path / "gost.yaml"
    path.write_text(text)
    return str(path)


def _bad_upgrades(ports: dict[str, int]) -> None:
    """A websocket upgrade to the wrong path (404), and plain text to the TLS listener."""
    with socket.create_connection(("127.0.0.1", ports["wsv"]), timeout=20) as s:
        s.settimeout(20)
        s.sendall(wshandshake.build_client_request("x", "/nope", wshandshake.make_key()))
        assert s.recv(4096).startswith(b"HTTP/1.1 404 ")
    with socket.create_connection(("127.0.0.1", ports["mux"]), timeout=20) as s:
        s.settimeout(20)
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")
        while s.recv(4096):
            pass


@pytest.fixture
def gateway(procs, tmp_path):
    echo = Echo()
    ports = {k: free_port() for k in ("fwd", "mux", "entry", "wsv", "broken", "metrics")}
    closed = free_port()
    proc = procs.gostfast(
        "-C", _config(tmp_path, ports, echo.port, closed), wait_ports=list(ports.values())
    )
    yield proc, ports
    echo.close()


def test_every_metric_after_real_traffic(gateway) -> None:
    proc, ports = gateway
    m = ports["metrics"]
    sizes = {"fwd": 100_000, "entry": 70_000, "wsv": 5_000}
    echo_through(ports["fwd"], os.urandom(sizes["fwd"]))
    echo_through(ports["entry"], os.urandom(sizes["entry"]))
    ws_port = ws_echo_forwarded(ports["wsv"], os.urandom(sizes["wsv"]))
    with socket.create_connection(("127.0.0.1", ports["broken"]), timeout=20) as s:
        s.settimeout(20)
        assert s.recv(1) == b""  # the dead chain: closed without a byte
    _bad_upgrades(ports)

    # every request has ended once its duration is observed
    for svc in ("fwd", "entry", "mux", "wsv", "broken"):
        wait_value(m, "gost_service_request_duration_seconds_count", 1, AUTH, service=svc)
    s = wait_value(m, "gostfast_mws_streams", 0, AUTH, service="mux")

    assert value(s, "gost_services") == 5
    local = "127.0.0.1"
    for svc, n in (("fwd", 100_000), ("entry", 70_000), ("mux", 70_000), ("wsv", 5_000)):
        # GOST labels bytes with the TCP peer, never a forwarded address
        for name in ("input", "output"):
            metric = f"gost_service_transfer_{name}_bytes_total"
            assert value(s, metric, service=svc, client=local) == n, (svc, name)
        assert value(s, "gostfast_service_tunnels_open", service=svc) == 0
    for svc in ("fwd", "entry", "mux", "broken"):
        assert value(s, "gost_service_requests_total", service=svc, client=local) == 1
        assert value(s, "gost_service_requests_in_flight", service=svc, client=local) == 0
    # a websocket behind a proxy: requests carry the address the proxy named (GOST's client)
    assert value(s, "gost_service_requests_total", service="wsv", client=FORWARDED) == 1
    assert value(s, "gost_service_requests_total", service="wsv", client=local) is None
    assert value(s, "gost_service_requests_in_flight", service="wsv", client=FORWARDED) == 0
    assert value(s, "gost_service_handler_errors_total", service="broken", client=local) == 1
    assert value(s, "gost_service_handler_errors_total", service="fwd", client=local) is None
    assert value(s, "gost_chain_errors_total", chain="dead", node="dead-node") == 1
    assert value(s, "gost_chain_errors_total", chain="via-mux", node="mux-node") is None
    assert value(s, "gost_chain_node_connect_duration_seconds_count", chain="via-mux") == 1
    assert value(s, "gostfast_mws_sessions", service="mux") == 1  # the chain keeps its session
    assert value(s, "gostfast_ws_handshake_failures_total", service="wsv", reason="path") == 1
    assert value(s, "gostfast_ws_handshake_failures_total", service="mux", reason="tls") == 1
    assert value(s, "gostfast_tls_handshake_seconds_count", service="mux") == 1
    assert value(s, "process_resident_memory_bytes") > 0
    for (name, labels), _ in s.items():
        if name.startswith("gost"):
            assert ("host", socket.gethostname()) in labels, name

    # the access log: one line per request; behind the proxy, client is the forwarded one
    log = output(proc)
    lines = [ln for ln in log.splitlines() if " >< " in ln and "service=wsv" in ln]
    assert len(lines) == 1, log
    assert f"client={FORWARDED} remote=127.0.0.1:{ws_port} " in lines[0], lines[0]
    assert f"inputBytes={sizes['wsv']} outputBytes={sizes['wsv']}" in lines[0]
    (broken,) = [ln for ln in log.splitlines() if " >< " in ln and "service=broken" in ln]
    assert re.search(r" route=dead-node@127\.0\.0\.1:\d+ ", broken), broken
    assert re.search(r' error="dial 127\.0\.0\.1:\d+: Connection refused"$', broken), broken


def test_endpoint_auth_path_and_cors(gateway) -> None:
    _, ports = gateway
    m = ports["metrics"]
    assert fetch(m)[0] == 401
    assert fetch(m, auth=("prom", "wrong"))[0] == 401
    assert fetch(m, "/other", auth=AUTH) == (404, "404 page not found\n")
    assert "gost_services" in fetch(m, auth=AUTH)[1]
    with socket.create_connection(("127.0.0.1", m), timeout=20) as s:
        s.sendall(b"OPTIONS /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        head = s.recv(4096)
    assert head.startswith(b"HTTP/1.1 204 ") and b"Access-Control-Allow-Origin: *" in head


def test_metrics_flag_and_env(procs) -> None:
    echo = Echo()
    try:
        port, m, m2 = free_port(), free_port(), free_port()
        procs.gostfast(
            "-L",
            f"tcp://127.0.0.1:{port}/127.0.0.1:{echo.port}",
            f"-metrics=u:p@127.0.0.1:{m}?path=/m",
            wait_ports=[port, m],
        )
        echo_through(port, b"x" * 1000)
        wait_value(
            m,
            "gost_service_transfer_input_bytes_total",
            1000,
            ("u", "p"),
            path="/m",
            service="service-0",
        )
        assert fetch(m, "/m")[0] == 401
        procs.gostfast(
            "-L", f"tcp://127.0.0.1:{free_port()}/127.0.0.1:{echo.port}",
            env={"GOST_METRICS": f"127.0.0.1:{m2}"}, wait_ports=[m2],
        )  # fmt: skip
        wait_value(m2, "gost_services", 1)  # metrics listen first, then the services
    finally:
        echo.close()


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]], ids=["one", "workers"])
def test_a_metrics_address_that_cannot_bind_exits_1_naming_it(procs, workers) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        port = free_port()
        p = procs.gostfast(
            "-L", f"tcp://127.0.0.1:{port}/127.0.0.1:9", f"-metrics=127.0.0.1:{taken}", *workers
        )
        assert p.wait(30) == 1, output(p)
    assert f"metrics: cannot listen on 127.0.0.1:{taken}: Address already in use" in output(p)
    # nothing was left listening
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))


def test_workers_serve_the_gateway_totals(procs) -> None:
    echo = Echo()
    try:
        port, m = free_port(), free_port()
        p = procs.gostfast(
            "--workers", "2",
            "-L", f"tcp://127.0.0.1:{port}/127.0.0.1:{echo.port}",
            f"-metrics=127.0.0.1:{m}",
            wait_ports=[port, m],
        )  # fmt: skip
        wait_port(port, proc=p)
        n, size = 40, 3000
        for _ in range(n):
            echo_through(port, os.urandom(size))
        s = wait_value(m, "gost_service_requests_total", n, service="service-0", client="127.0.0.1")
        pids = set(re.findall(r"INFO \[(\d+)\] gostfast.service.service-0: ", output(p)))
        assert len(pids) == 2, "both workers served tunnels: the totals are a sum"
        s = wait_value(m, "gost_service_transfer_output_bytes_total", n * size, service="service-0")
        assert value(s, "gost_service_transfer_input_bytes_total", service="service-0") == n * size
        assert value(s, "gost_services") == 2  # each worker runs the service
        assert value(s, "gost_service_requests_in_flight", service="service-0") == 0
        # every scrape, whichever worker answers it, reads the same totals
        for _ in range(6):
            again = scrape(m)
            assert value(again, "gost_service_requests_total", service="service-0") == n
        # a reload replaces both workers: what they counted stays, their gauges go with them
        p.send_signal(signal.SIGHUP)
        end = time.monotonic() + 60
        while len(re.findall(r"worker \d+ \(slot \d, stopped\)", output(p))) < 2:
            assert time.monotonic() < end, output(p)
            time.sleep(0.1)
        s = wait_value(m, "gost_services", 2)
        assert value(s, "gost_service_requests_total", service="service-0") == n
        assert value(s, "gost_service_transfer_input_bytes_total", service="service-0") == n * size
        echo_through(port, b"after the reload")
        wait_value(m, "gost_service_requests_total", n + 1, service="service-0")
    finally:
        echo.close()


def test_command_line_credentials_never_reach_a_log_line(procs) -> None:
    """An authenticated run at debug level: no line carries a password, user:pass or its base64."""
    import base64

    echo = Echo()
    try:
        user, password = "alice", "Pa55-w0rd-xyz"
        b64 = base64.b64encode(f"{user}:{password}".encode()).decode()
        srv, m = free_port(), free_port()
        server = procs.gostfast(
            "-D",
            "-L", f"relay+ws://{user}:{password}@127.0.0.1:{srv}?unknownkey=1",
            "-L", f"http://127.0.0.1:{(http_port := free_port())}?auth={b64}",
            f"-metrics={user}:{password}@127.0.0.1:{m}",
            wait_ports=[srv, m, http_port],
        )  # fmt: skip

        def relay_client(pw: str) -> tuple:
            """A gostfast forwarding to the echo server through the relay service as ``pw``."""
            port = free_port()
            proc = procs.gostfast(
                "-D",
                "-L", f"tcp://127.0.0.1:{port}/127.0.0.1:{echo.port}",
                "-F", f"relay+ws://{user}:{pw}@127.0.0.1:{srv}",
                wait_ports=[port],
            )  # fmt: skip
            return proc, port

        client, cli = relay_client(password)
        echo_through(cli, b"y" * 5000)
        wait_value(m, "gost_service_requests_total", 1, (user, password), service="service-0")
        bad, bad_port = relay_client(f"wrong-{password}")  # a client that tries a wrong one
        with socket.create_connection(("127.0.0.1", bad_port), timeout=20) as s:
            s.settimeout(20)
            s.sendall(b"z")
            try:
                s.recv(1)
            except OSError:
                pass
        wait_value(m, "gost_service_handler_errors_total", 1, (user, password), service="service-0")
        # the http proxy: a CONNECT with the right Proxy-Authorization, then a wrong one
        for pw, status in ((password, b"200"), (f"x{password}", b"407")):
            token = base64.b64encode(f"{user}:{pw}".encode()).decode()
            with socket.create_connection(("127.0.0.1", http_port), timeout=20) as s:
                s.settimeout(20)
                s.sendall(
                    f"CONNECT 127.0.0.1:{echo.port} HTTP/1.1\r\nHost: x\r\n"
                    f"Proxy-Authorization: Basic {token}\r\n\r\n".encode()
                )
                assert s.recv(4096).split(b" ")[1] == status
        wait_value(m, "gost_service_handler_errors_total", 1, (user, password), service="service-1")
        assert fetch(m)[0] == 401
    finally:
        echo.close()
    for proc in (server, client, bad):
        log = output(proc)
        assert "DEBUG" in log and " >< " in output(server)
        for secret in (password, f"{user}:{password}", b64, b64.rstrip("=")):
            assert secret not in log, (secret, [ln for ln in log.splitlines() if secret in ln])


def test_http_proxy_bodies_are_counted(procs, http_server) -> None:
    """Plain (absolute-URI) proxying copies bodies in coroutines, not the relay: counted too."""
    port, m = free_port(), free_port()
    procs.gostfast(
        "-L", f"http://127.0.0.1:{port}", f"-metrics=127.0.0.1:{m}", wait_ports=[port, m]
    )
    blob = http_server.blob
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.settimeout(20)
        s.sendall(
            f"GET http://127.0.0.1:{http_server.port}/blob.bin HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{http_server.port}\r\nConnection: close\r\n\r\n".encode()
        )
        got = b""
        while chunk := s.recv(1 << 20):
            got += chunk
    assert got.endswith(blob)
    s = wait_value(m, "gost_service_transfer_output_bytes_total", len(blob), service="service-0")
    assert value(s, "gost_service_transfer_input_bytes_total", service="service-0") is None


def test_gost_services_counts_running_services_through_live_changes(procs, tmp_path) -> None:
    """``gost_services`` is the number of services running, whatever the web API did:
    adding, re-listening (same address, new listener), moving and removing one."""
    from api_support import Api, start_with_api, ws_service

    api_port, m, a, b = free_port(), free_port(), free_port(), free_port()
    start_with_api(procs, tmp_path, "services: []\n", api_port, flags=(f"-metrics=127.0.0.1:{m}",))
    wait_port(m)
    api = Api(api_port)
    api.ok("POST", "/config/services", ws_service("web", a, 9))
    wait_value(m, "gost_services", 1)
    meta = {"listener": {"type": "ws", "metadata": {"path": "/other"}}}
    api.ok("PUT", "/config/services/web", ws_service("web", a, 9, **meta))  # re-listened in place
    assert value(scrape(m), "gost_services") == 1
    api.ok("PUT", "/config/services/web", ws_service("web", b, 9, **meta))  # moved
    assert value(scrape(m), "gost_services") == 1
    api.ok("POST", "/config/services", ws_service("two", a, 9))
    assert value(scrape(m), "gost_services") == 2
    api.ok("DELETE", "/config/services/web")
    assert value(scrape(m), "gost_services") == 1
