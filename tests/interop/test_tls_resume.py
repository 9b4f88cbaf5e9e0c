"""The wss dialer resumes TLS sessions (tlsutil/resume.py) with gostfast's and Go's servers.

A real wss server (a gostfast process, or refpeer's gorilla server on Go's
crypto/tls) and gostfast's wss dialer in this process: the first tunnel makes
a full handshake, the next ones offer the ticket the server sent and are
resumed, and every tunnel carries bytes both ways. A server restarted with new
keys refuses the old ticket: the dial still works, as a full handshake.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

import pytest
from support import Procs, free_port

from gostfast import registry
from gostfast.chain.route import tcp_connect
from gostfast.components import DialerSpec
from gostfast.config.model import TLSConfig
from gostfast.config.options import parse_options
from gostfast.tlsutil import selfsigned
from gostfast.tlsutil.contexts import client_context
from gostfast.tlsutil.endpoint import ssl_object_of
from tests.loops import run

log = logging.getLogger("test.resume")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("resume-certs")
    cert, key = selfsigned.generate()
    (d / "cert.pem").write_bytes(cert)
    (d / "key.pem").write_bytes(key)
    return str(d / "cert.pem"), str(d / "key.pem")


@pytest.fixture(scope="module")
def tcpecho(refpeer):
    procs = Procs()
    port = free_port()
    procs.start([refpeer, "tcpecho", "-listen", f"127.0.0.1:{port}"], wait_ports=[port])
    yield port
    procs.stop_all()


def _wss_dialer(port: int):
    registry.load_builtins()
    comp = registry.dialers.get("wss")
    addr = f"127.0.0.1:{port}"
    return comp.factory(DialerSpec("node", addr, parse_options(comp.options, {}, "t"), None, log))


async def _tunnels(dialer, port: int, n: int) -> list[bool]:
    """Dial ``n`` tunnels one after the other; each says whether its TLS session resumed."""
    resumed = []
    for i in range(n):
        ws = await dialer.dial(f"127.0.0.1:{port}", lambda: tcp_connect("127.0.0.1", port))
        try:
            message = b"tunnel %d" % i
            ws.write(message)
            got = b""
            while len(got) < len(message):
                chunk = await ws.read()
                assert chunk, "tunnel closed before the echo"
                got += chunk
            assert got == message
            resumed.append(ssl_object_of(ws.inner).session_reused)
        finally:
            ws.close()
    return resumed


def _gostfast_wss(procs: Procs, port: int, certs, echo: int) -> None:
    query = f"?certFile={certs[0]}&keyFile={certs[1]}"
    procs.gostfast("-L", f"wss://127.0.0.1:{port}/127.0.0.1:{echo}{query}", wait_ports=[port])


@pytest.mark.parametrize("server", ["gostfast", "refpeer"])
def test_dialer_resumes_after_the_first_handshake(server, refpeer, certs, tcpecho):
    procs = Procs()
    port = free_port()
    try:
        if server == "gostfast":
            _gostfast_wss(procs, port, certs, tcpecho)
        else:
            args = [refpeer, "server", "-listen", f"127.0.0.1:{port}", "-mode", "ws", "-echo"]
            procs.start([*args, "-tls", f"{certs[0]},{certs[1]}"], wait_ports=[port])
        dialer = _wss_dialer(port)
        assert run(_tunnels(dialer, port, 4), timeout=60.0) == [False, True, True, True]
    finally:
        procs.stop_all()


def test_restarted_server_gets_a_full_handshake(certs, tcpecho):
    port = free_port()
    dialer = _wss_dialer(port)

    async def main():
        first = Procs()
        try:
            _gostfast_wss(first, port, certs, tcpecho)
            assert await _tunnels(dialer, port, 2) == [False, True]
        finally:
            first.stop_all()
        second = Procs()  # new ticket keys: the remembered ticket is refused
        try:
            await asyncio.get_running_loop().run_in_executor(
                None, _gostfast_wss, second, port, certs, tcpecho
            )
            assert await _tunnels(dialer, port, 2) == [False, True]
        finally:
            second.stop_all()

    run(main(), timeout=90.0)


def test_context_keeps_no_session_without_a_ticket():
    """A handshake that never finished has no ticket: nothing is kept or offered."""
    ctx = client_context(TLSConfig(), log)
    obj = ctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="gost.run")
    ctx.keep(obj)  # no handshake yet: no session
    assert ctx._offer("gost.run") is None
