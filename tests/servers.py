"""Threaded test servers (http.server and socketserver ones) that always stop."""

from __future__ import annotations

import contextlib
import socketserver
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def serving(srv: socketserver.BaseServer) -> Iterator[int]:
    """Run ``srv`` in a daemon thread; yields its port, then shuts it down and closes it."""
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()
