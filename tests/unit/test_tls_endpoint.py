"""TLS as an endpoint layer: TLSEndpoint over TCP, over TLS, over a non-socket endpoint, and the
native start_tls path -- real TLS on 127.0.0.1, on the default asyncio loop and on uvloop."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import sys

import pytest

from gostfast.config.model import TLSConfig
from gostfast.endpoint import Endpoint, TCPEndpoint
from gostfast.errors import HandshakeError
from gostfast.tlsutil import selfsigned
from gostfast.tlsutil.contexts import client_context
from gostfast.tlsutil.endpoint import (
    TLSEndpoint,
    _native_ok,
    start_tls_tcp,
    wrap_client,
)

uvloop = pytest.importorskip("uvloop")


async def wrap_server(ep, ctx: ssl.SSLContext, timeout: float | None):
    """TLS server over ``ep``, the same choice wrap_client makes (the package itself serves
    TLS through the loop: only these tests need the server side of both paths)."""
    if _native_ok(ep):
        return await start_tls_tcp(ep, ctx, None, timeout, server_side=True)
    tls = TLSEndpoint(ep, ctx, server_side=True)
    await tls.handshake(timeout)
    return tls


log = logging.getLogger("test.tls")
MiB = 1024 * 1024
T = 5.0


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request):
    factory = asyncio.new_event_loop if request.param == "asyncio" else uvloop.new_event_loop

    def run(coro_fn, timeout: float = 20.0):
        loop = factory()
        try:
            return loop.run_until_complete(asyncio.wait_for(coro_fn(), timeout))
        finally:
            # what asyncio.run does: cancel leftovers, let transports close, then close
            pending = asyncio.all_tasks(loop)
            for t in pending:
                t.cancel()
            if pending:  # (an empty gather() would bind to another loop)
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(asyncio.sleep(0.01))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    return run


def _server_ctx(tmp_path_factory, cn: str) -> ssl.SSLContext:
    d = tmp_path_factory.mktemp(cn)
    cert, key = selfsigned.generate(common_name=cn)
    (d / "c.pem").write_bytes(cert)
    (d / "k.pem").write_bytes(key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(d / "c.pem"), str(d / "k.pem"))
    return ctx


@pytest.fixture(scope="module")
def server_ctx(tmp_path_factory) -> ssl.SSLContext:
    return _server_ctx(tmp_path_factory, "gost.run")


@pytest.fixture(scope="module")
def inner_server_ctx(tmp_path_factory) -> ssl.SSLContext:
    return _server_ctx(tmp_path_factory, "inner.gost.run")


@pytest.fixture(scope="module")
def client_ctx() -> ssl.SSLContext:
    return client_context(TLSConfig(), log)


# ------------------------------------------------------------------ helpers
async def tcp_connect(port: int) -> TCPEndpoint:
    _, ep = await asyncio.get_running_loop().create_connection(TCPEndpoint, "127.0.0.1", port)
    return ep


async def _echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        w.close()


async def echo_server(ctx: ssl.SSLContext):
    srv = await asyncio.start_server(_echo, "127.0.0.1", 0, ssl=ctx)
    return srv, srv.sockets[0].getsockname()[1]


async def stop(srv) -> None:
    srv.close()
    await srv.wait_closed()


class EndpointServer:
    """A plain TCP server whose connections are TCPEndpoints handed to ``on_accept`` (a coroutine).

    ``close`` also aborts every accepted connection and cancels the handlers, so
    nothing is left open when the loop closes.
    """

    def __init__(self, on_accept) -> None:
        self.on_accept = on_accept
        self.tasks: set[asyncio.Task] = set()
        self.accepted: list[TCPEndpoint] = []
        self.srv = None

    async def start(self) -> int:
        outer = self

        class Accepted(TCPEndpoint):
            def connection_made(self, transport) -> None:
                super().connection_made(transport)
                outer.accepted.append(self)
                t = asyncio.get_running_loop().create_task(outer.on_accept(self))
                outer.tasks.add(t)

        self.srv = await asyncio.get_running_loop().create_server(Accepted, "127.0.0.1", 0)
        return self.srv.sockets[0].getsockname()[1]

    def close(self) -> None:
        self.srv.close()
        for t in self.tasks:
            t.cancel()
        for ep in self.accepted:
            ep.abort()

    async def wait_closed(self) -> None:
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.srv.wait_closed()
        await asyncio.sleep(0.01)  # let the aborted transports finish closing


async def endpoint_server(on_accept):
    srv = EndpointServer(on_accept)
    return srv, await srv.start()


async def echo_bytes(ep: Endpoint, n: int) -> None:
    """Write ``n`` random bytes in 64 KiB pieces and read exactly them back."""
    blob = os.urandom(n)

    async def writer():
        for i in range(0, n, 65536):
            ep.write(blob[i : i + 65536])
            await ep.drain()

    w = asyncio.ensure_future(writer())
    got = await asyncio.wait_for(ep.readexactly(n), T * 2)
    await w
    assert got == blob


class Collector:
    """A data-mode sink that records everything."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.eof = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_exc: BaseException | None = None
        self.events: list[str] = []

    def on_data(self, ep, data) -> None:
        self.data += data

    def on_eof(self, ep) -> None:
        self.events.append("eof")
        self.eof.set()

    def on_close(self, ep, exc) -> None:
        self.events.append("close")
        self.close_exc = exc
        self.closed.set()

    def on_write_paused(self, ep) -> None:
        self.events.append("paused")

    def on_write_resumed(self, ep) -> None:
        self.events.append("resumed")


# ------------------------------------------------------------------ TLSEndpoint over TCP
def test_tls_endpoint_echo_1mib(run, server_ctx, client_ctx):
    async def main():
        srv, port = await echo_server(server_ctx)
        try:
            tls = TLSEndpoint(await tcp_connect(port), client_ctx, server_hostname="gost.run")
            await tls.handshake(T)
            assert tls.ssl_object.version() == "TLSv1.3"
            assert tls.peer.startswith("127.0.0.1:")
            await echo_bytes(tls, MiB)
            tls.write_eof()  # close_notify: asyncio's server then ends the session
            assert await asyncio.wait_for(tls.read(), T) == b""
            tls.close()
        finally:
            await stop(srv)

    run(main)


def test_tls_endpoint_data_mode(run, server_ctx, client_ctx):
    async def main():
        srv, port = await echo_server(server_ctx)
        try:
            tls = TLSEndpoint(await tcp_connect(port), client_ctx, server_hostname="gost.run")
            await tls.handshake(T)
            sink = Collector()
            tls.attach(sink)
            blob = os.urandom(300_000)
            tls.writelines([blob[:100_000], blob[100_000:]])
            while len(sink.data) < len(blob):
                await asyncio.sleep(0.005)
            assert bytes(sink.data) == blob
            tls.close()
            await asyncio.wait_for(sink.closed.wait(), T)
            assert sink.close_exc is None
        finally:
            await stop(srv)

    run(main)


def test_tls12_works_too(run, server_ctx):
    ctx = client_context(TLSConfig(), log)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2

    async def main():
        srv, port = await echo_server(server_ctx)
        try:
            tls = TLSEndpoint(await tcp_connect(port), ctx, server_hostname="gost.run")
            await tls.handshake(T)
            assert tls.ssl_object.version() == "TLSv1.2"
            await echo_bytes(tls, 200_000)
            tls.close()
        finally:
            await stop(srv)

    run(main)


# ------------------------------------------------------------------ nesting
@pytest.mark.skipif(
    sys.version_info < (3, 11),
    reason="the peer uses StreamWriter.start_tls (TLS in TLS in asyncio is 3.11+); "
    "test_tls_inside_tls_with_our_server covers nesting everywhere",
)
def test_tls_inside_tls(run, server_ctx, inner_server_ctx, client_ctx):
    """TLSEndpoint over TLSEndpoint over TCP, against asyncio's TLS-in-TLS (start_tls on its SSL
    transport); then the same with the outer layer on the native start_tls path."""

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        # "go" first: bytes that reach the StreamReader before start_tls would be lost to it
        w.write(b"go")
        try:
            await w.start_tls(inner_server_ctx)
        except (ConnectionError, ssl.SSLError):
            w.close()
            return
        await _echo(r, w)

    async def main():
        srv = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=server_ctx)
        port = srv.sockets[0].getsockname()[1]
        try:
            outer = TLSEndpoint(await tcp_connect(port), client_ctx, server_hostname="gost.run")
            await outer.handshake(T)
            assert await asyncio.wait_for(outer.readexactly(2), T) == b"go"
            inner = TLSEndpoint(outer, client_ctx, server_hostname="inner.gost.run")
            await inner.handshake(T)
            der = inner.ssl_object.getpeercert(binary_form=True)
            assert b"inner.gost.run" in der
            await echo_bytes(inner, 300_000)
            inner.close()

            # outer natively (wrap_client picks start_tls), inner must then be a TLSEndpoint
            tcp = await tcp_connect(port)
            outer2 = await wrap_client(tcp, client_ctx, "gost.run", T)
            assert outer2 is tcp and tcp.transport.get_extra_info("ssl_object") is not None
            assert await asyncio.wait_for(outer2.readexactly(2), T) == b"go"
            inner2 = await wrap_client(outer2, client_ctx, "inner.gost.run", T)
            assert isinstance(inner2, TLSEndpoint)
            await echo_bytes(inner2, 300_000)
            inner2.close()
        finally:
            await stop(srv)

    run(main)


def test_tls_inside_tls_with_our_server(run, server_ctx, inner_server_ctx, client_ctx):
    """Both ends ours, both layers TLSEndpoint, sizes that cross record and buffer boundaries."""

    async def serve(ep: TCPEndpoint) -> None:
        try:
            outer = await wrap_server(ep, server_ctx, T)  # native path
            inner = await wrap_server(outer, inner_server_ctx, T)  # TLSEndpoint
            while data := await inner.read():
                inner.write(data)
            inner.write_eof()
        except (HandshakeError, ConnectionError):
            ep.abort()

    async def main():
        srv, port = await endpoint_server(serve)
        try:
            outer = TLSEndpoint(await tcp_connect(port), client_ctx, server_hostname="gost.run")
            await outer.handshake(T)
            inner = TLSEndpoint(outer, client_ctx, server_hostname="inner.gost.run")
            await inner.handshake(T)
            for n in (1, 16383, 16384, 16385, 200_001):
                await echo_bytes(inner, n)
            inner.write_eof()
            assert await asyncio.wait_for(inner.read(), T) == b""
            inner.close()
        finally:
            await stop(srv)

    run(main)


# ------------------------------------------------------------------ native path
def test_start_tls_tcp_fast_path_echo(run, server_ctx, client_ctx):
    async def main():
        srv, port = await echo_server(server_ctx)
        try:
            ep = await tcp_connect(port)
            same = await start_tls_tcp(ep, client_ctx, "gost.run", T)
            assert same is ep
            assert ep.transport.get_extra_info("ssl_object").version() == "TLSv1.3"
            await echo_bytes(ep, MiB)
            sink = Collector()
            ep.attach(sink)
            ep.write(b"x" * 1000)
            while len(sink.data) < 1000:
                await asyncio.sleep(0.005)
            ep.close()
            await asyncio.wait_for(sink.closed.wait(), T)
        finally:
            await stop(srv)

    run(main)


def test_native_path_only_for_fresh_plain_tcp(run, server_ctx, client_ctx):
    async def main():
        srv, port = await echo_server(server_ctx)
        try:
            plain = await tcp_connect(port)
            assert _native_ok(plain)
            plain.unread(b"x")  # bytes already read: the loop's SSL protocol would never see them
            assert not _native_ok(plain)
            attached = await tcp_connect(port)
            attached.attach(Collector())
            assert not _native_ok(attached)
            tls = await wrap_client(await tcp_connect(port), client_ctx, "gost.run", T)
            assert isinstance(tls, TCPEndpoint) and not _native_ok(tls)  # already TLS
            for ep in (plain, attached, tls):
                ep.close()
        finally:
            await stop(srv)

    run(main)


# ------------------------------------------------------------------ handshake failures
async def _garbage(ep: TCPEndpoint) -> None:
    await ep.read()  # the ClientHello
    ep.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    ep.close()


async def _hang_up(ep: TCPEndpoint) -> None:
    await ep.read()
    ep.close()


async def _silent(ep: TCPEndpoint) -> None:
    await asyncio.sleep(30)


async def _client(path: str, port: int, ctx: ssl.SSLContext, timeout: float = T) -> Endpoint:
    ep = await tcp_connect(port)
    if path == "native":
        return await start_tls_tcp(ep, ctx, "gost.run", timeout)
    tls = TLSEndpoint(ep, ctx, server_hostname="gost.run")
    await tls.handshake(timeout)
    return tls


@pytest.mark.parametrize("path", ["endpoint", "native"])
def test_garbage_instead_of_server_hello(run, client_ctx, path):
    async def main():
        srv, port = await endpoint_server(_garbage)
        try:
            with pytest.raises(HandshakeError) as ei:
                await _client(path, port, client_ctx)
            return str(ei.value)
        finally:
            await stop(srv)

    msg = run(main)
    assert msg.startswith("TLS handshake with 127.0.0.1:")
    assert "wrong version number" in msg and "does not speak TLS" in msg


@pytest.mark.parametrize("path", ["endpoint", "native"])
def test_peer_hangs_up_during_handshake(run, client_ctx, path):
    async def main():
        srv, port = await endpoint_server(_hang_up)
        try:
            with pytest.raises(HandshakeError) as ei:
                await _client(path, port, client_ctx)
            return str(ei.value)
        finally:
            await stop(srv)

    msg = run(main)
    assert "closed" in msg or "EOF" in msg or "reset" in msg, msg


@pytest.mark.parametrize("path", ["endpoint", "native"])
def test_handshake_timeout(run, client_ctx, path):
    async def main():
        srv, port = await endpoint_server(_silent)
        try:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            with pytest.raises(HandshakeError) as ei:
                await _client(path, port, client_ctx, timeout=0.3)
            assert loop.time() - t0 < 3
            return str(ei.value)
        finally:
            await stop(srv)

    assert "timed out" in run(main)


@pytest.mark.parametrize("path", ["endpoint", "native"])
def test_unverified_certificate_is_a_handshake_error(run, server_ctx, path):
    secure = client_context(TLSConfig(secure=True), log)

    async def main():
        srv, port = await echo_server(server_ctx)
        try:
            with pytest.raises(HandshakeError) as ei:
                await _client(path, port, secure)
            return str(ei.value)
        finally:
            await stop(srv)

    msg = run(main)
    assert "certificate verify failed" in msg and "self-signed" in msg


# ------------------------------------------------------------------ end of stream
def test_ragged_eof_reads_as_eof(run, server_ctx, client_ctx):
    """The server sends data then a TCP FIN with no close_notify: Go calls that EOF, so do we."""

    async def serve(ep: TCPEndpoint) -> None:
        tls = TLSEndpoint(ep, server_ctx, server_side=True)
        await tls.handshake(T)
        tls.write(b"bye")
        ep.write_eof()  # TCP half-close under TLS: no close_notify

    async def main():
        srv, port = await endpoint_server(serve)
        try:
            tls = TLSEndpoint(await tcp_connect(port), client_ctx, server_hostname="gost.run")
            await tls.handshake(T)
            assert await asyncio.wait_for(tls.readexactly(3), T) == b"bye"
            assert await asyncio.wait_for(tls.read(), T) == b""
            assert tls.at_eof and not tls.closed

            # data mode: on_eof, not on_close with an error
            tls2 = TLSEndpoint(await tcp_connect(port), client_ctx, server_hostname="gost.run")
            await tls2.handshake(T)
            sink = Collector()
            tls2.attach(sink)
            await asyncio.wait_for(sink.eof.wait(), T)
            assert bytes(sink.data) == b"bye" and sink.events == ["eof"]
            tls.close()
            tls2.close()
            await asyncio.wait_for(sink.closed.wait(), T)
            assert sink.close_exc is None
        finally:
            await stop(srv)

    run(main)


def test_close_notify_reads_as_eof(run, server_ctx, client_ctx):
    async def handler(r, w):
        w.write(b"bye")
        await w.drain()
        w.close()  # asyncio sends close_notify

    async def main():
        srv = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=server_ctx)
        try:
            tls = TLSEndpoint(
                await tcp_connect(srv.sockets[0].getsockname()[1]),
                client_ctx,
                server_hostname="gost.run",
            )
            await tls.handshake(T)
            assert await asyncio.wait_for(tls.readexactly(3), T) == b"bye"
            assert await asyncio.wait_for(tls.read(), T) == b""
            tls.close()
        finally:
            await stop(srv)

    run(main)


def test_half_close_both_ways(run, server_ctx, client_ctx):
    """write_eof is close_notify only (Go's CloseWrite): the peer can still answer after it."""

    async def serve(ep: TCPEndpoint) -> None:
        tls = TLSEndpoint(ep, server_ctx, server_side=True)
        await tls.handshake(T)
        request = bytearray()
        while data := await tls.read():
            request += data
        tls.write(b"got " + bytes(request))
        tls.write_eof()

    async def main():
        srv, port = await endpoint_server(serve)
        try:
            tls = TLSEndpoint(await tcp_connect(port), client_ctx, server_hostname="gost.run")
            await tls.handshake(T)
            tls.write(b"request")
            tls.write_eof()
            tls.write(b"ignored after write_eof")
            reply = await asyncio.wait_for(tls.readexactly(11), T)
            assert reply == b"got request"
            assert await asyncio.wait_for(tls.read(), T) == b""
            tls.close()
        finally:
            await stop(srv)

    run(main)


# ------------------------------------------------------------------ over a non-socket endpoint
class Pipe(Endpoint):
    """One end of an in-memory byte pipe: what the other end writes arrives here a tick later."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.peer = name
        self.other: Pipe | None = None
        self.read_paused = False
        self.eofs_sent = 0

    @classmethod
    def pair(cls) -> tuple[Pipe, Pipe]:
        a, b = cls("pipe-a"), cls("pipe-b")
        a.other, b.other = b, a
        return a, b

    def _soon(self, fn, *args) -> None:
        asyncio.get_running_loop().call_soon(fn, *args)

    def write(self, data) -> None:
        if not self._closed:
            self._soon(self.other._feed, bytes(data))

    def write_eof(self) -> None:
        self.eofs_sent += 1
        self._soon(self.other._feed_eof)

    def close(self) -> None:  # no EOF, just gone: EOF above us can only come from close_notify
        self._soon(self._closed_by_peer, None)
        self._soon(self.other._closed_by_peer, None)

    def pause_reading(self) -> None:
        self.read_paused = True

    def resume_reading(self) -> None:
        self.read_paused = False


def test_over_an_in_memory_endpoint(run, server_ctx, client_ctx):
    async def main():
        a, b = Pipe.pair()
        client = TLSEndpoint(a, client_ctx, server_hostname="gost.run")
        server = TLSEndpoint(b, server_ctx, server_side=True)
        client.write(b"early ")  # before the handshake: queued, sent after it
        await asyncio.gather(client.handshake(T), server.handshake(T))
        client.write(b"bird")
        assert await asyncio.wait_for(server.readexactly(10), T) == b"early bird"
        # big transfer both ways through the in-memory pipe
        blob = os.urandom(500_000)
        server.write(blob)
        assert await asyncio.wait_for(client.readexactly(len(blob)), T) == blob

        # backpressure and flow control pass straight through
        sink = Collector()
        client.attach(sink)
        a._write_paused()
        a._write_resumed()
        assert sink.events == ["paused", "resumed"]
        client.pause_reading()
        assert a.read_paused
        client.resume_reading()
        assert not a.read_paused

        # close() = close_notify, then the inner closes: the server sees EOF before close
        ssink = Collector()
        server.attach(ssink)
        client.close()
        await asyncio.wait_for(ssink.closed.wait(), T)
        assert ssink.events == ["eof", "close"]
        assert a.eofs_sent == 0  # write_eof/close never half-close the inner (Go's CloseWrite)

    run(main)


def test_tls_error_after_handshake_is_a_close_with_exc(run, server_ctx, client_ctx):
    async def main():
        a, b = Pipe.pair()
        client = TLSEndpoint(a, client_ctx, server_hostname="gost.run")
        server = TLSEndpoint(b, server_ctx, server_side=True)
        await asyncio.gather(client.handshake(T), server.handshake(T))
        sink = Collector()
        client.attach(sink)
        b.write(b"\x17\x03\x03\x00\x20" + b"\x00" * 32)  # an application record that won't decrypt
        await asyncio.wait_for(sink.closed.wait(), T)
        assert isinstance(sink.close_exc, ssl.SSLError)
        assert client.closed

    run(main)


def test_handshake_twice_is_refused(run, server_ctx, client_ctx):
    async def main():
        a, b = Pipe.pair()
        client = TLSEndpoint(a, client_ctx, server_hostname="gost.run")
        server = TLSEndpoint(b, server_ctx, server_side=True)
        await asyncio.gather(client.handshake(T), server.handshake(T))
        with pytest.raises(RuntimeError):
            await client.handshake(T)

    run(main)


def test_sink_closing_inside_on_data_is_deferred_safely(run, server_ctx, client_ctx):
    """close() from the sink while records are being fed: close_notify still goes out cleanly."""

    class CloseOnFirst(Collector):
        def on_data(self, ep, data) -> None:
            super().on_data(ep, data)
            ep.close()

    async def main():
        a, b = Pipe.pair()
        client = TLSEndpoint(a, client_ctx, server_hostname="gost.run")
        server = TLSEndpoint(b, server_ctx, server_side=True)
        await asyncio.gather(client.handshake(T), server.handshake(T))
        csink, ssink = CloseOnFirst(), Collector()
        client.attach(csink)
        server.attach(ssink)
        server.writelines([b"one", b"two", b"three"])  # three records in one inner write
        await asyncio.wait_for(ssink.closed.wait(), T)
        assert bytes(csink.data) == b"one"  # nothing fed after close()
        assert ssink.events == ["eof", "close"] and ssink.close_exc is None

    run(main)


def test_relay_half_close_through_tls(run, server_ctx, client_ctx):
    """The relay between a TLSEndpoint and another endpoint: data both ways, EOF each way."""
    from gostfast.relay import relay

    async def main():
        a, b = Pipe.pair()  # the TLS "wire"
        c, d = Pipe.pair()  # the relay's other side, d is the application
        client = TLSEndpoint(a, client_ctx, server_hostname="gost.run")
        server = TLSEndpoint(b, server_ctx, server_side=True)
        await asyncio.gather(client.handshake(T), server.handshake(T))
        done = asyncio.ensure_future(relay(server, c))
        client.write(b"ping")
        assert await asyncio.wait_for(d.readexactly(4), T) == b"ping"
        client.write_eof()
        assert await asyncio.wait_for(d.read(), T) == b""  # EOF crossed the relay
        d.write(b"pong")  # the other direction still flows
        assert await asyncio.wait_for(client.readexactly(4), T) == b"pong"
        d.write_eof()
        assert await asyncio.wait_for(client.read(), T) == b""
        assert await asyncio.wait_for(done, T) is None  # both directions ended cleanly

    run(main)
