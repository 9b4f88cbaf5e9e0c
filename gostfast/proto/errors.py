"""Errors raised by the handshake codecs in ``gostfast.proto``.

Parsers return ``None`` when they need more bytes and raise a ``ProtocolError`` (a
``ValueError``) when the bytes can never become a valid message: the caller closes
the connection (or answers with the protocol's error reply) instead of waiting.
Builders raise a plain ``ValueError`` for arguments that cannot be encoded.

One subclass per protocol lets a handler tell where a failure came from; catching
``ProtocolError`` catches them all.
"""

from __future__ import annotations

__all__ = [
    "ProtocolError",
    "AddressError",
    "UnknownAddressType",
    "Socks4Error",
    "Socks5Error",
    "RelayError",
]


class ProtocolError(ValueError):
    """The peer sent bytes that violate the protocol."""


class AddressError(ProtocolError):
    """A malformed address: SOCKS5/relay's ATYP + ADDR + PORT, or a ``host:port`` text.

    ``reason`` is the rule broken without the address (``split_host_port`` gives Go's
    wording), for callers that word their own message; by default the whole message.
    """

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


class UnknownAddressType(AddressError):
    """An ATYP byte that is none of 1 (IPv4), 3 (domain), 4 (IPv6).

    A SOCKS5 handler may answer it with REP 0x08 (address type not supported);
    GOST itself just closes the connection.
    """

    def __init__(self, atyp: int) -> None:
        super().__init__(f"unknown address type 0x{atyp:02x} (expected 0x01, 0x03 or 0x04)")
        self.atyp = atyp


class Socks4Error(ProtocolError):
    """A malformed SOCKS4/4a message."""


class Socks5Error(ProtocolError):
    """A malformed SOCKS5 (RFC 1928) or username/password (RFC 1929) message."""


class RelayError(ProtocolError):
    """A malformed GOST relay request, response or feature."""
