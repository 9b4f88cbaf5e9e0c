"""GOST's TLS semantics in ssl contexts: certificate choice, client auth, verification, errors.

Every check is a real TLS connection on 127.0.0.1 (asyncio streams) with a
5 s bound, or a plain function call.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from pathlib import Path

import pytest

from gostfast.config.errors import ConfigError
from gostfast.config.model import TLSConfig
from gostfast.tlsutil import contexts, selfsigned
from gostfast.tlsutil.contexts import client_context, server_context, server_hostname_for

log = logging.getLogger("test.tls")

T = 5.0


class Files:
    """Certificates on disk: a test CA, leaves signed by it, and unrelated ones."""

    def __init__(self, root: Path) -> None:
        self.root = root
        ca = selfsigned.generate("Test CA", "gostfast tests")
        self.ca, self.ca_key = self._write("ca", ca)
        self.server, self.server_key = self._write(
            "server", selfsigned.generate_signed(*ca, "gost.run", sans=["gost.run"])
        )
        self.server_ip, self.server_ip_key = self._write(
            "server_ip", selfsigned.generate_signed(*ca, "ip", sans=["127.0.0.1"])
        )
        self.client, self.client_key = self._write(
            "client", selfsigned.generate_signed(*ca, "client-1")
        )
        other = selfsigned.generate("Other CA", "elsewhere")
        self.other, self.other_key = self._write("other", other)
        self.other_client, self.other_client_key = self._write(
            "other_client", selfsigned.generate_signed(*other, "intruder")
        )
        self.selfsigned, self.selfsigned_key = self._write("self", selfsigned.generate())

    def _write(self, name: str, pair: tuple[bytes, bytes]) -> tuple[str, str]:
        c, k = self.root / f"{name}.pem", self.root / f"{name}.key"
        c.write_bytes(pair[0])
        k.write_bytes(pair[1])
        return str(c), str(k)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Files:
    return Files(tmp_path_factory.mktemp("certs"))


@pytest.fixture(autouse=True)
def _fresh_generated():
    contexts.reset_generated()
    yield
    contexts.reset_generated()


def der_of(path: str) -> bytes:
    return ssl.PEM_cert_to_DER_cert(Path(path).read_text())


def insecure_client() -> ssl.SSLContext:
    return client_context(TLSConfig(), log)


async def _exchange(server_ctx, client_ctx, server_hostname):
    """Connect, send b"ping"; returns (server certificate DER, reply). Raises the client's error."""

    async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            w.write(await r.read(4))
            await w.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            w.close()

    srv = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_ctx)
    port = srv.sockets[0].getsockname()[1]
    try:
        r, w = await asyncio.wait_for(
            asyncio.open_connection(
                "127.0.0.1", port, ssl=client_ctx, server_hostname=server_hostname
            ),
            T,
        )
        try:
            der = w.get_extra_info("ssl_object").getpeercert(binary_form=True)
            w.write(b"ping")
            reply = await asyncio.wait_for(r.read(4), T)
        finally:
            w.close()
        return der, reply
    finally:
        srv.close()
        await srv.wait_closed()


def exchange(server_ctx, client_ctx=None, server_hostname=None):
    return asyncio.run(_exchange(server_ctx, client_ctx or insecure_client(), server_hostname))


def refused(server_ctx, client_ctx, server_hostname=None) -> bool:
    """True when the TLS session could not carry the ping (handshake error, alert, EOF)."""
    try:
        _, reply = exchange(server_ctx, client_ctx, server_hostname)
    except (ssl.SSLError, ConnectionError):
        return True
    return reply != b"ping"


# ------------------------------------------------------------- certificate choice
def test_listener_files_win_over_global(files):
    ctx = server_context(
        TLSConfig(cert_file=files.server, key_file=files.server_key),
        TLSConfig(cert_file=files.other, key_file=files.other_key),
        log,
    )
    der, reply = exchange(ctx)
    assert reply == b"ping"
    assert der == der_of(files.server)


def test_global_files_when_listener_has_none(files):
    ctx = server_context(
        TLSConfig(), TLSConfig(cert_file=files.other, key_file=files.other_key), log
    )
    assert exchange(ctx)[0] == der_of(files.other)
    ctx = server_context(None, TLSConfig(cert_file=files.other, key_file=files.other_key), log)
    assert exchange(ctx)[0] == der_of(files.other)


def test_cwd_cert_pem_key_pem_next(files, tmp_path, monkeypatch):
    (tmp_path / "cert.pem").write_bytes(Path(files.server).read_bytes())
    (tmp_path / "key.pem").write_bytes(Path(files.server_key).read_bytes())
    monkeypatch.chdir(tmp_path)
    assert exchange(server_context(None, None, log))[0] == der_of(files.server)
    # the global section without files (only generation options) still takes the CWD pair
    assert exchange(server_context(None, TLSConfig(common_name="x"), log))[0] == der_of(
        files.server
    )


def test_cwd_needs_both_files(files, tmp_path, monkeypatch):
    (tmp_path / "cert.pem").write_bytes(Path(files.server).read_bytes())
    monkeypatch.chdir(tmp_path)
    der, _ = exchange(server_context(None, None, log))
    assert der != der_of(files.server)  # generated instead


def test_broken_cwd_pair_warns_and_generates(files, tmp_path, monkeypatch, caplog):
    (tmp_path / "cert.pem").write_bytes(Path(files.server).read_bytes())
    (tmp_path / "key.pem").write_bytes(Path(files.other_key).read_bytes())  # not its key
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.INFO, logger="test.tls"):
        der, reply = exchange(server_context(None, None, log))
    assert reply == b"ping" and der != der_of(files.server)
    assert any(
        r.levelno == logging.WARNING and "cert.pem" in r.getMessage() for r in caplog.records
    )


def test_generated_certificate_logged_once_and_shared(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.INFO, logger="test.tls"):
        a = server_context(None, None, log)
        b = server_context(TLSConfig(), None, log)
    der_a, _ = exchange(a)
    der_b, _ = exchange(b)
    assert der_a == der_b  # one generated certificate per process, like GOST's default
    fp = ":".join(f"{x:02X}" for x in hashlib.sha256(der_a).digest())
    recs = [r for r in caplog.records if "generated" in r.getMessage()]
    assert len(recs) == 1 and recs[0].levelno == logging.INFO
    assert fp in recs[0].getMessage() and "not persisted" in recs[0].getMessage()
    assert b"gost.run" in der_a and b"GOST" in der_a
    assert list(tmp_path.iterdir()) == []  # nothing written to the working directory


def test_generated_certificate_takes_global_overrides(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    g = TLSConfig(common_name="edge.example", organization="Acme", validity=7200)
    der, _ = exchange(server_context(None, g, log))
    assert b"edge.example" in der and b"Acme" in der and b"gost.run" not in der


def test_server_minimum_tls12_and_no_alpn(files):
    ctx = server_context(TLSConfig(cert_file=files.server, key_file=files.server_key), None, log)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    seen = []

    async def run():
        srv = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=ctx)
        client = insecure_client()
        client.set_alpn_protocols(["h2", "http/1.1"])
        r, w = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", srv.sockets[0].getsockname()[1], ssl=client), T
        )
        seen.append(w.get_extra_info("ssl_object").selected_alpn_protocol())
        w.close()
        srv.close()
        await srv.wait_closed()

    asyncio.run(run())
    assert seen == [None]  # GOST's listener negotiates no ALPN (plain HTTP/1.1 inside)


def test_server_sends_no_session_ticket_as_go_to_gost(files):
    """OpenSSL's default is two TLS 1.3 tickets per handshake, to every client; Go's
    server sends none to GOST's dialers (they list no psk_key_exchange_modes), and
    neither do we, to any client (this one, OpenSSL's, lists them)."""
    tickets = []

    def on_message(conn, direction, version, content_type, msg_type, data):
        if direction == "read" and msg_type == ssl._TLSMessageType.NEWSESSION_TICKET:
            tickets.append(version)

    client = insecure_client()
    client._msg_callback = on_message  # the ssl module's hook for every TLS message
    ctx = server_context(TLSConfig(cert_file=files.server, key_file=files.server_key), None, log)
    _, reply = exchange(ctx, client)
    assert reply == b"ping"
    assert tickets == []


# ------------------------------------------------------------- client certificates
def test_ca_file_requires_a_client_certificate(files):
    ctx = server_context(
        TLSConfig(cert_file=files.server, key_file=files.server_key, ca_file=files.ca), None, log
    )
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert refused(ctx, insecure_client())  # no certificate
    with_cert = client_context(TLSConfig(cert_file=files.client, key_file=files.client_key), log)
    assert exchange(ctx, with_cert)[1] == b"ping"
    foreign = client_context(
        TLSConfig(cert_file=files.other_client, key_file=files.other_client_key), log
    )
    assert refused(ctx, foreign)  # signed by another CA


def test_global_ca_file_applies_to_the_default_certificate(files):
    g = TLSConfig(cert_file=files.server, key_file=files.server_key, ca_file=files.ca)
    ctx = server_context(None, g, log)
    assert refused(ctx, insecure_client())
    ok = client_context(TLSConfig(cert_file=files.client, key_file=files.client_key), log)
    assert exchange(ctx, ok)[1] == b"ping"


def test_listener_ca_file_also_applies_with_the_generated_certificate(files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ctx = server_context(TLSConfig(ca_file=files.ca), None, log)
    assert refused(ctx, insecure_client())
    ok = client_context(TLSConfig(cert_file=files.client, key_file=files.client_key), log)
    assert exchange(ctx, ok)[1] == b"ping"


# ------------------------------------------------------------- client verification
def test_insecure_client_connects_to_self_signed_and_warns(files, caplog):
    server = server_context(
        TLSConfig(cert_file=files.selfsigned, key_file=files.selfsigned_key), None, log
    )
    with caplog.at_level(logging.WARNING, logger="test.tls"):
        client = client_context(TLSConfig(server_name="gost.run"), log, server="relay.example:443")
    assert client.verify_mode == ssl.CERT_NONE and not client.check_hostname
    msgs = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert msgs == [
        "TLS certificate of relay.example:443 is not verified (set secure=true to verify)"
    ]
    assert exchange(server, client, "gost.run")[1] == b"ping"
    assert exchange(server, client, "127.0.0.1")[1] == b"ping"


def test_secure_client_refuses_self_signed(files):
    server = server_context(
        TLSConfig(cert_file=files.selfsigned, key_file=files.selfsigned_key), None, log
    )
    client = client_context(TLSConfig(secure=True, server_name="gost.run"), log)
    with pytest.raises(ssl.SSLCertVerificationError):
        exchange(server, client, "gost.run")


def test_secure_client_with_ca_file_and_server_name_accepts(files):
    server = server_context(
        TLSConfig(cert_file=files.selfsigned, key_file=files.selfsigned_key), None, log
    )
    tls = TLSConfig(secure=True, ca_file=files.selfsigned, server_name="gost.run")
    client = client_context(tls, log)
    assert exchange(server, client, server_hostname_for(tls, "127.0.0.1"))[1] == b"ping"
    # same trust, wrong name: the host name check bites
    wrong = TLSConfig(secure=True, ca_file=files.selfsigned, server_name="other.example")
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch|match"):
        exchange(server, client_context(wrong, log), server_hostname_for(wrong, "127.0.0.1"))


def test_secure_pins_a_leaf_that_is_not_a_ca(files):
    """Go trusts any caFile certificate as an anchor; so do we (partial chain)."""
    server = server_context(TLSConfig(cert_file=files.server, key_file=files.server_key), None, log)
    tls = TLSConfig(secure=True, ca_file=files.server, server_name="gost.run")
    assert exchange(server, client_context(tls, log), "gost.run")[1] == b"ping"


def test_ca_file_without_secure_checks_chain_but_not_name(files):
    server = server_context(TLSConfig(cert_file=files.server, key_file=files.server_key), None, log)
    tls = TLSConfig(ca_file=files.ca, server_name="not-the-name.example")
    client = client_context(tls, log)
    assert client.verify_mode == ssl.CERT_REQUIRED and not client.check_hostname
    assert exchange(server, client, server_hostname_for(tls, "127.0.0.1"))[1] == b"ping"
    stranger = server_context(
        TLSConfig(cert_file=files.other_client, key_file=files.other_client_key), None, log
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        exchange(stranger, client, "x.example")


def test_secure_ip_literal_is_checked_against_ip_san(files):
    good = server_context(
        TLSConfig(cert_file=files.server_ip, key_file=files.server_ip_key), None, log
    )
    named = server_context(TLSConfig(cert_file=files.server, key_file=files.server_key), None, log)
    tls = TLSConfig(secure=True, ca_file=files.ca)  # no serverName: the node host is the name
    host = server_hostname_for(tls, "127.0.0.1")
    assert host == "127.0.0.1"
    assert exchange(good, client_context(tls, log), host)[1] == b"ping"
    with pytest.raises(ssl.SSLCertVerificationError):
        exchange(named, client_context(tls, log), host)  # only DNS:gost.run in it


def test_sni_not_sent_for_ip_literals(files):
    seen: list = []
    server = server_context(TLSConfig(cert_file=files.server, key_file=files.server_key), None, log)
    server.sni_callback = lambda sslobj, name, ctx: seen.append(name)
    exchange(server, insecure_client(), server_hostname_for(None, "127.0.0.1"))
    exchange(
        server,
        insecure_client(),
        server_hostname_for(TLSConfig(server_name="gost.run"), "127.0.0.1"),
    )
    exchange(server, insecure_client(), server_hostname_for(None, "[::1]"))
    assert seen == [None, "gost.run", None]


def test_client_certificate_is_sent(files):
    seen = []

    server = server_context(
        TLSConfig(cert_file=files.server, key_file=files.server_key, ca_file=files.ca), None, log
    )

    async def run():
        async def handler(r, w):
            seen.append(w.get_extra_info("ssl_object").getpeercert())
            w.close()

        srv = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=server)
        port = srv.sockets[0].getsockname()[1]
        client = client_context(TLSConfig(cert_file=files.client, key_file=files.client_key), log)
        r, w = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname="gost.run"), T
        )
        await asyncio.wait_for(r.read(), T)
        w.close()
        srv.close()
        await srv.wait_closed()

    asyncio.run(run())
    assert seen and seen[0]["subject"][-1] == (("commonName", "client-1"),)


# ------------------------------------------------------------- server_hostname_for
@pytest.mark.parametrize(
    ("tls", "host", "want"),
    [
        (None, "example.com", "example.com"),
        (TLSConfig(server_name="sni.example"), "example.com", "sni.example"),
        (TLSConfig(server_name="sni.example"), "10.0.0.1", "sni.example"),
        (TLSConfig(), "10.0.0.1", "10.0.0.1"),
        (None, "[2001:db8::1]", "2001:db8::1"),
        (None, "fe80::1%eth0", "fe80::1"),
        (None, "", None),
    ],
)
def test_server_hostname_for(tls, host, want):
    assert server_hostname_for(tls, host) == want


# ------------------------------------------------------------- errors
def test_missing_cert_file_is_named(files, tmp_path):
    missing = str(tmp_path / "nope.pem")
    with pytest.raises(ConfigError) as ei:
        server_context(
            TLSConfig(cert_file=missing, key_file=files.server_key),
            None,
            log,
            where="services[0].listener.tls",
        )
    msg = str(ei.value)
    assert missing in msg and "certFile" in msg and "No such file" in msg
    assert msg.startswith("services[0].listener.tls: ")


def test_missing_key_file_is_named(files, tmp_path):
    missing = str(tmp_path / "nokey.pem")
    with pytest.raises(ConfigError, match="keyFile .*nokey.pem.*No such file"):
        server_context(TLSConfig(cert_file=files.server, key_file=missing), None, log)


def test_half_pair_is_an_error(files):
    with pytest.raises(ConfigError, match="keyFile is required"):
        server_context(TLSConfig(cert_file=files.server), None, log)
    with pytest.raises(ConfigError, match="certFile is required"):
        client_context(TLSConfig(key_file=files.client_key), log)


def test_mismatched_pair_names_both_files(files):
    with pytest.raises(ConfigError) as ei:
        server_context(TLSConfig(cert_file=files.server, key_file=files.other_key), None, log)
    msg = str(ei.value)
    assert "does not match" in msg and files.server in msg and files.other_key in msg


def test_not_pem_is_named(files, tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("hello\n")
    with pytest.raises(ConfigError, match=r"certFile .*junk.pem.*no PEM CERTIFICATE"):
        server_context(TLSConfig(cert_file=str(junk), key_file=files.server_key), None, log)
    with pytest.raises(ConfigError, match=r"keyFile .*junk.pem.*no PEM"):
        server_context(TLSConfig(cert_file=files.server, key_file=str(junk)), None, log)
    with pytest.raises(ConfigError, match=r"caFile .*junk.pem"):
        client_context(TLSConfig(secure=True, ca_file=str(junk)), log)


def test_corrupt_pem_is_named(files, tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(ConfigError, match=r"bad.pem"):
        server_context(TLSConfig(cert_file=str(bad), key_file=files.server_key), None, log)
    with pytest.raises(ConfigError, match=r"caFile .*bad.pem"):
        server_context(
            TLSConfig(cert_file=files.server, key_file=files.server_key, ca_file=str(bad)),
            None,
            log,
        )


def test_missing_ca_files_are_named(files, tmp_path):
    missing = str(tmp_path / "ca-missing.pem")
    with pytest.raises(ConfigError, match="caFile .*ca-missing.pem.*No such file"):
        server_context(
            TLSConfig(cert_file=files.server, key_file=files.server_key, ca_file=missing), None, log
        )
    with pytest.raises(ConfigError, match="caFile .*ca-missing.pem"):
        client_context(TLSConfig(ca_file=missing), log)
    with pytest.raises(ConfigError, match="caFile .*ca-missing.pem"):
        client_context(TLSConfig(secure=True, ca_file=missing), log)


def test_global_file_errors_say_tls(tmp_path):
    missing = str(tmp_path / "g.pem")
    with pytest.raises(ConfigError) as ei:
        server_context(None, TLSConfig(cert_file=missing, key_file=missing), log)
    assert str(ei.value).startswith("tls: ")


def test_unreadable_file(files, tmp_path):
    import os

    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    p = tmp_path / "locked.pem"
    p.write_bytes(Path(files.server).read_bytes())
    p.chmod(0)
    with pytest.raises(ConfigError, match="locked.pem.*cannot read"):
        server_context(TLSConfig(cert_file=str(p), key_file=files.server_key), None, log)
