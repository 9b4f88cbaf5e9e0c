"""The framed-stream reader (UDP-TUN, relay UDP) over a real socket, cut anywhere.

Frames written in arbitrary pieces from the far end of a socketpair must come
out as the same datagrams, in order; one too long for the buffer is skipped
and the stream stays framed.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from hypothesis import given, settings
from hypothesis import strategies as st

from gostfast.endpoint import TCPEndpoint
from gostfast.proto import relay as rp
from gostfast.proto import socks5 as s5
from gostfast.udp.stream import RelayUdpStream, UdpTunStream

LOG = logging.getLogger("test.udp.stream")
BUFFER = 200

datagrams = st.lists(
    st.tuples(
        st.sampled_from(["10.0.0.1", "::1", "example.test"]), st.binary(min_size=1, max_size=260)
    ),
    min_size=1,
    max_size=6,
)


async def _through(make_stream, frames: bytes, cuts: list[int], want: int) -> list:
    a, b = socket.socketpair()
    loop = asyncio.get_running_loop()
    _, ep = await loop.connect_accepted_socket(TCPEndpoint, sock=a)
    got: list = []
    done = loop.create_future()
    stream = make_stream(ep)

    def receive(host, port, data) -> None:
        got.append((host, port, bytes(data)))
        if len(got) == want and not done.done():
            done.set_result(None)

    stream.listen(receive)
    with b:
        b.setblocking(False)
        start = 0
        for cut in [*sorted(c % (len(frames) + 1) for c in cuts), len(frames)]:
            if cut > start:
                await loop.sock_sendall(b, frames[start:cut])
                start = cut
        if want:
            await asyncio.wait_for(done, 5)
    stream.close()
    return got


@settings(max_examples=40, deadline=None)
@given(datagrams, st.lists(st.integers(0, 5000), max_size=8))
def test_udp_tun_frames_survive_any_cut(items, cuts) -> None:
    frames = b"".join(s5.build_udp_tun_frame(h, 53, d) for h, d in items)
    kept = [(h, 53, d) for h, d in items if len(d) <= BUFFER]
    got = asyncio.run(
        _through(lambda ep: UdpTunStream(ep, "t", LOG, BUFFER), frames, cuts, len(kept))
    )
    assert got == kept


@settings(max_examples=40, deadline=None)
@given(datagrams, st.lists(st.integers(0, 5000), max_size=8))
def test_relay_udp_frames_survive_any_cut(items, cuts) -> None:
    frames = b"".join(rp.build_udp_frame(d) for _, d in items)
    kept = [("192.0.2.9", 53, d) for _, d in items if len(d) <= BUFFER]
    got = asyncio.run(
        _through(
            lambda ep: RelayUdpStream(ep, ("192.0.2.9", 53), "t", LOG, BUFFER),
            frames,
            cuts,
            len(kept),
        )
    )
    assert got == kept
