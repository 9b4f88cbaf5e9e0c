"""The masking kernel, through the codec that runs it (RFC 6455 section 5.3).

A client frame's payload is masked as it is copied behind the header
(``build_frame``), and a server-side parser unmasks while it copies the
payload out, resuming at the right mask byte when a frame arrives in pieces.
Every length around the kernel's 16-byte steps and every phase (where a
chunk boundary falls inside the payload) is checked against a byte-at-a-time
reference, on both twins.
"""

from __future__ import annotations

import random

import pytest

#: the codec of the conftest ``impl`` fixture (each twin in turn)
CODEC = "wsframe"

KEY = bytes.fromhex("37fa213d")
LENGTHS = [*range(0, 41), 63, 64, 65, 125, 126, 127, 128, 129, 1000, 4099, 65536]


def reference(data: bytes, key: bytes, offset: int = 0) -> bytes:
    return bytes(b ^ key[(i + offset) % 4] for i, b in enumerate(data))


def test_rfc6455_masked_hello(impl):
    # RFC 6455 section 5.7: a single-frame masked text message "Hello"
    frame = bytes(impl.build_frame(impl.OP_TEXT, b"Hello", True, KEY))
    assert frame == bytes.fromhex("8185 37fa213d 7f9f4d5158")


@pytest.mark.parametrize("n", LENGTHS)
def test_build_frame_masks_every_length(impl, n):
    data = random.Random(n).randbytes(n)
    frame = bytes(impl.build_frame(impl.OP_BINARY, data, True, KEY))
    assert frame[len(frame) - n :] == reference(data, KEY)
    assert frame[len(frame) - n - 4 : len(frame) - n] == KEY


@pytest.mark.parametrize("n", LENGTHS)
def test_parser_unmasks_at_every_phase(impl, n):
    data = random.Random(n).randbytes(n)
    frame = bytes(impl.build_frame(impl.OP_BINARY, data, True, KEY))
    head = len(frame) - n
    for cut in sorted({0, *range(min(n, 9)), n // 2, max(0, n - 1)}):
        parser = impl.FrameParser(True)
        events = parser.feed(frame[: head + cut]) + parser.feed(frame[head + cut :])
        assert [(op, bytes(p)) for op, p in events] == [(impl.OP_BINARY, data)], cut


def test_parser_unmasks_byte_by_byte(impl):
    data = random.Random(3).randbytes(77)
    frame = bytes(impl.build_frame(impl.OP_BINARY, data, True, KEY))
    parser = impl.FrameParser(True)
    events = []
    for i in range(len(frame)):
        events += parser.feed(frame[i : i + 1])
    assert [(op, bytes(p)) for op, p in events] == [(impl.OP_BINARY, data)]
