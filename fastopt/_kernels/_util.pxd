# Helpers shared by the kernel modules; cimported, so they inline into each loop and each ISA variant.
#
# Execution model: a kernel call turns each tensor into one "work item" (pointers + the step's scalars,
# computed once in double) and runs them through ``run``: on one thread in order, or, above
# PARALLEL_MIN elements, split into equal contiguous ranges of the concatenated elements of all
# items, one range per thread. Every element is computed by the same code whichever thread runs it,
# so results are bit-identical for any thread count.
cimport numpy as cnp
from cython.parallel cimport prange
from libc.math cimport fabs, fabsf, sqrt, sqrtf
from libc.stdlib cimport free, malloc

from cython cimport floating

cdef extern from *:
    """
    #ifdef _OPENMP
    #define FASTOPT_OPENMP 1
    #else
    #define FASTOPT_OPENMP 0
    #endif
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
    const int FASTOPT_OPENMP
    const char* FASTOPT_ISA
    const char* FASTOPT_CFLAGS
    const char* FASTOPT_COMPILER
    float _maxnan_f "FASTOPT_MAXNAN"(float a, float b) noexcept nogil
    double _maxnan_d "FASTOPT_MAXNAN"(double a, double b) noexcept nogil

cdef enum:
    # Threads split a call only from PARALLEL_MIN elements, with at least PARALLEL_MIN/2 per thread.
    # Measured (AVX-512 build, float32, quiet 2-core machine; 2-thread time / 1-thread time):
    #   elements   8192  16384  32768  65536  131072  1048576
    #   Adam       0.97   0.81   0.68   0.57    0.51     0.55
    #   SGD        1.18   1.00   0.76   0.63    0.42     0.59
    # Range boundaries fall on multiples of ALIGN elements (64 bytes of float32: no shared cache lines).
    PARALLEL_MIN = 1 << 15
    ALIGN = 16
    # Below this many elements a call keeps the GIL: the loop takes less time than releasing and
    # re-taking it (about 0.1 us). Above it, other Python threads run while the kernel works.
    NOGIL_MIN = 1 << 12

ctypedef void (*chunk_fn)(void* work, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
ctypedef void (*prologue_fn)(void* work) noexcept nogil  # per tensor, before the loop: step counters


cdef inline dict build_info():
    """What this compiled module is: exported by every kernel module as ``BUILD``."""
    return {"isa": FASTOPT_ISA.decode(), "cflags": FASTOPT_CFLAGS.decode(),
            "compiler": FASTOPT_COMPILER.decode(), "openmp": bool(FASTOPT_OPENMP),
            "parallel_min": PARALLEL_MIN}


# -- running work items --------------------------------------------------------------------------------

cdef inline void run_range(chunk_fn fn, char* works, Py_ssize_t stride, const Py_ssize_t* offsets,
                           Py_ssize_t count, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """Run elements [lo, hi) of the concatenation of ``count`` items (item k spans offsets[k:k+2])."""
    cdef Py_ssize_t left = 0, right = count, mid, k, a, b
    while left < right:  # the first item that ends after lo
        mid = (left + right) // 2
        if offsets[mid + 1] <= lo:
            left = mid + 1
        else:
            right = mid
    k = left
    while k < count and offsets[k] < hi:
        a = (lo if lo > offsets[k] else offsets[k]) - offsets[k]
        b = (hi if hi < offsets[k + 1] else offsets[k + 1]) - offsets[k]
        if b > a:
            fn(works + k * stride, a, b)
        k += 1


cdef inline Py_ssize_t range_bound(Py_ssize_t total, Py_ssize_t t, Py_ssize_t n_threads) noexcept nogil:
    if t >= n_threads:
        return total
    return (total * t // n_threads) // ALIGN * ALIGN


cdef inline void run(chunk_fn fn, void* works, Py_ssize_t stride, const Py_ssize_t* offsets,
                     Py_ssize_t count, int n_threads) noexcept nogil:
    """Run ``count`` work items: serially, or split evenly over ``n_threads`` OpenMP threads."""
    cdef Py_ssize_t total = offsets[count], t, nt = n_threads
    if nt > total // (PARALLEL_MIN // 2):
        nt = total // (PARALLEL_MIN // 2)  # at least PARALLEL_MIN/2 elements per thread
    if FASTOPT_OPENMP and nt > 1:
        for t in prange(nt, num_threads=nt, schedule="static"):
            run_range(fn, <char*>works, stride, offsets, count,
                      range_bound(total, t, nt), range_bound(total, t + 1, nt))
    else:
        run_range(fn, <char*>works, stride, offsets, count, 0, total)


# -- arrays -----------------------------------------------------------------------------------------

cdef inline Py_ssize_t check_size(Py_ssize_t n, Py_ssize_t got, str name) except -1:
    """Every buffer of one update has the parameter's length (bounds checks are off in the loops)."""
    if got != n:
        raise ValueError(f"{name} has {got} elements, expected {n} (the size of param)")
    return n


cdef inline int check_counter(Py_ssize_t got, str name) except -1:
    """Scalar state (step, mu_product) is passed as a 1-element buffer so the kernel can update it."""
    if got != 1:
        raise ValueError(f"{name} must hold exactly 1 element (a 0-d counter), got {got}")
    return 0


cdef inline int float_kind(object param, str name, Py_ssize_t k) except -1:
    """1 for float32, 0 for float64 (a TypeError otherwise): the precision of tensor k's kernel."""
    if not cnp.PyArray_Check(param):
        raise TypeError(f"{name}[{k}] must be a numpy.ndarray, got {type(param).__name__}")
    cdef int typenum = cnp.PyArray_TYPE(<cnp.ndarray>param)
    if typenum == cnp.NPY_FLOAT:
        return 1
    if typenum == cnp.NPY_DOUBLE:
        return 0
    raise TypeError(f"{name}[{k}] has dtype {param.dtype}, expected float32 or float64")


cdef inline void* array_data(object arr, int single, Py_ssize_t n, bint write, str name,
                             Py_ssize_t k) except? NULL:
    """The data of tensor k's buffer ``name`` after O(1) checks: an aligned, native-order, C-contiguous
    ndarray of the parameter's dtype and size (writeable when the kernel writes it)."""
    if not cnp.PyArray_Check(arr):
        raise TypeError(f"{name}[{k}] must be a numpy.ndarray, got {type(arr).__name__}")
    cdef cnp.ndarray a = <cnp.ndarray>arr
    if cnp.PyArray_TYPE(a) != (cnp.NPY_FLOAT if single else cnp.NPY_DOUBLE):
        raise TypeError(f"{name}[{k}] has dtype {a.dtype}, expected {'float32' if single else 'float64'}")
    if cnp.PyArray_SIZE(a) != n:
        raise ValueError(f"{name}[{k}] has {cnp.PyArray_SIZE(a)} elements, expected {n}")
    if not (cnp.PyArray_IS_C_CONTIGUOUS(a) and cnp.PyArray_ISALIGNED(a) and cnp.PyArray_ISNOTSWAPPED(a)):
        raise ValueError(f"{name}[{k}] must be C-contiguous, aligned and in native byte order")
    if write and not cnp.PyArray_ISWRITEABLE(a):
        raise ValueError(f"{name}[{k}] is read-only")
    return cnp.PyArray_DATA(a)


ctypedef struct Items:
    # The work items of a group call: ``count`` items of ``size`` bytes, and their element offsets.
    # Every work struct starts with ``void* p; const void* g`` (the param's and the grad's data).
    char* works
    Py_ssize_t* offsets
    Py_ssize_t size, count


cdef inline int items_alloc(Items* items, Py_ssize_t capacity, Py_ssize_t size) except -1:
    items.works = <char*>malloc(capacity * size + 1)
    items.offsets = <Py_ssize_t*>malloc((capacity + 1) * sizeof(Py_ssize_t))
    items.size, items.count = size, 0
    if items.works == NULL or items.offsets == NULL:
        items_free(items)
        raise MemoryError()
    items.offsets[0] = 0
    return 0


cdef inline void items_free(Items* items) noexcept:
    free(items.works)
    free(items.offsets)
    items.works, items.offsets = NULL, NULL


cdef inline void* items_add(Items* items, object param, object grad, Py_ssize_t k, int* single,
                            Py_ssize_t* n) except NULL:
    """Append tensor k's work item after checking its param and grad; sets its ``p`` and ``g``, and
    ``single`` (float32?) and ``n`` (its size) for the rule's own buffers."""
    single[0] = float_kind(param, "params", k)
    n[0] = cnp.PyArray_SIZE(<cnp.ndarray>param)
    cdef void** item = <void**>(items.works + items.count * items.size)
    item[0] = array_data(param, single[0], n[0], True, "params", k)
    item[1] = <void*>array_data(grad, single[0], n[0], False, "grads", k)
    items.count += 1
    items.offsets[items.count] = items.offsets[items.count - 1] + n[0]
    return item


cdef inline double bump(void* counter, int single) noexcept nogil:
    """Increment a step counter stored in the parameter's dtype (a float32 step freezes at 2^24, as
    torch's); returns the new value."""
    if single:
        (<float*>counter)[0] = (<float*>counter)[0] + 1
        return (<float*>counter)[0]
    (<double*>counter)[0] = (<double*>counter)[0] + 1
    return (<double*>counter)[0]


cdef inline void _execute(chunk_fn fn, prologue_fn prologue, void* works, Py_ssize_t stride,
                          const Py_ssize_t* offsets, Py_ssize_t count, int n_threads) noexcept nogil:
    cdef Py_ssize_t k
    if prologue != NULL:
        for k in range(count):
            prologue(<char*>works + k * stride)
    run(fn, works, stride, offsets, count, n_threads)


cdef inline void execute(chunk_fn fn, prologue_fn prologue, void* works, Py_ssize_t stride,
                         const Py_ssize_t* offsets, Py_ssize_t count, int n_threads) noexcept:
    """Every kernel call ends here, checks done: each item's prologue (step counters and the step's
    scalars), then the loop; the GIL is released from NOGIL_MIN elements on."""
    if offsets[count] >= NOGIL_MIN:
        with nogil:
            _execute(fn, prologue, works, stride, offsets, count, n_threads)
    else:
        _execute(fn, prologue, works, stride, offsets, count, n_threads)


cdef inline void execute_one(chunk_fn fn, prologue_fn prologue, void* work, Py_ssize_t n,
                             int n_threads) noexcept:
    """``execute`` for a single work item of n elements (the single-tensor kernels)."""
    cdef Py_ssize_t offsets[2]
    offsets[0] = 0
    offsets[1] = n
    execute(fn, prologue, work, 0, offsets, 1, n_threads)


cdef inline int check_lists(Py_ssize_t count, tuple lists, tuple names) except -1:
    """The per-tensor lists of a group call are aligned with ``params`` (None: a buffer not used)."""
    cdef Py_ssize_t i
    for i in range(len(lists)):
        values = lists[i]
        if values is not None and len(<list>values) != count:
            raise ValueError(f"{names[i]} has {len(<list>values)} entries, expected {count} (one per param)")
    return 0


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
