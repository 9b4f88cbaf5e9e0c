"""smux codec micro-benchmarks: compiled vs pure twin.

Run: pytest bench/test_bench_smux.py --benchmark-enable -q
(pytest.ini's --benchmark-disable makes each benchmark run once, as a smoke test, otherwise.)

* parse: a 4 MiB stream of 32 KiB PSH frames (smux's default MaxFrameSize), fed in 64 KiB
  chunks (frames straddle chunks: half the payloads are assembled) and in 256 KiB chunks
  (most payloads are zero-copy views).
* encode: one 256 KiB write split into 32 KiB PSH frames (encode_data).
Each result records its throughput (payload MB/s at the median) in extra_info.
"""

from __future__ import annotations

import pytest

import gostfast._core as core

IMPLS = [
    pytest.param(core.compiled_module("smux"), id="compiled"),
    pytest.param(core.pure("smux"), id="pure"),
]

FRAME = 32768
STREAM_FRAMES = 128  # 4 MiB of payload
WRITE = 256 * 1024


def _throughput(benchmark, payload_bytes: int) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is None or not getattr(stats, "stats", None) or not stats.stats.median:
        return  # benchmarks disabled: the body ran once, nothing was timed
    benchmark.extra_info["MB/s"] = round(payload_bytes / stats.stats.median / 1e6, 1)


@pytest.mark.parametrize("chunk", [65536, 262144], ids=["chunk64k", "chunk256k"])
@pytest.mark.parametrize("smux", IMPLS)
def test_parse_psh_stream(benchmark, smux, chunk):
    if smux is None:
        pytest.skip("smux_c not built")
    payload = bytes(range(256)) * (FRAME // 256)
    wire = bytes(smux.encode_data(1, 3, payload * STREAM_FRAMES, FRAME))
    chunks = [wire[i : i + chunk] for i in range(0, len(wire), chunk)]

    def parse():
        parser = smux.FrameParser(1)
        count = 0
        for c in chunks:
            count += len(parser.feed(c))
        return count

    assert benchmark(parse) == STREAM_FRAMES
    _throughput(benchmark, FRAME * STREAM_FRAMES)


@pytest.mark.parametrize("smux", IMPLS)
def test_encode_256k_write(benchmark, smux):
    if smux is None:
        pytest.skip("smux_c not built")
    data = bytes(range(256)) * (WRITE // 256)
    out = benchmark(smux.encode_data, 1, 3, data, FRAME)
    assert len(out) == WRITE + 8 * (WRITE // FRAME)
    _throughput(benchmark, WRITE)
