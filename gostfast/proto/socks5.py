"""SOCKS5 (RFC 1928) and username/password auth (RFC 1929), as GOST speaks them.

Server side (the socks5 handler) and client side (the socks5 connector) in one
sans-IO module. Every parser takes the bytes received so far and returns
``(value, consumed)``, or None when the message is not complete yet; it raises
``Socks5Error`` (or ``UnknownAddressType``) as soon as the bytes cannot become a
valid message. Builders return bytes and raise ValueError for unencodable input.

GOST behaviour kept here (gosocks5 v0.5.0, go-gost/x handler/socks/v5 and
connector/socks/v5):

* Greeting ``05 N methods...``: N = 0 is an error. GOST's private methods: 0x80 TLS
  and 0x82 TLS + user/pass (after the method reply both ends run TLS on the same
  connection and SOCKS continues inside it); 0x88 is its mux method.
* User/pass ``01 ulen user plen pass``: empty user or password is accepted (GOST
  does), reply ``01 00`` success / ``01 01`` failure.
* Request/reply ``05 cmd/rep rsv atyp addr port``: the RSV byte is not checked
  (GOST ignores it). Commands are not checked either: the handler answers an
  unknown one with REP 0x07. GOST's extra commands: 0xF0 RESOLVE, 0xF1 RESOLVE_PTR
  (Tor), 0xF2 MUX-BIND, 0xF3 UDP-TUN.
* UDP header ``rsv(2) frag(1) atyp addr port``: for UDP ASSOCIATE datagrams FRAG
  must be 0 (fragments are not supported). GOST's UDP-over-TCP (UDP-TUN) reuses the
  header with RSV = payload length and FRAG = 0xFF: parse those with
  ``allow_frag=True``.
"""

from __future__ import annotations

from typing import NamedTuple

from gostfast.proto.addr import as_bytes_view, decode_addr, decode_text, encode_addr, encode_text
from gostfast.proto.errors import Socks5Error

__all__ = [
    "VERSION",
    "USERPASS_VERSION",
    "METHOD_NOAUTH",
    "METHOD_GSSAPI",
    "METHOD_USERPASS",
    "METHOD_TLS",
    "METHOD_TLS_AUTH",
    "METHOD_MUX",
    "METHOD_NONE_ACCEPTABLE",
    "CMD_CONNECT",
    "CMD_BIND",
    "CMD_UDP_ASSOCIATE",
    "CMD_RESOLVE",
    "CMD_RESOLVE_PTR",
    "CMD_MUX_BIND",
    "CMD_UDP_TUN",
    "REP_SUCCEEDED",
    "REP_GENERAL_FAILURE",
    "REP_NOT_ALLOWED",
    "REP_NETWORK_UNREACHABLE",
    "REP_HOST_UNREACHABLE",
    "REP_CONNECTION_REFUSED",
    "REP_TTL_EXPIRED",
    "REP_COMMAND_NOT_SUPPORTED",
    "REP_ADDR_NOT_SUPPORTED",
    "USERPASS_SUCCESS",
    "USERPASS_FAILURE",
    "UDP_TUN_FRAG",
    "UdpHeader",
    "parse_greeting",
    "build_method_reply",
    "parse_userpass",
    "build_userpass_reply",
    "parse_request",
    "build_reply",
    "build_greeting",
    "parse_method_reply",
    "build_userpass",
    "parse_userpass_reply",
    "build_request",
    "parse_reply",
    "parse_udp_header",
    "build_udp_header",
    "MAX_UDP_TUN_PAYLOAD",
    "parse_udp_tun_frame",
    "build_udp_tun_frame",
]

VERSION = 0x05
USERPASS_VERSION = 0x01

# Authentication methods.
METHOD_NOAUTH = 0x00
METHOD_GSSAPI = 0x01
METHOD_USERPASS = 0x02
METHOD_TLS = 0x80  # GOST: TLS, no auth
METHOD_TLS_AUTH = 0x82  # GOST: TLS, then user/pass
METHOD_MUX = 0x88  # GOST: stream multiplexing
METHOD_NONE_ACCEPTABLE = 0xFF

# Request commands.
CMD_CONNECT = 0x01
CMD_BIND = 0x02
CMD_UDP_ASSOCIATE = 0x03
CMD_RESOLVE = 0xF0  # Tor extension
CMD_RESOLVE_PTR = 0xF1  # Tor extension
CMD_MUX_BIND = 0xF2  # GOST
CMD_UDP_TUN = 0xF3  # GOST: UDP over the TCP stream

# Reply codes.
REP_SUCCEEDED = 0x00
REP_GENERAL_FAILURE = 0x01
REP_NOT_ALLOWED = 0x02
REP_NETWORK_UNREACHABLE = 0x03
REP_HOST_UNREACHABLE = 0x04
REP_CONNECTION_REFUSED = 0x05
REP_TTL_EXPIRED = 0x06
REP_COMMAND_NOT_SUPPORTED = 0x07
REP_ADDR_NOT_SUPPORTED = 0x08

# RFC 1929 status.
USERPASS_SUCCESS = 0x00
USERPASS_FAILURE = 0x01

UDP_TUN_FRAG = 0xFF
"""FRAG value GOST writes on UDP-TUN datagrams (RSV then carries the payload length)."""

_MAX_FIELD = 255

Buffer = bytes | bytearray | memoryview


class UdpHeader(NamedTuple):
    """A SOCKS5 UDP datagram header (the payload follows it)."""

    rsv: int
    frag: int
    host: str
    port: int


def _byte(value: int, what: str) -> int:
    if not isinstance(value, int) or not 0 <= value <= 0xFF:
        raise ValueError(f"{what} must be an int in 0..255, got {value!r}")
    return value


def _check_version(view: memoryview, expected: int, what: str) -> None:
    if len(view) >= 1 and view[0] != expected:
        raise Socks5Error(f"{what}: version 0x{view[0]:02x}, expected 0x{expected:02x}")


def _short_field(text: str, what: str) -> bytes:
    raw = encode_text(text)
    if len(raw) > _MAX_FIELD:
        raise ValueError(f"{what} is {len(raw)} bytes, the limit is {_MAX_FIELD}")
    return raw


# ---------------------------------------------------------------------------
# Server side (handler)
# ---------------------------------------------------------------------------


def parse_greeting(buf: Buffer) -> tuple[list[int], int] | None:
    """``05 N m1..mN`` -> (methods, consumed). N must be at least 1."""
    view = as_bytes_view(buf)
    _check_version(view, VERSION, "greeting")
    if len(view) < 2:
        return None
    nmethods = view[1]
    if nmethods == 0:
        raise Socks5Error("greeting offers no methods (NMETHODS = 0)")
    end = 2 + nmethods
    if len(view) < end:
        return None
    return list(view[2:end]), end


def build_method_reply(method: int) -> bytes:
    """``05 method``: the server's choice (0xFF = no acceptable method)."""
    return bytes((VERSION, _byte(method, "method")))


def parse_userpass(buf: Buffer) -> tuple[tuple[str, str], int] | None:
    """RFC 1929 ``01 ulen user plen pass`` -> ((user, password), consumed)."""
    view = as_bytes_view(buf)
    if len(view) >= 1 and view[0] != USERPASS_VERSION:
        raise Socks5Error(f"username/password request: version 0x{view[0]:02x}, expected 0x01")
    if len(view) < 2:
        return None
    ulen = view[1]
    plen_at = 2 + ulen
    if len(view) < plen_at + 1:
        return None
    plen = view[plen_at]
    end = plen_at + 1 + plen
    if len(view) < end:
        return None
    user = decode_text(bytes(view[2:plen_at]))
    password = decode_text(bytes(view[plen_at + 1 : end]))
    return (user, password), end


def build_userpass_reply(ok: bool) -> bytes:
    """``01 00`` when authenticated, ``01 01`` otherwise (GOST then closes)."""
    return bytes((USERPASS_VERSION, USERPASS_SUCCESS if ok else USERPASS_FAILURE))


def _parse_cmd_message(buf: Buffer, what: str) -> tuple[tuple[int, str, int], int] | None:
    """``05 code rsv atyp addr port`` (the shape of requests and replies)."""
    view = as_bytes_view(buf)
    _check_version(view, VERSION, what)
    if len(view) < 4:
        return None
    decoded = decode_addr(view, 3)
    if decoded is None:
        return None
    (host, port), used = decoded
    return (view[1], host, port), 3 + used


def parse_request(buf: Buffer) -> tuple[tuple[int, str, int], int] | None:
    """``05 cmd rsv atyp addr port`` -> ((cmd, host, port), consumed).

    The command is returned as sent (the handler decides what it supports).
    """
    return _parse_cmd_message(buf, "request")


def build_reply(rep: int, host: str = "0.0.0.0", port: int = 0) -> bytes:
    """``05 rep 00 atyp bnd.addr bnd.port``."""
    return bytes((VERSION, _byte(rep, "reply code"), 0x00)) + encode_addr(host, port)


# ---------------------------------------------------------------------------
# Client side (connector)
# ---------------------------------------------------------------------------


def build_greeting(methods: list[int] | tuple[int, ...]) -> bytes:
    """``05 N methods...`` (1 to 255 methods)."""
    if not 1 <= len(methods) <= _MAX_FIELD:
        raise ValueError(f"a greeting offers 1..255 methods, got {len(methods)}")
    return bytes((VERSION, len(methods))) + bytes(_byte(m, "method") for m in methods)


def parse_method_reply(buf: Buffer) -> tuple[int, int] | None:
    """``05 method`` -> (method, 2)."""
    view = as_bytes_view(buf)
    _check_version(view, VERSION, "method reply")
    if len(view) < 2:
        return None
    return view[1], 2


def build_userpass(user: str, password: str) -> bytes:
    """RFC 1929 ``01 ulen user plen pass`` (each field at most 255 bytes)."""
    u = _short_field(user, "username")
    p = _short_field(password, "password")
    return bytes((USERPASS_VERSION, len(u))) + u + bytes((len(p),)) + p


def parse_userpass_reply(buf: Buffer) -> tuple[bool, int] | None:
    """``01 status`` -> (status == 0, 2). GOST requires version 1 here."""
    view = as_bytes_view(buf)
    if len(view) >= 1 and view[0] != USERPASS_VERSION:
        raise Socks5Error(f"username/password reply: version 0x{view[0]:02x}, expected 0x01")
    if len(view) < 2:
        return None
    return view[1] == USERPASS_SUCCESS, 2


def build_request(cmd: int, host: str, port: int) -> bytes:
    """``05 cmd 00 atyp addr port``; a domain goes out unresolved as ATYP 3."""
    return bytes((VERSION, _byte(cmd, "command"), 0x00)) + encode_addr(host, port)


def parse_reply(buf: Buffer) -> tuple[tuple[int, str, int], int] | None:
    """``05 rep rsv atyp bnd.addr bnd.port`` -> ((rep, host, port), consumed)."""
    return _parse_cmd_message(buf, "reply")


# ---------------------------------------------------------------------------
# UDP datagrams (UDP ASSOCIATE; GOST's UDP-TUN)
# ---------------------------------------------------------------------------


def parse_udp_header(buf: Buffer, *, allow_frag: bool = False) -> tuple[UdpHeader, int] | None:
    """``rsv(2) frag(1) atyp addr port`` -> (UdpHeader, header length).

    FRAG != 0 raises Socks5Error unless ``allow_frag`` (GOST's UDP-TUN sends 0xFF).
    """
    view = as_bytes_view(buf)
    if len(view) < 3:
        return None
    frag = view[2]
    if frag != 0 and not allow_frag:
        raise Socks5Error(f"UDP datagram fragment {frag} (fragmentation is not supported)")
    decoded = decode_addr(view, 3)
    if decoded is None:
        return None
    (host, port), used = decoded
    rsv = int.from_bytes(view[0:2], "big")
    return UdpHeader(rsv, frag, host, port), 3 + used


def build_udp_header(host: str, port: int, *, rsv: int = 0, frag: int = 0) -> bytes:
    """The header to put before a UDP payload (RSV and FRAG default to 0)."""
    if not isinstance(rsv, int) or not 0 <= rsv <= 0xFFFF:
        raise ValueError(f"rsv must be an int in 0..65535, got {rsv!r}")
    return rsv.to_bytes(2, "big") + bytes((_byte(frag, "frag"),)) + encode_addr(host, port)


MAX_UDP_TUN_PAYLOAD = 0xFFFF
"""The longest payload a UDP-TUN frame can carry (its length is the 16-bit RSV)."""


def parse_udp_tun_frame(buf: Buffer) -> tuple[tuple[UdpHeader, int], int] | None:
    """One GOST UDP-TUN frame ``len(2) frag(1) atyp addr port payload`` from a stream.

    Returns ``((header, payload offset), frame length)``, or None while the frame
    is incomplete; the payload is ``buf[offset:frame length]`` and ``header.rsv``
    is its length. FRAG is not checked (GOST writes 0xFF and reads anything). A
    zero length is an empty datagram here; gosocks5 would read "whatever comes
    next" instead, which on a stream cannot be framed, so gostfast never sends one.
    Raises ``UnknownAddressType`` for a bad ATYP: the stream cannot be framed
    past it.
    """
    parsed = parse_udp_header(buf, allow_frag=True)
    if parsed is None:
        return None
    header, used = parsed
    end = used + header.rsv
    if len(as_bytes_view(buf)) < end:
        return None
    return (header, used), end


def build_udp_tun_frame(host: str, port: int, payload: Buffer) -> bytes:
    """The UDP-TUN frame carrying ``payload`` from/to ``host:port`` (as GOST writes it).

    Raises ValueError for an empty payload (see ``parse_udp_tun_frame``) or one
    longer than ``MAX_UDP_TUN_PAYLOAD``.
    """
    size = len(payload)
    if not 0 < size <= MAX_UDP_TUN_PAYLOAD:
        raise ValueError(f"UDP-TUN payload must be 1..{MAX_UDP_TUN_PAYLOAD} bytes, got {size}")
    return build_udp_header(host, port, rsv=size, frag=UDP_TUN_FRAG) + payload
