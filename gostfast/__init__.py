"""gostfast: a GOST-compatible websocket tunnel engine (Cython codecs on uvloop).

``gostfast.compiled`` tells whether the compiled codecs are running (False when
``GOSTFAST_NO_EXTENSIONS=1`` forces the pure-Python twins, or they are missing).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "compiled"]


def __getattr__(name: str):
    if name == "compiled":
        from gostfast._core import all_compiled

        return all_compiled()
    raise AttributeError(name)
