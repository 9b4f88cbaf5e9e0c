"""tune_malloc: large transient buffers come from the heap, not from fresh mappings.

Each case runs in a child interpreter so the test process keeps glibc's defaults.
A 256 KiB bytes object (uvloop's TLS read buffer size) is made and freed 200
times and shrunk to 64 bytes, as a TLS read does; with glibc's defaults each
is a new mmap (the shrunk chunk that is later freed is too small to raise
glibc's dynamic threshold) whose pages fault in when zero-filled, after tuning
the same heap memory is reused without faults.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")

CHILD = """
import os, sys
from gostfast.malloc_tuning import tune_malloc
tuned = tune_malloc() if sys.argv[1] == "tune" else False
def minflt():
    with open("/proc/self/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])
def record():
    # what a TLS read does: a 256 KiB buffer, shrunk to the record, later freed
    buf = bytearray(262144)
    del buf[64:]
    return buf
for _ in range(5):
    record()
before = minflt()
for _ in range(200):
    record()
print(tuned, minflt() - before)
"""


def _faults(mode: str, **env: str) -> tuple[str, int]:
    import os

    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        check=True,
    ).stdout.split()
    return out[0], int(out[1])


def test_default_malloc_maps_every_large_buffer():
    tuned, faults = _faults("plain")
    assert tuned == "False"
    assert faults >= 200 * 32  # a fresh mapping per buffer: its pages fault in again


def test_tuned_malloc_reuses_heap_memory():
    tuned, faults = _faults("tune")
    assert tuned == "True"
    assert faults < 200  # the same heap chunk every time


def test_operator_setting_wins():
    tuned, _ = _faults("tune", MALLOC_MMAP_THRESHOLD_="131072")
    assert tuned == "False"
