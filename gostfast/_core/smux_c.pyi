"""Type stub: the compiled smux codec has exactly its pure twin's Python API
(smux_py.py, the readable specification; tests/property proves they agree)."""

from gostfast._core.smux_py import *  # noqa: F403
from gostfast._core.smux_py import __all__ as __all__
