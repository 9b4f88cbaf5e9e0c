"""GOST's probe resistance on a running gostfast http proxy with users.

A failed log-in gets the decoy of ``probeResist`` instead of 407, unless the
request's host is a ``knock`` name; a good log-in is served as always.
"""

from __future__ import annotations

import base64
import subprocess

import pytest
from proxy_support import (
    TCPServer,
    connect,
    echo,
    recv_exactly,
    recv_head,
    recv_until_close,
    serve_requests,
)
from support import GOSTFAST, Procs, free_port

PAGE = b"<html>just a web site</html>"


def _site(c) -> None:
    serve_requests(
        c,
        lambda head: (
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Site: yes\r\n\r\n" % len(PAGE) + PAGE
        ),
    )


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    procs = Procs()
    site = TCPServer(_site)
    target = TCPServer(echo)
    page = tmp_path_factory.mktemp("pr") / "index.html"
    page.write_bytes(PAGE)
    p = {k: free_port() for k in ("code", "web", "host", "file")}
    auth = "u:p@"
    starts = [
        (
            [
                "-L",
                f"http://{auth}127.0.0.1:{p['code']}?probeResist=code:404&knock=secret.test",
                "-L",
                f"http://{auth}127.0.0.1:{p['web']}?probeResist=web:127.0.0.1:{site.port}/",
                "-L",
                f"http://{auth}127.0.0.1:{p['host']}?probeResist=host:127.0.0.1:{site.port}",
                "-L",
                f"http://{auth}127.0.0.1:{p['file']}?probeResist=file:{page}",
            ],
            ["code", "web", "host", "file"],
        )
    ]
    try:
        procs.start_gostfasts(starts, p)
        yield {**p, "target": target.port}
    finally:
        procs.stop_all()
        site.close()
        target.close()


def _ask(port: int, first_line: str, extra: str = "") -> bytes:
    with connect(port) as s:
        s.sendall(f"{first_line}\r\nHost: x\r\n{extra}\r\n".encode())
        return recv_until_close(s)


def test_code_decoy_and_knock(net):
    assert _ask(net["code"], "GET http://example.com/ HTTP/1.1") == (
        b"HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n"
    )
    knocked = _ask(net["code"], "CONNECT secret.test:443 HTTP/1.1")
    assert knocked.startswith(b"HTTP/1.1 407 Proxy Authentication Required\r\n")
    good = "Proxy-Authorization: Basic " + base64.b64encode(b"u:p").decode() + "\r\n"
    with connect(net["code"]) as s:  # a good log-in is served
        s.sendall(f"CONNECT 127.0.0.1:{net['target']} HTTP/1.1\r\nHost: x\r\n{good}\r\n".encode())
        assert recv_head(s).startswith(b"HTTP/1.1 200 Connection established")


def test_web_decoy_is_the_page(net):
    got = _ask(net["web"], "GET / HTTP/1.1")  # a scanner's plain request, too
    assert got.startswith(b"HTTP/1.1 200 OK\r\n") and b"X-Site: yes" in got
    assert got.endswith(PAGE)


def test_host_decoy_sends_the_request_on(net):
    """The connection is joined to the web server behind, which keeps it open."""
    with connect(net["host"]) as s:
        s.sendall(b"GET /whatever HTTP/1.1\r\nHost: x\r\n\r\n")
        head = recv_head(s)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"X-Site: yes" in head
        assert recv_exactly(s, len(PAGE)) == PAGE


def test_file_decoy(net):
    got = _ask(net["file"], "GET http://example.com/ HTTP/1.1")
    head, _, rest = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Type: text/html" in head and rest == PAGE


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("bogus:1", "expected TYPE:VALUE with TYPE one of code, web, host, file"),
        ("code:abc", "code: expected an HTTP status"),
        ("web:https://example.com", "web: https pages are not supported by gostfast yet"),
    ],
)
def test_bad_probe_resist_is_a_config_error(value, message):
    out = subprocess.run(
        [*GOSTFAST, "check", "-L", f"http://u:p@127.0.0.1:{free_port()}?probeResist={value}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert "probeResist" in out.stderr and message in out.stderr, out.stderr
