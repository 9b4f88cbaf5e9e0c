"""Logging set up as GOST's ``log:`` block, ``GOST_LOGGER_LEVEL`` and ``-D`` ask.

GOST (x/config/parsing/parser) reads the config's ``log:`` (level, format,
output), then lets the environment variable ``GOST_LOGGER_LEVEL`` set the
level (only the level: format and output stay), then ``-D`` set debug.
Operators quieten GOST with ``GOST_LOGGER_LEVEL=error`` or ``fatal`` in their
unit files, so the variable matters as much as the block.

Outputs: ``stderr`` (default), ``stdout``, ``none``/``null`` (nothing), or a
file path, appended to and created with its directory when missing; a file
that cannot be opened is reported on stderr and stderr is used, as GOST does.
Formats: ``text`` (gostfast's default; GOST's is json) or ``json``, one
object per line with GOST's (logrus) keys: ``time``, ``level``, ``msg``, and
``logger`` for the component. A line with fields (the access log line,
tunnel.py, passes ``extra={"fields": {...}}``) carries them as GOST's slog
handlers do: ``key=value`` after the message in text (a duration as Go
writes one, ``1.5s``), top-level keys in json (a duration in nanoseconds).

``trace`` is the most verbose level; gostfast has nothing below debug, so it
logs what debug does. ``fatal`` shows only what ends the process.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from gostfast.config import values
from gostfast.config.errors import ConfigError
from gostfast.config.model import LogConfig

ENV_LEVEL = "GOST_LOGGER_LEVEL"
TRACE = 5
logging.addLevelName(TRACE, "TRACE")

_LEVELS = {
    "trace": TRACE,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
}
# logrus's names, which GOST's json lines carry
_LOGRUS_NAMES = {
    TRACE: "trace",
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "fatal",
}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: with --workers every line names its process (the supervisor's or a worker's pid)
TEXT_FORMAT_PID = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


def go_duration(seconds: float) -> str:
    """A duration as Go's time.Duration.String writes it: 350µs, 1.5ms, 2.25s, 1m30s."""
    ns = round(seconds * 1e9)
    if ns < 1000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return f"{ns / 1e3:.6g}µs"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.6g}ms"
    minutes, rest = divmod(ns, 60 * 1_000_000_000)
    hours, minutes = divmod(minutes, 60)
    text = f"{rest / 1e9:.9f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    return f"{minutes}m{text}" if minutes else text


#: a string as json.dumps(..., ensure_ascii=False) writes it
_json_str = json.encoder.encode_basestring  # type: ignore[attr-defined]

#: a field value written bare in text lines; anything else is quoted (as slog's text handler)
_BARE = re.compile(r'[^\s="\\\x00-\x1f\x7f]+')


def _text_value(value: object) -> str:
    if isinstance(value, float):
        return go_duration(value)
    if isinstance(value, int):  # byte counts: always bare
        return str(value)
    text = value if isinstance(value, str) else str(value)
    return text if _BARE.fullmatch(text) else json.dumps(text, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """gostfast's text lines, with a record's ``fields`` as ``key=value`` after the message.

    The time is logging's own ``2026-12-03 17:00:00,000``, with the part up to the
    second formatted once a second (localtime + strftime per line were a fifth of an
    access line's cost)."""

    def __init__(self, fmt: str | None = None) -> None:
        super().__init__(fmt)
        self._second = -1
        self._stamp = ""
        self._with_pid = "%(process)" in (fmt or "")
        f = self._fmt or ""
        # the formats configure sets: the part between the time and the message is
        # the same for every line of a logger, made once (``_head``)
        self._heads: dict[str, str] | None = (
            _HEADS.setdefault(f, {})
            if f.startswith("%(asctime)s") and f.endswith("%(message)s")
            else None
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        return self._asctime(record.created, record.msecs)

    def _asctime(self, created: float, msecs: float) -> str:
        second = int(created)
        if second != self._second:
            self._stamp = time.strftime(self.default_time_format, self.converter(created))
            self._second = second
        return self.default_msec_format % (self._stamp, msecs)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "fields", None)
        if not fields:
            return line
        return line + " " + " ".join(f"{k}={_text_value(v)}" for k, v in fields.items())

    def info_line(self, name: str, message: str, fields: Mapping[str, object]) -> str:
        """What ``format`` makes of an info record of logger ``name`` with ``fields``
        (and no exception), without the record."""
        created = time.time()
        head = self._fmt % {  # type: ignore[operator]
            "asctime": self._asctime(created, (created - int(created)) * 1000),
            "levelname": "INFO",
            "process": os.getpid() if self._with_pid else 0,
            "name": name,
            "message": message,
        }
        return head + " " + " ".join(f"{k}={_text_value(v)}" for k, v in fields.items())

    def access(
        self,
        name: str,
        message: str,
        service: str,
        client: str,
        remote: str,
        dst: str,
        route: str,
        seconds: float,
        bytes_in: int,
        bytes_out: int,
        error: str,
    ) -> str:
        """``info_line`` of ``access_fields(...)``, made straight from the values.

        Why: the generic way (a dict, a generator, a regex per value, the format's
        mapping) was ~58k instructions a line. Here the head is made once per logger,
        the five strings are checked bare with one regex over their concatenation
        (each is bare if all are and none is empty) and the keys are literals."""
        heads = self._heads
        if heads is None:
            return self.info_line(
                name,
                message,
                access_fields(
                    service, client, remote, dst, route, seconds, bytes_in, bytes_out, error
                ),
            )
        created = time.time()
        second = int(created)
        if second != self._second:
            self._stamp = time.strftime(self.default_time_format, self.converter(created))
            self._second = second
        head = heads.get(name)
        if head is None:
            head = self._head(name)
        if (
            service
            and client
            and remote
            and dst
            and route
            and _BARE.fullmatch(f"{service}{client}{remote}{dst}{route}")
        ):
            line = (
                f"{self._stamp},{int((created - second) * 1000):03d}{head}{message}"
                f" service={service} client={client} remote={remote} dst={dst} route={route}"
                f" duration={go_duration(seconds)} inputBytes={bytes_in} outputBytes={bytes_out}"
            )
        else:
            tv = _text_value
            line = (
                f"{self._stamp},{int((created - second) * 1000):03d}{head}{message}"
                f" service={tv(service)} client={tv(client)} remote={tv(remote)}"
                f" dst={tv(dst)} route={tv(route)} duration={go_duration(seconds)}"
                f" inputBytes={bytes_in} outputBytes={bytes_out}"
            )
        if error:
            line += f" error={_text_value(error)}"
        return line

    def _head(self, name: str) -> str:
        """What the format puts between the time and the message for logger ``name``
        at info (" INFO gostfast.service.x: "), kept for the next line."""
        head = self._fmt % {  # type: ignore[operator]
            "asctime": "",
            "levelname": "INFO",
            "process": os.getpid() if self._with_pid else 0,
            "name": name,
            "message": "",
        }
        heads = self._heads
        if heads is not None:
            heads[name] = head
        return head


#: TextFormatter's heads per format and logger name; a forked child (--workers) has
#: another pid, so it starts over
_HEADS: dict[str, dict[str, str]] = {}


def _forget_heads() -> None:
    for heads in _HEADS.values():
        heads.clear()


os.register_at_fork(after_in_child=_forget_heads)


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time (RFC 3339, ms), level, msg, logger (and ``pid``
    when asked: under --workers, which process wrote the line)."""

    def __init__(self, pid: bool = False) -> None:
        super().__init__()
        self.pid = pid
        self._second = -1  # the second ``_stamp`` and ``_offset`` are of (``access``)
        self._stamp = ""
        self._offset = ""

    def format(self, record: logging.LogRecord) -> str:
        entry = self._entry(
            record.created,
            record.msecs,
            _LOGRUS_NAMES.get(record.levelno, record.levelname.lower()),
            record.getMessage(),
            record.name,
            record.process,
            getattr(record, "fields", None),
        )
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)

    def info_line(self, name: str, message: str, fields: Mapping[str, object]) -> str:
        """What ``format`` makes of an info record of logger ``name`` with ``fields``."""
        created = time.time()
        msecs = (created - int(created)) * 1000
        entry = self._entry(created, msecs, "info", message, name, os.getpid(), fields)
        return json.dumps(entry, ensure_ascii=False)

    def access(
        self,
        name: str,
        message: str,
        service: str,
        client: str,
        remote: str,
        dst: str,
        route: str,
        seconds: float,
        bytes_in: int,
        bytes_out: int,
        error: str,
    ) -> str:
        """``info_line`` of ``access_fields(...)``, written out directly: json.dumps of
        the entry and the two strftime calls per line were ~110k instructions; the
        time up to the second is made once a second, the strings are escaped as
        json.dumps escapes them (``ensure_ascii=False``) and the keys are literals."""
        created = time.time()
        second = int(created)
        if second != self._second:
            local = time.localtime(created)
            offset = time.strftime("%z", local)
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", local)
            self._offset = f"{offset[:3]}:{offset[3:]}"
            self._second = second
        enc = _json_str
        pid = f', "pid": {os.getpid()}' if self.pid else ""
        line = (
            f'{{"time": "{self._stamp}.{int((created - second) * 1000):03d}{self._offset}",'
            f' "level": "info", "msg": {enc(message)}, "logger": {enc(name)}{pid},'
            f' "service": {enc(service)}, "client": {enc(client)}, "remote": {enc(remote)},'
            f' "dst": {enc(dst)}, "route": {enc(route)}, "duration": {round(seconds * 1e9)},'
            f' "inputBytes": {bytes_in}, "outputBytes": {bytes_out}'
        )
        if error:
            return f'{line}, "error": {enc(error)}}}'
        return line + "}"

    def _entry(self, created, msecs, level, message, name, process, fields) -> dict:
        local = time.localtime(created)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", local)
        offset = time.strftime("%z", local)
        entry = {
            "time": f"{stamp}.{int(msecs):03d}{offset[:3]}:{offset[3:]}",
            "level": level,
            "msg": message,
            "logger": name,
        }
        if self.pid:
            entry["pid"] = process
        if fields:
            for k, v in fields.items():
                entry.setdefault(k, round(v * 1e9) if isinstance(v, float) else v)
        return entry


#: (the root handler, its formatter) as ``configure`` set them: the access line's short way
_access: tuple[LoopBatchedHandler, TextFormatter | JSONFormatter] | None = None


def _as_configured(log: logging.Logger, handler: logging.Handler) -> bool:
    """Whether a line of ``log`` would reach ``handler`` alone, unfiltered: no logger on
    the way (``log`` to the root) has a filter or a handler of its own, none is
    disabled, and the root has ``handler`` only (a test's capture handler, say, makes
    this False and the line takes logging's own way)."""
    c: logging.Logger | None = log
    while c is not None:
        if c.filters or c.disabled:
            return False
        if c.parent is None:
            return c.handlers == [handler] and not handler.filters
        if c.handlers or not c.propagate:
            return False
        c = c.parent
    return False


def access_fields(
    service: str,
    client: str,
    remote: str,
    dst: str,
    route: str,
    seconds: float,
    bytes_in: int,
    bytes_out: int,
    error: str,
) -> dict[str, object]:
    """The access line's fields, in the line's order (``error`` only when there is one):
    what a record of logging's own way carries as ``extra={"fields": ...}``."""
    fields: dict[str, object] = {
        "service": service,
        "client": client,
        "remote": remote,
        "dst": dst,
        "route": route,
        "duration": seconds,
        "inputBytes": bytes_in,
        "outputBytes": bytes_out,
    }
    if error:
        fields["error"] = error
    return fields


def access_line(
    log: logging.Logger,
    message: str,
    service: str,
    client: str,
    remote: str,
    dst: str,
    route: str,
    seconds: float,
    bytes_in: int,
    bytes_out: int,
    error: str = "",
) -> None:
    """Log a tunnel's access line (``message`` and the fields ``access_fields`` names)
    at info on ``log`` (the caller checked the level).

    Why not ``log.info`` alone: a gateway logs one such line per tunnel, and logging's
    record, its walk over the handlers and the generic formatting were most of the
    line's cost (bench/instructions.py, docs/performance.md). When logging is as
    ``configure`` left it, the formatter makes the same line straight from the values
    (tests/unit/test_log_batching.py holds the two ways to the same bytes) and the
    handler keeps it; otherwise this is ``log.info`` with the fields.
    """
    fast = _access
    if fast is not None and _as_configured(log, fast[0]):
        handler, formatter = fast
        line = formatter.access(
            log.name, message, service, client, remote, dst, route, seconds, bytes_in,
            bytes_out, error,
        )  # fmt: skip
        with handler.lock:  # type: ignore[union-attr]
            handler.keep(line, logging.INFO)
        return
    fields = access_fields(service, client, remote, dst, route, seconds, bytes_in, bytes_out, error)
    log.info("%s", message, extra={"fields": fields})


def effective_level(cfg: LogConfig | None, debug: bool, environ: Mapping[str, str]) -> str:
    """The level name after the config, ``GOST_LOGGER_LEVEL`` and ``-D``, in GOST's order."""
    level = cfg.level if cfg is not None else "info"
    env = environ.get(ENV_LEVEL, "")
    if env:
        try:
            level = values.parse_choice(env, values.LOG_LEVEL_NAMES, "log level")
        except ValueError as exc:
            raise ConfigError(ENV_LEVEL, str(exc)) from None
    return "debug" if debug else level


def configure(
    cfg: LogConfig | None,
    debug: bool,
    environ: Mapping[str, str] = os.environ,
    pid: bool = False,
) -> None:
    """Replace the root logger's handler with the one ``cfg`` describes (ConfigError if the
    level is bad); ``pid``: every line names the process that wrote it (--workers)."""
    cfg = cfg or LogConfig()
    level = effective_level(cfg, debug, environ)
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    handler = _handler(cfg.output)
    handler.setFormatter(
        JSONFormatter(pid)
        if cfg.format == "json"
        else TextFormatter(TEXT_FORMAT_PID if pid else TEXT_FORMAT)
    )
    root.addHandler(handler)
    root.setLevel(_LEVELS[level])
    global _access
    _access = (handler, handler.formatter) if isinstance(handler, LoopBatchedHandler) else None
    # what a record gathers that no format here prints, paid on every line (one access
    # line per request): the caller's frame, the thread, the process unless asked
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logMultiprocessing = False
    logging.logProcesses = pid
    logging.captureWarnings(True)


class LoopBatchedHandler(logging.StreamHandler):
    """A stream handler that writes the lines of one event-loop iteration in one write.

    Why: a gateway logs one access line per tunnel, and a write plus a flush per line
    was most of that line's cost (a system call each, more behind a pipe to journald).
    A line logged on the loop's thread is kept until the loop has run what was ready
    (``call_soon``), then every line kept goes out in one write and one flush. A line
    from any other thread, or with no loop running (start-up, shutdown, the
    supervisor's ``fork``), is written at once after the lines kept before it, so the
    order is kept; so is a line at warning or above, and when ``MAX_KEPT`` lines wait.
    ``flush()``/``close()`` (and so logging's exit handler) write what is kept.
    """

    MAX_KEPT = 256

    def __init__(self, stream, owned: bool = False) -> None:
        super().__init__(stream)
        self._kept: list[str] = []
        self._pid = os.getpid()
        self._owned = owned  # a log file of ours, closed with the handler

    def close(self) -> None:
        try:
            self.flush()
            if self._owned:
                self.stream.close()
        finally:
            super().close()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.keep(line, record.levelno)

    def keep(self, line: str, level: int) -> None:
        """Write ``line`` at the end of this loop iteration (see the class); the caller
        holds the handler's lock (``emit``, ``access_line``)."""
        kept = self._kept
        kept.append(line)
        if level >= logging.WARNING or len(kept) >= self.MAX_KEPT:
            self._write_kept()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # another thread, or no loop yet (or any more)
            self._write_kept()
            return
        if len(kept) == 1:  # the first line kept: a write at the end of this iteration
            loop.call_soon(self._write_soon)

    def _write_soon(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write_kept()

    def _write_kept(self) -> None:
        kept = self._kept
        if not kept:
            return
        if os.getpid() != self._pid:  # a forked child: the parent writes its own lines
            kept.clear()
            self._pid = os.getpid()
            return
        text = self.terminator.join(kept) + self.terminator
        kept.clear()
        try:
            self.stream.write(text)
            self.stream.flush()
        except Exception:
            pass  # a closed or full stderr must not take the gateway down

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write_kept()
            super().flush()


def _handler(output: str) -> logging.Handler:
    if output in ("none", "null"):
        return logging.NullHandler()
    if output == "stdout":
        return LoopBatchedHandler(sys.stdout)
    if output in ("stderr", ""):
        return LoopBatchedHandler(sys.stderr)
    try:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        return LoopBatchedHandler(open(output, "a", encoding="utf-8"), owned=True)  # noqa: SIM115
    except OSError as exc:
        print(
            f"gostfast: warning: log output {output}: {exc.strerror or exc}; logging to stderr",
            file=sys.stderr,
        )
        return LoopBatchedHandler(sys.stderr)
