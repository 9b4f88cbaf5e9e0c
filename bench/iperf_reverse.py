#!/usr/bin/env python3
"""``iperf3 -R -P 8`` loops through an mws pair: hangs, and what fills the pipe (issue 19).

At the end of a reverse test the iperf3 client stops reading its data streams and
waits for the results on its control stream, another stream of the same smux
session. With smux v1 (no per-stream window) the results arrive only if the
receiving end can take every byte queued ahead of them: its session budget
(``mux.maxReceiveBuffer``) plus what the unread streams' sockets still accept.
This loop counts the runs that hang and, per run, measures what decides it:

* ``unread``: bytes iperf3's server wrote that its client never read (the sum of
  the per-stream differences in iperf3's own report: everything in the pipe when
  the test ended);
* the websocket's kernel queues, sampled every 30 ms with ``ss``: the receiving
  end's Recv-Q (bytes that arrived and that end has not read yet) and the sending
  end's Send-Q. Both lie ahead of any later frame, a control reply too.

Pairings: ``--client``/``--server`` each ``gostfast`` or ``refpeer`` (Go:
gorilla/websocket + xtaci/smux v1.5.16). One session serves every run. A run that
gives no results in ``--hang`` seconds is a hang; ``ss -tnmi`` of the websocket
and of the tunnel's sockets is printed then, and the loop goes on (killing the
iperf3 client frees the session). Runs iperf3's server turned away (busy with the
last test) are retried, not counted. Loopback only; timings on a shared machine
move a lot: compare pairings in the same run, interleaved or side by side.

    python bench/iperf_reverse.py --client gostfast --server refpeer [--runs 100]
        [--version 1] [--hang 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tunnel  # noqa: E402  (the harness next to this file: ports, refpeer, gostfast)

MB = 1e6


def ws_queues(ws_port: int) -> tuple[int, int]:
    """(Recv-Q at the tunnel client's end, Send-Q at the tunnel server's end) of the websocket."""
    out = subprocess.run(
        ["ss", "-tnH", "state", "established", f"( sport = :{ws_port} or dport = :{ws_port} )"],
        capture_output=True,
        text=True,
    ).stdout
    recv_q = send_q = 0
    for line in out.splitlines():
        f = line.split()
        if len(f) < 4 or not f[0].isdigit():
            continue
        if f[2].endswith(f":{ws_port}"):  # the server's end: the sender in -R
            send_q = int(f[1])
        elif f[3].endswith(f":{ws_port}"):  # the client's end: the receiver
            recv_q = int(f[0])
    return recv_q, send_q


class Sampler(threading.Thread):
    """The largest websocket queues seen while a run lasts."""

    def __init__(self, ws_port: int) -> None:
        super().__init__(daemon=True)
        self.ws_port = ws_port
        self.max_recv_q = self.max_send_q = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            r, s = ws_queues(self.ws_port)
            self.max_recv_q = max(self.max_recv_q, r)
            self.max_send_q = max(self.max_send_q, s)
            self._stop_event.wait(0.03)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def start_pair(args, iperf_port: int, ws_port: int, entry: int) -> list[subprocess.Popen]:
    mux = f"path=/ws&mux.version={args.version}"
    rp_smux = ["-mode", "mws", "-smux-version", str(args.version)]
    if args.server == "gostfast":
        server = [*tunnel.GOSTFAST, "-L", f"mws://127.0.0.1:{ws_port}/127.0.0.1:{iperf_port}?{mux}"]
    else:
        server = [tunnel.find_refpeer(), "server", "-listen", f"127.0.0.1:{ws_port}", *rp_smux]
        server += ["-target", f"127.0.0.1:{iperf_port}"]
    if args.client == "gostfast":  # the forward connector ignores the target given here
        client = [*tunnel.GOSTFAST, "-L", f"tcp://127.0.0.1:{entry}/127.0.0.1:9"]
        client += ["-F", f"forward+mws://127.0.0.1:{ws_port}?{mux}"]
    else:
        client = [tunnel.find_refpeer(), "client", "-listen", f"127.0.0.1:{entry}"]
        client += ["-server", f"ws://127.0.0.1:{ws_port}/ws", *rp_smux]
    procs = []
    for argv, port in ((server, ws_port), (client, entry)):
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p)
        tunnel.wait_listening(port, p)
    return procs


def refused(report: dict) -> bool:
    """iperf3's server turned the test away before it started (see the interop test)."""
    error = report.get("error", "")
    if "server is busy" in error:
        return True
    return "closed unexpectedly" in error and not report.get("start", {}).get("connected")


def one_run(iperf3: str, entry: int, ws_port: int, hang: float) -> dict | None:
    """One test's figures, or None when it hung."""
    cmd = [iperf3, "-c", "127.0.0.1", "-p", str(entry), "-t", "1", "-P", "8", "-R", "-J"]
    for _ in range(50):
        sampler = Sampler(ws_port)
        sampler.start()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            out, _ = proc.communicate(timeout=hang)
        except subprocess.TimeoutExpired:
            sampler.stop()
            r, s = ws_queues(ws_port)
            print(f"  hung: websocket Recv-Q {r / MB:.2f} MB, Send-Q {s / MB:.2f} MB")
            print(subprocess.run(["ss", "-tnmi"], capture_output=True, text=True).stdout)
            proc.kill()
            proc.communicate()
            return None
        sampler.stop()
        report = json.loads(out or b"{}")
        if refused(report):
            time.sleep(0.1)
            continue
        if "error" in report:
            raise SystemExit(f"iperf3 failed: {report['error']}")
        end = report["end"]
        return {
            "sent": end["sum_sent"]["bytes"],
            "unread": end["sum_sent"]["bytes"] - end["sum_received"]["bytes"],
            "max_recv_q": sampler.max_recv_q,
            "max_send_q": sampler.max_send_q,
        }
    raise SystemExit("iperf3's server stayed busy")


def summary(values: list[float]) -> str:
    v = sorted(values)
    p90 = v[min(len(v) - 1, int(0.9 * len(v)))]
    return f"median {statistics.median(v) / MB:.1f} p90 {p90 / MB:.1f} max {v[-1] / MB:.1f} MB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--client", choices=["gostfast", "refpeer"], default="gostfast")
    ap.add_argument("--server", choices=["gostfast", "refpeer"], default="refpeer")
    ap.add_argument("--version", type=int, choices=[1, 2], default=1)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--hang", type=float, default=8.0, help="seconds without results = a hang")
    ap.add_argument("--json", help="write the per-run figures here")
    args = ap.parse_args()
    iperf3 = shutil.which("iperf3") or sys.exit("needs iperf3 (apt-get install iperf3)")
    iperf_port, ws_port, entry = tunnel.free_port(), tunnel.free_port(), tunnel.free_port()
    iperf = subprocess.Popen(
        [iperf3, "-s", "-B", "127.0.0.1", "-p", str(iperf_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    procs = [iperf]
    try:
        tunnel.wait_listening(iperf_port, iperf)
        procs += start_pair(args, iperf_port, ws_port, entry)
        runs, hangs = [], []
        for i in range(args.runs):
            r = one_run(iperf3, entry, ws_port, args.hang)
            if r is None:
                hangs.append(i)
                print(f"run {i}: HANG")
            else:
                runs.append(r)
                print(
                    f"run {i}: sent {r['sent'] / MB:.0f} MB, unread {r['unread'] / MB:.1f} MB, "
                    f"websocket Recv-Q max {r['max_recv_q'] / MB:.2f} MB, "
                    f"Send-Q max {r['max_send_q'] / MB:.2f} MB",
                    flush=True,
                )
    finally:
        tunnel.Runner.stop(procs)
    name = f"{args.client} client + {args.server} server, v{args.version}"
    print(f"{name}: {len(hangs)}/{args.runs} hung {hangs}")
    if runs:
        print(f"  unread at the end: {summary([r['unread'] for r in runs])}")
        print(f"  receiver's websocket Recv-Q: {summary([r['max_recv_q'] for r in runs])}")
        print(f"  sender's websocket Send-Q:   {summary([r['max_send_q'] for r in runs])}")
    if args.json:
        Path(args.json).write_text(json.dumps({"pairing": name, "hangs": hangs, "runs": runs}))


if __name__ == "__main__":
    main()
