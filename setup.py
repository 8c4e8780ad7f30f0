"""The only build logic of fastopt: one list of kernel modules, one directives dict, one set of flags.

Every kernel module (src/fastopt/_kernels/<name>.pyx) is compiled once per instruction-set variant:
``fastopt._kernels.baseline.<name>`` (any x86-64: SSE2; the only variant on other machines),
``fastopt._kernels.avx2.<name>`` (AVX2+FMA) and ``fastopt._kernels.avx512.<name>`` (AVX-512 F/DQ/BW/VL).
``fastopt._kernels.__init__`` picks the best one the CPU supports at import time (FASTOPT_ISA forces one).

Flags keep IEEE semantics: no fast-math of any kind (NaN/inf must propagate per element as in torch).
  -fno-math-errno     lets sqrt compile to the vector instruction instead of a libm call that sets errno;
  -fno-trapping-math  lets loops with invariant branches if-convert and vectorize (results unchanged);
  -ffp-contract=off   no silent FMA contraction: every variant rounds exactly like the NumPy reference,
                      so results are bit-identical across CPUs, variants and thread counts.
Threads: fastopt's own pool (src/fastopt/_kernels/_pool.h, pthreads or Win32 threads), compiled into the
runtime module once; no OpenMP.

Build switches (environment variables):
  FASTOPT_DEBUG=1          the debug build: Cython bounds and initialisation checks on, -O1 -g, and
                           -fsanitize=address,undefined (load it with LD_PRELOAD=$(gcc
                           -print-file-name=libasan.so); see .ci/sanitize);
  FASTOPT_VARIANTS=...     the ISA variants to build (default: all of baseline,avx2,avx512 the machine's
                           architecture has), e.g. FASTOPT_VARIANTS=baseline for a quick build;
  FASTOPT_MARCH=native     (opt-in, never for wheels) tune the baseline variant for the build machine.
"""
import os
import platform
import shlex
import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

DEBUG = os.environ.get("FASTOPT_DEBUG", "") not in ("", "0")
SANITIZE = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]
KERNELS = ["sgd", "adam", "rmsprop", "floor", "tools"]

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

MSVC = sys.platform == "win32"
X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")

if MSVC:
    CFLAGS = ["/O2", "/fp:precise"]
    ISA_FLAGS = {"baseline": [], "avx2": ["/arch:AVX2"], "avx512": ["/arch:AVX512"]}
else:
    CFLAGS = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off"]
    if platform.system() != "Darwin":
        # up to 5 buffers per loop: let the vectorizer version the loop for all their alias pairs
        CFLAGS.append("--param=vect-max-version-for-alias-checks=30")
    ISA_FLAGS = {
        "baseline": [],
        "avx2": ["-mavx2", "-mfma"],
        "avx512": ["-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mavx2", "-mfma",
                   "-mprefer-vector-width=512"],
    }
    if os.environ.get("FASTOPT_MARCH"):
        ISA_FLAGS["baseline"] = ["-march=" + os.environ["FASTOPT_MARCH"]]
    if DEBUG:
        CFLAGS += ["-O1", "-g"] + SANITIZE
LDFLAGS = SANITIZE if DEBUG and not MSVC else []
if not X86:
    ISA_FLAGS = {"baseline": ISA_FLAGS["baseline"]}
if os.environ.get("FASTOPT_VARIANTS"):
    wanted = [v.strip() for v in os.environ["FASTOPT_VARIANTS"].split(",") if v.strip()]
    unknown = sorted(set(wanted) - set(ISA_FLAGS))
    if unknown or "baseline" not in wanted:
        sys.exit(f"FASTOPT_VARIANTS={os.environ['FASTOPT_VARIANTS']!r}: choose from {', '.join(ISA_FLAGS)} "
                 "(baseline is always needed)")
    ISA_FLAGS = {isa: flags for isa, flags in ISA_FLAGS.items() if isa in wanted}


class BuildExt(build_ext):
    """Compiles the modules in parallel (one job per CPU) unless told otherwise (-j)."""

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:
            self.parallel = os.cpu_count() or 1


def c_string(value):
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def cython_sources(name, pyx, build_dir):
    """The C file Cython generates for module ``name`` (regenerated when the .pyx is newer). The
    Extension is rebuilt around it below: cythonize carries one .pyx's compile settings over from one
    call to the next, which would give every variant the first variant's flags."""
    (ext,) = cythonize([Extension(name, [pyx])], compiler_directives=DIRECTIVES, build_dir=build_dir,
                       include_path=["src"],  # the .pxd files the kernels cimport
                       emit_linenums=DEBUG)  # debug build: sanitizer reports name .pyx lines
    return ext.sources


extensions = []
for isa, isa_flags in ISA_FLAGS.items():
    flags = CFLAGS + isa_flags
    for name in KERNELS:
        module = f"fastopt._kernels.{isa}.{name}"
        extensions.append(Extension(
            module,
            # one Cython build directory per variant: the same .pyx becomes a module of another name
            cython_sources(module, f"src/fastopt/_kernels/{name}.pyx", f"build/cython/{isa}"),
            include_dirs=[numpy.get_include()],
            define_macros=[("FASTOPT_ISA", c_string(isa)), ("FASTOPT_CFLAGS", c_string(shlex.join(flags))),
                           ("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            extra_compile_args=flags,
            extra_link_args=LDFLAGS,
        ))
extensions.append(Extension(
    "fastopt._kernels._runtime",
    cython_sources("fastopt._kernels._runtime", "src/fastopt/_kernels/_runtime.pyx", "build/cython/baseline"),
    include_dirs=[numpy.get_include(), "src/fastopt/_kernels"],  # _pool.h
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    extra_compile_args=CFLAGS, extra_link_args=LDFLAGS + ([] if MSVC else ["-pthread"])))

setup(ext_modules=extensions, cmdclass={"build_ext": BuildExt})
