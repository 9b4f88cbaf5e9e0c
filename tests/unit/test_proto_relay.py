"""GOST relay protocol codec (go-gost/relay v0.7.0 wire format)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gostfast.proto import relay
from gostfast.proto.errors import ProtocolError, RelayError
from gostfast.proto.relay import Addr, Network, Opaque, Request, Response, Tunnel, UserAuth

H = bytes.fromhex


def _assert_needs_more_at_every_cut(parse, raw: bytes) -> None:
    for cut in range(len(raw)):
        assert parse(raw[:cut]) is None, f"cut at {cut} of {raw.hex(' ')}"


def test_constants() -> None:
    assert relay.VERSION1 == 1
    assert (relay.CMD_CONNECT, relay.CMD_BIND, relay.CMD_ASSOCIATE) == (1, 2, 3)
    assert (relay.CMD_MASK, relay.FLAG_UDP) == (0x0F, 0x80)
    statuses = [
        relay.STATUS_OK,
        relay.STATUS_BAD_REQUEST,
        relay.STATUS_UNAUTHORIZED,
        relay.STATUS_FORBIDDEN,
        relay.STATUS_TIMEOUT,
        relay.STATUS_SERVICE_UNAVAILABLE,
        relay.STATUS_HOST_UNREACHABLE,
        relay.STATUS_NETWORK_UNREACHABLE,
        relay.STATUS_INTERNAL_SERVER_ERROR,
    ]
    assert statuses == list(range(9))
    assert (
        relay.FEATURE_USERAUTH,
        relay.FEATURE_ADDR,
        relay.FEATURE_TUNNEL,
        relay.FEATURE_NETWORK,
    ) == (1, 2, 3, 4)
    assert (relay.NETWORK_TCP, relay.NETWORK_UDP, relay.NETWORK_IP) == (0, 1, 2)
    assert (relay.NETWORK_UNIX, relay.NETWORK_SERIAL) == (0x10, 0x11)
    assert relay.status_text(relay.STATUS_UNAUTHORIZED) == "Unauthorized"
    assert relay.status_text(0x42) == ""
    assert relay.network_name(relay.NETWORK_SERIAL) == "serial"
    assert relay.network_name(0x99) == "tcp"  # GOST's default for unknown IDs
    assert Network(relay.NETWORK_UDP).name == "udp"


# ---------------------------------------------------------------------------
# Byte-exact vectors (derived from go-gost/relay's WriteTo/Encode)
# ---------------------------------------------------------------------------

REQUEST_VECTORS = [
    # spec: CONNECT example.com:443, no auth
    (
        Request(cmd=relay.CMD_CONNECT, features=[Addr("example.com", 443)]),
        "01 01 00 12 02 00 0f 03 0b 65 78 61 6d 70 6c 65 2e 63 6f 6d 01 bb",
    ),
    # bare CONNECT, no features
    (Request(), "01 01 00 00"),
    # GOST connector, UDP with auth: cmd 0x81, NETWORK udp, USERAUTH, ADDR (that order)
    (
        Request(
            cmd=relay.CMD_CONNECT | relay.FLAG_UDP,
            features=[
                Network(relay.NETWORK_UDP),
                UserAuth("user", "pass"),
                Addr("127.0.0.1", 8080),
            ],
        ),
        "01 81 00 1c 04 00 02 00 01 01 00 0a 04 75 73 65 72 04 70 61 73 73"
        " 02 00 07 01 7f 00 00 01 1f 90",
    ),
    # NETWORK unix: the path travels as a domain, port 0
    (
        Request(features=[Network(relay.NETWORK_UNIX), Addr("/tmp/s", 0)]),
        "01 01 00 12 04 00 02 00 10 02 00 0a 03 06 2f 74 6d 70 2f 73 00 00",
    ),
    # IPv6 target, empty credentials
    (
        Request(features=[UserAuth("", ""), Addr("::1", 22)]),
        "01 01 00 1b 01 00 02 00 00 02 00 13 04" + " 00" * 15 + " 01 00 16",
    ),
    # BIND with a tunnel ID (private flag 0x80 at byte 16, weight at byte 19)
    (
        Request(
            cmd=relay.CMD_BIND,
            features=[Tunnel(b"\xde" * 16 + b"\x80\x00\x00\x0a")],
        ),
        "01 02 00 17 03 00 14" + " de" * 16 + " 80 00 00 0a",
    ),
]


@pytest.mark.parametrize("req,wire", REQUEST_VECTORS)
def test_request_vectors(req: Request, wire: str) -> None:
    raw = H(wire)
    assert relay.encode_request(req) == raw
    assert relay.parse_request(raw) == (req, len(raw))
    # the lazy-mode connector glues the first payload to the request
    assert relay.parse_request(raw + b"GET / HTTP/1.1\r\n") == (req, len(raw))
    assert relay.parse_request(bytearray(raw)) == (req, len(raw))
    assert relay.parse_request(memoryview(raw)) == (req, len(raw))
    _assert_needs_more_at_every_cut(relay.parse_request, raw)


RESPONSE_VECTORS = [
    (Response(), "01 00 00 00"),
    (Response(status=relay.STATUS_UNAUTHORIZED), "01 02 00 00"),
    (Response(status=relay.STATUS_NETWORK_UNREACHABLE), "01 07 00 00"),
    # BIND response: the bound address
    (
        Response(features=[Addr("127.0.0.1", 8080)]),
        "01 00 00 0a 02 00 07 01 7f 00 00 01 1f 90",
    ),
    # tunnel response: connector ID with the UDP flag, then NETWORK
    (
        Response(
            status=relay.STATUS_UNAUTHORIZED,
            features=[Tunnel(b"\xcd" * 16 + b"\x01\x00\x00\x00"), Network(relay.NETWORK_UDP)],
        ),
        "01 02 00 1c 03 00 14" + " cd" * 16 + " 01 00 00 00 04 00 02 00 01",
    ),
]


@pytest.mark.parametrize("resp,wire", RESPONSE_VECTORS)
def test_response_vectors(resp: Response, wire: str) -> None:
    raw = H(wire)
    assert relay.encode_response(resp) == raw
    assert relay.parse_response(raw) == (resp, len(raw))
    # lazy-mode handler: the OK response arrives glued to the first data bytes
    assert relay.parse_response(raw + b"HTTP/1.1 200 OK") == (resp, len(raw))
    _assert_needs_more_at_every_cut(relay.parse_response, raw)


def test_request_helpers() -> None:
    req = Request(
        cmd=0x81,
        features=[Addr("a", 1), UserAuth("u", "p"), Addr("b", 2), Opaque(0x05, b"x")],
    )
    assert req.command == relay.CMD_CONNECT and req.udp
    assert req.feature(Addr) == Addr("b", 2)  # last one wins, as in GOST's handler loop
    assert req.feature(UserAuth) == UserAuth("u", "p")
    assert req.feature(Network) is None
    assert req.feature(Opaque) == Opaque(5, b"x")
    assert Request(cmd=0x00).command == 0 and not Request().udp
    resp = Response(features=[Addr("1.2.3.4", 5)])
    assert resp.feature(Addr) == Addr("1.2.3.4", 5)


# ---------------------------------------------------------------------------
# Unknown features: opaque since relay v0.6.1 (x pins v0.7.0)
# ---------------------------------------------------------------------------


def test_unknown_feature_is_kept_opaque() -> None:
    # go-gost/relay TestUnknownFeatureInRequest: 0xFE [11 22] then ADDR 1.2.3.4:1080
    raw = H("01 01 00 0f fe 00 02 11 22 02 00 07 01 01 02 03 04 04 38")
    req, used = relay.parse_request(raw)
    assert used == len(raw)
    assert req.features == [Opaque(0xFE, b"\x11\x22"), Addr("1.2.3.4", 1080)]
    assert relay.encode_request(req) == raw
    empty = H("01 00 00 03 09 00 00")
    assert relay.parse_response(empty) == (Response(features=[Opaque(9, b"")]), 7)


def test_unknown_feature_rejected_when_strict() -> None:
    raw = H("01 01 00 0f fe 00 02 11 22 02 00 07 01 01 02 03 04 04 38")
    with pytest.raises(RelayError, match="unknown feature type 254"):
        relay.parse_request(raw, strict=True)
    with pytest.raises(RelayError, match="unknown feature"):
        relay.parse_response(H("01 00 00 03 05 00 00"), strict=True)
    assert relay.parse_request(H(REQUEST_VECTORS[2][1]), strict=True) is not None


def test_opaque_cannot_masquerade_as_known() -> None:
    with pytest.raises(ValueError):
        relay.encode_request(Request(features=[Opaque(relay.FEATURE_ADDR, b"\x01")]))
    with pytest.raises(ValueError):
        relay.encode_request(Request(features=[Opaque(256, b"")]))


# ---------------------------------------------------------------------------
# Malformed input
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("first", [0x00, 0x02, 0x05, 0xFF])
def test_bad_version_fails_on_first_byte(first: int) -> None:
    with pytest.raises(RelayError, match="request: version"):
        relay.parse_request(bytes((first,)))
    with pytest.raises(RelayError, match="response: version"):
        relay.parse_response(bytes((first,)) + b"\x00\x00\x00")


MALFORMED_FEATURE_BLOCKS = [
    # (feature block, message fragment)
    ("01 00 0a 01 61 62", "declares 10"),  # go-gost TestRequestReadFromMalformedFeatures
    ("04", "header truncated"),
    ("04 00", "header truncated"),
    ("04 00 02 00", "declares 2"),
    # USERAUTH
    ("01 00 00", "USERAUTH"),
    ("01 00 01 00", "USERAUTH"),
    ("01 00 03 0a 61 62", "username length"),
    ("01 00 05 02 61 62 05 63", "password length"),
    ("01 00 08 03 75 73 65 04 70 77 64", "password length"),  # go-gost fuzz seed
    # ADDR
    ("02 00 00", "ADDR"),  # an empty ADDR is rejected
    ("02 00 03 01 01 02", "ADDR"),
    ("02 00 06 01 01 02 03 04 05", "ADDR"),  # IPv4 missing a port byte
    ("02 00 04 ff 00 00 00", "unknown address type"),
    ("02 00 08 03 05 61 62 63 64 65 00", "ADDR"),  # domain overruns
    ("02 00 12 04" + " 00" * 17, "ADDR"),  # IPv6 one byte short
    # TUNNEL: 20 bytes needed (relay >= v0.6)
    ("03 00 13" + " 00" * 19, "TUNNEL"),
    ("03 00 10" + " 00" * 16, "TUNNEL"),
    ("03 00 00", "TUNNEL"),
    # NETWORK
    ("04 00 01 00", "NETWORK"),
    ("04 00 00", "NETWORK"),
]


@pytest.mark.parametrize("block,message", MALFORMED_FEATURE_BLOCKS)
def test_malformed_features(block: str, message: str) -> None:
    raw_block = H(block)
    head = len(raw_block).to_bytes(2, "big")
    with pytest.raises(RelayError, match=message):
        relay.parse_request(b"\x01\x01" + head + raw_block)
    with pytest.raises(RelayError, match=message):
        relay.parse_response(b"\x01\x00" + head + raw_block)


def test_bytes_after_a_known_feature_value_are_ignored_like_gost() -> None:
    assert relay.parse_request(H("01 01 00 06 04 00 03 00 01 ff")) == (
        Request(features=[Network(1)]),
        10,
    )
    assert relay.parse_request(H("01 01 00 0b 02 00 08 01 01 02 03 04 00 50 ee")) == (
        Request(features=[Addr("1.2.3.4", 80)]),
        15,
    )
    tunnel = b"\x07" * 20
    assert relay.parse_request(H("01 01 00 18 03 00 15") + tunnel + b"\xff") == (
        Request(features=[Tunnel(tunnel)]),
        28,
    )
    assert relay.parse_request(H("01 01 00 08 01 00 05 01 61 01 62 ff")) == (
        Request(features=[UserAuth("a", "b")]),
        12,
    )


def test_addr_feature_empty_domain() -> None:
    # GOST accepts `03 00 port` (4 bytes): an empty host.
    assert relay.parse_request(H("01 01 00 07 02 00 04 03 00 00 50")) == (
        Request(features=[Addr("", 80)]),
        11,
    )


def test_encode_limits() -> None:
    with pytest.raises(ValueError, match="username"):
        relay.encode_request(Request(features=[UserAuth("u" * 256, "")]))
    with pytest.raises(ValueError, match="password"):
        relay.encode_request(Request(features=[UserAuth("", "p" * 256)]))
    with pytest.raises(ValueError):
        relay.encode_request(Request(features=[Addr("d" * 256, 1)]))
    with pytest.raises(ValueError):
        relay.encode_request(Request(features=[Addr("1.2.3.4", 65536)]))
    with pytest.raises(ValueError, match="20 bytes"):
        relay.encode_request(Request(features=[Tunnel(b"\x01" * 16)]))
    with pytest.raises(ValueError):
        relay.encode_request(Request(features=[Network(0x10000)]))
    with pytest.raises(ValueError):
        relay.encode_request(Request(cmd=256))
    with pytest.raises(ValueError):
        relay.encode_response(Response(status=-1))
    # go-gost TestWriteToMaxFeatureLength: FEATLEN over 0xFFFF is refused
    many = [Network(0)] * (0xFFFF // 5 + 1)
    with pytest.raises(ValueError, match="65535"):
        relay.encode_request(Request(features=many))
    fits = [Network(0)] * (0xFFFF // 5)
    raw = relay.encode_request(Request(features=fits))
    assert len(raw) == 4 + 5 * len(fits)
    assert relay.parse_request(raw) == (Request(features=fits), len(raw))
    big = [Opaque(0x10, b"\x00" * (0xFFFF - 3))]
    raw = relay.encode_response(Response(features=big))
    assert raw[:4] == b"\x01\x00\xff\xff"
    assert relay.parse_response(raw) == (Response(features=big), len(raw))
    with pytest.raises(ValueError):
        relay.encode_response(Response(features=[Opaque(0x10, b"\x00" * (0xFFFF - 2))]))


def test_errors_are_protocol_errors() -> None:
    with pytest.raises(ProtocolError):
        relay.parse_request(b"\x02")
    with pytest.raises(ValueError):
        relay.parse_request(b"\x02")


# ---------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------

text255 = st.text(max_size=40).filter(lambda t: len(t.encode("utf-8", "surrogateescape")) <= 255)
hosts = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).filter(lambda ip: ip.ipv4_mapped is None).map(str),
    st.from_regex(r"[a-z][a-z0-9-]{0,30}(\.[a-z0-9-]{1,30}){0,3}", fullmatch=True),
)
known_types = {
    relay.FEATURE_USERAUTH,
    relay.FEATURE_ADDR,
    relay.FEATURE_TUNNEL,
    relay.FEATURE_NETWORK,
}
features = st.one_of(
    st.builds(UserAuth, text255, text255),
    st.builds(Addr, hosts, st.integers(0, 65535)),
    st.builds(Tunnel, st.binary(min_size=20, max_size=20)),
    st.builds(Network, st.integers(0, 65535)),
    st.builds(
        Opaque,
        st.integers(0, 255).filter(lambda t: t not in known_types),
        st.binary(max_size=40),
    ),
)
feature_lists = st.lists(features, max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 255), feature_lists, st.binary(max_size=4))
def test_request_round_trip(cmd: int, fs: list, tail: bytes) -> None:
    req = Request(cmd=cmd, features=fs)
    raw = relay.encode_request(req)
    assert relay.parse_request(raw + tail) == (req, len(raw))
    _assert_needs_more_at_every_cut(relay.parse_request, raw)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 255), feature_lists, st.binary(max_size=4))
def test_response_round_trip(status: int, fs: list, tail: bytes) -> None:
    resp = Response(status=status, features=fs)
    raw = relay.encode_response(resp)
    assert relay.parse_response(raw + tail) == (resp, len(raw))
    _assert_needs_more_at_every_cut(relay.parse_response, raw)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_random_features_only_parse_or_raise_protocol_error(block: bytes) -> None:
    raw = b"\x01\x01" + len(block).to_bytes(2, "big") + block
    for parse in (relay.parse_request, relay.parse_response):
        try:
            result = parse(raw)
        except ProtocolError:
            continue
        assert result is not None and result[1] == len(raw)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40))
def test_random_bytes_only_parse_none_or_protocol_error(data: bytes) -> None:
    for parse in (relay.parse_request, relay.parse_response):
        try:
            result = parse(data)
        except ProtocolError:
            continue
        if result is not None:
            assert 4 <= result[1] <= len(data)


# ------------------------------------------------ UDP frames (CONNECT with FLAG_UDP)


def test_udp_frame_bytes_and_cuts() -> None:
    raw = relay.build_udp_frame(b"dns")
    assert raw == b"\x00\x03dns"
    assert relay.parse_udp_frame(raw + b"\x00") == (2, 5)
    assert [relay.parse_udp_frame(raw[:cut]) for cut in range(len(raw))] == [None] * len(raw)
    assert relay.parse_udp_frame(b"\x00\x00") == (2, 2)  # an empty datagram
    with pytest.raises(ValueError):
        relay.build_udp_frame(bytes(relay.MAX_UDP_PAYLOAD + 1))
