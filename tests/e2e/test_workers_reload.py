"""Zero-downtime reload under --workers 2: SIGHUP, GOST's -R period, and broken files.

A client keeps a large transfer and 20 idle ws tunnels open while the
configuration changes under it: one service added, one removed, one sent to
a new forward target. Open tunnels stay on the old workers, which drain;
new connections go to the new workers; 1000 connects made across the
reload must all succeed. Real processes, sockets and signals throughout.
"""

from __future__ import annotations

import hashlib
import signal
import socket
import threading

import pytest
from proxy_support import TCPServer, recv_exactly
from support import free_port, is_listening, output
from workers_support import (
    WSClient,
    children,
    forward_service,
    patient_echo,
    start_workers,
    wait_for,
)

CONNECTS = 1000
BLOCK = 1 << 20


def _tagged(tag: bytes):
    def serve(c: socket.socket) -> None:
        c.sendall(tag)
        patient_echo(c)

    return serve


def _block(i: int) -> bytes:
    return hashlib.sha256(b"%d" % i).digest() * (BLOCK // 32)


class Transfer(threading.Thread):
    """Sends ``size`` bytes through the tunnel and reads them back; pauses at half way
    until ``resume`` is set, so the transfer spans the reload whatever the speed."""

    def __init__(self, port: int, size: int) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.blocks = size // BLOCK
        self.halfway = threading.Event()
        self.resume = threading.Event()
        self.sent = hashlib.sha256()
        self.got = hashlib.sha256()
        self.received = 0
        self.error: Exception | None = None

    def run(self) -> None:
        reader = threading.Thread(target=self._read, daemon=True)
        reader.start()
        try:
            for i in range(self.blocks):
                if i == self.blocks // 2:
                    self.halfway.set()
                    self.resume.wait(120)
                b = _block(i)
                self.sent.update(b)
                self.sock.sendall(b)
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            self.error = exc
        reader.join(300)

    def _read(self) -> None:
        try:
            while self.received < self.blocks * BLOCK:
                b = self.sock.recv(1 << 18)
                if not b:
                    break
                self.got.update(b)
                self.received += len(b)
        except OSError as exc:
            self.error = exc


class Connects(threading.Thread):
    """Connects and echoes one byte, again and again, until told to stop (and CONNECTS made)."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.done = threading.Event()
        self.made = 0
        self.failed: list[str] = []

    def run(self) -> None:
        while not (self.done.is_set() and self.made >= CONNECTS):
            self.made += 1
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
                    s.sendall(b"c")
                    if recv_exactly(s, 1) != b"c":
                        self.failed.append("no echo")
            except (OSError, AssertionError) as exc:  # EOF too: a failure to count, not a crash
                self.failed.append(repr(exc))


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(16 << 20, id="16MiB"),
        pytest.param(256 << 20, id="256MiB", marks=pytest.mark.slow),
    ],
)
def test_sighup_reload_keeps_open_tunnels_and_refuses_no_connection(procs, tmp_path, size) -> None:
    ports = {k: free_port() for k in ("tcp", "ws", "gone", "moved", "added")}
    with TCPServer(patient_echo) as e, TCPServer(_tagged(b"A")) as a, TCPServer(_tagged(b"B")) as b:
        cfg = tmp_path / "gost.yaml"
        kept = forward_service("keep-tcp", ports["tcp"], e.port) + forward_service(
            "keep-ws", ports["ws"], e.port, "ws"
        )
        cfg.write_text(
            "services:\n"
            + kept
            + forward_service("gone", ports["gone"], e.port)
            + forward_service("moved", ports["moved"], a.port)
        )
        sup, pids = start_workers(procs, "--grace", "120", "-C", str(cfg))
        old = set(pids)

        idle = [WSClient(ports["ws"]) for _ in range(20)]
        assert all(c.echo(b"idle") == b"idle" for c in idle)
        with socket.create_connection(("127.0.0.1", ports["moved"]), timeout=10) as s:
            assert recv_exactly(s, 1) == b"A"
        transfer = Transfer(ports["tcp"], size)
        transfer.start()
        assert transfer.halfway.wait(60)
        connects = Connects(ports["tcp"])
        connects.start()

        cfg.write_text(
            "services:\n"
            + kept
            + forward_service("moved", ports["moved"], b.port)
            + forward_service("added", ports["added"], e.port)
        )
        before = connects.made
        sup.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload (SIGHUP): 4 services" in output(sup), 60, "the reload", proc=sup)
        # ...and until both old workers have closed their listeners (they log the drain)
        wait_for(
            lambda: output(sup).count("stopping: waiting up to") >= 2,
            60,
            "the old workers",
            proc=sup,
        )
        # more reloads back to back, each a full hand-over, until CONNECTS were made
        # while one was under way
        reloads = 1
        while connects.made - before < CONNECTS:
            current = set(children(sup.pid))
            sup.send_signal(signal.SIGHUP)
            reloads += 1
            wait_for(
                lambda n=reloads: output(sup).count("reload (SIGHUP): 4 services") >= n,
                60,
                "a reload",
                proc=sup,
            )
            wait_for(
                lambda c=current - old: not (c & set(children(sup.pid))),
                60,
                "old workers to end",
                proc=sup,
            )
        during = connects.made - before
        connects.done.set()
        transfer.resume.set()
        connects.join(120)
        assert connects.failed == [], (len(connects.failed), connects.failed[:5])
        assert during >= CONNECTS
        assert len(set(children(sup.pid)) - old) == 2, output(sup)

        # the added service answers, the removed one refuses, the moved one has its new target
        with socket.create_connection(("127.0.0.1", ports["added"]), timeout=10) as s:
            s.sendall(b"new")
            assert recv_exactly(s, 3) == b"new"
        wait_for(lambda: not is_listening(ports["gone"]), 30, "the removed service to close")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", ports["gone"]), timeout=10)

        def tag() -> bytes:
            with socket.create_connection(("127.0.0.1", ports["moved"]), timeout=10) as s:
                return recv_exactly(s, 1)

        wait_for(lambda: tag() == b"B", 30, "the new forward target")
        assert {tag() for _ in range(20)} == {b"B"}

        # open tunnels lived through it: the transfer byte-exact, the idle ones usable
        transfer.join(300)
        assert transfer.error is None, transfer.error
        assert transfer.received == transfer.blocks * BLOCK
        assert transfer.got.digest() == transfer.sent.digest()
        assert all(c.echo(b"still") == b"still" for c in idle)
        print(
            f"reload: {during} connects during {reloads} reloads, 0 failed; "
            f"{size >> 20} MiB byte-exact"
        )

        # a broken file changes nothing and says why, with the YAML path
        serving = set(children(sup.pid))
        for text, why in (
            ("services: [", "invalid YAML"),
            (
                "services:\n" + kept + forward_service("bad", ports["added"], e.port, "wsx"),
                "services[2].listener.type: unknown listener 'wsx'",
            ),
        ):
            cfg.write_text(text)
            sup.send_signal(signal.SIGHUP)
            wait_for(lambda why=why: why in output(sup), 30, f"the reload error {why!r}", proc=sup)
            assert f"of {cfg}: " in output(sup)
        assert output(sup).count("the running configuration is unchanged") == 2
        assert set(children(sup.pid)) == serving
        assert tag() == b"B"
        for c in idle:
            c.close()
        # the old workers end once their last tunnel has
        wait_for(lambda: not (old & set(children(sup.pid))), 30, "the old workers to end", proc=sup)
        sup.send_signal(signal.SIGTERM)
        assert sup.wait(30) == 0, output(sup)


def test_dash_r_reloads_the_file_every_period(procs, tmp_path) -> None:
    ports = {k: free_port() for k in ("a", "b")}
    with TCPServer(patient_echo) as e:
        cfg = tmp_path / "gost.yaml"
        cfg.write_text("services:\n" + forward_service("a", ports["a"], e.port))
        sup, _ = start_workers(procs, "-R", "1s", "-C", str(cfg))
        cfg.write_text(
            "services:\n"
            + forward_service("a", ports["a"], e.port)
            + forward_service("b", ports["b"], e.port)
        )
        wait_for(
            lambda: "reload (every -R period): 2 services" in output(sup), 30, "-R reload", proc=sup
        )
        with socket.create_connection(("127.0.0.1", ports["b"]), timeout=10) as s:
            s.sendall(b"r")
            assert recv_exactly(s, 1) == b"r"
        sup.send_signal(signal.SIGTERM)
        assert sup.wait(30) == 0


def test_dash_r_with_one_worker_runs_the_supervisor(procs, tmp_path) -> None:
    port = free_port()
    with TCPServer(patient_echo) as e:
        cfg = tmp_path / "gost.yaml"
        cfg.write_text("services:\n" + forward_service("a", port, e.port))
        sup, _ = start_workers(procs, "-R", "1m", "-C", str(cfg), workers=None)
        assert "1 workers serving" in output(sup)
        sup.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload (SIGHUP): 1 services" in output(sup), 30, "the reload", proc=sup)
        sup.send_signal(signal.SIGTERM)
        assert sup.wait(30) == 0
