"""GOST's logging controls on a running gostfast: ``log:``, GOST_LOGGER_LEVEL, -D.

Each test starts a real process with a forward service whose target port is
closed, so one client connection produces an error line ("every forward
target failed") while start-up produces an info line ("listening on").
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

from support import GOSTFAST, free_port, read_shared_file

LISTENING = "listening on"
FAILED = "every forward target failed"


def _config(tmp_path, port: int, target: int, log_block: str) -> str:
    path = tmp_path / "gost.yaml"
    path.write_text(
        "services:\n"
        f"- name: s1\n  addr: 127.0.0.1:{port}\n"
        "  handler: {type: tcp}\n  listener: {type: tcp}\n"
        f"  forwarder: {{nodes: [{{name: t, addr: '127.0.0.1:{target}'}}]}}\n" + log_block
    )
    return str(path)


def _provoke_error(port: int) -> None:
    """One client connection to a service whose target refuses: gostfast logs an error."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.settimeout(5)
        assert s.recv(1) == b""  # closed by gostfast once the dial failed


def _text(f) -> str:
    return read_shared_file(f).decode(errors="replace")


def _wait_for(f, needle: str, timeout: float = 5.0) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        text = _text(f) if not isinstance(f, str) else open(f).read()
        if needle in text:
            return text
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} never logged; got:\n{text}")


def test_log_block_json_to_a_file_at_warn(procs, tmp_path) -> None:
    port, target = free_port(), free_port()
    log_file = tmp_path / "logs" / "gost.log"  # the directory does not exist yet
    cfg = _config(
        tmp_path, port, target, f"log: {{level: warn, format: json, output: {log_file}}}\n"
    )
    p = procs.gostfast("-C", cfg, wait_ports=[port])
    _provoke_error(port)
    text = _wait_for(str(log_file), FAILED)
    entries = [json.loads(line) for line in text.splitlines()]
    assert entries, text
    for e in entries:
        assert set(e) >= {"time", "level", "msg", "logger"}, e
        assert e["level"] in ("warning", "error", "fatal"), e
    assert any(FAILED in e["msg"] and e["level"] == "error" for e in entries), text
    assert LISTENING not in text  # info is below warn
    assert _text(p.err_file) == ""  # everything went to the file


def test_gost_logger_level_env_quietens_info(procs) -> None:
    port, target = free_port(), free_port()
    p = procs.gostfast(
        "-L",
        f"tcp://127.0.0.1:{port}/127.0.0.1:{target}",
        wait_ports=[port],
        env={"GOST_LOGGER_LEVEL": "error"},
    )
    _provoke_error(port)
    text = _wait_for(p.err_file, FAILED)
    assert LISTENING not in text, text


def test_debug_flag_wins_over_the_env_and_the_block(procs, tmp_path) -> None:
    port, target = free_port(), free_port()
    cfg = _config(tmp_path, port, target, "log: {level: error}\n")
    p = procs.gostfast("-D", "-C", cfg, wait_ports=[port], env={"GOST_LOGGER_LEVEL": "fatal"})
    text = _wait_for(p.err_file, LISTENING)
    assert " DEBUG " in text, text  # -D: debug lines too (text format by default)


def test_env_level_keeps_the_configured_output(procs, tmp_path) -> None:
    port, target = free_port(), free_port()
    log_file = tmp_path / "gost.log"
    cfg = _config(tmp_path, port, target, f"log: {{level: error, output: {log_file}}}\n")
    procs.gostfast("-C", cfg, wait_ports=[port], env={"GOST_LOGGER_LEVEL": "info"})
    text = _wait_for(str(log_file), LISTENING)  # the env raised the level; the file stays
    assert " INFO " in text


def test_output_stdout_and_none(procs, tmp_path) -> None:
    port, target = free_port(), free_port()
    cfg = _config(tmp_path, port, target, "log: {output: stdout}\n")
    p = procs.gostfast("-C", cfg, wait_ports=[port])
    _wait_for(p.out_file, LISTENING)
    assert _text(p.err_file) == ""

    port2, target2 = free_port(), free_port()
    (tmp_path / "none").mkdir()
    cfg2 = _config(tmp_path / "none", port2, target2, "log: {output: none}\n")
    q = procs.gostfast("-C", cfg2, wait_ports=[port2])
    _provoke_error(port2)
    time.sleep(0.3)
    assert _text(q.out_file) == "" and _text(q.err_file) == ""


def test_unwritable_log_file_falls_back_to_stderr(procs, tmp_path) -> None:
    port, target = free_port(), free_port()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cfg = _config(tmp_path, port, target, f"log: {{output: {blocker}/sub/gost.log}}\n")
    p = procs.gostfast("-C", cfg, wait_ports=[port])
    text = _wait_for(p.err_file, LISTENING)
    assert "gostfast: warning: log output" in text and "logging to stderr" in text, text


def test_bad_env_level_is_a_config_error() -> None:
    out = subprocess.run(
        [*GOSTFAST, "-L", f"tcp://127.0.0.1:{free_port()}/127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=10,
        env={**os.environ, "GOST_LOGGER_LEVEL": "loud"},
    )
    assert out.returncode == 2, out
    assert "GOST_LOGGER_LEVEL: unknown log level 'loud' (allowed: trace, debug," in out.stderr
