"""Runtime services compiled once, for baseline x86-64 (or the build machine elsewhere), so they import
everywhere and exist once per process:

- what the CPU can run (asked of the CPU, and of the OS for the AVX register state, before any kernel
  variant is loaded);
- the executor: ``Batch`` (a kernel call's checked work items, holding a reference to every array they
  point into) and ``run`` (the items of one or more batches as one job on fastopt's thread pool,
  ``_pool.h``), with the memory-overlap check;
- the optimizers' per-step checks, in C so they cost nanoseconds per tensor: ``check_grads``,
  ``same_params``, ``Intervals`` (the memory a step writes) and ``snapshot`` (hyperparameters by value);
  fastopt.torch's ``tensor_grads``.
"""
cimport numpy as cnp
from cpython.ref cimport PyObject
from libc.stdlib cimport calloc, free, malloc, qsort
from libc.string cimport memcmp, memset
from cpython.dict cimport PyDict_GetItem
from cpython.list cimport PyList_AsTuple
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM

cimport cython

import numbers

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



# -- the executor -------------------------------------------------------------------------------------

cdef extern from "_pool.h":
    ctypedef long long fo_atomic
    ctypedef struct fo_pool:
        int helpers
        fo_atomic jobs
        fo_atomic serial
        fo_atomic helper_chunks
        fo_atomic omp_jobs
        fo_atomic omp_fallbacks
        fo_atomic omp_lates
        void* omp_parallel
    ctypedef void (*fo_omp_parallel_fn)(void (*fn)(void*) noexcept nogil, void* data, unsigned num_threads,
                                        unsigned flags) noexcept nogil
    ctypedef int (*fo_omp_thread_num_fn)() noexcept nogil
    fo_pool fo_P
    long long fo_load(fo_atomic* p) nogil
    void fo_init() nogil
    void fo_use_omp(fo_omp_parallel_fn parallel, fo_omp_thread_num_fn thread_num) nogil
    void fo_run(void** items, const Py_ssize_t* offsets, Py_ssize_t count, int n_threads,
                Py_ssize_t parallel_min, int omp) nogil
    const int FO_MAX_THREADS
    const int FO_BLOCK

if FO_BLOCK != BLOCK:  # _runtime.pxd's copy of the pool's block, for the kernel modules
    raise ImportError(f"fastopt build error: _pool.h FO_BLOCK={FO_BLOCK}, _runtime.pxd BLOCK={BLOCK}")

cdef enum:
    # A call is split over threads only from PARALLEL_MIN elements, with at least PARALLEL_MIN/2 per
    # thread. Measured with OpenMP's static split (AVX-512 build, float32, quiet 2-core machine;
    # 2-thread time / 1-thread time):
    #   elements   8192  16384  32768  65536  131072  1048576
    #   Adam       0.97   0.81   0.68   0.57    0.51     0.55
    #   SGD        1.18   1.00   0.76   0.63    0.42     0.59
    PARALLEL_MIN = 1 << 15
    # Below this many elements a call keeps the GIL: the loop takes less time than releasing and
    # re-taking it (about 0.1 us). Above it, other Python threads run while the kernel works.
    NOGIL_MIN = 1 << 12

fo_init()


def pool_stats():
    """The thread pool's counters since this process started (or forked): ``helpers`` (threads
    started), ``jobs`` (calls run on more than one of them), ``omp_jobs`` (calls run on the OpenMP
    team of ``use_openmp``), ``omp_fallbacks`` (times that team kept the caller waiting for members
    that were not running, after which a few calls ran on fastopt's pool instead), ``serial`` (calls
    that could use threads but ran on the caller because another thread was using the pool),
    ``helper_chunks`` (chunks run by threads other than the caller)."""
    return {"helpers": fo_P.helpers, "jobs": fo_load(&fo_P.jobs), "omp_jobs": fo_load(&fo_P.omp_jobs),
            "omp_fallbacks": fo_load(&fo_P.omp_fallbacks), "omp_lates": fo_load(&fo_P.omp_lates), "serial": fo_load(&fo_P.serial),
            "helper_chunks": fo_load(&fo_P.helper_chunks)}


def use_openmp(size_t parallel, size_t thread_num):
    """Run the calls of ``run_openmp`` on an OpenMP runtime already loaded in this process, given the
    addresses of its ``GOMP_parallel`` and ``omp_get_thread_num`` (libgomp's ABI, which LLVM's and
    Intel's runtimes also export), from the next call on; zeros stop using one. fastopt.torch passes torch's: its intra-op
    threads are the ones still spinning, hot, when a step follows backward. A forked child forgets the
    runtime (its threads are not in the child) and runs on fastopt's own pool."""
    fo_use_omp(<fo_omp_parallel_fn>parallel, <fo_omp_thread_num_fn>thread_num)


def openmp_in_use():
    """Whether ``use_openmp`` has set a runtime in this process (False again in a forked child)."""
    return fo_P.omp_parallel != NULL

BUILD = {"threads": "win32" if FASTOPT_WIN32 else "pthreads", "parallel_min": PARALLEL_MIN,
         "chunk_align": FO_BLOCK, "max_threads": FO_MAX_THREADS}

cdef extern from *:
    """
    #if defined(_WIN32)
    #define FASTOPT_WIN32 1
    #else
    #define FASTOPT_WIN32 0
    #endif
    """
    const int FASTOPT_WIN32


cdef inline str _label(tuple names, Py_ssize_t name, Py_ssize_t k):
    return names[name] if k < 0 else f"{names[name]}[{k}]"


cdef inline str _name(tuple names, const Span* s):
    return _label(names, s.name, s.k)


cdef _overlap_error(str a, str b):
    return ValueError(f"{a} and {b} overlap in memory: a step reads and writes every array in place, so "
                      "parameters, gradients and state must not share memory (pass a copy)")


cdef int _by_start(const void* a, const void* b) noexcept nogil:
    cdef const char* x = (<const Span*>a).lo
    cdef const char* y = (<const Span*>b).lo
    return -1 if x < y else (1 if x > y else 0)


cdef Py_ssize_t _sort_disjoint(Span* spans, Py_ssize_t n) noexcept:
    """Sort ``spans`` by start; return i > 0 where spans i-1 and i overlap, or 0 when all are disjoint
    (sorted by start, any overlap shows between neighbours)."""
    cdef Py_ssize_t i
    qsort(spans, n, sizeof(Span), _by_start)
    for i in range(1, n):
        if spans[i].lo < spans[i - 1].hi:
            return i
    return 0


cdef Py_ssize_t _find(const Span* spans, Py_ssize_t n, const char* lo, const char* hi) noexcept nogil:
    """The index of a span of the sorted, disjoint ``spans`` that overlaps [lo, hi), or -1."""
    cdef Py_ssize_t left = 0, right = n, mid
    while left < right:  # the first span that ends after lo (disjoint and sorted: ends are sorted too)
        mid = (left + right) // 2
        if spans[mid].hi <= lo:
            left = mid + 1
        else:
            right = mid
    if left < n and spans[left].lo < hi:
        return left
    return -1


# -- formats ------------------------------------------------------------------------------------------

cdef extern from "numpy/arrayobject.h":
    enum:
        NPY_HALF, NPY_USERDEF

cdef extern from "_formats.h":
    enum:
        FO_F32, FO_F64, FO_BF16, FO_F16, FO_SPLIT, FO_MASTER, FO_Q8, FO_Q4
    unsigned int fo_hash(unsigned int key, unsigned int i) noexcept nogil
    ctypedef struct fo_qtable:
        pass
    int fo_qtable_init(fo_qtable* t, const float* qmap, int ncodes, int bits, int block) noexcept nogil
    void fo_dequantize(const fo_qtable* t, const unsigned char* codes, const float* absmax, float* dst,
                       Py_ssize_t first, Py_ssize_t n) noexcept nogil
    void fo_quantize(const fo_qtable* t, const float* src, unsigned char* codes, float* absmax,
                     Py_ssize_t first, Py_ssize_t n) noexcept nogil

FORMATS = ("float32", "float64", "bfloat16", "float16")  # _formats.h's FO_F32, FO_F64, FO_BF16, FO_F16
cdef int _BF16 = -1  # NumPy's type number of ml_dtypes.bfloat16, once an array of it has been seen


cdef int _user_format(object arr) noexcept:
    """The format of an array of a user-defined NumPy type: bfloat16 for ml_dtypes' (whose type number
    NumPy assigns when ml_dtypes is imported: fastopt never imports it), else -1."""
    global _BF16
    try:
        dtype = arr.dtype
        if dtype.name == "bfloat16" and dtype.itemsize == 2 and dtype.type.__module__.startswith("ml_dtypes"):
            _BF16 = dtype.num
            return 2
    except Exception:
        pass
    return -1


cdef inline int _format_of(object arr) noexcept:
    """The format (_formats.h) of an ndarray's dtype, or -1 (not an ndarray, or another dtype)."""
    cdef int typenum
    if not cnp.PyArray_Check(arr):
        return -1
    typenum = cnp.PyArray_TYPE(<cnp.ndarray>arr)
    if typenum == cnp.NPY_FLOAT:
        return 0
    if typenum == cnp.NPY_DOUBLE:
        return 1
    if typenum == NPY_HALF:
        return 3
    if typenum == _BF16:
        return 2
    if typenum >= NPY_USERDEF and _BF16 < 0:
        return _user_format(arr)
    return -1


def format_of(arr):
    """The name of ``arr``'s storage format ("float32", "float64", "bfloat16", "float16"), or None."""
    cdef int f = _format_of(arr)
    return None if f < 0 else FORMATS[f]


cdef inline int _float_kind(object arr, tuple names, Py_ssize_t k) except -1:
    """The format of a param array; TypeError (naming ``names[0]`` and k) otherwise."""
    cdef int f = _format_of(arr)
    if f >= 0:
        return f
    if cnp.PyArray_Check(arr):
        raise TypeError(f"{_label(names, 0, k)} has dtype {arr.dtype}, expected float32, float64, bfloat16 "
                        "(ml_dtypes) or float16")
    raise TypeError(f"{_label(names, 0, k)} must be a numpy.ndarray, got {type(arr).__name__}")


@cython.freelist(8)
cdef class Batch:
    """The checked work items of one kernel call (see the module docstring); built by the kernels'
    ``*_batch`` functions, run by ``run``. It holds ``lists``: the call's per-tensor arguments as tuples,
    so every array it points into stays alive (and its list may change) while it runs."""

    def __cinit__(self):
        self.works, self.items, self.offsets, self.spans = NULL, NULL, NULL, NULL

    def __dealloc__(self):
        free(self.works)  # one block: works, items, offsets, spans

    def __len__(self):
        return self.count

    @property
    def elements(self):
        return 0 if self.offsets == NULL else self.offsets[self.count]

    cdef int format_of(self, object arr) noexcept:
        """``arr``'s format (_formats.h), or -1; notes bfloat16's type number when first seen."""
        cdef int f = _format_of(arr)
        if f == 2:
            self.typenums[2] = _BF16
        return f

    cdef int _reject(self, object arr, int fmt, Py_ssize_t n, bint write, Py_ssize_t name,
                     Py_ssize_t k) except -1:
        """Raise what is wrong with ``arr`` (see ``data``): it should be an array of format ``fmt``."""
        what = _label(self.names, name, k)
        if not cnp.PyArray_Check(arr):
            raise TypeError(f"{what} must be a numpy.ndarray, got {type(arr).__name__}")
        cdef cnp.ndarray a = <cnp.ndarray>arr
        if _format_of(a) != fmt:
            raise TypeError(f"{what} has dtype {a.dtype}, expected {FORMATS[fmt]}")
        if cnp.PyArray_SIZE(a) != n:
            raise ValueError(f"{what} has {cnp.PyArray_SIZE(a)} elements, expected {n}"
                             + ("" if name == 0 else f" (the size of {_label(self.names, 0, k)})"))
        if not (cnp.PyArray_IS_C_CONTIGUOUS(a) and cnp.PyArray_ISALIGNED(a) and cnp.PyArray_ISNOTSWAPPED(a)):
            raise ValueError(f"{what} must be C-contiguous, aligned and in native byte order")
        raise ValueError(f"{what} is read-only")

    cdef int _reject_param(self, object param, Py_ssize_t k) except -1:
        if self.count == self.capacity:
            raise ValueError("more work items than params")  # unreachable: one item per param at most
        _float_kind(param, self.names, k if self.indexed else -1)
        raise AssertionError("unreachable: _float_kind raises")

    cpdef check_overlap(self):
        """ValueError naming two of the call's arrays that share memory, where one of them is written
        (arrays that are only read, such as one gradient given for two params, may share)."""
        cdef Py_ssize_t i, j, nw = 0
        cdef Span* written = <Span*>malloc((self.nspans + 1) * sizeof(Span))
        if written == NULL:
            raise MemoryError()
        try:
            for i in range(self.nspans):
                if self.spans[i].write:
                    written[nw] = self.spans[i]
                    nw += 1
            i = _sort_disjoint(written, nw)
            if i:
                raise _overlap_error(_name(self.names, &written[i - 1]), _name(self.names, &written[i]))
            for i in range(self.nspans):
                if not self.spans[i].write:
                    j = _find(written, nw, self.spans[i].lo, self.spans[i].hi)
                    if j >= 0:
                        raise _overlap_error(_name(self.names, &written[j]), _name(self.names, &self.spans[i]))
        finally:
            free(written)


cdef Batch new_batch(tuple names, tuple lists, Py_ssize_t required, Py_ssize_t size, bint indexed):
    """An empty batch for a kernel call with per-tensor arguments ``lists`` (``lists[0]``: the params)
    named ``names``; the first ``required`` of them may not be None. Each list (or tuple) must have one
    entry per param; a copy of each is kept as a tuple (``Batch.lists``). Work structs are ``size``
    bytes. ``indexed``: a group call (names[i][k]) or a single-tensor one ("param", "exp_avg")."""
    cdef Batch b = Batch.__new__(Batch)
    cdef Py_ssize_t i, count, nlists = len(lists)
    cdef list converted = [None] * nlists
    for i in range(nlists):
        values = lists[i]
        if type(values) is list:
            converted[i] = PyList_AsTuple(values)
        elif type(values) is tuple:
            converted[i] = values
        elif values is None:
            if i < required:
                raise TypeError(f"{names[i]} must be a list with one entry per param, got None")
        else:
            raise TypeError(f"{names[i]} must be a list with one entry per param, got {type(values).__name__}")
    count = len(<tuple>converted[0])
    if not indexed and count and converted[1][0] is None:
        raise TypeError(f"{names[1].removesuffix('s')} must be a numpy.ndarray, got NoneType")
    for i in range(1, nlists):
        if converted[i] is not None and len(<tuple>converted[i]) != count:
            raise ValueError(f"{names[i]} has {len(<tuple>converted[i])} entries, expected {count} "
                             "(one per param)")
    # a single-tensor call names its arrays in the singular, without an index: "param", "exp_avg"
    b.names = names if indexed else tuple([n.removesuffix("s") for n in names])
    b.lists, b.indexed = tuple(converted), indexed
    b.typenums[0], b.typenums[1], b.typenums[2], b.typenums[3] = cnp.NPY_FLOAT, cnp.NPY_DOUBLE, _BF16, NPY_HALF
    b.size = (size + 15) // 16 * 16
    b.capacity, b.count, b.nspans = count, 0, 0
    b.span_capacity = count * (nlists + 3) + 1  # (quantized state: two spans per array)
    cdef Py_ssize_t works_bytes = (count + 1) * b.size, items_bytes = (count + 1) * sizeof(void*)
    cdef Py_ssize_t offsets_bytes = (count + 1) * sizeof(Py_ssize_t)
    b.works = <char*>malloc(works_bytes + items_bytes + offsets_bytes + b.span_capacity * sizeof(Span))
    if b.works == NULL:
        raise MemoryError()
    b.items = <void**>(b.works + works_bytes)
    b.offsets = <Py_ssize_t*>(b.works + works_bytes + items_bytes)
    b.spans = <Span*>(b.works + works_bytes + items_bytes + offsets_bytes)
    b.offsets[0] = 0
    return b


cdef int _threads(object n_threads) except -1:
    if type(n_threads) is int and n_threads >= 1:
        return n_threads if n_threads < FO_MAX_THREADS else FO_MAX_THREADS
    if isinstance(n_threads, (bool, np.bool_)) or not isinstance(n_threads, numbers.Integral):
        raise TypeError(f"n_threads must be a positive int, got {type(n_threads).__name__}")
    if n_threads < 1:
        raise ValueError(f"n_threads must be a positive int, got {n_threads}")
    return FO_MAX_THREADS if n_threads >= FO_MAX_THREADS else int(n_threads)


cdef void _gap_chunk(void* work, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    pass  # the elements of a gap item (alignment padding) belong to no array


cdef WorkHead _GAP
_GAP.chunk, _GAP.prologue = _gap_chunk, NULL


cdef int _execute(void** items, const Py_ssize_t* offsets, Py_ssize_t count, int n_threads,
                  bint omp) noexcept nogil:
    """Every item's prologue, then the job; for two-pass items (``WorkHead.reduce``) first a reading
    pass over them (the others replaced by gaps, the same chunks) and their ``reduce``. -1: no memory
    for the reading pass's item list (nothing was run)."""
    cdef Py_ssize_t k, two = 0
    cdef WorkHead* head
    cdef void** first
    for k in range(count):
        two += (<WorkHead*>items[k]).reduce != NULL
    if two:
        first = <void**>malloc(count * sizeof(void*))
        if first == NULL:
            return -1
    for k in range(count):
        head = <WorkHead*>items[k]
        if head.prologue != NULL:
            head.prologue(items[k])
    if two:
        for k in range(count):
            head = <WorkHead*>items[k]
            if head.reduce != NULL:
                head.reading = True
                first[k] = items[k]
            else:
                first[k] = <void*>&_GAP
        fo_run(first, offsets, count, n_threads, PARALLEL_MIN, omp)
        free(first)
        for k in range(count):
            head = <WorkHead*>items[k]
            if head.reduce != NULL:
                head.reduce(items[k])
                head.reading = False
    fo_run(items, offsets, count, n_threads, PARALLEL_MIN, omp)
    return 0


cpdef run(batches, n_threads=1, double grad_scale=1.0, rounding_seed=None):
    """Run the work items of ``batches`` (one ``Batch`` or a sequence of them, all built before this
    call, so all of their checks have passed) as one job on up to ``n_threads`` threads: first every
    item's prologue (step counters), then every element. The GIL is released from NOGIL_MIN elements.
    ``grad_scale`` multiplies every gradient as it is read (a clip coefficient; gradients are never
    written), rounded to the gradient's dtype: ``g * c`` as torch's ``g.mul_(c)``. ``rounding_seed``
    (an int, or None: to nearest) rounds the job's bfloat16 stores stochastically, with random bits
    that are a hash of (the seed, the item's position in the job, the array, the element)."""
    _run(batches, n_threads, grad_scale, False, rounding_seed)


cpdef run_openmp(batches, n_threads=1, double grad_scale=1.0, rounding_seed=None):
    """``run`` on the OpenMP team of ``use_openmp`` (its threads, the caller being one), or on
    fastopt's pool where none is set. Same chunks, so the same bits."""
    _run(batches, n_threads, grad_scale, True, rounding_seed)


def item_keys(rounding_seed, count):
    """The stochastic-rounding keys of a job's first ``count`` items (what ``run`` gives them), for
    the NumPy twin."""
    cdef unsigned int base = _seed_key(rounding_seed)
    return [fo_hash(base, <unsigned int>k) for k in range(count)]


cdef unsigned int _seed_key(object rounding_seed) except? 0:
    if isinstance(rounding_seed, bool) or not isinstance(rounding_seed, numbers.Integral):
        raise TypeError(f"rounding_seed must be an int or None, got {type(rounding_seed).__name__}")
    cdef unsigned long long seed = int(rounding_seed) & 0xFFFFFFFFFFFFFFFF
    return fo_hash(<unsigned int>(seed & 0xFFFFFFFF), fo_hash(<unsigned int>(seed >> 32), 0x2545F491))


cdef _run(batches, n_threads, double grad_scale, bint omp, object rounding_seed=None):
    cdef int threads = _threads(n_threads)
    cdef Batch b
    cdef Py_ssize_t count = 0, k, total = 0, base
    cdef void** items
    cdef Py_ssize_t* offsets
    if type(batches) is Batch:
        batches = (batches,)
    elif type(batches) is not tuple:
        batches = tuple(batches)
    for obj in <tuple>batches:
        if type(obj) is not Batch:
            raise TypeError(f"run() takes Batch objects, got {type(obj).__name__}")
        if (<Batch>obj).offsets == NULL:
            raise ValueError("run() takes batches made by the kernels' *_batch functions, got an empty Batch()")
        count += (<Batch>obj).count
    if len(<tuple>batches) == 1:
        b = <Batch>(<tuple>batches)[0]
        items, offsets = b.items, b.offsets
    else:
        items = <void**>malloc((count + 1) * sizeof(void*))
        offsets = <Py_ssize_t*>malloc((count + 1) * sizeof(Py_ssize_t))
        if items == NULL or offsets == NULL:
            free(items)
            free(offsets)
            raise MemoryError()
        count = 0
        offsets[0] = 0
        for obj in <tuple>batches:
            b = <Batch>obj
            base = offsets[count]
            for k in range(b.count):
                items[count] = b.items[k]
                offsets[count + 1] = base + b.offsets[k + 1]
                count += 1
    cdef bint stochastic = rounding_seed is not None
    cdef unsigned int key = _seed_key(rounding_seed) if stochastic else 0
    cdef WorkHead* head
    cdef bint align = False
    for k in range(count):
        (<ItemHead*>items[k]).grad_scale = grad_scale
        head = <WorkHead*>items[k]
        head.stochastic, head.key = stochastic, fo_hash(key, <unsigned int>k) if stochastic else 0
        align = align or head.align
    cdef void** padded = NULL
    cdef Py_ssize_t* padded_offsets = NULL
    if align:  # items with quantized state start at a multiple of BLOCK: a gap item before them
        padded = <void**>malloc((2 * count + 1) * sizeof(void*))
        padded_offsets = <Py_ssize_t*>malloc((2 * count + 1) * sizeof(Py_ssize_t))
        if padded == NULL or padded_offsets == NULL:
            free(padded)
            free(padded_offsets)
            if len(<tuple>batches) != 1:
                free(items)
                free(offsets)
            raise MemoryError()
        total = 0
        padded_offsets[0] = 0
        base = 0
        for k in range(count):
            if (<WorkHead*>items[k]).align and padded_offsets[base] % BLOCK:
                padded[base] = &_GAP
                padded_offsets[base + 1] = (padded_offsets[base] + BLOCK - 1) // BLOCK * BLOCK
                base += 1
            padded[base] = items[k]
            padded_offsets[base + 1] = padded_offsets[base] + (offsets[k + 1] - offsets[k])
            base += 1
        if len(<tuple>batches) != 1:
            free(items)
            free(offsets)
        items, offsets, count = padded, padded_offsets, base
    cdef int status
    try:
        if offsets[count] >= NOGIL_MIN:
            with nogil:
                status = _execute(items, offsets, count, threads, omp)
        else:
            status = _execute(items, offsets, count, threads, omp)
        if status != 0:
            raise MemoryError()
    finally:
        if len(<tuple>batches) != 1 or align:
            free(items)
            free(offsets)


# -- norms (fastopt.kernels.grad_norm; the optimizers' norm_type) -------------------------------------

SQUARES, ABSOLUTE, MAXIMUM, POWERS = range(4)


def norm_kind(norm_type):
    """(kind, p) for a norm type: 2, 1, inf or another p > 0 (ValueError otherwise)."""
    if isinstance(norm_type, (bool, np.bool_)) or not isinstance(norm_type, numbers.Real):
        raise TypeError(f"norm_type must be a real number, got {type(norm_type).__name__}")
    p = float(norm_type)
    if p == 2.0:
        return SQUARES, p
    if p == 1.0:
        return ABSOLUTE, p
    if p == float("inf"):
        return MAXIMUM, p
    if not 0.0 < p < float("inf"):
        raise ValueError(f"norm_type must be a positive number or inf, got {norm_type!r}")
    return POWERS, p



# -- quantized state -----------------------------------------------------------------------------------

_QTABLES = {}  # (map bytes, bits, block) -> its fo_qtable, as a uint8 array


cdef object _qtable(cnp.ndarray qmap, int bits, int block):
    key = (qmap.tobytes(), bits, block)
    table = _QTABLES.get(key)
    if table is None:
        table = np.zeros(sizeof(fo_qtable), np.uint8)
        if fo_qtable_init(<fo_qtable*>cnp.PyArray_DATA(table), <const float*>cnp.PyArray_DATA(qmap),
                          <int>cnp.PyArray_SIZE(qmap), bits, block) != 0:
            raise ValueError("qmap is too dense near some value for the kernels' two-compare lookup")
        table.flags.writeable = False
        _QTABLES[key] = table
    return table


cdef class Quantized:
    """State kept quantized (``state_dtype="q8"`` or ``"q4"``): bitsandbytes' and torchao's blockwise
    dynamic quantization. The flat array is cut into blocks of ``block_size`` elements (256 for 8-bit
    codes, 128 for 4-bit), each with a float32 ``absmax``; element i is ``qmap[code_i] * absmax`` of
    its block. ``codes``: uint8, one per element (8 bits) or two per byte (4 bits, the even element in
    the high nibble); ``qmap``: the sorted map (256 or 16 float32 values, signed or not). A step
    dequantizes, updates in float32 and requantizes block by block (docs/precision.md).
    ``np.asarray(q)`` is the dequantized float32 array, of the parameter's shape."""

    def __init__(self, codes, absmax, qmap, shape, is_signed):
        qmap = np.ascontiguousarray(qmap, dtype=np.float32).reshape(-1)
        if qmap.size not in (256, 16) or not np.all(qmap[1:] >= qmap[:-1]):
            raise ValueError(f"qmap must be a sorted map of 256 (8-bit) or 16 (4-bit) values, got {qmap.size}")
        self.bits = 8 if qmap.size == 256 else 4
        self.block_size = 256 if self.bits == 8 else 128
        self.shape = tuple(int(d) for d in shape)
        self.size = int(np.prod(self.shape, dtype=np.int64))
        ncodes = self.size if self.bits == 8 else (self.size + 1) // 2
        nblocks = (self.size + self.block_size - 1) // self.block_size
        for name, value, dtype, count in (("codes", codes, np.uint8, ncodes), ("absmax", absmax, np.float32, nblocks)):
            if not isinstance(value, np.ndarray) or value.dtype != dtype or value.size != count or not (
                    value.flags.c_contiguous and value.flags.aligned and value.flags.writeable):
                raise ValueError(f"{name} must be a writeable C-contiguous {np.dtype(dtype).name} array of "
                                 f"{count} elements, got {getattr(value, 'dtype', type(value).__name__)} of "
                                 f"shape {getattr(value, 'shape', None)}")
        self.codes, self.absmax, self.qmap, self.is_signed = codes.reshape(-1), absmax.reshape(-1), qmap, bool(is_signed)
        self.table = _qtable(qmap, self.bits, self.block_size)

    @property
    def format(self):
        return "q8" if self.bits == 8 else "q4"

    def dequantize(self):
        """The values as a new float32 array of the parameter's shape."""
        out = np.empty(self.size, np.float32)
        fo_dequantize(<const fo_qtable*>cnp.PyArray_DATA(self.table), <const unsigned char*>cnp.PyArray_DATA(self.codes),
                      <const float*>cnp.PyArray_DATA(self.absmax), <float*>cnp.PyArray_DATA(out), 0, self.size)
        return out.reshape(self.shape)

    def quantize_from(self, values):
        """Set the codes and absmax from float32 ``values`` (the parameter's size), as a step stores."""
        cdef cnp.ndarray src = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
        if src.size != self.size:
            raise ValueError(f"values has {src.size} elements, expected {self.size}")
        fo_quantize(<const fo_qtable*>cnp.PyArray_DATA(self.table), <const float*>cnp.PyArray_DATA(src),
                    <unsigned char*>cnp.PyArray_DATA(self.codes), <float*>cnp.PyArray_DATA(self.absmax), 0, self.size)

    def data_ptr(self):
        """The address of its codes (fastopt.torch checks state entries by address, as tensors')."""
        return <size_t>cnp.PyArray_DATA(<cnp.ndarray>self.codes)

    def __array__(self, dtype=None, copy=None):
        out = self.dequantize()
        return out if dtype is None else out.astype(dtype)

    def __reduce__(self):
        return (Quantized, (self.codes, self.absmax, self.qmap, self.shape, self.is_signed))

    def __repr__(self):
        return f"Quantized({self.format}, shape={self.shape}, {'signed' if self.is_signed else 'unsigned'})"


def attach(Batch b, str kind, masters):
    """Give the params of ``b`` float32 masters (``master_weights``): ``masters`` has one entry per
    param, None for those without a gradient (which have no item). ``kind`` "split": a bfloat16
    param's low halves, an int16 array of its size (param + low halves = the float32 master);
    "float32": a float32 array of its size, the master the rule updates, rounded into the bfloat16 or
    float16 param at every store. Checked before anything changes; call before ``run``."""
    cdef Py_ssize_t k, item = 0, n
    cdef cnp.ndarray arr
    cdef WorkHead* h
    cdef ItemHead* ih
    if kind not in ("split", "float32"):
        raise ValueError(f"kind must be 'split' or 'float32', got {kind!r}")
    masters = tuple(masters)
    present = [k for k in range(len(masters)) if masters[k] is not None]
    if len(present) != b.count:
        raise ValueError(f"masters has {len(present)} arrays, expected {b.count} (one per param with a gradient)")
    checked = []
    for k in present:
        h = <WorkHead*>b.items[item]
        n = b.offsets[item + 1] - b.offsets[item]
        item += 1
        value = masters[k]
        if kind == "split" and h.format != FO_BF16 or kind == "float32" and h.format not in (FO_BF16, FO_F16):
            raise ValueError(f"master_weights={kind!r} is for {'bfloat16' if kind == 'split' else 'bfloat16 and float16'} "
                             f"params; params[{k}] is {FORMATS[h.format]}")
        if not cnp.PyArray_Check(value):
            raise TypeError(f"the master of params[{k}] must be a numpy.ndarray, got {type(value).__name__}")
        arr = <cnp.ndarray>value
        expected = cnp.NPY_INT16 if kind == "split" else cnp.NPY_FLOAT
        if cnp.PyArray_TYPE(arr) != expected or cnp.PyArray_SIZE(arr) != n or not (
                cnp.PyArray_IS_C_CONTIGUOUS(arr) and cnp.PyArray_ISALIGNED(arr) and cnp.PyArray_ISNOTSWAPPED(arr)
                and cnp.PyArray_ISWRITEABLE(arr)):
            raise ValueError(f"the master of params[{k}] must be a writeable C-contiguous "
                             f"{'int16' if kind == 'split' else 'float32'} array of {n} elements, got "
                             f"{value.dtype} of shape {value.shape}")
        checked.append((item - 1, arr))
    for item, arr in checked:  # all checked: now change the items
        h = <WorkHead*>b.items[item]
        ih = <ItemHead*>b.items[item]
        if kind == "split":
            h.slot_format[0], h.slot_aux[0] = FO_SPLIT, cnp.PyArray_DATA(arr)
        else:
            h.slot_format[0], h.slot_aux[0], h.slot_aux_format[0] = FO_MASTER, ih.p, h.format
            ih.p = cnp.PyArray_DATA(arr)
        h.staged, h.chunk = True, h.staged_fn
    b.held = (b.held, masters)  # keep them alive while the batch is


# -- the optimizers' per-step checks ---------------------------------------------------------------

cdef class Intervals:
    """The memory a step writes (params and state, named for messages), sorted, for O(log n) overlap
    checks of each step's gradients. Raises ValueError if two of the arrays overlap. Arrays that are not
    ndarrays, or empty, are skipped (the step rejects the former with its own message)."""

    cdef Span* spans
    cdef Py_ssize_t n
    cdef tuple names

    def __cinit__(self, arrays, names):
        cdef list arrs = list(arrays)
        self.names = tuple(names)
        self.spans = <Span*>malloc((len(arrs) + 1) * sizeof(Span))
        if self.spans == NULL:
            raise MemoryError()
        self.n = 0
        cdef cnp.ndarray a
        cdef Py_ssize_t i, nbytes
        for i in range(len(arrs)):
            if not cnp.PyArray_Check(arrs[i]):
                continue
            a = <cnp.ndarray>arrs[i]
            nbytes = cnp.PyArray_NBYTES(a)
            if nbytes == 0 or not cnp.PyArray_IS_C_CONTIGUOUS(a):
                continue
            self.spans[self.n].lo = <const char*>cnp.PyArray_DATA(a)
            self.spans[self.n].hi = <const char*>cnp.PyArray_DATA(a) + nbytes
            self.spans[self.n].name, self.spans[self.n].k, self.spans[self.n].write = i, -1, True
            self.n += 1
        i = _sort_disjoint(self.spans, self.n)
        if i:
            raise _overlap_error(_name(self.names, &self.spans[i - 1]), _name(self.names, &self.spans[i]))

    def __dealloc__(self):
        free(self.spans)

    def __len__(self):
        return self.n

    def find(self, a):
        """The name of an array here that shares memory with the C-contiguous ndarray ``a``, or None."""
        return self.overlapping(a)

    cdef object overlapping(self, cnp.ndarray a):
        """The name of an array here that shares memory with ``a`` (C-contiguous), or None."""
        cdef const char* lo = <const char*>cnp.PyArray_DATA(a)
        cdef Py_ssize_t j = _find(self.spans, self.n, lo, lo + cnp.PyArray_NBYTES(a))
        return None if j < 0 or cnp.PyArray_NBYTES(a) == 0 else _name(self.names, &self.spans[j])


cdef bint _same_shape(cnp.ndarray a, cnp.ndarray b) noexcept:
    cdef int ndim = cnp.PyArray_NDIM(a)
    if ndim != cnp.PyArray_NDIM(b):
        return False
    # 0-d arrays may have no dims at all (NULL): memcmp must not see it, even for 0 bytes
    return ndim == 0 or memcmp(<void*>cnp.PyArray_DIMS(a), <void*>cnp.PyArray_DIMS(b),
                               ndim * sizeof(cnp.npy_intp)) == 0


def same_params(list groups, tuple lists, tuple params):
    """Whether ``groups`` (param_groups) still hold exactly the params a step's plan was built for:
    the same params lists (``lists``, one per group) holding the same arrays (``params``, flat)."""
    cdef Py_ssize_t g, k, i = 0, n = len(params)
    if len(groups) != len(lists):
        return False
    for g in range(len(groups)):
        group = groups[g]
        if type(group) is not dict:
            return False
        values = (<dict>group).get("params")
        if values is not lists[g] or type(values) is not list:
            return False
        if i + len(<list>values) > n:
            return False
        for k in range(len(<list>values)):
            if (<list>values)[k] is not params[i]:
                return False
            i += 1
    return i == n


def check_grads(grads, tuple params, Intervals written, tuple previous=None):
    """A step's gradients against its params (flat, in order) and the memory it writes: returns them as
    a list (NumPy scalars, which arithmetic on 0-d arrays returns, become 0-d arrays). Each gradient is
    None (skip the parameter) or an ndarray of its parameter's dtype and shape, C-contiguous, sharing no
    memory with what the step writes; each param with a gradient is checked again (it may have been made
    read-only). Raises before anything is updated: TypeError for a non-array or another dtype,
    ValueError for the count, shape, layout or overlap. ``previous``: gradients already checked against
    ``written`` (the same array object at the same position is not searched again: an array's memory
    never moves)."""
    if isinstance(grads, np.ndarray):
        raise TypeError("grads must be a list with one array (or None) per parameter, got one ndarray")
    if type(grads) is not list:
        try:
            grads = list(grads)
        except TypeError:
            raise TypeError("grads must be a list with one array (or None) per parameter, "
                            f"got {type(grads).__name__}") from None
    cdef Py_ssize_t n = len(params), i
    if previous is not None and len(previous) != n:
        previous = None
    if len(<list>grads) != n:
        raise ValueError(f"expected {n} gradients (one per parameter, None to skip), got {len(<list>grads)}")
    cdef bint copied = False
    cdef cnp.ndarray g, p
    for i in range(n):
        obj = (<list>grads)[i]
        if obj is None:
            continue
        if not cnp.PyArray_Check(obj):
            if not isinstance(obj, np.generic):
                raise TypeError(f"grads[{i}] must be a numpy.ndarray or None, got {type(obj).__name__}")
            if not copied:
                grads, copied = list(grads), True
            obj = (<list>grads)[i] = np.asarray(obj)
        g, p = <cnp.ndarray>obj, <cnp.ndarray>params[i]
        if cnp.PyArray_TYPE(g) != cnp.PyArray_TYPE(p) or not cnp.PyArray_ISNOTSWAPPED(g):
            raise TypeError(f"grads[{i}] has dtype {g.dtype}, expected {p.dtype} (the dtype of params[{i}])")
        if not _same_shape(g, p):
            raise ValueError(f"grads[{i}] has shape {(<object>g).shape}, expected {(<object>p).shape} "
                             f"(the shape of params[{i}])")
        if not cnp.PyArray_IS_C_CONTIGUOUS(g):
            raise ValueError(f"grads[{i}] must be C-contiguous (np.ascontiguousarray makes it so)")
        if not cnp.PyArray_ISALIGNED(g):  # a view at an odd byte offset: ascontiguousarray returns it as is
            raise ValueError(f"grads[{i}] is not aligned to its dtype's size (a view at an odd byte offset); "
                             "pass an aligned copy: g.copy() or np.require(g, requirements='CA')")
        if not cnp.PyArray_ISWRITEABLE(p):
            raise ValueError(f"params[{i}] is read-only; the optimizer updates parameters in place")
        if not cnp.PyArray_IS_C_CONTIGUOUS(p):
            raise ValueError(f"params[{i}] must be C-contiguous (the optimizer updates it in place, "
                             "so a contiguous copy would not train your array)")
        if previous is not None and (<PyObject*>obj) == (<PyObject*>previous[i]):
            continue
        other = written.overlapping(g)
        if other is not None:
            raise _overlap_error(other, f"grads[{i}]")
    return grads


cdef inline object _freeze(object value):
    """A hyperparameter by value: NumPy scalars, 0-d arrays and 1-element torch tensors become Python
    scalars, lists and tuples tuples of frozen values; anything else is kept as it is (and checked by the
    optimizer)."""
    cdef type t = type(value)
    if t is float or t is int or t is bool or value is None or t is str:
        return value
    if t is tuple or t is list:
        return tuple([_freeze(v) for v in value])
    if isinstance(value, np.ndarray):
        if (<cnp.ndarray>value).ndim == 0 and value.dtype.kind in "biuf":
            return value.item()
        return ("ndarray", value.shape, tuple(value.ravel().tolist()))  # invalid: compared, then rejected
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return value.item()
    if type(value).__module__.startswith("torch") and hasattr(value, "numel"):  # torch's lr may be a tensor
        if value.numel() == 1 and not value.is_complex():
            return value.item()
        return ("tensor", tuple(value.shape))  # invalid: compared, then rejected
    return value


def snapshot(dict group, tuple keys):
    """The values of ``keys`` in ``group``, frozen (see ``_freeze``): equal snapshots mean equal
    hyperparameters, even after in-place edits of a list or an array. ValueError names a missing key."""
    cdef Py_ssize_t i, n = len(keys)
    cdef tuple out = PyTuple_New(n)
    cdef PyObject* item
    for i in range(n):
        item = PyDict_GetItem(group, keys[i])
        if item == NULL:
            raise ValueError(f"the parameter group has no {keys[i]!r} entry (every group needs its "
                             "hyperparameters; add_param_group fills them from the defaults)")
        value = _freeze(<object>item)
        Py_INCREF(value)
        PyTuple_SET_ITEM(out, i, value)
    return out


# -- fastopt.torch's per-step fast path ----------------------------------------------------------------

cdef bint _same_strides(object a, tuple b, tuple shape):
    """Strides that address a tensor of ``shape`` alike (those of size-1 dims may differ)."""
    if a == b:
        return True
    if type(a) is not tuple or len(<tuple>a) != len(b):
        return False
    for i in range(len(b)):
        if shape[i] != 1 and (<tuple>a)[i] != b[i]:
            return False
    return True


def tensor_grads(tuple stepped, tuple meta, tuple idle, object state, tuple held, Intervals written,
                 object strided):
    """The gradients of fastopt.torch's ``stepped`` params (torch tensors, duck-typed: torch is not
    imported here) as flat NumPy views over their memory, if the params, gradients and state are as the
    step's plan saw them; None otherwise (the caller rebuilds the plan, whose checks say what is wrong).

    As the plan saw them: each stepped param at the same address (``meta[k]``: its data_ptr, dtype,
    shape, strides, NumPy type number and size) with a gradient that is a strided CPU tensor of the
    same dtype, shape and strides (so element i of the views is element i of the param) sharing no
    memory with what the step writes (``written``); each ``idle`` param without a gradient; each stepped
    param's ``state`` entry holding the same tensors at the same addresses (``held[k]``: key, tensor,
    data_ptr, ...). Addresses are compared because ``share_memory_()`` and ``.data =`` move a tensor's
    memory without changing the tensor object."""
    cdef Py_ssize_t k, j, n = len(stepped)
    cdef tuple m, h
    cdef cnp.npy_intp size
    cdef list out = [None] * n
    cdef cnp.ndarray arr
    for k in range(len(idle)):
        if idle[k].grad is not None:
            return None
    for k in range(n):
        p = stepped[k]
        m = <tuple>meta[k]
        g = p.grad
        if g is None or p.data_ptr() != m[0]:
            return None
        if not g.is_cpu or g.layout is not strided or g.dtype is not m[1] or g.shape != m[2]:
            return None
        if not _same_strides(g.stride(), <tuple>m[3], <tuple>m[2]):
            return None
        size = m[5]
        arr = cnp.PyArray_SimpleNewFromData(1, &size, m[4], <void*><size_t>g.data_ptr())
        cnp.set_array_base(arr, g)
        if size and written.overlapping(arr) is not None:
            return None
        out[k] = arr
    for k in range(n):
        h = <tuple>held[k]
        if not h:  # a rule without state for this param (SGD without momentum)
            continue
        entry = state.get(stepped[k])
        if type(entry) is not dict:
            return None
        for j in range(0, len(h), 3):
            tensor = h[j + 1]
            if (<dict>entry).get(h[j]) is not tensor or tensor.data_ptr() != h[j + 2]:
                return None
    return out
