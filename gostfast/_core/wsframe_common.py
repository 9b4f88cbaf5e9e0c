"""Names shared by both WebSocket frame codec twins (wsframe_c and wsframe_py).

Invariants: pure Python, no I/O, no state. The exception class lives here (not in a
twin) so ``except WSProtocolError`` catches errors from either implementation.

Close-code rules follow RFC 6455 section 7.4 and the IANA registry, the same set
gorilla/websocket accepts (``isValidReceivedCloseCode``): 1000-1003, 1007-1014 and
the application range 3000-4999. 1004-1006 and 1015 are reserved and must never
appear on the wire; everything else below 3000 is unassigned.
"""

from __future__ import annotations

__all__ = [
    "OP_CONT",
    "OP_TEXT",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_PING",
    "OP_PONG",
    "CLOSE_NORMAL",
    "CLOSE_GOING_AWAY",
    "CLOSE_PROTOCOL_ERROR",
    "CLOSE_UNSUPPORTED",
    "CLOSE_INVALID_DATA",
    "CLOSE_POLICY",
    "CLOSE_TOO_BIG",
    "CLOSE_INTERNAL",
    "MAX_CONTROL_PAYLOAD",
    "COMPRESSED",
    "WSProtocolError",
    "is_valid_close_code",
    "parse_close_payload",
    "build_close_payload",
]

# Opcodes (RFC 6455 section 5.2).
OP_CONT = 0
OP_TEXT = 1
OP_BINARY = 2
OP_CLOSE = 8
OP_PING = 9
OP_PONG = 10

# Close status codes (RFC 6455 section 7.4.1).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_UNSUPPORTED = 1003
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011

# The event kind a receiver reports for bytes that broke the protocol, after the
# messages that came before the bad frame: ``(ERROR_EVENT, (close_code, reason))``.
# Negative, so no opcode is ever it (proto/wsconnection.py ``ERROR``; wspipe).
ERROR_EVENT = -6

# Control frames carry at most 125 payload bytes (RFC 6455 section 5.5).
MAX_CONTROL_PAYLOAD = 125

# The RSV1 bit of a frame's first byte; permessage-deflate (RFC 7692) marks a
# compressed message with it on the message's first frame. A parser created with
# ``allow_rsv1=True`` reports such a message with this bit OR-ed into its opcode
# (``OP_BINARY | COMPRESSED``), so the event stays an ``(opcode, payload)`` pair and
# the uncompressed path compares opcodes exactly as before.
COMPRESSED = 0x40


class WSProtocolError(Exception):
    """The peer broke RFC 6455; the connection must be failed with ``close_code``.

    ``reason`` is a short human-readable text (also ``str(exc)``); it fits in a close
    frame. ``events`` holds the complete events a parser decoded from the same
    ``feed()`` call before it met the violation, so a caller may still deliver the
    data that preceded the bad frame (gorilla hands those messages out too).
    """

    def __init__(self, close_code: int, reason: str) -> None:
        super().__init__(reason)
        self.close_code = close_code
        self.reason = reason
        self.events: list = []

    def __str__(self) -> str:
        return self.reason

    def __repr__(self) -> str:
        return f"WSProtocolError({self.close_code}, {self.reason!r})"


def is_valid_close_code(code: int) -> bool:
    """True when ``code`` may appear in a close frame (sent or received)."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def parse_close_payload(payload) -> tuple[int | None, str]:
    """Decode a received close frame body into ``(code, reason)``.

    Empty body -> ``(None, "")`` (no status). A 1-byte body or a code not valid on
    the wire -> WSProtocolError 1002; a reason that is not UTF-8 -> 1007.
    """
    data = bytes(payload)
    if not data:
        return None, ""
    if len(data) == 1:
        raise WSProtocolError(CLOSE_PROTOCOL_ERROR, "close frame with a 1-byte payload")
    code = int.from_bytes(data[:2], "big")
    if not is_valid_close_code(code):
        raise WSProtocolError(CLOSE_PROTOCOL_ERROR, f"invalid close code {code}")
    try:
        reason = data[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise WSProtocolError(CLOSE_INVALID_DATA, "close reason is not valid UTF-8") from None
    return code, reason


def build_close_payload(code: int | None, reason: str = "") -> bytes:
    """Encode a close frame body. ``code=None`` gives the empty body (reason must be empty).

    Raises ValueError for a code that must not be sent or a body over 125 bytes.
    """
    if code is None:
        if reason:
            raise ValueError("a close reason needs a close code")
        return b""
    if not is_valid_close_code(code):
        raise ValueError(f"close code {code} must not be sent")
    body = code.to_bytes(2, "big") + reason.encode("utf-8")
    if len(body) > MAX_CONTROL_PAYLOAD:
        raise ValueError("close reason too long: the close payload is limited to 125 bytes")
    return body
