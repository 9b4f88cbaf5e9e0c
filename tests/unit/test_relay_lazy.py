"""The lazy relay header layers (gostfast.connector._lazy) against an in-memory endpoint.

The response may arrive split at any byte and glued to the first data: every
split of the stream must give the sink exactly the data, nothing of the header.
"""

from __future__ import annotations

import asyncio

import pytest

from gostfast.connector import _lazy
from gostfast.connector._lazy import LazyRelayRequest, LazyRelayResponse
from gostfast.endpoint import Endpoint
from gostfast.errors import EndpointClosed, HandshakeError
from gostfast.proto import relay as rp

REQUEST = rp.encode_request(rp.Request(features=[rp.Addr("example.com", 443)]))
OK = rp.encode_response(rp.Response())
# an OK response with a feature the client must skip (GOST may add features)
OK_WITH_FEATURE = rp.encode_response(rp.Response(features=[rp.Opaque(0x7F, b"\x01\x02\x03")]))
DATA = b"first bytes from the target, then more"


class MemoryEndpoint(Endpoint):
    """An endpoint whose far end is the test: it records writes, the test feeds data."""

    peer = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.eof_written = False
        self.closed_how: str | None = None
        self.reading = True

    def write(self, data) -> None:
        self.writes.append(bytes(data))

    def writelines(self, chunks) -> None:
        self.writes.append(b"".join(bytes(c) for c in chunks))

    def write_eof(self) -> None:
        self.eof_written = True

    def close(self) -> None:
        self.closed_how = self.closed_how or "close"
        self._closed_by_peer(None)

    def abort(self) -> None:
        self.closed_how = self.closed_how or "abort"
        self._closed_by_peer(None)

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    @property
    def sent(self) -> bytes:
        return b"".join(self.writes)


class RecordingSink:
    def __init__(self) -> None:
        self.data = bytearray()
        self.eof = False
        self.closed: list[BaseException | None] = []

    def on_data(self, ep, data) -> None:
        self.data += data

    def on_eof(self, ep) -> None:
        self.eof = True

    def on_close(self, ep, exc) -> None:
        self.closed.append(exc)

    def on_write_paused(self, ep) -> None:
        pass

    def on_write_resumed(self, ep) -> None:
        pass


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 5))


def _splits(stream: bytes):
    """Every way of cutting ``stream`` in two, and once byte by byte."""
    for i in range(len(stream) + 1):
        yield [stream[:i], stream[i:]]
    yield [stream[i : i + 1] for i in range(len(stream))]


@pytest.mark.parametrize("response", [OK, OK_WITH_FEATURE], ids=["plain", "with-feature"])
def test_response_stripped_at_every_split_attached(response):
    async def main():
        stream = response + DATA
        for chunks in _splits(stream):
            inner = MemoryEndpoint()
            layer = LazyRelayRequest(inner, REQUEST)
            sink = RecordingSink()
            layer.attach(sink)
            for c in chunks:
                if c:
                    inner._feed(c)
            inner._feed_eof()
            assert bytes(sink.data) == DATA, chunks
            assert sink.eof and not sink.closed
            layer.close()

    run(main())


@pytest.mark.parametrize("response", [OK, OK_WITH_FEATURE], ids=["plain", "with-feature"])
def test_response_stripped_at_every_split_before_attach(response):
    """Bytes that arrive before the relay attaches are kept for it (handshake buffer)."""

    async def main():
        stream = response + DATA
        for chunks in _splits(stream):
            inner = MemoryEndpoint()
            for c in chunks[:1]:
                inner._feed(c)  # buffered in the inner endpoint before the layer exists
            layer = LazyRelayRequest(inner, REQUEST)
            for c in chunks[1:]:
                if c:
                    inner._feed(c)
            sink = RecordingSink()
            layer.attach(sink)
            assert bytes(sink.data) == DATA, chunks
            layer.close()

    run(main())


def test_request_rides_on_the_first_write_only():
    async def main():
        inner = MemoryEndpoint()
        layer = LazyRelayRequest(inner, REQUEST)
        layer.attach(RecordingSink())
        assert inner.writes == []
        layer.write(b"GET / HTTP/1.1\r\n\r\n")
        assert inner.writes == [REQUEST + b"GET / HTTP/1.1\r\n\r\n"]  # one write
        layer.write(b"more")
        layer.writelines([b"a", b"b"])
        assert inner.writes[1:] == [b"more", b"ab"]
        layer.close()

    run(main())


def test_writelines_first():
    async def main():
        inner = MemoryEndpoint()
        layer = LazyRelayRequest(inner, REQUEST)
        layer.writelines([b"x", b"y"])
        assert inner.writes == [REQUEST + b"xy"]
        layer.close()

    run(main())


def test_request_sent_alone_when_nobody_writes(monkeypatch):
    """Server-speaks-first protocols: the request goes out after FLUSH_DELAY."""
    monkeypatch.setattr(_lazy, "FLUSH_DELAY", 0.01)

    async def main():
        inner = MemoryEndpoint()
        layer = LazyRelayRequest(inner, REQUEST)
        sink = RecordingSink()
        layer.attach(sink)
        assert inner.writes == []
        await asyncio.sleep(0.05)
        assert inner.writes == [REQUEST]
        inner._feed(OK + b"220 greeting")
        assert bytes(sink.data) == b"220 greeting"
        layer.write(b"HELO")
        assert inner.writes == [REQUEST, b"HELO"]
        layer.close()

    run(main())


def test_handshake_mode_read_flushes_and_strips():
    """A later hop's connector reads through the layer in handshake mode."""

    async def main():
        inner = MemoryEndpoint()
        layer = LazyRelayRequest(inner, REQUEST)
        reader = asyncio.ensure_future(layer.readexactly(len(DATA)))
        await asyncio.sleep(0)
        assert inner.writes == [REQUEST]  # waiting for bytes sends the request
        for i in range(0, len(OK + DATA), 3):
            inner._feed((OK + DATA)[i : i + 3])
        assert await reader == DATA
        layer.close()

    run(main())


def test_half_close_sends_request_first():
    async def main():
        inner = MemoryEndpoint()
        layer = LazyRelayRequest(inner, REQUEST)
        layer.write_eof()
        assert inner.writes == [REQUEST] and inner.eof_written
        layer.close()

    run(main())


def test_close_before_write_sends_nothing():
    async def main():
        inner = MemoryEndpoint()
        layer = LazyRelayRequest(inner, REQUEST)
        layer.attach(RecordingSink())
        layer.close()
        await asyncio.sleep(_lazy.FLUSH_DELAY + 0.02)
        assert inner.writes == []

    run(main())


@pytest.mark.parametrize("status", [1, 2, 3, 5, 6, 7, 8, 0x42])
def test_error_status_ends_the_tunnel(status):
    async def main():
        inner = MemoryEndpoint()
        layer = LazyRelayRequest(inner, REQUEST, "node-0: relay CONNECT example.com:443")
        sink = RecordingSink()
        layer.attach(sink)
        layer.write(b"x")
        inner._feed(rp.encode_response(rp.Response(status=status)) + b"never delivered")
        assert sink.data == b""
        assert len(sink.closed) == 1 and isinstance(sink.closed[0], HandshakeError)
        assert f"status {status}" in str(sink.closed[0])
        assert "node-0" in str(sink.closed[0])
        assert inner.closed_how == "abort"

    run(main())


def test_bad_version_ends_the_tunnel():
    async def main():
        inner = MemoryEndpoint()
        layer = LazyRelayRequest(inner, REQUEST)
        sink = RecordingSink()
        layer.attach(sink)
        inner._feed(b"\x05\x00\x00\x00data")
        assert sink.data == b"" and isinstance(sink.closed[0], HandshakeError)

    run(main())


def test_error_status_in_handshake_mode_raises():
    async def main():
        inner = MemoryEndpoint()
        layer = LazyRelayRequest(inner, REQUEST)
        reader = asyncio.ensure_future(layer.read())
        await asyncio.sleep(0)
        inner._feed(rp.encode_response(rp.Response(status=rp.STATUS_UNAUTHORIZED)))
        with pytest.raises(EndpointClosed) as info:
            await reader
        assert isinstance(info.value.cause, HandshakeError)

    run(main())


def test_eof_before_any_response_byte_is_plain_eof():
    async def main():
        inner = MemoryEndpoint()
        layer = LazyRelayRequest(inner, REQUEST)
        sink = RecordingSink()
        layer.attach(sink)
        inner._feed_eof()
        assert sink.eof and not sink.closed

    run(main())


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_eof_inside_the_response_is_an_error(cut):
    async def main():
        inner = MemoryEndpoint()
        layer = LazyRelayRequest(inner, REQUEST)
        sink = RecordingSink()
        layer.attach(sink)
        inner._feed(OK[:cut])
        inner._feed_eof()
        assert not sink.eof
        assert isinstance(sink.closed[0], HandshakeError)

    run(main())


def test_flow_control_passes_through():
    async def main():
        inner = MemoryEndpoint()
        layer = LazyRelayRequest(inner, REQUEST)
        layer.pause_reading()
        assert not inner.reading
        layer.resume_reading()
        assert inner.reading
        paused = []

        class Sink(RecordingSink):
            def on_write_paused(self, ep):
                paused.append(ep)

        layer.attach(Sink())
        inner._write_paused()
        assert paused == [layer]
        layer.close()

    run(main())


# ---------------------------------------------------------------- handler side


def test_response_prefix_goes_with_the_first_write():
    async def main():
        inner = MemoryEndpoint()
        inner._feed(b"client bytes pipelined behind the request")
        layer = LazyRelayResponse(inner, OK)
        sink = RecordingSink()
        layer.attach(sink)
        assert bytes(sink.data) == b"client bytes pipelined behind the request"
        assert inner.writes == []
        layer.write(b"target says hi")
        assert inner.writes == [OK + b"target says hi"]
        layer.write(b"again")
        assert inner.writes[1] == b"again"

    run(main())


def test_response_prefix_sent_before_half_close():
    async def main():
        inner = MemoryEndpoint()
        layer = LazyRelayResponse(inner, OK)
        layer.attach(RecordingSink())
        layer.write_eof()
        assert inner.writes == [OK] and inner.eof_written

    run(main())


def test_request_and_response_layers_talk_to_each_other():
    """Client layer <-> server layer over two memory endpoints, split everywhere."""

    async def main():
        client_inner, server_inner = MemoryEndpoint(), MemoryEndpoint()
        client = LazyRelayRequest(client_inner, REQUEST)
        client_sink = RecordingSink()
        client.attach(client_sink)
        client.write(b"ping")
        assert client_inner.sent == REQUEST + b"ping"
        parsed, used = rp.parse_request(client_inner.sent)
        assert parsed.feature(rp.Addr) == rp.Addr("example.com", 443)
        server_inner._feed(client_inner.sent[used:])
        server = LazyRelayResponse(server_inner, OK)
        server_sink = RecordingSink()
        server.attach(server_sink)
        assert bytes(server_sink.data) == b"ping"
        server.write(b"pong")
        for b in server_inner.sent:  # one byte at a time
            client_inner._feed(bytes((b,)))
        assert bytes(client_sink.data) == b"pong"

    run(main())
