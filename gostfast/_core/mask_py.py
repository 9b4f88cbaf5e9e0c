"""WebSocket payload masking (RFC 6455 section 5.3), pure-Python twin of mask_c.

Invariants: ``apply_mask`` changes only the buffer it is given, in place, and
allocates temporaries proportional to its length (the whole buffer is XORed as one
big integer, which CPython does at a few hundred MB/s: slow, but correct and simple).
``mask_copy`` writes only ``dst[dst_offset:dst_offset + len(src)]`` and never
changes ``src``. No I/O, no state. Buffers are treated as raw bytes (any C-contiguous
buffer; its item format is ignored).
"""

from __future__ import annotations

__all__ = ["apply_mask", "mask_copy"]


def _byte_view(buf, writable: bool) -> memoryview:
    """A 1-D unsigned-byte view of ``buf`` (TypeError unless contiguous/writable)."""
    view = memoryview(buf)
    if writable and view.readonly:
        raise TypeError("masking needs a writable buffer")
    if not view.c_contiguous:
        raise TypeError("masking needs a contiguous buffer")
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


def _check_mask(mask) -> bytes:
    mask = memoryview(mask).tobytes()
    if len(mask) != 4:
        raise ValueError("a WebSocket mask is exactly 4 bytes")
    return mask


def _xor_bytes(data, mask: bytes, phase: int) -> bytes:
    """``data`` XOR the mask stream starting at mask byte ``phase`` (0-3)."""
    n = len(data)
    key = mask[phase:] + mask[:phase]
    stream = key * ((n >> 2) + 1)
    value = int.from_bytes(data, "little") ^ int.from_bytes(stream[:n], "little")
    return value.to_bytes(n, "little")


def apply_mask(buf, mask: bytes, offset: int = 0) -> None:
    """XOR ``buf`` in place with ``mask``; ``offset`` = position of buf[0] in the mask stream.

    Masking a payload in pieces works: the piece that starts k bytes into the payload
    uses ``offset=k``. Applying the same mask twice restores the data.
    """
    view = _byte_view(buf, writable=True)
    key = _check_mask(mask)
    if len(view):
        view[:] = _xor_bytes(view, key, offset & 3)


def mask_copy(src, dst, dst_offset: int, mask: bytes) -> None:
    """``dst[dst_offset:dst_offset+len(src)] = src XOR mask`` (mask phase 0), one pass.

    ``src`` and ``dst`` must not overlap (except exactly, src being that very region).
    """
    source = _byte_view(src, writable=False)
    target = _byte_view(dst, writable=True)
    key = _check_mask(mask)
    n = len(source)
    if dst_offset < 0 or dst_offset + n > len(target):
        raise ValueError("mask_copy: destination too small")
    if n:
        target[dst_offset : dst_offset + n] = _xor_bytes(source, key, 0)
