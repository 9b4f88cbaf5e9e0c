"""Configuration errors: each names the place in the config (YAML path or URL) and what is allowed."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration problem, reported as ``<path>: <message>``.

    ``path`` is the YAML path (``services[0].listener.type``) or the CLI
    flag and URL (``-L 'wsx://:80'``) so the operator finds the spot at once.
    """

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


def unsupported_message(what: str) -> str:
    """The one wording for a GOST feature gostfast lacks (an option, a type, a loader)."""
    return f"{what} is not supported by gostfast yet"


def not_supported(path: str, what: str) -> ConfigError:
    """The refusal of ``what`` at the YAML/URL ``path``: GOST has it, gostfast not yet."""
    return ConfigError(path, unsupported_message(what))
