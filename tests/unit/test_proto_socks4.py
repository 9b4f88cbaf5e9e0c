"""SOCKS4 / SOCKS4a codec: protocol-document vectors, GOST's limits, round trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gostfast.proto import socks4 as s4
from gostfast.proto.errors import ProtocolError, Socks4Error

H = bytes.fromhex


def _assert_needs_more_at_every_cut(raw: bytes) -> None:
    for cut in range(len(raw)):
        assert s4.parse_request(raw[:cut]) is None, f"cut at {cut} of {raw.hex(' ')}"


def test_constants() -> None:
    assert (s4.VERSION, s4.REPLY_VERSION) == (4, 0)
    assert (s4.CMD_CONNECT, s4.CMD_BIND) == (1, 2)
    assert (s4.REP_GRANTED, s4.REP_REJECTED) == (90, 91)
    assert (s4.REP_IDENTD_UNREACHABLE, s4.REP_USERID_MISMATCH) == (92, 93)
    assert s4.MAX_USERID_LEN == s4.MAX_DOMAIN_LEN == 255


REQUEST_VECTORS = [
    # socks4.protocol: CONNECT 66.102.7.99:80 as "Fred"
    (1, "66.102.7.99", 80, "Fred", "04 01 00 50 42 66 07 63 46 72 65 64 00"),
    (2, "10.0.0.1", 1080, "", "04 02 04 38 0a 00 00 01 00"),
    # socks4a.protocol: DSTIP 0.0.0.1, domain after the userid's NUL
    (
        1,
        "example.com",
        443,
        "Fred",
        "04 01 01 bb 00 00 00 01 46 72 65 64 00 65 78 61 6d 70 6c 65 2e 63 6f 6d 00",
    ),
    (1, "h", 1, "", "04 01 00 01 00 00 00 01 00 68 00"),
]


@pytest.mark.parametrize("cmd,host,port,userid,wire", REQUEST_VECTORS)
def test_request_vectors(cmd: int, host: str, port: int, userid: str, wire: str) -> None:
    raw = H(wire)
    assert s4.build_request(cmd, host, port, userid) == raw
    assert s4.parse_request(raw) == ((cmd, host, port, userid), len(raw))
    assert s4.parse_request(raw + b"\x16\x03\x01") == ((cmd, host, port, userid), len(raw))
    assert s4.parse_request(bytearray(raw)) == ((cmd, host, port, userid), len(raw))
    assert s4.parse_request(memoryview(raw)) == ((cmd, host, port, userid), len(raw))
    _assert_needs_more_at_every_cut(raw)


@pytest.mark.parametrize("last", [1, 7, 255])
def test_socks4a_marker_any_nonzero_last_octet(last: int) -> None:
    raw = bytes((4, 1, 0, 80, 0, 0, 0, last)) + b"\x00host\x00"
    assert s4.parse_request(raw) == ((1, "host", 80, ""), len(raw))


@pytest.mark.parametrize("ip", ["0.0.0.0", "0.0.1.1", "0.1.0.1", "1.0.0.1"])
def test_not_socks4a(ip: str) -> None:
    # Only 0.0.0.x with x != 0 is the 4a marker; the rest are plain IPs.
    packed = bytes(int(p) for p in ip.split("."))
    raw = bytes((4, 1, 0, 80)) + packed + b"\x00host\x00"
    assert s4.parse_request(raw) == ((1, ip, 80, ""), 9)


def test_socks4a_empty_domain_accepted_like_gost() -> None:
    raw = H("04 01 00 50 00 00 00 01 00 00")
    assert s4.parse_request(raw) == ((1, "", 80, ""), 10)


@pytest.mark.parametrize("first", [0x05, 0x00, 0x03, 0xFF])
def test_bad_version_fails_on_first_byte(first: int) -> None:
    with pytest.raises(Socks4Error, match="version"):
        s4.parse_request(bytes((first,)))


@pytest.mark.parametrize("cmd", [0, 3, 0xF0, 0xFF])
def test_bad_command_fails_on_second_byte(cmd: int) -> None:
    with pytest.raises(Socks4Error, match="command"):
        s4.parse_request(bytes((4, cmd)))


def test_userid_limit() -> None:
    head = H("04 01 00 50 7f 00 00 01")
    ok = head + b"u" * 255 + b"\x00"
    assert s4.parse_request(ok) == ((1, "127.0.0.1", 80, "u" * 255), len(ok))
    assert s4.parse_request(head + b"u" * 255) is None  # the NUL may still come
    with pytest.raises(Socks4Error, match="USERID"):
        s4.parse_request(head + b"u" * 256)
    with pytest.raises(Socks4Error, match="USERID"):
        s4.parse_request(head + b"u" * 300 + b"\x00")


def test_domain_limit() -> None:
    head = H("04 01 00 50 00 00 00 01") + b"bob\x00"
    ok = head + b"d" * 255 + b"\x00"
    assert s4.parse_request(ok) == ((1, "d" * 255, 80, "bob"), len(ok))
    assert s4.parse_request(head + b"d" * 255) is None
    with pytest.raises(Socks4Error, match="domain"):
        s4.parse_request(head + b"d" * 256)


def test_reply() -> None:
    assert s4.build_reply(True) == H("00 5a 00 00 00 00 00 00")
    assert s4.build_reply(False) == H("00 5b 00 00 00 00 00 00")
    assert s4.build_reply(False, code=s4.REP_USERID_MISMATCH) == H("00 5d 00 00 00 00 00 00")
    assert s4.build_reply(True, "10.1.2.3", 8080) == H("00 5a 1f 90 0a 01 02 03")
    assert s4.parse_reply(H("00 5a 1f 90 0a 01 02 03 ff")) == ((90, "10.1.2.3", 8080), 8)
    for cut in range(8):
        assert s4.parse_reply(H("00 5a 1f 90 0a 01 02 03")[:cut]) is None
    with pytest.raises(Socks4Error):
        s4.parse_reply(b"\x04")
    with pytest.raises(ValueError):
        s4.build_reply(True, "::1")
    with pytest.raises(ValueError):
        s4.build_reply(True, "example.com")
    with pytest.raises(ValueError):
        s4.build_reply(True, port=65536)
    with pytest.raises(ValueError):
        s4.build_reply(True, code=256)


def test_build_request_rejects() -> None:
    with pytest.raises(ValueError):
        s4.build_request(3, "1.2.3.4", 1)
    with pytest.raises(ValueError):
        s4.build_request(1, "1.2.3.4", 1, "a\x00b")
    with pytest.raises(ValueError):
        s4.build_request(1, "1.2.3.4", 1, "u" * 256)
    with pytest.raises(ValueError):
        s4.build_request(1, "d" * 256, 1)
    with pytest.raises(ValueError):
        s4.build_request(1, "", 1)
    with pytest.raises(ValueError):
        s4.build_request(1, "1.2.3.4", -1)


def test_errors_are_protocol_errors() -> None:
    with pytest.raises(ProtocolError):
        s4.parse_request(b"\x05")


# ---------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------

cstring = (
    st.binary(max_size=255)
    .filter(lambda b: b"\x00" not in b)
    .map(lambda b: b.decode("utf-8", "surrogateescape"))
)
ipv4 = (
    st.ip_addresses(v=4).map(str).filter(lambda ip: not ip.startswith("0.0.0.") or ip == "0.0.0.0")
)
domain = st.from_regex(r"[a-z0-9.-]{1,255}", fullmatch=True).filter(
    lambda d: not d.replace(".", "").isdigit()
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([1, 2]),
    st.one_of(ipv4, domain),
    st.integers(0, 65535),
    cstring,
    st.binary(max_size=4),
)
def test_request_round_trip(cmd: int, host: str, port: int, userid: str, tail: bytes) -> None:
    raw = s4.build_request(cmd, host, port, userid)
    assert s4.parse_request(raw + tail) == ((cmd, host, port, userid), len(raw))
    _assert_needs_more_at_every_cut(raw)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_only_parse_none_or_protocol_error(data: bytes) -> None:
    for parse in (s4.parse_request, s4.parse_reply):
        try:
            result = parse(data)
        except ProtocolError:
            continue
        if result is not None:
            assert 0 < result[1] <= len(data)
