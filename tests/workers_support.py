"""Helpers for the --workers tests: who serves which connection, and raw mws clients.

Which worker holds a connection is read from /proc (the socket inodes in each
worker's fd table against /proc/net/tcp), so finding out never makes a
connection of its own. The mws client is the ``websockets`` library carrying
hand-written smux v1 frames (ver 1, cmd, LE length, LE stream id), one TCP
connection per client, so each lands on whichever worker the kernel picks.
"""

from __future__ import annotations

import collections
import os
import re
import struct
import time

SMUX_SYN, SMUX_FIN, SMUX_PSH = 0, 1, 2


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (the supervisor's workers)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def _inodes_on_port(port: int) -> set[int]:
    """Inodes of ESTABLISHED sockets whose local port is ``port``."""
    want = f":{port:04X}"
    out = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(name) as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[1].endswith(want) and parts[3] == "01":
                    out.add(int(parts[9]))
    return out


def connections_by_pid(port: int, pids: list[int]) -> dict[int, int]:
    """How many accepted connections on ``port`` each process in ``pids`` holds."""
    inodes = _inodes_on_port(port)
    counts: dict[int, int] = collections.Counter()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            m = re.fullmatch(r"socket:\[(\d+)\]", target)
            if m and int(m.group(1)) in inodes:
                counts[pid] += 1
    return dict(counts)


def wait_for(predicate, timeout: float, what: str, proc=None):
    """``predicate()`` once it is true; on timeout an AssertionError with ``proc``'s log tail."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = predicate()
        if got:
            return got
        time.sleep(0.05)
    tail = ""
    if proc is not None:
        from support import output

        tail = "\n" + "\n".join(output(proc).splitlines()[-40:])
    raise AssertionError(f"timed out waiting for {what}{tail}")


def patient_echo(c) -> None:
    """proxy_support's echo without its read timeout: these tests hold tunnels idle for long."""
    from proxy_support import echo

    c.settimeout(None)
    echo(c)


def start_workers(procs, *args: str, workers: int | None = 2, timeout: float = 30.0):
    """A supervisor (``--workers`` unless None: then one worker, as -R alone runs) once its
    workers serve; (the process, its worker pids)."""
    from support import output

    flag = ["--workers", str(workers)] if workers is not None else []
    sup = procs.gostfast(*flag, *args)
    wait_for(
        lambda: "workers serving" in output(sup) or sup.poll() is not None,
        timeout,
        "the workers to listen",
        proc=sup,
    )
    assert sup.poll() is None, output(sup)
    pids = children(sup.pid)
    assert len(pids) == (workers or 1), (pids, output(sup))
    return sup, pids


def forward_service(
    name: str, port: int, target: int, listener: str = "tcp", extra: str = ""
) -> str:
    """One GOST YAML service (a list item) forwarding ``listener`` on ``port`` to ``target``."""
    handler = "tcp" if listener == "tcp" else "forward"
    return (
        f"- name: {name}\n  addr: 127.0.0.1:{port}\n{extra}"
        f"  handler: {{type: {handler}}}\n  listener: {{type: {listener}}}\n"
        f"  forwarder: {{nodes: [{{name: t, addr: '127.0.0.1:{target}'}}]}}\n"
    )


def smux_frame(cmd: int, sid: int, data: bytes = b"") -> bytes:
    return struct.pack("<BBHI", 1, cmd, len(data), sid) + data


class _Websocket:
    """One websocket (one TCP connection) to ``/ws`` on the port, by the websockets library."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        from websockets.sync.client import connect

        self.ws = connect(f"ws://127.0.0.1:{port}/ws", open_timeout=timeout, close_timeout=2)
        self.ws.__enter__()
        self.timeout = timeout
        self._buf = b""

    def close(self) -> None:
        self.ws.close()


class MWSClient(_Websocket):
    """One mws session (one TCP connection) with one smux stream (sid 1) to the server."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        super().__init__(port, timeout)
        self.ws.send(smux_frame(SMUX_SYN, 1))

    def send(self, data: bytes) -> None:
        self.ws.send(smux_frame(SMUX_PSH, 1, data))

    def recv_exact(self, n: int) -> bytes:
        """``n`` payload bytes of stream 1 (other frames, e.g. NOP or window updates, skipped)."""
        got = b""
        while len(got) < n:
            while (
                len(self._buf) < 8 or len(self._buf) < 8 + struct.unpack_from("<H", self._buf, 2)[0]
            ):
                self._buf += self.ws.recv(timeout=self.timeout)
            _, cmd, length, sid = struct.unpack_from("<BBHI", self._buf)
            body, self._buf = self._buf[8 : 8 + length], self._buf[8 + length :]
            if cmd == SMUX_PSH and sid == 1:
                got += body
            elif cmd == SMUX_FIN and sid == 1:
                raise ConnectionError("stream closed by the server")
        return got

    def echo(self, data: bytes) -> bytes:
        self.send(data)
        return self.recv_exact(len(data))


class WSClient(_Websocket):
    """One ws tunnel (one TCP connection) to a forward service."""

    def echo(self, data: bytes) -> bytes:
        self.ws.send(data)
        while len(self._buf) < len(data):
            self._buf += self.ws.recv(timeout=self.timeout)
        got, self._buf = self._buf[: len(data)], self._buf[len(data) :]
        return got
