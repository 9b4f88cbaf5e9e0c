"""Where a GOST config comes from: a ``-C`` file, ``-C`` inline JSON, or GOST's default files.

GOST's ``-C`` takes a file path or, when the argument is ``{...}``, the JSON
config itself. With no service on the command line GOST reads ``gost.<ext>``
from ``/etc/gost/``, then ``$HOME/.gost/``, then the working directory (viper's
search: every directory in that order, every extension in viper's order). We
read YAML and JSON; a default file in another of viper's formats (TOML, HCL,
INI, ...) found first is refused by name rather than skipped.
"""

from __future__ import annotations

import os

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


def load_source(arg: str) -> Config:
    """One ``-C`` argument: inline JSON when it is ``{...}``, else a file path."""
    text = arg.strip()
    if text.startswith("{") and text.endswith("}"):
        return yamlcfg.load_text(text, "-C (inline JSON)")
    return yamlcfg.load_file(arg)


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
