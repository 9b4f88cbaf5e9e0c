"""The http handler's forward proxying (``GET http://host/path``, GOST's plain proxy).

Proxy-Authorization, Proxy-Connection, GOST's Gost-Target/X-Gost-Target/Gost-Record
and every hop-by-hop header are removed, the target is rewritten to origin-form
and the request goes to the origin through the chain on a connection of its own
(GOST's default), or with ``keepalive`` on a kept one (handler/_httppool.py).
With ``compression``, a request that names no encoding and no range asks the
origin for gzip, and a gzip answer reaches the client decompressed (chunked; to
HTTP/1.0 clients ended by close), as Go's Transport does. Bodies (Content-Length
or chunked) stream both ways without being collected (framing:
proto/http1_body.py, copying: handler/_httpbody.py); 1xx answers are passed on;
the response head must arrive within ``readTimeout`` (15 s) after the request
was sent, else ``503`` (GOST's answer to any upstream failure). A ``101``
response is passed on and the two connections are joined by the relay. The
client connection is kept alive for further requests unless it or the response
framing says otherwise.

A module of its own because this is the one part of the handler that speaks
HTTP to a second party: two bodies in flight, upstream reuse, 1xx and 101.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from gostfast.components import HandlerSpec
from gostfast.endpoint import Endpoint
from gostfast.errors import DialError
from gostfast.handler import _httpbody as body
from gostfast.handler._httppool import UpstreamPool
from gostfast.handler._httpreply import READ_ERRORS, Close, bad_request, refuse
from gostfast.proto import http1
from gostfast.proto import http1_body as framing
from gostfast.relay import relay
from gostfast.traffic import Gate, pacer
from gostfast.tunnel import counting

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
        length = framing.response_length(resp, req.method)
    except framing.BodyError:
        return False
    return length != framing.UNTIL_CLOSE and not upstream.closed and not upstream.at_eof


def _retrieve(task: asyncio.Future) -> None:
    """Mark a background copy's failure as seen (it is acted on where it matters)."""
    if not task.cancelled():
        task.exception()


class ForwardProxy:
    """Forwards one http handler's absolute-URI requests to their origins."""

    def __init__(
        self,
        spec: HandlerSpec,
        extra_headers: Sequence[tuple[str, str]],
        read_timeout: float | None,
        pool: UpstreamPool | None,
        compression: bool,
    ) -> None:
        self.spec = spec
        #: the ``header`` option's fields, on the 400 a broken request body gets
        self.extra_headers = extra_headers
        #: how long the response head may take (None: no limit)
        self.read_timeout = read_timeout
        #: GOST's keepalive: idle upstream connections, shared by the service's clients
        self.pool = pool
        #: GOST's compression (Go's Transport with DisableCompression off)
        self.compression = compression

    async def forward(
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
            req_length = framing.request_length(req)
        except framing.BodyError as exc:
            bad_request(ep, log, str(exc), self.extra_headers)
        upgrade = req.get("Upgrade") if "upgrade" in conn_tokens else None

        headers = [("Host", authority.rsplit("@", 1)[-1])]
        headers += [
            (k, v) for k, v in _forwardable(req.headers, conn_tokens) if k.lower() != "host"
        ]
        if upgrade:
            headers += [("Connection", "Upgrade"), ("Upgrade", upgrade)]
        elif self.pool is None:  # Go's Transport with keep-alives off
            headers.append(("Connection", "close"))
        if req_length == framing.CHUNKED:
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

        unavailable = http1.go_response(503, (), content_length=0, version=req.version)
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
                    refuse(ep, unavailable)
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
                refuse(ep, unavailable)
            if resp.status == 101:
                await self._switch(ep, resp, upstream, upload, upgrade)
                raise Close
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
            raise Close

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
        except (*READ_ERRORS, http1.HTTPHeadError):
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
            length = framing.response_length(resp, req.method)
        except framing.BodyError as exc:
            self.spec.log.info("%s: bad response from upstream: %s", ep.peer, exc)
            refuse(ep, http1.go_response(503, (), content_length=0, version=req.version))
        gunzip = (
            gzip_asked
            and (resp.get("Content-Encoding") or "").strip().lower() == "gzip"
            and length != 0
        )
        dechunk = (http10 and length == framing.CHUNKED) or gunzip
        headers = _forwardable(resp.headers, _connection_tokens(resp))
        if gunzip:  # Go drops both: the length of what comes out is unknown
            dropped = ("content-encoding", "content-length", "transfer-encoding")
            headers = [(k, v) for k, v in headers if k.lower() not in dropped]
            if not http10:
                headers.append(("Transfer-Encoding", "chunked"))
        elif dechunk:
            headers = [(k, v) for k, v in headers if k.lower() != "transfer-encoding"]
        keep = client_keep and length != framing.UNTIL_CLOSE and not (dechunk and http10)
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
        except (*READ_ERRORS, framing.BodyError) as exc:
            self.spec.log.info("%s: response body cut: %s", ep.peer, exc or type(exc).__name__)
            ep.abort()
            raise Close from None
        if not upload.done() or upload.exception() is not None:
            return False  # the client's request body was not read to its end
        return keep

    async def _switch(
        self,
        ep: Endpoint,
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
            raise Close
        if not upload.done():
            upload.cancel()
        headers = _forwardable(resp.headers, _connection_tokens(resp))
        headers += [("Connection", "Upgrade"), ("Upgrade", offered)]
        ep.write(http1.build_response(101, resp.reason, headers))
        await relay(ep, upstream)
