"""``--workers N|auto`` and YAML ``workers:``: parsed, printed by check and -O, bad input exit 2.

Each case runs the real ``gostfast`` command. A bad count must exit 2 with one
message naming the flag or the YAML key, before any socket is opened.
"""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml
from support import GOSTFAST, free_port

RUN_TIMEOUT = 20.0


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*GOSTFAST, *args], capture_output=True, text=True, timeout=RUN_TIMEOUT)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("0", "worker count 0 is out of range (expected 1-1024 or auto)"),
        ("-3", "worker count -3 is out of range"),
        ("two", "invalid worker count 'two'"),
        ("1025", "worker count 1025 is out of range"),
        ("1.5", "invalid worker count '1.5'"),
    ],
)
def test_bad_worker_count_on_the_command_line_exits_2(value: str, fragment: str) -> None:
    port = free_port()
    for args in (("--workers", value, "-L", f"ws://127.0.0.1:{port}"),):
        res = _run(*args)
        assert res.returncode == 2, res.stderr
        assert "--workers" in res.stderr and fragment in res.stderr, res.stderr
        assert res.stdout == ""
        res = _run("check", *args)
        assert res.returncode == 2 and fragment in res.stderr, res.stderr


@pytest.mark.parametrize("value", ["0", "-1", "abc", "2000", "true"])
def test_bad_workers_key_in_yaml_exits_2_naming_the_key(tmp_path, value: str) -> None:
    cfg = tmp_path / "gost.yaml"
    cfg.write_text(
        f"workers: {value}\nservices:\n- name: a\n  addr: 127.0.0.1:{free_port()}\n"
        "  handler: {type: auto}\n  listener: {type: ws}\n"
    )
    res = _run("-C", str(cfg))
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("gostfast: error: workers: "), res.stderr


def test_check_prints_the_worker_count(tmp_path) -> None:
    url = f"ws://127.0.0.1:{free_port()}"
    assert yaml.safe_load(_run("check", "-L", url).stdout)["workers"] == 1
    assert yaml.safe_load(_run("check", "--workers", "3", "-L", url).stdout)["workers"] == 3
    auto = yaml.safe_load(_run("check", "--workers", "auto", "-L", url).stdout)["workers"]
    assert auto == len(os.sched_getaffinity(0))
    cfg = tmp_path / "gost.yaml"
    cfg.write_text(f"workers: 2\nservices:\n- name: a\n  addr: 127.0.0.1:{free_port()}\n")
    assert yaml.safe_load(_run("check", "-C", str(cfg)).stdout)["workers"] == 2
    # the command line wins over the file
    got = yaml.safe_load(_run("check", "--workers", "4", "-C", str(cfg)).stdout)
    assert got["workers"] == 4


def test_dash_o_keeps_workers_as_written(tmp_path) -> None:
    cfg = tmp_path / "gost.yaml"
    cfg.write_text(f"workers: auto\nservices:\n- name: a\n  addr: 127.0.0.1:{free_port()}\n")
    out = yaml.safe_load(_run("-C", str(cfg), "-O", "yaml").stdout)
    assert out["workers"] == "auto"
    url = f"ws://127.0.0.1:{free_port()}"
    out = yaml.safe_load(_run("--workers", "3", "-L", url, "-O", "yaml").stdout)
    assert out["workers"] == 3
    # what -O printed reads back the same
    cfg.write_text(yaml.safe_dump(out))
    assert yaml.safe_load(_run("check", "-C", str(cfg)).stdout)["workers"] == 3
    # no workers given: -O prints none (a GOST config stays a GOST config)
    assert "workers" not in yaml.safe_load(_run("-L", url, "-O", "yaml").stdout)
