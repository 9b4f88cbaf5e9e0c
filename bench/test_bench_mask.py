"""WebSocket masking and frame codec micro-benchmarks.

Run: pytest bench/test_bench_mask.py --benchmark-enable -q
(pyproject's --benchmark-disable makes each benchmark run once, as a smoke test, otherwise.)

* mask 1 MiB in place: compiled and pure ``apply_mask``, against a memcpy of 1 MiB
  (memoryview slice assignment) and ``websockets.speedups.apply_mask`` (returns new bytes).
  picows is listed too; it is skipped because it has no Python-level mask function.
* mask_copy 1 MiB (the client writer's copy+mask pass).
* build_frame: one masked 32 KiB client frame (header + payload XOR-copied in one buffer).
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

MASK_IMPLS = [
    pytest.param(core.compiled_module("mask"), id="compiled"),
    pytest.param(core.pure("mask"), id="pure"),
]
WSFRAME_IMPLS = [
    pytest.param(core.compiled_module("wsframe"), id="compiled"),
    pytest.param(core.pure("wsframe"), id="pure"),
]


def _throughput(benchmark, payload_bytes: int) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is None or not getattr(stats, "stats", None) or not stats.stats.median:
        return  # benchmarks disabled: the body ran once, nothing was timed
    benchmark.extra_info["GB/s"] = round(payload_bytes / stats.stats.median / 1e9, 2)


@pytest.mark.parametrize("impl", MASK_IMPLS)
def test_apply_mask_1mib(benchmark, impl):
    if impl is None:
        pytest.skip("mask_c not built")
    buf = bytearray(os.urandom(MIB))
    benchmark(impl.apply_mask, buf, KEY, 1)
    _throughput(benchmark, MIB)


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


@pytest.mark.parametrize("impl", MASK_IMPLS)
def test_mask_copy_1mib(benchmark, impl):
    if impl is None:
        pytest.skip("mask_c not built")
    src = os.urandom(MIB)
    dst = bytearray(MIB + 14)
    benchmark(impl.mask_copy, src, dst, 14, KEY)
    _throughput(benchmark, MIB)


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
