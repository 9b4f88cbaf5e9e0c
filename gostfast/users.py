"""The users a handler accepts, checked the way GOST's authenticator checks them.

GOST (x/auth): with no authenticator every client is accepted; an authenticator
(an ``auther``) with no users refuses everyone; otherwise the user name must be
known, and a user configured with an empty password accepts any password
(``ok && (v == "" || password == v)``). Passwords are compared with
``hmac.compare_digest`` so the time taken does not tell how much of a guess was
right.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from gostfast import tunnel as tunnels
from gostfast.config.model import Auth
from gostfast.proto.addr import encode_text


class Users:
    """The service's users (``HandlerSpec.auths``); falsy when clients need not log in."""

    __slots__ = ("_passwords", "_required", "__weakref__")  # a loader follows it weakly

    def __init__(self, auths: Sequence[Auth], required: bool = False) -> None:
        self._required = required
        self.reset(auths)

    def reset(self, auths: Sequence[Auth]) -> None:
        """New users (an auther's loader reloaded): a later entry for a name wins."""
        self._passwords = {a.username: encode_text(a.password) for a in auths}

    def __bool__(self) -> bool:
        return bool(self._passwords) or self._required

    def check(self, user: str, password: str) -> bool:
        """True when no log-in is needed, or ``user`` may log in with ``password``.

        A refusal is the request's error (GOST's handlers return one: its access log
        line and gost_service_handler_errors_total say so); never the password."""
        if self._match(user, password):
            return True
        tunnel = tunnels.now()
        if tunnel is not None:
            tunnel.fail(f"authentication failed (user {user!r})")
        return False

    def _match(self, user: str, password: str) -> bool:
        if not self._passwords:
            return not self._required
        expected = self._passwords.get(user)
        given = encode_text(password)
        if expected is None:
            hmac.compare_digest(given, given)  # same work as a known user
            return False
        if not expected:
            return True
        return hmac.compare_digest(expected, given)
