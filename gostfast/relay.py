"""The relay: joins two endpoints in data mode.

Bytes from one side are written to the other inside the arrival callback
(no coroutine, no copy). Backpressure: when one side's outgoing buffer fills
(``on_write_paused``) reading pauses on the other side until it drains. EOF
on one side becomes ``write_eof`` on the other (half-close); once both
directions have ended, or either side is lost, both are closed through the
one close path (``_finish``), which fires ``done`` exactly once. Each
direction's bytes are counted as they pass (one integer add per chunk) and
handed to the request's record (tunnel.py) once, when the tunnel ends: the
access log line and the byte metrics read them there.

``IdleRelay`` adds GOST's pipe idle timeout (the forward and http handlers'
``idleTimeout``): a direction whose source sent nothing for that long ends
as if the source had sent EOF (GOST's read deadline per direction, then its
half-close), so a tunnel silent both ways closes. It is a subclass so that
tunnels without the option keep the plain data path.

``LimitedRelay`` paces a tunnel by GOST's traffic limiter (traffic.py): each
chunk is forwarded as it arrives and charged to the budgets of its direction;
a budget in debt pauses reading from that source until it is paid back. Held
by the limiter or by backpressure, a source resumes only when neither holds
it. It is an IdleRelay (with or without an idle timeout) so the two combine;
tunnels of services without a limiter keep the plain Relay.

``relay()`` waits for a tunnel's end in the handler's coroutine; ``start()``
returns the running relay instead, which then owns the tunnel's end (the
forward handler's tunnels: no task stays suspended per tunnel).
"""

from __future__ import annotations

import asyncio
import logging
import time

from gostfast import tunnel as tunnels
from gostfast._core import select
from gostfast.endpoint import Endpoint, TCPEndpoint
from gostfast.traffic import Gate

log = logging.getLogger("gostfast.relay")
plainpipe = select("plainpipe")


class Relay:
    """Pipes ``a`` <-> ``b`` until both directions end; ``done`` resolves then."""

    __slots__ = (
        "a",
        "b",
        "done",
        "n_a",
        "n_b",
        "_tunnel",
        "_gate",
        "_held",
        "_eof_a",
        "_eof_b",
        "_finished",
        "_started",
        "_pipe",
        "_plain_is_a",
    )

    def __init__(self, a: Endpoint, b: Endpoint) -> None:
        self.a = a
        self.b = b
        self.n_a = 0  # bytes from a forwarded to b
        self.n_b = 0  # bytes from b forwarded to a
        self.done: asyncio.Future = asyncio.get_running_loop().create_future()
        #: start()'s: the request's record, the limiter's gate, the service's set of
        #: relays that own their tunnel (hand_over); all None for relay()'s
        self._tunnel: tunnels.Tunnel | None = None
        self._gate: Gate | None = None  # a LimitedRelay's own is ``gate``
        self._held: set[Relay] | None = None
        self._eof_a = False
        self._eof_b = False
        self._finished = False
        self._started = False
        self._pipe = None
        self._plain_is_a = False
        a.attach(self)
        if not self._finished:
            b.attach(self)
        if not self._finished and type(self) is Relay:
            self._fuse()

    def _fuse(self) -> None:
        """Let the endpoints move the bytes themselves when they can; EOF, loss and flow
        control still come here. A websocket facing plain TCP fuses whole
        (Endpoint.fuse, _core/wspipe); else a plain TCP side fuses its half
        (_core/plainpipe: its transport's protocol and the other side's sink). Subclasses
        watch every chunk (idle time, the limiter), so they never fuse."""
        a, b = self.a, self.b
        pipe = b.fuse(a)
        plain_is_a = True
        if pipe is None:
            pipe = a.fuse(b)
            plain_is_a = False
        if pipe is None:
            for plain, other in ((a, b), (b, a)):
                if (
                    isinstance(plain, TCPEndpoint)
                    and plain.fusable()
                    and plain.at_rest()
                    and other.at_rest()
                ):
                    pipe = plainpipe.PlainPipe(plain.transport, plain, other, self)
                    plain.transport.set_protocol(pipe.plain_side)  # type: ignore[union-attr]
                    other.resink(pipe)
                    plain_is_a = plain is a
                    break
        self._pipe = pipe
        self._plain_is_a = plain_is_a

    def _fold_counts(self) -> None:
        """Add what the fused path moved to the byte totals (once, when the tunnel ends)."""
        pipe, self._pipe = self._pipe, None
        if pipe is None:
            return
        from_plain, from_other = pipe.counts()
        if self._plain_is_a:
            self.n_a += from_plain
            self.n_b += from_other
        else:
            self.n_a += from_other
            self.n_b += from_plain

    def _other(self, ep: Endpoint) -> Endpoint:
        return self.b if ep is self.a else self.a

    # Sink callbacks
    def on_data(self, ep: Endpoint, data) -> None:
        if ep is self.a:
            self.n_a += len(data)
            self.b.write(data)
        else:
            self.n_b += len(data)
            self.a.write(data)

    def on_eof(self, ep: Endpoint) -> None:
        if ep is self.a:
            self._eof_a = True
        else:
            self._eof_b = True
        if self._eof_a and self._eof_b:
            self._finish(None)
        else:
            self._other(ep).write_eof()

    def on_close(self, ep: Endpoint, exc: BaseException | None) -> None:
        self._finish(exc)

    def on_write_paused(self, ep: Endpoint) -> None:
        self._other(ep).pause_reading()

    def on_write_resumed(self, ep: Endpoint) -> None:
        self._other(ep).resume_reading()

    def close(self) -> None:
        """End the tunnel now (service shutdown)."""
        self._finish(None, abort=True)

    def _finish(self, exc: BaseException | None, abort: bool = False) -> None:
        if self._finished:
            return
        self._finished = True
        self._fold_counts()
        for ep in (self.a, self.b):
            if abort:
                ep.abort()
            else:
                ep.close()  # flushes what is already queued, then closes
        if exc is not None:
            log.debug("tunnel %s <-> %s ended: %s", self.a.peer, self.b.peer, exc)
        if not self.done.done():
            self.done.set_result(None)
        if self._started:
            self._settle()

    def _settle(self) -> None:
        """start()'s accounting when the tunnel ends (what relay()'s ``finally`` does for
        its caller): the gate, the relaying gauge, the byte totals and, once the service
        handed the tunnel over (hand_over), its end: the access line and the metrics."""
        self._started = False
        tunnel, gate, held = self._tunnel, self._gate, self._held
        self._tunnel = self._gate = self._held = None
        if gate is not None:
            gate.close()
        if tunnel is not None:
            tunnel.relaying(False)
            tunnel.bytes_in += self.n_a
            tunnel.bytes_out += self.n_b
            if held is not None:
                held.discard(self)
                tunnel.end()

    def hand_over(self, held: set[Relay]) -> bool:
        """The service's task is done with a tunnel whose handler returned this relay:
        from now on the relay ends it (``_settle``), and until then it sits in ``held``,
        which the service's drain waits for and closes. False when the relay has already
        ended (or was not made by start()): the task ends the tunnel itself, as always."""
        tunnel = self._tunnel
        if not self._started or tunnel is None:
            return False
        tunnel.detach()
        self._held = held
        held.add(self)
        return True


class IdleRelay(Relay):
    """A relay where each direction ends after ``idle`` seconds without bytes from its source."""

    __slots__ = ("idle", "_last_a", "_last_b", "_timer")

    def __init__(self, a: Endpoint, b: Endpoint, idle: float) -> None:
        self.idle = idle
        self._last_a = self._last_b = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None
        super().__init__(a, b)  # may already deliver buffered bytes or end the tunnel
        if not self._finished and idle > 0:  # 0: no idle timeout (a LimitedRelay's)
            self._timer = asyncio.get_running_loop().call_later(idle, self._check)

    def on_data(self, ep: Endpoint, data) -> None:
        if ep is self.a:
            if not self._eof_a:  # an idled-out direction drops the rest (GOST's CloseRead)
                self._last_a = time.monotonic()
                self.n_a += len(data)
                self.b.write(data)
        elif not self._eof_b:
            self._last_b = time.monotonic()
            self.n_b += len(data)
            self.a.write(data)

    def on_eof(self, ep: Endpoint) -> None:
        if not (self._eof_a if ep is self.a else self._eof_b):  # once per direction
            super().on_eof(ep)

    def on_write_resumed(self, ep: Endpoint) -> None:
        other = self._other(ep)
        if not (self._eof_a if other is self.a else self._eof_b):
            other.resume_reading()

    def _check(self) -> None:
        self._timer = None
        now = time.monotonic()
        for ep, last, ended in (
            (self.a, self._last_a, self._eof_a),
            (self.b, self._last_b, self._eof_b),
        ):
            if not ended and now - last >= self.idle:
                log.debug(
                    "tunnel %s -> %s: idle for %gs, ending that direction",
                    ep.peer,
                    self._other(ep).peer,
                    self.idle,
                )
                ep.pause_reading()
                self.on_eof(ep)
                if self._finished:
                    return
        deadlines = [
            last + self.idle
            for last, ended in ((self._last_a, self._eof_a), (self._last_b, self._eof_b))
            if not ended
        ]
        delay = max(min(deadlines) - now, 0.0)
        self._timer = asyncio.get_running_loop().call_later(delay, self._check)

    def _finish(self, exc: BaseException | None, abort: bool = False) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super()._finish(exc, abort)


class LimitedRelay(IdleRelay):
    """A relay paced by a traffic limiter's ``gate``: ``a`` is the client (its bytes are
    GOST's "in"), ``b`` the target side ("out")."""

    __slots__ = ("gate", "_held_a", "_held_b", "_backed_a", "_backed_b")

    def __init__(self, a: Endpoint, b: Endpoint, gate: Gate, idle: float = 0.0) -> None:
        self.gate = gate
        #: the timer that resumes a source the limiter paused
        self._held_a: asyncio.TimerHandle | None = None
        self._held_b: asyncio.TimerHandle | None = None
        #: a source paused because the other side's write buffer is full
        self._backed_a = self._backed_b = False
        super().__init__(a, b, idle)

    def on_data(self, ep: Endpoint, data) -> None:
        super().on_data(ep, data)
        gate = self.gate
        buckets = gate.inbound if ep is self.a else gate.outbound
        if buckets:
            wait = gate.charge(buckets, len(data))
            if wait > 0.0 and not self._finished:
                self._hold(ep, wait)

    def _hold(self, ep: Endpoint, wait: float) -> None:
        loop = asyncio.get_running_loop()
        old = self._held_a if ep is self.a else self._held_b
        if old is not None:
            if old.when() >= loop.time() + wait:
                return
            old.cancel()
        else:
            ep.pause_reading()
        timer = loop.call_later(wait, self._unhold, ep)
        # time held is not idle time (GOST sets its read deadline after the wait)
        resume_at = time.monotonic() + wait
        if ep is self.a:
            self._held_a = timer
            self._last_a = max(self._last_a, resume_at)
        else:
            self._held_b = timer
            self._last_b = max(self._last_b, resume_at)

    def _unhold(self, ep: Endpoint) -> None:
        if ep is self.a:
            self._held_a = None
            if not (self._backed_a or self._eof_a):
                ep.resume_reading()
        else:
            self._held_b = None
            if not (self._backed_b or self._eof_b):
                ep.resume_reading()

    def on_write_paused(self, ep: Endpoint) -> None:
        if ep is self.a:
            self._backed_b = True
        else:
            self._backed_a = True
        super().on_write_paused(ep)

    def on_write_resumed(self, ep: Endpoint) -> None:
        if ep is self.a:
            self._backed_b = False
            if self._held_b is None:
                super().on_write_resumed(ep)
        else:
            self._backed_a = False
            if self._held_a is None:
                super().on_write_resumed(ep)

    def _finish(self, exc: BaseException | None, abort: bool = False) -> None:
        for timer in (self._held_a, self._held_b):
            if timer is not None:
                timer.cancel()
        self._held_a = self._held_b = None
        super()._finish(exc, abort)


def _make(a: Endpoint, b: Endpoint, idle_timeout: float) -> tuple[Relay, Gate | None]:
    traffic = a.traffic
    gate = traffic.open(a, a.peer_ip) if traffic is not None else None
    if gate is not None:
        try:
            return LimitedRelay(a, b, gate, idle_timeout), gate
        except BaseException:
            gate.close()
            raise
    return (IdleRelay(a, b, idle_timeout) if idle_timeout > 0 else Relay(a, b)), None


def start(a: Endpoint, b: Endpoint, idle_timeout: float = 0.0) -> Relay:
    """relay() without a coroutine waiting for the end: the relay is made and returned
    running. A handler that has nothing left to do after relaying returns it, and the
    service hands the tunnel over to it (``Relay.hand_over``): the handler's task ends
    now instead of staying suspended for the tunnel's life, with its frames, its done
    future's wake-up and its ``finally`` blocks (forward tunnels: handler/forward.py).
    The accounting (the gate, the relaying gauge, the byte totals) is done by the
    relay's close path (``_settle``), for relay() too."""
    r, gate = _make(a, b, idle_timeout)
    r._gate = gate
    r._tunnel = tunnel = tunnels.now()
    if tunnel is not None:
        tunnel.relaying(True)
    r._started = True
    if r._finished:  # ended while attaching (buffered bytes and EOF, or a close)
        r._settle()
    return r


async def relay(a: Endpoint, b: Endpoint, idle_timeout: float = 0.0) -> None:
    """Pipe the client ``a`` and the target side ``b`` until the tunnel ends
    (``idle_timeout`` > 0: see IdleRelay; ``a.traffic`` set: see LimitedRelay).

    Cancelling the caller (service shutdown after its grace period) aborts both.
    ``done`` is awaited bare, not through ``asyncio.shield`` (an inner future, a
    callback pair and ~2.5 us per tunnel): only this coroutine waits on it, so a
    cancel that cancels it too loses nothing (``_finish`` checks ``done.done()``).
    """
    r = start(a, b, idle_timeout)  # its close path does the accounting (_settle)
    try:
        return await r.done
    except asyncio.CancelledError:
        r.close()
        raise
