"""Every transport, every direction, carrying a real HTTP download to a real HTTP server.

An echo target reflects the client's own bytes, so a tunnel that forwards the
raw websocket instead of running smux (or that swaps directions) can still
look right against it. An HTTP server answers with bytes of its own, so these
tests see a broken framing layer at once. Topologies, each with curl as the
client and ``http.server`` as the target:

* gostfast client -> refpeer server (gorilla/websocket, xtaci/smux)
* refpeer client  -> gostfast server
* gostfast client -> gostfast server
"""

from __future__ import annotations

import subprocess

import pytest
from support import free_port

# (scheme, smux version or None)
TRANSPORTS = [("ws", None), ("wss", None), ("mws", "1"), ("mws", "2"), ("mwss", "1"), ("mwss", "2")]


def _refpeer_mode(scheme: str) -> str:
    return "mws" if scheme.startswith("mws") else "ws"


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory):
    from gostfast.tlsutil.selfsigned import generate

    cert, key = generate()
    d = tmp_path_factory.mktemp("tls")
    (d / "cert.pem").write_bytes(cert)
    (d / "key.pem").write_bytes(key)
    return f"{d / 'cert.pem'},{d / 'key.pem'}"


def _query(version):
    return f"?mux.version={version}" if version else ""


def _start_server(procs, kind, scheme, version, web_port, refpeer, tls_pair) -> int:
    port = free_port()
    if kind == "refpeer":
        args = [
            refpeer,
            "server",
            "-listen",
            f"127.0.0.1:{port}",
            "-mode",
            _refpeer_mode(scheme),
            "-target",
            f"127.0.0.1:{web_port}",
        ]
        if version:
            args += ["-smux-version", version]
        if scheme.endswith("ss"):
            args += ["-tls", tls_pair]
        procs.start(args, wait_ports=[port])
    else:
        procs.gostfast(
            "-L",
            f"{scheme}://127.0.0.1:{port}/127.0.0.1:{web_port}{_query(version)}",
            wait_ports=[port],
        )
    return port


def _start_client(procs, kind, scheme, version, server_port, refpeer) -> int:
    port = free_port()
    if kind == "refpeer":
        url_scheme = "wss" if scheme.endswith("ss") else "ws"
        args = [
            refpeer,
            "client",
            "-listen",
            f"127.0.0.1:{port}",
            "-server",
            f"{url_scheme}://127.0.0.1:{server_port}/ws",
            "-mode",
            _refpeer_mode(scheme),
        ]
        if version:
            args += ["-smux-version", version]
        if url_scheme == "wss":
            args += ["-insecure"]
        procs.start(args, wait_ports=[port])
    else:
        procs.gostfast(
            "-L",
            f"tcp://127.0.0.1:{port}/127.0.0.1:1",
            "-F",
            f"forward+{scheme}://127.0.0.1:{server_port}{_query(version)}",
            wait_ports=[port],
        )
    return port


@pytest.mark.parametrize(
    "client,server", [("gostfast", "refpeer"), ("refpeer", "gostfast"), ("gostfast", "gostfast")]
)
@pytest.mark.parametrize("scheme,version", TRANSPORTS, ids=[f"{s}{v or ''}" for s, v in TRANSPORTS])
def test_http_download_through_tunnel(
    procs, http_server, curl, refpeer, tls_pair, scheme, version, client, server
):
    sport = _start_server(procs, server, scheme, version, http_server.port, refpeer, tls_pair)
    cport = _start_client(procs, client, scheme, version, sport, refpeer)
    url = f"http://127.0.0.1:{cport}/blob.bin"
    # three downloads: the mws ones share one session, so later ones reuse it
    for _ in range(3):
        out = subprocess.run(
            [curl, "-sS", "--max-time", "20", url], capture_output=True, timeout=30
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout == http_server.blob
