"""HTTP/1.1 message body framing (RFC 9112 section 6), sans-IO.

Where a message's body ends, decided from its head alone: a byte count, CHUNKED,
or UNTIL_CLOSE (a response with neither Content-Length nor Transfer-Encoding:
the body ends at EOF). The forward proxy streams bodies by this answer
(handler/_httpbody.py does the copying), and the probe-resistance decoy page
uses it too; it lives here, beside the head codec, because it is a pure function
of the head and so is tested without sockets.

Conflicting or malformed framing is a BodyError (a ProtocolError): two peers
that read one message two ways is how request smuggling starts.
"""

from __future__ import annotations

from gostfast.proto.errors import ProtocolError
from gostfast.proto.http1 import Request, Response

__all__ = ["CHUNKED", "UNTIL_CLOSE", "BodyError", "request_length", "response_length"]

CHUNKED = -1
UNTIL_CLOSE = -2


class BodyError(ProtocolError):
    """A body whose framing is broken (bad chunk size, bad Content-Length...)."""


def _content_length(msg: Request | Response) -> int | None:
    values = msg.get_all("Content-Length")
    if not values:
        return None
    parts = {p.strip() for v in values for p in v.split(",")}
    if len(parts) != 1:
        raise BodyError(f"conflicting Content-Length values {values}")
    text = parts.pop()
    if not text.isdigit() or not text.isascii() or len(text) > 18:
        raise BodyError(f"invalid Content-Length {text!r}")
    return int(text)


def _is_chunked(msg: Request | Response) -> bool | None:
    """None: no Transfer-Encoding; True: chunked is the final coding; False: it is not."""
    codings = [c.strip().lower() for v in msg.get_all("Transfer-Encoding") for c in v.split(",")]
    codings = [c for c in codings if c]
    if not codings:
        return None
    return codings[-1] == "chunked"


def request_length(req: Request) -> int:
    """How the request body is framed: a byte count (0: none) or CHUNKED."""
    chunked = _is_chunked(req)
    if chunked is not None:
        if not chunked:
            raise BodyError("request Transfer-Encoding does not end in chunked")
        return CHUNKED
    n = _content_length(req)
    return n or 0


def response_length(resp: Response, method: str) -> int:
    """How the response body is framed, given the request method."""
    status = resp.status
    if method == "HEAD" or 100 <= status < 200 or status in (204, 304):
        return 0
    chunked = _is_chunked(resp)
    if chunked is not None:
        return CHUNKED if chunked else UNTIL_CLOSE
    n = _content_length(resp)
    return UNTIL_CLOSE if n is None else n
