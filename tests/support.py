"""Test helpers importable from every test module (tests/ is on pytest's pythonpath)."""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

from gostfast._core import select

wsframe = select("wsframe")
smux = select("smux")


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


def codec_twin(name: str, which: str):
    """Codec ``name``'s ``which`` twin ("pure" or "compiled"); the compiled one skips the
    test, with the reason, when GOSTFAST_NO_EXTENSIONS=1 asks for the twins only or when
    it is not built."""
    import pytest

    import gostfast._core as core

    if which == "pure":
        return core.pure(name)
    if core.FORCE_PURE:
        pytest.skip("GOSTFAST_NO_EXTENSIONS=1: pure twins only")
    compiled = core.compiled_module(name)
    if compiled is None:
        pytest.skip(f"{name}_c not built (cythonize -i gostfast/_core/{name}_c.pyx)")
    return compiled


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


class ThreadedServer:
    """A TCP server on 127.0.0.1 that serves each connection in its own thread.

    Subclasses set their state, then call ``super().__init__()`` and implement ``serve``.
    """

    def __init__(self, backlog: int = 128) -> None:
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(backlog)
        self.port: int = self.srv.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.srv.close()


#: ports free_port handed out lately: the kernel may pick a just-closed port again at
#: once, and two calls for one command line got the same port ("Address already in use")
_recent_ports: collections.deque = collections.deque(maxlen=256)


def free_port() -> int:
    """A loopback port nothing listens on, and none of the last 256 this process handed out."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _recent_ports:
            _recent_ports.append(port)
            return port


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


def wait_port(port: int, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    """Wait until something listens on 127.0.0.1:``port`` (or ``proc`` dies: then raise with its log).

    The bound is for a start-up that never comes, not a measure of one: a gostfast
    with ``-api`` took 9.5 s to listen on this 2-vCPU VM at load 15 (3 s typical),
    and 10 s failed such runs with "port never opened" while nothing was wrong.
    """
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


def read_shared_file(f) -> bytes:
    """All of a file that a running child process writes to, read without moving its offset.

    Why not ``seek(0)`` + ``read()``: the child inherited the descriptor, so parent and
    child share one file offset, and a line the child writes between the parent's seek and
    the end of its read lands at the seek's offset, over the file's first lines (seen:
    13,000 such reads during 20,000 lines written lost 4,901 of them). ``os.pread`` reads
    at an explicit offset and leaves the shared one where the child's writes expect it.
    """
    fd, chunks, at = f.fileno(), [], 0
    while chunk := os.pread(fd, 1 << 20, at):
        chunks.append(chunk)
        at += len(chunk)
    return b"".join(chunks)


def output(proc: subprocess.Popen) -> str:
    """Everything the process wrote to stdout and stderr so far."""
    text = ""
    for f in (getattr(proc, "out_file", None), getattr(proc, "err_file", None)):
        if f is not None:
            text += read_shared_file(f).decode(errors="replace")
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


def ws_client_upgrade(sock, port: int, path: str = "/ws") -> bytes:
    """GOST's websocket upgrade over a connected ``sock``; returns bytes that came after the 101."""
    from gostfast.proto import wshandshake

    key = wshandshake.make_key()
    sock.sendall(wshandshake.build_client_request(f"127.0.0.1:{port}", path, key))
    return read_101(sock, key)


def read_101(sock, key: str) -> bytes:
    """Read the server's answer to an upgrade sent with ``key``, check it is GOST's 101
    for that key; returns the bytes that came after it."""
    from gostfast.proto import http1, wshandshake

    buf = b""
    while b"\r\n\r\n" not in buf:
        b = sock.recv(4096)
        assert b, f"connection closed during the upgrade: {buf!r}"
        buf += b
    head, rest = buf.split(b"\r\n\r\n", 1)
    wshandshake.check_client_response(http1.parse_response(head + b"\r\n\r\n"), key)
    return rest


def client_tls(sock: socket.socket) -> ssl.SSLSocket:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # gostfast's self-signed certificate, as GOST clients do
    return ctx.wrap_socket(sock)


class RawWS:
    """A hand-driven websocket client: masked frames out, the server's frames parsed in."""

    def __init__(self, port: int, tls: bool = False, timeout: float = 20.0) -> None:
        self.raw = connect_unique(port, timeout)
        self.sock = client_tls(self.raw) if tls else self.raw
        rest = ws_client_upgrade(self.sock, port)
        self.upgraded_at = time.monotonic()
        self.ws_parser = wsframe.FrameParser(False)
        self.events: list[tuple[int, bytes]] = []
        self.eof = False
        self._feed(rest)

    @staticmethod
    def frame(op: int, payload: bytes, fin: bool = True) -> bytes:
        return bytes(wsframe.build_frame(op, payload, fin, os.urandom(4)))

    def send_message(self, payload) -> None:
        self.sock.sendall(wsframe.build_frame(wsframe.OP_BINARY, payload, True, os.urandom(4)))

    def _feed(self, data: bytes) -> None:
        self.events += [(op, bytes(p)) for op, p in self.ws_parser.feed(data)]

    def pump(self, timeout: float) -> bool:
        """Read once (up to ``timeout``); False at EOF or reset."""
        if self.eof:
            return False
        self.sock.settimeout(timeout)
        try:
            b = self.sock.recv(1 << 20)
        except (TimeoutError, ssl.SSLWantReadError):
            return True
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            self.eof = True
            return False
        if not b:
            self.eof = True
            return False
        self._feed(b)
        return True

    def wait_event(self, op: int, payload: bytes, timeout: float = 20.0) -> None:
        end = time.monotonic() + timeout
        while (op, payload) not in self.events:
            if time.monotonic() > end or not self.pump(0.2):
                raise AssertionError(f"no opcode {op} {payload!r} (eof={self.eof})")

    def ping_sync(self, tag: bytes, timeout: float = 30.0) -> None:
        """Ping and wait for its pong: the server has handled everything sent before."""
        self.sock.sendall(self.frame(wsframe.OP_PING, tag))
        self.wait_event(wsframe.OP_PONG, tag, timeout)

    def smux_data(self, sid: int) -> bytes:
        """Payload received on smux stream ``sid`` (the events parsed as one smux byte stream)."""
        parser = smux.FrameParser(1)
        got = bytearray()
        for op, p in self.events:
            if op == wsframe.OP_BINARY:
                for cmd, s, payload in parser.feed(p):
                    if cmd == smux.CMD_PSH and s == sid:
                        got += payload
        return bytes(got)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def echo_roundtrip(port: int, data: bytes, timeout: float = 30.0) -> bytes:
    """Send ``data`` to the echoing tunnel at ``port`` while reading the echo back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.settimeout(timeout)
        t = threading.Thread(target=s.sendall, args=(data,), daemon=True)
        t.start()
        got = bytearray()
        while len(got) < len(data):
            b = s.recv(1 << 20)
            if not b:
                break
            got += b
        t.join(timeout)
    return bytes(got)


def assert_alive_and_clean(proc: subprocess.Popen) -> None:
    """``proc`` still runs and its log shows no traceback or unhandled task error."""
    assert proc.poll() is None, output(proc)
    log = output(proc)
    for bad in ("Traceback", "Task exception was never retrieved", "Exception in callback"):
        assert bad not in log, log[-3000:]


class Recorder:
    """An endpoint's consumer that records what it is given (data, EOF, the close),
    for tests of endpoints without sockets (smux streams, the websocket adapter)."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.eof = False
        self.closed = False
        self.close_exc: BaseException | None = None

    def on_data(self, ep, data) -> None:
        self.data += data

    def on_eof(self, ep) -> None:
        self.eof = True

    def on_close(self, ep, exc) -> None:
        self.closed = True
        self.close_exc = exc

    def on_write_paused(self, ep) -> None:
        pass

    def on_write_resumed(self, ep) -> None:
        pass
