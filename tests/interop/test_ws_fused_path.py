"""The fused data path of plain ws and mws tunnels (_core/wspipe, docs/data-path.md), end to end.

A ws tunnel's bytes no longer pass through the relay's ``on_data``: the pipe counts them
and the relay folds the counts in when the tunnel ends. These tests hold it to the same
bytes and the same totals as before, through gostfast at both ends and against refpeer at
either end: random payloads of every frame length form (below 126, 16-bit, 64-bit, and
the server's unjoined writes above 4 KiB), a writeBufferSize that fragments the dialer's
writes, and half-close crossing the tunnel. Each end's metrics must count exactly what
was sent each way.
"""

from __future__ import annotations

import os
import socket
import threading

import pytest
from metrics_support import Echo, wait_value
from support import free_port, recv_exact

SIZES = [1, 125, 126, 4096, 4097, 65535, 65536, 200_000]


def exchange(port: int, sizes: list[int]) -> int:
    """One tunnel: each payload through to the echo and back, then our half-close, then EOF
    back from the far side (the echo closes after ours). Returns the bytes sent."""
    total = 0
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.settimeout(20)
        for n in sizes:
            data = os.urandom(n)
            t = threading.Thread(target=s.sendall, args=(data,), daemon=True)
            t.start()
            assert recv_exact(s, n) == data
            t.join(20)
            total += n
        s.shutdown(socket.SHUT_WR)
        assert s.recv(1) == b"", "the half-close crossed the tunnel and came back as EOF"
    return total


@pytest.mark.parametrize("mode", ["ws", "mws"])
@pytest.mark.parametrize("pairing", ["gostfast-both", "refpeer-server", "refpeer-client"])
def test_a_fused_tunnel_moves_and_counts_every_byte(procs, refpeer, mode, pairing) -> None:
    echo = Echo()
    try:
        srv, cli = free_port(), free_port()
        m_srv, m_cli = free_port(), free_port()
        path = "/ws" if mode == "ws" else "/mws"
        if pairing == "refpeer-server":
            procs.start(
                [refpeer, "server", "-listen", f"127.0.0.1:{srv}", "-mode", mode, "-path", path,
                 "-target", f"127.0.0.1:{echo.port}"],
                wait_ports=[srv],
            )  # fmt: skip
        else:
            procs.gostfast(
                "-L", f"{mode}://127.0.0.1:{srv}/127.0.0.1:{echo.port}?path={path}",
                f"-metrics=127.0.0.1:{m_srv}",
                wait_ports=[srv, m_srv],
            )  # fmt: skip
        if pairing == "refpeer-client":
            procs.start(
                [refpeer, "client", "-listen", f"127.0.0.1:{cli}", "-mode", mode,
                 "-server", f"ws://127.0.0.1:{srv}{path}"],
                wait_ports=[cli],
            )  # fmt: skip
        else:
            procs.gostfast(
                "-L", f"tcp://127.0.0.1:{cli}/127.0.0.1:{echo.port}",
                "-F", f"forward+{mode}://127.0.0.1:{srv}?path={path}",
                f"-metrics=127.0.0.1:{m_cli}",
                wait_ports=[cli, m_cli],
            )  # fmt: skip
        sent = sum(exchange(cli, SIZES) for _ in range(3))
        for m in ([m_srv] if pairing != "refpeer-server" else []) + (
            [m_cli] if pairing != "refpeer-client" else []
        ):
            wait_value(m, "gost_service_transfer_input_bytes_total", sent, service="service-0")
            wait_value(m, "gost_service_transfer_output_bytes_total", sent, service="service-0")
    finally:
        echo.close()


def test_a_write_buffer_size_dialer_still_fragments_its_writes(procs, refpeer) -> None:
    """Writes above writeBufferSize leave the fused path for the endpoint's fragmenting write."""
    echo = Echo()
    try:
        srv, cli = free_port(), free_port()
        procs.start(
            [refpeer, "server", "-listen", f"127.0.0.1:{srv}", "-mode", "ws", "-path", "/ws",
             "-target", f"127.0.0.1:{echo.port}"],
            wait_ports=[srv],
        )  # fmt: skip
        procs.gostfast(
            "-L", f"tcp://127.0.0.1:{cli}/127.0.0.1:{echo.port}",
            "-F", f"forward+ws://127.0.0.1:{srv}?path=/ws&writeBufferSize=1000",
            wait_ports=[cli],
        )  # fmt: skip
        assert exchange(cli, [999, 1000, 1001, 70_000]) == 73_000
    finally:
        echo.close()
