"""GOST's web API under ``--workers``: served by a process of the supervisor's, each
change applied as a reload with the new config.

Why this shape: the supervisor has no event loop (it forks, so it runs no
threads either), and a change must reach every worker. So the supervisor binds
the API's address (a held one: exit 1 naming it, before any worker starts) and
forks one API process, which serves HTTP on the loop exactly as without
workers (server.py, controller.py: parse, plan, refuse what is bad). A change
it accepts is sent to the supervisor over a socketpair as the new document;
the supervisor plans it once more and reloads onto it (supervisor.py: new
addresses bound, a new generation of workers started, the old ones drained for
``--grace``), and answers with the error, if any, that kept the old config.

What that means for tunnels: a change reaches new connections at once; open
tunnels stay on the old workers, which drain them for ``--grace`` (as any
reload), so under workers a tunnel that outlives ``--grace`` after an API
change is closed. Without workers nothing is ever closed by a change.

Messages are 4-byte big-endian lengths and JSON: ``{"document": {...}}`` one
way, ``{"error": null | "text"}`` the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from gostfast.api.controller import Controller
from gostfast.errors import GostfastError

log = logging.getLogger("gostfast.supervisor")

#: how long the supervisor waits for the rest of a message it started to read
MESSAGE_TIMEOUT = 10.0
#: an API process that dies sooner than this after its start is not started again
STABLE_AFTER = 1.0
MAX_MESSAGE = 64 << 20


class ChangeRefused(GostfastError):
    """The supervisor kept the running config (the message says why)."""


def _frame(obj: Any) -> bytes:
    data = json.dumps(obj).encode()
    return struct.pack(">I", len(data)) + data


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("the other end closed")
        buf += chunk
    return bytes(buf)


def read_message(sock: socket.socket) -> Any:
    """One message from a blocking socket (with a timeout set)."""
    (length,) = struct.unpack(">I", _recv_exactly(sock, 4))
    if length > MAX_MESSAGE:
        raise ConnectionError(f"message of {length} bytes")
    return json.loads(_recv_exactly(sock, length))


class SupervisorLink:
    """The API process's runner: sends each change to the supervisor, waits for its word."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.setblocking(False)

    async def apply(self, new: Any, document: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(self.sock, _frame({"document": document}))
        head = await self._recv(loop, 4)
        (length,) = struct.unpack(">I", head)
        reply = json.loads(await self._recv(loop, length))
        if reply.get("error"):
            raise ChangeRefused(reply["error"])

    async def _recv(self, loop: asyncio.AbstractEventLoop, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = await loop.sock_recv(self.sock, n - len(buf))
            if not chunk:
                raise ChangeRefused("the supervisor is gone")
            buf += chunk
        return bytes(buf)


class ApiProcess:
    """The supervisor's side: forks the API process, answers its changes, stops it."""

    def __init__(self, socks: list[socket.socket], controller: Controller, debug: bool) -> None:
        self.socks = socks
        self.controller = controller
        self.debug = debug
        self.pid = 0
        self.started = 0.0
        self.sock: socket.socket | None = None  # the supervisor's end of the socketpair

    @property
    def fd(self) -> int:
        return self.sock.fileno() if self.sock is not None else -1

    def start(self, close_in_child: Callable[[], None]) -> None:
        """Fork the API process; ``close_in_child`` closes what it must not hold (the
        services' listening sockets, the supervisor's pipes)."""
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            from gostfast.supervisor import run_child

            def body() -> int:
                ours.close()
                close_in_child()
                return self._child(theirs)

            run_child(body, "api process")
        theirs.close()
        if self.sock is not None:
            self.sock.close()
        self.sock, self.pid, self.started = ours, pid, time.monotonic()
        log.info("api process %d started", pid)

    def _child(self, sock: socket.socket) -> int:
        from gostfast import logsetup
        from gostfast.api.server import ApiServer
        from gostfast.supervisor import die_with_parent, reset_signals

        reset_signals()
        die_with_parent()
        api = self.controller.config.api
        assert api is not None
        logsetup.configure(self.controller.config.log, self.debug, pid=True)
        self.controller.runner = SupervisorLink(sock)

        async def serve() -> None:
            server = ApiServer(self.controller, api.addr, api.path_prefix, api.accesslog)
            await server.start(self.socks)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
            server.close()

        import uvloop

        uvloop.run(serve())
        return 0

    def close_in_worker(self) -> None:
        """In a worker: the API's sockets are not its business."""
        for s in self.socks:
            s.close()
        if self.sock is not None:
            self.sock.close()

    def serve_one(self, reload: Callable[[Any], str | None]) -> None:
        """Read one change from the API process, plan it, ``reload`` onto the plan (the
        error that kept the old config, or None), and answer with that."""
        assert self.sock is not None
        self.sock.settimeout(MESSAGE_TIMEOUT)
        try:
            doc = read_message(self.sock)["document"]
            error = self._apply(doc, reload)
            self.sock.sendall(_frame({"error": error}))
        except (OSError, ConnectionError, ValueError, KeyError, TypeError) as exc:
            log.error("api process %d: broken message (%s); closing its link", self.pid, exc)
            self.sock.close()
            self.sock = None

    def _apply(self, doc: dict[str, Any], reload: Callable[[Any], str | None]) -> str | None:
        from gostfast.api.document import Document
        from gostfast.config import yaml as yamlcfg
        from gostfast.config.errors import ConfigError
        from gostfast.service import plan

        try:
            cfg = yamlcfg.from_dict(doc, [])
            new = plan(cfg)
        except ConfigError as exc:
            return str(exc)
        error = reload(new)
        if error is None:  # what a restarted API process starts from
            self.controller.document, self.controller.config = Document(doc), cfg
        return error

    def gone(self, status_text: str, close_in_child: Callable[[], None]) -> None:
        """The API process died: started again, unless it died at once."""
        ran = time.monotonic() - self.started
        if ran < STABLE_AFTER:
            log.error(
                "api process %d %s after %.1fs; not restarting it", self.pid, status_text, ran
            )
            self.pid = 0
            return
        log.warning("api process %d %s; restarting it", self.pid, status_text)
        self.start(close_in_child)

    def stop(self) -> None:
        if not self.pid:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        end = time.monotonic() + 5.0
        while time.monotonic() < end:
            with contextlib.suppress(ChildProcessError):
                pid, _ = os.waitpid(self.pid, os.WNOHANG)
                if pid == 0:
                    time.sleep(0.05)
                    continue
            break
        else:
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
        self.pid = 0
        for s in self.socks:
            s.close()
