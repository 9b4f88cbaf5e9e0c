"""tune_malloc: large transient buffers come from the heap, not from fresh mappings.

Each case runs in a child interpreter so the test process keeps glibc's defaults.
A 256 KiB bytes object (uvloop's TLS read buffer size) is made and freed 200
times and shrunk to 64 bytes, as a TLS read does; with glibc's defaults each
is a new mmap (the shrunk chunk that is later freed is too small to raise
glibc's dynamic threshold) whose pages fault in when zero-filled, after tuning
the same heap memory is reused without faults. The trim that a closed
connection schedules hands back heap memory freed between live allocations,
which the thresholds keep.
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


TRIM_CHILD = """
import asyncio, sys
from gostfast.malloc_tuning import trim_soon, tune_malloc
assert tune_malloc()
def rss_kib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
# what a burst of TLS connections leaves: 256 KiB buffers (touched, then freed)
# between small allocations that stay, so the heap top cannot simply shrink
big, keep = [], []
for _ in range(160):
    buf = bytearray(262144)
    for i in range(0, len(buf), 4096):
        buf[i] = 1  # touch every page
    big.append(buf)
    keep.append(bytearray(2048))
before = rss_kib()
del big
freed = rss_kib()
async def main():
    trim_soon(0.05)  # what a connection's end asks for
    trim_soon(0.05)  # a second close while one is pending adds nothing
    await asyncio.sleep(0.3)
asyncio.run(main())
print(before, freed, rss_kib())
"""


def test_trim_after_a_close_returns_freed_heap_memory():
    out = subprocess.run(
        [sys.executable, "-c", TRIM_CHILD], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    before, freed, trimmed = map(int, out)
    burst = 160 * 256  # KiB
    # the tuned heap keeps what was freed until the trim hands it back
    assert before - freed < burst // 4, (before, freed, trimmed)
    assert freed - trimmed > burst * 3 // 4, (before, freed, trimmed)
