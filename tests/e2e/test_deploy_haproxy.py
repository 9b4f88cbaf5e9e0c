"""docs/deploy.md's HAProxy (TCP mode) in front of two gostfast instances: one dies, clients move.

Two gostfast processes run the documented gost.yaml, each forwarding to its own
target, which first sends the instance's letter and then echoes; HAProxy
(Debian's) runs the documented block in front of both. Clients: a gostfast
mws client (one smux session, every tunnel a stream of it), a gostfast ws
client (a websocket per tunnel) and the ``websockets`` library. Then the
instance holding the mws session is killed (SIGKILL: its sockets close) or
hung (SIGSTOP: nothing closes, nothing answers). Its tunnels end, the mws
session notices (the connection's end, or smux's keepalive when nothing
ends) and every new connection goes to the other instance, byte for byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
from deploy_support import HAProxy, doc_block, fill
from proxy_support import TCPServer
from support import Procs, free_port, output, recv_exact, wait_port
from workers_support import wait_for

IO_TIMEOUT = 20.0
WAIT = 60.0  # the longest any awaited event may take on a loaded machine
NOWHERE = "127.0.0.1:9"  # the forward connector never dials the entry's own target


def _tagged_echo(tag: bytes):
    def serve(c: socket.socket) -> None:
        c.settimeout(3 * WAIT)  # TCPServer's 10 s is shorter than the test's idle waits
        c.sendall(tag)
        while b := c.recv(65536):
            c.sendall(b)
        c.shutdown(socket.SHUT_WR)

    return serve


class Fleet:
    """Two gostfast instances ("A", "B") behind HAProxy, and two gostfast clients."""

    def __init__(self, work: Path, procs: Procs) -> None:
        self.procs = procs
        names = ("A", "B")
        self.targets = {n: TCPServer(_tagged_echo(n.encode())) for n in names}
        self.ports = {f"{n}_{k}": free_port() for n in names for k in ("ws", "mws")}
        self.ports.update(lb_ws=free_port(), lb_mws=free_port())
        p = self.ports
        self.instances = {}
        for n in names:
            conf = work / f"gost-{n}.yaml"
            conf.write_text(
                fill(
                    doc_block("gost.yaml"),
                    {
                        "127.0.0.1:8080": f"127.0.0.1:{p[n + '_ws']}",
                        "127.0.0.1:8081": f"127.0.0.1:{p[n + '_mws']}",
                        "127.0.0.1:22": f"127.0.0.1:{self.targets[n].port}",
                    },
                )
            )
            # a long grace: a drained instance must outlive the test's checks, however slow
            self.instances[n] = procs.gostfast("-C", str(conf), "--grace", str(WAIT))
        for n in names:
            for k in ("ws", "mws"):
                wait_port(p[f"{n}_{k}"], proc=self.instances[n])
        lb = fill(
            doc_block("haproxy.cfg"),
            {
                "bind :8080": f"bind 127.0.0.1:{p['lb_ws']}",
                "bind :8081": f"bind 127.0.0.1:{p['lb_mws']}",
                "server gf1 10.0.0.11:8080 port 8081": (
                    f"server gf1 127.0.0.1:{p['A_ws']} port {p['A_mws']}"
                ),
                "server gf2 10.0.0.12:8080 port 8081": (
                    f"server gf2 127.0.0.1:{p['B_ws']} port {p['B_mws']}"
                ),
                "server gf1 10.0.0.11:8081": f"server gf1 127.0.0.1:{p['A_mws']}",
                "server gf2 10.0.0.12:8081": f"server gf2 127.0.0.1:{p['B_mws']}",
            },
        )
        self.haproxy = HAProxy(procs, work, lb, [p["lb_ws"], p["lb_mws"]])
        self.server_name = {"A": "gf1", "B": "gf2"}
        # the clients' keepalives are short so that a silent death is noticed quickly;
        # an smux timeout must exceed the far end's NOP period (the listener's 10 s)
        mux = "mux.keepaliveInterval=2s&mux.keepaliveTimeout=11s"
        self.mws_entry, self.mws_client = self._client(
            f"mws://127.0.0.1:{p['lb_mws']}?path=/mws&{mux}"
        )
        ws_node = f"ws://127.0.0.1:{p['lb_ws']}?path=/ws&keepalive=true&ttl=1s"
        self.ws_entry, self.ws_client = self._client(ws_node)

    def _client(self, node: str) -> tuple[int, subprocess.Popen]:
        """A gostfast client: a tcp entry (its port) forwarding into ``node``."""
        entry = free_port()
        proc = self.procs.gostfast(
            "-L", f"tcp://127.0.0.1:{entry}/{NOWHERE}", "-F", f"forward+{node}", wait_ports=[entry]
        )
        return entry, proc

    def haproxy_says(self, text: str) -> None:
        """Wait until HAProxy logged ``text`` (it logs each server state change)."""
        wait_for(lambda: text in self.haproxy.log(), WAIT, f"HAProxy logs {text!r}")

    def close(self) -> None:
        self.haproxy.stop()
        self.procs.stop_all()
        for t in self.targets.values():
            t.close()


@pytest.fixture
def fleet():
    work = Path(tempfile.mkdtemp(prefix="gostfast-deploy-haproxy-"))
    procs = Procs()
    f = None
    try:
        f = Fleet(work, procs)
        yield f
    finally:
        if f is not None:
            f.close()
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)


class Tunnel:
    """One client connection through a gostfast client: the instance's letter, then echo."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), IO_TIMEOUT)
        self.sock.settimeout(IO_TIMEOUT)
        self.instance = recv_exact(self.sock, 1).decode()
        assert self.instance in ("A", "B"), f"no instance letter: {self.instance!r}"

    def echo(self, size: int) -> None:
        data = os.urandom(size)
        sender = threading.Thread(target=self.sock.sendall, args=(data,), daemon=True)
        sender.start()
        got = recv_exact(self.sock, size)
        sender.join(IO_TIMEOUT)
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()

    def ended(self, timeout: float = WAIT) -> bool:
        """True once the tunnel reads EOF or a reset (what arrives meanwhile is dropped)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.sock.settimeout(max(0.1, end - time.monotonic()))
            try:
                if not self.sock.recv(65536):
                    return True
            except (ConnectionResetError, BrokenPipeError):
                return True
            except TimeoutError:
                return False
        return False

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


async def _ws_instance(port: int, payload: bytes) -> tuple[str, bytes]:
    """Through HAProxy straight to a ws listener with ``websockets``: (letter, echo)."""
    from websockets.asyncio.client import connect

    async with connect(f"ws://127.0.0.1:{port}/ws", close_timeout=5, max_size=None) as ws:
        got = b""
        await ws.send(payload)
        while len(got) < 1 + len(payload):
            got += await asyncio.wait_for(ws.recv(), IO_TIMEOUT)
    return got[:1].decode(), got[1:]


def _ws_library_roundtrip(fleet: Fleet) -> str:
    payload = os.urandom(100_000)
    instance, echoed = asyncio.run(_ws_instance(fleet.ports["lb_ws"], payload))
    assert echoed == payload
    return instance


SIGNALS = {"killed": signal.SIGKILL, "stopped": signal.SIGTERM, "hung": signal.SIGSTOP}


@pytest.mark.parametrize("how", list(SIGNALS))
def test_when_an_instance_dies_every_client_moves_to_the_other(fleet, how):
    # the mws session: every tunnel through the mws client is a stream of it
    before = [Tunnel(fleet.mws_entry) for _ in range(3)]
    for t in before:
        t.echo(256 * 1024)
    (victim,) = {t.instance for t in before}
    survivor = "B" if victim == "A" else "A"
    # ws clients: leastconn spreads websockets over both instances
    ws_before = [Tunnel(fleet.ws_entry) for _ in range(4)]
    assert {t.instance for t in ws_before} == {"A", "B"}
    for t in ws_before:
        t.echo(64 * 1024)
    lib_seen = {_ws_library_roundtrip(fleet) for _ in range(2)}
    assert lib_seen <= {"A", "B"}

    gone = fleet.instances[victim]
    started = time.monotonic()
    gone.send_signal(SIGNALS[how])
    ws_on_victim = [t for t in ws_before if t.instance == victim]
    on_victim = before + ws_on_victim
    if how == "stopped":
        # a drain: its open tunnels go on (for --grace); the mws client's end here,
        # the ws ones stay open, so the instance is still running, draining, below
        for t in on_victim:
            t.echo(64 * 1024)
        for t in before:
            t.close()
    else:
        # its tunnels end: by the closed connections (killed) or the keepalives (hung)
        for t in on_victim:
            assert t.ended(), f"a tunnel through the {how} instance {victim} stayed open"
    # the mws client noticed: its connection ended (killed; stopped: the draining
    # instance ends an mws session once it is idle) or went silent (hung)
    log = lambda: output(fleet.mws_client)  # noqa: E731
    wait_for(
        lambda: "mws session to" in log() and ("ended" in log() or "keepalive timeout" in log()),
        WAIT,
        "the mws client's session ends",
        fleet.mws_client,
    )
    noticed = time.monotonic() - started
    if how == "hung":
        assert "keepalive timeout" in log(), log()
        # the hung instance still completes TCP handshakes: HAProxy must have
        # failed its checks first, or new connections would wait on it
        for backend in ("gostfast_ws", "gostfast_mws"):
            fleet.haproxy_says(f"Server {backend}/{fleet.server_name[victim]} is DOWN")
    # every new connection, from every client, goes to the survivor, byte for byte
    after = [Tunnel(fleet.mws_entry) for _ in range(3)] + [Tunnel(fleet.ws_entry) for _ in range(3)]
    for t in after:
        assert t.instance == survivor
        t.echo(256 * 1024)
    assert {_ws_library_roundtrip(fleet) for _ in range(2)} == {survivor}
    # HAProxy marks it down once its check fails twice
    for backend in ("gostfast_ws", "gostfast_mws"):
        fleet.haproxy_says(f"Server {backend}/{fleet.server_name[victim]} is DOWN")
    moved = time.monotonic() - started
    # the survivor's tunnels opened before the death were never touched; a drained
    # instance's still run
    for t in ws_before:
        if t.instance == survivor or how == "stopped":
            t.echo(64 * 1024)
    print(
        f"\n{how}: mws session ended after {noticed:.2f}s, all clients on {survivor} "
        f"after {moved:.2f}s"
    )
    for t in before + ws_before + after:
        t.close()
    if how == "stopped":  # drained: it exits by itself, as a stop should
        assert gone.wait(WAIT) == 0, output(gone)
    assert fleet.instances[survivor].poll() is None, output(fleet.instances[survivor])
