"""Real servers for the loader tests: Debian's redis-server and a local HTTP server.

``RedisServer`` runs ``redis-server`` on a free loopback port, in a temporary
directory, saving nothing (``--save '' --appendonly no``), and kills it at the
end; its ``client`` is redis-py's. ``ListServer`` serves a path's body from a
dict the test changes (``set``), or an error status, over real HTTP.
"""

from __future__ import annotations

import base64
import http.server
import shutil
import subprocess
import tempfile
import threading
import time

from proxy_support import http_connect_echo
from support import debian_tool, free_port, output, wait_port

WAIT = 30.0  # how long a reload may take to show, under a loaded machine


class RedisServer:
    def __init__(self, password: str = "") -> None:
        import redis

        binary = debian_tool("redis-server", "redis-server")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="gostfast-redis-")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir]
            + (["--requirepass", password] if password else []),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        wait_port(self.port, proc=self.proc)
        self.addr = f"127.0.0.1:{self.port}"
        self.client = redis.Redis(
            host="127.0.0.1", port=self.port, password=password or None, decode_responses=True
        )

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


class ListServer:
    """A real HTTP server whose paths answer what ``set`` last put there (else 404)."""

    def __init__(self) -> None:
        self.bodies: dict[str, tuple[int, bytes]] = {}
        self.hits: dict[str, int] = {}
        bodies, hits = self.bodies, self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                hits[self.path] = hits.get(self.path, 0) + 1
                status, body = bodies.get(self.path, (404, b"not here\n"))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def set(self, path: str, body: str, status: int = 200) -> None:
        self.bodies[path] = (status, body.encode())

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def proxy_connect(
    port: int, target: str, user: str = "", password: str = "", payload=b""
) -> tuple[bytes, bytes]:
    """CONNECT ``target`` through the http proxy on ``port`` (with basic proxy auth when
    ``user``): its answer head, then the echo of ``payload`` (or all until close)."""
    auth = ""
    if user:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        auth = f"Proxy-Authorization: Basic {token}\r\n"
    return http_connect_echo(port, target, payload, auth)


def eventually(check, what: str, timeout: float = WAIT):
    """``check()``'s first truthy answer, polled until ``timeout``; fails naming ``what``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what}: not seen within {timeout}s (last: {last!r})")


def log_lines(proc, needle: str) -> list[str]:
    return [ln for ln in output(proc).splitlines() if needle in ln]
