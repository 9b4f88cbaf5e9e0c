"""GOST's probe resistance for the http handler (``probeResist`` and ``knock``).

A proxy with users answers a failed log-in with 407, which tells a scanner
that a proxy is there. With ``probeResist=TYPE:VALUE`` the failed request
gets a decoy instead (go-gost/x handler/http auth.go):

* ``code:N``: a bare response with status N;
* ``web:URL``: the page at URL (fetched directly, not through the chain),
  as if this server were that web site;
* ``host:HOST:PORT``: the request itself is sent to HOST:PORT and the two
  connections are joined, so a real web server behind answers;
* ``file:PATH``: 200 with the file as text/html.

``knock=NAME[,NAME...]``: a request whose host is one of those names gets
the honest 407 (so a client that knows the name learns how to log in),
every other one the decoy. Only ``http://`` URLs are fetched for ``web``
(a ``https`` one is refused when the service starts).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from gostfast.chain.route import tcp_connect
from gostfast.endpoint import Endpoint
from gostfast.errors import DialError
from gostfast.handler import _httpbody as body
from gostfast.proto import http1, http1_body
from gostfast.proto.addr import split_host_port
from gostfast.proto.errors import AddressError
from gostfast.relay import relay

KINDS = ("code", "web", "host", "file")
WEB_TIMEOUT = 15.0  # GOST's http.Client timeout for the decoy page


@dataclass(frozen=True)
class ProbeResistance:
    kind: str
    value: str
    knock: tuple[str, ...] = ()

    def applies_to(self, host: str) -> bool:
        """Whether a failed log-in for a request to ``host`` gets the decoy (GOST's knock)."""
        return not any(host.lower() == k.lower() for k in self.knock)


def parse(text: str, knock: str) -> ProbeResistance | None:
    """``TYPE:VALUE`` -> ProbeResistance (None for ""); ValueError when malformed."""
    if not text:
        return None
    kind, sep, value = text.partition(":")
    if not sep or kind not in KINDS or not value:
        raise ValueError(f"expected TYPE:VALUE with TYPE one of {', '.join(KINDS)}, got '{text}'")
    if kind == "code" and not (value.isdigit() and 100 <= int(value) <= 999):
        raise ValueError(f"code: expected an HTTP status, got '{value}'")
    if kind == "web" and value.lower().startswith("https:"):
        raise ValueError("web: https pages are not supported by gostfast yet (use http://)")
    if kind == "host" and not _port_of(value).isdigit():
        raise ValueError(f"host: expected HOST:PORT, got '{value}'")
    names = tuple(n.strip() for n in knock.split(",") if n.strip())
    return ProbeResistance(kind, value, names)


def _port_of(value: str) -> str:
    """The port text of ``host:port`` ("" when it does not split)."""
    try:
        return split_host_port(value)[1]
    except AddressError:
        return ""


def _split_url(url: str) -> tuple[str, int, str]:
    """``[http://]host[:port][/path]`` -> (host, port, path); no usable port: 80."""
    rest = url[7:] if url.lower().startswith("http://") else url
    authority, slash, path = rest.partition("/")
    try:
        host, port = split_host_port(authority)
    except AddressError:
        port = ""
    if not port.isdigit():
        host, port = authority.strip("[]"), "80"
    return host, int(port), "/" + path if slash else "/"


async def answer(
    pr: ProbeResistance,
    ep: Endpoint,
    req: http1.Request,
    head: bytes,
    fallback: bytes,
    log: logging.Logger,
) -> None:
    """Send ``ep`` the decoy for ``req`` (its raw head is ``head``); ``fallback`` (GOST's
    503) when the decoy cannot be had. The caller closes ``ep`` afterwards."""
    if pr.kind == "code":
        ep.write(http1.go_response(int(pr.value)))
    elif pr.kind == "file":
        try:
            data = Path(pr.value).read_bytes()
        except OSError as exc:
            log.warning("%s: probeResist file %s: %s", ep.peer, pr.value, exc.strerror)
            ep.write(fallback)
            return
        headers = [
            ("Connection", "keep-alive"),
            ("Content-Length", str(len(data))),
            ("Content-Type", "text/html"),
        ]
        ep.writelines([http1.build_response(200, "OK", headers), data])
    elif pr.kind == "host":
        host, port = split_host_port(pr.value)  # checked when the option was parsed
        try:
            upstream = await tcp_connect(host, int(port))
        except DialError as exc:
            log.warning("%s: probeResist host: %s", ep.peer, exc)
            ep.write(fallback)
            return
        upstream.write(head)  # the request as it came; whatever follows is piped
        await relay(ep, upstream)
    else:
        await _web(pr.value, ep, fallback, log)


async def _web(url: str, ep: Endpoint, fallback: bytes, log: logging.Logger) -> None:
    host, port, path = _split_url(url)
    try:
        upstream = await tcp_connect(host, port)
    except DialError as exc:
        log.warning("%s: probeResist web %s: %s", ep.peer, url, exc)
        ep.write(fallback)
        return
    sent = False
    try:
        host_header = host if port == 80 else f"{host}:{port}"
        upstream.write(
            http1.build_request(
                "GET", path, [("Host", host_header), ("User-Agent", "Go-http-client/1.1")]
            )
        )
        raw = await asyncio.wait_for(upstream.readuntil(b"\r\n\r\n", http1.MAX_HEAD), WEB_TIMEOUT)
        resp = http1.parse_response(raw)
        length = http1_body.response_length(resp, "GET")
        ep.write(raw)
        sent = True
        await asyncio.wait_for(body.copy_body(upstream, ep, length), WEB_TIMEOUT)
    except (
        OSError,
        asyncio.TimeoutError,
        asyncio.IncompleteReadError,
        asyncio.LimitOverrunError,
        ValueError,
    ) as exc:
        log.warning("%s: probeResist web %s: %s", ep.peer, url, exc or type(exc).__name__)
        if sent:
            ep.abort()  # a page cut short: nothing sane can follow it
        elif not ep.closed:
            ep.write(fallback)
    finally:
        upstream.close()
