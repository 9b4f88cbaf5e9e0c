"""The command line outside config errors: -V, Go-style flag spellings, start failures."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from support import GOSTFAST, free_port

import gostfast

EXIT_START = 1


def gostfast_run(*args: str, env: dict[str, str] | None = None, timeout: float = 10.0, cwd=None):
    e = dict(os.environ)
    e.update(env or {})
    try:
        return subprocess.run(
            [*GOSTFAST, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=e,
            cwd=cwd,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"gostfast {args} still running after {timeout}s: {exc.stderr!r}")


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
        return True
    except OSError:
        return False


# ---------------------------------------------------------------- -V


def test_version_says_which_codecs_run() -> None:
    out = gostfast_run("-V")
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip()
    assert line.startswith(f"gostfast {gostfast.__version__} ")
    # the child inherits our environment, so it makes the same choice we do
    assert ("compiled" if gostfast.compiled else "pure") in line
    assert ("pure" in line) != ("compiled" in line)


def test_version_reports_pure_when_extensions_are_disabled() -> None:
    out = gostfast_run("-V", env={"GOSTFAST_NO_EXTENSIONS": "1"})
    assert out.returncode == 0, out.stderr
    assert "pure" in out.stdout and "compiled" not in out.stdout


@pytest.mark.parametrize("flag", ["-V", "--V"])
def test_version_go_spelling(flag: str) -> None:
    out = gostfast_run(flag)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("gostfast ")


# ---------------------------------------------------------------- Go-style flags


@pytest.mark.parametrize(
    "style",
    [
        lambda f, v: [f"{f}={v}"],  # -L=url
        lambda f, v: [f"-{f}={v}"],  # --L=url
        lambda f, v: [f"-{f}", v],  # --L url
        lambda f, v: [f, v],  # -L url
    ],
    ids=["-L=url", "--L=url", "--L url", "-L url"],
)
def test_go_style_flag_spellings_with_check(style) -> None:
    port, target, hop = free_port(), free_port(), free_port()
    args = style("-L", f"tcp://127.0.0.1:{port}/127.0.0.1:{target}") + style(
        "-F", f"forward+tcp://127.0.0.1:{hop}"
    )
    out = gostfast_run("check", *args)
    assert out.returncode == 0, out.stderr
    model = yaml.safe_load(out.stdout)
    (svc,) = model["services"]
    assert svc["addr"] == f"127.0.0.1:{port}"
    assert svc["forwarder"]["nodes"][0]["addr"] == f"127.0.0.1:{target}"
    assert svc["handler"]["chain"] == "chain-0"
    assert model["chains"][0]["hops"][0]["nodes"][0]["addr"] == f"127.0.0.1:{hop}"


def test_config_flag_go_style(tmp_path) -> None:
    port = free_port()
    path = tmp_path / "c.yaml"
    path.write_text(
        f"services:\n- name: s\n  addr: 127.0.0.1:{port}\n  handler: {{type: tcp}}\n"
        "  forwarder: {nodes: [{addr: '127.0.0.1:9'}]}\n"
    )
    out = gostfast_run("check", f"-C={path}")
    assert out.returncode == 0, out.stderr
    assert yaml.safe_load(out.stdout)["services"][0]["addr"] == f"127.0.0.1:{port}"


def test_check_never_binds() -> None:
    # a port we hold: a real start would fail on it, check must not even try
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    busy = taken.getsockname()[1]
    try:
        out = gostfast_run("check", "-L", f"tcp://127.0.0.1:{busy}/127.0.0.1:9")
    finally:
        taken.close()
    assert out.returncode == 0, out.stderr
    assert yaml.safe_load(out.stdout)["services"][0]["addr"] == f"127.0.0.1:{busy}"


# ---------------------------------------------------------------- start failure


def test_port_in_use_exits_1_and_closes_what_it_bound() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    busy = taken.getsockname()[1]
    free, target = free_port(), free_port()
    try:
        start = time.monotonic()
        # the first service binds fine; the second cannot: start must fail as a whole
        out = gostfast_run(
            "-L",
            f"tcp://127.0.0.1:{free}/127.0.0.1:{target}",
            "-L",
            f"tcp://127.0.0.1:{busy}/127.0.0.1:{target}",
        )
        elapsed = time.monotonic() - start
    finally:
        taken.close()
    detail = f"rc={out.returncode}\nstdout={out.stdout!r}\nstderr={out.stderr}"
    assert out.returncode == EXIT_START, detail
    assert out.stdout == "", detail
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("gostfast: error:")]
    assert len(errors) == 1, detail
    assert f"127.0.0.1:{busy}" in errors[0], detail
    assert "service-1" in errors[0], detail
    assert os.strerror(errno.EADDRINUSE).lower() in errors[0].lower(), detail
    assert "Traceback" not in out.stderr, detail
    assert elapsed < 5.0, detail
    # service-0 did bind (it was announced) and is not left listening: the process is gone
    assert f"127.0.0.1:{free}" in out.stderr, detail
    assert not _listening(free)


def test_port_in_use_on_all_interfaces() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    busy = taken.getsockname()[1]
    try:
        out = gostfast_run("-L", f"tcp://:{busy}/127.0.0.1:9")
    finally:
        taken.close()
    assert out.returncode == EXIT_START, out.stderr
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("gostfast: error:")]
    assert len(errors) == 1, out.stderr
    assert f":{busy}" in errors[0]
    assert os.strerror(errno.EADDRINUSE).lower() in errors[0].lower()


# ---------------------------------------------------------------- usage errors


def _no_system_default() -> None:
    if any(Path("/etc/gost").glob("gost.*")):
        pytest.skip("this machine has a GOST config in /etc/gost")


def test_nothing_to_run_is_exit_2(tmp_path) -> None:
    _no_system_default()
    out = gostfast_run(cwd=tmp_path, env={"HOME": str(tmp_path)})
    assert out.returncode == 2
    assert out.stdout == ""
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("gostfast: error:")]
    assert len(errors) == 1 and "-L" in errors[0] and "-C" in errors[0], out.stderr
    assert "gost.yaml" in errors[0] and "/etc/gost" in errors[0], out.stderr


def test_default_config_file_as_gost(tmp_path) -> None:
    """No -L/-C: gost.yaml from ~/.gost, else the working directory (GOST's search)."""
    _no_system_default()
    home, here = tmp_path / "home", tmp_path / "here"
    (home / ".gost").mkdir(parents=True)
    here.mkdir()
    (here / "gost.yaml").write_text("services: [{name: from-here, addr: '127.0.0.1:1'}]\n")
    out = gostfast_run("check", cwd=here, env={"HOME": str(home)})
    assert out.returncode == 0, out.stderr
    assert yaml.safe_load(out.stdout)["services"][0]["name"] == "from-here"
    (home / ".gost" / "gost.yml").write_text("services: [{name: from-home, addr: '127.0.0.1:1'}]\n")
    out = gostfast_run("check", cwd=here, env={"HOME": str(home)})
    assert yaml.safe_load(out.stdout)["services"][0]["name"] == "from-home"


def test_inline_json_config() -> None:
    port = free_port()
    out = gostfast_run(
        "check",
        "-C",
        json.dumps(
            {"services": [{"name": "j", "addr": f"127.0.0.1:{port}", "handler": {"type": "http"}}]}
        ),
    )
    assert out.returncode == 0, out.stderr
    svc = yaml.safe_load(out.stdout)["services"][0]
    assert (svc["name"], svc["addr"], svc["handler"]["type"]) == ("j", f"127.0.0.1:{port}", "http")


@pytest.mark.parametrize("scheme", ["ws", "mws"])
def test_check_resolves_gost_defaults_of_ttl_and_mux_type(scheme: str) -> None:
    """GOST: ttl <= 0 is 15s (dialer/ws/metadata.go); an empty mux.type is smux (internal/util/mux)."""
    port = free_port()
    query = "keepalive=true&ttl=0" + ("&mux.type=" if scheme == "mws" else "")
    out = gostfast_run(
        "check",
        "-L",
        f"tcp://127.0.0.1:{port}/127.0.0.1:9",
        "-F",
        f"forward+{scheme}://127.0.0.1:9?{query}",
    )
    assert out.returncode == 0, out.stderr
    dialer = yaml.safe_load(out.stdout)["chains"][0]["hops"][0]["nodes"][0]["dialer"]
    assert dialer["type"] == scheme
    assert dialer["options"]["ttl"] == "15s"
    if scheme == "mws":
        assert dialer["options"]["mux_type"] == "smux"


def test_unknown_flag_is_exit_2() -> None:
    out = gostfast_run("-Q")
    assert out.returncode == 2
    assert out.stdout == ""
    assert "-Q" in out.stderr
