"""Exceptions shared across layers."""

from __future__ import annotations


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
