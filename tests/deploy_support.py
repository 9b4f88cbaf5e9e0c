"""Real front ends for the deployment tests: nginx and HAProxy (Debian's), on loopback ports.

The configurations they run come from docs/deploy.md (``doc_block``), with only
addresses, ports and paths replaced (``fill``, which fails when a replaced text
is missing), so the documented text is the tested text. Each server is started
in the foreground with its log captured (``Procs``) and stopped by ``stop``
(SIGTERM, then SIGKILL), whatever the test did.
"""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

from support import Procs, debian_tool, output

DEPLOY_MD = Path(__file__).resolve().parent.parent / "docs" / "deploy.md"

_BLOCK = re.compile(r"<!-- deploy-test: (?P<name>\S+) -->\n```[a-z]*\n(?P<body>.*?)\n```", re.S)


def doc_block(name: str) -> str:
    """The fenced block docs/deploy.md marks ``<!-- deploy-test: name -->``."""
    blocks = {m["name"]: m["body"] + "\n" for m in _BLOCK.finditer(DEPLOY_MD.read_text())}
    assert name in blocks, f"docs/deploy.md has no block marked deploy-test: {name}"
    return blocks[name]


def fill(text: str, subs: dict[str, str]) -> str:
    """``text`` with each key replaced by its value; every key must occur in it."""
    for old, new in subs.items():
        assert old in text, f"{old!r} is no longer in the documented block:\n{text}"
        text = text.replace(old, new)
    return text


def upgrade_request(host: str, path: str = "/ws", headers: dict[str, str] | None = None) -> bytes:
    """A websocket upgrade request with RFC 6455's sample key, and ``headers`` added."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        f"Sec-WebSocket-Version: 13\r\n{extra}\r\n"
    ).encode()


def status_line(s: socket.socket) -> bytes:
    """The first line the server answers on ``s`` (b"" if it closed without one)."""
    head = b""
    while b"\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            break
        head += chunk
    return head.split(b"\r\n", 1)[0]


def log_lines(proc: subprocess.Popen, needle: str, timeout: float = 10.0) -> list[str]:
    """The lines of ``proc``'s log holding ``needle``, waiting up to ``timeout`` for one."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [ln for ln in output(proc).splitlines() if needle in ln]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def pem_files(work: Path, name: str = "tunnel.example.com") -> dict[str, Path]:
    """A CA and a server certificate for ``name`` and 127.0.0.1 signed by it, as files."""
    from gostfast.tlsutil import selfsigned

    ca = selfsigned.generate("gostfast test CA", "gostfast tests")
    cert, key = selfsigned.generate_signed(*ca, name, sans=[name, "127.0.0.1"])
    files = {"ca": work / "ca.pem", "cert": work / "fullchain.pem", "key": work / "privkey.pem"}
    files["ca"].write_bytes(ca[0])
    files["cert"].write_bytes(cert)
    files["key"].write_bytes(key)
    return files


class _Server:
    """A foreground server process that ``stop`` ends (SIGTERM, then SIGKILL)."""

    proc: subprocess.Popen | None = None

    def log(self) -> str:
        return output(self.proc) if self.proc is not None else ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)


class Nginx(_Server):
    """nginx running ``http_conf`` (what goes inside ``http {}``), its files under ``work``."""

    MAIN = """
worker_processes 1;
pid {work}/nginx.pid;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {work}/body;
  proxy_temp_path {work}/proxy;
  fastcgi_temp_path {work}/fastcgi;
  uwsgi_temp_path {work}/uwsgi;
  scgi_temp_path {work}/scgi;
{http_conf}
}}
"""

    def __init__(self, procs: Procs, work: Path, http_conf: str, ports: list[int]) -> None:
        binary = debian_tool("nginx", "nginx-light")
        conf = work / "nginx.conf"
        conf.write_text(self.MAIN.format(work=work, http_conf=http_conf))
        # its error log goes to stderr, so a failed start says why
        self.proc = procs.start(
            [binary, "-p", str(work), "-c", str(conf), "-e", "stderr", "-g", "daemon off;"],
            wait_ports=ports,
        )


class HAProxy(_Server):
    """HAProxy in the foreground (``-db``) running ``conf`` after a minimal ``global``."""

    GLOBAL = """
global
    pidfile {work}/haproxy.pid
    log stderr format short local0 info

"""

    def __init__(self, procs: Procs, work: Path, conf: str, ports: list[int]) -> None:
        binary = debian_tool("haproxy", "haproxy")
        path = work / "haproxy.cfg"
        path.write_text(self.GLOBAL.format(work=work) + conf)
        check = subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, timeout=30)
        assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
        self.proc = procs.start([binary, "-db", "-f", str(path)], wait_ports=ports)
