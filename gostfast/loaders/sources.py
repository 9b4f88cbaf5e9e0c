"""Where a named list's entries are read from: GOST's file, redis and http loaders.

Each source's ``read()`` returns the raw entries: a file's or an HTTP body's
lines, a Redis set's members or list's items, a Redis hash as a mapping. It
raises ``LoadError`` (one line, no credentials) when the source cannot be read;
the caller keeps that source's last good entries (live.py).

Bounds GOST leaves open: an HTTP loader without ``timeout`` (GOST's 0 = none)
is bounded by the reload period (else 30 s), and a Redis connection or command
by 10 s or the reload period, whichever is shorter, so an unreachable server
costs one warning per period, never a stuck poller.
"""

from __future__ import annotations

import asyncio
import base64
import urllib.parse
from typing import Any

from gostfast.config.model import HTTPLoaderConfig, LoaderConfig, RedisLoaderConfig

#: an HTTP body or file larger than this is refused (a list, not a download)
MAX_BYTES = 64 << 20
DEFAULT_HTTP_BOUND = 30.0
REDIS_BOUND = 10.0

Entries = list[str] | dict[str, str]


class LoadError(Exception):
    """A source could not be read; the message names it without credentials."""


def redact_url(url: str) -> str:
    """``url`` without its userinfo (a loader URL may carry a password)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


class FileSource:
    """GOST's file loader: the file's lines, read again at each reload."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.label = f"file {path}"

    def _read(self) -> list[str]:
        try:
            with open(self.path, "rb") as fh:
                data = fh.read(MAX_BYTES + 1)
        except OSError as exc:
            raise LoadError(f"{self.label}: {exc.strerror or exc}") from None
        return _text_lines(data, self.label)

    async def read(self) -> Entries:
        return await asyncio.to_thread(self._read)

    async def close(self) -> None:
        return None


def _text_lines(data: bytes, label: str) -> list[str]:
    """A file's or a body's lines (read up to MAX_BYTES + 1: more is refused)."""
    if len(data) > MAX_BYTES:
        raise LoadError(f"{label}: larger than {MAX_BYTES} bytes")
    return data.decode("utf-8", "replace").splitlines()


class HTTPSource(FileSource):
    """GOST's http loader: a GET whose 200 answer's body is read as a file (a file
    source's reading in a thread, with its own ``_read``)."""

    def __init__(self, cfg: HTTPLoaderConfig, period: float) -> None:
        # userinfo in the URL is basic auth, as Go's client sends it (urllib would not)
        parts = urllib.parse.urlsplit(cfg.url)
        self.headers: dict[str, str] = {}
        if parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        self.url = redact_url(cfg.url)
        self.timeout = cfg.timeout if cfg.timeout > 0 else (period or DEFAULT_HTTP_BOUND)
        self.label = f"http {self.url}"

    def _read(self) -> list[str]:
        # imported here: urllib.request (http.client, email...) costs every start-up
        import http.client
        import urllib.error
        import urllib.request

        request = urllib.request.Request(self.url, headers=self.headers, method="GET")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:  # noqa: S310
                if resp.status != 200:
                    raise LoadError(f"{self.label}: {resp.status} {resp.reason}")
                data = resp.read(MAX_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise LoadError(f"{self.label}: {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:
            raise LoadError(f"{self.label}: {_reason(exc.reason)}") from None
        except (OSError, ValueError, http.client.HTTPException) as exc:  # timeouts, resets,
            # a malformed or cut-short answer
            raise LoadError(f"{self.label}: {_reason(exc)}") from None
        return _text_lines(data, self.label)


def _reason(exc: Any) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc).rstrip(".") or type(exc).__name__


class RedisSource:
    """GOST's redis loaders (redis-py's asyncio client): SMEMBERS of a set, LRANGE of a
    list, HGETALL of a hash (user -> password, for authers)."""

    def __init__(self, cfg: RedisLoaderConfig, period: float) -> None:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        host, port = _host_port(cfg.addr)
        bound = min(REDIS_BOUND, period) if period > 0 else REDIS_BOUND
        self.cfg = cfg
        self.label = f"redis {cfg.addr} db {cfg.db} {cfg.type} {cfg.key}"
        self._errors = (aioredis.RedisError, OSError)
        self.client = aioredis.Redis(
            host=host,
            port=port,
            db=cfg.db,
            username=cfg.username or None,
            password=cfg.password or None,
            socket_timeout=bound,
            socket_connect_timeout=bound,
            decode_responses=True,
            # one try per pass: the next period is the retry (redis-py's default backs
            # off and retries, which would hold the first load for seconds)
            retry=Retry(NoBackoff(), 0),
        )

    async def read(self) -> Entries:
        key = self.cfg.key
        try:
            if self.cfg.type == "hash":
                return dict(await self.client.hgetall(key))
            if self.cfg.type == "list":
                return list(await self.client.lrange(key, 0, -1))
            return sorted(await self.client.smembers(key))
        except self._errors as exc:
            # redis-py's messages name host and port, never the password
            raise LoadError(f"{self.label}: {_reason(exc)}") from None

    async def close(self) -> None:
        await self.client.aclose()


def _host_port(addr: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or a bare host (port 6379, Redis's); an empty host is
    localhost, as Go's dialer reads ``:6379``."""
    host, port = addr, "6379"
    if addr.startswith("["):
        end = addr.find("]")
        host, rest = addr[1:end], addr[end + 1 :]
        port = rest[1:] if rest.startswith(":") else port
    elif addr.count(":") == 1:
        host, port = addr.split(":")
    return host or "127.0.0.1", int(port) if port.isdigit() else 6379


def sources_of(cfg: LoaderConfig) -> list[FileSource | RedisSource | HTTPSource]:
    """A loader's sources in GOST's order, lowest priority first: file, redis, http."""
    out: list[FileSource | RedisSource | HTTPSource] = []
    if cfg.file:
        out.append(FileSource(cfg.file))
    if cfg.redis is not None:
        out.append(RedisSource(cfg.redis, cfg.reload))
    if cfg.http is not None:
        out.append(HTTPSource(cfg.http, cfg.reload))
    return out
