"""Kernels of the training toolkit, over lists of arrays:

- ``grad_norm(grads, norm_type, n_threads)``: ``(norm, finite)`` of a list of gradients in one read pass,
  what gradient clipping (``fastopt.clip_grad_norm_``, an optimizer's ``max_grad_norm``) and
  non-finite skipping need;
- ``ema_update(shadows, params, weight, n_threads)``: ``shadow = lerp(shadow, param, weight)`` for every
  pair in one pass, as torch's ``lerp_`` (``fastopt.EMA``).

Reference twin: ``fastopt/reference/tools.py``; every line that computes a symbol carries the same tag.

Deterministic for any thread count: the gradients are laid end to end and cut at every multiple of
BLOCK (4096) elements; the runtime's chunks are whole blocks, so each piece (a tensor's part of a block)
is summed by one thread, in double over 32 lanes (lane j takes elements j, j+32, ...; the lanes are
then combined in a fixed tree); the pieces are combined in order. ``finite`` comes from the same pass:
NaN and inf propagate into the sum (a float64 sum that overflows from finite elements is checked again,
element by element).

    p = 2:  sqrt(sum g^2)    p = 1:  sum |g|    p = inf:  max |g|    other p > 0:  (sum |g|^p)^(1/p)
"""
cimport numpy as cnp
from libc.math cimport fabs, pow, sqrt

cdef extern from *:
    """
    /* One piece of a norm: 32 double lanes, lane j taking elements j, j+32, j+64, ... in order (term:
       x*x or |x|; sums, or NaN-propagating maxima for p = inf). Then lanes j, j+8, j+16, j+24 are
       combined as (a + b) + (c + d), and the 8 results pairwise: ((u0+u1)+(u2+u3)) + ((u4+u5)+(u6+u7)).
       With GCC/Clang vector types the lanes are four 8-double vectors, independent chains (4 zmm, 8 ymm
       or 16 xmm registers: the same per-lane operations on every ISA); elsewhere, one lane at a time.
       *out: the piece's value. */
    #include <math.h>
    #include <string.h>
    #define FO_MAXNAN_S(a, b) ((((a) >= (b)) | ((a) != (a))) ? (a) : (b))
    #define FO_ADD_S(a, b) ((a) + (b))
    #define FO_SQ_S(x) ((x) * (x))
    #define FO_ABS_S(x) fabs(x)
    #if (defined(__GNUC__) || defined(__clang__)) && !defined(FASTOPT_NO_VECTOR_TYPES)
    typedef double fo_v8d __attribute__((vector_size(64)));
    typedef long long fo_v8l __attribute__((vector_size(64)));
    typedef float fo_v8f __attribute__((vector_size(32)));
    static inline fo_v8d fo_load_f(const float* g) { fo_v8f x; memcpy(&x, g, sizeof x); return __builtin_convertvector(x, fo_v8d); }
    static inline fo_v8d fo_load_d(const double* g) { fo_v8d x; memcpy(&x, g, sizeof x); return x; }
    static inline fo_v8d fo_abs_v(fo_v8d x) {
        const long long m = 0x7fffffffffffffffLL;
        return (fo_v8d)((fo_v8l)x & (fo_v8l){m, m, m, m, m, m, m, m});
    }
    static inline fo_v8d fo_sq_v(fo_v8d x) { return x * x; }
    static inline fo_v8d fo_add_v(fo_v8d a, fo_v8d b) { return a + b; }
    static inline fo_v8d fo_maxnan_v(fo_v8d a, fo_v8d b) {
        fo_v8l m = (a >= b) | (a != a);
        return (fo_v8d)(((fo_v8l)a & m) | ((fo_v8l)b & ~m));
    }
    /* One read stream runs at about half the memory bandwidth unless it is prefetched far ahead:
       16 KiB ahead, every cache line of the 32 elements (measured: 1e7 float32 from memory, 2.2 ms
       without, 0.9 ms with; prefetches never fault, past the end included). */
    #define FO_PREFETCH(p) do { const char* fo_c = (const char*)(p) + 16384; \
        __builtin_prefetch(fo_c); __builtin_prefetch(fo_c + 64); \
        if (sizeof(*(p)) == 8) { __builtin_prefetch(fo_c + 128); __builtin_prefetch(fo_c + 192); } } while (0)
    #define FO_VECTOR_LOOP(LOAD, TERM, COMBINE, TERM_S, COMBINE_S) \
        fo_v8d a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, x0, x1, x2, x3; \
        for (i = 0; i < full; i += 32) { \
            FO_PREFETCH(g + i); \
            x0 = LOAD(g + i); x1 = LOAD(g + i + 8); x2 = LOAD(g + i + 16); x3 = LOAD(g + i + 24); \
            a0 = COMBINE(a0, TERM(x0)); a1 = COMBINE(a1, TERM(x1)); \
            a2 = COMBINE(a2, TERM(x2)); a3 = COMBINE(a3, TERM(x3)); \
        } \
        memcpy(lanes, &a0, 64); memcpy(lanes + 8, &a1, 64); memcpy(lanes + 16, &a2, 64); memcpy(lanes + 24, &a3, 64);
    #else
    #define FO_VECTOR_LOOP(LOAD, TERM, COMBINE, TERM_S, COMBINE_S) \
        for (j = 0; j < 32; j++) lanes[j] = 0.0; \
        for (i = 0; i < full; i += 32) for (j = 0; j < 32; j++) { \
            x = (double)g[i + j]; lanes[j] = COMBINE_S(lanes[j], TERM_S(x)); }
    #endif
    #define FO_PIECE(NAME, T, LOAD, TERM_V, TERM_S, COMBINE_V, COMBINE_S) \
    static void NAME(const T* g, Py_ssize_t n, double* out) { \
        double lanes[32], u[8], x; \
        Py_ssize_t i, full = n / 32 * 32; int j; \
        FO_VECTOR_LOOP(LOAD, TERM_V, COMBINE_V, TERM_S, COMBINE_S) \
        for (j = 0; j < n - full; j++) { \
            x = (double)g[full + j]; lanes[j] = COMBINE_S(lanes[j], TERM_S(x)); } \
        for (j = 0; j < 8; j++) \
            u[j] = COMBINE_S(COMBINE_S(lanes[j], lanes[j + 8]), COMBINE_S(lanes[j + 16], lanes[j + 24])); \
        out[0] = COMBINE_S(COMBINE_S(COMBINE_S(u[0], u[1]), COMBINE_S(u[2], u[3])), \
                           COMBINE_S(COMBINE_S(u[4], u[5]), COMBINE_S(u[6], u[7]))); \
    }
    FO_PIECE(fo_piece_sq_f, float, fo_load_f, fo_sq_v, FO_SQ_S, fo_add_v, FO_ADD_S)
    FO_PIECE(fo_piece_sq_d, double, fo_load_d, fo_sq_v, FO_SQ_S, fo_add_v, FO_ADD_S)
    FO_PIECE(fo_piece_abs_f, float, fo_load_f, fo_abs_v, FO_ABS_S, fo_add_v, FO_ADD_S)
    FO_PIECE(fo_piece_abs_d, double, fo_load_d, fo_abs_v, FO_ABS_S, fo_add_v, FO_ADD_S)
    FO_PIECE(fo_piece_max_f, float, fo_load_f, fo_abs_v, FO_ABS_S, fo_maxnan_v, FO_MAXNAN_S)
    FO_PIECE(fo_piece_max_d, double, fo_load_d, fo_abs_v, FO_ABS_S, fo_maxnan_v, FO_MAXNAN_S)
    """
    void fo_piece_sq_f(const float* g, Py_ssize_t n, double* out) noexcept nogil
    void fo_piece_sq_d(const double* g, Py_ssize_t n, double* out) noexcept nogil
    void fo_piece_abs_f(const float* g, Py_ssize_t n, double* out) noexcept nogil
    void fo_piece_abs_d(const double* g, Py_ssize_t n, double* out) noexcept nogil
    void fo_piece_max_f(const float* g, Py_ssize_t n, double* out) noexcept nogil
    void fo_piece_max_d(const double* g, Py_ssize_t n, double* out) noexcept nogil

from libc.string cimport memset

from cython cimport floating

from fastopt._kernels._runtime cimport Batch, BLOCK, ItemHead, new_batch, run, WorkHead
from fastopt._kernels._util cimport batch_add, batch_data, build_info, FO_F32, FO_F64, fo_widen, maxnan, work_head

import numpy as np

from fastopt._kernels._runtime import norm_kind

cnp.import_array()
BUILD = build_info()

cdef enum:  # the numbers of _runtime's kinds (its norm_kind checks norm_type, in one place)
    SQUARES = 0   # p = 2
    ABSOLUTE = 1  # p = 1
    MAXIMUM = 2   # p = inf
    POWERS = 3    # other p


ctypedef struct NormWork:
    WorkHead head
    void* p              # unused (ItemHead's layout)
    const void* g
    double grad_scale    # unused
    double* partials     # one value per piece of this tensor
    Py_ssize_t offset    # the tensor's first element in the job
    int format, kind     # the gradient's format (_formats.h)
    double power


cdef void _norm_span(const floating* g, Py_ssize_t lo, Py_ssize_t hi, int kind, double power,
                     double* out) noexcept nogil:
    """One piece, g[lo:hi]: *out = its sum (or max) over 32 lanes."""
    cdef double lanes[32]
    cdef double u[8]
    cdef double x
    cdef Py_ssize_t i, n = hi - lo, full = (hi - lo) // 32 * 32
    cdef int j
    g = g + lo
    if kind != POWERS:  # lane j: term of elements j, j+32, ... (see the C above)      # s
        if floating is float:
            if kind == SQUARES:
                fo_piece_sq_f(g, n, out)
            elif kind == ABSOLUTE:
                fo_piece_abs_f(g, n, out)
            else:
                fo_piece_max_f(g, n, out)
        else:
            if kind == SQUARES:
                fo_piece_sq_d(g, n, out)
            elif kind == ABSOLUTE:
                fo_piece_abs_d(g, n, out)
            else:
                fo_piece_max_d(g, n, out)
        return
    for j in range(32):  # |x|^p: libm's pow, one lane at a time
        lanes[j] = 0.0
    for i in range(n):
        x = g[i]
        lanes[i % 32] = lanes[i % 32] + pow(fabs(x), power)                       # s
    for j in range(8):
        u[j] = (lanes[j] + lanes[j + 8]) + (lanes[j + 16] + lanes[j + 24])
    out[0] = ((u[0] + u[1]) + (u[2] + u[3])) + ((u[4] + u[5]) + (u[6] + u[7]))


cdef void _norm_chunk(void* work, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef NormWork* w = <NormWork*>work
    cdef Py_ssize_t a = lo, b, block, first = w.offset // BLOCK
    cdef float widened[BLOCK]
    while a < hi:  # one piece per block (a chunk is whole blocks: one thread writes each piece)
        block = (w.offset + a) // BLOCK
        b = (block + 1) * BLOCK - w.offset
        if b > hi:
            b = hi
        if w.format == FO_F32:
            _norm_span(<const float*>w.g, a, b, w.kind, w.power, w.partials + (block - first))
        elif w.format == FO_F64:
            _norm_span(<const double*>w.g, a, b, w.kind, w.power, w.partials + (block - first))
        else:  # a 16-bit gradient: its piece widened to float32 (exact), then as float32
            fo_widen(w.format, <const char*>w.g + a * 2, widened, b - a)
            _norm_span(<const float*>widened, 0, b - a, w.kind, w.power, w.partials + (block - first))
        a = b


def grad_norm(grads, norm_type=2.0, n_threads=1):
    """``(norm, finite)`` of all of ``grads`` together (a list of float32/float64 arrays, any shapes and
    dtypes, C-contiguous; None entries are skipped): the p-norm of their concatenation, as
    ``torch.nn.utils.get_total_norm``, accumulated in double; ``finite``: no element is NaN or infinite."""
    cdef int kind
    cdef double power
    kind, power = norm_kind(norm_type)
    if isinstance(grads, np.ndarray) or not isinstance(grads, (list, tuple)):
        raise TypeError(f"grads must be a list of arrays, got {type(grads).__name__}")
    present = [g for g in grads if g is not None]
    cdef Batch b = new_batch(("grads",), (present,), 1, sizeof(NormWork), True)
    cdef tuple G = b.lists[0]
    cdef Py_ssize_t k, n, offset = 0, pieces = 0
    cdef NormWork* w
    cdef int fmt
    starts = []
    for k in range(len(G)):
        arr = G[k]
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"grads[{k}] must be a numpy.ndarray, got {type(arr).__name__}")
        fmt = b.format_of(arr)
        if fmt < 0:
            raise TypeError(f"grads[{k}] has dtype {arr.dtype}, expected float32, float64, bfloat16 or float16")
        n = cnp.PyArray_SIZE(<cnp.ndarray>arr)
        w = <NormWork*>(b.works + b.count * b.size)
        memset(w, 0, b.size)
        w.g = batch_data(b, arr, fmt, n, False, 0, k)
        w.head = work_head(_norm_chunk, NULL)
        w.format, w.kind, w.power, w.offset, w.grad_scale = fmt, kind, power, offset, 1.0
        starts.append(pieces)
        if n:
            pieces += (offset + n - 1) // BLOCK - offset // BLOCK + 1
        b.items[b.count] = w
        b.count += 1
        offset += n
        b.offsets[b.count] = offset
    partials = np.zeros(pieces + 1)
    cdef double* data = <double*>cnp.PyArray_DATA(partials)
    for k in range(b.count):
        (<NormWork*>b.items[k]).partials = data + <Py_ssize_t>starts[k]
    run(b, n_threads)  # (also with no gradients: it checks n_threads)
    cdef double total = 0.0
    for k in range(pieces):  # in order: tensor after tensor, piece after piece
        total = maxnan(total, data[k]) if kind == MAXIMUM else total + data[k]          # s
    if kind == SQUARES:
        total = sqrt(total)                                                             # norm
    elif kind == POWERS:
        total = pow(total, 1.0 / power)                                                 # norm
    return total, _finite(total, kind, G)


def _finite(double total, int kind, tuple grads):
    """No element is NaN or infinite. A finite sum says so (NaN and inf propagate through squares,
    absolute values, powers and maxima); so does a non-finite one, but for a sum that overflowed from
    finite elements, which only float64 squares, sums or powers can (float32 and 16-bit ones cannot reach double's
    range; a maximum cannot overflow): those are checked element by element."""
    if total == total and total != float("inf"):
        return True
    if kind == MAXIMUM or (kind != POWERS and all(cnp.PyArray_TYPE(<cnp.ndarray>g) != cnp.NPY_DOUBLE for g in grads)):
        return False
    return all(bool(np.isfinite(g).all()) for g in grads)


# -- ema ----------------------------------------------------------------------------------------------

ctypedef struct EmaWork:
    WorkHead head
    void* p              # the shadow (written)
    const void* g        # the parameter (read)
    double grad_scale    # unused
    int single
    double weight


cdef void _ema_span(floating* s, const floating* p, Py_ssize_t lo, Py_ssize_t hi,
                    const EmaWork* w) noexcept nogil:
    """torch's lerp_(s, p, weight): s + w*(p - s) for |w| < 0.5, else p - (p - s)*(1 - w)."""
    cdef floating weight = w.weight
    cdef floating rest = 1 - weight
    cdef Py_ssize_t i
    if fabs(<double>weight) < 0.5:  # the weight as rounded to the dtype, as torch's
        for i in range(lo, hi):
            s[i] = s[i] + weight * (p[i] - s[i])        # shadow_t
    else:
        for i in range(lo, hi):
            s[i] = p[i] - (p[i] - s[i]) * rest          # shadow_t


cdef void _ema_chunk(void* work, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef EmaWork* w = <EmaWork*>work
    if w.single:
        _ema_span(<float*>w.p, <const float*>w.g, lo, hi, w)
    else:
        _ema_span(<double*>w.p, <const double*>w.g, lo, hi, w)


EMA_NAMES = ("shadows", "params")


def ema_update(shadows, params, double weight, n_threads=1):
    """``shadow = lerp(shadow, param, weight)`` in place for every pair (lists of C-contiguous arrays
    of one dtype per pair and the same size; the params are only read), as torch's ``lerp_``, in one
    job. Everything is checked before anything is written."""
    cdef Batch b = new_batch(EMA_NAMES, (shadows, params), 2, sizeof(EmaWork), True)
    cdef tuple S = b.lists[0], P = b.lists[1]
    cdef EmaWork* w
    cdef Py_ssize_t k, n
    cdef int single
    for k in range(len(S)):
        if P[k] is None:
            raise TypeError(f"params[{k}] must be a numpy.ndarray, got NoneType")
        w = <EmaWork*>batch_add(b, work_head(_ema_chunk, NULL), S[k], P[k], k, &single, &n)
        w.single, w.weight = single, weight
    b.check_overlap()
    run(b, n_threads)
