#!/usr/bin/env python3
"""CPU spent per 64-byte round trip and per new connection, per tunnel process.

``bench/tunnel.py`` says how fast; this says where the CPU goes, which is
what to look at when a latency row (rps, conn/s) is behind: for each process
of the tunnel under test (gostfast, then refpeer, same case, same run) it
reads user and system CPU time from /proc during each phase of one
``refpeer rps`` run and divides by the round trips, then by the connections,
done in that phase.

The phases of ``refpeer rps`` run back to back for ``--seconds`` each, so the
samples are taken by the clock (2 % inside each phase's edges); a figure is
"us per op" = CPU seconds in the window / ops in the window. The load client
and the echo (refpeer's, the same in every case) get rows too, and the machine's
idle CPUs a line: what the whole path pays per request, not the tunnel's share alone. Linux only
(/proc), loopback only, every process stopped at the end.

    python bench/cpu_cost.py --cases ws,wss [--seconds 4] [--clients 1,32]
    python bench/cpu_cost.py --cases ws --clients 32 --trees /tmp/old,/tmp/new --rounds 5

``--trees`` is the A/B mode: gostfast from each source tree in turn (put
first on PYTHONPATH; a copy of ``gostfast/`` with its compiled ``_core``
extensions, e.g. ``git archive REV gostfast | tar -x -C DIR`` plus the .so
files), the trees interleaved round by round, medians of the gostfast
processes' CPU per op printed side by side (refpeer is not run).

CPU time per operation is what to compare on a busy machine, where rates
depend on who else runs: it moves little with the load, the rates do.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tunnel  # noqa: E402  (the harness next to this file)

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def machine_idle_seconds() -> float:
    """Idle CPU seconds of the whole machine so far (all CPUs, /proc/stat)."""
    with open("/proc/stat") as f:
        return int(f.readline().split()[4]) / TICK


def measure(
    runner: tunnel.Runner, topo: tunnel.Topology, seconds: float, clients: int = 1
) -> list[tuple[str, dict[str, float]]]:
    """Start ``topo``, run one rps load with ``clients`` in parallel, return per-process
    CPU us per op for both phases: the tunnel's processes, then the two around it (the
    load client and the echo, refpeer's in every case; ``around`` is 1 in their rows),
    then the machine's idle CPUs (the row ``idle``: ``cpus_rt``, ``cpus_conn``).

    Why the ones around it: at 128 clients each gostfast ws end spent less CPU per
    request than refpeer's and was half busy, yet the rate was lower; the Go load and
    echo paid more per request around gostfast and the machine idled more
    (docs/performance.md "Capacity, per process"), which the tunnel's rows alone hide."""
    entry, procs = runner.start(topo)
    try:
        load = subprocess.Popen(
            [runner.refpeer, "rps", "-server", f"127.0.0.1:{entry}"]
            + ["-seconds", str(seconds), "-size", "64", "-conns", str(clients)],
            stdout=subprocess.PIPE,
            text=True,
        )
        started = time.monotonic()
        edge = 0.02 * seconds
        watched = [*procs, load, runner.procs[0]]  # runner.procs[0]: its echo (start_echo)
        samples, idle = [], []
        for at in (edge, seconds - edge, seconds + edge, 2 * seconds - edge):
            time.sleep(max(0.0, started + at - time.monotonic()))
            samples.append([cpu_seconds(p.pid) for p in watched])
            idle.append(machine_idle_seconds())
        out = load.communicate(timeout=60)[0]
    finally:
        runner.stop(procs)
    rps = float(re.search(r"rps=([\d.]+)", out).group(1))
    cps = float(re.search(r"conn_per_s=([\d.]+)", out).group(1))
    window = seconds - 2 * edge
    rows = []
    for i, p in enumerate(watched):
        ours = p.args[: len(tunnel.GOSTFAST)] == tunnel.GOSTFAST
        name = "gostfast" if ours else Path(p.args[0]).name
        role = " ".join(a for a in p.args if "://" in a)[:48] or " ".join(p.args[1:3])
        r: dict[str, float] = {"rps": rps, "conn_per_s": cps, "around": float(i >= len(procs))}
        for phase, (a, b), ops in (("rt", (0, 1), rps), ("conn", (2, 3), cps)):
            du = samples[b][i][0] - samples[a][i][0]
            ds = samples[b][i][1] - samples[a][i][1]
            r[f"user_us_per_{phase}"] = du / (ops * window) * 1e6
            r[f"sys_us_per_{phase}"] = ds / (ops * window) * 1e6
        rows.append((f"{name} {role}", r))
    rows.append(
        (
            "idle",
            {
                "rps": rps,
                "conn_per_s": cps,
                "cpus_rt": (idle[1] - idle[0]) / window,
                "cpus_conn": (idle[3] - idle[2]) / window,
            },
        )
    )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--cases", default="ws", help="comma-separated tunnel.py case names")
    ap.add_argument("--seconds", type=float, default=4.0, help="seconds per rps phase")
    ap.add_argument(
        "--clients",
        default="1",
        help="comma-separated client counts (refpeer rps -conns): 1 is the latency load, "
        "32 or 128 the capacity load; CPU per op is what to compare on a busy machine",
    )
    ap.add_argument(
        "--trees",
        default="",
        help="comma-separated gostfast source trees to compare (A/B mode, see above)",
    )
    ap.add_argument("--rounds", type=int, default=3, help="A/B mode: interleaved rounds")
    args = ap.parse_args()
    refpeer = tunnel.find_refpeer()
    all_cases = tunnel.cases(refpeer, tunnel.tls_files())
    runner = tunnel.Runner(refpeer)
    try:
        runner.start_echo()
        if args.trees:
            compare_trees(runner, all_cases, args)
            return 0
        for name in args.cases.split(","):
            case = all_cases[name]
            for clients, topo in (
                (int(n), t) for n in args.clients.split(",") for t in (case.subject, case.baseline)
            ):
                print(f"{name}, {clients} client(s): {topo.label}")
                for label, r in measure(runner, topo, args.seconds, clients):
                    if label == "idle":
                        print(
                            f"  {'machine idle (CPUs)':<60} rt: {r['cpus_rt']:5.2f}"
                            f"   conn: {r['cpus_conn']:5.2f}",
                            flush=True,
                        )
                        continue
                    print(
                        f"  {label:<60} rt: user {r['user_us_per_rt']:6.1f} us"
                        f" sys {r['sys_us_per_rt']:6.1f} us ({r['rps']:.0f}/s)"
                        f"   conn: user {r['user_us_per_conn']:6.1f} us"
                        f" sys {r['sys_us_per_conn']:6.1f} us ({r['conn_per_s']:.0f}/s)",
                        flush=True,
                    )
    finally:
        runner.close()
    return 0


METRICS = ("user_us_per_conn", "sys_us_per_conn", "user_us_per_rt", "sys_us_per_rt")


def compare_trees(runner: tunnel.Runner, all_cases, args: argparse.Namespace) -> None:
    """A/B: the gostfast topology of each case from each tree, interleaved; medians."""
    trees = args.trees.split(",")
    clients = int(args.clients.split(",")[0])
    got: dict[tuple, list[float]] = {}
    saved = os.environ.get("PYTHONPATH")
    try:
        for _ in range(args.rounds):
            for name in args.cases.split(","):
                for tree in trees:
                    os.environ["PYTHONPATH"] = tree  # the gostfast processes import from it
                    for label, r in measure(runner, all_cases[name].subject, args.seconds, clients):
                        if label == "idle" or r["around"]:
                            continue  # the trees' own processes only
                        end = "client" if "forward+" in label else "server"
                        for k in METRICS + ("rps", "conn_per_s"):
                            got.setdefault((name, end, k, tree), []).append(r[k])
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    print(f"medians of {args.rounds}, {clients} client(s); columns: {', '.join(trees)}")
    for name in args.cases.split(","):
        rows = [(end, k) for end in ("server", "client") for k in METRICS]
        rows += [("server", "rps"), ("server", "conn_per_s")]
        for end, k in rows:
            if (name, end, k, trees[0]) not in got:
                continue  # a case with one gostfast process (tcp: the forward alone)
            values = [statistics.median(got[(name, end, k, t)]) for t in trees]
            what = f"{end} {k}" if k in METRICS else k
            print(f"{name:6} {what:24}" + "".join(f" {v:9.1f}" for v in values), flush=True)


if __name__ == "__main__":
    sys.exit(main())
