"""TLS for the wss/mwss listeners and dialers: the ssl module, plus ``cryptography``.

* ``selfsigned`` -- GOST's default certificate (ECDSA P-256, O=GOST, CN=gost.run),
  made with the ``cryptography`` package (key, signature and X.509 encoding
  are a vetted library's job, never hand-written here).
* ``contexts`` -- ``ssl.SSLContext`` objects with GOST's certificate choice
  (server) and verification semantics (client: unverified unless ``secure``).
* ``endpoint`` -- TLS over any Endpoint (``TLSEndpoint``, for hops nested in
  other tunnels) and the native ``loop.start_tls`` upgrade of a TCP endpoint.
"""

from __future__ import annotations
