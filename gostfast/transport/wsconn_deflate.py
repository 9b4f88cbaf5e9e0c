"""A websocket byte stream with permessage-deflate negotiated (GOST's ``enableCompression``).

Kept apart from WSEndpoint so the uncompressed write is untouched: this subclass only
changes what a data message's body is. Every write is one compressed BINARY message
(RSV1 on its first frame), as gorilla compresses every data message once the
extension is on (GOST calls EnableWriteCompression(true)); control frames are never
compressed. Receiving is the connection's (proto/wsconnection.py, built with
``compressed``): a message flagged COMPRESSED is inflated, bounded by the same
``max_message_size`` that limits wire bytes; an uncompressed one (RSV1 clear, which
RFC 7692 allows) is passed on as before; corrupt deflate data fails the connection
with 1007, an inflated size over the limit with 1009, each with WSEndpoint's one
log line naming the peer.
"""

from __future__ import annotations

from gostfast.endpoint import Endpoint
from gostfast.proto.wsdeflate import shared_deflater
from gostfast.transport.wsconn import OP_BINARY, WSEndpoint


class DeflateWSEndpoint(WSEndpoint):
    """WSEndpoint whose data messages are deflated (RFC 7692, no context takeover)."""

    __slots__ = ("_deflater",)

    compressed = True

    def __init__(self, inner: Endpoint, is_server: bool, **options) -> None:
        """WSEndpoint's arguments; ``max_message_size`` also bounds inflated messages."""
        # set before WSEndpoint attaches to ``inner``, which may deliver data at once
        self._deflater = shared_deflater()
        super().__init__(inner, is_server, **options)

    def write(self, data) -> None:
        if not self._ws.can_send or not len(data):
            return
        body = self._deflater.message(data)
        mf = self._max_frame
        if mf and len(body) > mf:
            self._send_fragmented(body, True)
        else:
            self._send_frame(OP_BINARY, body, True, True)
