"""The ``http`` handler: GOST's HTTP proxy (x/handler/http), CONNECT and forward.

Per request head read from the client:

* Basic proxy auth when the service has users: a missing or wrong
  ``Proxy-Authorization`` gets Go's ``407 Proxy Authentication Required`` with
  ``Proxy-Authenticate: Basic realm="gost"`` (``authBasicRealm``), plus
  ``Connection: close`` and ``Proxy-Connection: close`` when the client asked for
  ``Proxy-Connection: keep-alive``; then the connection is closed. Every request
  on a kept-alive connection is checked (GOST checks the first one only).
* ``PRI``, or a non-CONNECT request whose target is not an ``http://`` absolute
  URI: ``400 Bad Request`` and close. A head that does not parse gets the same
  400 (GOST closes without an answer there).
* ``X-Gost-Protocol: udp`` (UDP over HTTP): ``403 Forbidden``, GOST's answer while
  its ``udp`` option is off (the option is not supported here).
* CONNECT: a tunnel to the target (handler/_httpconnect.py); a failed dial is
  answered 503.
* Forward proxying (``GET http://host/path``): the request is rewritten and sent
  to the origin through the chain, bodies streamed both ways
  (handler/_httpforward.py); the client connection is kept for further requests
  unless it or the response framing says otherwise.

This module is the request loop: it reads each head, applies the checks above
(common to both kinds of request, so they are made once, here) and hands the
request to one of the two. Every way of ending the client connection is in
handler/_httpreply.py; Go's byte layout of a response, the authority and Basic
credential parsing are sans-IO in proto/http1.py.

Differences from GOST, on purpose: an origin-form request (``GET / HTTP/1.1``
with a Host header) gets 400 instead of being proxied to its Host, because
proxying it loops when the Host is this proxy itself; GOST's TLS-in-CONNECT
sniffing, MITM and UDP are not implemented (setting those options is a
configuration error). ``probeResist``/``knock``: handler/_probe.py.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import NoReturn

from gostfast import registry
from gostfast.components import Handler, HandlerSpec
from gostfast.config.errors import ConfigError
from gostfast.config.options import ComponentOptions, idle_timeout_option, option, unsupported
from gostfast.config.url import join_host_port
from gostfast.endpoint import Endpoint
from gostfast.errors import EndpointClosed
from gostfast.handler import _probe
from gostfast.handler._httpconnect import ConnectTunnels
from gostfast.handler._httpforward import ForwardProxy
from gostfast.handler._httppool import UpstreamPool
from gostfast.handler._httpreply import Close, bad_request, refuse
from gostfast.proto import http1
from gostfast.traffic import Gate

#: GOST's Proxy-Agent when ``proxyAgent`` is unset or empty (x/handler/http)
DEFAULT_PROXY_AGENT = "gost/3.0"


@dataclass(frozen=True)
class HTTPOptions(ComponentOptions):
    """The http handler's metadata (GOST's x/handler/http metadata.go)."""

    # GOST (config/parsing/service): client addresses that skip authentication
    skipauth: str | None = unsupported("skipauth")
    proxy_agent: str = option(DEFAULT_PROXY_AGENT, "http.proxyAgent", "proxyAgent")
    auth_basic_realm: str = option("", "authBasicRealm")
    header: dict[str, str] | None = option(
        None, "http.header", "header", doc="extra response header fields"
    )
    read_timeout: float = option(
        15.0, "readTimeout", doc="upstream response header timeout (0: 15s, negative: none)"
    )
    idle_timeout: float = idle_timeout_option(
        "CONNECT tunnels: end a direction after this long without bytes (0: never)"
    )
    keepalive: bool = option(
        False,
        "http.keepalive",
        "keepalive",
        doc="forward proxying: keep upstream connections for the next request (30 s idle)",
    )
    compression: bool = option(
        False,
        "http.compression",
        "compression",
        doc="forward proxying: ask origins for gzip and hand the body on decompressed",
    )
    probe_resist: str = option(
        "",
        "probeResist",
        "probe_resist",
        doc="a failed log-in gets a decoy: code:N, web:URL, host:HOST:PORT or file:PATH",
    )
    knock: str = option("", "knock", doc="hosts whose requests get the honest 407")
    udp: bool = unsupported("udp", default=False)
    sniffing: bool = unsupported("sniffing", default=False)
    hash: str = unsupported("hash", default="")

    def check(self, where: str) -> None:
        """probeResist must be one of GOST's forms, checked when the config is planned."""
        try:
            _probe.parse(self.probe_resist or "", self.knock or "")
        except ValueError as exc:
            raise ConfigError(f"{where}.probeResist", str(exc)) from None


DEFAULT_REALM = "gost"


def _hostname(req: http1.Request, authority: str) -> str:
    """The request's host as Go's URL.Hostname() gives it: "" for an origin-form target."""
    if req.method != "CONNECT" and not req.target.lower().startswith("http://"):
        return ""
    target = http1.split_authority(authority)
    return target[0] if target else ""


class HTTPHandler(Handler[HTTPOptions]):
    def __init__(self, spec: HandlerSpec[HTTPOptions]) -> None:
        super().__init__(spec)
        opts = spec.options
        self.users = spec.users
        self.proxy_agent = opts.proxy_agent or DEFAULT_PROXY_AGENT  # GOST: empty is the default
        self.realm = opts.auth_basic_realm or DEFAULT_REALM
        self.extra_headers = [
            (http1.canonical_header_key(k), str(v)) for k, v in (opts.header or {}).items()
        ]
        timeout = opts.read_timeout
        #: GOST's probeResist/knock: a decoy instead of 407 (validated in the plan)
        self.probe = _probe.parse(opts.probe_resist or "", opts.knock or "")
        self.tunnels = ConnectTunnels(
            spec,
            self.proxy_agent,
            http1.go_response(503, self._agent_headers()),
            opts.idle_timeout,
        )
        self.forwarder = ForwardProxy(
            spec,
            self.extra_headers,
            15.0 if timeout == 0 else (None if timeout < 0 else timeout),
            # GOST's keepalive: idle upstream connections, shared by the service's clients
            UpstreamPool() if opts.keepalive else None,
            # GOST's compression (Go's Transport with DisableCompression off)
            opts.compression,
        )

    # ------------------------------------------------------------- responses
    def _agent_headers(self) -> list[tuple[str, str]]:
        headers = list(self.extra_headers)
        if not any(k == "Proxy-Agent" for k, _ in headers):
            headers.append(("Proxy-Agent", self.proxy_agent))
        return headers

    def _bad_request(self, ep: Endpoint, why: str) -> NoReturn:
        bad_request(ep, self.spec.log, why, self.extra_headers)

    # ----------------------------------------------------------------- serve
    async def handle(self, ep: Endpoint) -> None:
        # a traffic limiter paces the bodies of forwarded requests here; CONNECT and
        # upgraded tunnels are paced by their relay
        gate = ep.traffic.open(ep, ep.peer_ip) if ep.traffic is not None else None
        try:
            while True:
                req = await self._read_request(ep)
                await self._serve(ep, req, gate)
        except Close:
            return
        finally:
            if gate is not None:
                gate.close()

    async def _read_request(self, ep: Endpoint) -> http1.Request:
        try:
            head = await ep.readuntil(b"\r\n\r\n", http1.MAX_HEAD)
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                self._bad_request(ep, "request head cut short")
            ep.close()
            raise Close from None
        except asyncio.LimitOverrunError:
            self._bad_request(ep, "request head too large")
        except EndpointClosed:
            raise Close from None
        try:
            return http1.parse_request(head)
        except http1.HTTPHeadError as exc:
            self._bad_request(ep, f"malformed request: {exc}")
            raise  # unreachable: _bad_request raises Close

    async def _serve(self, ep: Endpoint, req: http1.Request, gate: Gate | None = None) -> None:
        log = self.spec.log
        if req.method == "CONNECT":
            scheme, authority, origin = "", req.target, ""
            if req.target.startswith("/"):
                authority = req.get("Host") or ""
        else:
            parsed = http1.parse_absolute(req.target)
            scheme, authority, origin = parsed if parsed else ("", "", "")

        if self.users:
            user, password = http1.basic_proxy_auth(req.get("Proxy-Authorization"))
            if not self.users.check(user, password):
                log.info("%s: http: proxy authentication failed (user %r)", ep.peer, user)
                if self.probe is not None and self.probe.applies_to(_hostname(req, authority)):
                    head = http1.build_request(req.method, req.target, req.headers, req.version)
                    await _probe.answer(self.probe, ep, req, head, http1.go_response(503), log)
                    ep.close()
                    raise Close
                headers = [("Proxy-Authenticate", f'Basic realm="{self.realm}"')]
                if (req.get("Proxy-Connection") or "").lower() == "keep-alive":
                    headers += [("Connection", "close"), ("Proxy-Connection", "close")]
                refuse(ep, http1.go_response(407, headers))

        if req.method == "PRI" or (req.method != "CONNECT" and scheme != "http"):
            self._bad_request(ep, f"not a proxy request: {req.method} {req.target[:80]}")

        target = http1.split_authority(authority)
        if target is not None and self.spec.bypass.contains(join_host_port(*target)):
            log.info("%s: http: %s is bypassed (403)", ep.peer, join_host_port(*target))
            refuse(ep, http1.go_response(403, self._agent_headers()))

        if (req.get("X-Gost-Protocol") or "") == "udp":
            log.info("%s: http: UDP relay is not supported", ep.peer)
            refuse(ep, http1.go_response(403, self.extra_headers, content_length=0))

        if req.method == "CONNECT":
            await self.tunnels.open(ep, authority, target)
            raise Close
        if target is None or not target[0]:
            self._bad_request(ep, f"invalid host {authority!r}")
        await self.forwarder.forward(ep, req, authority, target, origin, gate)


registry.handlers.register("http", HTTPHandler, HTTPOptions)
