"""The ATYP + ADDR + PORT address codec shared by SOCKS5 and GOST's relay protocol.

Wire layout (RFC 1928 section 5; go-gost/relay's ADDR feature uses the same codes)::

    +------+----------+------+
    | ATYP |   ADDR   | PORT |      ATYP 0x01: ADDR = 4 bytes (IPv4)
    +------+----------+------+      ATYP 0x03: ADDR = 1 length byte + name (0..255 bytes)
    |  1   | variable |  2   |      ATYP 0x04: ADDR = 16 bytes (IPv6)
    +------+----------+------+      PORT is big-endian

Choices that follow GOST (gosocks5 ``Addr``, go-gost/relay ``AddrFeature``), so a
host string means the same thing on both sides of a tunnel:

* Encoding: a host that parses as an IP literal is sent as ATYP 1 or 4; anything else
  is sent unresolved as a domain name (ATYP 3). An IPv4-mapped IPv6 literal
  (``::ffff:a.b.c.d``) goes out as IPv4, like Go's ``ip.To4() != nil`` test, and an
  IPv6 literal with a zone (``fe80::1%eth0``) goes out as a domain, because Go's
  ``net.ParseIP`` rejects zones. Bracketed hosts (``[::1]``) are not literals either:
  callers pass bare hosts.
* Decoding: IPs become their canonical text (RFC 5952 for IPv6; an IPv4-mapped IPv6
  address reads as dotted IPv4, as Go's ``net.IP.String`` prints it). Domain bytes
  are taken as they are, empty included, and decoded as UTF-8 with
  ``surrogateescape`` so that any byte string survives a decode/encode round trip.

Sans-IO: no sockets, no event loop, nothing is resolved.
"""

from __future__ import annotations

import ipaddress

from gostfast.proto.errors import AddressError, UnknownAddressType

__all__ = [
    "ATYP_IPV4",
    "ATYP_DOMAIN",
    "ATYP_IPV6",
    "MAX_DOMAIN_LEN",
    "encode_addr",
    "decode_addr",
    "address_type",
    "as_bytes_view",
    "decode_text",
    "unmap_ip",
    "split_host_port",
    "encode_text",
]

ATYP_IPV4 = 0x01
ATYP_DOMAIN = 0x03
ATYP_IPV6 = 0x04

MAX_DOMAIN_LEN = 255
"""A domain is prefixed by one length byte."""

_TEXT_ENCODING = "utf-8"
_TEXT_ERRORS = "surrogateescape"


def encode_text(text: str) -> bytes:
    """Encode a host name, user name or password for the wire (UTF-8, byte-preserving)."""
    return text.encode(_TEXT_ENCODING, _TEXT_ERRORS)


def decode_text(raw: bytes) -> str:
    """Decode wire bytes to ``str``; undecodable bytes survive as surrogates."""
    return raw.decode(_TEXT_ENCODING, _TEXT_ERRORS)


def as_bytes_view(buf: bytes | bytearray | memoryview) -> memoryview:
    """A flat unsigned-byte view of any bytes-like object (no copy)."""
    view = memoryview(buf)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


def _parse_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP literal in ``host``, or None when GOST would treat it as a domain."""
    if "%" in host:  # a zone: Python accepts it, Go's net.ParseIP does not
        return None
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def address_type(host: str) -> int:
    """The ATYP ``encode_addr`` would choose for ``host``."""
    ip = _parse_ip(host)
    if ip is None:
        return ATYP_DOMAIN
    return ATYP_IPV4 if ip.version == 4 else ATYP_IPV6


def _check_port(port: int) -> None:
    if not isinstance(port, int) or not 0 <= port <= 0xFFFF:
        raise ValueError(f"port must be an int in 0..65535, got {port!r}")


def encode_addr(host: str, port: int) -> bytes:
    """ATYP + ADDR + PORT for ``host:port`` (see the module docstring for the rules).

    Raises ValueError for a port outside 0..65535 or a domain longer than 255 bytes.
    """
    if not isinstance(host, str):
        raise ValueError(f"host must be a str, got {type(host).__name__}")
    _check_port(port)
    port_bytes = port.to_bytes(2, "big")
    ip = _parse_ip(host)
    if ip is not None:
        atyp = ATYP_IPV4 if ip.version == 4 else ATYP_IPV6
        return bytes((atyp,)) + ip.packed + port_bytes
    name = encode_text(host)
    if len(name) > MAX_DOMAIN_LEN:
        raise ValueError(f"domain name is {len(name)} bytes, the limit is {MAX_DOMAIN_LEN}")
    return bytes((ATYP_DOMAIN, len(name))) + name + port_bytes


def _ip_text(packed: bytes) -> str:
    ip = ipaddress.ip_address(packed)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def decode_addr(
    buf: bytes | bytearray | memoryview, offset: int = 0
) -> tuple[tuple[str, int], int] | None:
    """Decode the address starting at ``buf[offset]``.

    Returns ``((host, port), consumed)`` where ``consumed`` counts the bytes from
    ``offset``, or None when the address is not complete yet. Raises
    ``UnknownAddressType`` as soon as the ATYP byte is known to be invalid.
    """
    view = as_bytes_view(buf)
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    avail = len(view) - offset
    if avail < 1:
        return None
    atyp = view[offset]
    if atyp == ATYP_IPV4:
        start, size = offset + 1, 4
    elif atyp == ATYP_IPV6:
        start, size = offset + 1, 16
    elif atyp == ATYP_DOMAIN:
        if avail < 2:
            return None
        start, size = offset + 2, view[offset + 1]
    else:
        raise UnknownAddressType(atyp)
    end = start + size
    if len(view) < end + 2:
        return None
    raw = bytes(view[start:end])
    host = decode_text(raw) if atyp == ATYP_DOMAIN else _ip_text(raw)
    port = int.from_bytes(view[end : end + 2], "big")
    return (host, port), end + 2 - offset


def unmap_ip(host: str) -> str:
    """``::ffff:a.b.c.d`` -> ``a.b.c.d``; anything else unchanged."""
    if host.startswith("::ffff:") or host.startswith("::FFFF:"):
        try:
            mapped = ipaddress.IPv6Address(host).ipv4_mapped
        except ValueError:
            return host
        if mapped is not None:
            return str(mapped)
    return host


def split_host_port(text: str) -> tuple[str, str]:
    """``host:port`` / ``[v6]:port`` -> (host, port text), as Go's net.SplitHostPort.

    The one host:port splitter: every place that reads an address (configuration,
    CONNECT authorities, bypass patterns, probe targets) calls it and decides what
    a failure means there. The port is returned as written (it may be empty or a
    range: callers check it). Raises AddressError with Go's wording: "missing port
    in address", "too many colons in address", "missing ']' in address",
    "unexpected '[' in address", "unexpected ']' in address".
    """

    def fail(why: str) -> AddressError:
        return AddressError(f"address {text}: {why}", why)

    colon = text.rfind(":")
    if colon < 0:
        raise fail("missing port in address")
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise fail("missing ']' in address")
        if end + 1 == len(text):
            raise fail("missing port in address")
        if end + 1 != colon:  # the port's colon must follow the ']' and be the last one
            raise fail(
                "too many colons in address" if text[end + 1] == ":" else "missing port in address"
            )
        host, scan_open, scan_close = text[1:end], 1, end + 1
    else:
        host, scan_open, scan_close = text[:colon], 0, 0
        if ":" in host:
            raise fail("too many colons in address")
    if "[" in text[scan_open:]:
        raise fail("unexpected '[' in address")
    if "]" in text[scan_close:]:
        raise fail("unexpected ']' in address")
    port = text[colon + 1 :]
    return host, port
