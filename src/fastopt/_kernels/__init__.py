"""Loads the kernel modules compiled for the best instruction set this CPU supports.

Each kernel module is built once per variant (see setup.py): ``baseline`` (any x86-64, and the only one
elsewhere), ``avx2`` (AVX2+FMA) and ``avx512`` (AVX-512 F/DQ/BW/VL). The environment variable
``FASTOPT_ISA=baseline|avx2|avx512`` forces one; forcing one the CPU cannot run is an error, not a crash.
All variants compute bit-identical results (no FMA contraction), they only differ in speed.
"""
import importlib
import importlib.util
import os

from ._runtime import supported

VARIANTS = ("baseline", "avx2", "avx512")
MODULES = ("sgd", "adam", "rmsprop", "floor", "tools")


def _built():
    out = []
    for isa in VARIANTS:
        try:
            importlib.import_module(f"{__name__}.{isa}")
        except ImportError:
            continue
        if importlib.util.find_spec(f"{__name__}.{isa}.adam") is not None:
            out.append(isa)
    return out


def _choose():
    runnable = [isa for isa in supported() if isa in BUILT]
    forced = os.environ.get("FASTOPT_ISA", "").strip().lower()
    if not forced:
        return runnable[-1]
    if forced not in VARIANTS:
        raise ImportError(f"FASTOPT_ISA={forced!r}: expected one of {', '.join(VARIANTS)}")
    if forced not in BUILT:
        raise ImportError(f"FASTOPT_ISA={forced!r}: this build of fastopt has no {forced} kernels "
                          f"(built: {', '.join(BUILT)})")
    if forced not in runnable:
        raise ImportError(f"FASTOPT_ISA={forced!r}: this CPU cannot run {forced} code "
                          f"(it supports: {', '.join(supported())})")
    return forced


def load(isa):
    """The kernel modules of one variant, as a dict name -> module."""
    return {name: importlib.import_module(f"{__name__}.{isa}.{name}") for name in MODULES}


BUILT = _built()
ISA = _choose()
modules = load(ISA)
