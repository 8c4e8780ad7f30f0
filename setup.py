"""The only build logic of fastopt: one list of extensions, one directives dict, one set of flags.

Flags keep IEEE semantics: never -ffast-math or -Ofast (NaN/inf must propagate per element as in torch).
  -fno-math-errno     lets sqrt compile to the vector instruction instead of a libm call that sets errno;
  -fno-trapping-math  lets loops with invariant branches if-convert and vectorize (results unchanged);
  -ffp-contract=off   no silent FMA contraction, so the kernels round exactly like the NumPy reference
                      (bit-identical results on every CPU and thread count).
Set FASTOPT_DEBUG=1 to turn bounds checks back on; FASTOPT_MARCH=native (opt-in, never for wheels) to
compile for the build machine.
"""
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("FASTOPT_DEBUG", "") not in ("", "0")

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": False,
    "initializedcheck": DEBUG,
    "nonecheck": False,
    "cdivision": True,
    # no embedsignature: for fused functions it embeds the dispatcher's signature; inspect.signature
    # already reads the real one (binding=True is Cython 3's default)
}

if os.name == "nt":
    CFLAGS = ["/O2", "/fp:precise"]
else:
    CFLAGS = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off"]
    if os.environ.get("FASTOPT_MARCH"):
        CFLAGS.append("-march=" + os.environ["FASTOPT_MARCH"])
    if DEBUG:
        CFLAGS += ["-O0", "-g"]

KERNELS = ["sgd", "adam", "rmsprop"]

extensions = [
    Extension(f"fastopt._kernels.{name}", [f"fastopt/_kernels/{name}.pyx"], extra_compile_args=CFLAGS)
    for name in KERNELS
]

setup(ext_modules=cythonize(extensions, compiler_directives=DIRECTIVES))
