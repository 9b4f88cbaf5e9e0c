"""TLS session resumption on the dialer: offer the server's last ticket on the next handshake.

A wss dialer opens a TLS connection per tunnel to the same node. A full TLS
1.3 handshake makes the client parse the server's certificate and check its
CertificateVerify signature, and the server sign; a resumed one (PSK with
(EC)DHE, RFC 8446 2.2) skips all three and still agrees on fresh keys, so
forward secrecy is kept. GOST's dialer never resumes (Go's tls.Config has
no ClientSessionCache unless one is set); GOST's listener, Go's server, does
accept resumption by default, and so does gostfast's. This is a deliberate
departure on the client side, inside TLS only: the bytes of the websocket
and the tunnel do not change, and a server that refuses the ticket (a
restarted gostfast, whose ticket keys and certificate are new) simply
gets a full handshake.

Which ticket: the one the server sent on the most recent connection through
this context (``remember``); every handshake, resumed or not, brings a new
one, so a busy dialer keeps offering fresh tickets. One context serves one
node, but the tickets are kept per ``server_hostname`` all the same, and
one whose lifetime is over is not offered.

uvloop's and CPython's TLS transports create their SSLObject through
``SSLContext.wrap_bio``, so overriding it is where a session can be handed in
(``loop.start_tls`` and ``create_connection`` take no session argument).

What it buys (CPU time per handshake on memory BIOs, TLS 1.3, P-256
certificate, OpenSSL 3.0.19, loaded 2-vCPU box): client 587 -> 479 us, server
358 -> 303 us. Less than the certificate work it skips, because CPython copies
a session before setting it (``_ssl_session_dup``: a DER round trip that
parses the peer certificate again, ~175 us with OpenSSL 3.0's decoders).
"""

from __future__ import annotations

import ssl
import time

__all__ = ["ResumingClientContext", "remember"]


class ResumingClientContext(ssl.SSLContext):
    """A client SSLContext that offers the last remembered session of a server name."""

    _sessions: dict[str | None, ssl.SSLSession]

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        if session is None and not server_side:
            session = self._offer(server_hostname)
        return super().wrap_bio(incoming, outgoing, server_side, server_hostname, session)

    def _offer(self, server_hostname: str | None) -> ssl.SSLSession | None:
        sessions = self.__dict__.get("_sessions")
        if not sessions:
            return None
        session = sessions.get(server_hostname)
        if session is not None and session.time + session.timeout <= time.time():
            del sessions[server_hostname]  # expired: the server would refuse it
            return None
        return session

    def keep(self, sslobj: ssl.SSLObject) -> None:
        """Remember ``sslobj``'s session for its server name if it carries a ticket."""
        session = sslobj.session
        if session is not None and session.has_ticket:
            self.__dict__.setdefault("_sessions", {})[sslobj.server_hostname] = session


def remember(ctx: ssl.SSLContext | None, ssl_object: ssl.SSLObject | None) -> None:
    """After a handshake and a first read (TLS 1.3 tickets arrive after the handshake):
    keep the connection's session for the next one, if ``ctx`` resumes."""
    if ssl_object is not None and isinstance(ctx, ResumingClientContext):
        ctx.keep(ssl_object)
