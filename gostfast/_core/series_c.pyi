"""Type stub: the compiled series counting has exactly its pure twin's Python API
(series_py.py, the readable specification; tests/property proves they agree)."""

from gostfast._core.series_py import *  # noqa: F403
from gostfast._core.series_py import __all__ as __all__
