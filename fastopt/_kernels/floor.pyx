"""Memory-floor kernels: the memory traffic of an optimizer step with no math (BENCH.md).

``floor(param, grad, s1, s2, s3)`` reads grad and reads and writes param and every given state buffer
once: ``p += g; s += g`` for each state. With 2 state buffers it streams what Adam streams (read p, g,
m, v; write p, m, v). Compiled, dispatched and threaded exactly like the real kernels, so
``time(step) / time(floor)`` is a step's distance to the memory limit. Not an optimizer.
"""
cimport numpy as cnp

from cython cimport floating

from fastopt._kernels._util cimport (array_data, build_info, check_lists, check_size, execute,
                                     execute_one, Items, items_add, items_alloc, items_free)

cnp.import_array()
BUILD = build_info()

ctypedef struct FloorWork:
    void* p
    const void* g
    void* s1
    void* s2
    void* s3
    int single


cdef void _floor_span(floating* p, const floating* g, floating* s1, floating* s2, floating* s3,
                      Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating gi
    if s3 != NULL:
        for i in range(lo, hi):
            gi = g[i]
            p[i] += gi
            s1[i] += gi
            s2[i] += gi
            s3[i] += gi
    elif s2 != NULL:
        for i in range(lo, hi):
            gi = g[i]
            p[i] += gi
            s1[i] += gi
            s2[i] += gi
    elif s1 != NULL:
        for i in range(lo, hi):
            gi = g[i]
            p[i] += gi
            s1[i] += gi
    else:
        for i in range(lo, hi):
            p[i] += g[i]


cdef void _floor_chunk(void* work, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef FloorWork* w = <FloorWork*>work
    if w.single:
        _floor_span(<float*>w.p, <const float*>w.g, <float*>w.s1, <float*>w.s2, <float*>w.s3, lo, hi)
    else:
        _floor_span(<double*>w.p, <const double*>w.g, <double*>w.s1, <double*>w.s2, <double*>w.s3,
                    lo, hi)


def floor(floating[::1] param, const floating[::1] grad, floating[::1] s1=None,
          floating[::1] s2=None, floating[::1] s3=None, *, int n_threads=1):
    """``p += g`` and ``s += g`` for each given state buffer (fill them in order: s1, s2, s3)."""
    cdef Py_ssize_t n = param.shape[0]
    cdef FloorWork w
    check_size(n, grad.shape[0], "grad")
    if (s3 is not None and s2 is None) or (s2 is not None and s1 is None):
        raise ValueError("give the state buffers in order: s1, then s2, then s3")
    w.single, w.s1, w.s2, w.s3 = floating is float, NULL, NULL, NULL
    for buf, name in ((s1, "s1"), (s2, "s2"), (s3, "s3")):
        if buf is not None:
            check_size(n, buf.shape[0], name)
    if n:
        w.p, w.g = &param[0], &grad[0]
        if s1 is not None:
            w.s1 = &s1[0]
        if s2 is not None:
            w.s2 = &s2[0]
        if s3 is not None:
            w.s3 = &s3[0]
    execute_one(_floor_chunk, NULL, &w, n, n_threads)


def floor_group(list params, list grads, list s1=None, list s2=None, list s3=None, *, int n_threads=1):
    """``floor`` on every tensor of a list in one call, like the ``*_group`` kernels."""
    cdef Py_ssize_t count = len(params), k, n
    check_lists(count, (grads, s1, s2, s3), ("grads", "s1", "s2", "s3"))
    if (s3 is not None and s2 is None) or (s2 is not None and s1 is None):
        raise ValueError("give the state buffers in order: s1, then s2, then s3")
    cdef Items items
    cdef FloorWork* w
    cdef int single
    items_alloc(&items, count, sizeof(FloorWork))
    try:
        for k in range(count):
            if grads[k] is None:
                continue
            w = <FloorWork*>items_add(&items, params[k], grads[k], k, &single, &n)
            w.single, w.s1, w.s2, w.s3 = single, NULL, NULL, NULL
            if s1 is not None:
                w.s1 = array_data(s1[k], single, n, True, "s1", k)
            if s2 is not None:
                w.s2 = array_data(s2[k], single, n, True, "s2", k)
            if s3 is not None:
                w.s3 = array_data(s3[k], single, n, True, "s3", k)
        execute(_floor_chunk, NULL, items.works, items.size, items.offsets, items.count, n_threads)
    finally:
        items_free(&items)
