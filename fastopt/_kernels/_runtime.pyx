"""Runtime services compiled once, for baseline x86-64 (or the build machine elsewhere), so they import
everywhere: what the CPU can run (asked of the CPU, and of the OS for the AVX register state, before
any kernel variant is loaded), and the per-step gradient check, in C so it costs tens of nanoseconds
per tensor."""
cimport numpy as cnp
from libc.string cimport memcmp

import numpy as np

cnp.import_array()

cdef extern from *:
    """
    #if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
    #  if defined(_MSC_VER)
    #    include <intrin.h>
    #    include <immintrin.h>
    static int fastopt_os_saves(unsigned long long mask) {
        int r[4]; __cpuid(r, 1);
        if (!((r[2] >> 27) & 1)) return 0;                       /* OSXSAVE */
        return (_xgetbv(0) & mask) == mask;
    }
    static int fastopt_has_avx2(void) {
        int r[4]; __cpuid(r, 0); if (r[0] < 7) return 0;
        __cpuid(r, 1); int fma = (r[2] >> 12) & 1, avx = (r[2] >> 28) & 1;
        __cpuidex(r, 7, 0); int avx2 = (r[1] >> 5) & 1;
        return avx && fma && avx2 && fastopt_os_saves(0x6);
    }
    static int fastopt_has_avx512(void) {
        int r[4]; if (!fastopt_has_avx2()) return 0;
        __cpuidex(r, 7, 0);
        int f = (r[1] >> 16) & 1, dq = (r[1] >> 17) & 1, bw = (r[1] >> 30) & 1, vl = (r[1] >> 31) & 1;
        return f && dq && bw && vl && fastopt_os_saves(0xe6);
    }
    #  else
    /* GCC and clang: __builtin_cpu_supports also checks that the OS saves the AVX/AVX-512 state. */
    static int fastopt_has_avx2(void) {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    static int fastopt_has_avx512(void) {
        __builtin_cpu_init();
        return fastopt_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
            && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    }
    #  endif
    #else
    static int fastopt_has_avx2(void) { return 0; }
    static int fastopt_has_avx512(void) { return 0; }
    #endif
    """
    int fastopt_has_avx2() nogil
    int fastopt_has_avx512() nogil


def supported():
    """The kernel variants this CPU can run, best last."""
    isas = ["baseline"]
    if fastopt_has_avx2():
        isas.append("avx2")
    if fastopt_has_avx512():
        isas.append("avx512")
    return isas


cdef bint _same_shape(cnp.ndarray a, cnp.ndarray b) noexcept:
    cdef int ndim = cnp.PyArray_NDIM(a)
    if ndim != cnp.PyArray_NDIM(b):
        return False
    return memcmp(<void*>cnp.PyArray_DIMS(a), <void*>cnp.PyArray_DIMS(b), ndim * sizeof(cnp.npy_intp)) == 0


def check_grads(grads, list groups):
    """A step's gradients against the parameters of ``groups`` (param_groups, in order; see
    ``fastopt._validation.grads``, which owns the messages' wording): returns the list to use, with
    NumPy scalars turned into 0-d arrays."""
    if isinstance(grads, np.ndarray):
        raise TypeError("grads must be a list with one array (or None) per parameter, got one ndarray")
    if not isinstance(grads, list):
        try:
            grads = list(grads)
        except TypeError:
            raise TypeError("grads must be a list with one array (or None) per parameter, "
                            f"got {type(grads).__name__}") from None
    cdef Py_ssize_t n = 0, i = 0
    for group in groups:
        n += len(<list>(<dict>group)["params"])
    if len(<list>grads) != n:
        raise ValueError(f"expected {n} gradients (one per parameter, None to skip), got {len(<list>grads)}")
    cdef bint copied = False
    cdef cnp.ndarray g, p
    for group in groups:
        for param in <list>(<dict>group)["params"]:
            obj = (<list>grads)[i]
            if obj is not None:
                if not cnp.PyArray_Check(obj):
                    if not isinstance(obj, np.generic):  # arithmetic on 0-d arrays returns NumPy scalars
                        raise TypeError(f"grads[{i}] must be a numpy.ndarray or None, got {type(obj).__name__}")
                    if not copied:
                        grads, copied = list(grads), True
                    obj = (<list>grads)[i] = np.asarray(obj)
                g, p = <cnp.ndarray>obj, <cnp.ndarray>param
                if cnp.PyArray_TYPE(g) != cnp.PyArray_TYPE(p) or not cnp.PyArray_ISNOTSWAPPED(g):
                    raise TypeError(f"grads[{i}] has dtype {g.dtype}, expected {p.dtype} (the dtype of params[{i}])")
                if not _same_shape(g, p):
                    raise ValueError(f"grads[{i}] has shape {(<object>g).shape}, expected {(<object>p).shape} "
                                     f"(the shape of params[{i}])")
                if not (cnp.PyArray_IS_C_CONTIGUOUS(g) and cnp.PyArray_ISALIGNED(g)):
                    raise ValueError(f"grads[{i}] must be C-contiguous (np.ascontiguousarray makes it so)")
            i += 1
    return grads
