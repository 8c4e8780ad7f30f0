"""Fused kernels of the squared-gradient family: ``adagrad``, ``rmsprop`` (centered, momentum) and
``adadelta``, each one pass over param, grad and state with torch.optim's semantics. Each has a
single-tensor entry point (typed memoryviews) and a ``*_group`` one over lists of tensors (a None
gradient skips its tensor); both run the same loop.

Reference twin: ``fastopt/reference/rmsprop.py``; every line that computes a symbol carries the same tag there.

    adagrad:   s = s + g*g;  p = p + (-clr*g) / (sqrt(s) + eps),  clr = lr / (1 + (t-1)*lr_decay)
    rmsprop:   v = a*v + ((1-a)*g)*g;  [ga = ga + (1-a)*(g-ga);  v~ = v - ga*ga]
               d = sqrt(v~) + eps;  b = mu*b + g/d, p = p - lr*b  (momentum)  or  p = p + (-lr*g)/d
    adadelta:  v = rho*v + ((1-rho)*g)*g;  dx = sqrt(u+eps)/sqrt(v+eps)*g;  u = rho*u + ((1-rho)*dx)*dx
               p = p - lr*dx
"""
cimport numpy as cnp

from cython cimport floating

from fastopt._kernels._util cimport (array_data, build_info, bump, check_counter, check_lists,
                                     check_size, effective_grad, execute, execute_one, fsqrt, Items,
                                     items_add, items_alloc, items_free)

cnp.import_array()
BUILD = build_info()


# -- adagrad ------------------------------------------------------------------------------------------

ctypedef struct AdagradWork:
    void* p
    const void* g
    void* step
    void* s
    int single
    double lr, lr_decay, eps, weight_decay
    bint maximize
    double neg_clr  # this tensor's step scalar


cdef void _adagrad_prologue(void* work) noexcept nogil:
    cdef AdagradWork* w = <AdagradWork*>work
    cdef double t = bump(w.step, w.single)                                      # t
    w.neg_clr = -(w.lr / (1.0 + (t - 1.0) * w.lr_decay))                       # clr


cdef void _adagrad_span(floating* p, const floating* g, floating* s, Py_ssize_t lo, Py_ssize_t hi,
                        const AdagradWork* w) noexcept nogil:
    cdef floating sign = -1.0 if w.maximize else 1.0
    cdef floating wd = w.weight_decay, clr = w.neg_clr, eps = w.eps
    cdef bint decay = w.weight_decay != 0.0
    cdef floating gi, si
    cdef Py_ssize_t i
    for i in range(lo, hi):
        gi = effective_grad(g[i], p[i], sign, wd, decay)           # g_t
        si = s[i] + gi * gi                             # s_t
        s[i] = si
        p[i] = p[i] + (clr * gi) / (fsqrt(si) + eps)    # p_t


cdef void _adagrad_chunk(void* work, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef AdagradWork* w = <AdagradWork*>work
    if w.single:
        _adagrad_span(<float*>w.p, <const float*>w.g, <float*>w.s, lo, hi, w)
    else:
        _adagrad_span(<double*>w.p, <const double*>w.g, <double*>w.s, lo, hi, w)


cdef void _adagrad_init(AdagradWork* w, int single, double lr, double lr_decay, double eps,
                        double weight_decay, bint maximize) noexcept:
    w.single, w.lr, w.lr_decay, w.eps, w.weight_decay, w.maximize = single, lr, lr_decay, eps, weight_decay, maximize


def adagrad(floating[::1] param, const floating[::1] grad, floating[::1] step,
            floating[::1] state_sum, *,
            double lr, double lr_decay, double eps, double weight_decay, bint maximize,
            int n_threads=1):
    """One Adagrad step in place, as torch.optim.Adagrad (eps outside the sqrt). Increments ``step``."""
    cdef Py_ssize_t n = param.shape[0]
    cdef AdagradWork w
    check_size(n, grad.shape[0], "grad")
    check_counter(step.shape[0], "step")
    check_size(n, state_sum.shape[0], "state_sum")
    _adagrad_init(&w, floating is float, lr, lr_decay, eps, weight_decay, maximize)
    w.step = &step[0]
    if n:
        w.p, w.g, w.s = &param[0], &grad[0], &state_sum[0]
    execute_one(_adagrad_chunk, _adagrad_prologue, &w, n, n_threads)


def adagrad_group(list params, list grads, list steps, list state_sums, *, double lr, double lr_decay,
                  double eps, double weight_decay, bint maximize, int n_threads=1):
    """``adagrad`` on every tensor of a group in one call. Checks everything before writing."""
    cdef Py_ssize_t count = len(params), k, n
    check_lists(count, (grads, steps, state_sums), ("grads", "steps", "state_sums"))
    cdef Items items
    cdef AdagradWork* w
    cdef int single
    items_alloc(&items, count, sizeof(AdagradWork))
    try:
        for k in range(count):
            if grads[k] is None:
                continue
            w = <AdagradWork*>items_add(&items, params[k], grads[k], k, &single, &n)
            _adagrad_init(w, single, lr, lr_decay, eps, weight_decay, maximize)
            w.step = array_data(steps[k], single, 1, True, "steps", k)
            w.s = array_data(state_sums[k], single, n, True, "state_sums", k)
        execute(_adagrad_chunk, _adagrad_prologue, items.works, items.size, items.offsets, items.count, n_threads)
    finally:
        items_free(&items)


# -- rmsprop ------------------------------------------------------------------------------------------

ctypedef struct RMSpropWork:
    void* p
    const void* g
    void* step
    void* v
    void* buf
    void* ga
    int single
    double lr, alpha, eps, weight_decay, momentum
    bint maximize


cdef void _rmsprop_prologue(void* work) noexcept nogil:
    cdef RMSpropWork* w = <RMSpropWork*>work
    bump(w.step, w.single)                                                      # t


cdef void _rmsprop_span(floating* p, const floating* g, floating* v, floating* buf, floating* ga,
                        Py_ssize_t lo, Py_ssize_t hi, const RMSpropWork* w) noexcept nogil:
    cdef floating sign = -1.0 if w.maximize else 1.0
    cdef floating wd = w.weight_decay, a = w.alpha, one_minus_a = 1.0 - w.alpha, eps = w.eps
    cdef floating mu = w.momentum, lr = w.lr, neg_lr = -w.lr
    cdef bint decay = w.weight_decay != 0.0, centered = ga != NULL, use_buf = buf != NULL
    cdef floating gi, vi, gai, avg, bi
    cdef Py_ssize_t i
    for i in range(lo, hi):
        gi = effective_grad(g[i], p[i], sign, wd, decay)           # g_t
        vi = a * v[i] + (one_minus_a * gi) * gi         # v_t
        v[i] = vi
        if centered:
            gai = ga[i] + one_minus_a * (gi - ga[i])    # ga_t
            ga[i] = gai
            vi = vi - gai * gai                         # v_t~
        avg = fsqrt(vi) + eps                           # avg_t
        if use_buf:
            bi = mu * buf[i] + gi / avg                 # b_t
            buf[i] = bi
            p[i] = p[i] - lr * bi                       # p_t
        else:
            p[i] = p[i] + (neg_lr * gi) / avg           # p_t


cdef void _rmsprop_chunk(void* work, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef RMSpropWork* w = <RMSpropWork*>work
    if w.single:
        _rmsprop_span(<float*>w.p, <const float*>w.g, <float*>w.v, <float*>w.buf, <float*>w.ga,
                      lo, hi, w)
    else:
        _rmsprop_span(<double*>w.p, <const double*>w.g, <double*>w.v, <double*>w.buf, <double*>w.ga,
                      lo, hi, w)


cdef void _rmsprop_init(RMSpropWork* w, int single, double lr, double alpha, double eps,
                        double weight_decay, double momentum, bint maximize) noexcept:
    w.single, w.lr, w.alpha, w.eps = single, lr, alpha, eps
    w.weight_decay, w.momentum, w.maximize = weight_decay, momentum, maximize
    w.buf = NULL
    w.ga = NULL


def rmsprop(floating[::1] param, const floating[::1] grad, floating[::1] step,
            floating[::1] square_avg, floating[::1] momentum_buffer=None,
            floating[::1] grad_avg=None, *,
            double lr, double alpha, double eps, double weight_decay, double momentum,
            bint maximize, int n_threads=1):
    """One RMSprop step in place, as torch.optim.RMSprop: centered when ``grad_avg`` is given;
    ``momentum_buffer`` is needed when momentum > 0. Increments ``step`` (unused by the math)."""
    cdef Py_ssize_t n = param.shape[0]
    cdef RMSpropWork w
    check_size(n, grad.shape[0], "grad")
    check_counter(step.shape[0], "step")
    check_size(n, square_avg.shape[0], "square_avg")
    if momentum > 0.0:
        if momentum_buffer is None:
            raise ValueError("momentum_buffer is required when momentum > 0")
        check_size(n, momentum_buffer.shape[0], "momentum_buffer")
    if grad_avg is not None:
        check_size(n, grad_avg.shape[0], "grad_avg")
    _rmsprop_init(&w, floating is float, lr, alpha, eps, weight_decay, momentum, maximize)
    if n:
        w.p, w.g, w.v = &param[0], &grad[0], &square_avg[0]
        if momentum > 0.0:
            w.buf = &momentum_buffer[0]
        if grad_avg is not None:
            w.ga = &grad_avg[0]
    w.step = &step[0]
    execute_one(_rmsprop_chunk, _rmsprop_prologue, &w, n, n_threads)


def rmsprop_group(list params, list grads, list steps, list square_avgs, list momentum_buffers=None,
                  list grad_avgs=None, *, double lr, double alpha, double eps, double weight_decay,
                  double momentum, bint maximize, int n_threads=1):
    """``rmsprop`` on every tensor of a group in one call (centered when ``grad_avgs`` is given).
    Checks everything before writing."""
    cdef Py_ssize_t count = len(params), k, n
    check_lists(count, (grads, steps, square_avgs, momentum_buffers, grad_avgs),
                ("grads", "steps", "square_avgs", "momentum_buffers", "grad_avgs"))
    if momentum > 0.0 and momentum_buffers is None:
        raise ValueError("momentum_buffers are required when momentum > 0")
    cdef Items items
    cdef RMSpropWork* w
    cdef int single
    items_alloc(&items, count, sizeof(RMSpropWork))
    try:
        for k in range(count):
            if grads[k] is None:
                continue
            w = <RMSpropWork*>items_add(&items, params[k], grads[k], k, &single, &n)
            _rmsprop_init(w, single, lr, alpha, eps, weight_decay, momentum, maximize)
            w.step = array_data(steps[k], single, 1, True, "steps", k)
            w.v = array_data(square_avgs[k], single, n, True, "square_avgs", k)
            if momentum > 0.0:
                w.buf = array_data(momentum_buffers[k], single, n, True, "momentum_buffers", k)
            if grad_avgs is not None:
                w.ga = array_data(grad_avgs[k], single, n, True, "grad_avgs", k)
        execute(_rmsprop_chunk, _rmsprop_prologue, items.works, items.size, items.offsets, items.count, n_threads)
    finally:
        items_free(&items)


# -- adadelta -----------------------------------------------------------------------------------------

ctypedef struct AdadeltaWork:
    void* p
    const void* g
    void* step
    void* v
    void* u
    int single
    double lr, rho, eps, weight_decay
    bint maximize


cdef void _adadelta_prologue(void* work) noexcept nogil:
    cdef AdadeltaWork* w = <AdadeltaWork*>work
    bump(w.step, w.single)                                                      # t


cdef void _adadelta_span(floating* p, const floating* g, floating* v, floating* u, Py_ssize_t lo,
                         Py_ssize_t hi, const AdadeltaWork* w) noexcept nogil:
    cdef floating sign = -1.0 if w.maximize else 1.0
    cdef floating wd = w.weight_decay, r = w.rho, one_minus_r = 1.0 - w.rho, eps = w.eps, lr = w.lr
    cdef bint decay = w.weight_decay != 0.0
    cdef floating gi, vi, dx
    cdef Py_ssize_t i
    for i in range(lo, hi):
        gi = effective_grad(g[i], p[i], sign, wd, decay)           # g_t
        vi = r * v[i] + (one_minus_r * gi) * gi         # v_t
        v[i] = vi
        dx = fsqrt(u[i] + eps) / fsqrt(vi + eps) * gi   # dx_t
        u[i] = r * u[i] + (one_minus_r * dx) * dx       # u_t
        p[i] = p[i] - lr * dx                           # p_t


cdef void _adadelta_chunk(void* work, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef AdadeltaWork* w = <AdadeltaWork*>work
    if w.single:
        _adadelta_span(<float*>w.p, <const float*>w.g, <float*>w.v, <float*>w.u, lo, hi, w)
    else:
        _adadelta_span(<double*>w.p, <const double*>w.g, <double*>w.v, <double*>w.u, lo, hi, w)


cdef void _adadelta_init(AdadeltaWork* w, int single, double lr, double rho, double eps,
                         double weight_decay, bint maximize) noexcept:
    w.single, w.lr, w.rho, w.eps, w.weight_decay, w.maximize = single, lr, rho, eps, weight_decay, maximize


def adadelta(floating[::1] param, const floating[::1] grad, floating[::1] step,
             floating[::1] square_avg, floating[::1] acc_delta, *,
             double lr, double rho, double eps, double weight_decay, bint maximize, int n_threads=1):
    """One Adadelta step in place, as torch.optim.Adadelta (eps inside both square roots).
    Increments ``step`` (unused by the math)."""
    cdef Py_ssize_t n = param.shape[0]
    cdef AdadeltaWork w
    check_size(n, grad.shape[0], "grad")
    check_counter(step.shape[0], "step")
    check_size(n, square_avg.shape[0], "square_avg")
    check_size(n, acc_delta.shape[0], "acc_delta")
    _adadelta_init(&w, floating is float, lr, rho, eps, weight_decay, maximize)
    if n:
        w.p, w.g, w.v, w.u = &param[0], &grad[0], &square_avg[0], &acc_delta[0]
    w.step = &step[0]
    execute_one(_adadelta_chunk, _adadelta_prologue, &w, n, n_threads)


def adadelta_group(list params, list grads, list steps, list square_avgs, list acc_deltas, *,
                   double lr, double rho, double eps, double weight_decay, bint maximize,
                   int n_threads=1):
    """``adadelta`` on every tensor of a group in one call. Checks everything before writing."""
    cdef Py_ssize_t count = len(params), k, n
    check_lists(count, (grads, steps, square_avgs, acc_deltas), ("grads", "steps", "square_avgs", "acc_deltas"))
    cdef Items items
    cdef AdadeltaWork* w
    cdef int single
    items_alloc(&items, count, sizeof(AdadeltaWork))
    try:
        for k in range(count):
            if grads[k] is None:
                continue
            w = <AdadeltaWork*>items_add(&items, params[k], grads[k], k, &single, &n)
            _adadelta_init(w, single, lr, rho, eps, weight_decay, maximize)
            w.step = array_data(steps[k], single, 1, True, "steps", k)
            w.v = array_data(square_avgs[k], single, n, True, "square_avgs", k)
            w.u = array_data(acc_deltas[k], single, n, True, "acc_deltas", k)
        execute(_adadelta_chunk, _adadelta_prologue, items.works, items.size, items.offsets, items.count, n_threads)
    finally:
        items_free(&items)
