"""The WebSocket opening handshake (RFC 6455 section 4) as GOST's peers speak it, sans-IO.

Client side = what GOST's ws/mws dialer sends through gorilla/websocket v1.5.3 and
Go's net/http ``Request.Write``; server side = what GOST's ws/mws listener answers
through Go's ServeMux and gorilla's ``Upgrader`` (spec section 1 "HTTP behaviour").
Byte-level details copied from that behaviour (not from its code):

- Request: ``GET <path> HTTP/1.1``, ``Host``, ``User-Agent: Go-http-client/1.1``, then
  every other header sorted by name (Go writes its header map sorted), which puts
  gorilla's ``Connection: Upgrade``, ``Sec-WebSocket-Key``, ``Sec-WebSocket-Version:
  13``, ``Upgrade: websocket`` in that order, with the extra headers among them.
  The path is escaped like Go's ``url.URL.EscapedPath`` (``?`` becomes ``%3F``).
- Server checks, in gorilla v1.5.3's order (GOST pins that version): path (Go's
  ServeMux, 404) -> ``Connection`` has token ``upgrade`` (400) -> ``Upgrade`` has
  token ``websocket`` (400) -> method is GET (405) -> ``Sec-WebSocket-Version`` has
  token ``13`` (400) -> ``Sec-WebSocket-Key`` decodes to 16 bytes (400). Origin is
  never checked (GOST allows every origin). Every gorilla refusal carries
  ``Sec-Websocket-Version: 13`` and the body ``http.StatusText(status) + "\\n"``.
- permessage-deflate (RFC 7692, GOST's ``enableCompression``) as gorilla negotiates
  it: the dialer offers ``DEFLATE_OFFER`` (no context takeover both ways, sorted in
  among the other headers); a listener that allows compression answers the same text
  right after Sec-WebSocket-Accept when the offer names ``permessage-deflate`` (its
  parameters are not read: no context takeover and 15-bit windows suit every offer);
  a dialer that offered accepts an answer only with both no_context_takeover
  parameters, and an answer without the extension means no compression.
- gorilla also refuses (by closing, with no response) a client that sent bytes after
  its request head before receiving the 101: that check needs the socket, so the
  listener does it.

Invariants: no I/O, no state; ``make_key`` and ``build_rejection`` (Date header) are
the only functions that read the OS (randomness, clock).
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hashlib
import os
import re
from collections.abc import Callable
from urllib.parse import unquote_to_bytes

from gostfast.proto.errors import ProtocolError
from gostfast.proto.http1 import (
    Request,
    Response,
    build_request,
    canonical_header_key,
    is_token,
    status_text,
)

__all__ = [
    "GUID",
    "USER_AGENT",
    "HandshakeError",
    "HandshakeRejected",
    "make_key",
    "client_request_parts",
    "is_plain_accept",
    "accept_for",
    "request_target",
    "build_client_request",
    "check_client_response",
    "path_matches",
    "clean_path",
    "check_server_request",
    "plain_request_matcher",
    "build_server_response",
    "build_rejection",
    "DEFLATE_OFFER",
    "offers_deflate",
    "accepts_deflate",
]

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

_b64 = binascii.b2a_base64
try:  # CPython's own SHA-1: hashlib.sha1 goes through OpenSSL's EVP (a digest fetch,
    # a context allocation), 6.5k of accept_for's 9.7k instructions; _sha1's is ~2/3
    from _sha1 import sha1 as _sha1
except ImportError:  # a Python built without it
    _sha1 = hashlib.sha1
# gorilla's offer and its answer: the same text both ways.
DEFLATE_OFFER = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
USER_AGENT = "Go-http-client/1.1"

# Extra request headers gorilla refuses (it builds these itself), by canonical name.
_RESERVED_REQUEST_HEADERS = frozenset(
    (
        "Upgrade",
        "Connection",
        "Sec-Websocket-Key",
        "Sec-Websocket-Version",
        "Sec-Websocket-Extensions",
    )
)

# Bytes Go's url.EscapedPath leaves as they are (RFC 3986 unreserved + path sub-delims).
_PATH_SAFE = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~$&+,/:;=@"
)


class HandshakeError(ProtocolError):
    """The WebSocket handshake failed (client side: the server's answer is not a valid 101)."""


class HandshakeRejected(HandshakeError):
    """Server side: the upgrade request is refused with an HTTP error response.

    ``status``/``body``/``headers`` describe that response (``build_rejection`` makes
    the bytes); ``str(exc)`` is gorilla's log message for the refusal.
    """

    def __init__(
        self, status: int, body: str, headers: list, message: str = "", reason: str = "rejected"
    ) -> None:
        super().__init__(message or f"websocket handshake rejected with {status}")
        self.status = status
        self.body = body
        self.headers = list(headers)
        #: a short name for the refusal (the metrics' reason label): path, not_upgrade, ...
        self.reason = reason


def make_key(nonce: bytes | None = None) -> str:
    """A Sec-WebSocket-Key: 16 random bytes (``nonce``, else fresh ones), base64.

    ``binascii`` directly: ``base64.b64encode`` is a Python frame around the same call
    (5.9k instructions a key through it, per dialled websocket)."""
    return _b64(os.urandom(16) if nonce is None else nonce, newline=False).decode("ascii")


def accept_for(key: str) -> str:
    """The Sec-WebSocket-Accept value for ``key``: base64(sha1(key + GUID))."""
    return _accept(key).decode("ascii")


def _accept(key: str) -> bytes:
    """``accept_for`` as ASCII bytes, for the 101's template (no str round trip)."""
    return _b64(_sha1((key + GUID).encode("latin-1")).digest(), newline=False)


def _token_list_contains(values: list[str], token: str) -> bool:
    """gorilla's tokenListContainsValue: ``token`` (any case) in a comma list of tokens.

    A value with anything but a token list (e.g. ``websocket/13``) does not match at
    all, unlike a plain comma split.
    """
    ltoken = token.lower()
    for value in values:
        for item in value.split(","):
            item = item.strip(" \t")
            if not is_token(item):
                break  # gorilla abandons the rest of this header value
            if item.lower() == ltoken:
                return True
    return False


# -- client side ---------------------------------------------------------------------


def request_target(path: str) -> str:
    """The request target Go sends for URL path ``path`` (escaped like EscapedPath)."""
    if path and not path.startswith("/"):
        path = "/" + path
    escaped = "".join(chr(b) if b in _PATH_SAFE else f"%{b:02X}" for b in path.encode("utf-8"))
    return escaped or "/"


def build_client_request(
    host: str, path: str, key: str, extra_headers=(), compress: bool = False
) -> bytes:
    """The upgrade request GOST's dialer sends, byte for byte (see the module docstring).

    ``compress`` (GOST's ``enableCompression``) adds gorilla's permessage-deflate offer.

    ``extra_headers`` (GOST's ``header`` metadata) are added with Go-canonical names;
    an extra ``Host`` replaces the Host line and an extra ``User-Agent`` the default
    one (first value wins, as in Go). Upgrade/Connection/Sec-WebSocket-Key/Version/
    Extensions extras raise ValueError("duplicate header not allowed: ...").
    """
    user_agent = USER_AGENT
    host_seen = agent_seen = False
    headers = [
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
        ("Upgrade", "websocket"),
    ]
    if compress:  # gorilla's own spelling, which Go's sorted header writer keeps
        headers.append(("Sec-WebSocket-Extensions", DEFLATE_OFFER))
    for name, value in extra_headers:
        canon = canonical_header_key(name)
        if canon in _RESERVED_REQUEST_HEADERS:
            raise ValueError(f"duplicate header not allowed: {canon}")
        if canon == "Host":
            if not host_seen:
                host, host_seen = value, True
        elif canon == "User-Agent":
            if not agent_seen:
                user_agent, agent_seen = value, True
        elif canon == "Sec-Websocket-Protocol":
            headers.append(("Sec-WebSocket-Protocol", value))
        else:
            headers.append((canon, value))
    headers.sort(key=lambda item: item[0])  # stable: values of one name keep their order
    first = [("Host", host)]
    if user_agent:
        first.append(("User-Agent", user_agent))
    return build_request("GET", request_target(path), first + headers)


#: RFC 6455's sample key: a valid value that stands for the real key in a template
_TEMPLATE_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def client_request_parts(
    host: str, path: str, extra_headers=(), compress: bool = False
) -> tuple[bytes, bytes]:
    """``build_client_request`` cut around the key: ``prefix + key + suffix`` is the
    request for that key, byte for byte.

    A dialer sends the same request to a node every time but for the key, so it
    builds (and validates) it once; ValueError as ``build_client_request``.
    """
    request = build_client_request(host, path, _TEMPLATE_KEY, extra_headers, compress)
    # the header line, not the bare value: the Host or a path may hold the same text;
    # an extra Sec-WebSocket-Key header is refused, so this line is the only one
    line = b"\r\nSec-WebSocket-Key: " + _TEMPLATE_KEY.encode("ascii") + b"\r\n"
    at = request.index(line) + len(line) - 2 - len(_TEMPLATE_KEY)
    return request[:at], request[at + len(_TEMPLATE_KEY) :]


def is_plain_accept(head: bytes, key: str) -> bool:
    """True when ``head`` is exactly the 101 gorilla (and gostfast) write for ``key``,
    without extensions: ``check_client_response`` would accept it and
    ``accepts_deflate`` say no, so the answer needs no parsing."""
    return head == build_server_response(key)


def check_client_response(resp: Response, key: str) -> None:
    """Accept the server's answer as gorilla does, else raise HandshakeError.

    Needs status 101, token ``websocket`` in Upgrade, token ``upgrade`` in Connection
    and Sec-WebSocket-Accept equal to ``accept_for(key)``.
    """
    if resp.status != 101:
        raise HandshakeError(f"bad handshake: status {resp.status} {resp.reason!r}, expected 101")
    if not _token_list_contains(resp.get_all("Upgrade"), "websocket"):
        raise HandshakeError("bad handshake: no 'websocket' token in the Upgrade header")
    if not _token_list_contains(resp.get_all("Connection"), "upgrade"):
        raise HandshakeError("bad handshake: no 'upgrade' token in the Connection header")
    got = resp.get("Sec-WebSocket-Accept")
    if got != accept_for(key):
        raise HandshakeError(f"bad handshake: Sec-WebSocket-Accept {got!r} does not match the key")


def _extensions(values: list[str]) -> list[tuple[str, set[str]]]:
    """Sec-WebSocket-Extensions values as ``(name, parameter names)``, in order."""
    out = []
    for value in values:
        for ext in value.split(","):
            parts = [p.strip(" \t") for p in ext.split(";")]
            if parts[0]:
                out.append((parts[0], {p.split("=", 1)[0].strip(" \t") for p in parts[1:]}))
    return out


def accepts_deflate(resp: Response) -> bool:
    """Client side, after offering: did the server agree to permessage-deflate?

    As gorilla: the first ``permessage-deflate`` in the answer must carry both
    no_context_takeover parameters (else HandshakeError); none at all = uncompressed.
    """
    for name, params in _extensions(resp.get_all("Sec-WebSocket-Extensions")):
        if name != "permessage-deflate":
            continue
        if not {"server_no_context_takeover", "client_no_context_takeover"} <= params:
            raise HandshakeError(
                "websocket: invalid compression negotiation: the answer lacks "
                "server_no_context_takeover/client_no_context_takeover"
            )
        return True
    return False


# -- server side ---------------------------------------------------------------------


def offers_deflate(req: Request) -> bool:
    """Server side: the client offers permessage-deflate (parameters ignored, as gorilla)."""
    return any(
        name == "permessage-deflate"
        for name, _ in _extensions(req.get_all("Sec-WebSocket-Extensions"))
    )


def clean_path(path: str) -> str:
    """Go ServeMux's cleanPath: rooted, no ``.``/``..``/empty segments, trailing ``/`` kept."""
    if not path:
        return "/"
    if not path.startswith("/"):
        path = "/" + path
    parts: list[str] = []
    for seg in path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if parts:
                parts.pop()
            continue
        parts.append(seg)
    cleaned = "/" + "/".join(parts)
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


def _target_path(target: str) -> str | None:
    """The decoded path of a request target (origin or absolute form), None if invalid."""
    lower = target[:8].lower()
    if lower.startswith("http://") or lower.startswith("https://"):
        rest = target.split("://", 1)[1]
        slash = rest.find("/")
        target = rest[slash:] if slash >= 0 else "/"
    raw = target.split("?", 1)[0]
    if not raw.startswith("/"):
        return None
    # Go rejects malformed escapes (400); here they simply do not match.
    i = raw.find("%")
    while i >= 0:
        if len(raw) < i + 3 or any(c not in "0123456789abcdefABCDEF" for c in raw[i + 1 : i + 3]):
            return None
        i = raw.find("%", i + 3)
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return None


def path_matches(pattern: str, target: str) -> bool:
    """True when Go's ServeMux would route request ``target`` to ``pattern``.

    Exact match on the decoded path unless ``pattern`` ends with ``/`` (then the whole
    subtree matches); the query string is ignored. A target whose path is not clean
    (``//ws``, ``/a/../ws``) or is ``pattern`` without its trailing slash does not
    match: Go answers those with a 301 redirect (see ``clean_path``), never the route.
    """
    if not pattern.startswith("/"):
        pattern = "/" + pattern
    path = _target_path(target)
    if path is None or clean_path(path) != path:
        return False
    if pattern.endswith("/"):
        return path.startswith(pattern)
    return path == pattern


_VERSION_HEADER = [("Sec-Websocket-Version", "13")]


def _refuse(status: int, message: str, reason: str) -> HandshakeRejected:
    return HandshakeRejected(status, status_text(status) + "\n", _VERSION_HEADER, message, reason)


def check_server_request(req: Request, path_matches: bool) -> str:
    """Validate an upgrade request like GOST's listener; return its Sec-WebSocket-Key.

    ``path_matches`` is the routing decision (see the function of that name). Raises
    HandshakeRejected describing Go's/gorilla's error response otherwise.
    """
    if not path_matches:
        raise HandshakeRejected(404, "404 page not found\n", [], "404 page not found", "path")
    bad = "websocket: the client is not using the websocket protocol: "
    if not _token_list_contains(req.get_all("Connection"), "upgrade"):
        raise _refuse(400, bad + "'upgrade' token not found in 'Connection' header", "not_upgrade")
    if not _token_list_contains(req.get_all("Upgrade"), "websocket"):
        raise _refuse(400, bad + "'websocket' token not found in 'Upgrade' header", "not_websocket")
    if req.method != "GET":
        raise _refuse(405, bad + "request method is not GET", "method")
    if not _token_list_contains(req.get_all("Sec-WebSocket-Version"), "13"):
        raise _refuse(
            400,
            "websocket: unsupported version: 13 not found in 'Sec-Websocket-Version' header",
            "version",
        )
    key = req.get("Sec-WebSocket-Key", "")
    if not _valid_key(key):
        raise _refuse(
            400,
            "websocket: not a websocket handshake: 'Sec-WebSocket-Key' header must be "
            "Base64 encoded value of 16-byte in length",
            "key",
        )
    return key


def _valid_key(key: str) -> bool:
    if not key:
        return False
    try:
        return len(base64.b64decode(key.encode("latin-1"), validate=True)) == 16
    except (binascii.Error, ValueError):
        return False


def plain_request_matcher(path: str) -> Callable[[bytes], str | None] | None:
    """A check for the one request head GOST's dialer (gorilla) sends to ``path``; None
    when that request would not route to ``path`` (then every head takes the full parse).

    The returned function takes a whole head and gives its Sec-WebSocket-Key when the
    head is exactly ``GET <path> HTTP/1.1``, ``Host``, ``User-Agent:
    Go-http-client/1.1``, ``Connection: Upgrade``, the key, ``Sec-WebSocket-Version:
    13``, ``Upgrade: websocket`` in that order and nothing else, else None. For such a
    head ``parse_request`` and ``check_server_request`` accept that same key, no header
    names a forwarded client and none offers compression, so a listener answers it
    without parsing: one regular expression instead of ~200 Python calls per upgrade
    (the header scans: ``is_token`` per name, a lowercasing pass per ``get``). Any other
    head, valid or not, returns None and is parsed and judged as before.
    """
    target = request_target(path)
    if not path_matches(path, target):
        return None
    pattern = re.compile(
        b"GET " + re.escape(target.encode("ascii")) + b" HTTP/1\\.1\r\n"
        # a Host value of visible ASCII: no control, space or obs-text to judge
        b"Host: [!-~]+\r\n"
        b"User-Agent: Go-http-client/1\\.1\r\n"
        b"Connection: Upgrade\r\n"
        # 16 bytes in base64: 21 full sextets, a 22nd whose 4 low bits are 0 (A Q g w), ==
        b"Sec-WebSocket-Key: ([A-Za-z0-9+/]{21}[AQgw]==)\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"Upgrade: websocket\r\n\r\n\\Z"
    )
    match = pattern.match

    def plain_key(head: bytes) -> str | None:
        m = match(head)
        return None if m is None else m.group(1).decode("ascii")

    return plain_key


def _sanitize(value: str) -> str:
    """gorilla replaces every byte <= 31 in a response header value with a space."""
    return "".join(" " if ord(c) <= 31 else c for c in value)


_PLAIN_101 = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: %s\r\n\r\n"
)


def build_server_response(key: str, extra_headers=(), compress: bool = False) -> bytes:
    """The 101 answer, as gorilla writes it, then ``extra_headers`` (GOST ``header`` md).

    ``compress``: permessage-deflate was offered and is allowed; gorilla's answer
    follows Sec-WebSocket-Accept.

    Extra header names are Go-canonicalised; control characters in their values
    become spaces (gorilla's response-splitting guard). ValueError for a name that is
    not a token.
    """
    if not compress and not extra_headers:  # every answer but GOST's ``header``/deflate
        return _PLAIN_101 % _accept(key)
    lines = [
        "HTTP/1.1 101 Switching Protocols\r\n",
        "Upgrade: websocket\r\n",
        "Connection: Upgrade\r\n",
        f"Sec-WebSocket-Accept: {accept_for(key)}\r\n",
    ]
    if compress:
        lines.append(f"Sec-WebSocket-Extensions: {DEFLATE_OFFER}\r\n")
    for name, value in extra_headers:
        if not is_token(name):
            raise ValueError(f"invalid header name {name!r}")
        lines.append(f"{canonical_header_key(name)}: {_sanitize(value)}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


def build_rejection(exc: HandshakeRejected, date: str | None = None, close: bool = True) -> bytes:
    """The error response for ``exc`` as Go's ``http.Error`` writes it.

    Headers: the handler's (Content-Type: text/plain; charset=utf-8, the rejection's
    own, X-Content-Type-Options: nosniff) sorted by name as Go does, then Date,
    Content-Length and, with ``close`` (default), ``Connection: close``. Go itself
    keeps the connection open after the error; gostfast closes it, and says so.
    ``date=None`` stamps the current time, ``""`` leaves Date out.
    """
    body = exc.body.encode("utf-8")
    headers = sorted(
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("X-Content-Type-Options", "nosniff"),
            *exc.headers,
        ],
        key=lambda item: item[0],
    )
    if date is None:
        date = email.utils.formatdate(usegmt=True)
    if date:
        headers.append(("Date", date))
    headers.append(("Content-Length", str(len(body))))
    if close:
        headers.append(("Connection", "close"))
    head = [f"HTTP/1.1 {exc.status} {status_text(exc.status)}\r\n"]
    head += [f"{name}: {value}\r\n" for name, value in headers]
    head.append("\r\n")
    return "".join(head).encode("latin-1") + body
