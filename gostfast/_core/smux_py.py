"""smux frame codec, pure Python twin of ``smux_c`` (the readable specification and fallback).

Invariants
* Sans-IO: bytes in, frames out; frames in, bytes out. No sockets, no event loop, no clock.
* ``FrameParser.feed`` copies nothing for a PSH frame that lies whole inside the fed chunk: its
  payload is a memoryview slice of that chunk. The caller must therefore not modify or reuse the
  chunk's buffer while such payloads are alive (and a bytearray chunk cannot be resized while
  they exist). Only a payload split across chunks is copied, once, into a bytearray of exactly
  its length.
* The parser holds at most one partial header (< 8 bytes) and one partial payload (<= 65535
  bytes); it never buffers more than that, whatever it is fed.
* After a SmuxProtocolError the parser is dead: every later ``feed`` raises the same reason.
* Encoders build each output in one pass into one new buffer; they never keep a reference to
  their input.

Receive rules (xtaci/smux session.go recvLoop; strict=True follows smux HEAD >= v1.5.56):
* version byte != session version -> error.
* SYN/FIN/NOP: payload b"". strict: length must be 0. Lax (strict=False, like v1.5.31 and
  v1.5.16): the length field is ignored and NO payload is consumed - the next byte starts the
  next header, exactly as GOST's smux reads it.
* PSH: a frame with length 0 is skipped (never delivered), as smux's recvLoop skips it; an
  empty payload is never handed to the session, where b"" could read as EOF.
* UPD: payload (consumed, window). Length must be 8 in both modes (v1.5.31 read 8 bytes
  whatever the length said; every real sender writes 8). strict: UPD in a version-1 session is
  an error; lax: accepted and delivered, as v1.5.31 did.
* cmd > 4 -> error.
"""

from __future__ import annotations

import struct

from gostfast._core.buffers import byte_view
from gostfast._core.smux_common import (
    CMD_FIN,
    CMD_NAMES,
    CMD_NOP,
    CMD_PSH,
    CMD_SYN,
    CMD_UPD,
    HEADER_SIZE,
    MAX_FRAME_SIZE_LIMIT,
    UPD_SIZE,
    SmuxProtocolError,
    check_field,
    check_session_version,
    control_length,
    unknown_command,
    upd_in_v1,
    upd_length,
    version_mismatch,
    wrap_u32,
)

__all__ = [
    "HEADER_SIZE",
    "CMD_SYN",
    "CMD_FIN",
    "CMD_PSH",
    "CMD_NOP",
    "CMD_UPD",
    "CMD_NAMES",
    "UPD_SIZE",
    "MAX_FRAME_SIZE_LIMIT",
    "SmuxProtocolError",
    "FrameParser",
    "encode_header",
    "encode_data",
    "encode_upd",
    "encode_syn",
    "encode_fin",
    "encode_nop",
]

_HEADER = struct.Struct("<BBHI")  # ver, cmd, length, sid
_UPD_BODY = struct.Struct("<II")  # consumed, window
_U32 = 0xFFFFFFFF

# parser states
_ST_HEADER = 0  # collecting an 8-byte header
_ST_BODY = 1  # collecting the payload of a PSH or UPD frame that straddles chunks
_ST_FAILED = 2  # a protocol error was raised; input is refused


class FrameParser:
    """Incremental smux frame reader: ``feed()`` any chunking of the byte stream.

    ``feed`` returns the frames completed by this chunk, in order, as ``(cmd, sid, payload)``:
    PSH -> bytes-like payload, SYN/FIN/NOP -> ``b""``, UPD -> ``(consumed, window)``.
    """

    __slots__ = (
        "_version",
        "_strict",
        "_error",
        "_state",
        "_hdr",
        "_cmd",
        "_sid",
        "_body",
        "_filled",
    )

    def __init__(self, version: int, strict: bool = True) -> None:
        self._version = check_session_version(version)
        self._strict = bool(strict)
        self._error: str | None = None
        self._state = _ST_HEADER
        self._hdr = bytearray()  # partial header (< 8 bytes)
        self._cmd = 0  # cmd of the frame whose body is being collected
        self._sid = 0
        self._body: bytearray | None = None  # PSH payload or UPD body being collected
        self._filled = 0

    @property
    def version(self) -> int:
        return self._version

    @property
    def strict(self) -> bool:
        return self._strict

    @property
    def error(self) -> str | None:
        """The reason of the protocol error that stopped this parser, or None."""
        return self._error

    def _check(self, ver: int, cmd: int, length: int) -> str | None:
        """The reason this header is invalid, or None (rule order as smux HEAD's recvLoop)."""
        if ver != self._version:
            return version_mismatch(ver, self._version)
        if cmd == CMD_PSH:
            return None
        if cmd == CMD_SYN or cmd == CMD_FIN or cmd == CMD_NOP:
            if self._strict and length != 0:
                return control_length(cmd, length)
            return None
        if cmd == CMD_UPD:
            if self._strict and self._version != 2:
                return upd_in_v1()
            if length != UPD_SIZE:
                return upd_length(length)
            return None
        return unknown_command(cmd)

    def _fail(self, reason: str, frames: list) -> None:
        self._error = reason
        self._state = _ST_FAILED
        self._hdr = bytearray()
        self._body = None
        raise SmuxProtocolError(reason, frames)

    def feed(self, data) -> list[tuple[int, int, object]]:
        """Consume one chunk of the stream; return the frames it completed."""
        if self._state == _ST_FAILED:
            raise SmuxProtocolError(self._error)
        mv = byte_view(data)
        n = len(mv)
        pos = 0
        frames: list[tuple[int, int, object]] = []
        while pos < n:
            if self._state == _ST_BODY:
                body = self._body
                take = min(len(body) - self._filled, n - pos)
                body[self._filled : self._filled + take] = mv[pos : pos + take]
                self._filled += take
                pos += take
                if self._filled < len(body):
                    break  # chunk exhausted mid-payload
                self._body = None
                self._state = _ST_HEADER
                if self._cmd == CMD_PSH:
                    frames.append((CMD_PSH, self._sid, body))
                else:
                    frames.append((CMD_UPD, self._sid, _UPD_BODY.unpack(body)))
                continue

            # _ST_HEADER
            hdr = self._hdr
            if not hdr and n - pos >= HEADER_SIZE:
                ver, cmd, length, sid = _HEADER.unpack_from(mv, pos)
                pos += HEADER_SIZE
            else:
                take = min(HEADER_SIZE - len(hdr), n - pos)
                hdr += mv[pos : pos + take]
                pos += take
                if len(hdr) < HEADER_SIZE:
                    break  # chunk exhausted mid-header
                ver, cmd, length, sid = _HEADER.unpack(hdr)
                hdr.clear()

            reason = self._check(ver, cmd, length)
            if reason is not None:
                self._fail(reason, frames)

            if cmd == CMD_PSH:
                if length == 0:
                    continue
                if n - pos >= length:  # whole payload in this chunk: zero-copy slice
                    frames.append((CMD_PSH, sid, mv[pos : pos + length]))
                    pos += length
                    continue
            elif cmd == CMD_UPD:
                if n - pos >= UPD_SIZE:
                    frames.append((CMD_UPD, sid, _UPD_BODY.unpack_from(mv, pos)))
                    pos += UPD_SIZE
                    continue
            else:  # SYN, FIN, NOP: no payload is ever consumed
                frames.append((cmd, sid, b""))
                continue

            # the payload straddles chunks: collect it into a buffer of exactly its size
            self._cmd = cmd
            self._sid = sid
            self._body = bytearray(length)
            self._filled = 0
            self._state = _ST_BODY
        return frames


def encode_header(version: int, cmd: int, length: int, sid: int) -> bytes:
    """One 8-byte frame header: ver, cmd, uint16 LE length, uint32 LE sid."""
    return _HEADER.pack(
        check_field(version, "version", 0, 255),
        check_field(cmd, "cmd", 0, 255),
        check_field(length, "length", 0, MAX_FRAME_SIZE_LIMIT),
        check_field(sid, "sid", 0, _U32),
    )


def encode_data(version: int, sid: int, data, max_frame_size: int) -> bytearray:
    """All PSH frames carrying ``data`` in one buffer: header, payload, header, payload...

    Payloads are at most ``max_frame_size`` bytes, in order; empty data gives no frame.
    """
    version = check_field(version, "version", 0, 255)
    sid = check_field(sid, "sid", 0, _U32)
    step = check_field(max_frame_size, "max_frame_size", 1, MAX_FRAME_SIZE_LIMIT)
    mv = byte_view(data)
    size = len(mv)
    frames = (size + step - 1) // step
    out = bytearray(size + HEADER_SIZE * frames)
    at = 0
    for start in range(0, size, step):
        piece = mv[start : start + step]
        _HEADER.pack_into(out, at, version, CMD_PSH, len(piece), sid)
        at += HEADER_SIZE
        out[at : at + len(piece)] = piece
        at += len(piece)
    return out


def encode_upd(version: int, sid: int, consumed: int, window: int) -> bytes:
    """A 16-byte UPD frame; ``consumed`` wraps modulo 2**32 like smux's uint32 counter."""
    return _HEADER.pack(
        check_field(version, "version", 0, 255),
        CMD_UPD,
        UPD_SIZE,
        check_field(sid, "sid", 0, _U32),
    ) + _UPD_BODY.pack(wrap_u32(consumed), check_field(window, "window", 0, _U32))


def encode_syn(version: int, sid: int) -> bytes:
    """SYN (open stream ``sid``), length 0."""
    return encode_header(version, CMD_SYN, 0, sid)


def encode_fin(version: int, sid: int) -> bytes:
    """FIN (we closed stream ``sid``), length 0."""
    return encode_header(version, CMD_FIN, 0, sid)


def encode_nop(version: int) -> bytes:
    """NOP keepalive, sid 0, length 0."""
    return encode_header(version, CMD_NOP, 0, 0)
