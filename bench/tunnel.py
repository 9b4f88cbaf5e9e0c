#!/usr/bin/env python3
"""End-to-end tunnel benchmark: gostfast next to a baseline, same machine, same run.

Every process is separate, and every metric runs on freshly started tunnel
processes (gostfast and baseline alike): a Go echo server (``refpeer tcpecho``), the tunnel
under test (gostfast processes, or the baseline), and a Go load client
(``refpeer tcpbench`` for throughput, ``refpeer rps`` for the 64-byte
request/response rate and the new-connection rate, with 1 client -- the
latency figure -- and with 32 and 128 clients in parallel -- the capacity
figures a gateway is judged by). Rounds are interleaved and the order
within a round alternates (gostfast then baseline, then baseline then
gostfast, ...): on a small VM whoever runs first in a round was measured up to
~8 % slower (an A/A run, the same topology on both sides), so a fixed order
biased every ratio one way. Each figure is the median of the rounds; the ratio
is gostfast / baseline (of those medians), and ``paired`` the median of each round's
own ratio, which cancels drift over the run; use an even number of rounds. Loopback only; every process is
stopped at the end.

A case is a pair of topologies (lists of commands with {port} placeholders and
an entry port); the baseline of ``tcp`` is a direct connection to the echo
server, the baseline of ``ws``/``mws`` rows is refpeer's client and server.
The ``ws-deflate``/``mws-deflate`` rows turn permessage-deflate on at both ends
(gostfast ``enableCompression=true``, refpeer ``-compress``) and measure throughput
with compressible text (this repository's Python sources, repeated) pushed by
``TextLoad`` here, since refpeer's tcpbench writes zeros; both sides of such a row
get the same load client.

The ``-metrics`` rows (``tcp-metrics``, ``ws-metrics``, ``mws-metrics``, ...) put
gostfast against itself: every gostfast process of the row serves GOST's metrics
(``-metrics``) against the same processes without them, so the ratio is what
counting costs. The ``-accesslog`` rows compare the default info level (one
access log line per request) with ``GOST_LOGGER_LEVEL=warn`` (none). The ``-aa``
rows run the very same gostfast topology as subject and baseline: their ratios
are the bench's own spread on this machine, the yardstick for a few-percent
question such as the on/off rows (run them in the same invocation).

    python bench/tunnel.py --rounds 3 [--cases tcp,ws] [--json out.json] [--cpus 0]
                           [--clients 1,32,128] [--halt-poll-ns 200000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFPEER_BUILD = ROOT.parent / "shared" / "tools" / "refpeer" / "build.sh"
MiB = 1 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 15.0) -> None:
    want = f":{port:04X}"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        for name in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(name) as f:
                if any(
                    ln.split()[1].endswith(want) and ln.split()[3] == "0A" for ln in list(f)[1:]
                ):
                    return
        time.sleep(0.02)
    raise RuntimeError(f"port {port} never opened for {proc.args}")


def find_refpeer() -> str:
    env = os.environ.get("GOSTFAST_REFPEER")
    if env and os.access(env, os.X_OK):
        return env
    cached = (
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        / "gostfast-refpeer"
        / "refpeer"
    )
    if cached.exists():
        return str(cached)
    if not REFPEER_BUILD.exists():
        sys.exit(
            f"bench/tunnel.py: needs the Go reference peer: set GOSTFAST_REFPEER or provide {REFPEER_BUILD}"
        )
    out = subprocess.run(["sh", str(REFPEER_BUILD), str(cached)], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"bench/tunnel.py: building refpeer failed: {out.stderr.strip()}")
    return out.stdout.strip().splitlines()[-1]


# the installed command: ``python -m gostfast`` from the repository root would
# import the uncompiled source tree instead of the installed package
_script = Path(sys.executable).with_name("gostfast")
GOSTFAST = (
    [str(_script)]
    if os.access(_script, os.X_OK)
    else [
        sys.executable,
        "-c",
        "import sys; del sys.path[0]; from gostfast.cli import main; main()",
    ]
)


@dataclass
class Topology:
    """Commands to start (``{name}`` placeholders are ports) and the port clients connect to."""

    label: str
    commands: list[list[str]]
    entry: str  # placeholder name of the entry port
    ports: list[str] = field(default_factory=list)  # placeholders to allocate, in start order
    text: bool = False  # throughput with compressible text (TextLoad) instead of zeros
    extra_ports: list[str] = field(default_factory=list)  # allocated, not waited for
    env: dict[str, str] = field(default_factory=dict)  # added to every command's environment


@dataclass
class Case:
    name: str
    subject: Topology
    baseline: Topology


def refpeer_pair(refpeer: str, mode: str, tls: bool = False) -> tuple[list[str], list[str]]:
    """refpeer's client (listening on {A}) and server (on {B}, piping to {echo}) for ``mode``."""
    client = [
        refpeer,
        "client",
        "-listen",
        "127.0.0.1:{A}",
        "-server",
        ("wss" if tls else "ws") + "://127.0.0.1:{B}/ws",
        "-mode",
        mode,
    ]
    server = [
        refpeer,
        "server",
        "-listen",
        "127.0.0.1:{B}",
        "-mode",
        mode,
        "-target",
        "127.0.0.1:{echo}",
    ]
    return client, server


def tunnel_case(refpeer: str, scheme: str, tls_pair: str, deflate: bool = False) -> Case:
    """gostfast client + server over ``scheme`` vs refpeer client + server over the same.

    ``deflate``: permessage-deflate on both ends of both topologies, text load."""
    mode = "mws" if scheme.startswith("mws") else "ws"
    tls = scheme.endswith("ss")
    label = f"{scheme} tunnel" + (" (smux v1)" if mode == "mws" else "")
    label += " deflate, text" if deflate else ""
    query = "?enableCompression=true" if deflate else ""
    rp_client, rp_server = refpeer_pair(refpeer, mode, tls)
    if tls:
        rp_client.append("-insecure")
        rp_server += ["-tls", tls_pair]
    if deflate:
        rp_client.append("-compress")
        rp_server.append("-compress")
    return Case(
        label,
        Topology(
            f"gostfast client -> gostfast {scheme} server",
            [
                [
                    *GOSTFAST,
                    "-L",
                    "tcp://127.0.0.1:{A}/127.0.0.1:{echo}",
                    "-F",
                    f"forward+{scheme}://127.0.0.1:{{B}}{query}",
                ],
                [*GOSTFAST, "-L", f"{scheme}://127.0.0.1:{{B}}/127.0.0.1:{{echo}}{query}"],
            ],
            "A",
            ["A", "B"],
            deflate,
        ),
        Topology(
            f"refpeer client -> refpeer {scheme} server",
            [rp_client, rp_server],
            "A",
            ["A", "B"],
            deflate,
        ),
    )


def with_metrics(topo: Topology) -> Topology:
    """``topo`` with every gostfast process serving metrics on a port of its own."""
    names = [f"M{i}" for i in range(len(topo.commands))]
    return Topology(
        topo.label + ", -metrics",
        [
            [*cmd, f"-metrics=127.0.0.1:{{{m}}}"]
            for cmd, m in zip(topo.commands, names, strict=True)
        ],
        topo.entry,
        topo.ports,
        topo.text,
        names,
    )


def self_cases(base: dict[str, Case]) -> dict[str, Case]:
    """gostfast against itself: metrics on vs off, and the access log on vs off."""
    out: dict[str, Case] = {}
    for name in ("tcp", "ws", "mws", "wss", "mwss"):
        topo = base[name].subject
        out[f"{name}-metrics"] = Case(f"{name} metrics on/off", with_metrics(topo), topo)
        quiet = Topology(
            topo.label + ", level warn", topo.commands, topo.entry, topo.ports, topo.text,
            env={"GOST_LOGGER_LEVEL": "warn"},
        )  # fmt: skip
        out[f"{name}-accesslog"] = Case(f"{name} access log on/off", topo, quiet)
        same = Topology(
            topo.label + ", again", topo.commands, topo.entry, topo.ports, topo.text,
        )  # fmt: skip
        out[f"{name}-aa"] = Case(f"{name} against itself", same, topo)
    return out


def cases(refpeer: str, tls_pair: str) -> dict[str, Case]:
    """The benchmark rows; ``tls_pair`` is "cert.pem,key.pem" for refpeer's TLS servers."""
    base = base_cases(refpeer, tls_pair)
    return {**base, **self_cases(base)}


def base_cases(refpeer: str, tls_pair: str) -> dict[str, Case]:
    """gostfast against a baseline (a direct connection, or refpeer)."""
    return {
        "tcp": Case(
            "tcp forward",
            Topology(
                "gostfast -L tcp://:A/echo",
                [[*GOSTFAST, "-L", "tcp://127.0.0.1:{A}/127.0.0.1:{echo}"]],
                "A",
                ["A"],
            ),
            Topology("direct to echo", [], "echo"),
        ),
        **{
            scheme: tunnel_case(refpeer, scheme, tls_pair)
            for scheme in ("ws", "mws", "wss", "mwss")
        },
        **{
            f"{scheme}-deflate": tunnel_case(refpeer, scheme, tls_pair, deflate=True)
            for scheme in ("ws", "mws")
        },
    }


class TextLoad:
    """Echo throughput with compressible text: ``conns`` connections, each writing
    ``per_conn`` bytes in 32 KiB writes while reading as much back (refpeer tcpbench's
    shape, with text instead of zeros); MB/s = bytes echoed back / s / 1e6."""

    _text: bytes = b""

    @classmethod
    def text(cls) -> bytes:
        if not cls._text:
            src = b"".join(p.read_bytes() for p in sorted((ROOT / "gostfast").rglob("*.py")))
            cls._text = (src * (4 * MiB // len(src) + 1))[: 4 * MiB]
        return cls._text

    @classmethod
    def run(cls, entry: int, per_conn: int, conns: int) -> float:
        text = memoryview(cls.text())
        counts = [0] * conns
        errors: list[BaseException] = []

        def one(i: int) -> None:
            try:
                with socket.create_connection(("127.0.0.1", entry), timeout=120) as s:

                    def send() -> None:
                        sent = 0
                        while sent < per_conn:
                            pos = sent % len(text)
                            k = min(32768, per_conn - sent, len(text) - pos)
                            s.sendall(text[pos : pos + k])
                            sent += k

                    t = threading.Thread(target=send, daemon=True)
                    t.start()
                    got = 0
                    while got < per_conn:
                        b = s.recv(1 << 16)
                        if not b:
                            raise RuntimeError(f"echo ended after {got} of {per_conn} bytes")
                        got += len(b)
                        counts[i] = got
                    t.join(120)
            except BaseException as exc:  # reported below, from the main thread
                errors.append(exc)

        start = time.perf_counter()
        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(conns)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        elapsed = time.perf_counter() - start
        if errors:
            raise RuntimeError(f"text load failed: {errors[0]!r}")
        return sum(counts) / elapsed / 1e6


def tls_files() -> str:
    """A self-signed pair for refpeer's wss/mwss servers (gostfast makes its own at start).

    The files live in a temporary directory removed when the bench exits.
    """
    import atexit
    import shutil
    import tempfile

    from gostfast.tlsutil.selfsigned import generate

    cert, key = generate()
    d = Path(tempfile.mkdtemp(prefix="gostfast-bench-"))
    atexit.register(shutil.rmtree, d, True)
    (d / "cert.pem").write_bytes(cert)
    (d / "key.pem").write_bytes(key)
    return f"{d / 'cert.pem'},{d / 'key.pem'}"


class Runner:
    def __init__(self, refpeer: str) -> None:
        self.refpeer = refpeer
        self.procs: list[subprocess.Popen] = []
        self.echo_port = free_port()

    def spawn(
        self, cmd: list[str], port: int | None, env: dict[str, str] | None = None
    ) -> subprocess.Popen:
        p = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **env} if env else None,
        )
        self.procs.append(p)
        if port is not None:
            wait_listening(port, p)
        return p

    def start_echo(self) -> None:
        self.spawn(
            [self.refpeer, "tcpecho", "-listen", f"127.0.0.1:{self.echo_port}"], self.echo_port
        )

    def start(self, topo: Topology) -> tuple[int, list[subprocess.Popen]]:
        ports = {"echo": self.echo_port}
        for name in topo.ports + topo.extra_ports:
            ports[name] = free_port()
        started = []
        # start from the far end (last command) so each one's upstream already listens
        for cmd, name in reversed(list(zip(topo.commands, topo.ports, strict=True))):
            started.append(self.spawn([c.format(**ports) for c in cmd], ports[name], topo.env))
        return ports[topo.entry], started

    def load(self, args: list[str]) -> str:
        out = subprocess.run([self.refpeer, *args], capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f"refpeer {' '.join(args)} failed: {out.stderr.strip()[-500:]}")
        return out.stdout.strip().splitlines()[-1]

    def throughput(self, entry: int, total_bytes: int, conns: int, text: bool = False) -> float:
        """MB/s echoed back with ``conns`` concurrent connections sharing ``total_bytes``
        (zeros from refpeer tcpbench, or ``text`` from TextLoad)."""
        if text:
            return TextLoad.run(entry, total_bytes // conns, conns)
        line = self.load(
            [
                "tcpbench",
                "-server",
                f"127.0.0.1:{entry}",
                "-bytes",
                str(total_bytes // conns),
                "-conns",
                str(conns),
                "-size",
                "32768",
            ]
        )
        return float(re.search(r"throughput_MBps=([\d.]+)", line).group(1))

    def rps(self, entry: int, seconds: float, clients: int = 1) -> dict[str, float]:
        """64-byte request/response rate, then the new-connection rate, with ``clients``
        in parallel (``refpeer rps -conns``): 1 is the latency figure (keys ``rps_64B``,
        ``conn_per_s``), more the capacity figure (keys ending ``_{clients}c``)."""
        line = self.load(
            ["rps", "-server", f"127.0.0.1:{entry}", "-seconds", str(seconds), "-size", "64"]
            + ["-conns", str(clients)]
        )
        suffix = "" if clients == 1 else f"_{clients}c"
        return {
            f"rps_64B{suffix}": float(re.search(r"rps=([\d.]+)", line).group(1)),
            f"conn_per_s{suffix}": float(re.search(r"conn_per_s=([\d.]+)", line).group(1)),
        }

    def measure(
        self,
        topo: Topology,
        bytes_total: int,
        conns: list[int],
        seconds: float,
        clients: list[int] = (1,),
    ) -> dict[str, float]:
        """Every metric on freshly started processes, so one metric never inherits another's state."""
        r: dict[str, float] = {}
        jobs = [
            (
                f"throughput_MBps_{c}conn",
                lambda e, c=c: self.throughput(e, bytes_total, c, topo.text),
            )
            for c in conns
        ]
        jobs += [("rps", lambda e, n=n: self.rps(e, seconds, n)) for n in clients]
        for key, job in jobs:
            entry, ps = self.start(topo)
            try:
                value = job(entry)
            finally:
                self.stop(ps)
            if isinstance(value, dict):
                r.update(value)
            else:
                r[key] = value
        return r

    @staticmethod
    def stop(ps: list[subprocess.Popen]) -> None:
        for p in ps:
            if p.poll() is None:
                p.terminate()
        for p in ps:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def close(self) -> None:
        self.stop(self.procs)


HALT_POLL = Path("/sys/module/haltpoll/parameters/guest_halt_poll_ns")


def read_halt_poll() -> str:
    """The guest's idle-poll window in ns, or "n/a" off a haltpoll guest.

    It decides what a cross-CPU wake-up costs on a VM (docs/performance.md),
    so every report states it.
    """
    try:
        return HALT_POLL.read_text().strip()
    except OSError:
        return "n/a"


@contextlib.contextmanager
def halt_poll(ns: int | None) -> Iterator[None]:
    """Set the haltpoll window for the run and put the old value back after."""
    if ns is None:
        yield
        return
    old = read_halt_poll()
    if old == "n/a":
        raise SystemExit(f"--halt-poll-ns: {HALT_POLL} does not exist (not a haltpoll guest)")
    try:
        HALT_POLL.write_text(str(ns))
    except OSError as e:
        raise SystemExit(f"--halt-poll-ns: cannot write {HALT_POLL}: {e} (needs root)") from e
    try:
        yield
    finally:
        HALT_POLL.write_text(old)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--cases",
        default="all",
        help="comma-separated case names, all (gostfast vs baselines) or everything "
        "(also the -metrics, -accesslog and -aa rows, gostfast against itself)",
    )
    ap.add_argument(
        "--mib", type=int, default=256, help="MiB echoed per throughput run (all conns together)"
    )
    ap.add_argument("--conns", default="1,8", help="concurrent connections for throughput runs")
    ap.add_argument("--seconds", type=float, default=2.0, help="seconds per rps / conn-rate phase")
    ap.add_argument(
        "--clients",
        default="1,32,128",
        help="clients in parallel for the rps / conn-rate rows (refpeer rps -conns): 1 is the "
        "latency figure, 32 and 128 the capacity figures; empty: no rps rows",
    )
    ap.add_argument("--json", help="write the results here")
    ap.add_argument(
        "--cpus",
        help="run every process (tunnels, echo, load) on these CPUs, e.g. 0 or 0,1: the rps "
        "row without the scheduler moving the chain between CPUs (docs/performance.md)",
    )
    ap.add_argument(
        "--halt-poll-ns",
        type=int,
        help="on a KVM guest with the haltpoll cpuidle driver, set guest_halt_poll_ns for the "
        "run (the kernel's default is 200000; 0 makes every idle vCPU halt, so each "
        "cross-CPU wake-up costs a host round trip) and restore it at the end",
    )
    args = ap.parse_args()
    with halt_poll(args.halt_poll_ns):
        return run(args)


def paired_ratios(runs: dict[str, list[dict[str, float]]]) -> dict[str, float]:
    """The median over rounds of each round's own gostfast / baseline ratio.

    Why beside the ratio of medians: the two measurements of one round are seconds
    apart, so whatever else slows the machine for a minute slows both; a per-round
    ratio cancels that drift, which the ratio of two medians taken over the whole
    run does not (on this VM the conn/s rows drift 8-9 % within a run)."""
    out: dict[str, float] = {}
    pairs = list(zip(runs["subject"], runs["baseline"], strict=True))
    for k in runs["subject"][0] if pairs else ():
        per_round = [s[k] / b[k] for s, b in pairs if b.get(k)]
        if per_round:
            out[k] = statistics.median(per_round)
    return out


def run(args: argparse.Namespace) -> int:
    """Measure every case asked for and print the medians and ratios."""
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})  # children inherit it
    refpeer = find_refpeer()
    all_cases = cases(refpeer, tls_files())
    names = (
        list(base_cases(refpeer, ""))
        if args.cases == "all"
        else list(all_cases)
        if args.cases == "everything"
        else args.cases.split(",")
    )
    conns = [int(c) for c in args.conns.split(",") if c]
    clients = [int(c) for c in args.clients.split(",") if c]
    runner = Runner(refpeer)
    results: dict[str, dict] = {}
    try:
        runner.start_echo()
        import gostfast

        print(
            f"# {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} nproc={os.cpu_count()} "
            f"gostfast compiled={gostfast.compiled} rounds={args.rounds} bytes={args.mib} MiB "
            f"cpus={sorted(os.sched_getaffinity(0))} guest_halt_poll_ns={read_halt_poll()}",
            flush=True,
        )
        for name in names:
            case = all_cases[name]
            runs: dict[str, list[dict[str, float]]] = {"subject": [], "baseline": []}
            for rnd in range(args.rounds):
                order = ("subject", "baseline") if rnd % 2 == 0 else ("baseline", "subject")
                for role in order:
                    topo = getattr(case, role)
                    m = runner.measure(topo, args.mib * MiB, conns, args.seconds, clients)
                    runs[role].append(m)
                    print(f"round {rnd + 1} {name:<12} {topo.label:<40} {m}", flush=True)
            med = {
                role: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
                for role, rs in runs.items()
            }
            ratio = {
                k: med["subject"][k] / med["baseline"][k]
                for k in med["subject"]
                if med["baseline"][k]
            }
            results[name] = {
                "subject": case.subject.label,
                "baseline": case.baseline.label,
                "median": med,
                "ratio": ratio,
                "paired": paired_ratios(runs),
                "runs": runs,
            }
    finally:
        runner.close()
    print(
        "\n# medians (MB/s = bytes echoed back / s / 1e6); ratio = gostfast / baseline "
        "(-metrics rows: on / off; -accesslog rows: info / warn; -aa rows: the same twice)"
    )
    for name, r in results.items():
        print(f"{name}: gostfast = {r['subject']}  vs  baseline = {r['baseline']}")
        for k in r["median"]["subject"]:
            print(
                f"  {k:<24} {r['median']['subject'][k]:>10.1f} {r['median']['baseline'][k]:>10.1f}   ratio {r['ratio'].get(k, float('nan')):.2f}"
                f"   paired {r['paired'].get(k, float('nan')):.2f}"
            )
    if args.json:
        machine = {
            "nproc": os.cpu_count(),
            "cpus": sorted(os.sched_getaffinity(0)),
            "guest_halt_poll_ns": read_halt_poll(),
        }
        Path(args.json).write_text(json.dumps({"machine": machine, "cases": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
