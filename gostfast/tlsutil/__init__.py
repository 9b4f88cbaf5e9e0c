"""TLS for the wss/mwss listeners and dialers, with the standard library only.

* ``selfsigned`` -- GOST's default certificate (ECDSA P-256, O=GOST, CN=gost.run),
  generated in pure Python: a small DER encoder and P-256 arithmetic, so the
  project needs no ``cryptography`` package.
* ``contexts`` -- ``ssl.SSLContext`` objects with GOST's certificate choice
  (server) and verification semantics (client: unverified unless ``secure``).
* ``endpoint`` -- TLS over any Endpoint (``TLSEndpoint``, for hops nested in
  other tunnels) and the native ``loop.start_tls`` upgrade of a TCP endpoint.
"""

from __future__ import annotations
