"""GOST's UDP-TUN: datagrams as frames on a byte stream (x/internal/util/socks udpTunConn).

Each datagram is ``len(2) frag(1) atyp addr port payload`` (see
``proto.socks5.parse_udp_tun_frame``), the same both ways: a client names the
target, a server names the source. One class serves both ends: the socks5
connector (client of a chain's socks5 node) and the socks5 handler answering
GOST's UDP-TUN command (0xF3).

Bad input, as the issue asks: a frame whose payload is longer than
``buffer_size`` is skipped whole (the stream stays framed) with one debug line.
A bad ATYP leaves no way to find the next frame: the stream is closed, which
ends this one association and nothing else.
"""

from __future__ import annotations

import logging

from gostfast.endpoint import Endpoint
from gostfast.proto import socks5 as s5
from gostfast.proto.errors import ProtocolError
from gostfast.udp.packet import WRITE_LIMIT, PacketTunnel


class UdpTunStream(PacketTunnel):
    """Datagrams framed on ``ep`` (already past its SOCKS5 handshake)."""

    def __init__(
        self,
        ep: Endpoint,
        name: str,
        log: logging.Logger,
        buffer_size: int = s5.MAX_UDP_TUN_PAYLOAD,
    ) -> None:
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

    def send(self, host: str, port: int, payload) -> None:
        if self.ep.closed:
            return
        if self.ep.get_write_buffer_size() > WRITE_LIMIT:
            self.drop("to %s:%d: stream send buffer full", host, port)
            return
        try:
            frame = s5.build_udp_tun_frame(host, port, payload)
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
                parsed = s5.parse_udp_tun_frame(buf)
            except ProtocolError as exc:
                self.log.debug("%s: udp-tun: %s; closing the stream", self.name, exc)
                buf.clear()
                self.ep.abort()
                self._finish()
                return
            if parsed is None:
                return
            (header, offset), end = parsed
            if header.rsv > self.buffer_size:
                self.drop("from the stream: %d bytes, longer than the buffer", header.rsv)
            else:
                self.received += 1
                self._deliver(header.host, header.port, bytes(buf[offset:end]))
            del buf[:end]

    def on_eof(self, ep: Endpoint) -> None:
        self._finish()

    def on_close(self, ep: Endpoint, exc: BaseException | None) -> None:
        self._finish()

    def on_write_paused(self, ep: Endpoint) -> None:
        pass  # datagrams past WRITE_LIMIT are dropped in send

    def on_write_resumed(self, ep: Endpoint) -> None:
        pass
