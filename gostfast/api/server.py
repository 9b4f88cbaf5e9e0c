"""GOST's web API over HTTP/1.1: its routes, its basic auth, its access log (x/api).

Routes, under ``pathPrefix`` when one is set (GOST's gin route group):

* ``GET /config`` (``?format=yaml`` for YAML, else JSON), ``GET /config/SECTION``
  (``{"data": {"count", "list"}}``), ``GET /config/SECTION/NAME`` (``{"data": ...}``)
* ``POST /config/SECTION``, ``PUT /config/SECTION/NAME``, ``DELETE /config/SECTION/NAME``
  for the sections of api/document.py, answered ``{"msg": "OK"}`` or GOST's
  error body.

GOST's other routes (``POST /config`` saving to a file, ``/config/reload``,
resolvers, ingresses, routers, observers, recorders, sds, quotas, caches,
``/docs``) answer 501 with GOST's error body naming them: gostfast has none of
those parts. ``/config`` needs the ``auth`` user (or the ``auther``'s users)
when one is given: else 401, ``WWW-Authenticate: Basic``, ``{"code": 401,
"msg": "Unauthorized"}``, as GOST. CORS as GOST's (every origin, its methods).

The server runs on the services' event loop, so a change is applied between
two callbacks of the data path, never concurrently with one.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import os
import socket
import time
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from gostfast.api.controller import Controller
from gostfast.api.document import INVALID, SECTIONS, ApiError
from gostfast.config.url import split_host_port
from gostfast.proto import http1
from gostfast.service import StartError

log = logging.getLogger("gostfast.api")

MAX_BODY = 4 << 20  # a config object; larger requests get 413
IDLE_TIMEOUT = 60.0  # a kept-alive connection that sends nothing for this long is closed

#: GOST routes of parts gostfast does not have
_UNSUPPORTED = frozenset(
    "resolvers ingresses routers observers recorders sds quotas caches reload".split()
)
_CORS = [
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Methods", "GET,POST,PUT,DELETE,OPTIONS"),
    ("Access-Control-Allow-Headers", "*"),
    ("Access-Control-Allow-Private-Network", "true"),
]


class ApiStartError(StartError):
    """The API's address cannot be listened on."""


def bind_api(addr: str) -> list[socket.socket]:
    """The API's listening sockets for ``addr``; ApiStartError naming it if it cannot be had."""
    from gostfast.transport.accept import bind_sockets

    if addr.startswith("unix://"):
        raise ApiStartError(f"api: cannot listen on {addr}: unix sockets are not supported")
    try:
        host, port = split_host_port(addr, "api.addr")
    except ValueError as exc:
        raise ApiStartError(f"api: cannot listen on {addr}: {exc}") from None
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ApiStartError(f"api: cannot listen on {addr}: invalid port '{port}'")
    try:
        return bind_sockets(host or None, int(port), 128)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ApiStartError(f"api: cannot listen on {addr}: {reason}") from None


class ApiServer:
    """Serves the controller's config at ``addr``; ``start`` binds (or raises
    ApiStartError naming the address), ``close`` stops accepting."""

    def __init__(self, controller: Controller, addr: str, path_prefix: str = "", accesslog=False):
        self.controller = controller
        self.addr = addr
        self.prefix = path_prefix
        self.accesslog = accesslog
        self._servers: list[asyncio.AbstractServer] = []
        self._conns: set[asyncio.Task] = set()

    async def start(self, socks: list[socket.socket] | None = None) -> None:
        """Serve on ``socks`` (bound by ``bind_api``; bound here when not given)."""
        socks = socks if socks is not None else bind_api(self.addr)
        self._servers = [await asyncio.start_server(self._serve, sock=s) for s in socks]
        log.info("api: listening on %s", ", ".join(self.addresses()))

    def addresses(self) -> list[str]:
        from gostfast.transport.tcp import server_addresses

        return server_addresses(self._servers)

    def close(self) -> None:
        for server in self._servers:
            server.close()
        for t in list(self._conns):
            t.cancel()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._conns.add(task)
        peer = writer.get_extra_info("peername")
        client = peer[0] if isinstance(peer, tuple) else str(peer)
        try:
            while await self._one_request(reader, writer, client):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            pass
        finally:
            if task is not None:
                self._conns.discard(task)
            writer.close()

    async def _one_request(self, reader, writer, client: str) -> bool:
        """Read, answer one request; False when the connection is to be closed."""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT)
        except asyncio.LimitOverrunError:
            await self._send(writer, 431, {"code": INVALID, "msg": "request head too large"})
            return False
        except asyncio.IncompleteReadError:
            return False
        started = time.monotonic()
        try:
            req = http1.parse_request(head)
        except http1.HTTPHeadError as exc:
            await self._send(writer, 400, {"code": INVALID, "msg": f"bad request: {exc}"})
            return False
        keep = req.version == "HTTP/1.1" and not req.has_token("Connection", "close")
        if req.get("Transfer-Encoding") is not None:
            await self._send(
                writer, 411, {"code": INVALID, "msg": "send the body with a Content-Length"}
            )
            return False
        length_text = req.get("Content-Length") or "0"
        if not length_text.isdigit():
            await self._send(writer, 400, {"code": INVALID, "msg": "bad Content-Length"})
            return False
        length = int(length_text)
        if length > MAX_BODY:
            await self._send(writer, 413, {"code": INVALID, "msg": f"body over {MAX_BODY} bytes"})
            return False
        body = await reader.readexactly(length) if length else b""
        status, payload, ctype, extra = await self._route(req, body)
        if req.get("Origin") is not None:
            extra = [*extra, *_CORS[:1]]
        await self._send(writer, status, payload, ctype, extra, keep)
        if self.accesslog:
            took = time.monotonic() - started
            log.info(
                "| %3d | %13s | %15s | %-7s %s",
                status,
                f"{took * 1000:.3f}ms",
                client,
                req.method,
                req.target,
            )
        return keep

    async def _send(self, writer, status, payload, ctype="application/json", extra=(), keep=False):
        if isinstance(payload, bytes):
            body = payload
        else:
            body = json.dumps(payload, separators=(",", ":")).encode()
            ctype = "application/json; charset=utf-8"
        headers = [("Content-Type", ctype), *extra, ("Content-Length", str(len(body)))]
        if not keep:
            headers.append(("Connection", "close"))
        writer.write(http1.build_response(status, None, headers, body))
        await writer.drain()

    # -- routing -------------------------------------------------------------------

    async def _route(self, req: http1.Request, body: bytes):
        """(status, JSON-able payload or bytes, content type, extra headers)."""
        url = urlsplit(req.target)
        path = unquote(url.path)
        if self.prefix:
            if path != self.prefix and not path.startswith(self.prefix + "/"):
                return 404, b"404 page not found", "text/plain", []
            path = path[len(self.prefix) :]
        parts = [p for p in path.split("/") if p]
        if req.method == "OPTIONS":  # a CORS preflight, answered as gin-contrib/cors does
            return 204, b"", "text/plain", _CORS
        if parts[:1] == ["docs"]:
            return _unsupported("the swagger documents (/docs)")
        if parts[:1] != ["config"] or len(parts) > 3:
            return 404, b"404 page not found", "text/plain", []
        if not self._authorized(req):
            return 401, {"code": 401, "msg": "Unauthorized"}, "", [("WWW-Authenticate", "Basic")]
        try:
            return await self._config_route(req, parts[1:], parse_qs(url.query), body)
        except ApiError as exc:
            log.info("api: %s %s: %d %s", req.method, req.target, exc.status, exc.msg)
            return exc.status, exc.body(), "", []
        except Exception as exc:  # a bug: answered and logged, the API keeps serving
            log.exception("api: %s %s failed", req.method, req.target)
            return 500, {"code": 40003, "msg": f"internal error: {exc}"}, "", []

    async def _config_route(self, req, rest: list[str], query, body: bytes):
        c = self.controller
        method = req.method
        if not rest:
            if method == "GET":
                fmt = (query.get("format") or ["json"])[0]
                data, ctype = c.render("yaml" if fmt == "yaml" else "json")
                return 200, data, ctype, []
            if method == "POST":
                return _unsupported("POST /config (saving the config to a file)")
            return _not_allowed()
        section = rest[0]
        if section in _UNSUPPORTED:
            return _unsupported(f"/config/{section}")
        if section not in SECTIONS:
            return 404, b"404 page not found", "text/plain", []
        if len(rest) == 1:
            if method == "GET":
                return 200, c.list(section), "", []
            if method == "POST":
                await c.create(section, _json(body))
                return _ok()
            return _not_allowed()
        name = rest[1]
        if method == "GET":
            return 200, c.get(section, name), "", []
        if method == "PUT":
            await c.update(section, name, _json(body))
            return _ok()
        if method == "DELETE":
            await c.delete(section, name)
            return _ok()
        return _not_allowed()

    def _authorized(self, req: http1.Request) -> bool:
        api = self.controller.config.api
        if api is None or not (api.auths or api.auther):
            return True
        user, password = _basic_credentials(req.get("Authorization") or "")
        if user is None:
            return False
        return any(
            hmac.compare_digest(a.username.encode(), user.encode())
            and hmac.compare_digest(a.password.encode(), password.encode())
            for a in api.auths
        )


def _basic_credentials(header: str) -> tuple[str | None, str]:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return None, ""
    try:
        text = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, ""
    user, colon, password = text.partition(":")
    return (user, password) if colon else (None, "")


def _json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, INVALID, f"malformed JSON body: {exc} (nothing changed)") from None


def _ok():
    return 200, {"msg": "OK"}, "", []


def _not_allowed():
    return 405, b"405 method not allowed", "text/plain", []


def _unsupported(what: str):
    return 501, {"code": 40003, "msg": f"{what}: not supported by gostfast"}, "", []
