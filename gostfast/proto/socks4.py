"""SOCKS4 and SOCKS4a, server side (with the client side for connectors and tests).

Request::

    VN(1)=4 | CD(1) | DSTPORT(2, BE) | DSTIP(4) | USERID... | 00 [| DOMAIN... | 00]

SOCKS4a: a DSTIP of 0.0.0.x with x != 0 means "no IP": the domain name follows the
USERID's NUL, itself NUL-terminated. Reply::

    VN(1)=0 | CD(1) | DSTPORT(2) | DSTIP(4)

GOST behaviour kept here (gosocks4 v0.1.0, go-gost/x handler/socks/v4):

* Only CONNECT (1) and BIND (2) parse; any other CD is an error (GOST closes without
  a reply).
* USERID and DOMAIN are each at most 255 bytes before their NUL; longer is an error
  (GOST's ``ErrFieldTooLong``). Empty USERID and empty DOMAIN are accepted.
* Reply codes as GOST's handler uses them: 90 granted; 91 rejected/failed (dial
  failure); 92 (``Rejected``: bypass); 93 (``RejectedUserid``: authentication, the
  USERID being the user name with an empty password). GOST replies with port and
  IP zero.

Parsers return ``(value, consumed)`` or None while incomplete and raise Socks4Error
on malformed input. Sans-IO: nothing here resolves or touches a socket.
"""

from __future__ import annotations

import ipaddress

from gostfast.proto.addr import as_bytes_view, decode_text, encode_text
from gostfast.proto.errors import Socks4Error

__all__ = [
    "VERSION",
    "REPLY_VERSION",
    "CMD_CONNECT",
    "CMD_BIND",
    "REP_GRANTED",
    "REP_REJECTED",
    "REP_IDENTD_UNREACHABLE",
    "REP_USERID_MISMATCH",
    "MAX_USERID_LEN",
    "MAX_DOMAIN_LEN",
    "parse_request",
    "build_reply",
    "build_request",
    "parse_reply",
]

VERSION = 0x04
REPLY_VERSION = 0x00

CMD_CONNECT = 0x01
CMD_BIND = 0x02

REP_GRANTED = 90
REP_REJECTED = 91  # rejected or failed
REP_IDENTD_UNREACHABLE = 92  # gosocks4 "Rejected" (GOST: bypass)
REP_USERID_MISMATCH = 93  # gosocks4 "RejectedUserid" (GOST: auth failure)

MAX_USERID_LEN = 255
MAX_DOMAIN_LEN = 255

_HEADER_LEN = 8

Buffer = bytes | bytearray | memoryview


def _find_cstring(view: memoryview, start: int, limit: int, what: str) -> int | None:
    """Index of the NUL ending the string at ``start``, None if not received yet.

    Raises Socks4Error once more than ``limit`` bytes precede the NUL.
    """
    window = bytes(view[start : start + limit + 1])
    nul = window.find(0)
    if nul >= 0:
        return start + nul
    if len(window) > limit:
        raise Socks4Error(f"{what} longer than {limit} bytes (no NUL terminator)")
    return None


def _is_socks4a(ip: bytes) -> bool:
    return ip[0] == 0 and ip[1] == 0 and ip[2] == 0 and ip[3] != 0


def parse_request(buf: Buffer) -> tuple[tuple[int, str, int, str], int] | None:
    """-> ((cmd, host, port, userid), consumed).

    ``host`` is dotted IPv4 text for SOCKS4 and the (unresolved) domain for SOCKS4a.
    """
    view = as_bytes_view(buf)
    if len(view) >= 1 and view[0] != VERSION:
        raise Socks4Error(f"request: version 0x{view[0]:02x}, expected 0x04")
    if len(view) >= 2 and view[1] not in (CMD_CONNECT, CMD_BIND):
        raise Socks4Error(f"request: command 0x{view[1]:02x} (only CONNECT and BIND exist)")
    if len(view) < _HEADER_LEN:
        return None
    cmd = view[1]
    port = int.from_bytes(view[2:4], "big")
    ip = bytes(view[4:8])
    nul = _find_cstring(view, _HEADER_LEN, MAX_USERID_LEN, "USERID")
    if nul is None:
        return None
    userid = decode_text(bytes(view[_HEADER_LEN:nul]))
    end = nul + 1
    if _is_socks4a(ip):
        dnul = _find_cstring(view, end, MAX_DOMAIN_LEN, "SOCKS4a domain")
        if dnul is None:
            return None
        host = decode_text(bytes(view[end:dnul]))
        end = dnul + 1
    else:
        host = str(ipaddress.IPv4Address(ip))
    return (cmd, host, port, userid), end


def build_reply(
    granted: bool, host: str = "0.0.0.0", port: int = 0, *, code: int | None = None
) -> bytes:
    """``00 CD port ip``: CD 90 when ``granted`` else 91, or ``code`` when given
    (92/93 as GOST uses them). ``host`` must be an IPv4 literal."""
    cd = code if code is not None else (REP_GRANTED if granted else REP_REJECTED)
    if not isinstance(cd, int) or not 0 <= cd <= 0xFF:
        raise ValueError(f"reply code must be an int in 0..255, got {cd!r}")
    return bytes((REPLY_VERSION, cd)) + _port_bytes(port) + _ipv4_bytes(host)


def _port_bytes(port: int) -> bytes:
    if not isinstance(port, int) or not 0 <= port <= 0xFFFF:
        raise ValueError(f"port must be an int in 0..65535, got {port!r}")
    return port.to_bytes(2, "big")


def _ipv4_bytes(host: str) -> bytes:
    try:
        return ipaddress.IPv4Address(host).packed
    except ValueError:
        raise ValueError(f"SOCKS4 needs an IPv4 address, got {host!r}") from None


def _cstring(text: str, limit: int, what: str) -> bytes:
    raw = encode_text(text)
    if b"\x00" in raw:
        raise ValueError(f"{what} must not contain NUL")
    if len(raw) > limit:
        raise ValueError(f"{what} is {len(raw)} bytes, the limit is {limit}")
    return raw + b"\x00"


def build_request(cmd: int, host: str, port: int, userid: str = "") -> bytes:
    """A SOCKS4 request, or SOCKS4a (DSTIP 0.0.0.1 + domain) when ``host`` is not an
    IPv4 literal."""
    if cmd not in (CMD_CONNECT, CMD_BIND):
        raise ValueError(f"SOCKS4 command must be 1 or 2, got {cmd!r}")
    head = bytes((VERSION, cmd)) + _port_bytes(port)
    user = _cstring(userid, MAX_USERID_LEN, "userid")
    try:
        ip = ipaddress.IPv4Address(host).packed
    except ValueError:
        ip = None
    if ip is not None and not _is_socks4a(ip):
        return head + ip + user
    if not host:
        raise ValueError("SOCKS4a needs a non-empty domain")
    return head + b"\x00\x00\x00\x01" + user + _cstring(host, MAX_DOMAIN_LEN, "domain")


def parse_reply(buf: Buffer) -> tuple[tuple[int, str, int], int] | None:
    """``00 CD port ip`` -> ((code, host, port), 8)."""
    view = as_bytes_view(buf)
    if len(view) >= 1 and view[0] != REPLY_VERSION:
        raise Socks4Error(f"reply: version 0x{view[0]:02x}, expected 0x00")
    if len(view) < _HEADER_LEN:
        return None
    port = int.from_bytes(view[2:4], "big")
    host = str(ipaddress.IPv4Address(bytes(view[4:8])))
    return (view[1], host, port), _HEADER_LEN
