"""The one rule for what a codec accepts as bytes, shared by every codec and its twin.

Any C-contiguous buffer is accepted and read as flat unsigned bytes, whatever
its item format (an ``array('I')`` is its raw bytes): payload slices handed
out are slices of this view, so their offsets count bytes. Anything else is a
TypeError, as Python's own bytes-like APIs raise it.

Invariants: no I/O, no state; the view shares the caller's memory (no copy).
"""

from __future__ import annotations

__all__ = ["byte_view"]


def byte_view(data) -> memoryview:
    """``data`` as a 1-D unsigned-byte memoryview; TypeError unless a contiguous buffer."""
    view = memoryview(data)
    if not view.c_contiguous:
        raise TypeError("a contiguous buffer is required")
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view
