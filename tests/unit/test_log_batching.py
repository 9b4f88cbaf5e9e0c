"""logsetup.LoopBatchedHandler: the lines of one loop iteration in one write, order kept.

Why: the access log is one line per tunnel; a write and a flush per line was
most of the line's cost. These tests read what reaches the stream, write by write.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time

import pytest

from gostfast import logsetup
from gostfast.config.model import LogConfig
from gostfast.logsetup import LoopBatchedHandler


class Stream:
    """A stream that records each write and each flush."""

    def __init__(self) -> None:
        self.writes: list[str] = []
        self.flushes = 0

    def write(self, text: str) -> None:
        self.writes.append(text)

    def flush(self) -> None:
        self.flushes += 1


def _logger(stream: Stream) -> tuple[logging.Logger, LoopBatchedHandler]:
    handler = LoopBatchedHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger(f"test_log_batching.{id(stream)}")
    log.propagate = False
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    return log, handler


def test_lines_of_one_iteration_go_out_in_one_write_after_it() -> None:
    stream = Stream()
    log, _ = _logger(stream)

    async def main() -> None:
        for i in range(3):
            log.info("line %d", i)
        assert stream.writes == []  # kept until the loop ran what was ready
        await asyncio.sleep(0)
        assert stream.writes == ["line 0\nline 1\nline 2\n"]
        log.info("line 3")
        await asyncio.sleep(0)

    asyncio.run(main())
    assert stream.writes == ["line 0\nline 1\nline 2\n", "line 3\n"]
    assert stream.flushes >= 2


def test_a_warning_goes_out_at_once_after_the_lines_kept_before_it() -> None:
    stream = Stream()
    log, _ = _logger(stream)

    async def main() -> None:
        log.info("a")
        log.warning("b")
        assert stream.writes == ["a\nb\n"]

    asyncio.run(main())


def test_without_a_loop_and_from_other_threads_every_line_is_written_at_once() -> None:
    stream = Stream()
    log, _ = _logger(stream)
    log.info("no loop")
    assert stream.writes == ["no loop\n"]

    async def main() -> None:
        log.info("kept")
        t = threading.Thread(target=log.info, args=("from a thread",))
        t.start()
        t.join()
        # the thread's line went out, after the line the loop kept before it
        assert stream.writes == ["no loop\n", "kept\nfrom a thread\n"]

    asyncio.run(main())


def test_flush_and_close_write_what_is_kept() -> None:
    stream = Stream()
    log, handler = _logger(stream)

    async def main() -> None:
        log.info("x")
        handler.flush()
        assert stream.writes == ["x\n"]
        log.info("y")
        handler.close()
        assert stream.writes == ["x\n", "y\n"]

    asyncio.run(main())


def test_too_many_kept_lines_are_written_without_waiting() -> None:
    stream = Stream()
    log, _ = _logger(stream)

    async def main() -> None:
        for i in range(LoopBatchedHandler.MAX_KEPT):
            log.info("%d", i)
        assert (
            len(stream.writes) == 1 and stream.writes[0].count("\n") == LoopBatchedHandler.MAX_KEPT
        )

    asyncio.run(main())


def _both_ways(monkeypatch, cfg: LogConfig, pid: bool, values: dict) -> tuple[str, str]:
    """The access line through logging's own way and through access_line's short way,
    at the same instant, into the same configured handler."""
    monkeypatch.setattr(time, "time", lambda: 1764780000.123456)
    monkeypatch.setattr(time, "time_ns", lambda: 1764780000123456000)
    stream = Stream()
    monkeypatch.setattr(sys, "stderr", stream)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logsetup.configure(cfg, False, {}, pid=pid)
        log = logging.getLogger("gostfast.service.svc")
        fields = logsetup.access_fields(**values)
        log.info("%s >< %s", "127.0.0.1:1", "127.0.0.1:2", extra={"fields": fields})
        logsetup.access_line(log, "127.0.0.1:1 >< 127.0.0.1:2", **values)
        root.handlers[0].flush()
    finally:
        root.handlers[:], root.level = saved
        logsetup._access = None
    lines = "".join(stream.writes).splitlines()
    assert len(lines) == 2, lines
    return lines[0], lines[1]


#: values of an access line: all bare, some quoted, some empty, with an error or not
ACCESS_VALUES = {
    "bare": dict(
        service="svc",
        client="127.0.0.1:1",
        remote="127.0.0.1:1",
        dst="127.0.0.1:2",
        route="direct",
        seconds=0.000812345,
        bytes_in=64,
        bytes_out=0,
        error="",
    ),
    "quoted": dict(
        service="svc",
        client="127.0.0.1:1",
        remote="[::1]:3",
        dst="a b=c",  # quoted in text
        route="node-0@127.0.0.1:9 > node-1@[::1]:9",
        seconds=0.0123,
        bytes_in=64,
        bytes_out=0,
        error='dial: "refused"',
    ),
    "empty": dict(
        service="svc",
        client="10.0.0.7",
        remote="127.0.0.1:1",
        dst="",
        route="",
        seconds=75.5,
        bytes_in=0,
        bytes_out=0,
        error="handshake: bad request",
    ),
    "unicode": dict(
        service="sv\u00e9",
        client="127.0.0.1:1",
        remote="127.0.0.1:1",
        dst="h\u00f4te:80",
        route="d\u00a0x",  # a no-break space: quoted
        seconds=1.5e-7,
        bytes_in=1 << 40,
        bytes_out=3,
        error="",
    ),
}


@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize("pid", [False, True], ids=["one", "workers"])
@pytest.mark.parametrize("values", list(ACCESS_VALUES.values()), ids=list(ACCESS_VALUES))
def test_the_access_lines_short_way_writes_what_logging_writes(
    monkeypatch, fmt, pid, values
) -> None:
    logged, short = _both_ways(monkeypatch, LogConfig(format=fmt), pid, values)
    assert short == logged
    assert "127.0.0.1:1 >< 127.0.0.1:2" in short


def test_a_bare_text_access_line_reads_as_before(monkeypatch) -> None:
    """The exact bytes (the short way must not drift with logging's way)."""
    _, short = _both_ways(monkeypatch, LogConfig(), False, ACCESS_VALUES["bare"])
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(1764780000))
    assert short == (
        f"{stamp},123 INFO gostfast.service.svc: 127.0.0.1:1 >< 127.0.0.1:2 service=svc"
        " client=127.0.0.1:1 remote=127.0.0.1:1 dst=127.0.0.1:2 route=direct"
        " duration=812.345\u00b5s inputBytes=64 outputBytes=0"
    )


def test_the_short_way_steps_aside_for_a_capture_handler(monkeypatch, caplog) -> None:
    """A handler added after configure (pytest's caplog here) sees every access line."""
    stream = Stream()
    monkeypatch.setattr(sys, "stderr", stream)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logsetup.configure(LogConfig(), False, {})
        root.addHandler(caplog.handler)
        log = logging.getLogger("gostfast.service.svc")
        logsetup.access_line(log, "a >< b", "s", "c", "r", "d", "direct", 1.0, 1, 2)
        root.handlers[0].flush()
    finally:
        root.handlers[:], root.level = saved
        logsetup._access = None
    assert [r.getMessage() for r in caplog.records] == ["a >< b"]
    assert (
        "a >< b service=s client=c remote=r dst=d route=direct duration=1s inputBytes=1"
        in "".join(stream.writes)
    )


def test_a_forked_worker_names_its_own_pid_in_the_access_line() -> None:
    """The text head (with the pid, under --workers) is made once per logger: a forked
    child must not keep its parent's."""
    formatter = logsetup.TextFormatter(logsetup.TEXT_FORMAT_PID)
    args = ("gostfast.service.svc", "a >< b", "s", "c", "r", "d", "direct", 1.0, 1, 2, "")
    assert f"INFO [{os.getpid()}] gostfast.service.svc: a >< b" in formatter.access(*args)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child)
        os.write(write, formatter.access(*args).encode())
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(child, 0)
    with os.fdopen(read, "rb") as r:
        line = r.read().decode()
    assert status == 0
    assert f"INFO [{child}] gostfast.service.svc: a >< b service=s" in line
