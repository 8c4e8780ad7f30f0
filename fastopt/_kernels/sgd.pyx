"""Fused kernels of the SGD family: ``sgd`` (momentum, dampening, Nesterov, torch.optim.SGD) and
``momentum`` (the texts' EMA form). Each has a single-tensor entry point (typed memoryviews) and a
``*_group`` one over lists of tensors (a None gradient skips its tensor); both run the same loop.

Reference twin: ``fastopt/reference/sgd.py``; every line that computes a symbol carries the same tag there.

    sgd:       g = ±g + wd*p;  b = g (first step) or mu*b + (1-dampening)*g;  g = g + mu*b (nesterov) or b
               p = p - lr*g
    momentum:  v = beta*v + (1-beta)*g;  p = p - lr*v
"""
cimport numpy as cnp

from cython cimport floating

from fastopt._kernels._util cimport (array_data, build_info, check_lists, check_size,
                                     effective_grad, execute, execute_one, Items, items_add,
                                     items_alloc, items_free)

cnp.import_array()
BUILD = build_info()


# -- sgd ----------------------------------------------------------------------------------------------

ctypedef struct SGDWork:
    void* p
    const void* g
    void* buf
    int single
    double lr, momentum, dampening, weight_decay
    bint nesterov, maximize, first_step


cdef void _sgd_span(floating* p, const floating* g, floating* buf, Py_ssize_t lo, Py_ssize_t hi,
                    const SGDWork* w) noexcept nogil:
    cdef floating sign = -1.0 if w.maximize else 1.0
    cdef floating wd = w.weight_decay, mu = w.momentum, damp1 = 1.0 - w.dampening, lr = w.lr
    cdef bint decay = w.weight_decay != 0.0, use_buf = buf != NULL
    cdef bint nesterov = w.nesterov, first_step = w.first_step
    cdef floating gi, b
    cdef Py_ssize_t i
    for i in range(lo, hi):
        gi = effective_grad(g[i], p[i], sign, wd, decay)           # g_t
        if use_buf:
            if first_step:
                b = gi                                  # b_t
            else:
                b = mu * buf[i] + damp1 * gi            # b_t
            buf[i] = b
            if nesterov:
                gi = gi + mu * b                        # g_t
            else:
                gi = b                                  # g_t
        p[i] = p[i] - lr * gi                           # p_t


cdef void _sgd_chunk(void* work, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef SGDWork* w = <SGDWork*>work
    if w.single:
        _sgd_span(<float*>w.p, <const float*>w.g, <float*>w.buf, lo, hi, w)
    else:
        _sgd_span(<double*>w.p, <const double*>w.g, <double*>w.buf, lo, hi, w)


cdef void _sgd_init(SGDWork* w, int single, double lr, double momentum, double dampening,
                    double weight_decay, bint nesterov, bint maximize, bint first_step) noexcept:
    w.single, w.lr, w.momentum, w.dampening, w.weight_decay = single, lr, momentum, dampening, weight_decay
    w.nesterov, w.maximize, w.first_step = nesterov, maximize, first_step
    w.buf = NULL


def sgd(floating[::1] param, const floating[::1] grad, floating[::1] momentum_buffer=None, *,
        double lr, double momentum, double dampening, double weight_decay,
        bint nesterov, bint maximize, bint first_step, int n_threads=1):
    """One SGD step in place, as torch.optim.SGD. ``momentum_buffer`` is needed when momentum != 0;
    ``first_step`` copies the gradient into it instead of decaying it (torch's first-step rule)."""
    cdef Py_ssize_t n = param.shape[0]
    cdef SGDWork w
    check_size(n, grad.shape[0], "grad")
    if momentum != 0.0:
        if momentum_buffer is None:
            raise ValueError("momentum_buffer is required when momentum != 0")
        check_size(n, momentum_buffer.shape[0], "momentum_buffer")
    _sgd_init(&w, floating is float, lr, momentum, dampening, weight_decay, nesterov, maximize,
              first_step)
    if n:
        w.p, w.g = &param[0], &grad[0]
        if momentum != 0.0:
            w.buf = &momentum_buffer[0]
    execute_one(_sgd_chunk, NULL, &w, n, n_threads)


def sgd_group(list params, list grads, list momentum_buffers=None, *, double lr, double momentum,
              double dampening, double weight_decay, bint nesterov, bint maximize,
              list first_steps=None, int n_threads=1):
    """``sgd`` on every tensor of a group in one call; ``first_steps[k]`` is tensor k's
    ``first_step`` (None: False for all). Checks everything before writing."""
    cdef Py_ssize_t count = len(params), k, n
    check_lists(count, (grads, momentum_buffers, first_steps), ("grads", "momentum_buffers", "first_steps"))
    if momentum != 0.0 and momentum_buffers is None:
        raise ValueError("momentum_buffers are required when momentum != 0")
    cdef Items items
    cdef SGDWork* w
    cdef int single
    items_alloc(&items, count, sizeof(SGDWork))
    try:
        for k in range(count):
            if grads[k] is None:
                continue
            w = <SGDWork*>items_add(&items, params[k], grads[k], k, &single, &n)
            _sgd_init(w, single, lr, momentum, dampening, weight_decay, nesterov, maximize,
                      first_steps is not None and bool(first_steps[k]))
            if momentum != 0.0:
                w.buf = array_data(momentum_buffers[k], single, n, True, "momentum_buffers", k)
        execute(_sgd_chunk, NULL, items.works, items.size, items.offsets, items.count, n_threads)
    finally:
        items_free(&items)


# -- momentum -----------------------------------------------------------------------------------------

ctypedef struct MomentumWork:
    void* p
    const void* g
    void* v
    int single
    double lr, beta


cdef void _momentum_span(floating* p, const floating* g, floating* v, Py_ssize_t lo, Py_ssize_t hi,
                         const MomentumWork* w) noexcept nogil:
    cdef floating beta = w.beta, one_minus_beta = 1.0 - w.beta, lr = w.lr
    cdef floating vi
    cdef Py_ssize_t i
    for i in range(lo, hi):
        vi = beta * v[i] + one_minus_beta * g[i]        # v_t
        v[i] = vi
        p[i] = p[i] - lr * vi                           # p_t


cdef void _momentum_chunk(void* work, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef MomentumWork* w = <MomentumWork*>work
    if w.single:
        _momentum_span(<float*>w.p, <const float*>w.g, <float*>w.v, lo, hi, w)
    else:
        _momentum_span(<double*>w.p, <const double*>w.g, <double*>w.v, lo, hi, w)


def momentum(floating[::1] param, const floating[::1] grad, floating[::1] momentum_buffer, *,
             double lr, double beta, int n_threads=1):
    """One step of the texts' momentum in place: v = beta*v + (1-beta)*g; p -= lr*v (v starts at 0)."""
    cdef Py_ssize_t n = param.shape[0]
    cdef MomentumWork w
    check_size(n, grad.shape[0], "grad")
    check_size(n, momentum_buffer.shape[0], "momentum_buffer")
    w.single, w.lr, w.beta = floating is float, lr, beta
    if n:
        w.p, w.g, w.v = &param[0], &grad[0], &momentum_buffer[0]
    execute_one(_momentum_chunk, NULL, &w, n, n_threads)


def momentum_group(list params, list grads, list momentum_buffers, *, double lr, double beta,
                   int n_threads=1):
    """``momentum`` on every tensor of a group in one call. Checks everything before writing."""
    cdef Py_ssize_t count = len(params), k, n
    check_lists(count, (grads, momentum_buffers), ("grads", "momentum_buffers"))
    cdef Items items
    cdef MomentumWork* w
    cdef int single
    items_alloc(&items, count, sizeof(MomentumWork))
    try:
        for k in range(count):
            if grads[k] is None:
                continue
            w = <MomentumWork*>items_add(&items, params[k], grads[k], k, &single, &n)
            w.single, w.lr, w.beta = single, lr, beta
            w.v = array_data(momentum_buffers[k], single, n, True, "momentum_buffers", k)
        execute(_momentum_chunk, NULL, items.works, items.size, items.offsets, items.count, n_threads)
    finally:
        items_free(&items)
