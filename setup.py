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

The build (build_ext: BuildExt below, which pip and every other front end run): Cython first writes each
module's C file (under build/cython/<variant>/), in worker processes, then the C compiler builds the
modules, in threads; -j N (build_ext --parallel N) sets how many of each, default one per CPU (-j1: Cython
runs in the build's own process). Each step leaves a module that is up to date alone (its .c newer than
its .pyx and all it cimports or includes; its compiled module newer than its .c; --force redoes both), so
an in-place rebuild (python setup.py build_ext --inplace) with nothing changed regenerates and compiles
nothing. The build prints a line "fastopt: ..." per module that it cythonizes or compiles, and each step's
total (pip shows a successful build's output only with -v). setup.py itself only declares the modules, so
the PEP 517 hooks that run it for requirements or metadata are quick.
"""
import os
import platform
import shlex
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

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
        # a rule's loop tests its options (amsgrad, momentum, ...) inside: let gcc unswitch loops as long
        # as a 16-bit one, rather than if-convert an option's array into masked loads from a NULL pointer
        # (AVX-512 suppresses the fault by a microcode assist per load: 3x slower)
        CFLAGS.append("--param=max-unswitch-insns=400")
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


# the variants' names in the build's progress lines
ISA_NAMES = {"baseline": "baseline", "avx2": "AVX2+FMA", "avx512": "AVX-512"}
if os.environ.get("FASTOPT_MARCH"):
    ISA_NAMES["baseline"] = "-march=" + os.environ["FASTOPT_MARCH"]


def say(message):
    """One progress line of the build: written in one call (the compile threads print too) and flushed
    at once (a front end such as pip reads the build's output from a pipe)."""
    sys.stderr.write(f"fastopt: {message}\n")
    sys.stderr.flush()


def cythonize_args(name, pyx, build_dir, force):
    """The arguments (positional, keyword) of the cythonize call that writes the C file of module ``name``
    into ``build_dir`` (when it is out of date, or ``force``); plain values, which pickle, for a worker
    process (which runs Cython's own function, imported by name: any start method, fork or spawn, works).
    cythonize is called once per extension, on a bare Extension whose C file alone is kept (BuildExt puts
    it in the declared Extension): cythonize carries one .pyx's compile settings over from one call to the
    next, which would give every variant the first variant's flags. quiet: no "Compiling X because it
    changed" lines (BuildExt prints one line per module instead); Cython's warnings and errors still show."""
    return ([Extension(name, [pyx])],), dict(
        compiler_directives=DIRECTIVES, build_dir=build_dir,
        include_path=["src"],  # the .pxd files the kernels cimport
        emit_linenums=DEBUG,  # debug build: sanitizer reports name .pyx lines
        force=force, quiet=True)


class BuildExt(build_ext):
    """Cythonizes, then compiles the modules, each step in parallel (one job per CPU unless told
    otherwise: -j), and says what it does: a line per module cythonized or compiled, and the totals."""

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:
            self.parallel = os.cpu_count() or 1

    def build_extensions(self):
        start = time.perf_counter()
        jobs = min((os.cpu_count() or 1) if self.parallel is True else self.parallel, len(self.extensions))
        self.cythonize_extensions(jobs)
        # setuptools compiles in a thread pool of -j threads (each waits on a compiler process), calling
        # build_extension below, which times and reports each module
        self.lock, self.finished, self.up_to_date = threading.Lock(), 0, 0
        say(f"compiling {len(self.extensions)} extension modules" +
            (f" on {jobs} threads" if jobs > 1 else ""))
        super().build_extensions()
        say(f"built {len(self.extensions)} extension modules in {time.perf_counter() - start:.1f} s" +
            (f" ({self.up_to_date} were up to date)" if self.up_to_date else ""))

    def cythonize_extensions(self, jobs):
        """Replaces each extension's .pyx source by the C file Cython generates from it (regenerated when
        out of date; see cythonize_args), in ``jobs`` worker processes (Cython is Python: threads would
        take turns on the GIL), or in this process for one job."""
        todo = [ext for ext in self.extensions if ext.sources[0].endswith(".pyx")]
        if not todo:
            return
        start, started = time.perf_counter(), time.time()
        say(f"cythonizing {len(todo)} modules" + (f" on {jobs} processes" if jobs > 1 else ""))
        calls = [(ext, cythonize_args(ext.name, ext.sources[0], f"build/cython/{VARIANT[ext.name]}",
                                      bool(self.force))) for ext in todo]
        if jobs > 1:
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                futures = {pool.submit(cythonize, *args, **kwargs): ext for ext, (args, kwargs) in calls}
                try:
                    done = ((futures[future], future.result()) for future in as_completed(futures))
                    regenerated = self.take_c_files(done, len(todo), started)
                except BaseException:
                    pool.shutdown(cancel_futures=True)  # a Cython error: no need to go on with the others
                    raise
        else:
            done = ((ext, cythonize(*args, **kwargs)) for ext, (args, kwargs) in calls)
            regenerated = self.take_c_files(done, len(todo), started)
        say(f"cythonized {regenerated} module{'' if regenerated == 1 else 's'} in "
            f"{time.perf_counter() - start:.1f} s" +
            (f" ({len(todo) - regenerated} were up to date)" if regenerated < len(todo) else ""))

    @staticmethod
    def take_c_files(done, total, started):
        """Gives each extension of ``done`` (extension, cythonize's answer), as they come, its C file, and
        says so when Cython wrote it (since ``started``; not when it was up to date). Returns how many it
        wrote."""
        regenerated = 0
        for count, (ext, (cythonized,)) in enumerate(done, 1):
            ext.sources = cythonized.sources
            if os.path.getmtime(ext.sources[0]) >= started:
                regenerated += 1
                say(f"[{count:{len(str(total))}}/{total}] cythonized {ext.name}")
        return regenerated

    def build_extension(self, ext):
        """Compiles one module, and says so unless it was up to date (setuptools skips it then)."""
        output = self.get_ext_fullpath(ext.name)
        before = os.path.getmtime(output) if os.path.exists(output) else None
        start = time.perf_counter()
        super().build_extension(ext)
        compiled = (os.path.getmtime(output) if os.path.exists(output) else None) != before
        with self.lock:  # the threads count and print in turn
            self.finished += 1
            self.up_to_date += not compiled
            total = len(self.extensions)
            if compiled:
                say(f"[{self.finished:{len(str(total))}}/{total}] compiled {ext.name} "
                    f"({LABEL[ext.name]}) in {time.perf_counter() - start:.1f} s")


def c_string(value):
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# Declared with their .pyx source: BuildExt cythonizes them (setup.py itself does not, so the PEP 517
# hooks that only ask for requirements or metadata do not wait for Cython).
VARIANT = {}  # module name -> its Cython build directory's variant (build/cython/<variant>)
LABEL = {}  # module name -> what its compile flags are called in the build's progress lines
# the runtime first: it takes the longest to cythonize and to compile, so it does not end either step
# alone on one CPU
VARIANT["fastopt._kernels._runtime"], LABEL["fastopt._kernels._runtime"] = "baseline", "runtime"
extensions = [Extension(
    "fastopt._kernels._runtime",
    ["src/fastopt/_kernels/_runtime.pyx"],
    include_dirs=[numpy.get_include(), "src/fastopt/_kernels"],  # _pool.h
    depends=["src/fastopt/_kernels/_pool.h", "src/fastopt/_kernels/_formats.h"],  # included by the C file: a change recompiles it
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    extra_compile_args=CFLAGS, extra_link_args=LDFLAGS + ([] if MSVC else ["-pthread"]))]
for isa, isa_flags in ISA_FLAGS.items():
    flags = CFLAGS + isa_flags
    for name in KERNELS:
        module = f"fastopt._kernels.{isa}.{name}"
        # one Cython build directory per variant: the same .pyx becomes a module of another name
        VARIANT[module], LABEL[module] = isa, ISA_NAMES[isa]
        extensions.append(Extension(
            module,
            [f"src/fastopt/_kernels/{name}.pyx"],
            include_dirs=[numpy.get_include(), "src/fastopt/_kernels"],  # _formats.h
            depends=["src/fastopt/_kernels/_formats.h"],
            define_macros=[("FASTOPT_ISA", c_string(isa)), ("FASTOPT_CFLAGS", c_string(shlex.join(flags))),
                           ("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            extra_compile_args=flags,
            extra_link_args=LDFLAGS,
        ))

# Only when run as the setup script (python setup.py, or setuptools' PEP 517 backend, which runs it as
# __main__): a worker process that the spawn start method (Windows, macOS) starts for Cython imports the
# main script again, as __mp_main__, and must not start a build of its own.
if __name__ == "__main__":
    setup(ext_modules=extensions, cmdclass={"build_ext": BuildExt})
