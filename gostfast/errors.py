"""Exceptions shared across layers."""

from __future__ import annotations

from gostfast._core.smux_common import SmuxProtocolError
from gostfast._core.wsframe_common import WSProtocolError
from gostfast.proto.errors import ProtocolError


class GostfastError(Exception):
    """Base of gostfast's runtime errors."""


class EndpointClosed(GostfastError, ConnectionError):
    """Reading from or draining an endpoint that is closed."""

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


class DialError(GostfastError, ConnectionError):
    """Could not reach a node or a target (the message names which and why)."""


class HandshakeError(GostfastError, ConnectionError):
    """A peer broke a protocol during a handshake (message names the rule)."""


#: What a peer's bytes can make the protocol code raise: a malformed head, frame,
#: handshake or address. A tunnel that ends on one of these is the peer's fault (an
#: info line); any other exception is gostfast's (a traceback), and a node is marked
#: failed only for these and I/O errors, never for a bug of ours.
PEER_FAULTS: tuple[type[Exception], ...] = (ProtocolError, WSProtocolError, SmuxProtocolError)
