"""The HTTP proxy end to end: curl and raw sockets against gostfast's http handler,
and gostfast's http connector in chains."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import subprocess
import sys
import time

import pytest
from proxy_support import (
    Origin,
    Scripted,
    TCPServer,
    connect,
    echo,
    is_closed,
    recv_exactly,
    recv_head,
    recv_until_close,
)
from support import Procs, free_port, run_curl

CONNECT_OK = b"HTTP/1.1 200 Connection established\r\nProxy-Agent: gost/3.0\r\n\r\n"
CONNECT_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nProxy-Agent: gost/3.0\r\n\r\n"
)
FORWARD_503 = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"
AUTH_407 = (
    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
    b"Connection: close\r\n"
    b'Proxy-Authenticate: Basic realm="gost"\r\n\r\n'
)
AUTH_407_KEEPALIVE = (
    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
    b"Connection: close\r\n"
    b'Proxy-Authenticate: Basic realm="gost"\r\n'
    b"Proxy-Connection: close\r\n\r\n"
)

pytestmark = pytest.mark.usefixtures("curl")  # skips where curl is missing


def _silent(c: socket.socket) -> None:
    """Reads the request and never answers."""
    while c.recv(65536):
        pass


def _upgrader(c: socket.socket) -> None:
    """Answers any request with 101 (Upgrade: echo) plus a greeting, then echoes."""
    head = b""
    while b"\r\n\r\n" not in head:
        b = c.recv(4096)
        if not b:
            return
        head += b
    c.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nWELCOME"
    )
    echo(c)


@pytest.fixture(scope="module")
def net():
    procs = Procs()
    origin = Origin(os.urandom(3 * 1024 * 1024 + 17))
    echo_srv, silent_srv, up_srv = TCPServer(echo), TCPServer(_silent), TCPServer(_upgrader)
    p = {k: free_port() for k in ("h", "ha", "hx", "c", "ca", "cbad")}
    starts = [
        (
            [
                "-L",
                f"http://127.0.0.1:{p['h']}",
                "-L",
                f"http://u:p@127.0.0.1:{p['ha']}",
                "-L",
                f"http://127.0.0.1:{p['hx']}?proxyAgent=foo/1.0&readTimeout=1s&idleTimeout=1s",
            ],
            ["h", "ha", "hx"],
        ),
        (["-L", f"http://127.0.0.1:{p['c']}", "-F", f"http://127.0.0.1:{p['h']}"], ["c"]),
        (["-L", f"http://127.0.0.1:{p['ca']}", "-F", f"http://u:p@127.0.0.1:{p['ha']}"], ["ca"]),
        (
            [
                "-L",
                f"tcp://127.0.0.1:{p['cbad']}/127.0.0.1:{echo_srv.port}",
                "-F",
                f"http://u:bad@127.0.0.1:{p['ha']}",
            ],
            ["cbad"],
        ),
    ]
    try:
        procs.start_gostfasts(starts, p)
        yield {
            **p,
            "origin": origin,
            "echo": echo_srv.port,
            "silent": silent_srv.port,
            "upgrade": up_srv.port,
            "dead": free_port(),
        }
    finally:
        procs.stop_all()
        origin.close()
        for srv in (echo_srv, silent_srv, up_srv):
            srv.close()


def blob_url(net, path: str = "/blob.bin") -> str:
    return f"http://127.0.0.1:{net['origin'].port}{path}"


def raw_exchange(port: int, data: bytes) -> bytes:
    with connect(port) as s:
        s.sendall(data)
        return recv_until_close(s)


# ----------------------------------------------------------------- with curl


def test_plain_http_download(net):
    out = run_curl("-x", f"http://127.0.0.1:{net['h']}", blob_url(net))
    assert out.returncode == 0, out.stderr
    assert out.stdout == net["origin"].blob


def test_connect_download(net):
    out = run_curl("-p", "-x", f"http://127.0.0.1:{net['h']}", blob_url(net))
    assert out.returncode == 0, out.stderr
    assert out.stdout == net["origin"].blob


def test_keep_alive_serves_several_requests_on_one_connection(net, tmp_path):
    out = run_curl(
        "-v",
        "-x",
        f"http://127.0.0.1:{net['h']}",
        blob_url(net),
        blob_url(net, "/two"),
        blob_url(net, "/chunked"),
        blob_url(net, "/three"),
        "-o",
        str(tmp_path / "1"),
        "-o",
        str(tmp_path / "2"),
        "-o",
        str(tmp_path / "3"),
        "-o",
        str(tmp_path / "4"),
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr.count(b"Re-using existing connection") == 3, out.stderr.decode()
    assert (tmp_path / "1").read_bytes() == net["origin"].blob
    assert (tmp_path / "2").read_bytes() == b"hello /two"
    assert (tmp_path / "3").read_bytes() == b"first;second;third"
    assert (tmp_path / "4").read_bytes() == b"hello /three"


def test_head_request_has_no_body(net):
    out = run_curl("-I", "-x", f"http://127.0.0.1:{net['h']}", blob_url(net))
    assert out.returncode == 0, out.stderr
    assert b"Content-Length: 12345" in out.stdout


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_post_body_streams_through(net, tmp_path, chunked):
    data = os.urandom(2_500_000)
    f = tmp_path / "body"
    f.write_bytes(data)
    extra = ["-H", "Transfer-Encoding: chunked"] if chunked else []
    out = run_curl(
        "-x",
        f"http://127.0.0.1:{net['h']}",
        "--data-binary",
        f"@{f}",
        *extra,
        blob_url(net, "/post"),
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode() == f"{len(data)} {hashlib.sha256(data).hexdigest()}"


def test_auth_with_curl(net):
    ok = run_curl("-U", "u:p", "-x", f"http://127.0.0.1:{net['ha']}", blob_url(net))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == net["origin"].blob
    tunnel = run_curl("-p", "-U", "u:p", "-x", f"http://127.0.0.1:{net['ha']}", blob_url(net, "/t"))
    assert tunnel.returncode == 0, tunnel.stderr
    assert tunnel.stdout == b"hello /t"
    for cred in (["-U", "u:wrong"], ["-U", "x:p"], []):
        bad = run_curl(
            *cred,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-x",
            f"http://127.0.0.1:{net['ha']}",
            blob_url(net),
        )
        assert bad.stdout == b"407", (cred, bad)


def test_chain_http_over_http(net):
    for extra in ([], ["-p"]):
        out = run_curl(*extra, "-x", f"http://127.0.0.1:{net['c']}", blob_url(net))
        assert out.returncode == 0, out.stderr
        assert out.stdout == net["origin"].blob


def test_chain_with_connector_auth(net):
    for extra in ([], ["-p"]):
        out = run_curl(*extra, "-x", f"http://127.0.0.1:{net['ca']}", blob_url(net))
        assert out.returncode == 0, out.stderr
        assert out.stdout == net["origin"].blob


def test_chain_with_wrong_connector_auth_closes_client(net):
    with connect(net["cbad"]) as s:
        s.sendall(b"hello")
        assert recv_until_close(s) == b""


# ---------------------------------------------------------------- raw CONNECT


def test_connect_answer_is_exact_and_pipelined_bytes_survive(net):
    with connect(net["h"]) as s:
        s.sendall(
            f"CONNECT 127.0.0.1:{net['echo']} HTTP/1.1\r\nHost: 127.0.0.1:{net['echo']}\r\n\r\n".encode()
            + b"pipelined right behind the head"
        )
        assert recv_exactly(s, len(CONNECT_OK)) == CONNECT_OK
        assert recv_exactly(s, 31) == b"pipelined right behind the head"
        s.sendall(b"more")
        assert recv_exactly(s, 4) == b"more"
        s.shutdown(socket.SHUT_WR)
        assert recv_until_close(s) == b""


def test_connect_tunnel_silent_both_ways_ends_after_idle_timeout(net):
    """GOST's idleTimeout on CONNECT tunnels (``hx`` has 1 s): once neither side has
    sent anything for that long, the tunnel ends; until then it carries bytes."""
    with connect(net["hx"]) as s:
        s.sendall(f"CONNECT 127.0.0.1:{net['echo']} HTTP/1.1\r\n\r\n".encode())
        assert recv_head(s) == CONNECT_OK.replace(b"gost/3.0", b"foo/1.0")
        for _ in range(3):  # activity more often than the timeout keeps it up
            s.sendall(b"beat")
            assert recv_exactly(s, 4) == b"beat"
            time.sleep(0.5)
        s.settimeout(5)
        assert recv_until_close(s) == b""


def test_connect_dial_failure_is_503(net):
    got = raw_exchange(net["h"], f"CONNECT 127.0.0.1:{net['dead']} HTTP/1.1\r\n\r\n".encode())
    assert got == CONNECT_503


def test_proxy_agent_option(net):
    with connect(net["hx"]) as s:
        s.sendall(f"CONNECT 127.0.0.1:{net['echo']} HTTP/1.1\r\n\r\n".encode())
        assert (
            recv_head(s) == b"HTTP/1.1 200 Connection established\r\nProxy-Agent: foo/1.0\r\n\r\n"
        )
    got = raw_exchange(net["hx"], f"CONNECT 127.0.0.1:{net['dead']} HTTP/1.1\r\n\r\n".encode())
    assert got == CONNECT_503.replace(b"gost/3.0", b"foo/1.0")


# ------------------------------------------------------------- raw forwarding


def test_forwarded_request_is_rewritten(net):
    req = (
        f"GET {blob_url(net, '/headers')}?q=1 HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{net['origin'].port}\r\n"
        "Proxy-Authorization: Basic dTpw\r\n"
        "Proxy-Connection: keep-alive\r\n"
        "Connection: keep-alive, X-Hop\r\n"
        "Keep-Alive: timeout=5\r\n"
        "X-Hop: drop me\r\n"
        "X-Custom: keep me\r\n"
        "\r\n"
    ).encode()
    with connect(net["h"]) as s:
        s.sendall(req)
        head = recv_head(s)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        seen = recv_exactly(s, length).decode().lower()
    assert seen.startswith("get /headers?q=1 http/1.1\n")
    assert f"host: 127.0.0.1:{net['origin'].port}\n" in seen
    assert "x-custom: keep me\n" in seen
    assert "connection: close\n" in seen
    for gone in ("proxy-authorization", "proxy-connection", "keep-alive", "x-hop"):
        assert gone + ":" not in seen, seen


def test_chunked_response_passes_byte_for_byte_and_connection_stays(net):
    with connect(net["h"]) as s:
        s.sendall(f"GET {blob_url(net, '/chunked')} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = recv_head(s)
        assert b"Transfer-Encoding: chunked\r\n" in head
        body = b"6\r\nfirst;\r\n7\r\nsecond;\r\n5\r\nthird\r\n0\r\nX-Trailer: yes\r\n\r\n"
        assert recv_exactly(s, len(body)) == body
        s.sendall(f"GET {blob_url(net, '/again')} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = recv_head(s)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert recv_exactly(s, 12) == b"hello /again"


def test_http10_client_gets_unchunked_body_and_close(net):
    got = raw_exchange(net["h"], f"GET {blob_url(net, '/chunked')} HTTP/1.0\r\n\r\n".encode())
    head, _, rest = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 OK\r\n")
    assert b"Transfer-Encoding" not in head and b"Connection: close" in head
    assert rest == b"first;second;third"


def test_response_without_length_ends_with_the_connection(net):
    got = raw_exchange(
        net["h"], f"GET {blob_url(net, '/until-close')} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    )
    head, _, rest = got.partition(b"\r\n\r\n")
    assert b"Connection: close" in head
    assert rest == b"body ends at close"


def test_upgrade_is_spliced(net):
    with connect(net["h"]) as s:
        s.sendall(
            f"GET http://127.0.0.1:{net['upgrade']}/ws HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{net['upgrade']}\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n".encode()
        )
        head = recv_head(s)
        assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        assert b"Upgrade: echo\r\n" in head
        assert recv_exactly(s, 7) == b"WELCOME"
        s.sendall(b"raw bytes now")
        assert recv_exactly(s, 13) == b"raw bytes now"


def test_forward_dial_failure_is_503(net):
    got = raw_exchange(
        net["h"], f"GET http://127.0.0.1:{net['dead']}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    )
    assert got == FORWARD_503


def test_response_header_timeout(net):
    t0 = time.monotonic()
    got = raw_exchange(
        net["hx"], f"GET http://127.0.0.1:{net['silent']}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    )
    # raw_exchange reads with a 10 s socket timeout, below the 15 s default: a 503 at all
    # means responseHeaderTimeout answered, and not before its 1 s
    assert got == FORWARD_503
    assert time.monotonic() - t0 > 0.8


# --------------------------------------------------------------- auth, errors


def test_407_exact_bytes(net):
    url = blob_url(net)
    assert raw_exchange(net["ha"], f"GET {url} HTTP/1.1\r\nHost: x\r\n\r\n".encode()) == AUTH_407
    wrong = base64.b64encode(b"u:wrong").decode()
    got = raw_exchange(
        net["ha"],
        f"GET {url} HTTP/1.1\r\nProxy-Authorization: Basic {wrong}\r\nProxy-Connection: keep-alive\r\n\r\n".encode(),
    )
    assert got == AUTH_407_KEEPALIVE
    got = raw_exchange(net["ha"], f"CONNECT 127.0.0.1:{net['echo']} HTTP/1.1\r\n\r\n".encode())
    assert got == AUTH_407


def test_connect_with_auth_raw(net):
    good = base64.b64encode(b"u:p").decode()
    with connect(net["ha"]) as s:
        s.sendall(
            f"CONNECT 127.0.0.1:{net['echo']} HTTP/1.1\r\nProxy-Authorization: Basic {good}\r\n\r\nhi".encode()
        )
        assert recv_exactly(s, len(CONNECT_OK) + 2) == CONNECT_OK + b"hi"


@pytest.mark.parametrize(
    "payload",
    [
        b"hello\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",  # origin-form: not a proxy request
        b"GET https://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"GET ftp://example.com/ HTTP/1.1\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET http://example.com/ HTTP/1.1\r\nBad Header\r\n\r\n",
        b"GET http://example.com/ HTTP/1.1\r\n folded: x\r\n\r\n",
        b"GET http://example.com/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"GET http://ex:99999/ HTTP/1.1\r\n\r\n",
        b"\x16\x03\x01\x00\x05hello\r\n\r\n",  # a TLS record
        b"GET http://example.com/ HTTP/1.1\r\nHost: x\r\n",  # cut short, then EOF
    ],
    ids=[
        "garbage",
        "origin-form",
        "https",
        "ftp",
        "pri",
        "header",
        "folding",
        "te",
        "port",
        "tls",
        "truncated",
    ],
)
def test_bad_requests_get_400_and_close(net, payload):
    with connect(net["h"]) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        assert recv_until_close(s) == BAD_REQUEST
    out = run_curl("-x", f"http://127.0.0.1:{net['h']}", blob_url(net, "/after"))
    assert out.stdout == b"hello /after"


def test_oversized_head_gets_400(net):
    with connect(net["h"]) as s:
        s.sendall(b"GET http://example.com/ HTTP/1.1\r\nX: " + b"a" * 70_000)
        assert recv_until_close(s) == BAD_REQUEST


def test_udp_over_http_is_refused(net):
    got = raw_exchange(net["h"], b"CONNECT 127.0.0.1:53 HTTP/1.1\r\nX-Gost-Protocol: udp\r\n\r\n")
    assert got == b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"


def test_client_that_closes_at_once_is_fine(net):
    with connect(net["h"]) as s:
        s.shutdown(socket.SHUT_WR)
        assert is_closed(s)


@pytest.mark.parametrize(
    "option",
    [
        "udp=true",
    ],
)
def test_unsupported_options_are_config_errors(option):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gostfast",
            "check",
            "-L",
            f"http://127.0.0.1:{free_port()}?{option}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2, out
    key = option.split("=")[0].lower()
    assert f"option '{key}' is not supported by gostfast yet" in out.stderr, out.stderr


def test_yaml_options_header_realm_agent(procs, tmp_path):
    port, dead = free_port(), free_port()
    cfg = tmp_path / "gost.yaml"
    cfg.write_text(
        f"""
services:
- name: proxy
  addr: 127.0.0.1:{port}
  handler:
    type: http
    auth: {{username: u, password: p}}
    metadata:
      authBasicRealm: inner
      proxyAgent: agent/9
      header: {{X-Served-By: gostfast, a-first: "1"}}
  listener: {{type: tcp}}
"""
    )
    procs.gostfast("-C", str(cfg), wait_ports=[port])
    got = raw_exchange(port, b"GET http://example.com/ HTTP/1.1\r\n\r\n")
    assert got == AUTH_407.replace(b'realm="gost"', b'realm="inner"')
    good = base64.b64encode(b"u:p").decode()
    got = raw_exchange(
        port, f"GET / HTTP/1.1\r\nProxy-Authorization: Basic {good}\r\n\r\n".encode()
    )
    assert (
        got
        == b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nA-First: 1\r\nX-Served-By: gostfast\r\n\r\n"
    )
    got = raw_exchange(
        port,
        f"CONNECT 127.0.0.1:{dead} HTTP/1.1\r\nProxy-Authorization: Basic {good}\r\n\r\n".encode(),
    )
    assert got == (
        b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
        b"A-First: 1\r\nProxy-Agent: agent/9\r\nX-Served-By: gostfast\r\n\r\n"
    )


# ------------------------------------------------------------ connector wire


def test_connector_request_bytes_and_bytes_after_the_answer(procs):
    expected = (
        b"CONNECT example.com:443 HTTP/1.1\r\n"
        b"Host: example.com:443\r\n"
        b"User-Agent: Go-http-client/1.1\r\n"
        b"Proxy-Authorization: Basic dXNlcjpwYXNz\r\n"
        b"Proxy-Connection: keep-alive\r\n\r\n"
    )
    fake = Scripted([(len(expected), b"HTTP/1.1 200 OK\r\n\r\nEXTRA")])
    port = free_port()
    try:
        procs.gostfast(
            "-L",
            f"tcp://127.0.0.1:{port}/example.com:443",
            "-F",
            f"http://user:pass@127.0.0.1:{fake.port}",
            wait_ports=[port],
        )
        with connect(port) as s:
            assert recv_exactly(s, 5) == b"EXTRA"  # sent by the proxy right behind its head
            s.sendall(b"ping")
            assert recv_exactly(s, 4) == b"ping"
        assert bytes(fake.received) == expected
    finally:
        fake.close()


def test_connector_non_200_closes_client(procs):
    fake = Scripted([(20, b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")])
    port = free_port()
    try:
        procs.gostfast(
            "-L",
            f"tcp://127.0.0.1:{port}/example.com:80",
            "-F",
            f"http://127.0.0.1:{fake.port}",
            wait_ports=[port],
        )
        with connect(port) as s:
            assert recv_until_close(s) == b""
    finally:
        fake.close()


def _code(port: int, url: str, *cred: str) -> bytes:
    out = run_curl(
        *cred, "-o", "/dev/null", "-w", "%{http_code}", "-x", f"http://127.0.0.1:{port}", url
    )
    return out.stdout


def test_authers_as_gost(net, tmp_path):
    """GOST's auth rules: the users of auther + authers; the inline auth is then not used;
    an auther with no users refuses everyone (it does not open the proxy)."""
    ports = {k: free_port() for k in ("two", "empty")}
    cfg = tmp_path / "gost.yaml"
    cfg.write_text(
        "authers:\n"
        "- {name: a, auths: [{username: ua, password: pa}]}\n"
        "- {name: b, auths: [{username: ub, password: pb}]}\n"
        "- {name: nobody}\n"
        "services:\n"
        f"- {{addr: '127.0.0.1:{ports['two']}', handler: {{type: http, auther: a, authers: [b],"
        " auth: {username: inline, password: pi}}}\n"
        f"- {{addr: '127.0.0.1:{ports['empty']}', handler: {{type: http, auther: nobody}}}}\n"
    )
    procs = Procs()
    try:
        procs.gostfast("-C", str(cfg), wait_ports=list(ports.values()))
        url = blob_url(net)
        assert _code(ports["two"], url, "-U", "ua:pa") == b"200"
        assert _code(ports["two"], url, "-U", "ub:pb") == b"200"
        assert _code(ports["two"], url, "-U", "inline:pi") == b"407"
        assert _code(ports["two"], url) == b"407"
        assert _code(ports["empty"], url) == b"407"
        assert _code(ports["empty"], url, "-U", "any:thing") == b"407"
    finally:
        procs.stop_all()


def test_service_dial_timeout_and_ignore_chain(net):
    """GOST's service metadata: dialTimeout bounds a dial through the chain (the hop
    here never answers its CONNECT), ignoreChain dials directly without the chain."""
    ports = {"quick": free_port(), "direct": free_port()}
    silent_hop = f"http://127.0.0.1:{net['silent']}"
    procs = Procs()
    try:
        procs.start_gostfasts(
            [
                (
                    ["-L", f"http://127.0.0.1:{ports['quick']}?dialTimeout=1s", "-F", silent_hop],
                    ["quick"],
                ),
                (
                    [
                        "-L",
                        f"http://127.0.0.1:{ports['direct']}?ignoreChain=true",
                        "-F",
                        silent_hop,
                    ],
                    ["direct"],
                ),
            ],
            ports,
        )
        t0 = time.monotonic()
        got = raw_exchange(
            ports["quick"], f"CONNECT 127.0.0.1:{net['echo']} HTTP/1.1\r\n\r\n".encode()
        )
        elapsed = time.monotonic() - t0
        assert got == CONNECT_503
        # the exchange's 10 s socket timeout is below the 15 s default: the 503 came from
        # the configured 1 s, and not early
        assert elapsed >= 0.8, elapsed
        out = run_curl("-x", f"http://127.0.0.1:{ports['direct']}", blob_url(net))
        assert out.returncode == 0, out.stderr
        assert out.stdout == net["origin"].blob
    finally:
        procs.stop_all()
