"""Issue 5's acceptance scenarios as written: real curl, real gostfast processes, a real HTTP server.

* curl -> ``-L http://:A -F http+wss://:B`` -> ``-L http+wss://:B`` -> HTTP server (plain and CONNECT),
  and 407 for a wrong password at either proxy;
* curl --socks5-hostname -> ``-L socks5://:A -F socks5+mwss://:B`` -> ``-L socks5+mwss://:B``, with users;
* the seed's port forward: server ``-L wss://:S/:K -L socks5://:K``, client forwarding into it;
* a three-hop chain ws -> mws -> wss (the wss hop runs TLS inside an smux stream inside a websocket).
"""

from __future__ import annotations

import pytest
from support import free_port, run_curl


def fetch_ok(http_server, *proxy_args: str) -> None:
    out = run_curl(*proxy_args, f"http://127.0.0.1:{http_server.port}/blob.bin")
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout == http_server.blob


@pytest.mark.parametrize("connect", [False, True], ids=["plain", "connect"])
def test_http_over_wss(procs, http_server, curl, connect):
    b, a = free_port(), free_port()
    procs.gostfast("-L", f"http+wss://u:p@127.0.0.1:{b}", wait_ports=[b])
    procs.gostfast(
        "-L",
        f"http://me:secret@127.0.0.1:{a}",
        "-F",
        f"http+wss://u:p@127.0.0.1:{b}",
        wait_ports=[a],
    )
    extra = ["-p"] if connect else []
    fetch_ok(http_server, *extra, "-x", f"http://me:secret@127.0.0.1:{a}")
    # wrong password at the local proxy: 407 with a Basic challenge
    out = run_curl(
        "-i",
        *extra,
        "-x",
        f"http://me:wrong@127.0.0.1:{a}",
        f"http://127.0.0.1:{http_server.port}/blob.bin",
    )
    head = out.stdout.split(b"\r\n\r\n", 1)[0]
    assert head.startswith(b"HTTP/1.1 407 Proxy Authentication Required"), head
    assert b'Proxy-Authenticate: Basic realm="gost"' in head


def test_wrong_password_at_the_far_proxy(procs, http_server, curl):
    b, a = free_port(), free_port()
    procs.gostfast("-L", f"http+wss://u:p@127.0.0.1:{b}", wait_ports=[b])
    procs.gostfast(
        "-L", f"http://127.0.0.1:{a}", "-F", f"http+wss://u:nope@127.0.0.1:{b}", wait_ports=[a]
    )
    out = run_curl(
        "-i", "-x", f"http://127.0.0.1:{a}", f"http://127.0.0.1:{http_server.port}/blob.bin"
    )
    # the chain's CONNECT got 407, so the local proxy cannot reach the target
    assert out.stdout.startswith(b"HTTP/1.1 503 Service Unavailable"), out.stdout[:200]


def test_socks5_over_mwss_with_users(procs, http_server, curl):
    b, a = free_port(), free_port()
    procs.gostfast("-L", f"socks5+mwss://u:p@127.0.0.1:{b}", wait_ports=[b])
    procs.gostfast(
        "-L",
        f"socks5://me:secret@127.0.0.1:{a}",
        "-F",
        f"socks5+mwss://u:p@127.0.0.1:{b}",
        wait_ports=[a],
    )
    for _ in range(3):  # one mwss session, three streams
        fetch_ok(http_server, "--socks5-hostname", f"127.0.0.1:{a}", "--proxy-user", "me:secret")
    out = run_curl(
        "--socks5-hostname",
        f"127.0.0.1:{a}",
        "--proxy-user",
        "me:wrong",
        f"http://127.0.0.1:{http_server.port}/blob.bin",
    )
    assert out.returncode != 0 and out.stdout == b""


def test_seed_port_forwarding_example(procs, http_server, curl):
    """Server: ``-L wss://:S/:K -L socks5://:K``; a client's socks5 rides a wss port forward to it."""
    s, k, a = free_port(), free_port(), free_port()
    procs.gostfast(
        "-L", f"wss://127.0.0.1:{s}/:{k}", "-L", f"socks5://127.0.0.1:{k}", wait_ports=[s, k]
    )
    procs.gostfast(
        "-L", f"tcp://127.0.0.1:{a}/:{k}", "-F", f"forward+wss://127.0.0.1:{s}", wait_ports=[a]
    )
    fetch_ok(http_server, "--socks5-hostname", f"127.0.0.1:{a}")


def test_three_hop_chain_ws_mws_wss(procs, http_server, curl):
    p1, p2, p3, a = free_port(), free_port(), free_port(), free_port()
    procs.gostfast("-L", f"ws://127.0.0.1:{p1}", wait_ports=[p1])
    procs.gostfast("-L", f"mws://127.0.0.1:{p2}", wait_ports=[p2])
    procs.gostfast("-L", f"wss://127.0.0.1:{p3}", wait_ports=[p3])
    client = procs.gostfast(
        "-L",
        f"http://127.0.0.1:{a}",
        "-F",
        f"ws://127.0.0.1:{p1}",
        "-F",
        f"mws://127.0.0.1:{p2}",
        "-F",
        f"wss://127.0.0.1:{p3}",
        wait_ports=[a],
    )
    for extra in ([], ["-p"]):
        fetch_ok(http_server, *extra, "-x", f"http://127.0.0.1:{a}")
    assert client.poll() is None
