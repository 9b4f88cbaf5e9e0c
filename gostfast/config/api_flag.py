"""``-api=ADDR`` (and GOST's ``GOST_API``): the web API's address in GOST's command-line form.

GOST reads the flag as a URL (x/config/parsing/parser: ``cmd.Norm``, which puts
``auto://`` in front of ``:18080`` or of anything without a scheme), so
``-api=user:pass@:18080?pathPrefix=/api&accesslog=true`` gives the address,
basic-auth user and the two options. A query key GOST does not read there is
an error here, not ignored.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlsplit

from gostfast.config import values
from gostfast.config.errors import ConfigError
from gostfast.config.model import ApiConfig, Auth

_KEYS = {"pathprefix": "pathPrefix", "accesslog": "accesslog"}


def parse_api_flag(text: str, where: str = "-api") -> ApiConfig:
    """``[user:pass@][host]:port[?pathPrefix=/p&accesslog=true]`` -> the API's config."""
    raw = text.strip()
    if not raw:
        raise ConfigError(where, "expected an address, e.g. -api=:18080")
    url = "auto://" + raw if raw.startswith(":") or "://" not in raw else raw
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    if not host:
        raise ConfigError(where, "no address (expected [user:pass@][host]:port)")
    api = ApiConfig(addr=host)
    if "@" in parts.netloc:
        user, _, password = parts.netloc.rsplit("@", 1)[0].partition(":")
        api.auths.append(Auth(unquote(user), unquote(password)))
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        name = _KEYS.get(key.lower())
        if name is None:
            raise ConfigError(
                f"{where} ({key})", f"unknown option '{key}' (known: pathPrefix, accesslog)"
            )
        if name == "accesslog":
            try:
                api.accesslog = values.parse_bool(value)
            except ValueError as exc:
                raise ConfigError(f"{where} ({key})", str(exc)) from None
        else:
            api.path_prefix = check_prefix(value, f"{where} ({key})")
    return api


def check_prefix(prefix: str, where: str) -> str:
    """GOST's ``pathPrefix`` (a gin route group): a path starting with ``/``, kept without
    its trailing ``/``."""
    if prefix and not prefix.startswith("/"):
        raise ConfigError(where, f"expected a path starting with /, got '{prefix}'")
    return prefix.rstrip("/")
