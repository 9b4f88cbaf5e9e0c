"""Masking properties: the twins agree byte for byte, and masking twice is the identity.

* apply_mask (pure) == apply_mask (compiled) for random buffers, slices, offsets and keys.
* mask_copy (pure) == mask_copy (compiled), including the bytes around the target region.
* apply_mask(apply_mask(x)) == x; masking in pieces with running offsets == masking whole.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gostfast._core as core

#: the codec of the conftest ``impl`` and ``compiled`` fixtures
CODEC = "mask"
PURE = core.pure(CODEC)

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

keys = st.binary(min_size=4, max_size=4)
datas = st.one_of(st.binary(max_size=80), st.binary(max_size=5000))
offsets = st.one_of(st.integers(0, 7), st.integers(0, 2**64))


@SETTINGS
@given(data=datas, key=keys, offset=offsets, start=st.integers(0, 9))
def test_apply_mask_twins_agree(compiled, data, key, offset, start):
    a = bytearray(b"\x11" * start + data + b"\x22" * 3)
    b = bytearray(a)
    PURE.apply_mask(memoryview(a)[start : start + len(data)], key, offset)
    compiled.apply_mask(memoryview(b)[start : start + len(data)], key, offset)
    assert a == b


@SETTINGS
@given(data=datas, key=keys, pad=st.integers(0, 9), extra=st.integers(0, 9))
def test_mask_copy_twins_agree(compiled, data, key, pad, extra):
    a = bytearray(b"\x33" * (pad + len(data) + extra))
    b = bytearray(a)
    PURE.mask_copy(data, a, pad, key)
    compiled.mask_copy(memoryview(data), b, pad, key)
    assert a == b
    assert a[:pad] == b"\x33" * pad and a[pad + len(data) :] == b"\x33" * extra


@SETTINGS
@given(data=st.binary(max_size=100), key=st.binary(max_size=8), offset=st.integers(-9, 9))
def test_twins_fail_alike(compiled, data, key, offset):
    outcomes = []
    for impl in (PURE, compiled):
        try:
            buf = bytearray(data)
            impl.apply_mask(buf, key, offset)
            outcomes.append(bytes(buf))
        except (TypeError, ValueError) as exc:
            outcomes.append(type(exc))
    assert outcomes[0] == outcomes[1]


@SETTINGS
@given(data=datas, key=keys, offset=offsets)
def test_mask_twice_is_identity(impl, data, key, offset):
    buf = bytearray(data)
    impl.apply_mask(buf, key, offset)
    impl.apply_mask(buf, key, offset)
    assert buf == data


@SETTINGS
@given(data=datas, key=keys, cuts=st.lists(st.integers(0, 5000), max_size=8))
def test_pieces_equal_whole(impl, data, key, cuts):
    whole = bytearray(data)
    impl.apply_mask(whole, key)
    pieces = bytearray(data)
    view = memoryview(pieces)
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        impl.apply_mask(view[a:b], key, a)
    assert pieces == whole
    copied = bytearray(len(data))
    impl.mask_copy(data, copied, 0, key)
    assert copied == whole
