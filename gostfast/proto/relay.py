"""GOST's relay protocol (go-gost/relay, v0.7.0 as pinned by go-gost/x), sans-IO.

Request and response share one shape; every integer is big-endian::

    request:  VER(1)=0x01 | CMD/FLAGS(1) | FEATLEN(2) | FEATURES(FEATLEN bytes)
    response: VER(1)=0x01 | STATUS(1)    | FEATLEN(2) | FEATURES(FEATLEN bytes)
    feature:  TYPE(1) | LEN(2) | VALUE(LEN bytes)

CMD: low nibble (``CMD_MASK``) CONNECT 1 / BIND 2 / ASSOCIATE 3 (GOST's handler
treats 0 as CONNECT); bit ``FLAG_UDP`` (0x80) asks for UDP (superseded by the
NETWORK feature, which GOST's connector sends as well).

Feature values (``decode`` follows go-gost/relay's ``Decode`` methods):

* USERAUTH (1): ``ulen(1) user plen(1) pass``. Fewer than 2 bytes, or a length that
  overruns the value, is an error; empty user and password are fine.
* ADDR (2): ``atyp addr port`` exactly as SOCKS5 (see ``gostfast.proto.addr``);
  a truncated or unknown address is an error, so an empty ADDR value is rejected.
  For NETWORK unix/serial GOST puts the path in the domain and ignores the port.
* TUNNEL (3): a 20-byte tunnel ID (request) or connector ID (response): 16-byte
  UUID, flags byte (0x80 private tunnel / 0x01 UDP connector), 2 reserved bytes,
  weight byte. Fewer than 20 bytes is an error (relay >= v0.6; v0.5 took 16).
* NETWORK (4): a uint16: tcp 0, udp 1, ip 2, unix 0x10, serial 0x11.
* Any other type: since relay v0.6.1 GOST does NOT reject it; it keeps the raw
  bytes (``OpaqueFeature``) and ignores them. v0.7.0 uses this for its METADATA
  feature (tunnel record mode). Here it becomes ``Opaque``; ``strict=True`` restores
  the old reject-unknown behaviour.

Bytes left over inside a known feature's value are ignored, as GOST ignores them.
A feature header or value that overruns FEATLEN is an error; so is VER != 1 (GOST
closes the connection without a response).

Parsers return ``(message, consumed)``, or None until FEATLEN bytes of features have
arrived; they raise RelayError on malformed input. Encoders raise ValueError for
values that cannot be encoded (fields over 255 bytes, FEATLEN over 65535).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from gostfast.proto.addr import (
    as_bytes_view,
    decode_addr,
    decode_text,
    encode_addr,
    encode_text,
)
from gostfast.proto.errors import AddressError, RelayError

__all__ = [
    "VERSION1",
    "CMD_CONNECT",
    "CMD_BIND",
    "CMD_ASSOCIATE",
    "CMD_MASK",
    "FLAG_UDP",
    "STATUS_OK",
    "STATUS_BAD_REQUEST",
    "STATUS_UNAUTHORIZED",
    "STATUS_FORBIDDEN",
    "STATUS_TIMEOUT",
    "STATUS_SERVICE_UNAVAILABLE",
    "STATUS_HOST_UNREACHABLE",
    "STATUS_NETWORK_UNREACHABLE",
    "STATUS_INTERNAL_SERVER_ERROR",
    "FEATURE_USERAUTH",
    "FEATURE_ADDR",
    "FEATURE_TUNNEL",
    "FEATURE_NETWORK",
    "NETWORK_TCP",
    "NETWORK_UDP",
    "NETWORK_IP",
    "NETWORK_UNIX",
    "NETWORK_SERIAL",
    "TUNNEL_ID_LEN",
    "MAX_FEATURES_LEN",
    "UserAuth",
    "Addr",
    "Tunnel",
    "Network",
    "Opaque",
    "Feature",
    "Request",
    "Response",
    "encode_feature",
    "encode_request",
    "parse_request",
    "encode_response",
    "parse_response",
    "status_text",
    "network_name",
    "MAX_UDP_PAYLOAD",
    "build_udp_frame",
    "parse_udp_frame",
]

VERSION1 = 0x01

CMD_CONNECT = 0x01
CMD_BIND = 0x02
CMD_ASSOCIATE = 0x03
CMD_MASK = 0x0F
FLAG_UDP = 0x80

STATUS_OK = 0x00
STATUS_BAD_REQUEST = 0x01
STATUS_UNAUTHORIZED = 0x02
STATUS_FORBIDDEN = 0x03
STATUS_TIMEOUT = 0x04
STATUS_SERVICE_UNAVAILABLE = 0x05
STATUS_HOST_UNREACHABLE = 0x06
STATUS_NETWORK_UNREACHABLE = 0x07
STATUS_INTERNAL_SERVER_ERROR = 0x08

FEATURE_USERAUTH = 0x01
FEATURE_ADDR = 0x02
FEATURE_TUNNEL = 0x03
FEATURE_NETWORK = 0x04

NETWORK_TCP = 0x00
NETWORK_UDP = 0x01
NETWORK_IP = 0x02
NETWORK_UNIX = 0x10
NETWORK_SERIAL = 0x11

TUNNEL_ID_LEN = 20
MAX_FEATURES_LEN = 0xFFFF

_HEADER_LEN = 4
_FEATURE_HEADER_LEN = 3
_MAX_FIELD = 255

_STATUS_TEXT = {
    STATUS_OK: "OK",
    STATUS_BAD_REQUEST: "Bad Request",
    STATUS_UNAUTHORIZED: "Unauthorized",
    STATUS_FORBIDDEN: "Forbidden",
    STATUS_TIMEOUT: "Timeout",
    STATUS_SERVICE_UNAVAILABLE: "Service Unavailable",
    STATUS_HOST_UNREACHABLE: "Host Unreachable",
    STATUS_NETWORK_UNREACHABLE: "Network Unreachable",
    STATUS_INTERNAL_SERVER_ERROR: "Internal Server Error",
}

_NETWORK_NAMES = {
    NETWORK_TCP: "tcp",
    NETWORK_UDP: "udp",
    NETWORK_IP: "ip",
    NETWORK_UNIX: "unix",
    NETWORK_SERIAL: "serial",
}

Buffer = bytes | bytearray | memoryview


def status_text(status: int) -> str:
    """GOST's text for a status code ("" for unknown ones), for error messages."""
    return _STATUS_TEXT.get(status, "")


def network_name(value: int) -> str:
    """GOST's name for a NETWORK value; unknown values mean "tcp", as in GOST."""
    return _NETWORK_NAMES.get(value, "tcp")


# ---------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class UserAuth:
    """USERAUTH: credentials checked by the server's auther."""

    username: str
    password: str

    type = FEATURE_USERAUTH

    def encode_value(self) -> bytes:
        user = encode_text(self.username)
        pwd = encode_text(self.password)
        for what, raw in (("username", user), ("password", pwd)):
            if len(raw) > _MAX_FIELD:
                raise ValueError(f"relay {what} is {len(raw)} bytes, the limit is {_MAX_FIELD}")
        return bytes((len(user),)) + user + bytes((len(pwd),)) + pwd

    @classmethod
    def decode_value(cls, value: bytes) -> UserAuth:
        if len(value) < 2:
            raise RelayError(f"USERAUTH feature is {len(value)} bytes, at least 2 needed")
        ulen = value[0]
        if len(value) < 1 + ulen + 1:
            raise RelayError(f"USERAUTH username length {ulen} overruns the feature")
        plen = value[1 + ulen]
        end = 2 + ulen + plen
        if len(value) < end:
            raise RelayError(f"USERAUTH password length {plen} overruns the feature")
        return cls(decode_text(value[1 : 1 + ulen]), decode_text(value[2 + ulen : end]))


@dataclass(frozen=True)
class Addr:
    """ADDR: the target (request) or a bound address (BIND response)."""

    host: str
    port: int

    type = FEATURE_ADDR

    def encode_value(self) -> bytes:
        return encode_addr(self.host, self.port)

    @classmethod
    def decode_value(cls, value: bytes) -> Addr:
        try:
            decoded = decode_addr(value)
        except AddressError as exc:
            raise RelayError(f"ADDR feature: {exc}") from None
        if decoded is None:
            raise RelayError(f"ADDR feature truncated ({len(value)} bytes)")
        (host, port), _ = decoded
        return cls(host, port)


@dataclass(frozen=True)
class Tunnel:
    """TUNNEL: a 20-byte tunnel ID (request) or connector ID (response)."""

    id: bytes

    type = FEATURE_TUNNEL

    def encode_value(self) -> bytes:
        if len(self.id) != TUNNEL_ID_LEN:
            raise ValueError(f"tunnel ID must be {TUNNEL_ID_LEN} bytes, got {len(self.id)}")
        return bytes(self.id)

    @classmethod
    def decode_value(cls, value: bytes) -> Tunnel:
        if len(value) < TUNNEL_ID_LEN:
            raise RelayError(f"TUNNEL feature is {len(value)} bytes, {TUNNEL_ID_LEN} needed")
        return cls(value[:TUNNEL_ID_LEN])


@dataclass(frozen=True)
class Network:
    """NETWORK: which network the target lives on (``NETWORK_*``)."""

    value: int

    type = FEATURE_NETWORK

    @property
    def name(self) -> str:
        return network_name(self.value)

    def encode_value(self) -> bytes:
        if not isinstance(self.value, int) or not 0 <= self.value <= 0xFFFF:
            raise ValueError(f"network must be an int in 0..65535, got {self.value!r}")
        return self.value.to_bytes(2, "big")

    @classmethod
    def decode_value(cls, value: bytes) -> Network:
        if len(value) < 2:
            raise RelayError(f"NETWORK feature is {len(value)} bytes, 2 needed")
        return cls(int.from_bytes(value[:2], "big"))


@dataclass(frozen=True)
class Opaque:
    """A feature type this codec does not know, kept byte-for-byte (GOST does the
    same since relay v0.6.1 and otherwise ignores it)."""

    type: int
    data: bytes

    def encode_value(self) -> bytes:
        if self.type in _KNOWN:
            raise ValueError(f"feature type {self.type} is known: use its own class")
        if not isinstance(self.type, int) or not 0 <= self.type <= 0xFF:
            raise ValueError(f"feature type must be an int in 0..255, got {self.type!r}")
        return bytes(self.data)


Feature = UserAuth | Addr | Tunnel | Network | Opaque

_KNOWN: dict[int, type[UserAuth] | type[Addr] | type[Tunnel] | type[Network]] = {
    FEATURE_USERAUTH: UserAuth,
    FEATURE_ADDR: Addr,
    FEATURE_TUNNEL: Tunnel,
    FEATURE_NETWORK: Network,
}

_F = TypeVar("_F")


def encode_feature(feature: Feature) -> bytes:
    """TYPE | LEN | VALUE for one feature."""
    value = feature.encode_value()
    if len(value) > MAX_FEATURES_LEN - _FEATURE_HEADER_LEN:
        raise ValueError(f"feature value is {len(value)} bytes, too long for FEATLEN")
    return bytes((feature.type,)) + len(value).to_bytes(2, "big") + value


def _encode_features(features: list[Feature]) -> bytes:
    block = b"".join(encode_feature(f) for f in features)
    if len(block) > MAX_FEATURES_LEN:
        raise ValueError(f"features are {len(block)} bytes, the limit is {MAX_FEATURES_LEN}")
    return block


def _decode_features(block: bytes, strict: bool) -> list[Feature]:
    features: list[Feature] = []
    pos = 0
    while pos < len(block):
        if len(block) - pos < _FEATURE_HEADER_LEN:
            raise RelayError(f"feature header truncated: {len(block) - pos} bytes left")
        ftype = block[pos]
        flen = int.from_bytes(block[pos + 1 : pos + 3], "big")
        start = pos + _FEATURE_HEADER_LEN
        end = start + flen
        if end > len(block):
            raise RelayError(
                f"feature type {ftype} declares {flen} bytes, only {len(block) - start} left"
            )
        value = block[start:end]
        cls = _KNOWN.get(ftype)
        if cls is not None:
            features.append(cls.decode_value(value))
        elif strict:
            raise RelayError(f"unknown feature type {ftype}")
        else:
            features.append(Opaque(ftype, value))
        pos = end
    return features


def _find(features: list[Feature], kind: type[_F]) -> _F | None:
    found = None
    for f in features:
        if isinstance(f, kind):
            found = f
    return found


# ---------------------------------------------------------------------------
# Request / response
# ---------------------------------------------------------------------------


@dataclass
class Request:
    """A relay request. ``cmd`` carries the command (low nibble) and flags."""

    version: int = VERSION1
    cmd: int = CMD_CONNECT
    features: list[Feature] = field(default_factory=list)

    @property
    def command(self) -> int:
        """The command nibble (0 is handled as CONNECT by GOST)."""
        return self.cmd & CMD_MASK

    @property
    def udp(self) -> bool:
        """The FLAG_UDP bit (GOST's handler forces network "udp" when it is set)."""
        return bool(self.cmd & FLAG_UDP)

    def feature(self, kind: type[_F]) -> _F | None:
        """The LAST feature of that class, which is the one GOST's handler uses."""
        return _find(self.features, kind)


@dataclass
class Response:
    """A relay response; ``status`` is one of ``STATUS_*``."""

    version: int = VERSION1
    status: int = STATUS_OK
    features: list[Feature] = field(default_factory=list)

    def feature(self, kind: type[_F]) -> _F | None:
        """The last feature of that class."""
        return _find(self.features, kind)


def _encode_message(version: int, code: int, features: list[Feature], what: str) -> bytes:
    for name, v in (("version", version), (what, code)):
        if not isinstance(v, int) or not 0 <= v <= 0xFF:
            raise ValueError(f"relay {name} must be an int in 0..255, got {v!r}")
    block = _encode_features(features)
    return bytes((version, code)) + len(block).to_bytes(2, "big") + block


def _parse_message(buf: Buffer, what: str, strict: bool) -> tuple[int, list[Feature], int] | None:
    view = as_bytes_view(buf)
    if len(view) >= 1 and view[0] != VERSION1:
        raise RelayError(f"relay {what}: version 0x{view[0]:02x}, expected 0x01")
    if len(view) < _HEADER_LEN:
        return None
    flen = int.from_bytes(view[2:4], "big")
    end = _HEADER_LEN + flen
    if len(view) < end:
        return None
    features = _decode_features(bytes(view[_HEADER_LEN:end]), strict)
    return view[1], features, end


def encode_request(req: Request) -> bytes:
    """The wire bytes of ``req`` (features in list order)."""
    return _encode_message(req.version, req.cmd, req.features, "cmd")


def parse_request(buf: Buffer, *, strict: bool = False) -> tuple[Request, int] | None:
    """-> (Request, consumed). ``strict`` rejects unknown feature types."""
    parsed = _parse_message(buf, "request", strict)
    if parsed is None:
        return None
    cmd, features, used = parsed
    return Request(VERSION1, cmd, features), used


def encode_response(resp: Response) -> bytes:
    """The wire bytes of ``resp``; the plain OK response is ``01 00 00 00``."""
    return _encode_message(resp.version, resp.status, resp.features, "status")


def parse_response(buf: Buffer, *, strict: bool = False) -> tuple[Response, int] | None:
    """-> (Response, consumed). ``strict`` rejects unknown feature types."""
    parsed = _parse_message(buf, "response", strict)
    if parsed is None:
        return None
    status, features, used = parsed
    return Response(VERSION1, status, features), used


MAX_UDP_PAYLOAD = 0xFFFF
"""The longest datagram a relay UDP frame carries (a 16-bit length)."""


def build_udp_frame(payload: Buffer) -> bytes:
    """A datagram on a relay UDP stream (CONNECT with FLAG_UDP): ``len(2, BE) payload``.

    Raises ValueError past ``MAX_UDP_PAYLOAD`` (GOST: "data maximum exceeded").
    """
    if len(payload) > MAX_UDP_PAYLOAD:
        raise ValueError(f"relay UDP datagram of {len(payload)} bytes (at most {MAX_UDP_PAYLOAD})")
    return len(payload).to_bytes(2, "big") + payload


def parse_udp_frame(buf: Buffer) -> tuple[int, int] | None:
    """-> (payload offset, frame length), or None while the frame is incomplete.

    Any 16-bit length frames, so a relay UDP stream cannot be malformed past its
    response; only a frame too long for the reader's buffer is refused, there.
    """
    view = as_bytes_view(buf)
    if len(view) < 2:
        return None
    end = 2 + int.from_bytes(view[0:2], "big")
    return (2, end) if len(view) >= end else None
