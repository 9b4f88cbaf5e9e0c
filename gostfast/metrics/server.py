"""The metrics HTTP endpoint, as GOST's (x/metrics/service): one path, basic auth, CORS.

Why a small server of our own on the loop rather than prometheus_client's
``start_http_server``: that one runs a thread, and the supervisor of
``--workers`` forks; on the event loop the endpoint shares the workers'
listening-socket model instead (the supervisor binds it once, every worker
serves it, a scrape is answered by whichever accepts it).

What a request gets, as GOST: the path (``/metrics`` unless ``path`` says
otherwise) answers GET with the text exposition; OPTIONS gets 204 (CORS);
with ``auth``/``auther`` a request without the right basic credentials gets
401 and no body; any other path is 404 "404 page not found". Each response
closes its connection.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
import socket

from gostfast.config.model import MetricsConfig
from gostfast.config.url import split_host_port
from gostfast.metrics import FLUSH_PERIOD
from gostfast.metrics import multiprocess as metrics_multiprocess
from gostfast.proto import http1
from gostfast.users import Users

log = logging.getLogger("gostfast.metrics")

HEAD_TIMEOUT = 10.0
UNIX_PREFIX = "unix://"
_CORS = (
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Methods", "GET, OPTIONS"),
    ("Access-Control-Allow-Headers", "*"),
)


class MetricsBindError(OSError):
    """The metrics address cannot be bound; the message names it."""


def bind(addr: str) -> list[socket.socket]:
    """Listening sockets for ``addr`` (``host:port``, ``:port`` or ``unix:///path``);
    MetricsBindError naming the address and the OS error otherwise."""
    from gostfast.transport.accept import bind_sockets

    try:
        if addr.startswith(UNIX_PREFIX):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(addr[len(UNIX_PREFIX) :])
                sock.listen(128)
                sock.setblocking(False)
            except OSError:
                sock.close()
                raise
            return [sock]
        host, port = split_host_port(addr, "metrics.addr")
        return bind_sockets(host or None, int(port), 128)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise MetricsBindError(f"metrics: cannot listen on {addr}: {reason}") from None


def _exposition(registry) -> tuple[bytes, str]:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(registry), CONTENT_TYPE_LATEST


def scrape_registry(metrics):
    """What a scrape reads: this process's registry (with the process collectors), or,
    under --workers, every worker's files summed."""
    from prometheus_client import CollectorRegistry
    from prometheus_client import multiprocess as mp

    from gostfast import metrics as m

    if m.multiprocess():
        registry = CollectorRegistry()
        mp.MultiProcessCollector(registry)
        return registry
    from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR

    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        try:
            metrics.registry.register(collector)
        except ValueError:  # registered by an earlier server of this process
            pass
    return metrics.registry


class MetricsServer:
    """Serves ``cfg`` on ``socks`` (bound by ``bind``) from ``registry``."""

    def __init__(
        self, cfg: MetricsConfig, socks: list[socket.socket], registry, counts=None
    ) -> None:
        self.cfg = cfg
        #: the process's ``Metrics``: flushed before each scrape, and under --workers
        #: every FLUSH_PERIOD and at the close (the other workers read our files)
        self.counts = counts
        self._flusher: asyncio.TimerHandle | None = None
        self.path = cfg.path or "/metrics"
        self.users = Users(cfg.auths, required=cfg.auth_required)
        self.socks = socks
        self.registry = registry
        self._servers: list[asyncio.AbstractServer] = []

    async def start(self) -> None:
        for sock in self.socks:
            if sock.family == socket.AF_UNIX:
                server = await asyncio.start_unix_server(self._serve, sock=sock)
            else:
                server = await asyncio.start_server(self._serve, sock=sock)
            self._servers.append(server)
        log.info("metrics: serving %s on %s", self.path, self.cfg.addr)
        if self.counts is not None and metrics_multiprocess():
            self._flush_periodically()

    def _flush_periodically(self) -> None:
        self.counts.flush()
        loop = asyncio.get_running_loop()
        self._flusher = loop.call_later(FLUSH_PERIOD, self._flush_periodically)

    def close(self) -> None:
        for server in self._servers:
            server.close()
        self._servers.clear()
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        if self.counts is not None:
            self.counts.flush()  # under --workers: what this worker counted stays summed

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
            status, headers, body = await self._answer(http1.parse_request(head))
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        except (asyncio.LimitOverrunError, ValueError):
            status, headers, body = 400, [("Content-Type", "text/plain")], b"400 Bad Request"
        try:
            writer.write(
                http1.build_response(
                    status,
                    None,
                    [*_CORS, *headers, ("Content-Length", str(len(body))), ("Connection", "close")],
                    body,
                )
            )
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _answer(self, req: http1.Request) -> tuple[int, list, bytes]:
        path = req.target.split("?", 1)[0]
        if path != self.path:
            return 404, [("Content-Type", "text/plain; charset=utf-8")], b"404 page not found\n"
        if req.method == "OPTIONS":
            return 204, [], b""
        if self.users and not self._authorized(req):
            return 401, [], b""
        if self.counts is not None:
            self.counts.flush()  # on the loop, which alone adds to the counts
        loop = asyncio.get_running_loop()
        # collecting reads every worker's files under --workers: off the loop
        body, ctype = await loop.run_in_executor(None, _exposition, self.registry)
        return 200, [("Content-Type", ctype)], body

    def _authorized(self, req: http1.Request) -> bool:
        value = req.get("Authorization", "") or ""
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "basic":
            return self.users.check("", "")
        try:
            user, _, password = (
                base64.b64decode(token.strip(), validate=True).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            return False
        return self.users.check(user, password)
