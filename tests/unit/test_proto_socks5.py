"""SOCKS5 (RFC 1928) + RFC 1929 codec: byte-exact vectors, malformed input, round trips."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gostfast.proto import socks5 as s5
from gostfast.proto.errors import ProtocolError, Socks5Error, UnknownAddressType

H = bytes.fromhex


def _assert_needs_more_at_every_cut(parse: Callable, raw: bytes) -> None:
    for cut in range(len(raw)):
        assert parse(raw[:cut]) is None, f"cut at {cut} of {raw.hex(' ')}"


# ---------------------------------------------------------------------------
# Constants (values from RFC 1928 / gosocks5 / go-gost/x internal/util/socks)
# ---------------------------------------------------------------------------


def test_constants() -> None:
    assert s5.VERSION == 5 and s5.USERPASS_VERSION == 1
    assert (s5.METHOD_NOAUTH, s5.METHOD_GSSAPI, s5.METHOD_USERPASS) == (0, 1, 2)
    assert (s5.METHOD_TLS, s5.METHOD_TLS_AUTH, s5.METHOD_MUX) == (0x80, 0x82, 0x88)
    assert s5.METHOD_NONE_ACCEPTABLE == 0xFF
    assert (s5.CMD_CONNECT, s5.CMD_BIND, s5.CMD_UDP_ASSOCIATE) == (1, 2, 3)
    assert (s5.CMD_RESOLVE, s5.CMD_RESOLVE_PTR, s5.CMD_MUX_BIND, s5.CMD_UDP_TUN) == (
        0xF0,
        0xF1,
        0xF2,
        0xF3,
    )
    reps = [
        s5.REP_SUCCEEDED,
        s5.REP_GENERAL_FAILURE,
        s5.REP_NOT_ALLOWED,
        s5.REP_NETWORK_UNREACHABLE,
        s5.REP_HOST_UNREACHABLE,
        s5.REP_CONNECTION_REFUSED,
        s5.REP_TTL_EXPIRED,
        s5.REP_COMMAND_NOT_SUPPORTED,
        s5.REP_ADDR_NOT_SUPPORTED,
    ]
    assert reps == list(range(9))
    assert s5.UDP_TUN_FRAG == 0xFF


# ---------------------------------------------------------------------------
# Method negotiation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "methods,wire",
    [
        ([0x00], "05 01 00"),
        ([0x00, 0x02], "05 02 00 02"),
        # GOST's socks5 connector with auth and TLS allowed: 00, 02, 80, 82
        ([0x00, 0x02, 0x80, 0x82], "05 04 00 02 80 82"),
        ([0x00, 0x80], "05 02 00 80"),
    ],
)
def test_greeting_vectors(methods: list[int], wire: str) -> None:
    raw = H(wire)
    assert s5.build_greeting(methods) == raw
    assert s5.parse_greeting(raw) == (methods, len(raw))
    assert s5.parse_greeting(raw + b"\x01\x02") == (methods, len(raw))
    _assert_needs_more_at_every_cut(s5.parse_greeting, raw)


def test_greeting_max_methods() -> None:
    methods = list(range(255))
    raw = s5.build_greeting(methods)
    assert raw[:2] == b"\x05\xff" and len(raw) == 257
    assert s5.parse_greeting(raw) == (methods, 257)


@pytest.mark.parametrize("first", [0x04, 0x00, 0x01, 0x06, 0xFF])
def test_greeting_bad_version_fails_on_first_byte(first: int) -> None:
    with pytest.raises(Socks5Error, match="version"):
        s5.parse_greeting(bytes((first,)))


def test_greeting_zero_methods() -> None:
    with pytest.raises(Socks5Error, match="NMETHODS"):
        s5.parse_greeting(b"\x05\x00")


@pytest.mark.parametrize("methods", [[], list(range(256)), [256], [-1]])
def test_build_greeting_rejects(methods: list[int]) -> None:
    with pytest.raises(ValueError):
        s5.build_greeting(methods)


def test_method_reply() -> None:
    for method in (0x00, 0x02, 0x80, 0x82, 0xFF):
        raw = s5.build_method_reply(method)
        assert raw == bytes((5, method))
        assert s5.parse_method_reply(raw + b"x") == (method, 2)
    _assert_needs_more_at_every_cut(s5.parse_method_reply, b"\x05\x00")
    with pytest.raises(Socks5Error):
        s5.parse_method_reply(b"\x04")
    with pytest.raises(ValueError):
        s5.build_method_reply(256)


# ---------------------------------------------------------------------------
# RFC 1929 username/password
# ---------------------------------------------------------------------------

USERPASS_VECTORS = [
    ("alice", "secret", "01 05 61 6c 69 63 65 06 73 65 63 72 65 74"),
    ("", "", "01 00 00"),  # GOST accepts empty fields
    ("u", "", "01 01 75 00"),
    ("", "p", "01 00 01 70"),
]


@pytest.mark.parametrize("user,password,wire", USERPASS_VECTORS)
def test_userpass_vectors(user: str, password: str, wire: str) -> None:
    raw = H(wire)
    assert s5.build_userpass(user, password) == raw
    assert s5.parse_userpass(raw) == ((user, password), len(raw))
    assert s5.parse_userpass(raw + b"\x05") == ((user, password), len(raw))
    _assert_needs_more_at_every_cut(s5.parse_userpass, raw)


def test_userpass_max_lengths() -> None:
    raw = s5.build_userpass("u" * 255, "p" * 255)
    assert len(raw) == 3 + 510
    assert s5.parse_userpass(raw) == (("u" * 255, "p" * 255), len(raw))
    with pytest.raises(ValueError, match="username"):
        s5.build_userpass("u" * 256, "")
    with pytest.raises(ValueError, match="password"):
        s5.build_userpass("", "p" * 256)


def test_userpass_utf8() -> None:
    raw = s5.build_userpass("用户", "пароль")
    assert raw[1] == len("用户".encode())
    assert s5.parse_userpass(raw) == (("用户", "пароль"), len(raw))


@pytest.mark.parametrize("first", [0x00, 0x02, 0x05])
def test_userpass_bad_version(first: int) -> None:
    with pytest.raises(Socks5Error, match="version"):
        s5.parse_userpass(bytes((first,)))


def test_userpass_reply() -> None:
    assert s5.build_userpass_reply(True) == b"\x01\x00"
    assert s5.build_userpass_reply(False) == b"\x01\x01"
    assert s5.parse_userpass_reply(b"\x01\x00") == (True, 2)
    assert s5.parse_userpass_reply(b"\x01\x01") == (False, 2)
    assert s5.parse_userpass_reply(b"\x01\x02rest") == (False, 2)
    _assert_needs_more_at_every_cut(s5.parse_userpass_reply, b"\x01\x00")
    with pytest.raises(Socks5Error):  # GOST checks the version here
        s5.parse_userpass_reply(b"\x05\x00")


# ---------------------------------------------------------------------------
# Requests and replies
# ---------------------------------------------------------------------------

REQUEST_VECTORS = [
    (s5.CMD_CONNECT, "192.0.2.1", 80, "05 01 00 01 c0 00 02 01 00 50"),
    (s5.CMD_CONNECT, "example.com", 443, "05 01 00 03 0b 65 78 61 6d 70 6c 65 2e 63 6f 6d 01 bb"),
    (s5.CMD_CONNECT, "2001:db8::1", 22, "05 01 00 04 20 01 0d b8" + " 00" * 11 + " 01 00 16"),
    (s5.CMD_BIND, "0.0.0.0", 0, "05 02 00 01 00 00 00 00 00 00"),
    (s5.CMD_UDP_ASSOCIATE, "0.0.0.0", 0, "05 03 00 01 00 00 00 00 00 00"),
    (s5.CMD_UDP_TUN, "8.8.8.8", 53, "05 f3 00 01 08 08 08 08 00 35"),
]


@pytest.mark.parametrize("cmd,host,port,wire", REQUEST_VECTORS)
def test_request_vectors(cmd: int, host: str, port: int, wire: str) -> None:
    raw = H(wire)
    assert s5.build_request(cmd, host, port) == raw
    assert s5.parse_request(raw) == ((cmd, host, port), len(raw))
    assert s5.parse_request(raw + b"GET / HTTP/1.1\r\n") == ((cmd, host, port), len(raw))
    _assert_needs_more_at_every_cut(s5.parse_request, raw)


def test_request_unknown_command_is_returned_for_the_handler() -> None:
    raw = H("05 09 00 01 7f 00 00 01 00 50")
    assert s5.parse_request(raw) == ((9, "127.0.0.1", 80), 10)


def test_request_rsv_is_ignored_like_gost() -> None:
    assert s5.parse_request(H("05 01 ff 01 7f 00 00 01 00 50")) == ((1, "127.0.0.1", 80), 10)


@pytest.mark.parametrize("first", [0x04, 0x00, 0x01])
def test_request_bad_version(first: int) -> None:
    with pytest.raises(Socks5Error, match="request: version"):
        s5.parse_request(bytes((first,)))


@pytest.mark.parametrize("atyp", [0x00, 0x02, 0x05, 0xFF])
def test_request_unknown_atyp(atyp: int) -> None:
    with pytest.raises(UnknownAddressType):
        s5.parse_request(bytes((5, 1, 0, atyp)))


def test_request_empty_domain_is_decoded() -> None:
    assert s5.parse_request(H("05 01 00 03 00 00 50")) == ((1, "", 80), 7)


def test_reply_vectors() -> None:
    # GOST's reply for an unknown command: nil address -> IPv4 zero.
    assert s5.build_reply(s5.REP_COMMAND_NOT_SUPPORTED) == H("05 07 00 01 00 00 00 00 00 00")
    ok = s5.build_reply(s5.REP_SUCCEEDED, "10.0.0.2", 50000)
    assert ok == H("05 00 00 01 0a 00 00 02 c3 50")
    assert s5.parse_reply(ok) == ((0, "10.0.0.2", 50000), 10)
    v6 = s5.build_reply(s5.REP_SUCCEEDED, "::1", 1)
    assert v6 == H("05 00 00 04" + " 00" * 15 + " 01 00 01")
    assert s5.parse_reply(v6 + b"data") == ((0, "::1", 1), 22)
    dom = s5.build_reply(s5.REP_HOST_UNREACHABLE, "a.b", 2)
    assert dom == H("05 04 00 03 03 61 2e 62 00 02")
    for raw in (ok, v6, dom):
        _assert_needs_more_at_every_cut(s5.parse_reply, raw)
    with pytest.raises(Socks5Error, match="reply: version"):
        s5.parse_reply(b"\x00")
    with pytest.raises(ValueError):
        s5.build_reply(256)
    with pytest.raises(ValueError):
        s5.build_request(1, "x" * 256, 1)
    with pytest.raises(ValueError):
        s5.build_request(1, "x", 70000)


def test_errors_are_protocol_errors_and_value_errors() -> None:
    with pytest.raises(ProtocolError):
        s5.parse_greeting(b"\x04")
    with pytest.raises(ValueError):
        s5.parse_greeting(b"\x04")


# ---------------------------------------------------------------------------
# UDP header
# ---------------------------------------------------------------------------


def test_udp_header_vectors() -> None:
    raw = s5.build_udp_header("192.0.2.1", 53)
    assert raw == H("00 00 00 01 c0 00 02 01 00 35")
    assert s5.parse_udp_header(raw + b"payload") == (s5.UdpHeader(0, 0, "192.0.2.1", 53), 10)
    dom = s5.build_udp_header("dns.google", 53)
    assert dom == H("00 00 00 03 0a") + b"dns.google" + H("00 35")
    assert s5.parse_udp_header(dom) == (s5.UdpHeader(0, 0, "dns.google", 53), len(dom))
    for r in (raw, dom):
        _assert_needs_more_at_every_cut(s5.parse_udp_header, r)


def test_udp_header_fragment_rejected_unless_allowed() -> None:
    with pytest.raises(Socks5Error, match="fragment"):
        s5.parse_udp_header(H("00 00 01"))
    # GOST UDP-TUN: RSV = payload length, FRAG = 0xff.
    tun = s5.build_udp_header("1.1.1.1", 53, rsv=5, frag=s5.UDP_TUN_FRAG)
    assert tun == H("00 05 ff 01 01 01 01 01 00 35")
    with pytest.raises(Socks5Error):
        s5.parse_udp_header(tun)
    header, used = s5.parse_udp_header(tun + b"hello", allow_frag=True)
    assert header == (5, 0xFF, "1.1.1.1", 53)
    assert header.rsv == 5 and header.frag == 0xFF and used == 10


def test_udp_header_unknown_atyp_and_bad_args() -> None:
    with pytest.raises(UnknownAddressType):
        s5.parse_udp_header(H("00 00 00 02"))
    with pytest.raises(ValueError):
        s5.build_udp_header("1.1.1.1", 1, rsv=65536)
    with pytest.raises(ValueError):
        s5.build_udp_header("1.1.1.1", 1, frag=256)


# ---------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------

hosts = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).filter(lambda ip: ip.ipv4_mapped is None).map(str),
    st.from_regex(r"[a-z0-9-]{1,63}(\.[a-z0-9-]{1,63}){0,3}", fullmatch=True),
)
ports = st.integers(0, 65535)
bytes8 = st.integers(0, 255)
field_text = st.text(max_size=60).filter(lambda t: len(t.encode("utf-8", "surrogateescape")) <= 255)


@settings(max_examples=200, deadline=None)
@given(st.lists(bytes8, min_size=1, max_size=255), st.binary(max_size=4))
def test_greeting_round_trip(methods: list[int], tail: bytes) -> None:
    raw = s5.build_greeting(methods)
    assert s5.parse_greeting(raw + tail) == (methods, len(raw))
    _assert_needs_more_at_every_cut(s5.parse_greeting, raw)


@settings(max_examples=200, deadline=None)
@given(field_text, field_text, st.binary(max_size=4))
def test_userpass_round_trip(user: str, password: str, tail: bytes) -> None:
    raw = s5.build_userpass(user, password)
    assert s5.parse_userpass(raw + tail) == ((user, password), len(raw))
    _assert_needs_more_at_every_cut(s5.parse_userpass, raw)


@settings(max_examples=300, deadline=None)
@given(bytes8, hosts, ports, st.binary(max_size=4))
def test_request_and_reply_round_trip(code: int, host: str, port: int, tail: bytes) -> None:
    req = s5.build_request(code, host, port)
    assert s5.parse_request(req + tail) == ((code, host, port), len(req))
    _assert_needs_more_at_every_cut(s5.parse_request, req)
    rep = s5.build_reply(code, host, port)
    assert rep == req  # same shape on the wire
    assert s5.parse_reply(rep + tail) == ((code, host, port), len(rep))


@settings(max_examples=200, deadline=None)
@given(hosts, ports, st.integers(0, 65535), bytes8, st.binary(max_size=8))
def test_udp_header_round_trip(host: str, port: int, rsv: int, frag: int, payload: bytes) -> None:
    raw = s5.build_udp_header(host, port, rsv=rsv, frag=frag)
    assert s5.parse_udp_header(raw + payload, allow_frag=True) == (
        s5.UdpHeader(rsv, frag, host, port),
        len(raw),
    )
    for cut in range(len(raw)):
        assert s5.parse_udp_header(raw[:cut], allow_frag=True) is None


PARSERS = [
    s5.parse_greeting,
    s5.parse_userpass,
    s5.parse_request,
    s5.parse_reply,
    s5.parse_method_reply,
    s5.parse_userpass_reply,
    s5.parse_udp_header,
]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_only_parse_none_or_protocol_error(data: bytes) -> None:
    for parse in PARSERS:
        try:
            result = parse(data)
        except ProtocolError:
            continue
        if result is not None:
            _, used = result
            assert 0 < used <= len(data)


# ---------------------------------------------------------------------------
# UDP-TUN frames (GOST's UDP over the TCP stream: RSV = length, FRAG = 0xFF)
# ---------------------------------------------------------------------------


def test_udp_tun_frame_bytes_as_gost_writes_them() -> None:
    raw = s5.build_udp_tun_frame("127.0.0.1", 53, b"abc")
    assert raw == H("00 03 ff 01 7f 00 00 01 00 35") + b"abc"
    assert s5.parse_udp_tun_frame(raw + b"next") == (
        (s5.UdpHeader(3, 0xFF, "127.0.0.1", 53), 10),
        13,
    )
    _assert_needs_more_at_every_cut(s5.parse_udp_tun_frame, raw)


def test_udp_tun_frame_domain_and_any_frag() -> None:
    raw = H("00 02 00 03 04") + b"host" + H("01 bb") + b"hi"
    assert s5.parse_udp_tun_frame(raw) == ((s5.UdpHeader(2, 0, "host", 443), 11), 13)


def test_udp_tun_frame_bad_atyp_and_bad_payloads() -> None:
    with pytest.raises(UnknownAddressType):
        s5.parse_udp_tun_frame(H("00 01 ff 09 00"))
    with pytest.raises(ValueError):
        s5.build_udp_tun_frame("1.2.3.4", 1, b"")
    with pytest.raises(ValueError):
        s5.build_udp_tun_frame("1.2.3.4", 1, bytes(s5.MAX_UDP_TUN_PAYLOAD + 1))


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["10.0.0.1", "::1", "example.test"]),
            st.integers(0, 65535),
            st.binary(min_size=1, max_size=300),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_udp_tun_frames_round_trip_on_a_stream(frames) -> None:
    stream = b"".join(s5.build_udp_tun_frame(h, p, d) for h, p, d in frames)
    got = []
    while stream:
        (header, start), end = s5.parse_udp_tun_frame(stream)
        got.append((header.host, header.port, stream[start:end]))
        stream = stream[end:]
    assert got == [(h, p, d) for h, p, d in frames]
