"""smux session settings with GOST's ``mux.*`` metadata names and xtaci/smux's defaults and checks."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from gostfast.config.errors import ConfigError
from gostfast.config.options import ComponentOptions, option, unsupported


def _mux_type(value: str) -> str:
    """GOST (internal/util/mux): exactly "yamux" is yamux, any other value (or none) smux."""
    return value if value == "yamux" else "smux"


@dataclass(frozen=True)
class MuxOptions(ComponentOptions):
    """GOST's ``mux.*`` metadata of the mws/mwss listener and dialer; ``smux`` is the
    session settings they make (the one place they are made)."""

    mux_type: str = option(
        "smux",
        "mux.type",
        convert=_mux_type,
        choices=("smux",),
        doc="yamux is not implemented; any other value is smux, as GOST",
    )
    mux_version: int = option(
        1, "mux.version", doc="smux protocol version, 1 or 2 (both ends must match)"
    )
    mux_keepalive_disabled: bool = option(False, "mux.keepaliveDisabled")
    mux_keepalive_interval: float = option(10.0, "mux.keepaliveInterval", doc="NOP period")
    mux_keepalive_timeout: float = option(
        30.0, "mux.keepaliveTimeout", doc="close when silent this long"
    )
    mux_max_frame_size: int = option(32768, "mux.maxFrameSize")
    mux_max_receive_buffer: int = option(4194304, "mux.maxReceiveBuffer")
    mux_max_stream_buffer: int = option(65536, "mux.maxStreamBuffer")
    mux_max_stream_window: int = unsupported("mux.maxstreamwindow", default=0)

    @functools.cached_property
    def smux(self) -> SmuxConfig:
        """GOST's mapping: non-positive values keep smux's defaults (``check`` has
        verified the result in the plan phase)."""
        d = SmuxConfig()
        return SmuxConfig(
            version=self.mux_version if self.mux_version > 0 else 1,
            keepalive_disabled=self.mux_keepalive_disabled,
            keepalive_interval=_positive_or(self.mux_keepalive_interval, d.keepalive_interval),
            keepalive_timeout=_positive_or(self.mux_keepalive_timeout, d.keepalive_timeout),
            max_frame_size=_positive_or(self.mux_max_frame_size, d.max_frame_size),
            max_receive_buffer=_positive_or(self.mux_max_receive_buffer, d.max_receive_buffer),
            max_stream_buffer=_positive_or(self.mux_max_stream_buffer, d.max_stream_buffer),
        )

    def check(self, where: str) -> None:
        """xtaci/smux VerifyConfig's rules on the settings these options make."""
        self.smux.verify(where)


def _positive_or(value, default):
    return value if value > 0 else default


@dataclass(frozen=True)
class SmuxConfig:
    version: int = 1
    keepalive_disabled: bool = False
    keepalive_interval: float = 10.0
    keepalive_timeout: float = 30.0
    max_frame_size: int = 32768
    max_receive_buffer: int = 4194304
    max_stream_buffer: int = 65536

    def verify(self, where: str = "mux") -> None:
        """xtaci/smux VerifyConfig's rules, as errors naming the option."""
        if self.version not in (1, 2):
            raise ConfigError(
                f"{where}.mux.version", f"{self.version} is not allowed (allowed: 1, 2)"
            )
        if not self.keepalive_disabled and self.keepalive_timeout < self.keepalive_interval:
            raise ConfigError(
                f"{where}.mux.keepaliveTimeout",
                f"{self.keepalive_timeout:g}s is shorter than mux.keepaliveInterval "
                f"{self.keepalive_interval:g}s (smux requires timeout >= interval)",
            )
        if not 0 < self.max_frame_size <= 65535:
            raise ConfigError(
                f"{where}.mux.maxFrameSize", f"{self.max_frame_size} is not in 1..65535"
            )
        if self.max_receive_buffer > 2**31 - 1:
            raise ConfigError(f"{where}.mux.maxReceiveBuffer", "must be at most 2147483647")
        if self.max_stream_buffer > self.max_receive_buffer:
            raise ConfigError(
                f"{where}.mux.maxStreamBuffer",
                f"{self.max_stream_buffer} is larger than mux.maxReceiveBuffer {self.max_receive_buffer}",
            )
