"""The supervisor of ``--workers N``: binds once, forks N workers, keeps them alive, reloads.

Why this shape:

* **Sockets** (listen_sockets.py): every service address is bound once, as
  one SO_REUSEPORT socket per worker slot, and held by the supervisor;
  worker *i* serves slot *i*'s sockets. The kernel spreads new connections
  evenly over them (measured: README, "All cores"), and a connection queued
  for a worker that died, or that a reload replaces, waits for the next
  worker of its slot: it is never refused or reset. A held address is
  reported once, "cannot listen on ADDR", exit 1, as without workers.
* **Workers** are forked from the supervisor after the configuration is
  planned (no event loop runs in the supervisor, so fork is safe). Each runs
  the Orchestrator on its slot's sockets and says "ready" over a pipe once
  every service listens. A worker dies with the supervisor (PR_SET_PDEATHSIG).
* **Restarts.** A worker that dies is logged with its pid, slot and exit
  status and restarted after a backoff that doubles while it keeps dying
  (reset once a worker has run for STABLE_AFTER seconds). Dying before it is
  ready START_FAILURES times in a row means it cannot start: everything
  stops and the supervisor exits 1.
* **Signals.** SIGINT/SIGTERM are passed to the workers as SIGTERM (each stops
  accepting and drains for ``--grace``), then the supervisor exits.
  SIGHUP, and GOST's ``-R`` period, reload: the configuration is read and
  planned again (a bad one is logged with its YAML path and nothing
  changes), addresses new to it are bound, a new generation of workers starts
  on it, and only once all of them are ready the old generation is told to
  stop: it stops accepting and drains its open tunnels for ``--grace``.
  Sockets of addresses no service uses any more are then closed.
* **Metrics** (``metrics:``): the supervisor binds the metrics address once
  (exit 1 naming it if it cannot) and points prometheus_client's
  multiprocess mode at a directory of its own before any worker starts;
  every worker serves the endpoint on that socket and answers with the sum
  of every worker's files (gostfast/metrics). A worker that is gone has its
  live gauges dropped (``mark_process_dead``); its counters stay counted.
  The directory is removed when the supervisor ends.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import logging
import os
import select
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from gostfast import logsetup
from gostfast.config.errors import ConfigError
from gostfast.listen_sockets import BindError, ListenSockets
from gostfast.service import Orchestrator, Plan, StartError
from gostfast.shared_limits import SharedCounters

log = logging.getLogger("gostfast.supervisor")

EXIT_START = 1
#: a worker's exit status when a service could not start in it (the worker logged why)
EXIT_WORKER_START = 3
START_FAILURES = 5
STABLE_AFTER = 10.0
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 10.0
#: how long a new worker may take to listen before the start (or the reload) is given up
READY_TIMEOUT = 30.0
#: how long a reload waits for the old workers to stop accepting
NOT_ACCEPTING_TIMEOUT = 10.0
#: workers alive at once, per slot: the current generation plus draining ones
ROWS_PER_SLOT = 8


@dataclass
class Worker:
    pid: int
    slot: int
    row: int
    generation: int
    started: float
    ready_fd: int
    ready: bool = False


@dataclass
class _Slot:
    failures: int = 0  # deaths in a row, each soon after start
    restart_at: float | None = None
    start_failures: int = 0  # deaths in a row before the worker got ready


def _exit_text(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by signal {-code} ({name})"
    return f"exited with status {code}"


def die_with_parent() -> None:
    """The worker gets SIGTERM if the supervisor goes (even by SIGKILL): nothing left running."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD)


def run_child(body: Callable[[], int], what: str) -> NoReturn:
    """The whole life of a forked child: ``body``'s exit code (a crash is logged, 1),
    the logs flushed; never returns into the supervisor's code."""
    code = 1
    try:
        code = body()
    except KeyboardInterrupt:
        code = 0
    except BaseException:
        logging.getLogger("gostfast").exception("%s: failed", what)
    finally:
        logging.shutdown()
        os._exit(code)


def reset_signals() -> None:
    """In a child of the supervisor: default signal handling; SIGHUP (a reload) is the
    supervisor's, ignored here."""
    signal.set_wakeup_fd(-1)
    for sig in _SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


@dataclass
class Supervisor:
    """Runs ``workers`` copies of the plan; ``load`` re-reads the configuration for a reload."""

    plan: Plan
    workers: int
    grace: float
    load: Callable[[], Plan]
    reload_period: float | None = None
    debug: bool = False
    #: what ``load`` reads, for the reload log ("gost.yaml", "-L/-F")
    source: str = ""
    #: GOST's web API (api/supervised.py ApiProcess): its changes are reloads
    api: Any = None
    sockets: ListenSockets = field(init=False)
    generation: int = 0
    live: dict[int, Worker] = field(default_factory=dict)
    slots: list[_Slot] = field(default_factory=list)
    _pending: list[int] = field(default_factory=list)  # signals seen, not yet handled
    metrics_socks: list | None = None  # the metrics address, bound here, served by workers
    metrics_dir: str = ""

    def __post_init__(self) -> None:
        self.sockets = ListenSockets(self.workers)
        self.slots = [_Slot() for _ in range(self.workers)]
        self.shared = SharedCounters(rows=self.workers * ROWS_PER_SLOT)
        self._free_rows = list(range(self.workers * ROWS_PER_SLOT))

    # -- the main loop ---------------------------------------------------------------

    def run(self) -> int:
        """Bind, start the workers, supervise until SIGINT/SIGTERM; the exit code."""
        try:
            self.sockets.bind(self.plan.services)
            self._bind_metrics()
        except BindError as exc:
            print(f"gostfast: error: {exc}", file=sys.stderr)
            self.sockets.close()
            return EXIT_START
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        os.set_blocking(wake_r, False)
        for sig in _SIGNALS:
            signal.signal(sig, self._on_signal)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        self._wake, self._wake_w = wake_r, wake_w
        self._pid = os.getpid()
        try:
            if self.api is not None:
                self.api.start(self._close_in_api_process)
            for slot in range(self.workers):
                self._spawn(slot, self.plan)
            code = self._wait_ready(self.generation, initial=True)
            if code is not None:
                return code
            log.info(
                "%d workers serving (pids %s)",
                self.workers,
                ", ".join(str(w.pid) for w in self._current()),
            )
            return self._supervise()
        finally:
            self.sockets.close()  # stop accepting at once; the workers close their copies
            for sock in self.metrics_socks or ():
                sock.close()
            self._stop_all(self.grace)
            if self.metrics_dir:
                shutil.rmtree(self.metrics_dir, ignore_errors=True)

    def _bind_metrics(self) -> None:
        """Bind ``metrics.addr`` and give the workers' prometheus_client a shared directory
        (set before any of them imports it: it picks its mode from the environment then)."""
        cfg = self.plan.config.metrics
        if cfg is None:
            return
        from gostfast.metrics import MULTIPROC_ENV
        from gostfast.metrics.server import MetricsBindError, bind

        try:
            self.metrics_socks = bind(cfg.addr)
        except MetricsBindError as exc:
            raise BindError(str(exc)) from None
        self.metrics_dir = tempfile.mkdtemp(prefix="gostfast-metrics-")
        os.environ[MULTIPROC_ENV] = self.metrics_dir

    def _keep_metrics_address(self, new: Plan, why: str) -> None:
        """The metrics socket is bound once, at start: a reload may change the path or the
        users, not the address, nor turn metrics on or off (logged; the next start does)."""
        old, fresh = self.plan.config.metrics, new.config.metrics
        if (old.addr if old else None) == (fresh.addr if fresh else None):
            return
        log.warning("reload (%s): a changed metrics address takes effect at the next start", why)
        if old is None or fresh is None:
            new.config.metrics = old
        else:
            new.config.metrics = dataclasses.replace(fresh, addr=old.addr)

    def _metrics_gone(self, pid: int) -> None:
        if self.metrics_dir:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid, self.metrics_dir)

    def _on_signal(self, signum: int, _frame) -> None:
        self._pending.append(signum)

    def _supervise(self) -> int:
        next_reload = time.monotonic() + self.reload_period if self.reload_period else float("inf")
        while True:
            now = time.monotonic()
            due = [s.restart_at for s in self.slots if s.restart_at is not None]
            timeout = max(0.0, min([next_reload - now, *[d - now for d in due], 60.0]))
            self._sleep(timeout, [w.ready_fd for w in self.live.values() if not w.ready], api=True)
            code = self._handle_events()
            if code is not None:
                return code
            now = time.monotonic()
            for slot, state in enumerate(self.slots):
                if state.restart_at is not None and state.restart_at <= now:
                    state.restart_at = None
                    self._spawn(slot, self.plan)
            if now >= next_reload:
                next_reload = now + (self.reload_period or float("inf"))
                self.reload("every -R period")
            if self._pending_stop:
                return 0

    _pending_stop = False

    def _sleep(self, timeout: float, fds: list[int], api: bool = False) -> None:
        if self._pending:
            return
        api_fd = self.api.fd if api and self.api is not None else -1
        watched = [self._wake, *fds, *([api_fd] if api_fd >= 0 else [])]
        try:
            ready, _, _ = select.select(watched, [], [], timeout)
        except InterruptedError:
            return
        if api_fd >= 0 and api_fd in ready:
            self.api.serve_one(self._api_change)
        if self._wake in ready:
            with contextlib.suppress(BlockingIOError):
                while os.read(self._wake, 512):
                    pass
        for w in self.live.values():
            if w.ready_fd in ready:
                self._read_ready(w)

    def _read_ready(self, w: Worker) -> None:
        try:
            data = os.read(w.ready_fd, 16)
        except BlockingIOError:
            return
        if data and not w.ready:
            w.ready = True
            self.slots[w.slot].start_failures = 0

    def _handle_events(self) -> int | None:
        while self._pending:
            sig = self._pending.pop(0)
            if sig == signal.SIGCHLD:
                code = self._reap()
                if code is not None:
                    return code
            elif sig == signal.SIGHUP and self.api is not None:
                log.warning(
                    "SIGHUP ignored: the web API owns the running configuration "
                    "(restart to read %s again)",
                    self.source,
                )
            elif sig == signal.SIGHUP:
                self.reload("SIGHUP")
            elif sig in (signal.SIGINT, signal.SIGTERM):
                log.info(
                    "%s: stopping the workers (drain up to %gs)",
                    signal.Signals(sig).name,
                    self.grace,
                )
                self._pending_stop = True
                return 0
        return None

    # -- workers ---------------------------------------------------------------------

    def _current(self) -> list[Worker]:
        return [w for w in self.live.values() if w.generation == self.generation]

    def _spawn(self, slot: int, plan: Plan) -> Worker:
        row = self._free_rows.pop(0)
        self.shared.clear_row(row)
        ready_r, ready_w = os.pipe()
        socks = self.sockets.for_slot(plan, slot)
        pid = os.fork()
        if pid == 0:  # the worker: never returns
            os.close(ready_r)
            self._run_worker(plan, slot, row, socks, ready_w)
        os.close(ready_w)
        os.set_blocking(ready_r, False)
        w = Worker(pid, slot, row, self.generation, time.monotonic(), ready_r)
        self.live[pid] = w
        log.info("worker %d started (slot %d)", pid, slot)
        return w

    def _run_worker(self, plan, slot, row, socks, ready_w) -> None:
        def body() -> int:
            reset_signals()
            die_with_parent()
            if os.getppid() != self._pid:  # the supervisor went before prctl took hold
                return 0
            self._close_inherited({s.fileno() for ss in socks.values() for s in ss})
            if self.api is not None:
                self.api.close_in_worker()
            self.shared.row = row
            logsetup.configure(plan.config.log, self.debug, pid=True)

            def ready() -> None:
                os.write(ready_w, b"r")

            def not_accepting() -> None:
                os.write(ready_w, b"c")
                os.close(ready_w)

            import uvloop

            orchestrator = Orchestrator(
                plan, self.grace, socks, self.shared, metrics_sockets=self.metrics_socks
            )
            try:
                uvloop.run(orchestrator.run(ready, not_accepting))
            except (StartError, ConfigError) as exc:  # a listener refused its options at start
                logging.getLogger("gostfast").error("worker: %s", exc)
                return EXIT_WORKER_START
            return 0

        run_child(body, "worker")

    def _close_inherited(self, keep: set[int]) -> None:
        """In a child: close the supervisor's pipes and every listening socket but ``keep``."""
        os.close(self._wake)
        os.close(self._wake_w)
        for sock in self.sockets.all_sockets():
            if sock.fileno() not in keep:
                sock.close()
        for w in self.live.values():
            with contextlib.suppress(OSError):
                os.close(w.ready_fd)
        self.live = {}

    def _reap(self) -> int | None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return None
            if pid == 0:
                return None
            if self.api is not None and pid == self.api.pid and not self._pending_stop:
                self.api.gone(_exit_text(status), self._close_in_api_process)
                continue
            w = self.live.pop(pid, None)
            if w is None:
                continue
            with contextlib.suppress(BlockingIOError, OSError):
                self._read_ready(w)
            os.close(w.ready_fd)
            self.shared.clear_row(w.row)
            self._free_rows.append(w.row)
            self._metrics_gone(pid)
            code = self._worker_gone(w, status)
            if code is not None:
                return code

    def _worker_gone(self, w: Worker, status: int) -> int | None:
        text = _exit_text(status)
        if w.generation != self.generation or self._pending_stop:
            log.info("worker %d (slot %d, stopped) %s", w.pid, w.slot, text)
            return None
        state = self.slots[w.slot]
        ran = time.monotonic() - w.started
        if not w.ready:
            state.start_failures += 1
            if os.waitstatus_to_exitcode(status) == EXIT_WORKER_START:
                log.error("worker %d could not start its services: %s", w.pid, text)
                return EXIT_START
            if state.start_failures >= START_FAILURES:
                log.error(
                    "worker slot %d died %d times before it was ready (last: pid %d %s); giving up",
                    w.slot,
                    state.start_failures,
                    w.pid,
                    text,
                )
                return EXIT_START
        state.failures = state.failures + 1 if ran < STABLE_AFTER else 1
        delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (state.failures - 1))
        state.restart_at = time.monotonic() + delay
        log.warning(
            "worker %d (slot %d) %s after %.1fs; restarting in %.1fs",
            w.pid,
            w.slot,
            text,
            ran,
            delay,
        )
        return None

    def _wait_ready(self, generation: int, initial: bool) -> int | None:
        """Wait until every worker of ``generation`` listens. None when they all do; else
        the exit code (initial start) or EXIT_START (a reload's generation failed)."""
        end = time.monotonic() + READY_TIMEOUT
        while True:
            gen = [w for w in self.live.values() if w.generation == generation]
            if len(gen) == self.workers and all(w.ready for w in gen):
                return None
            if time.monotonic() > end:
                log.error("workers not listening after %gs", READY_TIMEOUT)
                return EXIT_START
            self._sleep(0.5, [w.ready_fd for w in gen if not w.ready])
            # only deaths are handled here; a stop or a reload asked meanwhile waits
            if signal.SIGCHLD in self._pending:
                self._pending = [s for s in self._pending if s != signal.SIGCHLD]
                code = self._reap()
                if code is not None:
                    return code
                if (
                    not initial
                    and len([w for w in self.live.values() if w.generation == generation])
                    < self.workers
                ):
                    return EXIT_START
            if initial and (signal.SIGINT in self._pending or signal.SIGTERM in self._pending):
                return 0
            now = time.monotonic()
            for slot, state in enumerate(self.slots):  # initial start: restart the dead
                if state.restart_at is not None and state.restart_at <= now:
                    state.restart_at = None
                    self._spawn(slot, self.plan)

    def _signal(self, workers: list[Worker], sig: int) -> None:
        for w in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(w.pid, sig)

    def _stop_all(self, grace: float) -> None:
        """SIGTERM every worker (each drains for ``grace``), then SIGKILL what is left."""
        self._pending_stop = True
        if self.api is not None:
            self.api.stop()
        self._signal(list(self.live.values()), signal.SIGTERM)
        end = time.monotonic() + grace + 5.0
        while self.live and time.monotonic() < end:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.05)
                continue
            w = self.live.pop(pid, None)
            if w is not None:
                os.close(w.ready_fd)
                self._metrics_gone(pid)
                log.info("worker %d %s", pid, _exit_text(status))
        if self.live:
            log.warning("killing %d worker(s) still running", len(self.live))
            self._signal(list(self.live.values()), signal.SIGKILL)
            for pid in list(self.live):
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
            self.live.clear()

    # -- reload ----------------------------------------------------------------------

    def _wait_not_accepting(self, old: list[Worker]) -> None:
        """Until the old workers closed their listeners (each writes "c", or exits), at most
        NOT_ACCEPTING_TIMEOUT: from then on every new connection meets the new config."""
        waiting = {w.ready_fd: w for w in old if w.pid in self.live}
        end = time.monotonic() + NOT_ACCEPTING_TIMEOUT
        while waiting and time.monotonic() < end:
            try:
                ready, _, _ = select.select(list(waiting), [], [], end - time.monotonic())
            except InterruptedError:
                continue
            for fd in ready:
                try:
                    data = os.read(fd, 16)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data or b"c" in data:
                    waiting.pop(fd)
        if waiting:
            log.warning(
                "old workers %s still accepting after %gs",
                ", ".join(str(w.pid) for w in waiting.values()),
                NOT_ACCEPTING_TIMEOUT,
            )

    def _close_in_api_process(self) -> None:
        """In the API process: nothing of the services or of the workers is its to hold."""
        self._close_inherited(set())

    def _api_change(self, new: Plan) -> str | None:
        """A change from the web API: a reload onto ``new``; the error that kept the
        running configuration, or None."""
        new.config.workers, new.config.workers_text = self.workers, str(self.workers)
        self.reload_error = ""
        return None if self.reload("api", new) else self.reload_error or "reload failed"

    reload_error = ""

    def reload(self, why: str, new: Plan | None = None) -> bool:
        """Switch to the configuration as it now reads (or to ``new``), without dropping a
        connection."""
        if new is None:
            try:
                new = self.load()
            except ConfigError as exc:
                log.error(
                    "reload (%s) of %s: %s; the running configuration is unchanged",
                    why,
                    self.source,
                    exc,
                )
                return False
        if new.config.workers is not None and new.config.workers != self.workers:
            log.warning(
                "reload (%s): workers: %d takes effect at the next start (running %d)",
                why,
                new.config.workers,
                self.workers,
            )
        self._keep_metrics_address(new, why)
        if len(self._free_rows) < self.workers:
            self.reload_error = "the previous reload's workers are still draining; try again later"
            log.error("reload (%s): %s", why, self.reload_error)
            return False
        try:
            added = self.sockets.bind(new.services)
        except BindError as exc:
            self.reload_error = str(exc)
            log.error("reload (%s): %s; the running configuration is unchanged", why, exc)
            return False
        old = list(self.live.values())
        self.generation += 1
        for slot in range(self.workers):
            self.slots[slot].restart_at = None
            self._spawn(slot, new)
        if self._wait_ready(self.generation, initial=False) is not None:
            self.reload_error = "the new workers did not start; keeping the old ones"
            log.error("reload (%s): %s", why, self.reload_error)
            failed = [w for w in self.live.values() if w.generation == self.generation]
            self._signal(failed, signal.SIGKILL)
            self.generation -= 1
            self.sockets.close(added)
            serving = {w.slot for w in self._current()}
            for slot, state in enumerate(self.slots):  # an old worker died meanwhile
                state.restart_at = None if slot in serving else time.monotonic()
            return False
        self.plan = new
        self._signal(old, signal.SIGTERM)  # they stop accepting and drain for --grace
        self._wait_not_accepting(old)
        self.sockets.close(self.sockets.unused(new))
        log.info(
            "reload (%s): %d services, new workers %s; old workers draining up to %gs",
            why,
            len(new.services),
            ", ".join(str(w.pid) for w in self._current()),
            self.grace,
        )
        return True
