"""``ssl.SSLContext`` objects with GOST's TLS semantics, for wss/mwss listeners and dialers.

Server (``server_context``), certificate choice as in GOST (x/config/parsing):

1. the listener's ``certFile``/``keyFile``;
2. else the global ``tls:`` section's ``certFile``/``keyFile``;
3. else ``cert.pem`` + ``key.pem`` in the current directory, when both exist
   (if they exist but do not load, GOST silently moves on; we do the same but
   say so in a WARNING);
4. else a freshly generated self-signed certificate like GOST's (ECDSA P-256,
   O=GOST, CN=gost.run, one year; the global section's ``validity``,
   ``commonName`` and ``organization`` override). GOST also persists it to
   ``$HOME/.gost/auto-ca-{cert,key}.pem`` and reuses it on the next start; we do
   NOT persist (no writes outside the process's temp files): a new one is made
   per process, shared by every listener of that process, and its SHA-256
   fingerprint is logged once at INFO so clients that pin it can be told.

A ``caFile`` makes client certificates mandatory (GOST's
RequireAndVerifyClientCert): the listener's, else the global one. GOST honours a
listener ``caFile`` only together with that listener's ``certFile``/``keyFile`` and
would silently drop it otherwise; we never drop a request for client
authentication, so a listener ``caFile`` also applies to the default
certificate. TLS 1.2 is the minimum (Go's default), no ALPN (GOST sets none).
No TLS 1.3 session tickets. Go's server sends one only to a client whose hello
lists psk_key_exchange_modes (crypto/tls ``shouldSendSessionTickets``), and Go's
client lists them only with a ClientSessionCache, which GOST's dialers never set:
GOST's listener sends GOST's dialers none. OpenSSL's server sends its tickets to
every client (two by default), and CPython cannot make that depend on the hello,
so we send none: the same as GOST towards GOST's (and gostfast's) dialers, and for
a third-party client that keeps a session cache only a full handshake where GOST
would let it resume. One ticket cost the listener ~130k instructions per wss
connection (3.39M -> 3.25M, bench/instructions.py) and a dialer that takes it as
much again (7.47M -> 7.20M for both ends of a memory-BIO handshake). TLS 1.2
tickets (RFC 5077) are as before.

Client (``client_context``), GOST semantics (x/internal/util/tls.LoadClientConfig):

* ``secure`` false (the default): the server certificate is NOT verified at all;
  a WARNING says so once per context (build one context per node);
* ``secure`` false with ``caFile``: the chain must verify against ``caFile``,
  the host name is not checked;
* ``secure`` true: the chain must verify (against ``caFile``, else the system
  store) and the certificate must match ``serverName`` -- or the node host;
* ``certFile``/``keyFile``: a client certificate.

Like Go, a ``caFile`` certificate is a trust anchor even when it is not
self-signed (``VERIFY_X509_PARTIAL_CHAIN``): pinning a server's own leaf works.

Every problem with a named file (missing, unreadable, not PEM, key not matching
the certificate) raises ``ConfigError`` naming the file and the reason.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import ssl
import tempfile

from gostfast.config.errors import ConfigError
from gostfast.config.model import TLSConfig
from gostfast.tlsutil import selfsigned

__all__ = ["server_context", "client_context", "server_hostname_for", "reset_generated"]

#: the implicit certificate files GOST looks for in the current directory
CWD_CERT_FILE = "cert.pem"
CWD_KEY_FILE = "key.pem"

# (common_name, organization, validity) -> (cert_pem, key_pem): one generated
# certificate per process and parameter set, like GOST's single default config
_generated: dict[tuple[str, str, float], tuple[bytes, bytes]] = {}


def reset_generated() -> None:
    """Forget generated certificates (tests)."""
    _generated.clear()


# --------------------------------------------------------------------------- server
def server_context(
    tls: TLSConfig | None,
    global_tls: TLSConfig | None,
    log: logging.Logger,
    *,
    where: str = "",
) -> ssl.SSLContext:
    """The listener's SSL context (see the module docstring for the certificate choice).

    ``where`` names the config spot for errors (``services[0].listener.tls``).
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.num_tickets = 0  # what Go's server sends GOST's dialers (see the module docstring)

    if tls is not None and (tls.cert_file or tls.key_file):
        _load_pair(ctx, tls.cert_file, tls.key_file, where)
    elif global_tls is not None and (global_tls.cert_file or global_tls.key_file):
        _load_pair(ctx, global_tls.cert_file, global_tls.key_file, where or "tls")
    elif not _load_cwd_pair(ctx, log):
        _load_generated(ctx, global_tls, log)

    ca_file, ca_where = "", where
    if tls is not None and tls.ca_file:
        ca_file = tls.ca_file
    elif global_tls is not None and global_tls.ca_file:
        ca_file, ca_where = global_tls.ca_file, where or "tls"
    if ca_file:
        _load_ca(ctx, ca_file, ca_where)
        ctx.verify_mode = ssl.CERT_REQUIRED  # RequireAndVerifyClientCert
    return ctx


def _load_cwd_pair(ctx: ssl.SSLContext, log: logging.Logger) -> bool:
    if not (os.path.isfile(CWD_CERT_FILE) and os.path.isfile(CWD_KEY_FILE)):
        return False
    try:
        _load_pair(ctx, CWD_CERT_FILE, CWD_KEY_FILE, "")
    except ConfigError as exc:
        log.warning("ignoring %s/%s in the current directory: %s", CWD_CERT_FILE, CWD_KEY_FILE, exc)
        return False
    log.info("TLS: using certificate %s from the current directory", os.path.abspath(CWD_CERT_FILE))
    return True


def _load_generated(ctx: ssl.SSLContext, global_tls: TLSConfig | None, log: logging.Logger) -> None:
    g = global_tls or TLSConfig()
    key = (
        g.common_name or "gost.run",
        g.organization or "GOST",
        g.validity if g.validity > 0 else float(selfsigned.DEFAULT_VALIDITY),
    )
    pair = _generated.get(key)
    if pair is None:
        pair = selfsigned.generate(common_name=key[0], organization=key[1], validity=key[2])
        _generated[key] = pair
        log.info(
            "TLS: no certificate configured; generated a self-signed one "
            "(CN=%s, O=%s, not persisted), SHA-256 fingerprint %s",
            key[0],
            key[1],
            selfsigned.fingerprint_sha256(pair[0]),
        )
    _load_pem_pair(ctx, *pair)


def _load_pem_pair(ctx: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """``load_cert_chain`` reads only files: a private temp dir (0700) that is gone afterwards."""
    with tempfile.TemporaryDirectory(prefix="gostfast-tls-") as d:
        cert_path = os.path.join(d, "cert.pem")
        key_path = os.path.join(d, "key.pem")
        for path, data in ((cert_path, cert_pem), (key_path, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        ctx.load_cert_chain(cert_path, key_path)


# --------------------------------------------------------------------------- client
def client_context(
    tls: TLSConfig | None, log: logging.Logger, *, server: str = "", where: str = ""
) -> ssl.SSLContext:
    """The dialer's SSL context for one node (see the module docstring).

    ``server`` names the node in the "not verified" warning (defaults to
    ``serverName``); ``where`` names the config spot for errors. Use it with
    ``server_hostname_for`` for the ``server_hostname`` argument.
    """
    t = tls or TLSConfig()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if t.cert_file or t.key_file:
        _load_pair(ctx, t.cert_file, t.key_file, where)
    if t.secure:
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
        if t.ca_file:
            _load_ca(ctx, t.ca_file, where)
        else:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    elif t.ca_file:
        # chain verified against caFile, host name not (GOST's VerifyConnection with DNSName "")
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_REQUIRED
        _load_ca(ctx, t.ca_file, where)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        log.warning(
            "TLS certificate of %s is not verified (set secure=true to verify)",
            server or t.server_name or "the server",
        )
    return ctx


def server_hostname_for(tls: TLSConfig | None, node_host: str) -> str | None:
    """The ``server_hostname`` to hand to ``wrap_bio``/``start_tls`` for a node.

    ``serverName`` when given, else the node's host (brackets and any IPv6 zone
    removed); None only when there is no host at all.

    IP literals are returned as they are, not as None: CPython's ssl module
    itself never puts an IP literal into SNI (exactly Go's rule: no SNI for
    IPs), and with hostname checking on (``secure=true``) it verifies the
    certificate's iPAddress names against it, as Go does when ServerName is an
    IP. Returning None would instead make a verifying context fail outright
    ("check_hostname requires server_hostname") and lose the IP check. So for
    ``secure=true`` the certificate is checked against ``serverName`` if given,
    else against the node's IP or DNS name.
    """
    if tls is not None and tls.server_name:
        return _plain_host(tls.server_name)
    host = _plain_host(node_host)
    return host or None


def _plain_host(host: str) -> str:
    h = host.strip()
    if h.startswith("[") and "]" in h:
        h = h[1 : h.index("]")]
    if "%" in h:  # fe80::1%eth0: the zone is local routing, not part of the name
        base = h.split("%", 1)[0]
        try:
            ipaddress.IPv6Address(base)
            h = base
        except ValueError:
            pass
    return h


# --------------------------------------------------------------------------- files
def _err(where: str, message: str) -> ConfigError:
    return ConfigError(where, message)


def _read_file(path: str, what: str, where: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise _err(where, f"{what} {path!r}: cannot read: {exc.strerror or exc}") from None


def _check_pem(path: str, data: bytes, labels: tuple[bytes, ...], what: str, where: str) -> None:
    if not any(b"-----BEGIN " + label + b"-----" in data for label in labels):
        want = " or ".join(label.decode() for label in labels)
        raise _err(where, f"{what} {path!r}: no PEM {want} block found")


_KEY_LABELS = (b"PRIVATE KEY", b"EC PRIVATE KEY", b"RSA PRIVATE KEY", b"ENCRYPTED PRIVATE KEY")


def _load_pair(ctx: ssl.SSLContext, cert_file: str, key_file: str, where: str) -> None:
    """Load a certificate/key pair, naming the file at fault on error."""
    if not cert_file or not key_file:
        missing = "keyFile" if cert_file else "certFile"
        raise _err(
            where, f"{missing} is required together with {'certFile' if cert_file else 'keyFile'}"
        )
    cert = _read_file(cert_file, "certFile", where)
    key = _read_file(key_file, "keyFile", where)
    _check_pem(cert_file, cert, (b"CERTIFICATE",), "certFile", where)
    _check_pem(key_file, key, _KEY_LABELS, "keyFile", where)
    if b"ENCRYPTED PRIVATE KEY" in key or b"Proc-Type: 4,ENCRYPTED" in key:
        raise _err(where, f"keyFile {key_file!r}: encrypted private keys are not supported")
    try:
        ctx.load_cert_chain(cert_file, key_file, password=_no_password)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise _err(
                where, f"keyFile {key_file!r} does not match certFile {cert_file!r}"
            ) from None
        raise _err(
            where, f"certFile {cert_file!r} / keyFile {key_file!r}: {_ssl_reason(exc)}"
        ) from None
    except (OSError, ValueError) as exc:  # raced with a delete/chmod; a pass phrase was wanted
        raise _err(where, f"certFile {cert_file!r} / keyFile {key_file!r}: {exc}") from None


def _no_password() -> bytes:
    # never prompt on the terminal for a pass phrase (OpenSSL's default would)
    raise ValueError("encrypted private keys are not supported")


def _load_ca(ctx: ssl.SSLContext, ca_file: str, where: str) -> None:
    data = _read_file(ca_file, "caFile", where)
    _check_pem(ca_file, data, (b"CERTIFICATE",), "caFile", where)
    try:
        ctx.load_verify_locations(cafile=ca_file)
    except (ssl.SSLError, OSError) as exc:
        raise _err(where, f"caFile {ca_file!r}: {_ssl_reason(exc)}") from None
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN


def _ssl_reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return reason.replace("_", " ").lower()
    return str(exc)
