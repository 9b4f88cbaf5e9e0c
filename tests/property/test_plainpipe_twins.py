"""The plain pipe's twins agree: same writes, same forwarded calls, same counts.

Both twins run one random sequence of what can happen to a fused plain half: chunks from
the plain transport (bytes or views), chunks the other endpoint delivers (bytes, or views
of a bigger buffer that must be copied when the transport has a backlog), the backlog
changing, EOF / close / flow control from the other side (to the relay), EOF / loss /
flow control from the transport (to the plain endpoint), and calls after the loss.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gostfast._core as core

CODEC = "plainpipe"
PURE = core.pure(CODEC)

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

STEPS = [
    "plain",
    "other",
    "other-view",
    "backlog",
    "other-eof",
    "other-close",
    "other-pause",
    "other-resume",
    "plain-eof",
    "plain-pause",
    "plain-resume",
    "plain-lost",
]


class Recorder:
    """Whatever it is asked to do goes into the shared log, under its name."""

    def __init__(self, log: list, name: str) -> None:
        self.log = log
        self.name = name
        self.backlog = 0

    def write(self, data) -> None:
        self.log.append((self.name, "write", type(data).__name__, bytes(data)))

    def get_write_buffer_size(self) -> int:
        return self.backlog

    def eof_received(self):
        self.log.append((self.name, "eof"))
        return False

    def connection_lost(self, exc) -> None:
        self.log.append((self.name, "lost", repr(exc)))

    def pause_writing(self) -> None:
        self.log.append((self.name, "pause"))

    def resume_writing(self) -> None:
        self.log.append((self.name, "resume"))

    def on_eof(self, ep) -> None:
        self.log.append((self.name, "on_eof", ep))

    def on_close(self, ep, exc) -> None:
        self.log.append((self.name, "on_close", ep, repr(exc)))

    def on_write_paused(self, ep) -> None:
        self.log.append((self.name, "on_write_paused", ep))

    def on_write_resumed(self, ep) -> None:
        self.log.append((self.name, "on_write_resumed", ep))


def run(impl, seed: int, steps: list[str]):
    rng = random.Random(seed)
    log: list = []
    transport = Recorder(log, "transport")
    pipe = impl.PlainPipe(
        transport, Recorder(log, "plain"), Recorder(log, "other"), Recorder(log, "relay")
    )
    side = pipe.plain_side
    for step in steps:
        n = rng.choice([0, 1, 64, 65, 4096, 70_000])
        if step == "plain":
            data = rng.randbytes(n)
            side.data_received(memoryview(data) if rng.random() < 0.3 else data)
        elif step == "other":
            pipe.on_data("ep", rng.randbytes(n))
        elif step == "other-view":
            big = rng.randbytes(n + rng.choice([0, 64, 65, 1000]))
            pipe.on_data("ep", memoryview(big)[:n])
        elif step == "backlog":
            transport.backlog = rng.choice([0, 1, 300_000])
        elif step == "other-eof":
            pipe.on_eof("ep")
        elif step == "other-close":
            pipe.on_close("ep", None if rng.random() < 0.5 else OSError("x"))
        elif step == "other-pause":
            pipe.on_write_paused("ep")
        elif step == "other-resume":
            pipe.on_write_resumed("ep")
        elif step == "plain-eof":
            log.append(("eof returned", side.eof_received()))
        elif step == "plain-pause":
            side.pause_writing()
        elif step == "plain-resume":
            side.resume_writing()
        elif step == "plain-lost":
            side.connection_lost(None if rng.random() < 0.5 else ConnectionResetError("gone"))
    return log, pipe.counts(), pipe.plain_transport is None, pipe.plain_side is None


@SETTINGS
@given(seed=st.integers(0, 2**32), steps=st.lists(st.sampled_from(STEPS), max_size=20))
def test_twins_make_the_same_calls(compiled, seed, steps):
    assert run(compiled, seed, steps) == run(PURE, seed, steps)


@SETTINGS
@given(seed=st.integers(0, 2**32), steps=st.lists(st.sampled_from(STEPS), max_size=20))
def test_what_passes_is_counted_and_nothing_is_written_after_the_loss(impl, seed, steps):
    log, (from_plain, from_other), _, _ = run(impl, seed, steps)
    lost = next((i for i, e in enumerate(log) if e[:2] == ("plain", "lost")), len(log))
    assert all(e[:2] != ("transport", "write") for e in log[lost:])
    assert all(e[:2] != ("other", "write") for e in log[lost:])
    assert sum(len(e[3]) for e in log if e[:2] == ("other", "write")) <= from_plain
    written = [e for e in log[:lost] if e[:2] == ("transport", "write")]
    assert sum(len(e[3]) for e in written) <= from_other
