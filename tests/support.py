"""Test helpers importable from every test module (tests/ is on pytest's pythonpath)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time


def gostfast_command() -> list[str]:
    """The installed ``gostfast`` command, as an operator runs it.

    Never ``python -m gostfast``: from the repository root that imports the
    uncompiled source tree instead of the installed package. Where no console
    script exists (a development venv that puts the tree on sys.path) the
    fallback drops the current directory from sys.path the same way.
    """
    script = os.path.join(os.path.dirname(sys.executable), "gostfast")
    if os.access(script, os.X_OK):
        return [script]
    return [
        sys.executable,
        "-c",
        "import sys; del sys.path[0]; from gostfast.cli import main; main()",
    ]


GOSTFAST = gostfast_command()


def codec_implementations(name: str) -> list:
    """pytest params for codec ``name``: its pure twin and its compiled module.

    The compiled one is skipped, with the reason, when GOSTFAST_NO_EXTENSIONS=1
    asks for the twins only or when it is not built.
    """
    import pytest

    import gostfast._core as core

    compiled = None if core.FORCE_PURE else core.compiled_module(name)
    reason = (
        "GOSTFAST_NO_EXTENSIONS=1: pure twins only"
        if core.FORCE_PURE
        else f"{name}_c not built (cythonize -i gostfast/_core/{name}_c.pyx)"
    )
    return [
        pytest.param(core.pure(name), id="pure"),
        pytest.param(
            compiled, id="compiled", marks=pytest.mark.skipif(compiled is None, reason=reason)
        ),
    ]


def run_curl(*args: str) -> subprocess.CompletedProcess:
    """The real curl, bounded in time; modules using it add ``pytestmark = usefixtures("curl")``."""
    return subprocess.run(
        ["curl", "-sS", "--max-time", "20", *args], capture_output=True, timeout=40
    )


def recv_exact(s: socket.socket, n: int) -> bytes:
    """Exactly ``n`` bytes (fewer only at EOF); MSG_WAITALL is not reliable with timeouts."""
    got = bytearray()
    while len(got) < n:
        b = s.recv(n - len(got))
        if not b:
            break
        got += b
    return bytes(got)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tcp_sockets(port: int, state: str) -> int:
    """How many TCP sockets have local port ``port`` in ``state`` ("0A" LISTEN, "01" ESTABLISHED).

    Read from /proc/net/tcp{,6}, so asking never creates a connection.
    """
    want = f":{port:04X}"
    n = 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[1].endswith(want) and parts[3] == state:
                        n += 1
        except OSError:
            continue
    return n


def is_listening(port: int) -> bool:
    """True when a TCP socket LISTENs on ``port``, found without connecting to it.

    Connecting would be seen as a client by the service under test (and, for a
    forwarder, by its target), so readiness is read from /proc/net/tcp{,6}.
    """
    return tcp_sockets(port, "0A") > 0


def established_to(port: int) -> int:
    """ESTABLISHED TCP sockets whose LOCAL port is ``port``: one per accepted connection."""
    return tcp_sockets(port, "01")


def proc_status_kib(pid: int, field: str) -> int:
    """A memory figure from /proc/PID/status in KiB (``VmRSS``, ``VmHWM``...)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def wait_port(port: int, timeout: float = 10.0, proc: subprocess.Popen | None = None) -> None:
    """Wait until something listens on 127.0.0.1:``port`` (or ``proc`` dies: then raise with its log)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"process exited with {proc.returncode} before port {port} opened:\n" + output(proc)
            )
        if is_listening(port):
            return
        time.sleep(0.02)
    raise RuntimeError(f"port {port} never opened")


def debian_tool(name: str, package: str) -> str:
    """The path of a Debian tool a test drives. .ci/run installs ``package``, so in CI
    (CI=true) its absence fails the test; elsewhere the test is skipped, saying why."""
    import pytest

    found = shutil.which(name) or (
        f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else ""
    )
    if not found:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is not installed (.ci/run installs Debian's {package})")
        pytest.skip(f"{name} is not installed (apt-get install {package})")
    return found


def wait_udp_port(port: int, timeout: float = 10.0) -> None:
    """Wait until a UDP socket is bound on ``port`` (read from /proc/net/udp{,6}, sending
    nothing: a datagram would start an association on a udp listener)."""
    want = f":{port:04X}"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for table in ("/proc/net/udp", "/proc/net/udp6"):
            with contextlib.suppress(OSError), open(table) as f:
                if any(line.split()[1].endswith(want) for line in list(f)[1:]):
                    return
        time.sleep(0.02)
    raise RuntimeError(f"udp port {port} never bound")


def output(proc: subprocess.Popen) -> str:
    """Everything the process wrote to stdout and stderr so far."""
    text = ""
    for f in (getattr(proc, "out_file", None), getattr(proc, "err_file", None)):
        if f is not None:
            f.flush()
            f.seek(0)
            text += f.read().decode(errors="replace")
    return text


class Procs:
    """Starts processes (output to temporary files, never to a pipe that can fill) and always stops them."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, args: list[str], wait_ports=(), env=None) -> subprocess.Popen:
        e = dict(os.environ)
        e.update(env or {})
        out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
        p = subprocess.Popen(args, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=e)
        p.out_file, p.err_file = out, err  # type: ignore[attr-defined]
        self.procs.append(p)
        for port in wait_ports:
            wait_port(port, proc=p)
        return p

    def start_gostfasts(self, starts, ports: dict[str, int]) -> list[subprocess.Popen]:
        """Start several gostfast processes at once, then wait for each one's named ports.

        ``starts`` is a list of (argv, [port names]); ``ports`` maps names to numbers.
        """
        started = [(self.gostfast(*args), names) for args, names in starts]
        for proc, names in started:
            for n in names:
                wait_port(ports[n], proc=proc)
        return [proc for proc, _ in started]

    def gostfast(self, *args: str, wait_ports=(), env=None) -> subprocess.Popen:
        return self.start([*GOSTFAST, *args], wait_ports, env)

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
            with contextlib.suppress(Exception):
                p.wait(5)
            for f in (p.out_file, p.err_file):  # type: ignore[attr-defined]
                f.close()


# Client ports handed out by connect_unique, for the whole test session.
_USED_CLIENT_PORTS: set[int] = set()


def connect_unique(port: int, timeout: float) -> socket.socket:
    """A connection to 127.0.0.1:``port`` from a source port no earlier call used.

    Tests that find a connection's log lines by its address need this: the
    kernel reuses ephemeral ports within seconds, and a line about an earlier
    connection from the same port would be counted too.
    """
    spare = []
    try:
        while True:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            if s.getsockname()[1] not in _USED_CLIENT_PORTS:
                break
            spare.append(s)  # held open so bind() cannot hand the same port back
    finally:
        for x in spare:
            x.close()
    _USED_CLIENT_PORTS.add(s.getsockname()[1])
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    return s


def assert_config_error(text: str, path: str, message: str) -> None:
    """Loading the YAML ``text`` fails at ``path`` with a message containing ``message``."""
    from gostfast.config.errors import ConfigError
    from gostfast.config.yaml import load_text

    try:
        load_text(text)
    except ConfigError as e:
        assert (e.path, message in e.message) == (path, True), str(e)
        assert str(e) == f"{e.path}: {e.message}"
        return
    raise AssertionError(f"no ConfigError for {text!r}")
