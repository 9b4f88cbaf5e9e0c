"""Datagrams as frames on a byte stream: GOST's UDP-TUN and the relay protocol's UDP.

* UDP-TUN (x/internal/util/socks and util/relay udpTunConn): each datagram is
  ``len(2) frag(1) atyp addr port payload`` (``proto.socks5.parse_udp_tun_frame``),
  the same both ways: a client names the target, a server names the source. The
  socks5 connector and handler (command 0xF3) and the relay protocol's UDP
  association (BIND with FLAG_UDP) carry it.
* Relay UDP (x/connector/relay and handler/relay udpConn, CONNECT with FLAG_UDP):
  ``len(2) payload``, one fixed target per stream; replies are given that
  target as their source.

One class per framing over a shared reader. Bad input, as issue 13 asks: a
frame whose payload is longer than ``buffer_size`` is skipped whole (the stream
stays framed) with one debug line. A bad ATYP leaves no way to find the next
frame: the stream is closed, which ends this one association and nothing else.
"""

from __future__ import annotations

import logging

from gostfast.endpoint import Endpoint
from gostfast.proto import relay as rp
from gostfast.proto import socks5 as s5
from gostfast.proto.errors import ProtocolError
from gostfast.udp.packet import WRITE_LIMIT, PacketTunnel


class _FramedStream(PacketTunnel):
    """Reads frames from ``ep`` (attached when someone listens) and writes them to it."""

    def __init__(self, ep: Endpoint, name: str, log: logging.Logger, buffer_size: int) -> None:
        super().__init__(name, log)
        self.ep = ep
        self.buffer_size = buffer_size if buffer_size > 0 else s5.MAX_UDP_TUN_PAYLOAD
        self.sent = 0
        self.received = 0
        self._buf = bytearray()

    def _start(self) -> None:
        self.ep.attach(self)

    def local_address(self) -> tuple[str, int]:
        local = getattr(self.ep, "local_address", None)
        sockname = local() if local is not None else None
        if sockname and isinstance(sockname, tuple) and len(sockname) >= 2:
            return str(sockname[0]), int(sockname[1])
        return super().local_address()

    def _frame(self, host: str, port: int, payload) -> bytes:
        raise NotImplementedError

    def _parse(self, buf: bytearray) -> tuple[str, int, int, int] | None:
        """-> (host, port, payload start, frame end) or None; ProtocolError if unframeable."""
        raise NotImplementedError

    def send(self, host: str, port: int, payload) -> None:
        if self.ep.closed:
            return
        if self.ep.get_write_buffer_size() > WRITE_LIMIT:
            self.drop("to %s:%d: stream send buffer full", host, port)
            return
        try:
            frame = self._frame(host, port, payload)
        except ValueError as exc:
            self.drop("to %s:%d: %s", host, port, exc)
            return
        self.ep.write(frame)
        self.sent += 1

    def close(self) -> None:
        self.ep.close()
        self._finish()

    # Sink of the stream
    def on_data(self, ep: Endpoint, data) -> None:
        buf = self._buf
        buf += data
        while buf:
            try:
                parsed = self._parse(buf)
            except ProtocolError as exc:
                self.log.debug("%s: udp stream: %s; closing it", self.name, exc)
                buf.clear()
                self.ep.abort()
                self._finish()
                return
            if parsed is None:
                return
            host, port, start, end = parsed
            if end - start > self.buffer_size:
                self.drop("from the stream: %d bytes, longer than the buffer", end - start)
            else:
                self.received += 1
                self._deliver(host, port, bytes(buf[start:end]))
            del buf[:end]

    def on_eof(self, ep: Endpoint) -> None:
        self._finish()

    def on_close(self, ep: Endpoint, exc: BaseException | None) -> None:
        self._finish()

    def on_write_paused(self, ep: Endpoint) -> None:
        pass  # datagrams past WRITE_LIMIT are dropped in send

    def on_write_resumed(self, ep: Endpoint) -> None:
        pass


class UdpTunStream(_FramedStream):
    """GOST's UDP-TUN on ``ep`` (already past its SOCKS5 or relay handshake)."""

    def __init__(self, ep: Endpoint, name: str, log: logging.Logger, buffer_size: int = 0) -> None:
        super().__init__(ep, name, log, buffer_size)

    def _frame(self, host: str, port: int, payload) -> bytes:
        return s5.build_udp_tun_frame(host, port, payload)

    def _parse(self, buf: bytearray) -> tuple[str, int, int, int] | None:
        parsed = s5.parse_udp_tun_frame(buf)
        if parsed is None:
            return None
        (header, start), end = parsed
        return header.host, header.port, start, end


class RelayUdpStream(_FramedStream):
    """The relay protocol's UDP on ``ep``: every datagram to and from ``target``."""

    def __init__(
        self,
        ep: Endpoint,
        target: tuple[str, int],
        name: str,
        log: logging.Logger,
        buffer_size: int = 0,
    ) -> None:
        super().__init__(ep, name, log, buffer_size)
        self.target = target

    def _frame(self, host: str, port: int, payload) -> bytes:
        return rp.build_udp_frame(payload)

    def _parse(self, buf: bytearray) -> tuple[str, int, int, int] | None:
        parsed = rp.parse_udp_frame(buf)
        if parsed is None:
            return None
        return self.target[0], self.target[1], parsed[0], parsed[1]
