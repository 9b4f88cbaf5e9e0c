"""docs/deploy.md's nginx in front of gostfast: TLS ends at nginx, websockets go on to ws and mws.

nginx (Debian's) runs the documented site configuration with a certificate
made here by a test CA; gostfast runs the documented gost.yaml, forwarding to
an echo target. Through them: gostfast's own wss and mwss dialers (verifying
nginx's certificate against the CA), the Go reference peer's ws and mws
clients, the ``websockets`` library and curl, every transfer compared byte
for byte. Admission judges the client nginx names in X-Forwarded-For, and a
client's own forwarding headers cannot change that name.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import socket
import ssl
import tempfile
import threading
from pathlib import Path

import pytest
from deploy_support import (
    Nginx,
    doc_block,
    fill,
    log_lines,
    pem_files,
    status_line,
    upgrade_request,
)
from proxy_support import TCPServer, echo
from support import Procs, echo_roundtrip, free_port, output, read_101, run_curl, wait_port

IO_TIMEOUT = 20.0
NAME = "tunnel.example.com"
BLOCKED = "127.0.0.3"  # the documented blocked network, as a loopback address a client can bind
KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455's sample key; its accept value below
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.fixture(scope="module")
def site():
    procs = Procs()
    target = TCPServer(echo)
    p = {k: free_port() for k in ("ws", "mws", "front")}
    work = Path(tempfile.mkdtemp(prefix="gostfast-deploy-nginx-"))
    pem = pem_files(work, NAME)
    gost_yaml = fill(
        doc_block("gost.yaml"),
        {
            "127.0.0.1:8080": f"127.0.0.1:{p['ws']}",
            "127.0.0.1:8081": f"127.0.0.1:{p['mws']}",
            "127.0.0.1:22": f"127.0.0.1:{target.port}",
            "203.0.113.0/24": BLOCKED,
        },
    )
    (work / "gost.yaml").write_text(gost_yaml)
    site_conf = fill(
        doc_block("nginx.conf"),
        {
            "server 127.0.0.1:8080;": f"server 127.0.0.1:{p['ws']};",
            "server 127.0.0.1:8081;": f"server 127.0.0.1:{p['mws']};",
            "listen 443 ssl;": f"listen 127.0.0.1:{p['front']} ssl;",
            "/etc/ssl/gostfast/fullchain.pem": str(pem["cert"]),
            "/etc/ssl/gostfast/privkey.pem": str(pem["key"]),
        },
    )
    nginx = None
    try:
        gost = procs.gostfast("-C", str(work / "gost.yaml"), wait_ports=[p["ws"], p["mws"]])
        nginx = Nginx(procs, work, site_conf, [p["front"]])
        yield {**p, "procs": procs, "gost": gost, "ca": pem["ca"], "target": target}
    finally:
        if nginx is not None:
            nginx.stop()
        procs.stop_all()
        target.close()
        shutil.rmtree(work, ignore_errors=True)


def _client_context(ca: Path) -> ssl.SSLContext:
    """A client context that verifies nginx's certificate against the test CA."""
    return ssl.create_default_context(cafile=str(ca))


def _roundtrips(port: int, sizes: list[int]) -> None:
    """Concurrent echoes of random data through ``port``, each compared byte for byte."""
    payloads = [os.urandom(n) for n in sizes]
    results: list[bytes | None] = [None] * len(sizes)

    def one(i: int) -> None:
        results[i] = echo_roundtrip(port, payloads[i], timeout=60)

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(sizes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for sent, got in zip(payloads, results, strict=True):
        assert got is not None and len(got) == len(sent)
        assert hashlib.sha256(got).digest() == hashlib.sha256(sent).digest()


def _gostfast_client(site, scheme: str, path: str) -> int:
    """A gostfast client: tcp entry -> forward+wss/mwss to nginx, the certificate verified."""
    entry = free_port()
    node = (
        f"forward+{scheme}://127.0.0.1:{site['front']}?path={path}&secure=true"
        f"&caFile={site['ca']}&serverName={NAME}"
    )
    site["procs"].gostfast("-L", f"tcp://127.0.0.1:{entry}/127.0.0.1:9", "-F", node)
    wait_port(entry)
    return entry


@pytest.mark.parametrize(("scheme", "path"), [("wss", "/ws"), ("mwss", "/mws")])
def test_gostfast_dialers_through_nginx_are_byte_exact(site, scheme, path):
    entry = _gostfast_client(site, scheme, path)
    _roundtrips(entry, [4 << 20, 1 << 20, 1 << 20, 1000])
    _roundtrips(entry, [1 << 20])  # a second round: mwss reuses its session


@pytest.mark.refpeer
@pytest.mark.parametrize(("mode", "path"), [("ws", "/ws"), ("mws", "/mws")])
def test_refpeer_clients_through_nginx_are_byte_exact(site, refpeer, mode, path):
    entry = free_port()
    proc = site["procs"].start(
        [refpeer, "client", "-listen", f"127.0.0.1:{entry}", "-mode", mode, "-insecure"]
        + ["-server", f"wss://127.0.0.1:{site['front']}{path}", "-host", NAME],
        wait_ports=[entry],
    )
    _roundtrips(entry, [4 << 20, 1 << 20, 1000])
    assert proc.poll() is None, output(proc)


def test_the_websockets_library_through_nginx_is_byte_exact(site):
    from websockets.asyncio.client import connect

    messages = [os.urandom(n) for n in (1, 125, 126, 65535, 65536, 1 << 20)]

    async def run() -> list[bytes]:
        got = []
        url = f"wss://{NAME}:{site['front']}/ws"
        async with connect(
            url,
            ssl=_client_context(site["ca"]),
            host="127.0.0.1",
            port=site["front"],
            server_hostname=NAME,
            max_size=None,
            close_timeout=5,
        ) as ws:
            for m in messages:
                await ws.send(m)
            want = sum(map(len, messages))
            while sum(map(len, got)) < want:
                got.append(await asyncio.wait_for(ws.recv(), IO_TIMEOUT))
        return got

    # the forward tunnel is a byte stream: the echo may come back in other message sizes
    assert b"".join(asyncio.run(run())) == b"".join(messages)


def _curl(site, path: str, *args: str) -> str:
    """What curl printed (``-i``: the head too) for https://NAME:front``path``."""
    out = run_curl(
        "--http1.1",
        "-i",
        "--cacert",
        str(site["ca"]),
        "--resolve",
        f"{NAME}:{site['front']}:127.0.0.1",
        *args,
        f"https://{NAME}:{site['front']}{path}",
    )
    return out.stdout.decode(errors="replace")


UPGRADE = [
    *("-H", "Connection: Upgrade", "-H", "Upgrade: websocket"),
    *("-H", f"Sec-WebSocket-Key: {KEY}", "-H", "Sec-WebSocket-Version: 13"),
]


@pytest.mark.usefixtures("curl")
def test_curl_sees_the_upgrade_and_gostfasts_answers_through_nginx(site):
    for path in ("/ws", "/mws"):
        # curl cannot speak websocket here: it prints the 101, then waits for its --max-time
        head = _curl(site, path, "-N", "--max-time", "3", *UPGRADE).split("\r\n\r\n")[0]
        assert head.startswith("HTTP/1.1 101 Switching Protocols"), head
        assert f"Sec-WebSocket-Accept: {ACCEPT}" in head, head
        # a plain GET on the path reaches gostfast, which refuses it as GOST does (400)
        assert _curl(site, path).startswith("HTTP/1.1 400 "), path
    assert _curl(site, "/elsewhere").startswith("HTTP/1.1 404 ")  # nginx's own answer


def _status_via_nginx(site, path: str, source: str, headers: dict[str, str]) -> bytes:
    """The status line nginx answers to an upgrade sent over TLS from ``source``."""
    raw = socket.create_connection(("127.0.0.1", site["front"]), IO_TIMEOUT, (source, 0))
    with _client_context(site["ca"]).wrap_socket(raw, server_hostname=NAME) as s:
        s.sendall(upgrade_request(NAME, path, headers))
        return status_line(s)


FORGED = {"X-Forwarded-For": "10.1.1.1", "X-Real-IP": "10.1.1.1", "CF-Connecting-IP": "10.1.1.1"}


@pytest.mark.parametrize("path", ["/ws", "/mws"])
def test_admission_judges_the_client_nginx_names_and_headers_cannot_forge_it(site, path):
    ok = b"HTTP/1.1 101 Switching Protocols"
    denied = b"HTTP/1.1 502 Bad Gateway"  # gostfast closed the upgrade unanswered
    assert _status_via_nginx(site, path, "127.0.0.1", {}) == ok
    assert _status_via_nginx(site, path, BLOCKED, {}) == denied
    # a blocked client naming another address in every header gostfast reads: still denied
    assert _status_via_nginx(site, path, BLOCKED, FORGED) == denied
    # an admitted client naming the blocked address: nginx replaced it, so admitted
    forged_blocked = {k: BLOCKED for k in FORGED}
    assert _status_via_nginx(site, path, "127.0.0.1", forged_blocked) == ok
    # the log names the client nginx forwarded, and nginx as the peer it came through
    scheme = path.strip("/")
    lines = log_lines(site["gost"], f"{scheme} {BLOCKED} (via 127.0.0.1:")
    assert lines and all(f"forwarded client {BLOCKED} is denied" in ln for ln in lines), lines
    assert not [ln for ln in output(site["gost"]).splitlines() if "10.1.1.1" in ln]


ADMITTED = "127.0.0.4"  # a client address of its own, so its log lines are its alone


def test_access_log_names_the_client_nginx_forwards_and_nginx_as_the_remote(site):
    """GOST's access line behind a proxy: ``client`` is the address nginx put in
    X-Forwarded-For (the real client), ``remote`` the TCP peer (nginx)."""
    from support import wsframe

    raw = socket.create_connection(("127.0.0.1", site["front"]), IO_TIMEOUT, (ADMITTED, 0))
    with _client_context(site["ca"]).wrap_socket(raw, server_hostname=NAME) as s:
        s.settimeout(IO_TIMEOUT)
        s.sendall(upgrade_request(NAME, "/ws", {}))
        rest = read_101(s, KEY)
        s.sendall(wsframe.build_frame(wsframe.OP_BINARY, b"logged", True, os.urandom(4)))
        parser = wsframe.FrameParser(False)
        got = b"".join(bytes(p) for _, p in parser.feed(rest))
        while got != b"logged":
            chunk = s.recv(4096)
            assert chunk, got
            got += b"".join(bytes(p) for op, p in parser.feed(chunk) if op == wsframe.OP_BINARY)
    lines = log_lines(site["gost"], f"client={ADMITTED} ")
    assert lines, output(site["gost"])[-3000:]
    assert all(" remote=127.0.0.1:" in ln for ln in lines), lines
    assert any(f"dst=127.0.0.1:{site['target'].port}" in ln for ln in lines), lines
    assert any("inputBytes=6 outputBytes=6" in ln for ln in lines), lines
