"""Where a GOST config comes from: ``-C`` (file, URL, stdin, inline JSON) or GOST's default files.

GOST's ``-C`` (x/config/parsing/parser readConfig) takes ``-`` for stdin, the
JSON config itself when the argument is ``{...}``, an http(s) URL (a 200
answer of at most 10 MiB), or a file path. With no service on the command line GOST reads ``gost.<ext>``
from ``/etc/gost/``, then ``$HOME/.gost/``, then the working directory (viper's
search: every directory in that order, every extension in viper's order). We
read YAML and JSON; a default file in another of viper's formats (TOML, HCL,
INI, ...) found first is refused by name rather than skipped.
"""

from __future__ import annotations

import base64
import os
import sys
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from gostfast.config import yaml as yamlcfg
from gostfast.config.errors import ConfigError
from gostfast.config.model import Config

DEFAULT_DIRS = ("/etc/gost", "~/.gost", ".")
# viper.SupportedExts, in viper's order
_VIPER_EXTS = (
    "json",
    "toml",
    "yaml",
    "yml",
    "properties",
    "props",
    "prop",
    "hcl",
    "tfvars",
    "dotenv",
    "env",
    "ini",
)
_READABLE = frozenset({"json", "yaml", "yml"})


MAX_REMOTE_CONFIG = 10 << 20  # GOST's maxConfigSize
URL_TIMEOUT = 30.0


def load_source(arg: str) -> Config:
    """One ``-C`` argument, read the way GOST reads it (see the module docstring)."""
    return yamlcfg.from_dict(load_data(arg))


def load_data(arg: str) -> dict[str, Any]:
    """One ``-C`` argument's top-level mapping, before it becomes the model (the web API
    keeps it, so that what it serves and edits is the config as written)."""
    text = arg.strip()
    if text == "-":
        return yamlcfg.parse_text(sys.stdin.read(), "-C - (stdin)")
    if text.startswith("{") and text.endswith("}"):
        return yamlcfg.parse_text(text, "-C (inline JSON)")
    parts = urlsplit(text)
    if parts.scheme in ("http", "https") and parts.netloc:
        return yamlcfg.parse_text(_fetch(text), _without_userinfo(text))
    return yamlcfg.parse_text(yamlcfg.read_file(arg), arg)


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=host))


def _fetch(url: str) -> str:
    """GET the config; ``user:pass@`` in the URL becomes Basic auth, as Go's client does."""
    # imported here: urllib.request pulls in http.client, email and ssl, which
    # every other start-up (files, -L/-F, -V) does without
    import urllib.error
    import urllib.request

    where = _without_userinfo(url)
    request = urllib.request.Request(where)
    parts = urlsplit(url)
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        token = base64.b64encode(credentials.encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=URL_TIMEOUT) as resp:
            if resp.status != 200:
                raise ConfigError(where, f"fetching the config: HTTP {resp.status}")
            data = resp.read(MAX_REMOTE_CONFIG + 1)
    except urllib.error.HTTPError as exc:
        raise ConfigError(where, f"fetching the config: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ConfigError(where, f"fetching the config: {reason}") from None
    if len(data) > MAX_REMOTE_CONFIG:
        raise ConfigError(where, f"config larger than {MAX_REMOTE_CONFIG} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(where, f"config is not UTF-8 text: {exc}") from None


def find_default(dirs: tuple[str, ...] = DEFAULT_DIRS) -> str | None:
    """The config file GOST would read when given no service, or None."""
    for d in dirs:
        base = os.path.expanduser(d)
        for ext in _VIPER_EXTS:
            path = os.path.join(base, f"gost.{ext}")
            if os.path.isfile(path):
                if ext not in _READABLE:
                    raise ConfigError(
                        path,
                        f"{ext} config files are not supported by gostfast (YAML or JSON only)",
                    )
                return path
    return None
