"""The ATYP + ADDR + PORT codec shared by SOCKS5 and the relay ADDR feature."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gostfast.proto.addr import (
    ATYP_DOMAIN,
    ATYP_IPV4,
    ATYP_IPV6,
    address_type,
    decode_addr,
    encode_addr,
    split_host_port,
)
from gostfast.proto.errors import AddressError, ProtocolError, UnknownAddressType

VECTORS = [
    # (host, port, wire)
    ("192.0.2.1", 80, "01 c0 00 02 01 00 50"),
    ("0.0.0.0", 0, "01 00 00 00 00 00 00"),
    ("255.255.255.255", 65535, "01 ff ff ff ff ff ff"),
    ("2001:db8::1", 443, "04 20 01 0d b8" + " 00" * 11 + " 01 01 bb"),
    ("::1", 8080, "04" + " 00" * 15 + " 01 1f 90"),
    ("example.com", 443, "03 0b 65 78 61 6d 70 6c 65 2e 63 6f 6d 01 bb"),
    ("localhost", 8080, "03 09 6c 6f 63 61 6c 68 6f 73 74 1f 90"),
    ("", 53, "03 00 00 35"),
]


@pytest.mark.parametrize("host,port,wire", VECTORS)
def test_vectors_encode_and_decode(host: str, port: int, wire: str) -> None:
    raw = bytes.fromhex(wire)
    assert encode_addr(host, port) == raw
    assert decode_addr(raw) == ((host, port), len(raw))


@pytest.mark.parametrize("host,port,wire", VECTORS)
def test_every_truncation_needs_more(host: str, port: int, wire: str) -> None:
    raw = bytes.fromhex(wire)
    for cut in range(len(raw)):
        assert decode_addr(raw[:cut]) is None, cut


def test_decode_at_offset_counts_from_offset_and_ignores_trailing() -> None:
    buf = b"\xaa\xbb" + encode_addr("10.1.2.3", 1080) + b"tail"
    assert decode_addr(buf, 2) == (("10.1.2.3", 1080), 7)
    assert decode_addr(bytearray(buf), 2) == (("10.1.2.3", 1080), 7)
    assert decode_addr(memoryview(buf), 2) == (("10.1.2.3", 1080), 7)
    assert decode_addr(buf, len(buf)) is None
    with pytest.raises(ValueError):
        decode_addr(buf, -1)


def test_ipv4_mapped_ipv6_is_ipv4_both_ways() -> None:
    # Go: ParseIP(...).To4() != nil -> ATYP 1; net.IP(16 bytes).String() -> dotted.
    assert encode_addr("::ffff:1.2.3.4", 80) == bytes.fromhex("01 01 02 03 04 00 50")
    mapped = bytes([ATYP_IPV6]) + ipaddress.IPv6Address("::ffff:1.2.3.4").packed + b"\x00\x50"
    assert decode_addr(mapped) == (("1.2.3.4", 80), 19)


def test_ipv6_text_is_canonical() -> None:
    raw = encode_addr("2001:0DB8:0000::0001", 1)
    assert raw[0] == ATYP_IPV6
    assert decode_addr(raw) == (("2001:db8::1", 1), 19)


@pytest.mark.parametrize(
    "host",
    ["fe80::1%eth0", "[::1]", "1.2.3", "01.2.3.4", "256.1.1.1", "example.com", "ex ample"],
)
def test_non_literals_go_out_as_domains(host: str) -> None:
    assert address_type(host) == ATYP_DOMAIN
    raw = encode_addr(host, 1)
    assert raw[:2] == bytes((ATYP_DOMAIN, len(host)))
    assert decode_addr(raw) == ((host, 1), len(raw))


def test_address_type() -> None:
    assert address_type("1.2.3.4") == ATYP_IPV4
    assert address_type("::") == ATYP_IPV6
    assert address_type("::ffff:10.0.0.1") == ATYP_IPV4


def test_domain_length_limit() -> None:
    assert len(encode_addr("a" * 255, 1)) == 1 + 1 + 255 + 2
    with pytest.raises(ValueError, match="255"):
        encode_addr("a" * 256, 1)
    with pytest.raises(ValueError):  # limit is in bytes, not characters
        encode_addr("é" * 128, 1)


def test_non_utf8_domain_bytes_round_trip() -> None:
    raw = b"\x03\x03\xff\xfe\x00\x00\x01"
    (host, port), used = decode_addr(raw)
    assert (port, used) == (1, 7)
    assert encode_addr(host, port) == raw


@pytest.mark.parametrize("port", [-1, 65536, 1.0, "80", None])
def test_bad_ports_rejected(port: object) -> None:
    with pytest.raises(ValueError):
        encode_addr("1.2.3.4", port)  # type: ignore[arg-type]


def test_bad_host_type_rejected() -> None:
    with pytest.raises(ValueError):
        encode_addr(b"example.com", 1)  # type: ignore[arg-type]


@pytest.mark.parametrize("atyp", [0x00, 0x02, 0x05, 0x7F, 0xFF])
def test_unknown_atyp(atyp: int) -> None:
    with pytest.raises(UnknownAddressType) as info:
        decode_addr(bytes((atyp,)))
    assert info.value.atyp == atyp
    assert isinstance(info.value, ProtocolError)
    assert isinstance(info.value, ValueError)
    assert f"0x{atyp:02x}" in str(info.value)


# ---------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------

hosts = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
    st.text(max_size=80).filter(lambda h: len(h.encode("utf-8", "surrogateescape")) <= 255),
    st.binary(max_size=255).map(lambda b: b.decode("utf-8", "surrogateescape")),
)
ports = st.integers(0, 65535)


def _canonical(host: str) -> str:
    if "%" in host:
        return host
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


@settings(max_examples=300, deadline=None)
@given(hosts, ports, st.binary(max_size=8))
def test_round_trip_and_truncation(host: str, port: int, tail: bytes) -> None:
    raw = encode_addr(host, port)
    assert decode_addr(raw + tail) == ((_canonical(host), port), len(raw))
    for cut in range(len(raw)):
        assert decode_addr(raw[:cut]) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40))
def test_random_bytes_never_crash(data: bytes) -> None:
    try:
        result = decode_addr(data)
    except UnknownAddressType:
        assert data[0] not in (ATYP_IPV4, ATYP_DOMAIN, ATYP_IPV6)
        return
    if result is not None:
        (host, port), used = result
        assert 0 < used <= len(data)
        again = encode_addr(host, port)
        assert decode_addr(again) == ((_canonical(host), port), len(again))
        if data[0] == ATYP_IPV4 or (data[0] == ATYP_DOMAIN and address_type(host) == ATYP_DOMAIN):
            assert again == data[:used]


# --------------------------------------------------------------------------- split_host_port
# Go's net.SplitHostPort cases (net/ipsock_test.go's table, read for the rules)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("localhost:80", ("localhost", "80")),
        ("[::1]:80", ("::1", "80")),
        ("[fe80::1%lo0]:80", ("fe80::1%lo0", "80")),
        ("localhost:", ("localhost", "")),
        ("[::1]:", ("::1", "")),
        (":80", ("", "80")),
        ("[]:80", ("", "80")),
        ("host:8000-8002", ("host", "8000-8002")),  # ports as written: callers check them
    ],
)
def test_split_host_port(text: str, expected: tuple[str, str]) -> None:
    assert split_host_port(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("localhost", "missing port in address"),
        ("[::1]", "missing port in address"),
        ("[::1]x", "missing port in address"),
        ("::1", "too many colons in address"),
        ("a:b:c", "too many colons in address"),
        ("[::1]:80:90", "too many colons in address"),
        ("[::1:80", "missing ']' in address"),
        ("a[b]:80", "unexpected '[' in address"),
        ("a]:80", "unexpected ']' in address"),
        ("[a]:8]0", "unexpected ']' in address"),
    ],
)
def test_split_host_port_refuses_as_go(text: str, why: str) -> None:
    with pytest.raises(AddressError) as info:
        split_host_port(text)
    assert info.value.reason == why
    assert str(info.value) == f"address {text}: {why}"
