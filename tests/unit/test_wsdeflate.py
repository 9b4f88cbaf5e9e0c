"""permessage-deflate bodies (proto.wsdeflate): gorilla's framing of a message, no context
takeover even with one shared compressor, and the bounds on what arrives."""

from __future__ import annotations

import os
import zlib

import pytest

from gostfast._core.wsframe_common import WSProtocolError
from gostfast.proto.wsdeflate import Deflater, Inflater, shared_deflater

TEXT = b"the quick brown fox jumps over the lazy dog; " * 2000


def rfc7692_inflate(body: bytes) -> bytes:
    """What any receiver does (RFC 7692 section 7.2.2): tail back on, raw inflate."""
    return zlib.decompressobj(-15).decompress(bytes(body) + b"\x00\x00\xff\xff")


@pytest.mark.parametrize("data", [b"a", b"", TEXT, os.urandom(70000)], ids=len)
def test_body_is_raw_deflate_without_the_tail(data):
    body = Deflater().message(data)
    assert rfc7692_inflate(body) == data
    assert Inflater().message(body) == data


def test_a_message_refers_to_nothing_before_it():
    """After any history the next body is what a fresh compressor makes: no context."""
    d = shared_deflater()
    assert d is shared_deflater()
    d.message(TEXT)
    d.message(os.urandom(5000))
    assert bytes(d.message(TEXT)) == bytes(Deflater().message(TEXT))
    assert len(d.message(TEXT)) < len(TEXT) / 10  # and it did compress


def test_inflated_size_is_bounded():
    limit = 1 << 20
    inf = Inflater(limit)
    assert inf.message(Deflater().message(bytes(limit))) == bytes(limit)
    for size in (limit + 1, 64 << 20):
        with pytest.raises(WSProtocolError) as err:
            inf.message(Deflater().message(bytes(size)))
        assert err.value.close_code == 1009
    assert len(Inflater(0).message(Deflater().message(bytes(limit * 4)))) == limit * 4


def test_corrupt_body_is_1007():
    with pytest.raises(WSProtocolError) as err:
        Inflater(1000).message(b"\xff\xfe\xfd")
    assert err.value.close_code == 1007


def test_a_body_ending_in_a_final_block_is_accepted():
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = z.compress(TEXT) + z.flush()  # Z_FINISH: BFINAL set, as some peers send
    assert Inflater(1 << 20).message(body) == TEXT
