"""Kernels of the training toolkit, over lists of arrays:

- ``grad_norm(grads, norm_type, n_threads)``: ``(norm, finite)`` of a list of gradients in one read pass,
  what gradient clipping (``fastopt.clip_grad_norm_``, an optimizer's ``max_grad_norm``) and
  non-finite skipping need;
- ``ema_update(shadows, params, weight, n_threads)``: ``shadow = lerp(shadow, param, weight)`` for every
  pair in one pass, as torch's ``lerp_`` (``fastopt.EMA``).

Reference twin: ``fastopt/reference/tools.py``; every line that computes a symbol carries the same tag.

Deterministic for any thread count: the gradients are laid end to end and cut at every multiple of
BLOCK (4096) elements; the runtime's chunks are whole blocks, so each piece (a tensor's part of a block)
is summed by one thread, in double over 8 lanes (lane j takes elements j, j+8, ...; the lanes are then
added pairwise); the pieces are combined in order. ``finite`` comes from the same pass: the sum of
``g - g``, NaN exactly when some element is NaN or infinite.

    p = 2:  sqrt(sum g^2)    p = 1:  sum |g|    p = inf:  max |g|    other p > 0:  (sum |g|^p)^(1/p)
"""
cimport numpy as cnp
from libc.math cimport fabs, pow, sqrt

cdef extern from *:
    """
    /* The 8 lanes of the p = 2 and p = 1 sums over g[0 .. full) (full a multiple of 8): lane j adds
       elements j, j+8, ... in order, into acc[j] (and g - g into bad[j]). GCC/Clang vector types make
       one 8-double vector of the lanes (1 zmm, 2 ymm or 4 xmm registers: the same per-lane adds on any
       ISA); elsewhere the same lanes one by one. */
    #if defined(__GNUC__) || defined(__clang__)
    typedef double fo_v8d __attribute__((vector_size(64)));
    typedef long long fo_v8l __attribute__((vector_size(64)));
    typedef float fo_v8f __attribute__((vector_size(32)));
    #define FO_LANES(NAME, T, LOAD, TERM) \
    static void NAME(const T* g, Py_ssize_t full, double* acc_out, double* bad_out) { \
        fo_v8d acc, bad, x; Py_ssize_t i; \
        memcpy(&acc, acc_out, sizeof acc); memcpy(&bad, bad_out, sizeof bad); \
        for (i = 0; i < full; i += 8) { LOAD; acc = acc + (TERM); bad = bad + (x - x); } \
        memcpy(acc_out, &acc, sizeof acc); memcpy(bad_out, &bad, sizeof bad); \
    }
    #define FO_LOAD_F fo_v8f xf; memcpy(&xf, g + i, sizeof xf); x = __builtin_convertvector(xf, fo_v8d)
    #define FO_LOAD_D memcpy(&x, g + i, sizeof x)
    #define FO_ABS ((fo_v8d)((fo_v8l)x & (fo_v8l){0x7fffffffffffffffLL, 0x7fffffffffffffffLL, \
        0x7fffffffffffffffLL, 0x7fffffffffffffffLL, 0x7fffffffffffffffLL, 0x7fffffffffffffffLL, \
        0x7fffffffffffffffLL, 0x7fffffffffffffffLL}))
    #else
    #define FO_LANES(NAME, T, LOAD, TERM) \
    static void NAME(const T* g, Py_ssize_t full, double* acc, double* bad) { \
        Py_ssize_t i; int j; double x; \
        for (i = 0; i < full; i += 8) for (j = 0; j < 8; j++) { \
            x = (double)g[i + j]; acc[j] = acc[j] + (TERM); bad[j] = bad[j] + (x - x); } \
    }
    #define FO_LOAD_F
    #define FO_LOAD_D
    #define FO_ABS fabs(x)
    #endif
    #include <string.h>
    FO_LANES(fo_lanes_sq_f, float, FO_LOAD_F, x * x)
    FO_LANES(fo_lanes_sq_d, double, FO_LOAD_D, x * x)
    FO_LANES(fo_lanes_abs_f, float, FO_LOAD_F, FO_ABS)
    FO_LANES(fo_lanes_abs_d, double, FO_LOAD_D, FO_ABS)
    """
    void fo_lanes_sq_f(const float* g, Py_ssize_t full, double* acc, double* bad) noexcept nogil
    void fo_lanes_sq_d(const double* g, Py_ssize_t full, double* acc, double* bad) noexcept nogil
    void fo_lanes_abs_f(const float* g, Py_ssize_t full, double* acc, double* bad) noexcept nogil
    void fo_lanes_abs_d(const double* g, Py_ssize_t full, double* acc, double* bad) noexcept nogil
from libc.string cimport memset

from cython cimport floating

from fastopt._kernels._runtime cimport Batch, BLOCK, ItemHead, new_batch, run, WorkHead
from fastopt._kernels._util cimport batch_add, batch_data, build_info, maxnan, work_head

import numbers

import numpy as np

cnp.import_array()
BUILD = build_info()

cdef enum:
    SQUARES = 0   # p = 2
    ABSOLUTE = 1  # p = 1
    MAXIMUM = 2   # p = inf
    POWERS = 3    # other p


ctypedef struct NormWork:
    WorkHead head
    void* p              # unused (ItemHead's layout)
    const void* g
    double grad_scale    # unused
    double* partials     # (value, nonfinite) per piece of this tensor
    Py_ssize_t offset    # the tensor's first element in the job
    int single, kind
    double power


cdef void _norm_span(const floating* g, Py_ssize_t lo, Py_ssize_t hi, int kind, double power,
                     double* out) noexcept nogil:
    """One piece: out[0] = its sum (or max), out[1] = the sum of g - g."""
    cdef double acc[8]
    cdef double bad[8]
    cdef double x
    cdef Py_ssize_t i, j, n = hi - lo, full = (hi - lo) // 8 * 8
    g = g + lo
    for j in range(8):
        acc[j] = 0.0
        bad[j] = 0.0
    if kind == SQUARES:  # lane j: acc[j] + x * x, bad[j] + (x - x) over elements j, j+8, ...    # s, z
        if floating is float:
            fo_lanes_sq_f(g, full, acc, bad)
        else:
            fo_lanes_sq_d(g, full, acc, bad)
    elif kind == ABSOLUTE:  # lane j: acc[j] + |x|, bad[j] + (x - x)                              # s, z
        if floating is float:
            fo_lanes_abs_f(g, full, acc, bad)
        else:
            fo_lanes_abs_d(g, full, acc, bad)
    elif kind == MAXIMUM:
        for i in range(0, full, 8):
            for j in range(8):
                x = g[i + j]
                acc[j] = maxnan(acc[j], fabs(x))        # s
                bad[j] = bad[j] + (x - x)               # z
    else:
        for i in range(0, full, 8):
            for j in range(8):
                x = g[i + j]
                acc[j] = acc[j] + pow(fabs(x), power)   # s
                bad[j] = bad[j] + (x - x)               # z
    for j in range(n - full):  # the tail, as if padded with zeros
        x = g[full + j]
        if kind == SQUARES:
            acc[j] = acc[j] + x * x                     # s
        elif kind == ABSOLUTE:
            acc[j] = acc[j] + fabs(x)                   # s
        elif kind == MAXIMUM:
            acc[j] = maxnan(acc[j], fabs(x))            # s
        else:
            acc[j] = acc[j] + pow(fabs(x), power)       # s
        bad[j] = bad[j] + (x - x)                       # z
    if kind == MAXIMUM:
        out[0] = maxnan(maxnan(maxnan(acc[0], acc[1]), maxnan(acc[2], acc[3])),
                        maxnan(maxnan(acc[4], acc[5]), maxnan(acc[6], acc[7])))
    else:
        out[0] = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
    out[1] = ((bad[0] + bad[1]) + (bad[2] + bad[3])) + ((bad[4] + bad[5]) + (bad[6] + bad[7]))


cdef void _norm_chunk(void* work, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef NormWork* w = <NormWork*>work
    cdef Py_ssize_t a = lo, b, block, first = w.offset // BLOCK
    while a < hi:  # one piece per block (a chunk is whole blocks: one thread writes each piece)
        block = (w.offset + a) // BLOCK
        b = (block + 1) * BLOCK - w.offset
        if b > hi:
            b = hi
        if w.single:
            _norm_span(<const float*>w.g, a, b, w.kind, w.power, w.partials + 2 * (block - first))
        else:
            _norm_span(<const double*>w.g, a, b, w.kind, w.power, w.partials + 2 * (block - first))
        a = b


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
    cdef int typenum
    starts = []
    for k in range(len(G)):
        arr = G[k]
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"grads[{k}] must be a numpy.ndarray, got {type(arr).__name__}")
        typenum = cnp.PyArray_TYPE(<cnp.ndarray>arr)
        if typenum != cnp.NPY_FLOAT and typenum != cnp.NPY_DOUBLE:
            raise TypeError(f"grads[{k}] has dtype {arr.dtype}, expected float32 or float64")
        n = cnp.PyArray_SIZE(<cnp.ndarray>arr)
        w = <NormWork*>(b.works + b.count * b.size)
        memset(w, 0, b.size)
        w.g = batch_data(b, arr, typenum == cnp.NPY_FLOAT, n, False, 0, k)
        w.head = work_head(_norm_chunk, NULL)
        w.single, w.kind, w.power, w.offset, w.grad_scale = typenum == cnp.NPY_FLOAT, kind, power, offset, 1.0
        starts.append(pieces)
        if n:
            pieces += (offset + n - 1) // BLOCK - offset // BLOCK + 1
        b.items[b.count] = w
        b.count += 1
        offset += n
        b.offsets[b.count] = offset
    partials = np.zeros(2 * pieces + 2)
    cdef double* data = <double*>cnp.PyArray_DATA(partials)
    for k in range(b.count):
        (<NormWork*>b.items[k]).partials = data + 2 * <Py_ssize_t>starts[k]
    if b.count:
        run(b, n_threads)
    cdef double total = 0.0, z = 0.0
    for k in range(pieces):  # in order: tensor after tensor, piece after piece
        total = maxnan(total, data[2 * k]) if kind == MAXIMUM else total + data[2 * k]   # s
        z = z + data[2 * k + 1]                                                          # z
    if kind == SQUARES:
        total = sqrt(total)                                                             # norm
    elif kind == POWERS:
        total = pow(total, 1.0 / power)                                                 # norm
    return total, z == 0.0


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
