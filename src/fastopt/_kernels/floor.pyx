"""Memory-floor kernels: the memory traffic of an optimizer step with no math (docs/benchmarks.md).

``floor(param, grad, s1, s2, s3)`` reads grad and reads and writes param and every given state buffer
once: ``p += g; s += g`` for each state. With 2 state buffers it streams what Adam streams (read p, g,
m, v; write p, m, v). Compiled, dispatched and threaded exactly like the real kernels, so
``time(step) / time(floor)`` is a step's distance to the memory limit. Not an optimizer.
"""
cimport numpy as cnp

from cython cimport floating

from fastopt._kernels._runtime cimport Batch, new_batch, run, WorkHead
from fastopt._kernels._util cimport batch_add, batch_state, build_info, load, loop_format, save, store, stream, work_head
from fastopt._kernels._util cimport fo_bf16, fo_bf16sr, fo_f16, FO_BF16, FO_BF16_SR, FO_F16, FO_F32, FO_F64

cnp.import_array()
BUILD = build_info()

ctypedef struct FloorWork:
    WorkHead head
    void* p
    const void* g
    double grad_scale  # run()'s gradient scale (a clip coefficient); see _runtime.ItemHead
    void* s1
    void* s2
    void* s3
    int single


cdef void _floor_span(store* p, floating math, Py_ssize_t lo, Py_ssize_t hi, const FloorWork* w) noexcept nogil:
    cdef const store* g = <const store*>w.g
    cdef store* s1 = <store*>w.s1
    cdef store* s2 = <store*>w.s2
    cdef store* s3 = <store*>w.s3
    cdef Py_ssize_t i
    cdef unsigned int k_p = stream(&w.head, &w.p)
    cdef unsigned int k_s1 = stream(&w.head, &w.s1)
    cdef unsigned int k_s2 = stream(&w.head, &w.s2)
    cdef unsigned int k_s3 = stream(&w.head, &w.s3)
    cdef floating gi, x
    for i in range(lo, hi):
        load(&gi, g, i)
        load(&x, p, i)
        save(p, i, x + gi, k_p)
        if s1 != NULL:
            load(&x, s1, i)
            save(s1, i, x + gi, k_s1)
        if s2 != NULL:
            load(&x, s2, i)
            save(s2, i, x + gi, k_s2)
        if s3 != NULL:
            load(&x, s3, i)
            save(s3, i, x + gi, k_s3)


cdef void _floor_chunk(void* work, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef FloorWork* w = <FloorWork*>work
    cdef int fmt = loop_format(&w.head, hi)
    if fmt == FO_F32:
        _floor_span(<float*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_F64:
        _floor_span(<double*>w.p, <double>0, lo, hi, w)
    elif fmt == FO_BF16:
        _floor_span(<fo_bf16*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_F16:
        _floor_span(<fo_f16*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_BF16_SR:
        _floor_span(<fo_bf16sr*>w.p, <float>0, lo, hi, w)
    else:
        w.head.staged_fn(work, lo, hi)


FLOOR_NAMES = ("params", "grads", "s1", "s2", "s3")


def floor_batch(params, grads, s1, s2, s3, bint check_overlap=True, bint indexed=True):
    """The checked work items of a ``floor_group`` call, for ``run``."""
    if (s3 is not None and s2 is None) or (s2 is not None and s1 is None):
        raise ValueError("give the state buffers in order: s1, then s2, then s3")
    cdef Batch b = new_batch(FLOOR_NAMES, (params, grads, s1, s2, s3), 2, sizeof(FloorWork), indexed)
    cdef tuple P = b.lists[0], G = b.lists[1]
    cdef object S1 = b.lists[2], S2 = b.lists[3], S3 = b.lists[4]
    cdef FloorWork* w
    cdef Py_ssize_t k, n
    cdef int single
    for k in range(len(P)):
        if G[k] is None:
            continue
        w = <FloorWork*>batch_add(b, work_head(_floor_chunk, NULL), P[k], G[k], k, &single, &n)
        w.single = single
        if S1 is not None:
            batch_state(b, <void**>&w.s1, (<tuple>S1)[k], n, 2, k)
        if S2 is not None:
            batch_state(b, <void**>&w.s2, (<tuple>S2)[k], n, 3, k)
        if S3 is not None:
            batch_state(b, <void**>&w.s3, (<tuple>S3)[k], n, 4, k)
    if check_overlap:
        b.check_overlap()
    return b


def floor(param, grad, s1=None, s2=None, s3=None, *, n_threads=1):
    """``p += g`` and ``s += g`` for each given state buffer (fill them in order: s1, s2, s3)."""
    run(floor_batch([param], [grad], *[None if s is None else [s] for s in (s1, s2, s3)], indexed=False),
        n_threads)


def floor_group(params, grads, s1=None, s2=None, s3=None, *, n_threads=1):
    """``floor`` on every tensor of a list in one call, like the ``*_group`` kernels."""
    run(floor_batch(params, grads, s1, s2, s3), n_threads)
