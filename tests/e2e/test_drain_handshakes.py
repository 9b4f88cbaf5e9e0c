"""A client caught mid-handshake by a stop or a reload is served, not cut off.

A connection the listener accepted is the process's to serve: when the
service stops accepting (SIGTERM with ``--grace``, or a reload that retires
the worker), a client whose websocket upgrade (or TLS handshake) is still in
flight must get its 101 and a working tunnel, and the drain waits for it as
for an open tunnel. The client here sends half of its upgrade request, the
stop comes, the listener closes, then it sends the rest.
"""

from __future__ import annotations

import os
import signal
import socket

import pytest
from api_support import Api
from proxy_support import TCPServer, echo
from support import client_tls, free_port, is_listening, output, read_101, wsframe
from workers_support import children, connections_by_pid, start_workers, wait_for

from gostfast.proto import wshandshake


def _half_upgrade(port: int, tls: bool):
    """Connect, (TLS,) and send the upgrade request but its last line; (socket, key, rest)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    sock = client_tls(raw) if tls else raw
    key = wshandshake.make_key()
    request = wshandshake.build_client_request(f"127.0.0.1:{port}", "/ws", key)
    sock.sendall(request[:-2])  # the blank line that ends the head is held back
    return sock, key, request[-2:]


def _finish_and_echo(sock, key: str, rest: bytes) -> bytes:
    """Send the end of the head, check the 101, then echo one message through the tunnel."""
    sock.sendall(rest)
    after = read_101(sock, key)
    sock.sendall(
        wsframe.build_frame(wsframe.OP_BINARY, b"served after the stop", True, os.urandom(4))
    )
    parser = wsframe.FrameParser(False)
    got = b"".join(bytes(p) for _, p in parser.feed(after))
    while len(got) < len(b"served after the stop"):
        b = sock.recv(4096)
        assert b, f"closed after the upgrade; got {got!r}"
        got += b"".join(bytes(p) for op, p in parser.feed(b) if op == wsframe.OP_BINARY)
    return got


@pytest.fixture
def echo_server():
    srv = TCPServer(echo)
    yield srv
    srv.close()


@pytest.mark.parametrize("scheme", ["ws", "wss"])
def test_sigterm_serves_an_upgrade_in_flight(procs, echo_server, scheme) -> None:
    port = free_port()
    gf = procs.gostfast(
        "--grace",
        "30",
        "-L",
        f"{scheme}://127.0.0.1:{port}/127.0.0.1:{echo_server.port}?path=/ws",
        wait_ports=[port],
    )
    sock, key, rest = _half_upgrade(port, tls=scheme == "wss")
    wait_for(lambda: connections_by_pid(port, [gf.pid]).get(gf.pid), 20, "the accept", gf)
    gf.send_signal(signal.SIGTERM)
    wait_for(lambda: not is_listening(port), 20, "the listener to close", gf)
    # the drain counts the handshake in flight as a tunnel to wait for
    wait_for(lambda: "waiting up to 30s for 1 open" in output(gf), 20, "the drain", gf)
    assert _finish_and_echo(sock, key, rest) == b"served after the stop", output(gf)
    sock.close()
    assert gf.wait(30) == 0, output(gf)
    assert "Traceback" not in output(gf)


def test_reload_serves_an_upgrade_in_flight_on_the_old_worker(procs, tmp_path, echo_server) -> None:
    port = free_port()
    cfg = tmp_path / "gost.yaml"
    service = (
        f"services:\n- name: ws\n  addr: 127.0.0.1:{port}\n"
        f"  handler: {{type: forward}}\n  listener: {{type: ws, metadata: {{path: /ws}}}}\n"
        f"  forwarder: {{nodes: [{{name: t, addr: '127.0.0.1:{echo_server.port}'}}]}}\n"
    )
    cfg.write_text(service)
    # -R runs the supervisor with one worker: a reload retires that worker
    sup, (old,) = start_workers(procs, "--grace", "30", "-R", "1h", "-C", str(cfg), workers=None)
    sock, key, rest = _half_upgrade(port, tls=False)
    wait_for(lambda: connections_by_pid(port, [old]).get(old), 20, "the accept", sup)
    cfg.write_text(service + "# reloaded\n")
    sup.send_signal(signal.SIGHUP)
    wait_for(lambda: "old workers draining" in output(sup), 30, "the reload", sup)
    # the old worker closed its listener and waits for the handshake in flight
    wait_for(lambda: "waiting up to 30s for 1 open" in output(sup), 30, "the drain", sup)
    assert old in children(sup.pid)
    assert _finish_and_echo(sock, key, rest) == b"served after the stop", output(sup)
    sock.close()
    sup.send_signal(signal.SIGTERM)
    assert sup.wait(30) == 0, output(sup)


def test_sigterm_serves_an_upgrade_in_flight_on_a_listener_the_api_removed(
    procs, echo_server
) -> None:
    """A web-API change closes a listener mid-upgrade, then the stop comes: the drain
    waits for that upgrade too (it used to look at the running listeners only)."""
    port, api_port = free_port(), free_port()
    gf = procs.gostfast(
        "--grace", "30",
        "-L", f"ws://127.0.0.1:{port}/127.0.0.1:{echo_server.port}?path=/ws",
        f"-api=127.0.0.1:{api_port}",
        wait_ports=[port, api_port],
    )  # fmt: skip
    sock, key, rest = _half_upgrade(port, tls=False)
    wait_for(lambda: connections_by_pid(port, [gf.pid]).get(gf.pid), 20, "the accept", gf)
    Api(api_port, auth=None).ok("DELETE", "/config/services/service-0")
    wait_for(lambda: not is_listening(port), 20, "the listener to close", gf)
    gf.send_signal(signal.SIGTERM)
    wait_for(lambda: "waiting up to 30s for 1 open" in output(gf), 20, "the drain", gf)
    assert _finish_and_echo(sock, key, rest) == b"served after the stop", output(gf)
    sock.close()
    assert gf.wait(30) == 0, output(gf)
    assert "Traceback" not in output(gf)
