"""``--workers 2`` with real processes: the spread over workers, a killed worker, signals, bind errors.

A forward service on ws and one on mws pipe to a TCP echo server; the
``websockets`` library plays the clients (mws with hand-written smux frames,
tests/workers_support.py). Which worker serves a connection is read from
/proc, never asked over the network.
"""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest
from proxy_support import TCPServer
from support import free_port, is_listening, output
from workers_support import (
    MWSClient,
    WSClient,
    children,
    connections_by_pid,
    forward_service,
    patient_echo,
    start_workers,
    wait_for,
)

CLIENTS = 200
START_TIMEOUT = 30.0


@pytest.fixture
def target():
    with TCPServer(patient_echo) as t:
        yield t


def test_connections_spread_over_both_workers_and_a_killed_worker_is_replaced(
    procs, target
) -> None:
    ws_port, mws_port = free_port(), free_port()
    sup, pids = start_workers(
        procs,
        "-L",
        f"ws://127.0.0.1:{ws_port}/127.0.0.1:{target.port}",
        "-L",
        f"mws://127.0.0.1:{mws_port}/127.0.0.1:{target.port}",
    )
    clients = {"ws": [], "mws": []}
    try:
        for i in range(CLIENTS):
            for kind, make, port in (("ws", WSClient, ws_port), ("mws", MWSClient, mws_port)):
                c = make(port)
                assert c.echo(b"hello %d" % i) == b"hello %d" % i
                clients[kind].append(c)
        split = {
            kind: connections_by_pid(port, pids)
            for kind, port in (("ws", ws_port), ("mws", mws_port))
        }
        print(f"split over workers {pids}: {split}")
        for kind, counts in split.items():
            assert sum(counts.values()) == CLIENTS, (kind, counts)
            assert all(counts.get(pid, 0) > 0 for pid in pids), (kind, counts)

        # kill -9 one worker: its tunnels end, the others carry on
        victim = pids[0]
        mine = {
            kind: connections_by_pid(port, [victim]).get(victim, 0)
            for kind, port in (("ws", ws_port), ("mws", mws_port))
        }
        os.kill(victim, signal.SIGKILL)
        failures = 0
        connects = 0
        end = time.monotonic() + 3.0
        # new connections keep succeeding while the supervisor replaces the worker
        while time.monotonic() < end or len(children(sup.pid)) < 2 or victim in children(sup.pid):
            for make, port in ((WSClient, ws_port), (MWSClient, mws_port)):
                connects += 1
                try:
                    c = make(port)
                    ok = c.echo(b"new") == b"new"
                    c.close()
                except Exception:
                    ok = False
                failures += not ok
            assert time.monotonic() < end + START_TIMEOUT, output(sup)
        assert failures == 0, f"{failures} of {connects} new connections failed"
        ended = {"ws": 0, "mws": 0}
        for kind, cs in clients.items():
            for c in cs:
                try:
                    assert c.echo(b"still") == b"still"
                except Exception:
                    ended[kind] += 1
        print(f"after kill -9 of {victim}: {connects} new connections, 0 failed; ended {ended}")
        assert ended == mine, (ended, mine)
        new_pids = children(sup.pid)
        assert victim not in new_pids and len(new_pids) == 2
        log = output(sup)
        assert f"worker {victim} (slot 0) killed by signal 9 (SIGKILL)" in log, log
        assert "restarting in" in log
    finally:
        for cs in clients.values():
            for c in cs:
                c.close()


def test_every_log_line_names_its_process(procs, target) -> None:
    port = free_port()
    sup, pids = start_workers(procs, "-L", f"ws://127.0.0.1:{port}/127.0.0.1:{target.port}")
    sup.send_signal(signal.SIGTERM)
    assert sup.wait(20) == 0
    lines = [line for line in output(sup).splitlines() if line.strip()]
    seen = set()
    for line in lines:
        pid = int(line.split("[", 1)[1].split("]", 1)[0])
        seen.add(pid)
    assert seen == {sup.pid, *pids}, lines


def test_sigterm_lets_open_tunnels_drain_then_stops_every_worker(procs, target) -> None:
    port = free_port()
    sup, pids = start_workers(
        procs, "--grace", "20", "-L", f"ws://127.0.0.1:{port}/127.0.0.1:{target.port}"
    )
    c = WSClient(port)
    assert c.echo(b"before") == b"before"
    sup.send_signal(signal.SIGTERM)
    wait_for(lambda: not is_listening(port), 10, "the listeners to close")
    assert c.echo(b"draining") == b"draining"  # an open tunnel outlives the stop signal
    c.close()
    assert sup.wait(20) == 0, output(sup)
    for pid in pids:
        assert (
            not os.path.exists(f"/proc/{pid}/status")
            or "Z" in open(f"/proc/{pid}/stat").read().split()[2]
        )


def test_a_held_address_is_reported_once_and_nothing_keeps_running(procs) -> None:
    held, free = socket.socket(), free_port()
    held.bind(("127.0.0.1", 0))
    held.listen(1)
    port = held.getsockname()[1]
    try:
        sup = procs.gostfast(
            "--workers", "2", "-L", f"ws://127.0.0.1:{free}", "-L", f"ws://127.0.0.1:{port}"
        )
        assert sup.wait(20) == 1
        log = output(sup)
        assert log.count("cannot listen on") == 1, log
        assert f"service-1: cannot listen on 127.0.0.1:{port}: Address already in use" in log
        assert not is_listening(free)
    finally:
        held.close()


def test_two_supervisors_cannot_share_an_address(procs) -> None:
    port = free_port()
    first, _ = start_workers(procs, "-L", f"ws://127.0.0.1:{port}")
    second = procs.gostfast("--workers", "2", "-L", f"ws://127.0.0.1:{port}")
    assert second.wait(20) == 1
    assert "cannot listen on" in output(second) and "Address already in use" in output(second)
    assert first.poll() is None


def test_a_worker_that_cannot_start_its_services_stops_the_supervisor(procs, tmp_path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    port = free_port()
    sup = procs.gostfast(
        "--workers", "2", "-L", f"wss://127.0.0.1:{port}?certFile={bad}&keyFile={bad}"
    )
    assert sup.wait(30) == 1, output(sup)
    log = output(sup)
    assert "no PEM CERTIFICATE block found" in log
    assert "could not start its services" in log
    assert not is_listening(port)


def _served(port: int, source: str = "127.0.0.1") -> socket.socket | None:
    """A connection that got its byte echoed (held open), or None when it was closed unserved."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    try:
        s.sendall(b"x")
        if s.recv(1) == b"x":
            return s
    except OSError:
        pass
    s.close()
    return None


def test_climiter_dollar_10_admits_10_in_total_over_two_workers(procs, target) -> None:
    port = free_port()
    sup, pids = start_workers(
        procs, "-L", f"tcp://127.0.0.1:{port}/127.0.0.1:{target.port}?climiter=10"
    )
    held = [s for s in (_served(port) for _ in range(40)) if s is not None]
    try:
        assert len(held) == 10, len(held)  # one worker alone would take 10: 20 in all
        split = connections_by_pid(port, pids)
        print(f"climiter $ 10 over workers {pids}: {split}")
        # slots freed by one worker are taken through the other: close 5, 5 more get in
        for s in held[:5]:
            s.close()
        del held[:5]
        more = wait_for(
            lambda: [s for s in (_served(port) for _ in range(5)) if s is not None] or None,
            10,
            "freed slots",
        )
        held += more
        held += [s for s in (_served(port) for _ in range(20)) if s is not None]
        assert len(held) == 10, len(held)
        # a worker killed with slots taken gives them back (its connections died with it)
        victim = max(pids, key=lambda pid: connections_by_pid(port, [pid]).get(pid, 0))
        lost = connections_by_pid(port, [victim]).get(victim, 0)
        assert lost > 0
        os.kill(victim, signal.SIGKILL)
        wait_for(
            lambda: len(children(sup.pid)) == 2 and victim not in children(sup.pid),
            20,
            "a new worker",
            proc=sup,
        )
        alive = []
        for s in held:
            try:
                s.sendall(b"y")
                if s.recv(1) == b"y":
                    alive.append(s)
                    continue
            except OSError:
                pass
            s.close()
        held = alive
        assert len(held) == 10 - lost
        held += [s for s in (_served(port) for _ in range(3 * lost)) if s is not None]
        assert len(held) == 10, len(held)
    finally:
        for s in held:
            s.close()


def test_rlimiter_is_one_bucket_for_the_gateway(procs, target) -> None:
    port = free_port()
    sup, pids = start_workers(
        procs, "-L", f"tcp://127.0.0.1:{port}/127.0.0.1:{target.port}?rlimiter=1"
    )
    began = time.monotonic()
    served = [s for s in (_served(port) for _ in range(30)) if s is not None]
    elapsed = time.monotonic() - began
    for s in served:
        s.close()
    # GOST's bucket: burst 2, then 1 a second; one bucket per worker would let 4+ through
    assert 2 <= len(served) <= 2 + int(elapsed) + 1, (len(served), elapsed)


def test_per_ip_climiter_holds_per_client_over_two_workers(procs, target, tmp_path) -> None:
    port = free_port()
    cfg = tmp_path / "gost.yaml"
    cfg.write_text(
        "climiters: [{name: per-ip, limits: ['$$ 3']}]\nservices:\n"
        + forward_service("a", port, target.port, extra="  climiter: per-ip\n")
    )
    sup, pids = start_workers(procs, "-C", str(cfg))
    held = []
    try:
        for source in ("127.0.0.1", "127.0.0.2"):
            mine = [s for s in (_served(port, source) for _ in range(20)) if s is not None]
            assert len(mine) == 3, (source, len(mine))  # not 3 per worker
            held += mine
        print(f"$$ 3 over workers {pids}: {connections_by_pid(port, pids)}")
    finally:
        for s in held:
            s.close()


def test_json_log_lines_carry_the_pid(procs, target, tmp_path) -> None:
    import json

    port = free_port()
    cfg = tmp_path / "gost.yaml"
    cfg.write_text("log: {format: json}\nservices:\n" + forward_service("a", port, target.port))
    sup, pids = start_workers(procs, "-C", str(cfg))
    sup.send_signal(signal.SIGTERM)
    assert sup.wait(20) == 0
    entries = [json.loads(line) for line in output(sup).splitlines() if line.strip()]
    assert {e["pid"] for e in entries} == {sup.pid, *pids}, entries


def test_workers_end_when_the_supervisor_is_killed(procs, target) -> None:
    port = free_port()
    sup, pids = start_workers(procs, "-L", f"ws://127.0.0.1:{port}/127.0.0.1:{target.port}")
    sup.send_signal(signal.SIGKILL)
    sup.wait(10)

    def gone(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            return True

    wait_for(lambda: all(gone(pid) for pid in pids), 20, "the orphaned workers to end")
    assert not is_listening(port)
