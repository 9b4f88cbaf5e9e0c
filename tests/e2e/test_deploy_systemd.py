"""docs/deploy.md's systemd unit: systemd accepts it, and its commands do what it says.

``systemd-analyze verify`` (Debian's systemd) reads the documented unit with
only the paths replaced; then its ExecStart runs as systemd would start it,
on one CPU (``--workers auto`` counts one there, as on a small VM), its
ExecReload signal reloads without ending a tunnel, and the stop signal
(SIGTERM, KillMode=mixed: to the main process only) ends it with exit 0.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from deploy_support import doc_block, fill
from proxy_support import TCPServer, echo
from support import GOSTFAST, Procs, debian_tool, free_port, output, wait_port

WAIT = 60.0

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="a systemd unit is Linux's")


def _service_section(unit: str) -> dict[str, str]:
    keys: dict[str, str] = {}
    section = ""
    for line in unit.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            keys[k] = v
    return keys


@pytest.fixture
def unit_files():
    work = Path(tempfile.mkdtemp(prefix="gostfast-deploy-systemd-"))
    target = TCPServer(echo)
    ports = {"ws": free_port(), "mws": free_port()}
    conf = work / "gost.yaml"
    conf.write_text(
        fill(
            doc_block("gost.yaml"),
            {
                "127.0.0.1:8080": f"127.0.0.1:{ports['ws']}",
                "127.0.0.1:8081": f"127.0.0.1:{ports['mws']}",
                "127.0.0.1:22": f"127.0.0.1:{target.port}",
            },
        )
    )
    # the installed command (a console script; GOSTFAST's fallback is no unit's ExecStart)
    binary = GOSTFAST[0] if len(GOSTFAST) == 1 else shutil.which("gostfast") or ""
    unit = fill(
        doc_block("gostfast.service"),
        {"/opt/gostfast/bin/gostfast": binary, "/etc/gostfast/gost.yaml": str(conf)},
    )
    (work / "gostfast.service").write_text(unit)
    try:
        yield {"work": work, "unit": unit, "ports": ports}
    finally:
        target.close()
        shutil.rmtree(work, ignore_errors=True)


def test_systemd_accepts_the_unit(unit_files):
    analyze = debian_tool("systemd-analyze", "systemd")
    res = subprocess.run(
        [analyze, "verify", str(unit_files["work"] / "gostfast.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # it reports what it ignores on stderr, and exits 0 all the same
    assert (res.returncode, res.stderr) == (0, ""), res.stdout + res.stderr


async def _ws_echo(port: int, payload: bytes, ws=None):
    """Echo ``payload`` over a new websocket (or over ``ws``); returns the websocket."""
    from websockets.asyncio.client import connect

    if ws is None:
        ws = await connect(f"ws://127.0.0.1:{port}/ws", close_timeout=5)
    await ws.send(payload)
    got = b""
    while len(got) < len(payload):
        got += await asyncio.wait_for(ws.recv(), 20)
    assert got == payload
    return ws


def _wait_log(proc: subprocess.Popen, text: str) -> None:
    end = time.monotonic() + WAIT
    while text not in output(proc):
        assert time.monotonic() < end, f"no {text!r} in the log:\n{output(proc)}"
        assert proc.poll() is None, output(proc)
        time.sleep(0.05)


def test_the_units_start_reload_and_stop_on_one_cpu(unit_files):
    service = _service_section(unit_files["unit"])
    assert service["Type"] == "simple" and service["KillMode"] == "mixed"
    env = dict(kv.split("=", 1) for kv in shlex.split(service.get("Environment", "")))
    procs = Procs()
    try:
        # as systemd execs it; taskset leaves one CPU, so --workers auto counts one
        taskset = debian_tool("taskset", "util-linux")
        proc = procs.start([taskset, "-c", "0", *shlex.split(service["ExecStart"])], env=env)
        ports = unit_files["ports"]
        for port in ports.values():
            wait_port(port, proc=proc)
        _wait_log(proc, "1 workers serving")

        async def across_the_reload() -> None:
            before = await _ws_echo(ports["ws"], os.urandom(50_000))
            reload = shlex.split(service["ExecReload"].replace("$MAINPID", str(proc.pid)))
            subprocess.run(reload, check=True, timeout=30)
            await asyncio.to_thread(_wait_log, proc, "reload (SIGHUP)")
            await _ws_echo(ports["ws"], os.urandom(50_000), before)  # drained, not cut
            await (await _ws_echo(ports["ws"], os.urandom(50_000))).close()  # a new worker
            await before.close()

        asyncio.run(across_the_reload())
        assert proc.poll() is None, output(proc)
        proc.send_signal(signal.SIGTERM)  # systemd's stop, to the main process only
        assert proc.wait(WAIT) == 0, output(proc)
    finally:
        procs.stop_all()
