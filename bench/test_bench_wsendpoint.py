"""WSEndpoint micro-benchmarks: the Python a data message costs, frame codec excluded as far as it can be.

Run: pytest bench/test_bench_wsendpoint.py --benchmark-enable -q
(pyproject's --benchmark-disable makes each benchmark run once, as a smoke test, otherwise.)

The endpoint sits on an inner endpoint that drops what it is given and delivers to a sink
that drops what it gets, so what is timed is WSEndpoint's own path, as a received chunk
or a relay's write takes it:

* receive: ``on_data`` of one chunk holding one data frame -> ``sink.on_data(payload)``;
  64 B (the request/response rows of bench/tunnel.py) and 16 KiB, each as a server
  (masked frames) and as a client (unmasked).
* send: ``write`` of 64 B as a server (unmasked) and as a client (masked).

Each result records ns per message in extra_info (``LOOPS`` messages per round). To
compare two trees, run it once per tree with that tree first on PYTHONPATH (a copy
of ``gostfast/`` with its compiled ``_core``, as bench/cpu_cost.py --trees takes).
"""

from __future__ import annotations

import pytest

from gostfast._core import select
from gostfast.endpoint import Endpoint
from gostfast.transport.wsconn import WSEndpoint

wsframe = select("wsframe")
LOOPS = 1000
MASK = b"\x37\xfa\x21\x3d"


class _NullInner(Endpoint):
    """An inner endpoint that drops every write."""

    def write(self, data) -> None:
        pass

    def writelines(self, chunks: list) -> None:
        pass

    def write_eof(self) -> None:
        pass

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class _NullSink:
    def on_data(self, ep, data) -> None:
        pass

    def on_eof(self, ep) -> None:
        pass

    def on_close(self, ep, exc) -> None:
        pass

    def on_write_paused(self, ep) -> None:
        pass

    def on_write_resumed(self, ep) -> None:
        pass


def _endpoint(is_server: bool) -> tuple[_NullInner, WSEndpoint]:
    inner = _NullInner()
    ws = WSEndpoint(inner, is_server=is_server)
    ws.attach(_NullSink())
    return inner, ws


def _per_message(benchmark) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is None or not getattr(stats, "stats", None) or not stats.stats.median:
        return  # benchmarks disabled: the body ran once, nothing was timed
    benchmark.extra_info["ns/msg"] = round(stats.stats.median / LOOPS * 1e9, 1)


@pytest.mark.parametrize("size", [64, 16384], ids=["64B", "16KiB"])
@pytest.mark.parametrize("is_server", [True, False], ids=["server", "client"])
def test_receive_one_message(benchmark, is_server, size):
    inner, ws = _endpoint(is_server)
    frame = bytes(
        wsframe.build_frame(wsframe.OP_BINARY, bytes(size), True, MASK if is_server else None)
    )
    on_data = ws.on_data

    def receive():
        for _ in range(LOOPS):
            on_data(inner, frame)

    benchmark(receive)
    assert not ws.closed
    _per_message(benchmark)


@pytest.mark.parametrize("is_server", [True, False], ids=["server", "client"])
def test_send_one_message(benchmark, is_server):
    _, ws = _endpoint(is_server)
    data = bytes(64)
    write = ws.write

    def send():
        for _ in range(LOOPS):
            write(data)

    benchmark(send)
    _per_message(benchmark)
