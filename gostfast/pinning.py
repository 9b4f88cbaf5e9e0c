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

# the functions live with the codecs' other buffer rule, where the compiled fused data
# path (_core/wspipe_c) can reach them too; this module is their name for the rest
from gostfast._core.buffers import PIN_SLACK, owned, pinned_size

__all__ = ["PIN_SLACK", "owned", "pinned_size"]
