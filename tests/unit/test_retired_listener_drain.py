"""A listener a live change closes keeps its just-accepted upgrades in the drain.

uvloop accepts a connection in its poll phase and runs ``connection_made`` from
the ready queue afterwards, so for a moment an accepted connection is in no
listener's ``handshakes()``. A live change that closed the listener in that
moment (``Orchestrator._retire``) used to decide there and then that the
listener had nothing in flight, and the stop that followed ended the process
under that client's upgrade. The moment is hit here without guessing: a reader
callback whose socket became readable after the client connected runs in the
same poll phase, after the accept and before ``connection_made``.
"""

from __future__ import annotations

import asyncio
import socket

from loops import run
from support import free_port

from gostfast.config.yaml import load_text
from gostfast.proto import wshandshake
from gostfast.service import Orchestrator, plan


def test_a_listener_retired_between_accept_and_connection_made_is_drained() -> None:
    async def main():
        loop = asyncio.get_running_loop()
        port = free_port()
        p = plan(
            load_text(
                f"services:\n- name: ws\n  addr: 127.0.0.1:{port}\n"
                "  handler: {type: forward}\n  listener: {type: ws, metadata: {path: /ws}}\n"
                "  forwarder: {nodes: [{name: t, addr: '127.0.0.1:9'}]}\n"
            )
        )
        orch = Orchestrator(p, grace=20)
        await orch.start()
        listener = orch.running["ws"].listener
        client = socket.create_connection(("127.0.0.1", port), timeout=10)
        key = wshandshake.make_key()
        request = wshandshake.build_client_request(f"127.0.0.1:{port}", "/ws", key)
        client.sendall(request[:-2])  # all but the blank line that ends the head
        seen: list[int] = []
        r, w = socket.socketpair()

        def retire_now() -> None:  # in the poll phase, after the accept (epoll's order)
            loop.remove_reader(r)
            seen.append(len(listener.handshakes()))
            orch._retire(orch.running.pop("ws").listener)

        loop.add_reader(r, retire_now)
        w.send(b"x")  # readable after the listening socket: its event comes second
        while not seen:
            await asyncio.sleep(0.01)
        assert seen == [0], "the reader ran after connection_made: the window was missed"
        await asyncio.sleep(0.05)  # the accepted connection's connection_made, the prune
        assert len(listener.handshakes()) == 1
        drain = loop.create_task(orch.shutdown())
        done, _ = await asyncio.wait({drain}, timeout=0.5)
        assert not done, "the drain ended with the upgrade in flight"
        client.setblocking(False)
        await loop.sock_sendall(client, request[-2:])
        head = b""
        while b"\r\n\r\n" not in head:
            b = await asyncio.wait_for(loop.sock_recv(client, 4096), 10)
            assert b, f"closed before the 101: {head!r}"
            head += b
        assert head.startswith(b"HTTP/1.1 101 ")
        client.close()
        await asyncio.wait_for(drain, 15)  # the tunnel fails (nothing on :9) or ends
        r.close()
        w.close()

    run(main(), timeout=30)
