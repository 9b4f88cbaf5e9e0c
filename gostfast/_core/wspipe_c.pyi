"""Type stub: the compiled fused ws data path has exactly its pure twin's Python API
(wspipe_py.py, the readable specification; tests/property proves they agree)."""

from gostfast._core.wspipe_py import *  # noqa: F403
from gostfast._core.wspipe_py import __all__ as __all__
