"""Views that would keep a whole receive buffer alive, and their copies.

The codecs hand out payloads as memoryview slices of the buffer they parsed
(zero copy). A slice keeps its whole buffer alive for as long as it lives,
so a few bytes kept for later (queued for a paused smux stream, or waiting
in a transport's write buffer) can pin a multi-megabyte websocket message
while every budget counts only those few bytes: memory amplification
(issue 17, docs/limits.md). Whoever keeps a payload past the callback that
delivered it passes it through ``owned`` first: a slice that covers nearly
all of its buffer is kept as it is; anything else is copied, which for a
small slice costs less than the buffer it would pin.
"""

from __future__ import annotations

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
