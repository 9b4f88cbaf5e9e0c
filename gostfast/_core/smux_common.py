"""smux wire constants, the protocol error, and the helpers both codec twins share.

Invariants: pure Python, no I/O, no state. Both ``smux_c`` (compiled) and ``smux_py`` (pure)
import everything here, so ``except SmuxProtocolError`` catches errors from either twin and the
error messages are byte-for-byte the same (they are built by the functions below, never by the
twins themselves).

The wire format (xtaci/smux frame.go): an 8-byte header ``ver, cmd, length (uint16 LE),
sid (uint32 LE)`` followed by ``length`` payload bytes. See docs/smux-protocol.md.
"""

from __future__ import annotations

import operator

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
]

HEADER_SIZE = 8
"""ver(1) + cmd(1) + length(2, LE) + sid(4, LE)."""

CMD_SYN = 0  # open stream sid
CMD_FIN = 1  # sender closed stream sid (EOF mark)
CMD_PSH = 2  # data for stream sid
CMD_NOP = 3  # keepalive, sid 0
CMD_UPD = 4  # version 2 only: window update, payload consumed(u32 LE) + window(u32 LE)

CMD_NAMES = {CMD_SYN: "SYN", CMD_FIN: "FIN", CMD_PSH: "PSH", CMD_NOP: "NOP", CMD_UPD: "UPD"}

UPD_SIZE = 8
"""Payload size of a UPD frame."""

MAX_FRAME_SIZE_LIMIT = 65535
"""Largest payload one frame can carry (the length field is a uint16)."""

_U32 = 0xFFFFFFFF


class SmuxProtocolError(Exception):
    """The peer broke the smux framing; the session must be torn down.

    ``str(exc)`` is the precise reason. ``frames`` holds the complete frames that preceded the
    bad header in the same ``feed()`` call (smux delivers those before it notices the error).
    """

    def __init__(self, reason: str, frames: list | None = None) -> None:
        super().__init__(reason)
        self.frames: list = [] if frames is None else frames


# --- error messages (one place, so both twins say exactly the same thing) ---------------------


def version_mismatch(got: int, want: int) -> str:
    return f"smux: frame version {got} does not match session version {want}"


def unknown_command(cmd: int) -> str:
    return f"smux: unknown command {cmd}"


def upd_length(length: int) -> str:
    return f"smux: UPD frame length {length} (must be {UPD_SIZE})"


def upd_in_v1() -> str:
    return "smux: UPD frame in a version 1 session"


def control_length(cmd: int, length: int) -> str:
    return f"smux: {CMD_NAMES[cmd]} frame length {length} (must be 0)"


# --- argument checks shared by the encoders (cold path; raise ValueError) ---------------------


def bad_field(name: str, value: int, low: int, high: int) -> ValueError:
    return ValueError(f"smux: {name} {value} out of range [{low}, {high}]")


def check_field(value: int, name: str, low: int, high: int) -> int:
    """``value`` as an int if it lies in [low, high]; TypeError for non-integers."""
    value = operator.index(value)
    if value < low or value > high:
        raise bad_field(name, value, low, high)
    return value


def wrap_u32(value: int) -> int:
    """``value`` modulo 2**32 (smux counters are uint32 and wrap)."""
    return operator.index(value) & _U32


def check_session_version(version: int) -> int:
    """The session's protocol version as an int; smux supports exactly 1 and 2 (mux.go)."""
    version = operator.index(version)
    if version not in (1, 2):
        raise ValueError(f"smux: session version must be 1 or 2, not {version}")
    return version
