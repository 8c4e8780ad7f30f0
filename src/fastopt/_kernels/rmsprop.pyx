"""Fused kernels of the squared-gradient family: ``adagrad``, ``rmsprop`` (centered, momentum) and
``adadelta``, each one pass over param, grad and state with torch.optim's semantics. Each has three
entry points over the same loop: ``*_batch`` checks a list of tensors (a None gradient skips its tensor)
and returns their work items for the runtime's ``run``; ``*_group`` checks and runs one list; the
rule's own name, one tensor.

Reference twin: ``fastopt/reference/rmsprop.py``; every line that computes a symbol carries the same tag there.

    adagrad:   s = s + g*g;  p = p + (-clr*g) / (sqrt(s) + eps),  clr = lr / (1 + (t-1)*lr_decay)
    rmsprop:   v = a*v + ((1-a)*g)*g;  [ga = ga + (1-a)*(g-ga);  v~ = v - ga*ga]
               d = sqrt(v~) + eps;  b = mu*b + g/d, p = p - lr*b  (momentum)  or  p = p + (-lr*g)/d
    adadelta:  v = rho*v + ((1-rho)*g)*g;  dx = sqrt(u+eps)/sqrt(v+eps)*g;  u = rho*u + ((1-rho)*dx)*dx
               p = p - lr*dx
"""
cimport numpy as cnp

from cython cimport floating

from fastopt._kernels._runtime cimport Batch, new_batch, run, WorkHead
from fastopt._kernels._util cimport (batch_add, batch_counter, batch_state, build_info, bump, effective_grad,
                                     fo_round_scalar, fsqrt, load, loop_format, save, store, stream, work_head)
from fastopt._kernels._util cimport fo_bf16, fo_bf16sr, fo_f16, FO_BF16, FO_BF16_SR, FO_F16, FO_F32, FO_F64

cnp.import_array()
BUILD = build_info()


# -- adagrad ------------------------------------------------------------------------------------------

ctypedef struct AdagradWork:
    WorkHead head
    void* p
    const void* g
    double grad_scale  # run()'s gradient scale (a clip coefficient); see _runtime.ItemHead
    void* step
    int step_single  # the step count's own dtype (torch keeps it float32 for float64 params)
    void* s
    int single
    double lr, lr_decay, eps, weight_decay
    bint maximize
    double neg_clr, eps_used, wd_used  # this tensor's step scalars


cdef void _adagrad_prologue(void* work) noexcept nogil:
    cdef AdagradWork* w = <AdagradWork*>work
    cdef double t = bump(w.step, w.step_single)                                      # t
    # a 16-bit param meets clr, eps and weight_decay rounded to its format, as torch's fused Adagrad
    cdef int fmt = w.head.format
    w.neg_clr = -fo_round_scalar(w.lr / (1.0 + (t - 1.0) * w.lr_decay), fmt)   # clr
    w.eps_used, w.wd_used = fo_round_scalar(w.eps, fmt), fo_round_scalar(w.weight_decay, fmt)


cdef void _adagrad_span(store* p, floating math, Py_ssize_t lo, Py_ssize_t hi, const AdagradWork* w) noexcept nogil:
    cdef const store* g = <const store*>w.g
    cdef store* s = <store*>w.s
    cdef floating sign = -w.grad_scale if w.maximize else w.grad_scale
    cdef floating wd = w.wd_used, clr = w.neg_clr, eps = w.eps_used
    cdef bint decay = w.wd_used != 0.0
    cdef floating gi, pi, si
    cdef Py_ssize_t i
    cdef unsigned int k_s = stream(&w.head, &w.s), k_p = stream(&w.head, &w.p)
    for i in range(lo, hi):
        load(&pi, p, i)
        load(&gi, g, i)
        load(&si, s, i)
        gi = effective_grad(gi, pi, sign, wd, decay)    # g_t
        si = si + gi * gi                               # s_t
        save(s, i, si, k_s)
        save(p, i, pi + (clr * gi) / (fsqrt(si) + eps), k_p)  # p_t


cdef void _adagrad_chunk(void* work, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef AdagradWork* w = <AdagradWork*>work
    cdef int fmt = loop_format(&w.head, hi)
    if fmt == FO_F32:
        _adagrad_span(<float*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_F64:
        _adagrad_span(<double*>w.p, <double>0, lo, hi, w)
    elif fmt == FO_BF16:
        _adagrad_span(<fo_bf16*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_F16:
        _adagrad_span(<fo_f16*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_BF16_SR:
        _adagrad_span(<fo_bf16sr*>w.p, <float>0, lo, hi, w)
    else:
        w.head.staged_fn(work, lo, hi)


cdef void _adagrad_init(AdagradWork* w, int single, double lr, double lr_decay, double eps,
                        double weight_decay, bint maximize) noexcept:
    w.single, w.lr, w.lr_decay, w.eps, w.weight_decay, w.maximize = single, lr, lr_decay, eps, weight_decay, maximize


ADAGRAD_NAMES = ("params", "grads", "steps", "state_sums")


def adagrad_batch(params, grads, steps, state_sums, double lr, double lr_decay, double eps,
                  double weight_decay, bint maximize, bint check_overlap=True, bint indexed=True):
    """The checked work items of an ``adagrad_group`` call, for ``run``."""
    cdef Batch b = new_batch(ADAGRAD_NAMES, (params, grads, steps, state_sums), 4, sizeof(AdagradWork), indexed)
    cdef tuple P = b.lists[0], G = b.lists[1], S = b.lists[2], SUM = b.lists[3]
    cdef AdagradWork* w
    cdef Py_ssize_t k, n
    cdef int single
    for k in range(len(P)):
        if G[k] is None:
            continue
        w = <AdagradWork*>batch_add(b, work_head(_adagrad_chunk, _adagrad_prologue), P[k], G[k], k, &single, &n)
        _adagrad_init(w, single, lr, lr_decay, eps, weight_decay, maximize)
        w.step = batch_counter(b, S[k], single, &w.step_single, 2, k)
        batch_state(b, <void**>&w.s, SUM[k], n, 3, k)
    if check_overlap:
        b.check_overlap()
    return b


def adagrad(param, grad, step, state_sum, *, double lr, double lr_decay, double eps, double weight_decay,
            bint maximize, n_threads=1):
    """One Adagrad step in place, as torch.optim.Adagrad (eps outside the sqrt). Increments ``step``."""
    run(adagrad_batch([param], [grad], [step], [state_sum], lr=lr, lr_decay=lr_decay, eps=eps,
                      weight_decay=weight_decay, maximize=maximize, indexed=False), n_threads)


def adagrad_group(params, grads, steps, state_sums, *, double lr, double lr_decay, double eps,
                  double weight_decay, bint maximize, n_threads=1):
    """``adagrad`` on every tensor of a group in one call. Checks everything before writing."""
    run(adagrad_batch(params, grads, steps, state_sums, lr=lr, lr_decay=lr_decay, eps=eps,
                      weight_decay=weight_decay, maximize=maximize), n_threads)


# -- rmsprop ------------------------------------------------------------------------------------------

ctypedef struct RMSpropWork:
    WorkHead head
    void* p
    const void* g
    double grad_scale  # run()'s gradient scale (a clip coefficient); see _runtime.ItemHead
    void* step
    int step_single  # the step count's own dtype (torch keeps it float32 for float64 params)
    void* v
    void* buf
    void* ga
    int single
    double lr, alpha, eps, weight_decay, momentum
    bint maximize


cdef void _rmsprop_prologue(void* work) noexcept nogil:
    cdef RMSpropWork* w = <RMSpropWork*>work
    bump(w.step, w.step_single)                                                      # t


cdef void _rmsprop_span(store* p, floating math, Py_ssize_t lo, Py_ssize_t hi, const RMSpropWork* w) noexcept nogil:
    cdef const store* g = <const store*>w.g
    cdef store* v = <store*>w.v
    cdef store* buf = <store*>w.buf
    cdef store* ga = <store*>w.ga
    cdef floating sign = -w.grad_scale if w.maximize else w.grad_scale
    cdef floating wd = w.weight_decay, a = w.alpha, one_minus_a = 1.0 - w.alpha, eps = w.eps
    cdef floating mu = w.momentum, lr = w.lr, neg_lr = -w.lr
    cdef bint decay = w.weight_decay != 0.0, centered = ga != NULL, use_buf = buf != NULL
    cdef floating gi, pi, vi, gai, avg, bi
    cdef Py_ssize_t i
    cdef unsigned int k_v = stream(&w.head, &w.v)
    cdef unsigned int k_ga = stream(&w.head, &w.ga)
    cdef unsigned int k_buf = stream(&w.head, &w.buf)
    cdef unsigned int k_p = stream(&w.head, &w.p)
    for i in range(lo, hi):
        load(&pi, p, i)
        load(&gi, g, i)
        load(&vi, v, i)
        gi = effective_grad(gi, pi, sign, wd, decay)    # g_t
        vi = a * vi + (one_minus_a * gi) * gi           # v_t
        save(v, i, vi, k_v)
        if centered:
            load(&gai, ga, i)
            gai = gai + one_minus_a * (gi - gai)        # ga_t
            save(ga, i, gai, k_ga)
            vi = vi - gai * gai                         # v_t~
        avg = fsqrt(vi) + eps                           # avg_t
        if use_buf:
            load(&bi, buf, i)
            bi = mu * bi + gi / avg                     # b_t
            save(buf, i, bi, k_buf)
            save(p, i, pi - lr * bi, k_p)               # p_t
        else:
            save(p, i, pi + (neg_lr * gi) / avg, k_p)   # p_t


cdef void _rmsprop_chunk(void* work, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef RMSpropWork* w = <RMSpropWork*>work
    cdef int fmt = loop_format(&w.head, hi)
    if fmt == FO_F32:
        _rmsprop_span(<float*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_F64:
        _rmsprop_span(<double*>w.p, <double>0, lo, hi, w)
    elif fmt == FO_BF16:
        _rmsprop_span(<fo_bf16*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_F16:
        _rmsprop_span(<fo_f16*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_BF16_SR:
        _rmsprop_span(<fo_bf16sr*>w.p, <float>0, lo, hi, w)
    else:
        w.head.staged_fn(work, lo, hi)


cdef void _rmsprop_init(RMSpropWork* w, int single, double lr, double alpha, double eps,
                        double weight_decay, double momentum, bint maximize) noexcept:
    w.single, w.lr, w.alpha, w.eps = single, lr, alpha, eps
    w.weight_decay, w.momentum, w.maximize = weight_decay, momentum, maximize
    w.buf = NULL
    w.ga = NULL


RMSPROP_NAMES = ("params", "grads", "steps", "square_avgs", "momentum_buffers", "grad_avgs")


def rmsprop_batch(params, grads, steps, square_avgs, momentum_buffers, grad_avgs,
                  double lr, double alpha, double eps, double weight_decay, double momentum,
                  bint maximize, bint check_overlap=True, bint indexed=True):
    """The checked work items of an ``rmsprop_group`` call, for ``run``."""
    cdef Batch b = new_batch(RMSPROP_NAMES, (params, grads, steps, square_avgs, momentum_buffers, grad_avgs), 4,
                         sizeof(RMSpropWork), indexed)
    cdef tuple P = b.lists[0], G = b.lists[1], S = b.lists[2], V = b.lists[3]
    cdef object B = b.lists[4], GA = b.lists[5]
    if momentum > 0.0 and B is None:
        raise TypeError(f"{b.names[4]} {'are' if indexed else 'is'} required when momentum > 0")
    cdef RMSpropWork* w
    cdef Py_ssize_t k, n
    cdef int single
    for k in range(len(P)):
        if G[k] is None:
            continue
        w = <RMSpropWork*>batch_add(b, work_head(_rmsprop_chunk, _rmsprop_prologue), P[k], G[k], k, &single, &n)
        _rmsprop_init(w, single, lr, alpha, eps, weight_decay, momentum, maximize)
        w.step = batch_counter(b, S[k], single, &w.step_single, 2, k)
        batch_state(b, <void**>&w.v, V[k], n, 3, k)
        if momentum > 0.0:
            batch_state(b, <void**>&w.buf, (<tuple>B)[k], n, 4, k)
        if GA is not None:
            batch_state(b, <void**>&w.ga, (<tuple>GA)[k], n, 5, k)
    if check_overlap:
        b.check_overlap()
    return b


def rmsprop(param, grad, step, square_avg, momentum_buffer=None, grad_avg=None, *, double lr,
            double alpha, double eps, double weight_decay, double momentum, bint maximize, n_threads=1):
    """One RMSprop step in place, as torch.optim.RMSprop: centered when ``grad_avg`` is given;
    ``momentum_buffer`` is needed when momentum > 0. Increments ``step`` (unused by the math)."""
    run(rmsprop_batch([param], [grad], [step], [square_avg],
                      None if momentum_buffer is None else [momentum_buffer],
                      None if grad_avg is None else [grad_avg], lr=lr, alpha=alpha, eps=eps,
                      weight_decay=weight_decay, momentum=momentum, maximize=maximize, indexed=False),
        n_threads)


def rmsprop_group(params, grads, steps, square_avgs, momentum_buffers=None, grad_avgs=None, *, double lr,
                  double alpha, double eps, double weight_decay, double momentum, bint maximize,
                  n_threads=1):
    """``rmsprop`` on every tensor of a group in one call (centered when ``grad_avgs`` is given).
    Checks everything before writing."""
    run(rmsprop_batch(params, grads, steps, square_avgs, momentum_buffers, grad_avgs, lr=lr, alpha=alpha,
                      eps=eps, weight_decay=weight_decay, momentum=momentum, maximize=maximize), n_threads)


# -- adadelta -----------------------------------------------------------------------------------------

ctypedef struct AdadeltaWork:
    WorkHead head
    void* p
    const void* g
    double grad_scale  # run()'s gradient scale (a clip coefficient); see _runtime.ItemHead
    void* step
    int step_single  # the step count's own dtype (torch keeps it float32 for float64 params)
    void* v
    void* u
    int single
    double lr, rho, eps, weight_decay
    bint maximize


cdef void _adadelta_prologue(void* work) noexcept nogil:
    cdef AdadeltaWork* w = <AdadeltaWork*>work
    bump(w.step, w.step_single)                                                      # t


cdef void _adadelta_span(store* p, floating math, Py_ssize_t lo, Py_ssize_t hi, const AdadeltaWork* w) noexcept nogil:
    cdef const store* g = <const store*>w.g
    cdef store* v = <store*>w.v
    cdef store* u = <store*>w.u
    cdef floating sign = -w.grad_scale if w.maximize else w.grad_scale
    cdef floating wd = w.weight_decay, r = w.rho, one_minus_r = 1.0 - w.rho, eps = w.eps, lr = w.lr
    cdef bint decay = w.weight_decay != 0.0
    cdef floating gi, pi, vi, ui, dx
    cdef Py_ssize_t i
    cdef unsigned int k_v = stream(&w.head, &w.v), k_u = stream(&w.head, &w.u), k_p = stream(&w.head, &w.p)
    for i in range(lo, hi):
        load(&pi, p, i)
        load(&gi, g, i)
        load(&vi, v, i)
        load(&ui, u, i)
        gi = effective_grad(gi, pi, sign, wd, decay)    # g_t
        vi = r * vi + (one_minus_r * gi) * gi           # v_t
        save(v, i, vi, k_v)
        dx = fsqrt(ui + eps) / fsqrt(vi + eps) * gi     # dx_t
        save(u, i, r * ui + (one_minus_r * dx) * dx, k_u)  # u_t
        save(p, i, pi - lr * dx, k_p)                   # p_t


cdef void _adadelta_chunk(void* work, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef AdadeltaWork* w = <AdadeltaWork*>work
    cdef int fmt = loop_format(&w.head, hi)
    if fmt == FO_F32:
        _adadelta_span(<float*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_F64:
        _adadelta_span(<double*>w.p, <double>0, lo, hi, w)
    elif fmt == FO_BF16:
        _adadelta_span(<fo_bf16*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_F16:
        _adadelta_span(<fo_f16*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_BF16_SR:
        _adadelta_span(<fo_bf16sr*>w.p, <float>0, lo, hi, w)
    else:
        w.head.staged_fn(work, lo, hi)


cdef void _adadelta_init(AdadeltaWork* w, int single, double lr, double rho, double eps,
                         double weight_decay, bint maximize) noexcept:
    w.single, w.lr, w.rho, w.eps, w.weight_decay, w.maximize = single, lr, rho, eps, weight_decay, maximize


ADADELTA_NAMES = ("params", "grads", "steps", "square_avgs", "acc_deltas")


def adadelta_batch(params, grads, steps, square_avgs, acc_deltas, double lr, double rho, double eps,
                   double weight_decay, bint maximize, bint check_overlap=True, bint indexed=True):
    """The checked work items of an ``adadelta_group`` call, for ``run``."""
    cdef Batch b = new_batch(ADADELTA_NAMES, (params, grads, steps, square_avgs, acc_deltas), 5,
                         sizeof(AdadeltaWork), indexed)
    cdef tuple P = b.lists[0], G = b.lists[1], S = b.lists[2], V = b.lists[3], U = b.lists[4]
    cdef AdadeltaWork* w
    cdef Py_ssize_t k, n
    cdef int single
    for k in range(len(P)):
        if G[k] is None:
            continue
        w = <AdadeltaWork*>batch_add(b, work_head(_adadelta_chunk, _adadelta_prologue), P[k], G[k], k, &single, &n)
        _adadelta_init(w, single, lr, rho, eps, weight_decay, maximize)
        w.step = batch_counter(b, S[k], single, &w.step_single, 2, k)
        batch_state(b, <void**>&w.v, V[k], n, 3, k)
        batch_state(b, <void**>&w.u, U[k], n, 4, k)
    if check_overlap:
        b.check_overlap()
    return b


def adadelta(param, grad, step, square_avg, acc_delta, *, double lr, double rho, double eps,
             double weight_decay, bint maximize, n_threads=1):
    """One Adadelta step in place, as torch.optim.Adadelta (eps inside both square roots).
    Increments ``step`` (unused by the math)."""
    run(adadelta_batch([param], [grad], [step], [square_avg], [acc_delta], lr=lr, rho=rho, eps=eps,
                       weight_decay=weight_decay, maximize=maximize, indexed=False), n_threads)


def adadelta_group(params, grads, steps, square_avgs, acc_deltas, *, double lr, double rho, double eps,
                   double weight_decay, bint maximize, n_threads=1):
    """``adadelta`` on every tensor of a group in one call. Checks everything before writing."""
    run(adadelta_batch(params, grads, steps, square_avgs, acc_deltas, lr=lr, rho=rho, eps=eps,
                       weight_decay=weight_decay, maximize=maximize), n_threads)
