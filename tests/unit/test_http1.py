"""HTTP/1.1 head codec (proto.http1): head boundaries, parsing rules, header helpers, builders."""

from __future__ import annotations

import pytest

from gostfast.proto import http1
from gostfast.proto.http1 import HTTPHeadError, Request, Response

GO_UPGRADE = (
    b"GET /ws HTTP/1.1\r\n"
    b"Host: example.com:443\r\n"
    b"User-Agent: Go-http-client/1.1\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"Upgrade: websocket\r\n"
    b"\r\n"
)


# -- parse_request / parse_response --------------------------------------------------


def test_parse_request():
    req = http1.parse_request(GO_UPGRADE)
    assert (req.method, req.target, req.version) == ("GET", "/ws", "HTTP/1.1")
    assert req.headers[0] == ("Host", "example.com:443")
    assert req.get("host") == "example.com:443"
    assert req.get("SEC-WEBSOCKET-KEY") == "dGhlIHNhbXBsZSBub25jZQ=="
    assert req.get("missing") is None and req.get("missing", "d") == "d"


def test_header_helpers():
    req = Request(
        "CONNECT",
        "example.com:443",
        "HTTP/1.1",
        [("Connection", "keep-alive, Upgrade"), ("X-A", "1"), ("x-a", "2"), ("Upgrade", "h2c")],
    )
    assert req.get_all("X-A") == ["1", "2"]
    assert req.get("x-a") == "1"
    resp = Response("HTTP/1.1", 200, "OK", [("Proxy-Agent", "gost/3.0")])
    assert resp.get("proxy-agent") == "gost/3.0"


def test_parse_request_tolerances():
    req = http1.parse_request(
        b"CONNECT example.com:443 HTTP/1.0\r\nX-Empty:\r\nX-Pad: \t v a l \t\r\nX-Obs: caf\xe9\r\n\r\n"
    )
    assert req.method == "CONNECT" and req.target == "example.com:443"
    assert req.version == "HTTP/1.0"
    assert req.headers == [("X-Empty", ""), ("X-Pad", "v a l"), ("X-Obs", "café")]
    req = http1.parse_request(b"GET http://h/x?y=1 HTTP/1.1\r\n\r\n")
    assert req.target == "http://h/x?y=1" and req.headers == []


@pytest.mark.parametrize(
    "head,message",
    [
        (b"GET /ws HTTP/1.1\r\nHost: x\r\n", "CRLFCRLF"),
        (b"GET /ws HTTP/1.1\r\n folded: x\r\n\r\n", "obsolete line folding"),
        (b"GET /ws HTTP/1.1\r\nHost: x\r\n\tmore\r\n\r\n", "obsolete line folding"),
        (b"GET /ws HTTP/1.1\r\nNoColon\r\n\r\n", "no colon"),
        (b"GET /ws HTTP/1.1\r\nBad Name: x\r\n\r\n", "invalid header name"),
        (b"GET /ws HTTP/1.1\r\nHost : x\r\n\r\n", "invalid header name"),
        (b"GET /ws HTTP/1.1\r\n: x\r\n\r\n", "invalid header name"),
        (b"GET /ws HTTP/1.1\r\nX: a\x00b\r\n\r\n", "control character"),
        (b"GET /ws HTTP/1.1\r\nX: a\nb\r\n\r\n", "bare CR or LF"),
        (b"GET /ws HTTP/1.1\nHost: x\r\n\r\n", "bare CR or LF"),
        (b"GET /ws\r\n\r\n", "malformed request line"),
        (b"GET  /ws HTTP/1.1\r\n\r\n", "invalid request target"),
        (b"GET /ws  HTTP/1.1\r\n\r\n", "malformed HTTP version"),
        (b"GET /w s HTTP/1.1\r\n\r\n", "malformed HTTP version"),
        (b"GE(T /ws HTTP/1.1\r\n\r\n", "invalid method"),
        (b"GET /ws HTTP/1.10\r\n\r\n", "malformed HTTP version"),
        (b"GET /ws http/1.1\r\n\r\n", "malformed HTTP version"),
        (b"GET /\x7f HTTP/1.1\r\n\r\n", "invalid request target"),
    ],
)
def test_parse_request_errors(head, message):
    with pytest.raises(HTTPHeadError, match=message):
        http1.parse_request(head)


def test_parse_request_too_large():
    head = b"GET / HTTP/1.1\r\nX: " + b"a" * http1.MAX_HEAD + b"\r\n\r\n"
    with pytest.raises(HTTPHeadError, match="header too large"):
        http1.parse_request(head)


def test_head_error_is_a_value_error():
    assert issubclass(HTTPHeadError, ValueError)


def test_parse_response():
    resp = http1.parse_response(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    )
    assert (resp.version, resp.status, resp.reason) == ("HTTP/1.1", 101, "Switching Protocols")
    assert resp.get("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert http1.parse_response(b"HTTP/1.1 200\r\n\r\n").reason == ""
    assert http1.parse_response(b"HTTP/1.0 200 Connection established\r\n\r\n").reason == (
        "Connection established"
    )


@pytest.mark.parametrize(
    "head,message",
    [
        (b"HTTP/1.1\r\n\r\n", "malformed status line"),
        (b"HTTP/1.1 20 OK\r\n\r\n", "malformed status code"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "malformed status code"),
        (b"HTTP/1.1 abc OK\r\n\r\n", "malformed status code"),
        (b"HTTX/1.1 200 OK\r\n\r\n", "malformed HTTP version"),
        (b"HTTP/1.1 200 OK\r\nX y: z\r\n\r\n", "invalid header name"),
        (b"HTTP/1.1 200 OK\r\n\r", "CRLFCRLF"),
    ],
)
def test_parse_response_errors(head, message):
    with pytest.raises(HTTPHeadError, match=message):
        http1.parse_response(head)


# -- builders ------------------------------------------------------------------------


def test_build_request_round_trip():
    headers = [("Host", "example.com:443"), ("Proxy-Authorization", "Basic dXNlcjpwYXNz")]
    data = http1.build_request("CONNECT", "example.com:443", headers)
    assert data == (
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n"
        b"Proxy-Authorization: Basic dXNlcjpwYXNz\r\n\r\n"
    )
    req = http1.parse_request(data)
    assert (req.method, req.target, req.headers) == ("CONNECT", "example.com:443", headers)


def test_build_request_errors():
    for args in [
        ("GET", "/", [("Bad Name", "x")]),
        ("GET", "/", [("X", "a\r\nInjected: 1")]),
        ("G T", "/", []),
        ("GET", "/a b", []),
        ("GET", "", []),
        ("GET", "/", [("X", "snow\u2603")]),
    ]:
        with pytest.raises(ValueError):
            http1.build_request(*args)


def test_build_response():
    assert http1.build_response(200, "Connection established", [("Proxy-Agent", "gost/3.0")]) == (
        b"HTTP/1.1 200 Connection established\r\nProxy-Agent: gost/3.0\r\n\r\n"
    )
    assert (
        http1.build_response(407, None, [], b"")
        == b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"
    )
    assert http1.build_response(404, None, [("Content-Type", "text/plain")], b"nope\n") == (
        b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nnope\n"
    )
    explicit = http1.build_response(
        200, "OK", [("content-length", "3")], b"abc", version="HTTP/1.0"
    )
    assert explicit == b"HTTP/1.0 200 OK\r\ncontent-length: 3\r\n\r\nabc"
    assert http1.build_response(599, None, []) == b"HTTP/1.1 599 status code 599\r\n\r\n"
    resp = http1.parse_response(http1.build_response(101, None, [("Upgrade", "websocket")]))
    assert (resp.status, resp.reason, resp.headers) == (
        101,
        "Switching Protocols",
        [("Upgrade", "websocket")],
    )
    with pytest.raises(ValueError):
        http1.build_response(200, "OK\r\nX: y", [])


def test_reasons_and_canonical_keys():
    assert http1.REASONS[101] == "Switching Protocols"
    assert http1.REASONS[400] == "Bad Request"
    assert http1.REASONS[405] == "Method Not Allowed"
    assert http1.REASONS[407] == "Proxy Authentication Required"
    assert http1.canonical_header_key("sec-websocket-key") == "Sec-Websocket-Key"
    assert http1.canonical_header_key("SEC-WEBSOCKET-VERSION") == "Sec-Websocket-Version"
    assert http1.canonical_header_key("x-forwarded-for") == "X-Forwarded-For"
    assert http1.canonical_header_key("bad name") == "bad name"
    assert http1.is_token("Upgrade") and not http1.is_token("a b") and not http1.is_token("")


def test_has_token() -> None:
    # the web API's keep-alive decision (api/server.py) reads Connection by token
    req = http1.parse_request(GO_UPGRADE)
    assert req.has_token("connection", "upgrade")
    assert not req.has_token("connection", "close")
    req = Request(
        "GET", "/", "HTTP/1.1", [("Connection", "keep-alive, Upgrade"), ("Upgrade", "h2c")]
    )
    assert req.has_token("Connection", "UPGRADE")
    assert req.has_token("Connection", "keep-alive")
    assert not req.has_token("Connection", "keep")
    assert not req.has_token("Upgrade", "websocket")
