#!/usr/bin/env python3
"""GOST's traffic limiter measured with iperf3 through a websocket tunnel.

Two services in one gostfast ws server, the same client setup in front of
each: ``lim`` with ``limiter.in=RATE&limiter.out=RATE`` and ``free`` without
a limiter. iperf3 runs through the free one alone, then through both at the same time
(the free one to show it keeps its speed beside the limited one), first uploading (client -> target:
GOST's "in"), then downloading (``-R``: "out"). iperf3's first second is
left out of its figure (``-O 1``: the limiter's burst, a second's worth).
Sizes are GOST's: 10MB = 10 MiB per second. Loopback only, every process
stopped at the end. Needs iperf3 (Debian: ``apt-get install iperf3``).

    python bench/limiter.py [--rate 10MB] [--seconds 10]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tunnel import GOSTFAST, free_port, wait_listening  # noqa: E402

from gostfast.config.values import parse_size  # noqa: E402

MiB = 1 << 20


def _iperf(port: int, seconds: float, reverse: bool) -> subprocess.Popen:
    args = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-O", "1", "-J"]
    return subprocess.Popen(
        [*args, *(["-R"] if reverse else [])], stdout=subprocess.PIPE, text=True
    )


def _rate(proc: subprocess.Popen, seconds: float) -> float:
    out, _ = proc.communicate(timeout=seconds + 30)
    report = json.loads(out)
    if "error" in report:
        raise RuntimeError(f"iperf3: {report['error']}")
    return report["end"]["sum_received"]["bits_per_second"] / 8  # bytes per second


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rate", default="10MB", help="limiter.in and limiter.out (GOST's size)")
    ap.add_argument("--seconds", type=float, default=10.0)
    a = ap.parse_args()
    if shutil.which("iperf3") is None:
        sys.exit("bench/limiter.py: needs iperf3 (Debian package iperf3)")
    limit = parse_size(a.rate)
    p = {k: free_port() for k in ("s_lim", "s_free", "lim", "free", "c_lim", "c_free")}
    procs: list[subprocess.Popen] = []

    def start(args: list[str], *ports: str) -> None:
        proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        procs.append(proc)
        for name in ports:
            wait_listening(p[name], proc)

    with tempfile.TemporaryFile() as log:
        try:
            for s in ("s_lim", "s_free"):
                start(["iperf3", "-s", "-p", str(p[s])], s)
            start(
                [
                    *GOSTFAST,
                    "-L",
                    f"ws://127.0.0.1:{p['lim']}/127.0.0.1:{p['s_lim']}"
                    f"?limiter.in={a.rate}&limiter.out={a.rate}",
                    "-L",
                    f"ws://127.0.0.1:{p['free']}/127.0.0.1:{p['s_free']}",
                ],
                "lim",
                "free",
            )
            for c, s, ws in (("c_lim", "s_lim", "lim"), ("c_free", "s_free", "free")):
                start(
                    [
                        *GOSTFAST,
                        "-L",
                        f"tcp://127.0.0.1:{p[c]}/127.0.0.1:{p[s]}",
                        "-F",
                        f"forward+ws://127.0.0.1:{p[ws]}",
                    ],
                    c,
                )
            print(f"# limit {a.rate} = {limit / MiB:.2f} MiB/s = {limit / 1e6:.2f} MB/s each way")
            print("# a shared machine: the free service's figure is noisy; the limit is not")
            for reverse, what in ((False, "upload (in)"), (True, "download (out)")):
                alone = _rate(_iperf(p["c_free"], a.seconds, reverse), a.seconds)
                lim = _iperf(p["c_lim"], a.seconds, reverse)
                free = _iperf(p["c_free"], a.seconds, reverse)
                r_lim, r_free = _rate(lim, a.seconds), _rate(free, a.seconds)
                print(
                    f"{what:15} limited {r_lim / MiB:7.2f} MiB/s ({r_lim / limit:6.1%} of the "
                    f"limit)   free beside it {r_free / MiB:8.2f} MiB/s, alone before "
                    f"{alone / MiB:8.2f} MiB/s"
                )
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
                if proc.poll() is None:
                    proc.kill()


if __name__ == "__main__":
    main()
