#!/usr/bin/env python3
"""Instructions a gostfast process executes per new connection, server or client end.

``bench/tunnel.py`` and ``bench/cpu_cost.py`` measure seconds, which move with
whatever else the machine runs; on a shared 2-vCPU box a 3 % question (what
do the metrics cost?) drowns in that. Instructions do not: valgrind's
callgrind counts them, the same for the same binary and input whatever the
load (the tool library's env notes; perf's counters are not exposed on this
VM). So this runs one gostfast end of a case under callgrind (``--end server``:
the listener, refpeer's client in front; ``--end client``: a ``-L tcp://
-F forward+ws://`` dialer, refpeer's server behind), drives it with a fixed
workload from native clients, and reports

instructions per new connection: two runs, ``--conns`` and ``2 x --conns``
sequential connections (connect, 64 bytes there and back, close), the
difference over ``--conns`` (start-up and shutdown cancel out), for each variant of the server: ``base`` (the default: access log at info),
``metrics`` (``-metrics`` on, scraped once at the end so the flush is paid),
``warn`` (``GOST_LOGGER_LEVEL=warn``: no access log). Ratios are against
``base``. The other end is refpeer's (Go): only the gostfast end is counted.
``tcp`` has no client end of its own (a forward service dials the target
itself), so its ``client`` row runs the same forward as its ``server`` row.
Instructions are not time (a cache miss costs more than an add), but for a
change that adds Python work to a path, the instruction ratio is that work.
Not per MiB: how many bytes one read brings depends on how far the slowed
server falls behind, so the count per MiB moved by 40 % between two runs of
the same tree; the throughput rows are bench/tunnel.py's. Each pair of runs has one
``PYTHONHASHSEED`` (``--repeat K``: seeds 0 .. K-1, the median): with a random
seed per process the start-up alone moved ~1M instructions between the two
runs of a pair, ~10k per connection at ``--conns 100``. Pair k also starts
gostfast on a heap shifted by k x 397 small strings (``_launch``): where the
interned attribute names land decides which of them collide in CPython's
4096-entry attribute cache, which moved one tree's count by 3.5 % when a
class was added; the median over K layouts is the code's own cost. Compare
trees with ``--repeat 3`` or more.

    python bench/instructions.py --cases tcp,ws,mws [--conns 400] [--variants base,metrics]
    python bench/instructions.py --end server,client --cases ws,mws --variants base,warn
    python bench/instructions.py --end server,client --cases wss,mwss --repeat 2 --conns 50
    python bench/instructions.py --end server,client --cases ws,mws --unit rt --conns 2000
    PYTHONPATH=/tmp/old python bench/instructions.py ...   # another tree (with its .so files)

Loopback only; every process is stopped at the end. Takes minutes (the
server runs ~50x slower under valgrind).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tunnel  # noqa: E402  (the harness next to this file: ports, refpeer)

VARIANTS = ("base", "metrics", "warn")
CASES = ("tcp", "ws", "mws", "wss", "mwss")


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 600.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"port {port} never opened")


MESSAGE = b"x" * 64


def _echo(s: socket.socket) -> None:
    """One 64-byte message there and back through the tunnel on ``s``."""
    s.sendall(MESSAGE)
    got = 0
    while got < len(MESSAGE):
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("tunnel closed early")
        got += len(chunk)


def _exchange(port: int, n: int) -> None:
    """``n`` sequential connections: 64 bytes there and back, then close."""
    for _ in range(n):
        with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
            _echo(s)


def _round_trips(port: int, n: int) -> None:
    """One connection, ``n`` round trips of 64 bytes, one message in flight, then close."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        for _ in range(n):
            _echo(s)


#: what ``--unit`` counts: new connections (the default) or 64-byte round trips on one
WORKLOADS = {"conn": _exchange, "rt": _round_trips}


def _gostfast_cmd(end: str, scheme: str, port: int, target: int) -> list[str]:
    """The gostfast end's arguments: it listens on ``port``; a server (and tcp's forward)
    pipes to ``target``, the echo; a client dials the websocket server at ``target``."""
    if scheme == "tcp" or end == "server":
        return ["-L", f"{scheme}://127.0.0.1:{port}/127.0.0.1:{target}"]
    return [
        "-L", f"tcp://127.0.0.1:{port}/127.0.0.1:{target}",
        "-F", f"forward+{scheme}://127.0.0.1:{target}",
    ]  # fmt: skip


def _peer_cmd(
    refpeer: str, end: str, scheme: str, port: int, other: int, tls_pair: str = ""
) -> list[str]:
    """refpeer's end of the tunnel, listening on ``port``: its client in front of the
    gostfast server at ``other``, or its server (piping to the echo at ``other``)
    behind a gostfast client. wss/mwss: refpeer's mode is ws/mws over TLS; its
    client skips verification (gostfast's listener makes a self-signed certificate),
    its server serves ``tls_pair`` ("cert.pem,key.pem")."""
    tls = scheme.endswith("ss")
    mode = scheme[:-1] if tls else scheme
    if end == "server":
        url = ("wss" if tls else "ws") + f"://127.0.0.1:{other}/ws"
        return [
            refpeer, "client", "-mode", mode, "-listen", f"127.0.0.1:{port}",
            "-server", url, *(["-insecure"] if tls else []),
        ]  # fmt: skip
    return [
        refpeer, "server", "-mode", mode, "-listen", f"127.0.0.1:{port}",
        "-target", f"127.0.0.1:{other}", *(["-tls", tls_pair] if tls else []),
    ]  # fmt: skip


#: strings allocated before gostfast's imports, per layout (``--repeat`` index): how far
#: every later object, the interned attribute names among them, moves in memory
PAD_PER_LAYOUT = 397


def _launch(layout: int) -> list[str]:
    """``python -m gostfast`` for layout 0; for layout k, the same after allocating
    ``k * PAD_PER_LAYOUT`` strings of 0-63 characters that stay alive.

    Why: CPython's attribute cache (4096 entries) is indexed by the type's version tag
    xor the *address* of the name, so which hot lookups evict each other depends on
    where the interned names land. Adding one class at the end of gostfast/metrics moved
    the ws client's count by 14.5k instructions per connection (420.9k -> 406.4k), more
    than most changes measured here; the hash seed does not move it (names are found by
    address). Shifting the heap per layout and taking the median over layouts measures
    the code, not where its strings happened to fall."""
    if layout == 0:
        return ["-m", "gostfast"]
    pad = layout * PAD_PER_LAYOUT
    return [
        "-c",
        f"_pad = ['p' * (i % 64) + str(i) for i in range({pad})]\n"
        "import runpy\n"
        "runpy.run_module('gostfast', run_name='__main__', alter_sys=True)",
    ]


def _spawn(cmd: list[str], procs: list[subprocess.Popen], port: int, **kw) -> None:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    procs.append(proc)
    _wait_port(port, proc)


def run_once(
    refpeer: str,
    end: str,
    scheme: str,
    variant: str,
    conns: int,
    echo: int,
    out_dir: str,
    seed: int = 0,
    tls_pair: str = "",
    unit: str = "conn",
) -> int:
    """Instructions of one run of the gostfast ``end`` under callgrind."""
    port, peer, mport = tunnel.free_port(), tunnel.free_port(), tunnel.free_port()
    out = os.path.join(out_dir, f"cg.{end}.{scheme}.{variant}.{conns}.{port}")
    client_end = end == "client" and scheme != "tcp"
    cmd = [
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
        *_launch(seed), *_gostfast_cmd(end, scheme, port, peer if client_end else echo),
    ]  # fmt: skip
    # a fixed hash seed for both runs of a pair: string hashes decide how far each of
    # the millions of dict lookups at start-up probes, so with a random seed per process
    # the start-up cost moved by ~1M instructions between the N and the 2N run (~10k
    # per connection at --conns 100, a 5 % "metrics cost" that seeded reruns did not
    # show); --repeat takes a new seed for each pair and reports the median (seeds 0, 1,
    # 2 of one tree gave 411,439 / 412,566 / 412,158 for the ws client: the per-connection
    # cost itself barely depends on the seed)
    env = dict(os.environ, PYTHONHASHSEED=str(seed))
    if variant == "metrics":
        cmd.append(f"-metrics=127.0.0.1:{mport}")
    if variant == "warn":
        env["GOST_LOGGER_LEVEL"] = "warn"
    procs: list[subprocess.Popen] = []
    try:
        if client_end:  # refpeer's server first: the gostfast client dials it
            _spawn(_peer_cmd(refpeer, end, scheme, peer, echo, tls_pair), procs, peer)
        # cwd: python -m would import a gostfast/ found there first
        _spawn(cmd, procs, port, env=env, cwd=out_dir)
        gostfast = procs[-1]
        entry = port
        if scheme != "tcp" and not client_end:
            _spawn(_peer_cmd(refpeer, end, scheme, peer, port), procs, peer)
            entry = peer
        WORKLOADS[unit](entry, conns)
        if variant == "metrics":
            with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=60) as r:
                r.read()
        time.sleep(0.5)  # the last tunnels end (mws: the stream's FIN)
        gostfast.send_signal(signal.SIGTERM)
        gostfast.wait(180)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    text = Path(out).read_text(errors="replace")
    m = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
    if m is None:
        raise RuntimeError(f"no instruction total in {out}")
    os.unlink(out)
    return int(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--cases", default="tcp,ws,mws", help="comma-separated: tcp, ws, mws, wss, mwss"
    )
    ap.add_argument(
        "--end", default="server", help="comma-separated: server, client (the end counted)"
    )
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument(
        "--conns", type=int, default=300, help="connections per run (with --unit rt: round trips)"
    )
    ap.add_argument(
        "--unit",
        choices=sorted(WORKLOADS),
        default="conn",
        help="conn: per new connection (connect, 64 bytes there and back, close); rt: per "
        "64-byte round trip on one open connection (the rps rows' per-message cost)",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="pairs of runs per variant, hash seed and heap layout 0, 1, ... (the median)",
    )
    args = ap.parse_args()
    bad = set(args.end.split(",")) - {"server", "client"}
    if bad:
        ap.error(f"--end: {', '.join(sorted(bad))}: each end is server or client")
    bad = set(args.cases.split(",")) - set(CASES)
    if bad:
        ap.error(f"--cases: {', '.join(sorted(bad))}: each case is one of {', '.join(CASES)}")
    refpeer = tunnel.find_refpeer()
    # refpeer's wss/mwss server behind a gostfast client needs a certificate
    tls_pair = tunnel.tls_files() if "ss" in args.cases else ""
    echo_port = tunnel.free_port()
    echo = subprocess.Popen(
        [refpeer, "tcpecho", "-listen", f"127.0.0.1:{echo_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_port(echo_port, echo)
        with tempfile.TemporaryDirectory() as out_dir:
            for end, scheme in ((e, c) for e in args.end.split(",") for c in args.cases.split(",")):
                base = None
                for variant in args.variants.split(","):
                    counts = []
                    common = (refpeer, end, scheme, variant)
                    for seed in range(args.repeat):
                        one, two = (
                            run_once(*common, n, echo_port, out_dir, seed, tls_pair, args.unit)
                            for n in (args.conns, 2 * args.conns)
                        )
                        counts.append((two - one) / args.conns)
                    per_conn = statistics.median(counts)
                    base = base or per_conn
                    spread = ", ".join(f"{c:.0f}" for c in counts)
                    print(
                        f"{scheme:4s} {end:6s} {variant:8s} {per_conn:10.0f} instr/{args.unit} "
                        f"({per_conn / base:.3f}x of {args.variants.split(',')[0]})  runs: {spread}",
                        flush=True,
                    )
    finally:
        echo.kill()
        echo.wait()


if __name__ == "__main__":
    main()
