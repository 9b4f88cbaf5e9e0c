"""GOST's web API under --workers 2: each change is a reload onto the new config.

The API runs in a process of the supervisor's; a change reaches new
connections on every worker, while tunnels opened before it stay on the old
workers (drained for --grace, long here) and keep passing bytes.
"""

from __future__ import annotations

import signal
import socket

from api_support import (
    Api,
    TcpTunnel,
    keep_services,
    start_with_api,
    targets_fixture,  # noqa: F401 (the targets fixture)
    ws_service,
    ws_tag,
)
from support import free_port, is_listening, output
from workers_support import MWSClient, WSClient, children, wait_for


def test_changes_reach_every_worker_and_open_tunnels_stay(procs, tmp_path, targets) -> None:
    a, b = targets
    tcp_port, mws_port, ws_port, api_port = free_port(), free_port(), free_port(), free_port()
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen(1)
    proc = start_with_api(
        procs,
        tmp_path,
        keep_services(tcp_port, mws_port, a),
        api_port,
        tcp_port,
        mws_port,
        flags=("--workers", "2", "--grace", "120"),
    )
    wait_for(lambda: "workers serving" in output(proc), 60, "the workers", proc=proc)
    api = Api(api_port)
    tcp, mws = TcpTunnel(tcp_port), MWSClient(mws_port, timeout=30)
    assert tcp.tag == b"A" and mws.recv_exact(1) == b"A"

    def others_pass_bytes(tag: bytes) -> None:
        data = tag * 4000
        assert tcp.echo(data) == data
        assert mws.echo(data) == data

    api.ok("POST", "/config/services", ws_service("web", ws_port, a))
    assert is_listening(ws_port)
    clients = [WSClient(ws_port, timeout=30) for _ in range(4)]  # spread over both workers
    assert [ws_tag(c) for c in clients] == [b"A"] * 4
    others_pass_bytes(b"1")

    api.ok("PUT", "/config/services/web", ws_service("web", ws_port, b))
    fresh = [WSClient(ws_port, timeout=30) for _ in range(4)]
    assert [ws_tag(c) for c in fresh] == [b"B"] * 4
    assert all(c.echo(b"old " * 50) == b"old " * 50 for c in clients)
    others_pass_bytes(b"2")

    status, _, got = api.call("POST", "/config/services", ws_service("x", held.getsockname()[1], a))
    assert status == 500 and got["code"] == 40003, got
    assert f"cannot listen on 127.0.0.1:{held.getsockname()[1]}" in got["msg"]
    assert [s["name"] for s in api.config()["services"]] == ["keep-tcp", "keep-mws", "web"]

    api.ok("DELETE", "/config/services/web")
    wait_for(lambda: not is_listening(ws_port), 30, "web to stop listening", proc=proc)
    others_pass_bytes(b"3")
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "SIGHUP ignored" in output(proc), 30, "SIGHUP to be refused", proc=proc)
    assert [s["name"] for s in api.config()["services"]] == ["keep-tcp", "keep-mws"]
    others_pass_bytes(b"4")
    for c in clients + fresh + [mws]:
        c.close()
    tcp.sock.close()
    held.close()
    assert proc.poll() is None and len(children(proc.pid)) >= 3, output(proc)


def test_api_address_held_exits_1_and_reload_period_is_refused(procs, tmp_path) -> None:
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen(1)
    port = held.getsockname()[1]
    svc = f"tcp://127.0.0.1:{free_port()}/127.0.0.1:9"
    proc = procs.gostfast("--workers", "2", "-L", svc, f"-api=127.0.0.1:{port}")
    assert proc.wait(60) == 1, output(proc)
    assert f"api: cannot listen on 127.0.0.1:{port}: Address already in use" in output(proc)
    assert "worker" not in output(proc), "nothing started before the API's address was had"
    held.close()
    again = procs.gostfast("-R", "10s", "-L", svc, f"-api=127.0.0.1:{free_port()}")
    assert again.wait(60) == 2, output(again)
    assert "-R: not with the web API" in output(again)
