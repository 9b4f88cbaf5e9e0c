"""Shared fixtures: free loopback ports, gostfast processes, a real HTTP server, refpeer.

Everything binds 127.0.0.1 and every process started here is stopped by the fixture.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REFPEER_BUILD = ROOT.parent / "shared" / "tools" / "refpeer" / "build.sh"


from support import Procs, codec_twin, free_port, wait_port  # noqa: E402,F401


@pytest.fixture(scope="module", params=["pure", "compiled"])
def impl(request):
    """The codec the test module names in ``CODEC``, once per twin: every codec test runs
    on the pure twin and on the compiled module (skipped, saying why, when not built)."""
    return codec_twin(request.module.CODEC, request.param)


@pytest.fixture(scope="module")
def compiled(request):
    """The compiled module of the test module's ``CODEC``, for tests comparing the twins."""
    return codec_twin(request.module.CODEC, "compiled")


@pytest.fixture
def procs():
    ps = Procs()
    yield ps
    ps.stop_all()


@pytest.fixture
def port():
    return free_port


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def http_server(tmp_path):
    """A real HTTP/1.1 server on 127.0.0.1 serving ``blob.bin`` (3 MB of random bytes)."""
    blob = os.urandom(3 * 1024 * 1024 + 17)
    (tmp_path / "blob.bin").write_bytes(blob)
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    _QuietHandler.protocol_version = "HTTP/1.1"
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    srv.blob = blob  # type: ignore[attr-defined]
    srv.port = srv.server_address[1]  # type: ignore[attr-defined]
    yield srv
    srv.shutdown()
    srv.server_close()


@functools.lru_cache(maxsize=1)
def _refpeer_path() -> str:
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
        return ""
    out = subprocess.run(
        ["sh", str(REFPEER_BUILD), str(cached)], capture_output=True, text=True, timeout=600
    )
    if out.returncode != 0:
        raise RuntimeError(f"refpeer build failed: {out.stderr.strip()}")
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def refpeer() -> str:
    """Path of the Go reference peer, built on first use (skips where ../shared is absent)."""
    path = _refpeer_path()
    if not path:
        why = f"refpeer unavailable: {REFPEER_BUILD} not found and GOSTFAST_REFPEER not set"
        if os.environ.get("GOSTFAST_REQUIRE_REFPEER"):  # CI jobs that built it: never skip
            pytest.fail(why)
        pytest.skip(why)
    return path


@pytest.fixture
def curl() -> str:
    path = shutil.which("curl")
    if not path:
        pytest.skip("curl not installed")
    return path
