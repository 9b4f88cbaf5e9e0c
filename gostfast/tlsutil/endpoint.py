"""TLS as an Endpoint layer: over any Endpoint (``TLSEndpoint``) or natively over TCP.

Two ways to run TLS on a connection, chosen by ``wrap_client``/``wrap_server``:

* ``start_tls_tcp`` -- a plain ``TCPEndpoint`` is upgraded in place with
  ``loop.start_tls``: the event loop's own SSL transport (uvloop's is in C)
  carries the bytes and the endpoint object stays the same. The first hop of a
  chain and the listeners use this: it is the fast path.
* ``TLSEndpoint`` -- TLS over ANY Endpoint with ``ssl.MemoryBIO`` and
  ``SSLObject``, for a wss hop that runs inside another tunnel (hop 3 of a
  chain over an smux stream over a websocket over TCP...). It is the inner
  endpoint's sink; ciphertext from the inner goes into the incoming BIO and
  plaintext comes out through ``_feed`` (to our own sink in data mode, to the
  handshake buffer before). Writes are encrypted and written to the inner in
  the same call. Backpressure passes straight through: the inner's
  write-paused state is ours, and pause/resume reading go to the inner.

End-of-stream follows Go's crypto/tls: ``write_eof`` sends close_notify and
nothing else (Go's ``CloseWrite`` does not half-close the connection under
TLS), reading goes on; a peer's close_notify is EOF, and so is a peer that
just closes the connection without one ("ragged EOF", which Go also reports
as EOF at a record boundary). ``close`` sends close_notify then closes the
inner, like Go's ``Close``; ``abort`` sends nothing. Errors after the
handshake are not logged here: they end the endpoint as a close carrying the
exception (``sink.on_close(ep, exc)``).

OpenSSL rule this module is built around: ``SSLObject.unwrap`` (sending
close_notify) fails with APPLICATION_DATA_AFTER_CLOSE_NOTIFY if a complete
application record still sits unread in the incoming BIO, so every arrival is
decrypted at once, and close_notify is sent only once the BIO holds no whole
record (deferred to the end of the read loop when asked for from inside it).
"""

from __future__ import annotations

import asyncio
import ssl

from gostfast.endpoint import Endpoint, LayeredEndpoint, TCPEndpoint
from gostfast.errors import HandshakeError

__all__ = [
    "TLSEndpoint",
    "start_tls_tcp",
    "wrap_client",
    "wrap_server",
    "describe_ssl_error",
    "describe_start_tls_failure",
]

#: plaintext asked of SSLObject.read per call (a TLS record carries at most 16 KiB)
READ_SIZE = 65536

_NEW, _HANDSHAKING, _OPEN, _DEAD = range(4)


def describe_ssl_error(exc: BaseException) -> str:
    """A short, operator-readable reason for a TLS failure."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLEOFError):
        return "connection closed by the peer during the TLS handshake"
    if isinstance(exc, ssl.SSLError):
        reason = (exc.reason or "").upper()
        text = reason.replace("_", " ").lower() if reason else str(exc)
        if reason in (
            "WRONG_VERSION_NUMBER",
            "PACKET_LENGTH_TOO_LONG",
            "RECORD_LAYER_FAILURE",
            "HTTP_REQUEST",
            "UNKNOWN_PROTOCOL",
        ):
            text += " (the peer does not speak TLS here?)"
        elif reason.startswith(("SSLV3_ALERT_", "TLSV1_ALERT_", "TLSV13_ALERT_")):
            text = "the peer refused: " + reason.split("ALERT_", 1)[1].replace("_", " ").lower()
        return text
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timed out"
    return str(exc) or type(exc).__name__


class TLSEndpoint(LayeredEndpoint):
    """TLS client or server over an inner Endpoint (see the module docstring).

    Create it, then ``await handshake(timeout)``; after that it is an ordinary
    Endpoint in handshake mode (read coroutines) until someone attaches a sink.
    """

    def __init__(
        self,
        inner: Endpoint,
        ctx: ssl.SSLContext,
        *,
        server_side: bool = False,
        server_hostname: str | None = None,
    ) -> None:
        super().__init__(inner, attach=False)  # attached when the handshake starts
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._sslobj = ctx.wrap_bio(
            self._incoming,
            self._outgoing,
            server_side=server_side,
            server_hostname=None if server_side else server_hostname,
        )
        self._state = _NEW
        self._handshake_waiter: asyncio.Future | None = None
        self._pending: list[bytes] = []  # written before the handshake finished
        self._eof_wanted = False  # write_eof before the handshake finished / inside the read loop
        self._shut = False  # close_notify sent: no more writes
        self._tls_eof = False  # the peer's stream has ended
        self._closing = False  # close()/abort() called
        self._reading = False  # inside _read_records
        self._close_deferred = False  # close() called from inside _read_records

    # ------------------------------------------------------------- info
    @property
    def ssl_object(self) -> ssl.SSLObject:
        """The SSLObject: ``version()``, ``cipher()``, ``getpeercert()``..."""
        return self._sslobj

    # ------------------------------------------------------------ handshake
    async def handshake(self, timeout: float | None = None) -> None:
        """Run the TLS handshake; HandshakeError (connection closed) on failure or timeout."""
        if self._state != _NEW:
            raise RuntimeError("TLSEndpoint.handshake() called twice")
        loop = asyncio.get_running_loop()
        waiter = self._handshake_waiter = loop.create_future()
        self._state = _HANDSHAKING
        timer = (
            loop.call_later(timeout, self._on_timeout, timeout) if timeout and timeout > 0 else None
        )
        try:
            # replays bytes, EOF and close the inner already has into on_data/on_eof/on_close
            self.inner.attach(self)
            if self._state == _HANDSHAKING:
                self._advance_handshake()
            await waiter
        except asyncio.CancelledError:
            if self._state == _HANDSHAKING:
                self._fail_handshake("cancelled", abort=True)
            raise
        finally:
            if timer is not None:
                timer.cancel()
            self._handshake_waiter = None

    def _advance_handshake(self) -> None:
        try:
            self._sslobj.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return
        except ssl.SSLError as exc:
            self._flush()  # the alert telling the peer why
            self._fail_handshake(describe_ssl_error(exc), cause=exc)
            return
        self._flush()
        self._state = _OPEN
        w = self._handshake_waiter
        if w is not None and not w.done():
            w.set_result(None)
        pending, self._pending = self._pending, []
        if pending:
            self.writelines(pending)
        # bytes that came with the last handshake flight (or a close_notify, or EOF)
        self._read_records()
        if self._eof_wanted and self._state == _OPEN:
            self.write_eof()

    def _on_timeout(self, timeout: float) -> None:
        if self._state == _HANDSHAKING:
            self._fail_handshake(f"timed out after {timeout:g} s", abort=True)

    def _fail_handshake(
        self, reason: str, cause: BaseException | None = None, abort: bool = False
    ) -> None:
        if self._state == _DEAD:
            return
        self._state = _DEAD
        err = HandshakeError(f"TLS handshake with {self.peer} failed: {reason}")
        err.__cause__ = cause
        w = self._handshake_waiter
        if w is not None and not w.done():
            w.set_exception(err)
        if abort:
            self.inner.abort()
        else:
            self.inner.close()
        self._closed_by_peer(err)

    # ------------------------------------------------- Sink (of the inner endpoint)
    def on_data(self, ep: Endpoint, data: bytes | bytearray | memoryview) -> None:
        if self._state == _DEAD:
            return
        self._incoming.write(data)
        if self._state == _OPEN:
            if not self._reading:  # else the running loop picks the bytes up
                self._read_records()
        elif self._state == _HANDSHAKING:
            self._advance_handshake()
        # _NEW: kept in the BIO until handshake() starts

    def on_eof(self, ep: Endpoint) -> None:
        if self._state == _DEAD:
            return
        self._incoming.write_eof()
        if self._state == _OPEN:
            if not self._reading:
                self._read_records()
        elif self._state == _HANDSHAKING:
            self._advance_handshake()  # fails: "closed by the peer during the handshake"

    def on_close(self, ep: Endpoint, exc: BaseException | None) -> None:
        if self._state == _HANDSHAKING:
            detail = f": {exc}" if exc else ""
            self._fail_handshake(f"connection closed during the handshake{detail}", cause=exc)
            return
        self._state = _DEAD
        self._closed_by_peer(exc)

    # ---------------------------------------------------------- reading
    def _read_records(self) -> None:
        """Decrypt everything the incoming BIO holds and feed it on."""
        self._reading = True
        read = self._sslobj.read
        try:
            while self._state == _OPEN and not self._tls_eof and not self._closing:
                try:
                    data = read(READ_SIZE)
                except ssl.SSLWantReadError:
                    break
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    data = b""  # close_notify after our own, or a ragged EOF
                except ssl.SSLError as exc:
                    self._fatal(exc)
                    return
                if not data:
                    self._tls_eof = True
                    self._feed_eof()
                    break
                self._feed(data)
        finally:
            self._reading = False
        if self._close_deferred:
            self._close_deferred = False
            self._finish_close()
            return
        if self._state != _OPEN:
            return
        if self._eof_wanted and not self._shut:
            self._send_close_notify()
        else:
            self._flush()  # TLS 1.3 post-handshake replies (KeyUpdate)

    def _fatal(self, exc: BaseException) -> None:
        """A TLS error after the handshake: alert the peer, close, report the error."""
        self._state = _DEAD
        self._flush()
        self.inner.close()
        self._closed_by_peer(exc)

    # ---------------------------------------------------------- writing
    def _flush(self) -> None:
        if self._outgoing.pending:
            self.inner.write(self._outgoing.read())

    def write(self, data: bytes | bytearray | memoryview) -> None:
        state = self._state
        if state == _OPEN:
            if self._shut or self._closing or not data:
                return
            try:
                self._sslobj.write(data)
            except ssl.SSLError as exc:
                self._fatal(exc)
                return
            self._flush()
        elif state != _DEAD and not self._closing:
            self._pending.append(bytes(data))

    def writelines(self, chunks: list) -> None:
        """Several writes, one write to the inner endpoint."""
        if self._state != _OPEN:
            for c in chunks:
                self.write(c)
            return
        if self._shut or self._closing:
            return
        try:
            for c in chunks:
                if c:
                    self._sslobj.write(c)
        except ssl.SSLError as exc:
            self._fatal(exc)
            return
        self._flush()

    def write_eof(self) -> None:
        """Send close_notify (Go's CloseWrite); reading continues until the peer's EOF."""
        if self._state in (_NEW, _HANDSHAKING):
            self._eof_wanted = True
            return
        if self._state != _OPEN or self._shut or self._closing:
            return
        if self._reading:  # unwrap now would trip over the records still in the BIO
            self._eof_wanted = True
            return
        self._send_close_notify()

    def _send_close_notify(self) -> None:
        self._shut = True
        try:
            self._sslobj.unwrap()
        except ssl.SSLWantReadError:
            pass  # sent; the peer's close_notify comes through _read_records
        except ssl.SSLError:
            pass  # the session is already broken: nothing useful to say
        self._flush()

    def close(self) -> None:
        """close_notify (if the session is up), then close the inner endpoint after its flush."""
        if self._closing:
            return
        self._closing = True
        if self._state in (_NEW, _HANDSHAKING):
            self._fail_handshake("closed locally")
            return
        if self._reading:  # called by our sink while records are being fed: finish after
            self._close_deferred = True
            return
        self._finish_close()

    def _finish_close(self) -> None:
        if self._state == _OPEN and not self._shut:
            self._discard_incoming()
            self._send_close_notify()
        self.inner.close()

    def _discard_incoming(self) -> None:
        """Drop unread plaintext so unwrap() finds no whole record in the BIO."""
        try:
            while self._sslobj.read(READ_SIZE):
                pass
        except ssl.SSLError:
            pass

    def abort(self) -> None:
        self._closing = True
        if self._state in (_NEW, _HANDSHAKING):
            self._fail_handshake("aborted locally", abort=True)
            return
        self.inner.abort()

    def get_write_buffer_size(self) -> int:
        return self.inner.get_write_buffer_size() + self._outgoing.pending


# ------------------------------------------------------------------ native TCP path
async def start_tls_tcp(
    ep: TCPEndpoint,
    ctx: ssl.SSLContext,
    server_hostname: str | None,
    timeout: float | None,
    *,
    server_side: bool = False,
) -> TCPEndpoint:
    """Upgrade a plain TCP endpoint to TLS in place with ``loop.start_tls``; returns ``ep``.

    The endpoint must be in handshake mode with nothing buffered (the loop's
    SSL protocol takes the transport over; bytes already read would be lost).
    ``timeout`` None or <= 0 means the loop's default (60 s). On failure the
    connection is closed and HandshakeError is raised. Note that an SSL
    transport cannot half-close: ``ep.write_eof()`` then closes the connection.
    """
    transport = ep.transport
    if transport is None or transport.is_closing():
        raise HandshakeError(f"TLS handshake with {ep.peer} failed: connection closed")
    loop = asyncio.get_running_loop()
    try:
        new = await loop.start_tls(
            transport,
            ep,
            ctx,
            server_side=server_side,
            server_hostname=None if server_side else server_hostname,
            ssl_handshake_timeout=timeout if timeout and timeout > 0 else None,
        )
    except asyncio.CancelledError:
        transport.abort()
        raise
    except (ssl.SSLError, OSError, asyncio.TimeoutError, EOFError) as exc:
        transport.abort()
        reason = describe_start_tls_failure(exc)
        if reason == "timed out" and timeout and timeout > 0:
            reason = f"timed out after {timeout:g} s"
        err = HandshakeError(f"TLS handshake with {ep.peer} failed: {reason}")
        ep._closed_by_peer(err)  # the SSL protocol owned the transport: tell the endpoint here
        raise err from exc
    if new is None:  # the connection went away during the handshake
        err = HandshakeError(f"TLS handshake with {ep.peer} failed: connection closed")
        ep._closed_by_peer(err)
        raise err
    new.set_write_buffer_limits(high=ep.WRITE_HIGH_WATER)
    ep.transport = new
    return ep


def describe_start_tls_failure(exc: BaseException) -> str:
    """Why ``loop.start_tls`` / ``connect_accepted_socket(ssl=)`` failed, for a log line."""
    if isinstance(exc, ConnectionAbortedError) and "taking longer" in str(exc):
        return "timed out"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError)) or (
        isinstance(exc, ConnectionError) and not isinstance(exc, ssl.SSLError) and not str(exc)
    ):
        return "connection closed by the peer during the TLS handshake"
    return describe_ssl_error(exc)


def _native_ok(ep: Endpoint) -> bool:
    """True when ``ep`` can take the ``loop.start_tls`` path (plain TCP, nothing read yet)."""
    if not isinstance(ep, TCPEndpoint):
        return False
    t = ep.transport
    return (
        t is not None
        and not t.is_closing()
        and t.get_extra_info("ssl_object") is None  # TLS in TLS goes through TLSEndpoint
        and ep._sink is None  # handshake mode
        and not ep._buf  # nothing buffered that the SSL protocol would never see
        and not ep._eof
        and not ep.closed
    )


async def wrap_client(
    ep: Endpoint, ctx: ssl.SSLContext, server_hostname: str | None, timeout: float | None
) -> Endpoint:
    """TLS client over ``ep``: native ``start_tls`` for plain TCP, else a TLSEndpoint."""
    if _native_ok(ep):
        return await start_tls_tcp(ep, ctx, server_hostname, timeout)  # type: ignore[arg-type]
    tls = TLSEndpoint(ep, ctx, server_side=False, server_hostname=server_hostname)
    await tls.handshake(timeout)
    return tls


async def wrap_server(ep: Endpoint, ctx: ssl.SSLContext, timeout: float | None) -> Endpoint:
    """TLS server over ``ep`` (same choice as ``wrap_client``)."""
    if _native_ok(ep):
        return await start_tls_tcp(ep, ctx, None, timeout, server_side=True)  # type: ignore[arg-type]
    tls = TLSEndpoint(ep, ctx, server_side=True)
    await tls.handshake(timeout)
    return tls
