"""HTTP/1.1 message heads (request/status line + header fields), sans-IO.

Used by the websocket upgrade (wshandshake) on both sides, and by the HTTP proxy
handler and connector. Only the head is handled here: body framing is
http1_body.py, streaming bodies and connection reuse belong to the callers.
What the proxy reads from and writes into heads beyond the grammar (the
authority of a target, Basic proxy credentials, Go's byte layout of a
body-less answer) is here too, so both ends share one sans-IO copy.

Parsing is strict where a sloppy parser would let two peers disagree about the
message, and tolerant where Go's net/http is (GOST is a Go program, so a head Go
accepts must be accepted here):
- lines end in CRLF (the head ends at CRLFCRLF); a bare CR or LF inside
  the head is rejected;
- obsolete line folding (a header line starting with space/tab) is rejected;
- header names must be RFC 9110 tokens, directly followed by ``:``;
- header values are trimmed of spaces/tabs and may hold any byte but controls
  (obs-text 0x80-0xFF is kept: the head is decoded as ISO-8859-1, byte for byte);
- the version must be ``HTTP/<digit>.<digit>``; the status code exactly 3 digits;
  a status line without a reason phrase (``HTTP/1.1 200``) is accepted, like Go.
Every rejection raises HTTPHeadError (a ValueError) saying what is wrong.

Invariants: no I/O, no clock, no state; never imports asyncio or socket.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from gostfast.proto.addr import split_host_port
from gostfast.proto.errors import AddressError, ProtocolError

__all__ = [
    "MAX_HEAD",
    "HTTPHeadError",
    "REASONS",
    "Request",
    "Response",
    "parse_request",
    "parse_response",
    "build_request",
    "build_response",
    "go_response",
    "clean_value",
    "basic_proxy_auth",
    "split_authority",
    "parse_absolute",
    "canonical_header_key",
    "is_token",
    "is_target",
    "status_text",
]

MAX_HEAD = 65536
"""Largest head accepted, CRLFCRLF included (Go's server allows 1 MiB; proxies need far less)."""

# Reason phrases, as Go's http.StatusText spells them.
REASONS: dict[int, str] = {
    100: "Continue",
    101: "Switching Protocols",
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    206: "Partial Content",
    301: "Moved Permanently",
    302: "Found",
    303: "See Other",
    304: "Not Modified",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    409: "Conflict",
    411: "Length Required",
    413: "Request Entity Too Large",
    414: "Request URI Too Long",
    421: "Misdirected Request",
    426: "Upgrade Required",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    505: "HTTP Version Not Supported",
}

_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_VERSION_RE = re.compile(r"HTTP/[0-9]\.[0-9]\Z")
# Controls forbidden in a field value (HTAB is allowed) and in a request target.
_VALUE_CTL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_TARGET_BAD_RE = re.compile(r"[\x00-\x20\x7f]")


class HTTPHeadError(ProtocolError):
    """A malformed or oversize HTTP head."""


def is_token(text: str) -> bool:
    """True when ``text`` is a non-empty RFC 9110 token (method, header name)."""
    return _TOKEN_RE.match(text) is not None


def is_target(text: str) -> bool:
    """True when ``text`` can be a request target: non-empty, no space or control
    (one would end the request line early or split the head)."""
    return bool(text) and _TARGET_BAD_RE.search(text) is None


def status_text(status: int) -> str:
    """The reason phrase Go writes for ``status`` ("status code N" when unknown)."""
    return REASONS.get(status, f"status code {status}")


def canonical_header_key(name: str) -> str:
    """Go's CanonicalMIMEHeaderKey: ``sec-websocket-key`` -> ``Sec-Websocket-Key``.

    Names that are not tokens are returned unchanged (as Go does).
    """
    if not is_token(name):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


class _Headers:
    """Case-insensitive read helpers over ``self.headers`` (a list of (name, value))."""

    headers: list[tuple[str, str]]

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (any case), else ``default``."""
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of header ``name`` (any case), in order."""
        lname = name.lower()
        return [value for key, value in self.headers if key.lower() == lname]

    def has_token(self, name: str, token: str) -> bool:
        """True when a comma-separated value of header ``name`` equals ``token`` (any case)."""
        ltoken = token.lower()
        for value in self.get_all(name):
            for item in value.split(","):
                if item.strip(" \t").lower() == ltoken:
                    return True
        return False


@dataclass
class Request(_Headers):
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Response(_Headers):
    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)


def _split_head(head) -> list[str]:
    data = bytes(head)
    if len(data) > MAX_HEAD:
        raise HTTPHeadError("header too large")
    if not data.endswith(b"\r\n\r\n"):
        raise HTTPHeadError("incomplete head: missing the final CRLFCRLF")
    text = data[:-4].decode("latin-1")
    lines = text.split("\r\n")
    for line in lines:
        if "\r" in line or "\n" in line:
            raise HTTPHeadError("bare CR or LF in the head (lines must end in CRLF)")
    return lines


def _parse_headers(lines: list[str]) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            raise HTTPHeadError(f"obsolete line folding is not supported: {line!r}")
        name, colon, value = line.partition(":")
        if not colon:
            raise HTTPHeadError(f"malformed header line (no colon): {line!r}")
        if not is_token(name):
            raise HTTPHeadError(f"invalid header name {name!r}")
        value = value.strip(" \t")
        if _VALUE_CTL_RE.search(value):
            raise HTTPHeadError(f"invalid control character in header {name!r}")
        headers.append((name, value))
    return headers


def _check_version(version: str, line: str) -> None:
    if not _VERSION_RE.match(version):
        raise HTTPHeadError(f"malformed HTTP version {version!r} in {line!r}")


def parse_request(head) -> Request:
    """Parse a request head (request line, headers, final CRLFCRLF included)."""
    lines = _split_head(head)
    line = lines[0]
    method, sp1, rest = line.partition(" ")
    target, sp2, version = rest.partition(" ")
    if not sp1 or not sp2:
        raise HTTPHeadError(f"malformed request line {line!r}")
    if not is_token(method):
        raise HTTPHeadError(f"invalid method {method!r}")
    if not is_target(target):
        raise HTTPHeadError(f"invalid request target {target!r}")
    _check_version(version, line)
    return Request(method, target, version, _parse_headers(lines[1:]))


def parse_response(head) -> Response:
    """Parse a response head (status line, headers, final CRLFCRLF included)."""
    lines = _split_head(head)
    line = lines[0]
    version, sp, rest = line.partition(" ")
    if not sp:
        raise HTTPHeadError(f"malformed status line {line!r}")
    _check_version(version, line)
    code, _, reason = rest.partition(" ")
    if len(code) != 3 or not code.isdigit() or not code.isascii():
        raise HTTPHeadError(f"malformed status code {code!r}")
    if _VALUE_CTL_RE.search(reason):
        raise HTTPHeadError("invalid control character in the reason phrase")
    return Response(version, int(code), reason, _parse_headers(lines[1:]))


def _header_lines(headers) -> list[str]:
    out = []
    for name, value in headers:
        if not is_token(name):
            raise ValueError(f"invalid header name {name!r}")
        if _VALUE_CTL_RE.search(value):
            raise ValueError(f"invalid control character in header {name!r}")
        out.append(f"{name}: {value}\r\n")
    return out


def build_request(method: str, target: str, headers, version: str = "HTTP/1.1") -> bytes:
    """Request head bytes: request line, ``headers`` in the given order, blank line.

    Raises ValueError for a non-token method or header name, a target with spaces or
    controls, a value with controls (CR/LF would split the head), or text that is not
    ISO-8859-1.
    """
    if not is_token(method):
        raise ValueError(f"invalid method {method!r}")
    if not is_target(target):
        raise ValueError(f"invalid request target {target!r}")
    parts = [f"{method} {target} {version}\r\n", *_header_lines(headers), "\r\n"]
    return "".join(parts).encode("latin-1")


def build_response(
    status: int,
    reason: str | None,
    headers,
    body: bytes = b"",
    version: str = "HTTP/1.1",
) -> bytes:
    """Response head (+ ``body``) bytes.

    ``reason=None`` uses Go's text for the status (REASONS). Content-Length is added
    only when ``body`` is non-empty and ``headers`` has none: an empty body gets no
    framing header, so a caller answering e.g. CONNECT with ``200`` adds nothing it
    did not ask for, and a caller that keeps the connection alive after an empty-body
    error adds ``Content-Length: 0`` itself.
    """
    if reason is None:
        reason = status_text(status)
    if _VALUE_CTL_RE.search(reason):
        raise ValueError("invalid control character in the reason phrase")
    headers = list(headers)
    if body and not any(name.lower() == "content-length" for name, _ in headers):
        headers.append(("Content-Length", str(len(body))))
    parts = [f"{version} {status:03d} {reason}\r\n", *_header_lines(headers), "\r\n"]
    return "".join(parts).encode("latin-1") + bytes(body)


def clean_value(value: str) -> str:
    """A header value as Go writes it: CR/LF turned into spaces, then trimmed."""
    return value.replace("\r", " ").replace("\n", " ").strip(" \t")


def go_response(
    status: int,
    headers: Iterable[tuple[str, str]] = (),
    *,
    content_length: int | None = None,
    version: str = "HTTP/1.1",
) -> bytes:
    """A body-less response as Go's ``http.Response.Write`` puts it on the wire.

    ``content_length=None`` is Go's ContentLength -1: ``Connection: close`` comes
    first (unless a Connection header already says close). ``0`` adds
    ``Content-Length: 0`` after the fields. Fields are sorted by name, as Go's
    Header.Write does.
    """
    headers = list(headers)
    lines = [f"{version} {status:03d} {status_text(status)}\r\n"]
    if content_length is None:
        says_close = any(
            k.lower() == "connection" and "close" in v.lower().replace(" ", "").split(",")
            for k, v in headers
        )
        if not says_close:
            lines.append("Connection: close\r\n")
    for name, value in sorted(headers, key=lambda kv: kv[0]):
        lines.append(f"{name}: {clean_value(value)}\r\n")
    if content_length == 0:
        lines.append("Content-Length: 0\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1", "replace")


def basic_proxy_auth(value: str | None) -> tuple[str, str]:
    """(user, password) from ``Basic b64(user:pass)``; ("", "") when absent or broken."""
    if not value or not value.startswith("Basic "):
        return "", ""
    try:
        decoded = base64.b64decode(value[6:], validate=True).decode("utf-8", "surrogateescape")
    except (binascii.Error, ValueError):
        return "", ""
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else ("", "")


def split_authority(authority: str) -> tuple[str, int] | None:
    """``host[:port]`` -> (host, port) with port 80 by default; None if it is not valid."""
    if "@" in authority:
        authority = authority.rsplit("@", 1)[1]
    if authority.startswith("[") and authority.endswith("]"):
        host, port_text = authority[1:-1], ""  # [v6] without a port
    elif ":" not in authority:
        host, port_text = authority, ""
    else:
        try:
            host, port_text = split_host_port(authority)
        except AddressError:
            return None
    if not port_text:
        return host, 80
    if not port_text.isdigit() or not port_text.isascii() or int(port_text) > 65535:
        return None
    return host, int(port_text)


def parse_absolute(target: str) -> tuple[str, str, str] | None:
    """``scheme://authority/path?q`` -> (scheme, authority, origin-form target)."""
    scheme, sep, rest = target.partition("://")
    if not sep or not scheme or not is_token(scheme):
        return None
    cut = len(rest)
    for ch in "/?#":
        i = rest.find(ch)
        if 0 <= i < cut:
            cut = i
    authority, path = rest[:cut], rest[cut:]
    path = path.split("#", 1)[0]
    if not path.startswith("/"):
        path = "/" + path
    return scheme.lower(), authority, path
