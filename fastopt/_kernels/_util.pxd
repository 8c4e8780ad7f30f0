# Helpers shared by the kernel modules; cimported, so they inline into each loop and each ISA variant.
#
# Execution model (fastopt/_kernels/_runtime.pxd): a kernel's ``*_batch`` function checks its arrays and
# turns each tensor into one work item (a struct starting with a ``WorkHead``: the item's chunk function
# and prologue, then pointers and the step's scalars, computed once in double by the prologue); the
# runtime's ``run`` executes the items of one or more batches on the thread pool. Every element is
# computed by the same code whichever thread runs it, so results are bit-identical for any thread count.
cimport numpy as cnp
from libc.math cimport fabs, fabsf, sqrt, sqrtf

from cython cimport floating

from fastopt._kernels._runtime cimport chunk_fn, prologue_fn, WorkHead

cdef extern from *:
    """
    #ifndef FASTOPT_ISA
    #define FASTOPT_ISA "unknown"
    #endif
    #ifndef FASTOPT_CFLAGS
    #define FASTOPT_CFLAGS ""
    #endif
    #if defined(__clang__)
    #define FASTOPT_COMPILER "clang " __clang_version__
    #elif defined(__GNUC__)
    #define FASTOPT_COMPILER "gcc " __VERSION__
    #elif defined(_MSC_VER)
    #define FASTOPT_COMPILER "msvc"
    #else
    #define FASTOPT_COMPILER "unknown"
    #endif
    /* NaN-propagating maximum, as torch.maximum and np.maximum. Written with a bitwise | so the
       compiler sees one select, not branches, and vectorizes the loop around it. */
    #define FASTOPT_MAXNAN(a, b) ((((a) >= (b)) | ((a) != (a))) ? (a) : (b))
    """
    const char* FASTOPT_ISA
    const char* FASTOPT_CFLAGS
    const char* FASTOPT_COMPILER
    float _maxnan_f "FASTOPT_MAXNAN"(float a, float b) noexcept nogil
    double _maxnan_d "FASTOPT_MAXNAN"(double a, double b) noexcept nogil


cdef inline dict build_info():
    """What this compiled module is: exported by every kernel module as ``BUILD``."""
    return {"isa": FASTOPT_ISA.decode(), "cflags": FASTOPT_CFLAGS.decode(),
            "compiler": FASTOPT_COMPILER.decode()}


cdef inline WorkHead work_head(chunk_fn chunk, prologue_fn prologue) noexcept:
    cdef WorkHead h
    h.chunk, h.prologue = chunk, prologue
    return h


# -- arrays -----------------------------------------------------------------------------------------

cdef inline double bump(void* counter, int single) noexcept nogil:
    """Increment a step counter stored in the parameter's dtype (a float32 step freezes at 2^24, as
    torch's); returns the new value."""
    if single:
        (<float*>counter)[0] = (<float*>counter)[0] + 1
        return (<float*>counter)[0]
    (<double*>counter)[0] = (<double*>counter)[0] + 1
    return (<double*>counter)[0]


# -- per-element helpers ------------------------------------------------------------------------------

cdef inline floating maxnan(floating a, floating b) noexcept nogil:
    """NaN-propagating maximum, as torch.maximum and np.maximum (libm fmax drops NaN)."""
    if floating is float:
        return _maxnan_f(a, b)
    else:
        return _maxnan_d(a, b)


cdef inline floating fsqrt(floating x) noexcept nogil:
    """sqrt in the buffer's own precision (libm's sqrt would round float32 math through double)."""
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef inline floating fabs_(floating x) noexcept nogil:
    if floating is float:
        return fabsf(x)
    else:
        return fabs(x)


cdef inline floating effective_grad(floating g, floating p, floating sign, floating wd,
                                    bint decay) noexcept nogil:
    """The gradient every rule starts from: ``maximize``'s sign, then L2 weight decay ``g + wd*p``
    (torch's order). The one place a gradient scale or clip coefficient will fold into every kernel."""
    g = sign * g                                        # g_t
    if decay:
        g = g + wd * p                                  # g_t
    return g
