"""Type stub: the compiled wsframe codec has exactly its pure twin's Python API
(wsframe_py.py, the readable specification; tests/property proves they agree)."""

from gostfast._core.wsframe_py import *  # noqa: F403
from gostfast._core.wsframe_py import __all__ as __all__
