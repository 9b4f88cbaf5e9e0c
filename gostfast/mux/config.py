"""smux session settings with GOST's ``mux.*`` metadata names and xtaci/smux's defaults and checks."""

from __future__ import annotations

from dataclasses import dataclass

from gostfast.config.errors import ConfigError
from gostfast.config.options import opt, unsupported


def _mux_type(value: str) -> str:
    """GOST (internal/util/mux): exactly "yamux" is yamux, any other value (or none) smux."""
    return value if value == "yamux" else "smux"


MUX_OPTIONS = (
    opt(
        "mux_type",
        "str",
        "smux",
        "mux.type",
        convert=_mux_type,
        choices=("smux",),
        doc="yamux is not implemented; any other value is smux, as GOST",
    ),
    opt(
        "mux_version",
        "int",
        1,
        "mux.version",
        doc="smux protocol version, 1 or 2 (both ends must match)",
    ),
    opt("mux_keepalive_disabled", "bool", False, "mux.keepaliveDisabled"),
    opt("mux_keepalive_interval", "duration", 10.0, "mux.keepaliveInterval", doc="NOP period"),
    opt(
        "mux_keepalive_timeout",
        "duration",
        30.0,
        "mux.keepaliveTimeout",
        doc="close when silent this long",
    ),
    opt("mux_max_frame_size", "int", 32768, "mux.maxFrameSize"),
    opt("mux_max_receive_buffer", "int", 4194304, "mux.maxReceiveBuffer"),
    opt("mux_max_stream_buffer", "int", 65536, "mux.maxStreamBuffer"),
    unsupported("mux_max_stream_window", "mux.maxstreamwindow", default=0, kind="int"),
)


@dataclass(frozen=True)
class SmuxConfig:
    version: int = 1
    keepalive_disabled: bool = False
    keepalive_interval: float = 10.0
    keepalive_timeout: float = 30.0
    max_frame_size: int = 32768
    max_receive_buffer: int = 4194304
    max_stream_buffer: int = 65536

    @classmethod
    def from_options(cls, o, where: str = "mux") -> SmuxConfig:
        """GOST's mapping: non-positive values keep smux's defaults; then smux's VerifyConfig."""
        d = cls()
        cfg = cls(
            version=o.mux_version if o.mux_version > 0 else 1,
            keepalive_disabled=o.mux_keepalive_disabled,
            keepalive_interval=o.mux_keepalive_interval
            if o.mux_keepalive_interval > 0
            else d.keepalive_interval,
            keepalive_timeout=o.mux_keepalive_timeout
            if o.mux_keepalive_timeout > 0
            else d.keepalive_timeout,
            max_frame_size=o.mux_max_frame_size if o.mux_max_frame_size > 0 else d.max_frame_size,
            max_receive_buffer=o.mux_max_receive_buffer
            if o.mux_max_receive_buffer > 0
            else d.max_receive_buffer,
            max_stream_buffer=o.mux_max_stream_buffer
            if o.mux_max_stream_buffer > 0
            else d.max_stream_buffer,
        )
        cfg.verify(where)
        return cfg

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
