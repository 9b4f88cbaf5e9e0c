"""Build script for the compiled codecs in gostfast/_core.

Every ``gostfast/_core/*.pyx`` becomes an extension module of the same name.
A failed compile is a hard error: pip must never quietly install the slow
pure-Python twins in place of the compiled codecs.
"""

import glob
import os

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


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
        exts.append(Extension(name, [path], extra_compile_args=["-O3"]))
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
