"""Pure helpers of the proxy handlers/connectors: Go-formatted heads, auth, framing."""

from __future__ import annotations

import base64

import pytest

from gostfast import registry

# Register every component in the CLI's order before importing component modules
# directly (other tests compare the registry's order with the CLI's messages).
registry.load_builtins()

from gostfast.config.model import Auth  # noqa: E402
from gostfast.connector.http import build_connect  # noqa: E402
from gostfast.connector.relay import build_request as relay_request  # noqa: E402
from gostfast.connector.socks import _socks4a_request  # noqa: E402
from gostfast.errors import PEER_FAULTS  # noqa: E402
from gostfast.proto import http1  # noqa: E402
from gostfast.proto import http1_body as body  # noqa: E402
from gostfast.proto.errors import AddressError  # noqa: E402
from gostfast.proto.http1 import (  # noqa: E402
    basic_proxy_auth,
    go_response,
    parse_absolute,
    split_authority,
)
from gostfast.users import Users  # noqa: E402


def test_connect_request_as_go_writes_it():
    assert build_connect("example.com:443") == (
        b"CONNECT example.com:443 HTTP/1.1\r\n"
        b"Host: example.com:443\r\n"
        b"User-Agent: Go-http-client/1.1\r\n"
        b"Proxy-Connection: keep-alive\r\n\r\n"
    )


def test_connect_request_header_option():
    head = build_connect(
        "[::1]:80",
        ("u", "p"),
        {
            "x-b": "2",
            "user-agent": "mine/1",
            "host": "ignored",
            "a-a": "1",
            "proxy-connection": "x",
        },
    )
    assert head == (
        b"CONNECT [::1]:80 HTTP/1.1\r\n"
        b"Host: [::1]:80\r\n"
        b"User-Agent: mine/1\r\n"
        b"A-A: 1\r\n"
        b"Proxy-Authorization: Basic dTpw\r\n"
        b"Proxy-Connection: keep-alive\r\n"
        b"X-B: 2\r\n\r\n"
    )


def test_go_responses():
    assert go_response(400) == b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"
    assert go_response(503, [], content_length=0, version="HTTP/1.0") == (
        b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
    )
    assert go_response(407, [("Proxy-Connection", "close"), ("Connection", "close")]) == (
        b"HTTP/1.1 407 Proxy Authentication Required\r\n"
        b"Connection: close\r\nProxy-Connection: close\r\n\r\n"
    )
    assert go_response(599, [("X", "a\r\nb")]) == (
        b"HTTP/1.1 599 status code 599\r\nConnection: close\r\nX: a  b\r\n\r\n"
    )


@pytest.mark.parametrize(
    "value, expected",
    [
        ("Basic " + base64.b64encode(b"u:p:q").decode(), ("u", "p:q")),
        ("Basic " + base64.b64encode(b":").decode(), ("", "")),
        ("Basic " + base64.b64encode(b"nocolon").decode(), ("", "")),
        ("basic " + base64.b64encode(b"u:p").decode(), ("", "")),  # Go: case-sensitive
        ("Basic !!!", ("", "")),
        ("Bearer abc", ("", "")),
        (None, ("", "")),
    ],
)
def test_basic_proxy_auth(value, expected):
    assert basic_proxy_auth(value) == expected


@pytest.mark.parametrize(
    "authority, expected",
    [
        ("example.com", ("example.com", 80)),
        ("example.com:8080", ("example.com", 8080)),
        ("user:pw@example.com:81", ("example.com", 81)),
        ("[::1]", ("::1", 80)),
        ("[::1]:443", ("::1", 443)),
        ("::1", None),
        ("h:99999", None),
        ("h:x", None),
        ("[::1]x", None),
    ],
)
def test_split_authority(authority, expected):
    assert split_authority(authority) == expected


@pytest.mark.parametrize(
    "target, expected",
    [
        ("http://h/p?q#f", ("http", "h", "/p?q")),
        ("HTTP://h:1", ("http", "h:1", "/")),
        ("http://h?x=1", ("http", "h", "/?x=1")),
        ("https://h/", ("https", "h", "/")),
        ("/just/a/path", None),
        ("h:443", None),
    ],
)
def test_parse_absolute(target, expected):
    assert parse_absolute(target) == expected


def test_users_as_gost_checks_them():
    assert Users([]).check("anyone", "anything")
    users = Users([Auth("u", "p"), Auth("open", "")])
    assert users.check("u", "p")
    assert not users.check("u", "P")
    assert not users.check("u", "")
    assert not users.check("x", "p")
    assert users.check("open", "whatever")  # empty password accepts any (GOST)


def test_relay_request_layout():
    assert relay_request("example.com", 443) == (
        b"\x01\x01\x00\x12\x02\x00\x0f\x03\x0bexample.com\x01\xbb"
    )
    with_auth = relay_request("1.2.3.4", 80, "u", "")
    assert (
        with_auth
        == b"\x01\x01\x00\x10\x01\x00\x03\x01u\x00\x02\x00\x07\x01\x01\x02\x03\x04\x00\x50"
    )


def _req(*headers: str) -> http1.Request:
    return http1.parse_request(
        ("POST http://h/ HTTP/1.1\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n").encode()
    )


def _resp(status: int, *headers: str) -> http1.Response:
    return http1.parse_response(
        (f"HTTP/1.1 {status} X\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n").encode()
    )


def test_request_framing():
    assert body.request_length(_req()) == 0
    assert body.request_length(_req("Content-Length: 5")) == 5
    assert body.request_length(_req("Content-Length: 5, 5")) == 5
    assert body.request_length(_req("Transfer-Encoding: gzip, chunked")) == body.CHUNKED
    assert (
        body.request_length(_req("Transfer-Encoding: chunked", "Content-Length: 3")) == body.CHUNKED
    )
    for bad in (
        ("Content-Length: 5", "Content-Length: 6"),
        ("Content-Length: -1",),
        ("Transfer-Encoding: gzip",),
    ):
        with pytest.raises(body.BodyError):
            body.request_length(_req(*bad))


def test_response_framing():
    assert body.response_length(_resp(200, "Content-Length: 9"), "HEAD") == 0
    assert body.response_length(_resp(204), "GET") == 0
    assert body.response_length(_resp(304, "Content-Length: 9"), "GET") == 0
    assert body.response_length(_resp(200, "Content-Length: 9"), "GET") == 9
    assert body.response_length(_resp(200), "GET") == body.UNTIL_CLOSE
    assert body.response_length(_resp(200, "Transfer-Encoding: chunked"), "GET") == body.CHUNKED
    assert body.response_length(_resp(200, "Transfer-Encoding: gzip"), "GET") == body.UNTIL_CLOSE


def test_targets_a_node_protocol_cannot_carry_are_peer_faults():
    """A client's target the next hop cannot encode is the client's fault (the handler
    answers as for a failed connect); the node's own credentials are not."""
    long_host = "a" * 300
    for refuse in (
        lambda: build_connect("x HTTP/1.1\r\nInjected: 1"),
        lambda: build_connect("a b:80"),
        lambda: relay_request(long_host, 80),
        lambda: _socks4a_request(long_host, 80, ""),
        lambda: _socks4a_request("a\x00b", 80, ""),
    ):
        with pytest.raises(AddressError) as info:
            refuse()
        assert isinstance(info.value, PEER_FAULTS)
    for config in (
        lambda: relay_request("example.com", 80, "u" * 300),
        lambda: _socks4a_request("example.com", 80, "u" * 300),
    ):
        with pytest.raises(ValueError) as info:
            config()
        assert not isinstance(info.value, AddressError)
