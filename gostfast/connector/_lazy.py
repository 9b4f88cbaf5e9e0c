"""GOST relay's lazy header exchange, as endpoint layers (callbacks only).

GOST's relay connector (md ``nodelay=false``, the default) does not wait for the
server's answer before the tunnel is used: the request header is held back and
sent in the same write as the first application bytes, and the response header
is read and checked just before the first application bytes are read. GOST's
relay handler mirrors it: its 4-byte OK response is held back and sent in front
of the first bytes going to the client. Both save a round trip per tunnel.

Here both halves are ``LayeredEndpoint``s over the transport endpoint, so the
relay keeps piping with callbacks and no coroutine per chunk:

* ``LazyRelayRequest`` (connector side): holds the request until the first
  ``write``; strips and validates the response from the first bytes received,
  which may arrive split anywhere or glued to the first data.
* ``LazyRelayResponse`` (handler side): puts the response in front of the first
  ``write``.

Where we go beyond GOST (written down because it is deliberate):

* A server-speaks-first protocol (SMTP, MySQL...) deadlocks with GOST's lazy
  client: the request waits for the client's first write, the client waits for
  the server. ``LazyRelayRequest`` sends the request alone once the relay has
  been attached for ``FLUSH_DELAY`` seconds without a write, and at once when
  someone reads it in handshake mode or half-closes it.
* ``LazyRelayResponse`` sends the held response before a half-close too, so a
  target that closes without a byte gives the client a clean EOF after an OK
  rather than a connection that ends inside the handshake.
* EOF before any response byte reads as a plain EOF (GOST's io.Copy sees the
  same io.EOF); EOF inside the response is an error.
"""

from __future__ import annotations

import asyncio

from gostfast.endpoint import DEFAULT_READ, Endpoint, LayeredEndpoint, Sink
from gostfast.errors import HandshakeError
from gostfast.proto import relay as relayproto
from gostfast.proto.errors import RelayError

FLUSH_DELAY = 0.05
"""Seconds an attached LazyRelayRequest waits for a first write before sending the
request alone (see the module docstring)."""


class LazyRelayResponse(LayeredEndpoint):
    """Handler side: ``prefix`` (the OK response) goes out with the first write."""

    def __init__(self, inner: Endpoint, prefix: bytes) -> None:
        super().__init__(inner)
        self._prefix: bytes | None = prefix

    def write(self, data) -> None:
        prefix = self._prefix
        if prefix is None:
            self.inner.write(data)
        else:
            self._prefix = None
            self.inner.writelines([prefix, data])

    def writelines(self, chunks: list) -> None:
        prefix = self._prefix
        if prefix is not None:
            self._prefix = None
            chunks = [prefix, *chunks]
        self.inner.writelines(chunks)

    def write_eof(self) -> None:
        if self._prefix is not None:
            prefix, self._prefix = self._prefix, None
            self.inner.write(prefix)
        self.inner.write_eof()


class LazyRelayRequest(LayeredEndpoint):
    """Connector side: the request rides on the first write; the response is
    stripped from the first bytes received and must say OK."""

    def __init__(self, inner: Endpoint, request: bytes, what: str = "relay") -> None:
        self._request: bytes | None = request
        self._response: bytearray | None = bytearray()  # None once the response is through
        self._what = what
        self._timer: asyncio.TimerHandle | None = None
        super().__init__(inner)

    # ---------------------------------------------------------------- writing
    def _take_request(self) -> bytes | None:
        request = self._request
        if request is not None:
            self._request = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        return request

    def flush_request(self) -> None:
        """Send the held request now (alone), if it has not gone yet."""
        request = self._take_request()
        if request is not None and not self._closed:
            self.inner.write(request)

    def write(self, data) -> None:
        request = self._take_request()
        if request is None:
            self.inner.write(data)
        else:
            self.inner.writelines([request, data])

    def writelines(self, chunks: list) -> None:
        request = self._take_request()
        if request is not None:
            chunks = [request, *chunks]
        self.inner.writelines(chunks)

    def write_eof(self) -> None:
        self.flush_request()
        self.inner.write_eof()

    def close(self) -> None:
        self._take_request()
        self.inner.close()

    def abort(self) -> None:
        self._take_request()
        self.inner.abort()

    def attach(self, sink: Sink) -> None:
        super().attach(sink)
        if self._request is not None and not self._closed:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(FLUSH_DELAY, self.flush_request)

    # Reading in handshake mode waits for the server, which waits for the request.
    async def read(self, n: int = DEFAULT_READ) -> bytes:
        self.flush_request()
        return await super().read(n)

    async def readexactly(self, n: int) -> bytes:
        self.flush_request()
        return await super().readexactly(n)

    async def readuntil(self, sep: bytes, limit: int) -> bytes:
        self.flush_request()
        return await super().readuntil(sep, limit)

    async def peek(self, n: int) -> bytes:
        self.flush_request()
        return await super().peek(n)

    # ---------------------------------------------------------------- reading
    def on_data(self, ep: Endpoint, data) -> None:
        pending = self._response
        if pending is None:
            sink = self._sink
            if sink is not None:
                sink.on_data(self, data)
            else:
                self._feed(data)
            return
        pending += data
        try:
            parsed = relayproto.parse_response(pending)
        except RelayError as exc:
            self._fail(f"bad response: {exc}")
            return
        if parsed is None:
            return
        resp, used = parsed
        if resp.status != relayproto.STATUS_OK:
            text = relayproto.status_text(resp.status) or "unknown status"
            self._fail(f"status {resp.status} {text}")
            return
        rest = bytes(pending[used:])
        self._response = None
        if rest:
            self._feed(rest)

    def on_eof(self, ep: Endpoint) -> None:
        if self._response:  # EOF inside the response
            self._fail(f"connection closed inside the response ({len(self._response)} bytes)")
            return
        self._response = None
        self._feed_eof()

    def _fail(self, why: str) -> None:
        self._response = None
        self._take_request()
        self._closed_by_peer(HandshakeError(f"{self._what}: {why}"))
        self.inner.abort()
