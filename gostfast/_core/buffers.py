"""The one rule for what a codec accepts as bytes, shared by every codec and its twin.

Any C-contiguous buffer is accepted and read as flat unsigned bytes, whatever
its item format (an ``array('I')`` is its raw bytes): payload slices handed
out are slices of this view, so their offsets count bytes. Anything else is a
TypeError, as Python's own bytes-like APIs raise it.

Invariants: no I/O, no state; the view shares the caller's memory (no copy).

``owned`` is the other side of that zero copy: a payload slice kept past the call
that delivered it pins its whole buffer, so whoever keeps one copies it unless it
covers nearly all of that buffer (gostfast/pinning.py tells why; issue 17).
"""

from __future__ import annotations

__all__ = ["byte_view", "PIN_SLACK", "pinned_size", "owned"]


def byte_view(data) -> memoryview:
    """``data`` as a 1-D unsigned-byte memoryview; TypeError unless a contiguous buffer."""
    view = memoryview(data)
    if not view.c_contiguous:
        raise TypeError("a contiguous buffer is required")
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


#: bytes a kept slice may pin beyond its own size: an smux frame header (8), so
#: GOST's one-frame-per-message traffic keeps its zero-copy path
PIN_SLACK = 64


def pinned_size(data) -> int:
    """Bytes ``data`` keeps alive: a memoryview's whole underlying buffer, else its own size."""
    if type(data) is memoryview:
        base = data.obj
        if type(base) is bytes or type(base) is bytearray:
            return len(base)
        if base is not None:
            return memoryview(base).nbytes
        return data.nbytes
    return len(data)


def owned(data, slack: int = PIN_SLACK):
    """``data``, or a ``bytes`` copy when it is a view pinning more than its size + ``slack``."""
    if type(data) is memoryview and pinned_size(data) - data.nbytes > slack:
        return data.tobytes()
    return data
