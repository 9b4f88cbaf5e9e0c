#!/usr/bin/env python3
"""--workers: how connections spread over workers, and what 2 workers buy on the server side.

``spread``: two worker processes accept on one port while ``refpeer rps``
(128 ping-pong clients, then 32 connectors) loads it, each way the
supervisor could share the port: ``inherited`` (one listening socket, bound
once, served by both) and ``reuseport`` (one SO_REUSEPORT socket per worker,
what gostfast's supervisor does). Each worker counts what it accepted.

``capacity``: the server side alone. A Go load client (``refpeer rps``) ->
refpeer's ws/mws client -> the server under test -> a Go echo: gostfast with
``--workers 1``, with ``--workers 2``, and refpeer's server, interleaved in
one run; requests/s at 128 clients and new connections/s at 32 connectors,
each the median of the rounds, on freshly started processes.

    python bench/workers.py spread [--seconds 2]
    python bench/workers.py capacity [--rounds 3] [--seconds 2] [--modes ws,mws]
    python bench/workers.py ceiling [--seconds 4] [--modes ws,mws]

``ceiling``: what N workers *could* buy on this machine at most. With one
worker it reads the CPU time every process of the capacity topology spends
per request (and per new connection): the server (c_s) and all the rest,
the Go load client, refpeer's client and the echo (c_o). n cores serve at
most n / (c_s + c_o) requests/s, one worker at most 1 / c_s, k workers
k / c_s, so k workers can gain at most
min(k / c_s, n / (c_s + c_o)) / min(1 / c_s, n / (c_s + c_o)) over one:
when the load generator lives on the same small machine, that ceiling, not
gostfast, bounds the scaling factor. refpeer's server is measured the same
way, for its c_s next to gostfast's.

Numbers on a shared or small machine move with whatever else runs: read
them as a same-run comparison, not as absolutes.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import sys

from tunnel import GOSTFAST, Runner, Topology, find_refpeer, free_port, refpeer_pair


def _child_accept(sock: socket.socket, report_w: int) -> None:
    import asyncio

    import uvloop

    accepted = 0

    class Echo(asyncio.Protocol):
        def connection_made(self, transport) -> None:
            nonlocal accepted
            accepted += 1
            self.t = transport

        def data_received(self, data: bytes) -> None:
            self.t.write(data)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        server = await loop.create_server(Echo, sock=sock, backlog=4096)
        await stop.wait()
        server.close()

    uvloop.run(main())
    os.write(report_w, b"%d\n" % accepted)
    os._exit(0)


def spread(refpeer: str, seconds: float) -> None:
    for mode in ("inherited", "reuseport"):
        port = free_port()
        socks = []
        for i in range(2):
            if mode == "inherited" and i:
                socks.append(socks[0])
                continue
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if mode == "reuseport":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind(("127.0.0.1", port))
            s.listen(4096)
            s.setblocking(False)
            socks.append(s)
        pipes, pids = [], []
        for s in socks:
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(r)
                _child_accept(s, w)
            os.close(w)
            pipes.append(r)
            pids.append(pid)
        for s in {id(s): s for s in socks}.values():
            s.close()
        runner = Runner(refpeer)
        line = {
            n: runner.load(
                ["rps", "-server", f"127.0.0.1:{port}", "-seconds", str(seconds), "-conns", str(n)]
            )
            for n in (128, 32)
        }
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
        counts = []
        for pid, r in zip(pids, pipes, strict=True):
            os.waitpid(pid, 0)
            counts.append(int(os.read(r, 64).decode().strip() or 0))
            os.close(r)
        total = sum(counts)
        print(
            f"{mode:<10} accepted per worker {counts} (larger share "
            f"{max(counts) / total:.0%}); load: {line[128]} | {line[32]}",
            flush=True,
        )


def _servers(refpeer: str, mode: str) -> list[Topology]:
    client, rp = refpeer_pair(refpeer, mode)
    gostfast = [*GOSTFAST, "-L", f"{mode}://127.0.0.1:{{B}}/127.0.0.1:{{echo}}"]
    return [
        Topology(f"gostfast {mode} --workers 1", [client, [*gostfast, "--workers", "1"]], "A", ["A", "B"]),
        Topology(f"gostfast {mode} --workers 2", [client, [*gostfast, "--workers", "2"]], "A", ["A", "B"]),
        Topology(f"refpeer {mode} server", [client, rp], "A", ["A", "B"]),
    ]  # fmt: skip


def capacity(refpeer: str, rounds: int, seconds: float, modes: list[str]) -> None:
    runner = Runner(refpeer)
    runner.start_echo()

    def metric(topo: Topology, conns: int, key: str) -> float:
        entry, ps = runner.start(topo)
        try:
            line = runner.load(
                ["rps", "-server", f"127.0.0.1:{entry}", "-seconds", str(seconds),
                 "-conns", str(conns), "-size", "64"]
            )  # fmt: skip
        finally:
            runner.stop(ps)
        return float(re.search(rf"{key}=([\d.]+)", line).group(1))

    try:
        for mode in modes:
            topos = _servers(refpeer, mode)
            got: dict[str, dict[str, list[float]]] = {
                t.label: {"rps": [], "conn": []} for t in topos
            }
            for rnd in range(rounds):
                for t in topos:  # interleaved: every server once per round
                    got[t.label]["rps"].append(metric(t, 128, "rps"))
                    got[t.label]["conn"].append(metric(t, 32, "conn_per_s"))
                    print(f"round {rnd + 1} {t.label:<30} rps@128 {got[t.label]['rps'][-1]:>8.0f}  "
                          f"conn/s@32 {got[t.label]['conn'][-1]:>7.0f}", flush=True)  # fmt: skip
            med = {
                label: {k: statistics.median(v) for k, v in d.items()} for label, d in got.items()
            }
            w1, w2, rp = (med[t.label] for t in topos)
            for k, what in (
                ("rps", "requests/s at 128 clients"),
                ("conn", "new connections/s at 32"),
            ):
                print(
                    f"{mode} {what}: workers 1 {w1[k]:.0f}, workers 2 {w2[k]:.0f}, refpeer {rp[k]:.0f}; "
                    f"2 vs 1 = {w2[k] / w1[k]:.2f}x, 2 vs refpeer = {w2[k] / rp[k]:.2f}x",
                    flush=True,
                )
    finally:
        runner.close()


def _cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    """``pid`` and its children (a supervisor's workers)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [pid, *(int(x) for x in f.read().split())]
    except OSError:
        return [pid]


def _cpu_per_op(runner: Runner, topo: Topology, conns: int, key: str, seconds: float):
    """One ``refpeer rps`` load on ``topo``: (rate, {role: CPU us per op}, {role: cores})."""
    import subprocess
    import time

    entry, ps = runner.start(topo)
    server, client = ps[0], ps[1]  # started from the far end: the server first
    try:
        load = subprocess.Popen(
            [runner.refpeer, "rps", "-server", f"127.0.0.1:{entry}", "-seconds", str(seconds),
             "-conns", str(conns), "-size", "64"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        roles = {"server": _tree(server.pid), "refpeer client": [client.pid],
                 "load client": [load.pid], "echo": [runner.procs[0].pid]}  # fmt: skip
        start = time.monotonic()
        edge = 0.05 * seconds
        time.sleep(edge)
        before = {r: sum(map(_cpu, pids)) for r, pids in roles.items()}
        time.sleep(max(0.0, start + seconds - edge - time.monotonic()))
        after = {r: sum(map(_cpu, pids)) for r, pids in roles.items()}
        out = load.communicate(timeout=120)[0].strip().splitlines()[-1]
    finally:
        runner.stop(ps)
    rate = float(re.search(rf"{key}=([\d.]+)", out).group(1))
    window = seconds - 2 * edge
    us = {r: (after[r] - before[r]) / (rate * window) * 1e6 for r in roles}
    cores = {r: (after[r] - before[r]) / window for r in roles}
    return rate, us, cores


def ceiling(refpeer: str, seconds: float, modes: list[str]) -> None:
    runner = Runner(refpeer)
    runner.start_echo()  # runner.procs[0]
    n = len(os.sched_getaffinity(0))
    try:
        for mode in modes:
            one, two, rp = _servers(refpeer, mode)
            for conns, key, what in ((128, "rps", "requests at 128 clients"),
                                     (32, "conn_per_s", "new connections at 32")):  # fmt: skip
                for topo in (one, rp):
                    rate, us, cores = _cpu_per_op(runner, topo, conns, key, seconds)
                    c_s = us["server"]
                    total = sum(us.values())
                    line = (
                        f"{topo.label} {what}: {rate:.0f}/s; CPU us per op "
                        + ", ".join(f"{r} {v:.1f}" for r, v in us.items())
                        + "; cores busy "
                        + ", ".join(f"{r} {v:.2f}" for r, v in cores.items())
                    )
                    if topo is one:
                        best = min(2 / c_s, n / total) / min(1 / c_s, n / total)
                        line += f"; 2 workers can gain at most {best:.2f}x on {n} cpus"
                    print(line, flush=True)
    finally:
        runner.close()


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("what", choices=("spread", "capacity", "ceiling"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--modes", default="ws,mws")
    args = ap.parse_args()
    refpeer = find_refpeer()
    print(
        f"# nproc={os.cpu_count()} cpus={sorted(os.sched_getaffinity(0))} loadavg={os.getloadavg()}",
        flush=True,
    )
    if args.what == "spread":
        spread(refpeer, args.seconds)
    elif args.what == "ceiling":
        ceiling(refpeer, args.seconds, args.modes.split(","))
    else:
        capacity(refpeer, args.rounds, args.seconds, args.modes.split(","))
    return 0


if __name__ == "__main__":
    sys.exit(main())
