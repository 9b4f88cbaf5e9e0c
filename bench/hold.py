#!/usr/bin/env python3
"""Memory per open tunnel: N tunnels held open at once through one client/server pair.

A gateway's memory is paid per tunnel it holds, most of them idle. This
bench opens N connections to the tunnel's entry (each one echoes a byte, so
the whole chain is up: entry -> tunnel client -> ws/mws -> tunnel server ->
echo), holds them all, and reads VmRSS of the two tunnel processes before
and after: (after - before) / N is the figure, for gostfast's pair and for
refpeer's (gorilla/websocket + xtaci/smux) in the same run. For mws the N
tunnels are N smux streams of one websocket.

File descriptors: a ws tunnel costs its client process two (the accepted
connection and its websocket) and its server process two; every process
here inherits this shell's RLIMIT_NOFILE, raised to its hard limit (on the
project's VMs 20000, which an unprivileged or a container root cannot
raise). So ws holds at most (limit - 64) / 2 tunnels: with the default
``--tunnels 10000`` and a 20000 limit the ws rows hold 9968 (printed), the
mws rows the full 10000.

    python bench/hold.py [--tunnels 10000] [--cases ws,mws] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tunnel  # noqa: E402  (the harness next to this file)

#: descriptors kept free in every process (logs, the loop, listening sockets ...)
FD_RESERVE = 64

#: The echo target. refpeer's tcpecho costs three descriptors per connection (Go's
#: io.Copy splices through a pipe pair), which would cap the bench at a third of the
#: limit; this one costs one. It only answers the one byte each tunnel sends.
ECHO = """
import asyncio, sys, uvloop
class Echo(asyncio.Protocol):
    def connection_made(self, t): self.t = t
    def data_received(self, d): self.t.write(d)
async def main():
    srv = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", int(sys.argv[1]),
                                                          backlog=4096)
    await srv.serve_forever()
uvloop.run(main())
"""


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def hold(entry: int, n: int, timeout: float = 120.0) -> list[socket.socket]:
    """``n`` connections to ``entry``, each proven end to end by one echoed byte."""
    socks: list[socket.socket] = []
    deadline = time.monotonic() + timeout
    try:
        for i in range(n):
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {i} of {n} tunnels opened in {timeout:g}s")
            s = socket.create_connection(("127.0.0.1", entry), timeout=30)
            socks.append(s)
            s.sendall(b"x")
            if s.recv(1) != b"x":
                raise RuntimeError(f"tunnel {i}: no echo")
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


def settle(pids: list[int], seconds: float = 1.0) -> int:
    """Sum of the processes' RSS once it stopped moving (GC, lazy frees)."""
    last = -1
    end = time.monotonic() + 10
    while time.monotonic() < end:
        time.sleep(seconds)
        now = sum(rss_kib(p) for p in pids)
        if abs(now - last) < 256:
            return now
        last = now
    return last


def measure(runner: tunnel.Runner, topo: tunnel.Topology, n: int) -> dict[str, float]:
    entry, procs = runner.start(topo)
    try:
        pids = [p.pid for p in procs]
        time.sleep(0.5)
        before = settle(pids)
        socks = hold(entry, n)
        try:
            after = settle(pids)
        finally:
            for s in socks:
                s.close()
        return {
            "tunnels": n,
            "rss_before_KiB": before,
            "rss_after_KiB": after,
            "KiB_per_tunnel": (after - before) / n,
        }
    finally:
        runner.stop(procs)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tunnels", type=int, default=10000)
    ap.add_argument("--cases", default="ws,mws", help="comma-separated: ws, mws, wss, mwss")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children inherit it
    refpeer = tunnel.find_refpeer()
    all_cases = tunnel.cases(refpeer, tunnel.tls_files())
    runner = tunnel.Runner(refpeer)
    results: dict[str, dict] = {}
    print(
        f"# {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} nofile={hard} "
        f"tunnels asked={args.tunnels}",
        flush=True,
    )
    try:
        runner.spawn([sys.executable, "-c", ECHO, str(runner.echo_port)], runner.echo_port)
        for name in args.cases.split(","):
            case = all_cases[name]
            per_process_fds = 1 if name.startswith("mws") else 2
            n = min(args.tunnels, (hard - FD_RESERVE) // per_process_fds)
            row = {}
            for role in ("subject", "baseline"):
                topo = getattr(case, role)
                row[role] = {"label": topo.label, **measure(runner, topo, n)}
                print(f"{name:<5} {topo.label:<40} {row[role]}", flush=True)
            row["ratio"] = row["subject"]["KiB_per_tunnel"] / row["baseline"]["KiB_per_tunnel"]
            results[name] = row
    finally:
        runner.close()
    print("\n# KiB of RSS per open tunnel (client + server process); ratio = gostfast / refpeer")
    for name, r in results.items():
        print(
            f"{name:<5} tunnels={r['subject']['tunnels']:<6} gostfast "
            f"{r['subject']['KiB_per_tunnel']:7.1f}  refpeer {r['baseline']['KiB_per_tunnel']:7.1f}"
            f"   ratio {r['ratio']:.2f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
