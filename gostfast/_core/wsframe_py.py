"""WebSocket frame codec (RFC 6455 section 5), pure-Python twin of wsframe_c.

This module is the readable specification of the codec; wsframe_c must behave
exactly the same (tests/property/test_wsframe_twins.py proves it on random and
malformed streams).

Invariants:
- Sans-IO: ``FrameParser.feed`` takes bytes exactly as a socket delivered them (any
  split) and returns complete events; nothing here touches a socket or a clock.
- Copies: a client-side parser (unmasked frames) hands out a payload that lies whole
  inside the chunk just fed as a memoryview slice OF THAT CHUNK (no copy): it stays
  valid only while the chunk's memory is not reused, so a caller feeding a reused
  receive buffer must consume or copy such payloads before the next read. Every other
  payload is a fresh buffer owned by the caller: a server-side (masked) payload is
  unmasked while it is copied, once; a payload split over several chunks or frames is
  accumulated in one bytearray; control payloads are small ``bytes``.
- The parser never buffers a payload byte before its header has passed every check,
  so an oversize or malformed frame is refused before its payload is stored.
- Text payloads are NOT validated as UTF-8: GOST (gorilla) does not validate them and
  the tunnel treats text messages as plain data.
- RSV2/RSV3 must be zero. RSV1 too unless the parser was created with
  ``allow_rsv1=True`` (permessage-deflate negotiated): then it may be set on the first
  frame of a data message (never on a control or continuation frame, RFC 7692 section
  6.1) and the message is reported as ``opcode | COMPRESSED``; inflating is the
  caller's job (the codec sees wire bytes only).
"""

from __future__ import annotations

from gostfast._core.buffers import byte_view
from gostfast._core.wsframe_common import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL,
    CLOSE_INVALID_DATA,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_TOO_BIG,
    CLOSE_UNSUPPORTED,
    COMPRESSED,
    MAX_CONTROL_PAYLOAD,
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    WSProtocolError,
    build_close_payload,
    is_valid_close_code,
    parse_close_payload,
)

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
    "FrameParser",
    "frame_header",
    "build_frame",
]


def _xor_bytes(data, mask: bytes, phase: int) -> bytes:
    """``data`` XOR the mask stream starting at mask byte ``phase`` (0-3), RFC 6455 5.3.

    The twin of mask_kernel.pxd's ``xor_kernel``: the whole run is XORed as one big
    integer (slow, but obviously right)."""
    n = len(data)
    key = mask[phase:] + mask[:phase]
    stream = key * ((n >> 2) + 1)
    value = int.from_bytes(data, "little") ^ int.from_bytes(stream[:n], "little")
    return value.to_bytes(n, "little")


_MAX_LENGTH = (1 << 63) - 1

# Where the payload of the frame being read goes.
_TO_SINGLE = 0  # a whole message in one frame (FIN=1, opcode text/binary)
_TO_MESSAGE = 1  # a fragment of a message: appended to the message buffer
_TO_CONTROL = 2  # a control frame (<= 125 bytes)


def _check_mask(mask) -> bytes:
    key = memoryview(mask).tobytes()
    if len(key) != 4:
        raise ValueError("a WebSocket mask is exactly 4 bytes")
    return key


def frame_header(
    opcode: int, length: int, fin: bool = True, mask: bytes | None = None, rsv1: bool = False
) -> bytes:
    """The 2/4/10-byte frame header (+ the 4 mask bytes when ``mask`` is given).

    ``rsv1`` sets RSV1 (a permessage-deflate message's first frame); a control frame
    with it is refused like the other invalid control frames.

    The shortest length form is always used. Raises ValueError for an opcode outside
    0-15, a negative or 64-bit-overflowing length, or an invalid control frame
    (payload over 125 bytes or FIN=0): this codec never writes a frame it would refuse.
    """
    if not 0 <= opcode <= 15:
        raise ValueError(f"invalid opcode {opcode}")
    if not 0 <= length <= _MAX_LENGTH:
        raise ValueError(f"invalid payload length {length}")
    if opcode >= 8 and (length > MAX_CONTROL_PAYLOAD or not fin):
        raise ValueError("control frames must have FIN set and at most 125 payload bytes")
    if rsv1 and (opcode >= 8 or opcode == OP_CONT):
        raise ValueError("RSV1 is only set on the first frame of a data message")
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    mbit = 0x80 if mask is not None else 0
    if length < 126:
        head = bytes((b0, mbit | length))
    elif length < 65536:
        head = bytes((b0, mbit | 126)) + length.to_bytes(2, "big")
    else:
        head = bytes((b0, mbit | 127)) + length.to_bytes(8, "big")
    if mask is not None:
        head += _check_mask(mask)
    return head


def build_frame(
    opcode: int, payload, fin: bool = True, mask: bytes | None = None, rsv1: bool = False
):
    """Header + payload in one buffer; with ``mask`` the payload is masked as it is copied.

    Unmasked -> ``bytes``; masked -> ``bytearray`` (allocated once, header written at its
    front, payload XOR-copied behind it).
    """
    data = byte_view(payload)
    head = frame_header(opcode, len(data), fin, mask, rsv1)
    if mask is None:
        return head + data.tobytes()
    out = bytearray(head)
    if len(data):
        out += _xor_bytes(data, head[-4:], 0)
    return out


def _fail(code: int, reason: str) -> WSProtocolError:
    return WSProtocolError(code, reason)


class FrameParser:
    """Incremental RFC 6455 frame parser: feed it bytes, get complete events.

    ``is_server=True`` parses what a client sends (every frame must be masked);
    ``False`` parses what a server sends (no frame may be masked).
    ``max_message_size`` limits a data message (reassembled size, and so any single
    data frame) in bytes, 0 = unlimited; control frames are not counted (gorilla's
    read limit does the same). An oversize frame is refused from its header alone.

    ``feed(data)`` returns a list of ``(opcode, payload)`` events in stream order:
    ``(OP_TEXT|OP_BINARY, payload)`` for each complete data message, fragments
    reassembled and delivered with the opcode of the first frame when the final
    fragment arrives; ``(OP_PING|OP_PONG|OP_CLOSE, payload)`` for each control frame,
    immediately, even between the fragments of a message. Empty messages are
    delivered too (with an empty payload). Text payloads are not checked for UTF-8.
    ``allow_rsv1=True`` (permessage-deflate negotiated) accepts RSV1 on the first frame
    of a data message and delivers that message as ``(opcode | COMPRESSED, payload)``
    with its payload as it arrived (still deflated; ``max_message_size`` counts those
    wire bytes, the caller bounds the inflated size).

    A protocol violation raises WSProtocolError (close code 1002, or 1009 for an
    oversize message) carrying in ``.events`` the events completed earlier in the same
    call; every later ``feed`` raises an equal error again (with no events). Notes on what is accepted:
    a length in a longer form than needed (16-bit form below 126, 64-bit form below
    65536) is accepted, like gorilla does; a 64-bit length with the top bit set is not.
    """

    def __init__(
        self, is_server: bool, max_message_size: int = 0, allow_rsv1: bool = False
    ) -> None:
        if max_message_size < 0:
            raise ValueError("max_message_size must be >= 0 (0 = unlimited)")
        self._is_server = bool(is_server)
        self._allow_rsv1 = bool(allow_rsv1)
        self._max = int(max_message_size)
        self._error: WSProtocolError | None = None
        # Header bytes of the frame being read, while its header is incomplete.
        self._hdr = bytearray()
        self._hdr_need = 2
        # The frame being read (valid while _in_payload).
        self._in_payload = False
        self._fin = False
        self._opcode = 0
        self._key = b""  # mask key, b"" when unmasked
        self._length = 0
        self._got = 0
        self._dest = _TO_SINGLE
        self._frame_buf = bytearray()  # partial single-frame or control payload
        # The fragmented data message in progress (opcode 0 = none).
        self._msg_opcode = 0
        self._msg_buf = bytearray()

    # -- public --------------------------------------------------------------------

    def feed(self, data) -> list:
        """Parse ``data`` (any bytes-like chunk); return the events it completed."""
        if self._error is not None:
            raise WSProtocolError(self._error.close_code, self._error.reason)
        view = byte_view(data)
        events: list = []
        pos = 0
        end = len(view)
        try:
            while pos < end:
                if not self._in_payload:
                    pos = self._read_header(view, pos, end, events)
                else:
                    pos = self._read_payload(view, pos, end, events)
        except WSProtocolError as exc:
            exc.events = events
            self._error = exc
            raise
        return events

    # -- header --------------------------------------------------------------------

    def _read_header(self, view: memoryview, pos: int, end: int, events: list) -> int:
        hdr = self._hdr
        if not hdr and end - pos >= 2:
            # Fast path: parse straight from the chunk when the whole header is in it.
            self._check_first_two(view[pos], view[pos + 1])
            need = _header_size(view[pos + 1])
            if end - pos >= need:
                self._start_frame(view[pos : pos + need], events)
                return pos + need
            hdr += view[pos:end]
            self._hdr_need = need
            return end
        # Slow path: the header is split over chunks; gather it in self._hdr.
        if len(hdr) < 2:
            hdr.append(view[pos])
            pos += 1
            if len(hdr) == 2:
                self._check_first_two(hdr[0], hdr[1])
                self._hdr_need = _header_size(hdr[1])
        if len(hdr) >= 2:
            take = min(self._hdr_need - len(hdr), end - pos)
            hdr += view[pos : pos + take]
            pos += take
            if len(hdr) == self._hdr_need:
                header = bytes(hdr)
                hdr.clear()
                self._start_frame(header, events)
        return pos

    def _check_first_two(self, b0: int, b1: int) -> None:
        """Every rule decidable from the first two header bytes, in a fixed order."""
        opcode = b0 & 0x0F
        if b0 & 0x70:
            if b0 & 0x30 or not self._allow_rsv1:
                raise _fail(
                    CLOSE_PROTOCOL_ERROR, "reserved bits set without a negotiated extension"
                )
            if opcode >= 8 or opcode == OP_CONT:
                raise _fail(CLOSE_PROTOCOL_ERROR, "RSV1 set on a control or continuation frame")
        if opcode > OP_BINARY and opcode not in (OP_CLOSE, OP_PING, OP_PONG):
            raise _fail(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
        if opcode >= 8:
            if not b0 & 0x80:
                raise _fail(CLOSE_PROTOCOL_ERROR, "fragmented control frame")
            if (b1 & 0x7F) > MAX_CONTROL_PAYLOAD:
                raise _fail(CLOSE_PROTOCOL_ERROR, "control frame payload over 125 bytes")
        elif opcode == OP_CONT:
            if self._msg_opcode == 0:
                raise _fail(CLOSE_PROTOCOL_ERROR, "continuation frame without a message")
        elif self._msg_opcode != 0:
            raise _fail(CLOSE_PROTOCOL_ERROR, "new data frame inside a fragmented message")
        masked = bool(b1 & 0x80)
        if self._is_server and not masked:
            raise _fail(CLOSE_PROTOCOL_ERROR, "unmasked frame from a client")
        if not self._is_server and masked:
            raise _fail(CLOSE_PROTOCOL_ERROR, "masked frame from a server")

    def _start_frame(self, header, events: list) -> None:
        """The whole header is known (first two bytes already checked): begin the frame."""
        b0 = header[0]
        len7 = header[1] & 0x7F
        # A longer length form than needed is accepted (gorilla accepts it too).
        if len7 == 126:
            length = int.from_bytes(header[2:4], "big")
        elif len7 == 127:
            length = int.from_bytes(header[2:10], "big")
            if length >> 63:
                raise _fail(CLOSE_PROTOCOL_ERROR, "64-bit payload length with the top bit set")
        else:
            length = len7
        opcode = b0 & 0x0F
        if opcode >= 8:
            dest = _TO_CONTROL
        elif opcode == OP_CONT or not b0 & 0x80:
            dest = _TO_MESSAGE
        else:
            dest = _TO_SINGLE
        if self._max and dest != _TO_CONTROL:
            total = length + (len(self._msg_buf) if opcode == OP_CONT else 0)
            if total > self._max:
                raise _fail(CLOSE_TOO_BIG, "message too big")
        self._fin = bool(b0 & 0x80)
        # RSV1 got here only on a message's first data frame (_check_first_two)
        flagged = opcode | (b0 & COMPRESSED)
        self._opcode = flagged
        self._key = bytes(header[-4:]) if header[1] & 0x80 else b""
        self._length = length
        self._got = 0
        self._dest = dest
        if dest == _TO_MESSAGE and opcode != OP_CONT:
            self._msg_opcode = flagged
            self._msg_buf = bytearray()
        if length == 0:
            self._finish_frame(b"", events)
        else:
            self._in_payload = True

    # -- payload -------------------------------------------------------------------

    def _read_payload(self, view: memoryview, pos: int, end: int, events: list) -> int:
        remaining = self._length - self._got
        take = min(remaining, end - pos)
        chunk = view[pos : pos + take]
        if self._dest != _TO_MESSAGE and self._got == 0 and take == remaining:
            # The whole payload is in this chunk: one unmasking copy, or none at all.
            if self._dest == _TO_CONTROL:
                payload = self._unmasked(chunk, 0) if self._key else chunk.tobytes()
            elif self._key:
                payload = bytearray(self._unmasked(chunk, 0))
            else:
                payload = chunk
            self._finish_frame(payload, events)
            return pos + take
        target = self._msg_buf if self._dest == _TO_MESSAGE else self._frame_buf
        target += self._unmasked(chunk, self._got) if self._key else chunk
        self._got += take
        if self._got == self._length:
            if self._dest == _TO_MESSAGE:
                self._finish_frame(b"", events)
            else:
                self._frame_buf = bytearray()
                self._finish_frame(bytes(target) if self._dest == _TO_CONTROL else target, events)
        return pos + take

    def _unmasked(self, chunk, phase: int) -> bytes:
        return _xor_bytes(chunk, self._key, phase & 3)

    def _finish_frame(self, payload, events: list) -> None:
        """The frame's payload is complete; emit the event it completes, if any."""
        self._in_payload = False
        self._hdr_need = 2
        if self._dest == _TO_MESSAGE:
            if self._fin:
                events.append((self._msg_opcode, self._msg_buf))
                self._msg_opcode = 0
                self._msg_buf = bytearray()
        else:
            events.append((self._opcode, payload))


def _header_size(b1: int) -> int:
    """Total header length announced by the second header byte."""
    len7 = b1 & 0x7F
    size = 2 + (2 if len7 == 126 else 8 if len7 == 127 else 0)
    return size + 4 if b1 & 0x80 else size
