"""The ``socks5``/``socks`` and ``socks4``/``socks4a`` connectors (x/connector/socks).

SOCKS5: the greeting offers 0x00, plus 0x02 when the node has auth; GOST's
private TLS methods 0x80/0x82 are never offered (GOST's ``notls=true``
behaviour, and an explicit ``notls=false`` is refused by name: gostfast does
not run TLS inside SOCKS, put the hop on a TLS or wss transport instead). RFC 1929 auth when the server picks 0x02. The CONNECT
request carries a domain unresolved (ATYP 3), an IP literal as ATYP 1/4, and an
empty host as 127.0.0.1 (as GOST). A reply other than 0 is a DialError naming
the code.

A target the protocol cannot carry (a domain over 255 bytes, a NUL in a SOCKS4a
domain) came from the peer that asked for it: it is refused as an AddressError
(the peer-fault family, errors.PEER_FAULTS), so the asking handler answers its
client as for any failed connect and logs one line; credentials the protocol
cannot carry (over 255 bytes) are the node's configuration, a DialError naming
them.

UDP (the last hop of a UDP route, ``connect_udp``): GOST's UDP-TUN, command
0xF3 with DST 0.0.0.0:0 and datagrams framed on the stream (``udp.stream``).

SOCKS4/4a: SOCKS4a (the domain sent unresolved, even for an IP literal, as
GOST's default) unless ``disable4a`` (then the host is resolved here, IPv4
only); the USERID is the node's user name. A reply other than 90 is a DialError.

``timeout`` bounds the whole exchange (0: no limit, as GOST).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from dataclasses import dataclass
from typing import TypeVar

from gostfast import registry
from gostfast._handshake import read_message
from gostfast.components import Connector
from gostfast.config.options import ComponentOptions, notls_option, option, unsupported
from gostfast.config.url import join_host_port
from gostfast.endpoint import Endpoint
from gostfast.errors import DialError
from gostfast.proto import socks4 as s4
from gostfast.proto import socks5 as s5
from gostfast.proto.addr import encode_text
from gostfast.proto.errors import AddressError, ProtocolError
from gostfast.timeouts import within
from gostfast.udp.packet import PacketTunnel
from gostfast.udp.stream import UdpTunStream


@dataclass(frozen=True)
class SocksConnectorOptions(ComponentOptions):
    """What the socks4 and socks5 connectors both read (GOST's x/connector/socks)."""

    timeout: float = option(0.0, "timeout", doc="SOCKS handshake deadline")


@dataclass(frozen=True)
class Socks5ConnectorOptions(SocksConnectorOptions):
    notls: bool = notls_option("true is what gostfast does: TLS methods are never offered")
    # GOST's relay=udp: UDP by a standard UDP ASSOCIATE to the node; gostfast uses UDP-TUN
    relay: str = unsupported("relay", default="")


@dataclass(frozen=True)
class Socks4ConnectorOptions(SocksConnectorOptions):
    disable4a: bool = option(False, "disable4a", doc="resolve here and send SOCKS4")


_S = TypeVar("_S", bound=SocksConnectorOptions)

_REPLY_TEXT = {
    s5.REP_GENERAL_FAILURE: "general failure",
    s5.REP_NOT_ALLOWED: "not allowed",
    s5.REP_NETWORK_UNREACHABLE: "network unreachable",
    s5.REP_HOST_UNREACHABLE: "host unreachable",
    s5.REP_CONNECTION_REFUSED: "connection refused",
    s5.REP_TTL_EXPIRED: "TTL expired",
    s5.REP_COMMAND_NOT_SUPPORTED: "command not supported",
    s5.REP_ADDR_NOT_SUPPORTED: "address type not supported",
}


class _SocksConnector(Connector[_S]):
    what = "socks"

    async def connect(self, ep: Endpoint, host: str, port: int) -> Endpoint:
        where = f"{self.spec.node}: {self.what} CONNECT {join_host_port(host, port)}"
        await self._guard(self._exchange(ep, host, port, where), where)
        return ep

    async def _guard(self, exchange, where: str) -> None:
        """Run a handshake within ``timeout``; what goes wrong becomes a DialError."""
        timeout = self.spec.options.timeout
        try:
            await within(timeout, exchange)
        except (asyncio.TimeoutError, TimeoutError):
            raise DialError(f"{where}: no answer within {timeout:g}s") from None
        except asyncio.IncompleteReadError:
            raise DialError(f"{where}: connection closed during the handshake") from None
        except ProtocolError as exc:
            raise DialError(f"{where}: {exc}") from None

    async def _exchange(self, ep: Endpoint, host: str, port: int, where: str) -> None:
        raise NotImplementedError


class Socks5Connector(_SocksConnector[Socks5ConnectorOptions]):
    what = "socks5"

    async def connect_udp(
        self,
        ep: Endpoint,
        name: str,
        log: logging.Logger,
        target: tuple[str, int] | None = None,
    ) -> PacketTunnel:
        """GOST's UDP-TUN (x/connector/socks/v5 connectUDP): command 0xF3 with
        DST 0.0.0.0:0, then datagrams framed on the stream, each naming its target
        (so one ``target`` or many is the same request)."""
        where = f"{self.spec.node}: socks5 UDP-TUN"
        await self._guard(self._request(ep, s5.CMD_UDP_TUN, "0.0.0.0", 0, where), where)
        return UdpTunStream(ep, name, log)

    async def _exchange(self, ep: Endpoint, host: str, port: int, where: str) -> None:
        await self._request(ep, s5.CMD_CONNECT, host or "127.0.0.1", port, where)

    async def _request(self, ep: Endpoint, cmd: int, host: str, port: int, where: str) -> None:
        auth = self.spec.auth
        methods = [s5.METHOD_NOAUTH]
        if auth is not None:
            methods.append(s5.METHOD_USERPASS)
        ep.write(s5.build_greeting(methods))
        method = await read_message(ep, s5.parse_method_reply)
        if method == s5.METHOD_USERPASS:
            user, password = (auth.username, auth.password) if auth else ("", "")
            try:
                ep.write(s5.build_userpass(user, password))
            except ValueError as exc:
                raise DialError(f"{where}: the node's credentials: {exc}") from None
            if not await read_message(ep, s5.parse_userpass_reply):
                raise DialError(f"{where}: authentication failed")
        elif method == s5.METHOD_NONE_ACCEPTABLE:
            raise DialError(f"{where}: no acceptable authentication method")
        elif method != s5.METHOD_NOAUTH:
            raise DialError(f"{where}: server chose method 0x{method:02x}, which was not offered")
        try:
            request = s5.build_request(cmd, host, port)
        except ValueError as exc:
            raise AddressError(f"cannot be sent over socks5: {exc}") from None
        ep.write(request)
        rep, _, _ = await read_message(ep, s5.parse_reply)
        if rep != s5.REP_SUCCEEDED:
            text = _REPLY_TEXT.get(rep, "unknown reply")
            raise DialError(f"{where}: reply 0x{rep:02x} ({text})")


def _socks4a_request(host: str, port: int, userid: str) -> bytes:
    """SOCKS4a CONNECT with the host as a domain, whatever it looks like (as gosocks4)."""
    name = encode_text(host)
    user = encode_text(userid)
    if b"\x00" in name or len(name) > s4.MAX_DOMAIN_LEN:
        raise AddressError("cannot be sent over socks4a: a NUL in it or longer than 255 bytes")
    if b"\x00" in user or len(user) > s4.MAX_USERID_LEN:
        raise ValueError("SOCKS4a userid with a NUL or longer than 255 bytes")
    head = bytes((s4.VERSION, s4.CMD_CONNECT)) + port.to_bytes(2, "big")
    return head + b"\x00\x00\x00\x01" + user + b"\x00" + name + b"\x00"


class Socks4Connector(_SocksConnector[Socks4ConnectorOptions]):
    what = "socks4"

    async def _exchange(self, ep: Endpoint, host: str, port: int, where: str) -> None:
        userid = self.spec.auth.username if self.spec.auth is not None else ""
        disable4a = self.spec.options.disable4a
        ip = await self._resolve4(host, where) if disable4a else ""
        try:
            if disable4a:
                request = s4.build_request(s4.CMD_CONNECT, ip, port, userid)
            else:
                request = _socks4a_request(host, port, userid)
        except ProtocolError:
            raise
        except ValueError as exc:  # the target was checked: what is left is the userid
            raise DialError(f"{where}: the node's user name: {exc}") from None
        ep.write(request)
        code, _, _ = await read_message(ep, s4.parse_reply)
        if code != s4.REP_GRANTED:
            raise DialError(f"{where}: reply {code} (request rejected or failed)")

    @staticmethod
    async def _resolve4(host: str, where: str) -> str:
        if not host:
            return "0.0.0.0"
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            pass
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, None, family=socket.AF_INET)
        except OSError as exc:
            raise DialError(f"{where}: cannot resolve {host}: {exc}") from None
        return str(infos[0][4][0])


registry.connectors.register("socks5", Socks5Connector, Socks5ConnectorOptions)
registry.connectors.register("socks", Socks5Connector, Socks5ConnectorOptions)
registry.connectors.register("socks4", Socks4Connector, Socks4ConnectorOptions)
registry.connectors.register("socks4a", Socks4Connector, Socks4ConnectorOptions)
