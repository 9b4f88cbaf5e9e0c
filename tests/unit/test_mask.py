"""WebSocket masking (mask codec): RFC vector, phases, pieces, alignment, errors; both twins.

Each test runs on the pure twin and on the compiled one (skipped when it is not built, or when
GOSTFAST_NO_EXTENSIONS=1 asks for the pure twins only).
"""

from __future__ import annotations

import array
import random

import pytest

#: the codec of the conftest ``impl`` fixture (each twin in turn)
CODEC = "mask"


@pytest.fixture
def mask(impl):
    return impl


def reference(data: bytes, key: bytes, offset: int = 0) -> bytes:
    return bytes(b ^ key[(i + offset) % 4] for i, b in enumerate(data))


KEY = bytes.fromhex("37fa213d")


def test_rfc6455_masked_hello(mask):
    buf = bytearray(b"Hello")
    mask.apply_mask(buf, KEY)
    assert bytes(buf) == bytes.fromhex("7f9f4d5158")  # RFC 6455 section 5.7
    mask.apply_mask(buf, KEY)
    assert buf == b"Hello"


@pytest.mark.parametrize("n", [*range(0, 41), 63, 64, 65, 127, 128, 129, 1000, 4099])
def test_every_length_and_phase(mask, n):
    rng = random.Random(n)
    data = rng.randbytes(n)
    for offset in range(9):
        buf = bytearray(data)
        mask.apply_mask(buf, KEY, offset)
        assert bytes(buf) == reference(data, KEY, offset), offset


@pytest.mark.parametrize("start", range(8))
def test_unaligned_memoryview_slice_touches_only_the_slice(mask, start):
    data = bytes(range(256)) * 4
    buf = bytearray(data)
    view = memoryview(buf)[start : start + 501]
    mask.apply_mask(view, KEY, 3)
    assert bytes(buf[:start]) == data[:start]
    assert bytes(buf[start : start + 501]) == reference(data[start : start + 501], KEY, 3)
    assert bytes(buf[start + 501 :]) == data[start + 501 :]


def test_masking_in_pieces_equals_masking_whole(mask):
    data = random.Random(7).randbytes(3000)
    whole = bytearray(data)
    mask.apply_mask(whole, KEY)
    pieces = bytearray(data)
    view = memoryview(pieces)
    cuts = [0, 1, 2, 5, 13, 64, 65, 1000, 2999, 3000]
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        mask.apply_mask(view[a:b], KEY, a)
    assert pieces == whole


def test_large_offsets_and_key_types(mask):
    data = bytes(range(50))
    for offset in (4, 5, 2**40 + 3, 2**70 + 1):
        buf = bytearray(data)
        mask.apply_mask(buf, bytearray(KEY), offset)
        assert bytes(buf) == reference(data, KEY, offset)
    buf = bytearray(data)
    mask.apply_mask(buf, memoryview(KEY))
    assert bytes(buf) == reference(data, KEY)


def test_one_mebibyte(mask):
    data = random.Random(1).randbytes(1 << 20)
    buf = bytearray(data)
    mask.apply_mask(buf, b"\xa5\x5a\x0f\xf0", 1)
    ref = int.from_bytes(data, "little") ^ int.from_bytes(
        (b"\x5a\x0f\xf0\xa5" * (1 << 18)), "little"
    )
    assert bytes(buf) == ref.to_bytes(1 << 20, "little")


def test_array_buffer_is_masked_as_raw_bytes(mask):
    arr = array.array("I", [0x01020304, 0x05060708])
    raw = arr.tobytes()
    mask.apply_mask(arr, KEY)
    assert arr.tobytes() == reference(raw, KEY)


@pytest.mark.parametrize("offset", [0, 1, 7, 100])
def test_mask_copy(mask, offset):
    src = random.Random(offset).randbytes(300)
    dst = bytearray(b"\xee" * 500)
    mask.mask_copy(src, dst, offset, KEY)
    assert bytes(dst[offset : offset + 300]) == reference(src, KEY)
    assert dst[:offset] == b"\xee" * offset
    assert dst[offset + 300 :] == b"\xee" * (200 - offset)


def test_mask_copy_from_memoryview_and_empty(mask):
    src = memoryview(b"xxHello")[2:]
    dst = bytearray(7)
    mask.mask_copy(src, dst, 2, KEY)
    assert bytes(dst) == b"\0\0" + bytes.fromhex("7f9f4d5158")
    mask.mask_copy(b"", dst, 7, KEY)  # empty source at the very end is fine
    assert bytes(dst) == b"\0\0" + bytes.fromhex("7f9f4d5158")


def test_errors(mask):
    with pytest.raises(TypeError):
        mask.apply_mask(b"read-only", KEY)
    with pytest.raises(TypeError):
        mask.apply_mask(memoryview(bytearray(10))[::2], KEY)
    with pytest.raises(TypeError):
        mask.apply_mask(bytearray(4), 1234)
    for bad in (b"", b"abc", b"abcde"):
        with pytest.raises(ValueError):
            mask.apply_mask(bytearray(4), bad)
        with pytest.raises(ValueError):
            mask.mask_copy(b"x", bytearray(4), 0, bad)
    with pytest.raises(ValueError):
        mask.mask_copy(b"12345", bytearray(4), 0, KEY)
    with pytest.raises(ValueError):
        mask.mask_copy(b"1234", bytearray(8), 5, KEY)
    with pytest.raises(ValueError):
        mask.mask_copy(b"1", bytearray(8), -1, KEY)
    with pytest.raises(TypeError):
        mask.mask_copy(b"1", b"readonly", 0, KEY)
