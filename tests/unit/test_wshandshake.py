"""WebSocket upgrade handshake (proto.wshandshake): RFC vector, GOST/gorilla request bytes,
response checks, server-side refusals in gorilla's order, Go ServeMux path matching."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gostfast.proto import http1
from gostfast.proto import wshandshake as hs
from gostfast.proto.wshandshake import HandshakeError, HandshakeRejected

RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_rfc6455_accept_vector():
    assert hs.accept_for(RFC_KEY) == RFC_ACCEPT
    assert hs.GUID == "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def test_make_key():
    keys = {hs.make_key() for _ in range(20)}
    assert len(keys) == 20
    for key in keys:
        assert len(key) == 24 and len(base64.b64decode(key, validate=True)) == 16


def test_make_key_from_a_nonce():
    assert hs.make_key(b"the sample nonce") == RFC_KEY


# -- client side ---------------------------------------------------------------------


_TEXT = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(
    host=_TEXT,
    path=st.text(max_size=20),
    values=st.lists(st.sampled_from([RFC_KEY, "x", "Sec-WebSocket-Key: " + RFC_KEY]), max_size=3),
    compress=st.booleans(),
    key=st.binary(min_size=16, max_size=16),
)
def test_request_parts_rebuild_the_request(host, path, values, compress, key):
    """prefix + key + suffix is build_client_request's request, even when the host,
    the path or another header holds the template's key text."""
    extra = [(f"X-H{i}", v) for i, v in enumerate(values)]
    k = hs.make_key(key)
    prefix, suffix = hs.client_request_parts(host, path, extra, compress)
    assert prefix + k.encode() + suffix == hs.build_client_request(host, path, k, extra, compress)


def test_request_parts_refuse_what_the_builder_refuses():
    with pytest.raises(ValueError, match="duplicate header"):
        hs.client_request_parts("h", "/ws", [("Sec-WebSocket-Key", RFC_KEY)])


def test_plain_accept_is_only_the_exact_answer():
    answer = hs.build_server_response(RFC_KEY)
    assert hs.is_plain_accept(answer, RFC_KEY)
    assert not hs.is_plain_accept(answer, hs.make_key())
    assert not hs.is_plain_accept(hs.build_server_response(RFC_KEY, compress=True), RFC_KEY)
    assert not hs.is_plain_accept(
        answer.replace(b"Upgrade: websocket", b"upgrade: websocket"), RFC_KEY
    )
    # whatever the fast path accepts, the full check accepts too, uncompressed
    resp = http1.parse_response(answer)
    hs.check_client_response(resp, RFC_KEY)
    assert not hs.accepts_deflate(resp)


def test_client_request_bytes_like_gost():
    assert hs.build_client_request("example.com:443", "/ws", RFC_KEY) == (
        b"GET /ws HTTP/1.1\r\n"
        b"Host: example.com:443\r\n"
        b"User-Agent: Go-http-client/1.1\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"Upgrade: websocket\r\n"
        b"\r\n"
    )


def test_client_request_extra_headers_sorted_like_go():
    data = hs.build_client_request(
        "1.2.3.4:8080",
        "/tunnel",
        RFC_KEY,
        [("x-token", "abc"), ("Authorization", "Bearer t"), ("X-Token", "def")],
    )
    req = http1.parse_request(data)
    assert [name for name, _ in req.headers] == [
        "Host",
        "User-Agent",
        "Authorization",
        "Connection",
        "Sec-WebSocket-Key",
        "Sec-WebSocket-Version",
        "Upgrade",
        "X-Token",
        "X-Token",
    ]
    assert req.get_all("x-token") == ["abc", "def"]


def test_client_request_host_and_user_agent_overrides():
    data = hs.build_client_request(
        "1.2.3.4:443",
        "/ws",
        RFC_KEY,
        [("host", "cdn.example.com"), ("Host", "ignored"), ("User-Agent", "curl/8")],
    )
    req = http1.parse_request(data)
    assert req.headers[0] == ("Host", "cdn.example.com")
    assert req.headers[1] == ("User-Agent", "curl/8")
    assert len(req.get_all("Host")) == 1 and len(req.get_all("User-Agent")) == 1
    no_agent = http1.parse_request(
        hs.build_client_request("h", "/ws", RFC_KEY, [("User-Agent", "")])
    )
    assert no_agent.get("User-Agent") is None


@pytest.mark.parametrize(
    "name",
    [
        "Upgrade",
        "connection",
        "Sec-WebSocket-Key",
        "sec-websocket-version",
        "Sec-WebSocket-Extensions",
    ],
)
def test_client_request_refuses_duplicates(name):
    with pytest.raises(ValueError, match="duplicate header"):
        hs.build_client_request("h", "/ws", RFC_KEY, [(name, "x")])


@pytest.mark.parametrize(
    "path,target",
    [
        ("/ws", "/ws"),
        ("", "/"),
        ("ws", "/ws"),
        ("/a b", "/a%20b"),
        ("/q?x=1", "/q%3Fx=1"),
        ("/%41", "/%2541"),
        ("/$&+,:;=@-_.~", "/$&+,:;=@-_.~"),
        ("/é", "/%C3%A9"),
        ("/a#b", "/a%23b"),
    ],
)
def test_request_target_escapes_like_go(path, target):
    assert hs.request_target(path) == target


def _response(status=101, headers=None):
    if headers is None:
        headers = [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", RFC_ACCEPT),
        ]
    return http1.Response("HTTP/1.1", status, http1.status_text(status), headers)


def test_check_client_response_accepts():
    hs.check_client_response(_response(), RFC_KEY)
    hs.check_client_response(
        _response(
            headers=[
                ("upgrade", "WebSocket"),
                ("connection", "keep-alive, upgrade"),
                ("sec-websocket-accept", RFC_ACCEPT),
            ]
        ),
        RFC_KEY,
    )
    parsed = http1.parse_response(hs.build_server_response(RFC_KEY))
    hs.check_client_response(parsed, RFC_KEY)


@pytest.mark.parametrize(
    "resp,message",
    [
        (_response(status=200), "status 200"),
        (_response(status=404), "status 404"),
        (
            _response(headers=[("Connection", "Upgrade"), ("Sec-WebSocket-Accept", RFC_ACCEPT)]),
            "Upgrade",
        ),
        (
            _response(
                headers=[
                    ("Upgrade", "websocket/13"),
                    ("Connection", "Upgrade"),
                    ("Sec-WebSocket-Accept", RFC_ACCEPT),
                ]
            ),
            "Upgrade",
        ),
        (
            _response(headers=[("Upgrade", "websocket"), ("Sec-WebSocket-Accept", RFC_ACCEPT)]),
            "Connection",
        ),
        (_response(headers=[("Upgrade", "websocket"), ("Connection", "Upgrade")]), "Accept"),
        (
            _response(
                headers=[
                    ("Upgrade", "websocket"),
                    ("Connection", "Upgrade"),
                    ("Sec-WebSocket-Accept", hs.accept_for("AAAAAAAAAAAAAAAAAAAAAA==")),
                ]
            ),
            "Accept",
        ),
    ],
)
def test_check_client_response_refuses(resp, message):
    with pytest.raises(HandshakeError, match=message):
        hs.check_client_response(resp, RFC_KEY)
    assert issubclass(HandshakeError, ValueError)


# -- server side ---------------------------------------------------------------------


def _request(method="GET", target="/ws", **overrides):
    headers = {
        "Host": "example.com",
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": RFC_KEY,
    }
    headers.update(overrides)
    return http1.Request(
        method, target, "HTTP/1.1", [(k, v) for k, v in headers.items() if v is not None]
    )


def test_server_accepts_gost_client_request():
    req = http1.parse_request(hs.build_client_request("h:1", "/ws", RFC_KEY))
    assert hs.check_server_request(req, hs.path_matches("/ws", req.target)) == RFC_KEY
    req = _request(
        Connection="keep-alive, Upgrade", Upgrade="WebSocket", **{"Sec-WebSocket-Version": "13, 8"}
    )
    assert hs.check_server_request(req, True) == RFC_KEY


# what refpeer's client (gorilla v1.5.3) sent, captured on a socket
_GORILLA_HEAD = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:54659\r\nUser-Agent: Go-http-client/1.1\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: OQUFF+d9v+U/AAAf+UHefA==\r\n"
    b"Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n\r\n"
)


def test_plain_request_is_what_gost_and_gorilla_send():
    plain = hs.plain_request_matcher("/ws")
    assert plain(_GORILLA_HEAD) == "OQUFF+d9v+U/AAAf+UHefA=="
    assert plain(hs.build_client_request("h:1", "/ws", RFC_KEY)) == RFC_KEY
    assert hs.plain_request_matcher("/a b")(hs.build_client_request("h", "/a b", RFC_KEY))
    # anything else takes the full parse
    assert plain(hs.build_client_request("h:1", "/ws", RFC_KEY, compress=True)) is None
    assert plain(hs.build_client_request("h:1", "/ws", RFC_KEY, [("X-Real-IP", "1.2.3.4")])) is None
    assert plain(hs.build_client_request("h:1", "/wss", RFC_KEY)) is None
    assert plain(_GORILLA_HEAD.replace(b"Host: 127", b"Host: \x7f127")) is None
    assert plain(_GORILLA_HEAD + b"\r\n") is None
    assert plain(_GORILLA_HEAD.replace(b"fA==", b"fB==")) is None  # not canonical base64
    # a path whose own request does not route to it (Go redirects it): no fast path
    assert hs.plain_request_matcher("/a/../ws") is None


_HEAD_PARTS = [
    b"GET",
    b" ",
    b"/ws",
    b"/ws/",
    b"/w%73",
    b" HTTP/1.1\r\n",
    b" HTTP/1.0\r\n",
    b"Host: ",
    b"h:1",
    b" ",
    b"\t",
    b"\x80",
    b"\x01",
    b"\r\n",
    b"\n",
    b"User-Agent: Go-http-client/1.1\r\n",
    b"Connection: Upgrade\r\n",
    b"Connection: close\r\n",
    b"Sec-WebSocket-Key: ",
    RFC_KEY.encode(),
    b"OQUFF+d9v+U/AAAf+UHefA==",
    b"OQUFF+d9v+U/AAAf+UHefB==",
    b"OQUFF+d9v+U/AAAf+UHefA=",
    b"=",
    b"Sec-WebSocket-Version: 13\r\n",
    b"Sec-WebSocket-Version: 8\r\n",
    b"Upgrade: websocket\r\n",
    b"X-Forwarded-For: 1.2.3.4\r\n",
    b"Sec-WebSocket-Extensions: permessage-deflate\r\n",
    b"\r\n",
]


@settings(max_examples=500, deadline=None)
@given(
    path=st.sampled_from(["/ws", "/ws/", "/ws s", "ws"]),
    swap=st.lists(st.tuples(st.integers(0, 12), st.sampled_from(_HEAD_PARTS)), max_size=4),
    host=st.binary(max_size=12),
    key=st.binary(min_size=16, max_size=16),
)
def test_plain_request_agrees_with_the_full_parse(path, swap, host, key):
    """Whatever head the fast path takes, the full parse and gorilla's checks take it
    too, with the same key, no forwarded client and no deflate offer; and GOST's own
    request to the path is always taken."""
    from gostfast.transport.ws import forwarded_ip

    plain = hs.plain_request_matcher(path)
    k = hs.make_key(key)
    host_text = host.decode("latin-1")
    if all(0x21 <= b <= 0x7E for b in host) and host:
        assert plain(hs.build_client_request(host_text, path, k)) == k
    # a near miss: GOST's request with a few of its pieces replaced or added
    pieces = hs.build_client_request("h:1", path, k).split(b"\r\n")
    pieces = [p + b"\r\n" for p in pieces[:-1]]
    for at, part in swap:
        if at < len(pieces) and at % 2:
            pieces[at] = part
        else:
            pieces.insert(min(at, len(pieces)), part)
    for head in (b"".join(pieces), b"".join(pieces).replace(b"h:1", host)):
        got = plain(head)
        if got is None:
            continue
        req = http1.parse_request(head)
        assert hs.check_server_request(req, hs.path_matches(path, req.target)) == got
        assert forwarded_ip(req) == ""
        assert not hs.offers_deflate(req)


def _rejected(req, matches=True) -> HandshakeRejected:
    with pytest.raises(HandshakeRejected) as info:
        hs.check_server_request(req, matches)
    return info.value


def test_server_refusals_in_gorilla_order():
    exc = _rejected(_request(method="POST", Connection=None, Upgrade=None), matches=False)
    assert (exc.status, exc.body, exc.headers) == (404, "404 page not found\n", [])
    # gorilla v1.5.3 checks the Connection/Upgrade tokens before the method.
    exc = _rejected(_request(method="POST", Connection="keep-alive"))
    assert (exc.status, exc.body) == (400, "Bad Request\n")
    assert "'upgrade' token not found in 'Connection' header" in str(exc)
    exc = _rejected(_request(method="POST", Upgrade="h2c"))
    assert exc.status == 400 and "'websocket' token" in str(exc)
    exc = _rejected(_request(method="POST", **{"Sec-WebSocket-Version": "8"}))
    assert (exc.status, exc.body) == (405, "Method Not Allowed\n")
    exc = _rejected(_request(**{"Sec-WebSocket-Version": "8", "Sec-WebSocket-Key": None}))
    assert (exc.status, exc.body) == (400, "Bad Request\n")
    assert exc.headers == [("Sec-Websocket-Version", "13")]
    assert "unsupported version" in str(exc)
    for key in (None, "", "short", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZSE=", "!!!!"):
        exc = _rejected(_request(**{"Sec-WebSocket-Key": key}))
        assert exc.status == 400 and "Sec-WebSocket-Key" in str(exc), key
        assert exc.headers == [("Sec-Websocket-Version", "13")]


def test_server_token_rules_follow_gorilla():
    for conn in ("Upgrade", "upgrade", "keep-alive,upgrade", "x, Upgrade ,y"):
        assert hs.check_server_request(_request(Connection=conn), True) == RFC_KEY
    for conn in ("Upgrade2", "keep alive, upgrade", ", upgrade", ""):
        assert _rejected(_request(Connection=conn)).status == 400, conn


def test_build_server_response():
    assert hs.build_server_response(RFC_KEY) == (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    )
    data = hs.build_server_response(RFC_KEY, [("x-server", "gost\r\nEvil: 1")])
    assert data.endswith(
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nX-Server: gost  Evil: 1\r\n\r\n"
    )
    with pytest.raises(ValueError):
        hs.build_server_response(RFC_KEY, [("bad name", "x")])


def test_build_rejection_like_go_http_error():
    exc = HandshakeRejected(400, "Bad Request\n", [("Sec-Websocket-Version", "13")])
    data = hs.build_rejection(exc, date="Mon, 02 Jan 2006 15:04:05 GMT")
    assert data == (
        b"HTTP/1.1 400 Bad Request\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Sec-Websocket-Version: 13\r\n"
        b"X-Content-Type-Options: nosniff\r\n"
        b"Date: Mon, 02 Jan 2006 15:04:05 GMT\r\n"
        b"Content-Length: 12\r\n"
        b"Connection: close\r\n"
        b"\r\n"
        b"Bad Request\n"
    )
    not_found = hs.build_rejection(
        HandshakeRejected(404, "404 page not found\n", []), date="", close=False
    )
    assert not_found == (
        b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"X-Content-Type-Options: nosniff\r\nContent-Length: 19\r\n\r\n404 page not found\n"
    )
    stamped = http1.parse_response(hs.build_rejection(exc).split(b"\r\n\r\n")[0] + b"\r\n\r\n")
    assert stamped.get("Date", "").endswith(" GMT")


@pytest.mark.parametrize(
    "pattern,target,expected",
    [
        ("/ws", "/ws", True),
        ("/ws", "/ws?x=1", True),
        ("/ws", "/ws/", False),
        ("/ws", "/wss", False),
        ("/ws", "/", False),
        ("/ws", "/w%73", True),
        ("/ws", "/ws%3F", False),
        ("/ws", "//ws", False),
        ("/ws", "/a/../ws", False),
        ("/ws", "/./ws", False),
        ("/ws", "/w%zz", False),
        ("/ws", "http://example.com/ws", True),
        ("/ws", "HTTP://example.com/ws?q", True),
        ("/ws", "ws", False),
        ("/tunnel/", "/tunnel/", True),
        ("/tunnel/", "/tunnel/x/y", True),
        ("/tunnel/", "/tunnel", False),
        ("/", "/anything", True),
        ("ws", "/ws", True),
    ],
)
def test_path_matches_go_servemux(pattern, target, expected):
    assert hs.path_matches(pattern, target) is expected


@pytest.mark.parametrize(
    "path,clean",
    [
        ("", "/"),
        ("/", "/"),
        ("//ws", "/ws"),
        ("/a/../ws", "/ws"),
        ("/a/./b/", "/a/b/"),
        ("/../..", "/"),
        ("ws", "/ws"),
        ("/ws/", "/ws/"),
    ],
)
def test_clean_path(path, clean):
    assert hs.clean_path(path) == clean


# -- permessage-deflate (GOST's enableCompression) ---------------------------------------


def test_client_request_offers_deflate_like_gorilla():
    """gorilla's offer text, sorted by Go between Connection and Sec-WebSocket-Key."""
    assert hs.build_client_request("h:1", "/ws", RFC_KEY, compress=True) == (
        b"GET /ws HTTP/1.1\r\n"
        b"Host: h:1\r\n"
        b"User-Agent: Go-http-client/1.1\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
        b"client_no_context_takeover\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"Upgrade: websocket\r\n"
        b"\r\n"
    )


def test_server_response_agrees_to_deflate_after_accept():
    data = hs.build_server_response(RFC_KEY, [("x-a", "b")], compress=True)
    assert data.endswith(
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
        b"client_no_context_takeover\r\nX-A: b\r\n\r\n"
    )


@pytest.mark.parametrize(
    "values,offered",
    [
        ([], False),
        (["permessage-deflate"], True),
        (["x-webkit-deflate-frame, permessage-deflate; client_max_window_bits"], True),
        (["foo", "permessage-deflate ;server_max_window_bits=10"], True),
        (["permessage-deflated"], False),
    ],
)
def test_offers_deflate(values, offered):
    headers = [("Sec-WebSocket-Extensions", v) for v in values]
    req = http1.Request("GET", "/ws", "HTTP/1.1", headers)
    assert hs.offers_deflate(req) is offered


def test_accepts_deflate_needs_both_no_context_takeover():
    def answer(*values):
        return _response(
            headers=[
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Accept", RFC_ACCEPT),
                *[("Sec-WebSocket-Extensions", v) for v in values],
            ]
        )

    assert hs.accepts_deflate(answer()) is False
    assert hs.accepts_deflate(answer(hs.DEFLATE_OFFER)) is True
    assert hs.accepts_deflate(answer("foo, " + hs.DEFLATE_OFFER)) is True
    with pytest.raises(HandshakeError, match="invalid compression negotiation"):
        hs.accepts_deflate(answer("permessage-deflate; server_no_context_takeover"))
