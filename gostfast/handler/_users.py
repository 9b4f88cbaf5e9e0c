"""The users a handler accepts, checked the way GOST's authenticator checks them.

GOST (x/auth): with no users configured every client is accepted; otherwise the
user name must be known, and a user configured with an empty password accepts
any password (``ok && (v == "" || password == v)``). Passwords are compared with
``hmac.compare_digest`` so the time taken does not tell how much of a guess was
right.
"""

from __future__ import annotations

import hmac

from gostfast.config.model import Auth
from gostfast.proto.addr import encode_text


class Users:
    """The service's users (``HandlerSpec.auths``); falsy when there are none."""

    __slots__ = ("_passwords",)

    def __init__(self, auths: list[Auth]) -> None:
        self._passwords = {a.username: encode_text(a.password) for a in auths}

    def __bool__(self) -> bool:
        return bool(self._passwords)

    def check(self, user: str, password: str) -> bool:
        """True when no users are configured, or ``user`` may log in with ``password``."""
        if not self._passwords:
            return True
        expected = self._passwords.get(user)
        given = encode_text(password)
        if expected is None:
            hmac.compare_digest(given, given)  # same work as a known user
            return False
        if not expected:
            return True
        return hmac.compare_digest(expected, given)
