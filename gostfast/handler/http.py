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
* CONNECT: the target is dialed through the router; failure -> Go's
  ``503 Service Unavailable`` with ``Proxy-Agent`` (and the ``header`` option's
  fields); success -> exactly ``HTTP/1.1 200 Connection established\\r\\n
  Proxy-Agent: gost/3.0\\r\\n\\r\\n`` and the relay (with ``idleTimeout``, each
  direction ends after that long without bytes, as GOST's pipe). Bytes the
  client pipelined behind the CONNECT head are still in the endpoint's
  buffer; the relay hands them on.
* Forward proxying (``GET http://host/path``): Proxy-Authorization,
  Proxy-Connection, GOST's Gost-Target/X-Gost-Target/Gost-Record and every
  hop-by-hop header are removed, the target is rewritten to origin-form and the
  request goes to the origin through the chain on a connection of its own
  (GOST's default), or with ``keepalive`` on a kept one (handler/_httppool.py).
  With ``compression``, a request that names no encoding and no range asks
  the origin for gzip, and a gzip answer reaches the client decompressed
  (chunked; to HTTP/1.0 clients ended by close), as Go's Transport does.
  Bodies (Content-Length or chunked) stream both ways without being
  collected; 1xx answers are passed on; the response head must arrive within ``readTimeout`` (15 s) after the request
  was sent, else ``503`` (GOST's answer to any upstream failure). A ``101``
  response is passed on and the two connections are joined by the relay. The
  client connection is kept alive for further requests unless it or the
  response framing says otherwise.

Differences from GOST, on purpose: an origin-form request (``GET / HTTP/1.1``
with a Host header) gets 400 instead of being proxied to its Host, because
proxying it loops when the Host is this proxy itself; GOST's TLS-in-CONNECT
sniffing, MITM and UDP are not implemented (setting those options is a
configuration error). ``probeResist``/``knock``: handler/_probe.py.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass

from gostfast import registry
from gostfast.components import Handler, HandlerSpec
from gostfast.config.errors import ConfigError
from gostfast.config.options import ComponentOptions, idle_timeout_option, option, unsupported
from gostfast.config.url import join_host_port
from gostfast.endpoint import Endpoint
from gostfast.errors import DialError, EndpointClosed
from gostfast.handler import _httpbody as body
from gostfast.handler import _probe
from gostfast.handler._httppool import UpstreamPool
from gostfast.proto import http1
from gostfast.proto.addr import split_host_port
from gostfast.proto.errors import AddressError
from gostfast.relay import relay
from gostfast.traffic import Gate, pacer
from gostfast.tunnel import counting

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
    udp: bool = unsupported("udp", default=False, kind="str")
    sniffing: bool = unsupported("sniffing", default=False, kind="str")
    hash: str = unsupported("hash", default="")

    def check(self, where: str) -> None:
        """probeResist must be one of GOST's forms, checked when the config is planned."""
        try:
            _probe.parse(self.probe_resist or "", self.knock or "")
        except ValueError as exc:
            raise ConfigError(f"{where}.probeResist", str(exc)) from None


DEFAULT_REALM = "gost"

#: removed from forwarded requests and responses (RFC 9110 7.6.1, plus GOST's own)
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "upgrade",
        "gost-target",
        "x-gost-target",
        "gost-record",
    }
)

_READ_ERRORS = (asyncio.IncompleteReadError, asyncio.LimitOverrunError, EndpointClosed, OSError)


def _clean(value: str) -> str:
    """Go writes header values with CR/LF turned into spaces and trimmed."""
    return value.replace("\r", " ").replace("\n", " ").strip(" \t")


def go_response(
    status: int,
    headers: Iterable[tuple[str, str]] = (),
    *,
    content_length: int | None = None,
    version: str = "HTTP/1.1",
) -> bytes:
    """A body-less response as Go's ``http.Response.Write`` puts it on the wire.

    ``content_length=None`` is Go's ContentLength -1: ``Connection: close`` comes
    first (unless a Connection header already says close). ``0`` adds
    ``Content-Length: 0`` after the fields. Fields are sorted by name, as Go's
    Header.Write does.
    """
    headers = list(headers)
    lines = [f"{version} {status:03d} {http1.status_text(status)}\r\n"]
    if content_length is None:
        says_close = any(
            k.lower() == "connection" and "close" in v.lower().replace(" ", "").split(",")
            for k, v in headers
        )
        if not says_close:
            lines.append("Connection: close\r\n")
    for name, value in sorted(headers, key=lambda kv: kv[0]):
        lines.append(f"{name}: {_clean(value)}\r\n")
    if content_length == 0:
        lines.append("Content-Length: 0\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1", "replace")


def basic_proxy_auth(value: str | None) -> tuple[str, str]:
    """(user, password) from ``Basic b64(user:pass)``; ("", "") when absent or broken."""
    if not value or not value.startswith("Basic "):
        return "", ""
    try:
        decoded = base64.b64decode(value[6:], validate=True).decode("utf-8", "surrogateescape")
    except (binascii.Error, ValueError):
        return "", ""
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else ("", "")


def split_authority(authority: str) -> tuple[str, int] | None:
    """``host[:port]`` -> (host, port) with port 80 by default; None if it is not valid."""
    if "@" in authority:
        authority = authority.rsplit("@", 1)[1]
    if authority.startswith("[") and authority.endswith("]"):
        host, port_text = authority[1:-1], ""  # [v6] without a port
    elif ":" not in authority:
        host, port_text = authority, ""
    else:
        try:
            host, port_text = split_host_port(authority)
        except AddressError:
            return None
    if not port_text:
        return host, 80
    if not port_text.isdigit() or not port_text.isascii() or int(port_text) > 65535:
        return None
    return host, int(port_text)


def parse_absolute(target: str) -> tuple[str, str, str] | None:
    """``scheme://authority/path?q`` -> (scheme, authority, origin-form target)."""
    scheme, sep, rest = target.partition("://")
    if not sep or not scheme or not http1.is_token(scheme):
        return None
    cut = len(rest)
    for ch in "/?#":
        i = rest.find(ch)
        if 0 <= i < cut:
            cut = i
    authority, path = rest[:cut], rest[cut:]
    path = path.split("#", 1)[0]
    if not path.startswith("/"):
        path = "/" + path
    return scheme.lower(), authority, path


def _connection_tokens(msg: http1.Request | http1.Response) -> set[str]:
    return {
        t.strip(" \t").lower() for v in msg.get_all("Connection") for t in v.split(",") if t.strip()
    }


def _forwardable(headers: list[tuple[str, str]], tokens: set[str]) -> list[tuple[str, str]]:
    drop = _HOP_BY_HOP | tokens
    return [(k, v) for k, v in headers if k.lower() not in drop]


def _reusable(
    req: http1.Request, resp: http1.Response, upstream: Endpoint, upload: asyncio.Future
) -> bool:
    """Whether the origin connection can carry another request (HTTP/1.1 keep-alive rules):
    both bodies went through to their framed end and nobody said close."""
    if resp.version != "HTTP/1.1" or "close" in _connection_tokens(resp):
        return False
    if not upload.done() or upload.cancelled() or upload.exception() is not None:
        return False
    try:
        length = body.response_length(resp, req.method)
    except body.BodyError:
        return False
    return length != body.UNTIL_CLOSE and not upstream.closed and not upstream.at_eof


def _hostname(req: http1.Request, authority: str) -> str:
    """The request's host as Go's URL.Hostname() gives it: "" for an origin-form target."""
    if req.method != "CONNECT" and not req.target.lower().startswith("http://"):
        return ""
    target = split_authority(authority)
    return target[0] if target else ""


def _retrieve(task: asyncio.Future) -> None:
    """Mark a background copy's failure as seen (it is acted on where it matters)."""
    if not task.cancelled():
        task.exception()


class _Close(Exception):
    """Internal: the client connection is finished (answered, or gone)."""


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
        self.read_timeout = 15.0 if timeout == 0 else (None if timeout < 0 else timeout)
        self.idle_timeout = opts.idle_timeout
        #: GOST's keepalive: idle upstream connections, shared by the service's clients
        self.pool = UpstreamPool() if opts.keepalive else None
        #: GOST's compression (Go's Transport with DisableCompression off)
        self.compression = opts.compression
        #: GOST's probeResist/knock: a decoy instead of 407 (validated in the plan)
        self.probe = _probe.parse(opts.probe_resist or "", opts.knock or "")
        agent_line = f"Proxy-Agent: {_clean(self.proxy_agent)}\r\n"
        self.connect_ok = f"HTTP/1.1 200 Connection established\r\n{agent_line}\r\n".encode(
            "latin-1", "replace"
        )

    # ------------------------------------------------------------- responses
    def _agent_headers(self) -> list[tuple[str, str]]:
        headers = list(self.extra_headers)
        if not any(k == "Proxy-Agent" for k, _ in headers):
            headers.append(("Proxy-Agent", self.proxy_agent))
        return headers

    def _refuse(self, ep: Endpoint, response: bytes) -> None:
        ep.write(response)
        ep.close()
        raise _Close

    def _bad_request(self, ep: Endpoint, why: str) -> None:
        self.spec.log.info("%s: http: %s", ep.peer, why)
        self._refuse(ep, go_response(400, self.extra_headers))

    # ----------------------------------------------------------------- serve
    async def handle(self, ep: Endpoint) -> None:
        # a traffic limiter paces the bodies of forwarded requests here; CONNECT and
        # upgraded tunnels are paced by their relay
        gate = ep.traffic.open(ep, ep.peer_ip) if ep.traffic is not None else None
        try:
            while True:
                req = await self._read_request(ep)
                await self._serve(ep, req, gate)
        except _Close:
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
            raise _Close from None
        except asyncio.LimitOverrunError:
            self._bad_request(ep, "request head too large")
        except EndpointClosed:
            raise _Close from None
        try:
            return http1.parse_request(head)
        except http1.HTTPHeadError as exc:
            self._bad_request(ep, f"malformed request: {exc}")
            raise  # unreachable: _bad_request raises _Close

    async def _serve(self, ep: Endpoint, req: http1.Request, gate: Gate | None = None) -> None:
        log = self.spec.log
        if req.method == "CONNECT":
            scheme, authority, origin = "", req.target, ""
            if req.target.startswith("/"):
                authority = req.get("Host") or ""
        else:
            parsed = parse_absolute(req.target)
            scheme, authority, origin = parsed if parsed else ("", "", "")

        if self.users:
            user, password = basic_proxy_auth(req.get("Proxy-Authorization"))
            if not self.users.check(user, password):
                log.info("%s: http: proxy authentication failed (user %r)", ep.peer, user)
                if self.probe is not None and self.probe.applies_to(_hostname(req, authority)):
                    head = http1.build_request(req.method, req.target, req.headers, req.version)
                    await _probe.answer(self.probe, ep, req, head, go_response(503), log)
                    ep.close()
                    raise _Close
                headers = [("Proxy-Authenticate", f'Basic realm="{self.realm}"')]
                if (req.get("Proxy-Connection") or "").lower() == "keep-alive":
                    headers += [("Connection", "close"), ("Proxy-Connection", "close")]
                self._refuse(ep, go_response(407, headers))

        if req.method == "PRI" or (req.method != "CONNECT" and scheme != "http"):
            self._bad_request(ep, f"not a proxy request: {req.method} {req.target[:80]}")

        target = split_authority(authority)
        if target is not None and self.spec.bypass.contains(join_host_port(*target)):
            log.info("%s: http: %s is bypassed (403)", ep.peer, join_host_port(*target))
            self._refuse(ep, go_response(403, self._agent_headers()))

        if (req.get("X-Gost-Protocol") or "") == "udp":
            log.info("%s: http: UDP relay is not supported", ep.peer)
            self._refuse(ep, go_response(403, self.extra_headers, content_length=0))

        if req.method == "CONNECT":
            await self._connect(ep, authority, target)
            raise _Close
        if target is None or not target[0]:
            self._bad_request(ep, f"invalid host {authority!r}")
        await self._forward(ep, req, authority, target, origin, gate)

    # --------------------------------------------------------------- CONNECT
    async def _connect(self, ep: Endpoint, authority: str, target: tuple[str, int] | None) -> None:
        log = self.spec.log
        try:
            if target is None:
                raise DialError(f"invalid address {authority!r}")
            upstream = await self.spec.router.dial(*target)
        except DialError as exc:
            log.info("%s -> %s: %s", ep.peer, authority, exc)
            self._refuse(ep, go_response(503, self._agent_headers()))
        ep.write(self.connect_ok)
        log.debug("%s <-> %s", ep.peer, join_host_port(*target))  # type: ignore[misc]
        await relay(ep, upstream, self.idle_timeout)

    # --------------------------------------------------------- forward proxy
    async def _forward(
        self,
        ep: Endpoint,
        req: http1.Request,
        authority: str,
        target: tuple[str, int],
        origin: str,
        gate: Gate | None = None,
    ) -> None:
        """One forwarded request; returns when the client may send the next one."""
        log = self.spec.log
        http10 = req.version == "HTTP/1.0"
        conn_tokens = _connection_tokens(req)
        proxy_conn = (req.get("Proxy-Connection") or "").lower()
        if http10:
            client_keep = "keep-alive" in conn_tokens or proxy_conn == "keep-alive"
        else:
            client_keep = "close" not in conn_tokens and proxy_conn != "close"
        try:
            req_length = body.request_length(req)
        except body.BodyError as exc:
            self._bad_request(ep, str(exc))
        upgrade = req.get("Upgrade") if "upgrade" in conn_tokens else None

        headers = [("Host", authority.rsplit("@", 1)[-1])]
        headers += [
            (k, v) for k, v in _forwardable(req.headers, conn_tokens) if k.lower() != "host"
        ]
        if upgrade:
            headers += [("Connection", "Upgrade"), ("Upgrade", upgrade)]
        elif self.pool is None:  # Go's Transport with keep-alives off
            headers.append(("Connection", "close"))
        if req_length == body.CHUNKED:
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        # Go's Transport asks for gzip only when the client named no encoding and no range
        gzip_asked = (
            self.compression
            and not upgrade
            and req.method != "HEAD"
            and not req.get("Accept-Encoding")
            and not req.get("Range")
        )
        if gzip_asked:
            headers.append(("Accept-Encoding", "gzip"))
        out_head = http1.build_request(req.method, origin, headers)

        unavailable = go_response(503, (), content_length=0, version=req.version)
        pooled = self.pool.take(target) if self.pool is not None and not upgrade else None
        # a reused connection the origin dropped meanwhile costs one fresh try, for a
        # request without a body (as Go's Transport retries replayable requests)
        tries = 2 if pooled is not None and req_length == 0 else 1
        for attempt in range(tries):
            if attempt == 0 and pooled is not None:
                upstream = pooled
            else:
                try:
                    upstream = await self.spec.router.dial(*target)
                except DialError as exc:
                    log.info("%s -> %s: %s", ep.peer, authority, exc)
                    self._refuse(ep, unavailable)
            log.debug("%s -> %s %s %s", ep.peer, req.method, authority, origin)
            upstream.write(out_head)
            upload = asyncio.ensure_future(
                body.copy_body(ep, upstream, req_length, pace=counting(pacer(gate, True), True))
            )
            upload.add_done_callback(_retrieve)
            resp = await self._response_head(ep, upstream, upload, http10)
            if resp is not None or attempt + 1 == tries:
                break
            upload.cancel()
            upstream.close()
            log.debug("%s -> %s: kept connection gone; dialling again", ep.peer, authority)
        reuse = False
        try:
            if resp is None:
                log.info("%s -> %s: no valid response", ep.peer, authority)
                self._refuse(ep, unavailable)
            if resp.status == 101:
                await self._switch(ep, req, resp, upstream, upload, upgrade)
                raise _Close
            keep = await self._respond(
                ep, req, resp, upstream, upload, http10, client_keep, gzip_asked, gate
            )
            reuse = self.pool is not None and _reusable(req, resp, upstream, upload)
        finally:
            if not upload.done():
                upload.cancel()
            if reuse:
                self.pool.put(target, upstream)  # type: ignore[union-attr]
            else:
                upstream.close()
        if not keep:
            ep.close()
            raise _Close

    async def _response_head(
        self, ep: Endpoint, upstream: Endpoint, upload: asyncio.Future, http10: bool
    ) -> http1.Response | None:
        """The final response head (1xx interim ones are passed on), or None."""

        async def read_final() -> http1.Response:
            while True:
                head = await upstream.readuntil(b"\r\n\r\n", http1.MAX_HEAD)
                resp = http1.parse_response(head)
                if resp.status == 101 or resp.status >= 200:
                    return resp
                if not http10:
                    ep.write(head)

        reader = asyncio.ensure_future(read_final())
        try:
            # Go's ResponseHeaderTimeout runs from the end of the request body.
            await asyncio.wait({reader, upload}, return_when=asyncio.FIRST_COMPLETED)
            if not reader.done():
                if upload.exception() is not None:
                    return None
                await asyncio.wait({reader}, timeout=self.read_timeout)
            if not reader.done():
                return None
            return reader.result()
        except (*_READ_ERRORS, http1.HTTPHeadError):
            return None
        finally:
            if not reader.done():
                reader.cancel()

    async def _respond(
        self,
        ep: Endpoint,
        req: http1.Request,
        resp: http1.Response,
        upstream: Endpoint,
        upload: asyncio.Future,
        http10: bool,
        client_keep: bool,
        gzip_asked: bool = False,
        gate: Gate | None = None,
    ) -> bool:
        """Stream the response to the client; True when the connection stays open."""
        try:
            length = body.response_length(resp, req.method)
        except body.BodyError as exc:
            self.spec.log.info("%s: bad response from upstream: %s", ep.peer, exc)
            self._refuse(ep, go_response(503, (), content_length=0, version=req.version))
        gunzip = (
            gzip_asked
            and (resp.get("Content-Encoding") or "").strip().lower() == "gzip"
            and length != 0
        )
        dechunk = (http10 and length == body.CHUNKED) or gunzip
        headers = _forwardable(resp.headers, _connection_tokens(resp))
        if gunzip:  # Go drops both: the length of what comes out is unknown
            dropped = ("content-encoding", "content-length", "transfer-encoding")
            headers = [(k, v) for k, v in headers if k.lower() not in dropped]
            if not http10:
                headers.append(("Transfer-Encoding", "chunked"))
        elif dechunk:
            headers = [(k, v) for k, v in headers if k.lower() != "transfer-encoding"]
        keep = client_keep and length != body.UNTIL_CLOSE and not (dechunk and http10)
        if not keep:
            headers.append(("Connection", "close"))
        elif http10:
            headers.append(("Connection", "keep-alive"))
        version = "HTTP/1.0" if http10 else "HTTP/1.1"
        ep.write(http1.build_response(resp.status, resp.reason, headers, version=version))
        try:
            if gunzip:
                sink = body.GunzipSink(ep, chunked=not http10)
                await body.copy_body(  # type: ignore[arg-type]
                    upstream, sink, length, dechunk=True, pace=counting(pacer(gate, False), False)
                )
                sink.finish()
            else:
                pace = counting(pacer(gate, False), False)
                await body.copy_body(upstream, ep, length, dechunk, pace=pace)
        except (*_READ_ERRORS, body.BodyError) as exc:
            self.spec.log.info("%s: response body cut: %s", ep.peer, exc or type(exc).__name__)
            ep.abort()
            raise _Close from None
        if not upload.done() or upload.exception() is not None:
            return False  # the client's request body was not read to its end
        return keep

    async def _switch(
        self,
        ep: Endpoint,
        req: http1.Request,
        resp: http1.Response,
        upstream: Endpoint,
        upload: asyncio.Future,
        upgrade: str | None,
    ) -> None:
        """101 Switching Protocols: pass the answer on, then join the two connections."""
        offered = (resp.get("Upgrade") or "") if "upgrade" in _connection_tokens(resp) else ""
        if not upgrade or offered.lower() != upgrade.lower():
            self.spec.log.info(
                "%s: backend switched to %r when %r was requested", ep.peer, offered, upgrade
            )
            ep.abort()
            raise _Close
        if not upload.done():
            upload.cancel()
        headers = _forwardable(resp.headers, _connection_tokens(resp))
        headers += [("Connection", "Upgrade"), ("Upgrade", offered)]
        ep.write(http1.build_response(101, resp.reason, headers))
        await relay(ep, upstream)


registry.handlers.register("http", HTTPHandler, HTTPOptions)
