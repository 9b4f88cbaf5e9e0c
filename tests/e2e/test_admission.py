"""GOST's admission on a running gostfast: which address each check judges, with real sockets.

The TCP peer is judged as the connection is accepted, before a byte is read
or written (no HTTP answer, no TLS handshake); a websocket listener judges
the address a proxy named (CF-Connecting-IP / X-Forwarded-For / X-Real-IP)
in addition, after the upgrade request, never instead. Limiters key on the
TCP peer, so a header cannot choose a client's bucket. The proxied cases run
through a real nginx (Debian's), started here on loopback ports; nginx binds
its upstream connections to 127.0.0.2 where the test needs a distinct proxy
address.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import tempfile
import time
from pathlib import Path

import pytest
from deploy_support import Nginx, log_lines, status_line, upgrade_request
from proxy_support import TCPServer, connect, echo, recv_until_close
from support import Procs, connect_unique, free_port

IO_TIMEOUT = 10.0

CONFIG = """
services:
- {{name: ws-peer, addr: "127.0.0.1:{ws_peer}", admission: deny-local,
   handler: {{type: forward}}, listener: {{type: ws}}, forwarder: {{nodes: [{{name: t, addr: "{echo}"}}]}}}}
- {{name: wss-peer, addr: "127.0.0.1:{wss_peer}", admission: deny-local,
   handler: {{type: forward}}, listener: {{type: wss}}, forwarder: {{nodes: [{{name: t, addr: "{echo}"}}]}}}}
- {{name: tcp-peer, addr: "127.0.0.1:{tcp_peer}", admission: deny-local,
   handler: {{type: forward}}, listener: {{type: tcp}}, forwarder: {{nodes: [{{name: t, addr: "{echo}"}}]}}}}
- {{name: mws-fwd, addr: "127.0.0.1:{mws_fwd}", admission: deny-forwarded,
   handler: {{type: forward}}, listener: {{type: mws}}, forwarder: {{nodes: [{{name: t, addr: "{echo}"}}]}}}}
- {{name: ws-white, addr: "127.0.0.1:{ws_white}", admission: only-local,
   handler: {{type: forward}}, listener: {{type: ws}}, forwarder: {{nodes: [{{name: t, addr: "{echo}"}}]}}}}
- {{name: ws-behind, addr: "127.0.0.1:{ws_behind}", admission: deny-three,
   handler: {{type: forward}}, listener: {{type: ws}}, forwarder: {{nodes: [{{name: t, addr: "{echo}"}}]}}}}
- {{name: ws-proxy-denied, addr: "127.0.0.1:{ws_proxy_denied}", admission: deny-two,
   handler: {{type: forward}}, listener: {{type: ws}}, forwarder: {{nodes: [{{name: t, addr: "{echo}"}}]}}}}
- {{name: ws-rate, addr: "127.0.0.1:{ws_rate}", rlimiter: per-client,
   handler: {{type: forward}}, listener: {{type: ws}}, forwarder: {{nodes: [{{name: t, addr: "{echo}"}}]}}}}
admissions:
- {{name: deny-local, matchers: [127.0.0.1]}}
- {{name: deny-forwarded, matchers: [10.9.9.9]}}
- {{name: only-local, whitelist: true, matchers: [127.0.0.1]}}
- {{name: deny-three, matchers: [127.0.0.3]}}
- {{name: deny-two, matchers: [127.0.0.2]}}
rlimiters:
- {{name: per-client, limits: ["$$ 1"]}}
"""

# the http {} content; the main file around it is deploy_support.Nginx's
NGINX_CONF = """
  server {{
    listen 127.0.0.1:{front};
    location / {{
      proxy_pass http://127.0.0.1:{behind};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }}
  }}
  server {{
    listen 127.0.0.1:{front_bound};
    location / {{
      proxy_pass http://127.0.0.1:{proxy_denied};
      proxy_bind 127.0.0.2;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }}
  }}
"""

PORTS = ("ws_peer", "wss_peer", "tcp_peer", "mws_fwd", "ws_white", "ws_behind")
PORTS += ("ws_proxy_denied", "ws_rate", "front", "front_bound")


@pytest.fixture(scope="module")
def net():
    procs = Procs()
    echo_srv = TCPServer(echo)
    p = {k: free_port() for k in PORTS}
    work = Path(tempfile.mkdtemp(prefix="gostfast-admission-"))
    cfg = work / "gost.yaml"
    cfg.write_text(CONFIG.format(echo=f"127.0.0.1:{echo_srv.port}", **p))
    conf = NGINX_CONF.format(
        front=p["front"],
        behind=p["ws_behind"],
        front_bound=p["front_bound"],
        proxy_denied=p["ws_proxy_denied"],
    )
    nginx = None
    try:
        gost = procs.gostfast("-C", str(cfg), wait_ports=[p[k] for k in PORTS[:8]])
        nginx = Nginx(procs, work, conf, [p["front"], p["front_bound"]])
        yield {**p, "proc": gost, "echo_accepted": lambda: echo_srv.accepted}
    finally:
        if nginx is not None:
            nginx.stop()
        procs.stop_all()
        echo_srv.close()
        shutil.rmtree(work, ignore_errors=True)


def _upgrade_request(port: int, headers: dict[str, str]) -> bytes:
    return upgrade_request(f"127.0.0.1:{port}", "/ws", headers)


def _answer(s: socket.socket, request: bytes) -> bytes:
    """All the server wrote before it closed, after ``request``."""
    s.settimeout(IO_TIMEOUT)
    s.sendall(request)
    return recv_until_close(s)


def _log_lines(net, needle: str) -> list[str]:
    """The gostfast log lines holding ``needle``, once the process has written them."""
    return log_lines(net["proc"], needle, 5)


def _client_hello() -> bytes:
    """A real TLS ClientHello, as a wss client's first bytes."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_side=False)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


async def _ws_exchange(port: int, headers: dict[str, str], payload: bytes = b"through"):
    """Echo ``payload`` over a websocket opened with ``headers``; None when refused."""
    from websockets.asyncio.client import connect as ws_connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake

    try:
        async with ws_connect(
            f"ws://127.0.0.1:{port}/ws", additional_headers=headers, close_timeout=2
        ) as ws:
            await ws.send(payload)
            return await asyncio.wait_for(ws.recv(), IO_TIMEOUT)
    except (ConnectionClosed, InvalidHandshake, OSError):
        return None


def _exchange(port: int, headers: dict[str, str]):
    return asyncio.run(_ws_exchange(port, headers))


@pytest.mark.parametrize("service", ["ws_peer", "tcp_peer"])
def test_a_denied_tcp_peer_is_closed_at_accept_whatever_it_forwards(net, service):
    before = net["echo_accepted"]()
    with connect_unique(net[service], IO_TIMEOUT) as s:
        src = s.getsockname()[1]
        forged = {"X-Forwarded-For": "10.1.1.1", "X-Real-IP": "10.1.1.1"}
        assert _answer(s, _upgrade_request(net[service], forged)) == b""  # not even a 4xx
    lines = _log_lines(net, f"127.0.0.1:{src}: admission: client 127.0.0.1 is denied")
    assert len(lines) == 1, lines
    assert net["echo_accepted"]() == before  # nothing dialled


def test_a_denied_tcp_peer_gets_no_tls_handshake_on_wss(net):
    with connect_unique(net["wss_peer"], IO_TIMEOUT) as s:
        src = s.getsockname()[1]
        assert _answer(s, _client_hello()) == b""  # no ServerHello, no alert
    lines = _log_lines(net, f"127.0.0.1:{src}: admission: client 127.0.0.1 is denied")
    assert len(lines) == 1, lines


def test_a_forwarded_address_is_judged_after_the_upgrade_request(net):
    port = net["mws_fwd"]
    with connect_unique(port, IO_TIMEOUT) as s:
        src = s.getsockname()[1]
        denied = {"X-Forwarded-For": "10.9.9.9, 127.0.0.1"}
        assert _answer(s, _upgrade_request(port, denied)) == b""  # no 101
    lines = _log_lines(net, f"via 127.0.0.1:{src}): admission: forwarded client 10.9.9.9")
    assert len(lines) == 1, lines
    for header in ("CF-Connecting-IP", "X-Real-IP"):
        with connect(port) as s:
            assert _answer(s, _upgrade_request(port, {header: "10.9.9.9"})) == b""
    with connect(port) as s:  # the same peer, forwarding nothing denied: upgraded
        s.settimeout(IO_TIMEOUT)
        s.sendall(_upgrade_request(port, {"X-Forwarded-For": "10.1.1.1"}))
        assert s.recv(4096).startswith(b"HTTP/1.1 101 ")


def test_a_whitelist_must_admit_both_the_peer_and_the_forwarded_address(net):
    assert _exchange(net["ws_white"], {}) == b"through"
    assert _exchange(net["ws_white"], {"X-Forwarded-For": "127.0.0.1"}) == b"through"
    assert _exchange(net["ws_white"], {"X-Forwarded-For": "10.1.2.3"}) is None
    assert _exchange(net["ws_white"], {"X-Forwarded-For": "not-an-ip"}) == b"through"


def _via_nginx(port: int, source: str, headers: dict[str, str]) -> bytes:
    """What nginx answers an upgrade sent from ``source``: the status line."""
    with socket.create_connection(("127.0.0.1", port), IO_TIMEOUT, (source, 0)) as s:
        s.sendall(_upgrade_request(port, headers))
        s.settimeout(IO_TIMEOUT)
        return status_line(s)


def test_behind_nginx_the_address_it_forwards_is_judged(net):
    front = net["front"]
    assert _via_nginx(front, "127.0.0.1", {}) == b"HTTP/1.1 101 Switching Protocols"
    # nginx names 127.0.0.3 in X-Forwarded-For: denied after the upgrade, nginx says 502
    assert _via_nginx(front, "127.0.0.3", {}) == b"HTTP/1.1 502 Bad Gateway"
    assert _log_lines(net, "admission: forwarded client 127.0.0.3 is denied")


def test_behind_nginx_appending_to_x_forwarded_for_lets_a_client_choose_its_address(net):
    # $proxy_add_x_forwarded_for keeps the client's own entry first, and the first entry
    # is the one judged (GOST's reading): why docs/deploy.md sets the header instead
    forged = {"X-Forwarded-For": "10.1.1.1"}
    assert _via_nginx(net["front"], "127.0.0.3", forged) == b"HTTP/1.1 101 Switching Protocols"


def test_behind_nginx_a_denied_proxy_address_is_closed_at_accept(net):
    # nginx connects from 127.0.0.2, which the service denies: whatever the client sends
    forged = {"X-Forwarded-For": "10.1.1.1"}
    assert _via_nginx(net["front_bound"], "127.0.0.1", forged) == b"HTTP/1.1 502 Bad Gateway"
    assert _log_lines(net, "admission: client 127.0.0.2 is denied")


def test_per_client_rate_limit_keys_on_the_tcp_peer_not_on_headers(net):
    time.sleep(2.5)  # a full bucket (1/s, burst 2) for 127.0.0.1
    started = time.monotonic()
    served = sum(
        _exchange(net["ws_rate"], {"X-Forwarded-For": f"10.0.0.{i}"}) == b"through"
        for i in range(1, 9)
    )
    elapsed = time.monotonic() - started
    # one bucket for all eight: its burst of 2 plus what refilled meanwhile, not 8
    assert 1 <= served <= 2 + int(elapsed) + 1, (served, elapsed)
