#!/usr/bin/env python3
"""Which side of a ws tunnel costs what: every client paired with every server.

``bench/tunnel.py`` compares a gostfast pair with a refpeer pair. This mixes
the ends: g = gostfast, r = refpeer, f = the floor (``bench/ws_floor.py``, the
least a Python ws tunnel on uvloop can do). ``g+r`` is a gostfast client in
front of a refpeer server, and so on. Each pair runs ``refpeer rps`` (64-byte
round trips on one connection, then new connections) on freshly started
processes; rounds are interleaved and each figure is the median.

    python bench/ws_mix.py --rounds 4 [--pairs g+g,f+f,g+r,f+r,r+g,r+r]

Reading it: with the server fixed, the client column says what a client
costs (and the same for servers); the distance from ``f`` to ``g`` is the
cost of gostfast's own layers, the distance from ``f`` to ``r`` what Python
and uvloop cost against Go. Loopback only; every process is stopped at the end.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tunnel  # noqa: E402  (the harness next to this file)

FLOOR = str(Path(__file__).resolve().with_name("ws_floor.py"))


def ends(refpeer: str) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Client and server commands by letter ({A} entry, {B} ws port, {echo} target)."""
    ws = tunnel.cases(refpeer, "unused,unused")["ws"]
    r_client, r_server = ws.baseline.commands
    g_client, g_server = ws.subject.commands
    clients = {
        "g": g_client,
        "r": r_client,
        "f": [sys.executable, FLOOR, "client", "{A}", "{B}"],
    }
    servers = {
        "g": g_server,
        "r": r_server,
        "f": [sys.executable, FLOOR, "server", "{B}", "{echo}"],
    }
    return clients, servers


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=1.5, help="seconds per rps / conn phase")
    ap.add_argument("--pairs", default="g+g,f+f,r+r,g+r,f+r,r+g,r+f")
    args = ap.parse_args()
    refpeer = tunnel.find_refpeer()
    clients, servers = ends(refpeer)
    pairs = args.pairs.split(",")
    for pair in pairs:
        c, _, s = pair.partition("+")
        if c not in clients or s not in servers:
            sys.exit(f"ws_mix.py: unknown pair {pair!r} (letters: g, r, f)")
    runner = tunnel.Runner(refpeer)
    results: dict[str, list[dict[str, float]]] = {p: [] for p in pairs}
    try:
        runner.start_echo()
        for _ in range(args.rounds):
            for pair in pairs:
                c, _, s = pair.partition("+")
                topo = tunnel.Topology(pair, [clients[c], servers[s]], "A", ["A", "B"])
                entry, procs = runner.start(topo)
                try:
                    results[pair].append(runner.rps(entry, args.seconds))
                finally:
                    runner.stop(procs)
    finally:
        runner.close()
    print(f"# medians of {args.rounds} rounds: client+server (g gostfast, r refpeer, f floor)")
    for pair, runs in results.items():
        rps = statistics.median(r["rps_64B"] for r in runs)
        cps = statistics.median(r["conn_per_s"] for r in runs)
        print(f"{pair:<5} rps {rps:8.0f}   conn/s {cps:7.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
