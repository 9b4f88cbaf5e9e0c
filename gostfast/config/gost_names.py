"""The component names GOST registers (go-gost/x, ``*Registry().Register("name", ...)``).

They matter twice. GOST's URL grammar uses a single scheme word for both parts
and lets a part that is not a registered name fall back (``ws://`` = auto
handler on a ws listener), so to read ``tls://:443`` as GOST does we must know
that ``tls`` IS a GOST listener: gostfast does not have it, and falling back
to a plain tcp listener would silently serve without TLS. And an error can
then say "not supported by gostfast yet" for GOST's names and "unknown" for
typos.

Read from go-gost/x at commit 0132cef (2026).
"""

from __future__ import annotations

LISTENERS = frozenset(
    "dns dtls ftcp grpc h2 h2c h3 http2 http3 icmp icmp6 kcp mtcp mtls mws mwss ohttp otls pht "
    "phts quic red redir redirect redu rtcp rudp runix serial ssh sshd stdio tap tcp tls tun "
    "tungo udp unix ws wss wt".split()
)
HANDLERS = frozenset(
    "api auto dns file forward http http2 http3 masque metrics red redir redirect redu relay "
    "router rtcp rudp runix serial sni socks socks4 socks4a socks5 ss sshd ssu tap tcp tun tungo "
    "tunnel udp unix".split()
)
DIALERS = frozenset(
    "direct dtls ftcp grpc h2 h2c h3 h3-masque http2 http3 icmp icmp6 kcp mtcp mtls mws mwss "
    "ohttp ohttps otls pht phts quic serial ssh sshd tcp tls udp unix utls virtual wg ws wss "
    "wt".split()
)
CONNECTORS = frozenset(
    "direct forward http http2 masque relay router serial sni socks socks4 socks4a socks5 ss "
    "sshd ssu tcp tunnel unix virtual".split()
)

# metadata GOST reads at the service, node and hop level (x/config/parsing:
# service/parse.go, node/parse.go, hop/parse.go, selector labels), lower-cased,
# that gostfast does not implement, so each is refused by name (the service's
# dialTimeout and ignoreChain and a node's selector labels are implemented)
SERVICE_METADATA = frozenset(
    "proxyprotocol interface so_mark preup predown postup postdown enablestats "
    "observer.resettraffic observer.period observeperiod netns netns.out "
    "limiter.refreshinterval limiter.cleanupinterval labels".split()
)
NODE_METADATA = frozenset(
    "proxyprotocol so_mark interface netns".split()
)  # backup, weight, maxFails, failTimeout are implemented (config/labels.py)
HOP_METADATA = frozenset("interface so_mark proxyprotocol netns".split())

BY_KIND = {
    "listener": LISTENERS,
    "handler": HANDLERS,
    "dialer": DIALERS,
    "connector": CONNECTORS,
}
