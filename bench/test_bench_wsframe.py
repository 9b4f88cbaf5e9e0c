"""WebSocket frame codec micro-benchmarks: what runs on the data path.

Run: pytest bench/test_bench_wsframe.py --benchmark-enable -q
(pyproject's --benchmark-disable makes each benchmark run once, as a smoke test, otherwise.)

* references: a memcpy of 1 MiB (memoryview slice assignment; bench/compare.py divides
  by it) and ``websockets.speedups.apply_mask`` of 1 MiB (returns new bytes). picows is
  listed too; it is skipped because it has no Python-level mask function.
* build_frame: one masked 32 KiB client frame; the payload is masked as it is copied
  behind the header into one buffer (mask_kernel.pxd), one pass, never in place.
* FrameParser.feed, server side: 1 MiB of masked 32 KiB frames fed in 64 KiB chunks
  (as socket reads arrive: half the frames straddle a chunk boundary).
Each result records its throughput (GB/s of payload at the median) in extra_info.
"""

from __future__ import annotations

import os

import pytest

import gostfast._core as core

MIB = 1 << 20
FRAME = 32 * 1024
KEY = b"\x37\xfa\x21\x3d"

WSFRAME_IMPLS = [
    pytest.param(core.compiled_module("wsframe"), id="compiled"),
    pytest.param(core.pure("wsframe"), id="pure"),
]


def _throughput(benchmark, payload_bytes: int) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is None or not getattr(stats, "stats", None) or not stats.stats.median:
        return  # benchmarks disabled: the body ran once, nothing was timed
    benchmark.extra_info["GB/s"] = round(payload_bytes / stats.stats.median / 1e9, 2)


def test_memcpy_1mib_baseline(benchmark):
    src = memoryview(os.urandom(MIB))
    dst = memoryview(bytearray(MIB))

    def copy():
        dst[:] = src

    benchmark(copy)
    _throughput(benchmark, MIB)


def test_websockets_speedups_apply_mask_1mib(benchmark):
    speedups = pytest.importorskip("websockets.speedups")
    data = os.urandom(MIB)
    out = benchmark(speedups.apply_mask, data, KEY)
    assert len(out) == MIB
    _throughput(benchmark, MIB)


def test_picows_mask_1mib(benchmark):
    pytest.importorskip("picows", reason="picows is not installed in this environment")
    pytest.skip(
        "picows (2.3.1) exposes no Python-level mask function: its masking "
        "(_mask_payload + SIMD dispatch) is cdef inline inside its transport"
    )


@pytest.mark.parametrize("impl", WSFRAME_IMPLS)
def test_build_frame_masked_32k(benchmark, impl):
    if impl is None:
        pytest.skip("wsframe_c not built")
    payload = os.urandom(FRAME)
    out = benchmark(impl.build_frame, 2, payload, True, KEY)
    assert len(out) == FRAME + 8
    _throughput(benchmark, FRAME)


@pytest.mark.parametrize("impl", WSFRAME_IMPLS)
def test_parse_masked_32k_frames(benchmark, impl):
    if impl is None:
        pytest.skip("wsframe_c not built")
    count = MIB // FRAME
    payload = os.urandom(FRAME)
    wire = b"".join(bytes(impl.build_frame(2, payload, mask=os.urandom(4))) for _ in range(count))
    chunks = [wire[i : i + 65536] for i in range(0, len(wire), 65536)]

    def parse():
        parser = impl.FrameParser(is_server=True)
        events = []
        for chunk in chunks:
            events += parser.feed(chunk)
        return events

    events = benchmark(parse)
    assert len(events) == count and bytes(events[-1][1]) == payload
    _throughput(benchmark, MIB)
