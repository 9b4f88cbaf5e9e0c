"""Build script for the compiled codecs in gostfast/_core.

Every ``gostfast/_core/*.pyx`` becomes an extension module of the same name.
A failed compile is a hard error: pip must never quietly install the slow
pure-Python twins in place of the compiled codecs.

The modules are built without debug information and linked stripped: a
gateway installs them to run, and the symbols would be five sixths of their
size (wsframe_c: 790 KB with, 128 KB without).
"""

import glob
import os
import sys

if sys.platform == "win32":
    # uvloop and the POSIX signal handling the service relies on do not exist there.
    raise SystemExit(
        "gostfast: Windows is not supported (it needs uvloop and POSIX signals); "
        "run it on Linux or macOS, or under WSL."
    )

# -g0 overrides the -g in Python's own CFLAGS; the linker drops what remains
# (-s for GNU ld; Apple's ld64 takes -S, debug symbols only, and -x, locals).
COMPILE_ARGS = ["-O3", "-g0"]
LINK_ARGS = ["-Wl,-S,-x"] if sys.platform == "darwin" else ["-Wl,-s"]

from Cython.Build import cythonize  # noqa: E402  (after the platform check)
from setuptools import Extension, setup  # noqa: E402
from setuptools.command.build_ext import build_ext  # noqa: E402


class StrictBuildExt(build_ext):
    """build_ext that turns a compiler failure into one clear message."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # CompileError, CCompilerError, missing gcc...
            raise SystemExit(
                "gostfast: building the Cython extensions failed "
                f"({type(exc).__name__}: {exc}).\n"
                "gostfast needs a C compiler and the Python headers "
                "(Debian/Ubuntu: apt-get install gcc python3-dev)."
            ) from exc


def extensions():
    exts = []
    for path in sorted(glob.glob(os.path.join("gostfast", "_core", "*.pyx"))):
        name = "gostfast._core." + os.path.splitext(os.path.basename(path))[0]
        exts.append(
            Extension(name, [path], extra_compile_args=COMPILE_ARGS, extra_link_args=LINK_ARGS)
        )
    return cythonize(
        exts,
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "embedsignature": True,
        },
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": StrictBuildExt})
