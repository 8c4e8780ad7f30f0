"""Fused kernels of the Adam family: ``adam`` (Adam, AdamW, AMSGrad), ``adamax`` and ``nadam``, each
one pass over param, grad and state with torch.optim's semantics.

Reference twin: ``fastopt/reference/adam.py``; every line that computes a symbol carries the same tag there.

Each rule has three entry points over the same loop: ``adam_batch(params, grads, steps, ...)`` checks a
list of tensors (a None gradient skips its tensor) and returns their work items for the runtime's ``run``
(which the optimizers call once for all their groups); ``adam_group`` checks and runs one list;
``adam(param, grad, step, ...)`` one tensor. Scalar state (``step``, ``mu_product``) is a
1-element float32 or float64 buffer that the kernel updates in its own dtype (fastopt's optimizers use the
parameter's dtype; torch's state, which fastopt.torch steps, keeps them float32 for float64 params too); the step's scalars (bias corrections,
step size) are computed once per tensor in double and rounded to the dtype where they meet the arrays,
as torch does.

    adam:    m = m + (1-b1)*(g-m);  v = b2*v + ((1-b2)*g)*g;  [vmax = max(vmax, v)]
             p = p + (-lr/bc1 * m) / (sqrt(v)/sqrt(bc2) + eps)
    adamax:  m = m + (1-b1)*(g-m);  u = max(b2*u, |g|+eps);  p = p + (-lr/bc1 * m) / u
    nadam:   m, v as adam;  d = sqrt(v/bc2) + eps
             p = p + (c_g*g)/d + (c_m*m)/d  with the mu-schedule coefficients c_g, c_m
"""
cimport numpy as cnp
from libc.math cimport pow, sqrt
from libc.string cimport memcpy, memset

from cython cimport floating

from fastopt._kernels._runtime cimport Batch, BLOCK, new_batch, run, WorkHead
from fastopt._kernels._util cimport (batch_add, batch_counter, batch_state, build_info, bump, effective_grad, fabs_,
                                     FO_PREFETCH_R,
                                     div_fixed, fsqrt, load, loop_format, maxnan, save, store, stream, work_head)
from fastopt._kernels._util cimport fo_bf16, fo_bf16sr, fo_f16, FO_BF16, FO_BF16_SR, FO_F16, FO_F32, FO_F64

import numpy as np

cnp.import_array()
BUILD = build_info()


# -- adam ---------------------------------------------------------------------------------------------

ctypedef struct AdamWork:
    WorkHead head
    void* p
    const void* g
    double grad_scale  # run()'s gradient scale (a clip coefficient); see _runtime.ItemHead
    void* step
    int step_single  # the step count's own dtype (torch keeps it float32 for float64 params)
    void* m
    void* v
    void* vmax
    int single
    double lr, beta1, beta2, eps, weight_decay
    bint maximize, decoupled
    double neg_step_size, bc2_sqrt, decay_factor  # this tensor's step scalars


cdef void _adam_prologue(void* work) noexcept nogil:
    cdef AdamWork* w = <AdamWork*>work
    cdef double t = bump(w.step, w.step_single)                                      # t
    w.neg_step_size = -w.lr / (1.0 - pow(w.beta1, t))                           # step_size
    w.bc2_sqrt = sqrt(1.0 - pow(w.beta2, t))                                    # bc2_sqrt
    w.decay_factor = 1.0 - w.lr * w.weight_decay                                # decay


cdef void _adam_span(store* p, floating math, Py_ssize_t lo, Py_ssize_t hi, const AdamWork* w) noexcept nogil:
    cdef const store* g = <const store*>w.g
    cdef store* m = <store*>w.m
    cdef store* v = <store*>w.v
    cdef store* vmax = <store*>w.vmax
    cdef floating sign = -w.grad_scale if w.maximize else w.grad_scale
    cdef floating wd = w.weight_decay, decay = w.decay_factor
    cdef floating one_minus_b1 = 1.0 - w.beta1, b2 = w.beta2, one_minus_b2 = 1.0 - w.beta2
    cdef floating eps = w.eps, step = w.neg_step_size, bc2s = w.bc2_sqrt
    cdef floating inv_bc2s = <floating>1 / bc2s
    cdef bint coupled_decay = w.weight_decay != 0.0 and not w.decoupled
    cdef bint decoupled_decay = w.weight_decay != 0.0 and w.decoupled
    cdef bint amsgrad = vmax != NULL
    cdef floating gi, pi, mi, vi, vmaxi, denom
    cdef Py_ssize_t i
    cdef unsigned int k_m = stream(&w.head, &w.m)
    cdef unsigned int k_v = stream(&w.head, &w.v)
    cdef unsigned int k_vmax = stream(&w.head, &w.vmax)
    cdef unsigned int k_p = stream(&w.head, &w.p)
    for i in range(lo, hi):
        load(&pi, p, i)
        load(&gi, g, i)
        load(&mi, m, i)
        load(&vi, v, i)
        gi = effective_grad(gi, pi, sign, wd, coupled_decay)       # g_t
        if decoupled_decay:
            pi = pi * decay                             # p_t
        mi = mi + one_minus_b1 * (gi - mi)              # m_t
        vi = b2 * vi + (one_minus_b2 * gi) * gi         # v_t
        save(m, i, mi, k_m)
        save(v, i, vi, k_v)
        if amsgrad:
            load(&vmaxi, vmax, i)
            vi = maxnan(vmaxi, vi)                      # vmax_t
            save(vmax, i, vi, k_vmax)
        # sqrt(v) / bc2s: a quotient that is 0, inf, NaN or normal (sqrt(v) >= 2^-75 and 1e-8 <= bc2s <= 1)
        denom = div_fixed(fsqrt(vi), bc2s, inv_bc2s) + eps  # denom_t
        save(p, i, pi + (step * mi) / denom, k_p)       # p_t


cdef void _adam_chunk(void* work, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef AdamWork* w = <AdamWork*>work
    cdef int fmt = loop_format(&w.head, hi)
    if fmt == FO_F32:
        _adam_span(<float*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_F64:
        _adam_span(<double*>w.p, <double>0, lo, hi, w)
    elif fmt == FO_BF16:
        _adam_span(<fo_bf16*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_F16:
        _adam_span(<fo_f16*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_BF16_SR:
        _adam_span(<fo_bf16sr*>w.p, <float>0, lo, hi, w)
    else:
        w.head.staged_fn(work, lo, hi)


cdef void _adam_init(AdamWork* w, int single, double lr, double beta1, double beta2, double eps,
                     double weight_decay, bint maximize, bint decoupled) noexcept:
    w.single, w.lr, w.beta1, w.beta2, w.eps = single, lr, beta1, beta2, eps
    w.weight_decay, w.maximize, w.decoupled = weight_decay, maximize, decoupled
    w.vmax = NULL


ADAM_NAMES = ("params", "grads", "steps", "exp_avgs", "exp_avg_sqs", "max_exp_avg_sqs")


def adam_batch(params, grads, steps, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, double lr,
               double beta1, double beta2, double eps, double weight_decay, bint maximize,
               bint decoupled_weight_decay, bint check_overlap=True, bint indexed=True):
    """The checked work items of an ``adam_group`` call, for ``run``."""
    cdef Batch b = new_batch(ADAM_NAMES, (params, grads, steps, exp_avgs, exp_avg_sqs, max_exp_avg_sqs), 5,
                         sizeof(AdamWork), indexed)
    cdef tuple P = b.lists[0], G = b.lists[1], S = b.lists[2], M = b.lists[3], V = b.lists[4]
    cdef object X = b.lists[5]
    cdef AdamWork* w
    cdef Py_ssize_t k, n
    cdef int single
    for k in range(len(P)):
        if G[k] is None:
            continue
        w = <AdamWork*>batch_add(b, work_head(_adam_chunk, _adam_prologue), P[k], G[k], k, &single, &n)
        _adam_init(w, single, lr, beta1, beta2, eps, weight_decay, maximize, decoupled_weight_decay)
        w.step = batch_counter(b, S[k], single, &w.step_single, 2, k)
        batch_state(b, <void**>&w.m, M[k], n, 3, k)
        batch_state(b, <void**>&w.v, V[k], n, 4, k)
        if X is not None:
            batch_state(b, <void**>&w.vmax, (<tuple>X)[k], n, 5, k)
    if check_overlap:
        b.check_overlap()
    return b


def adam(param, grad, step, exp_avg, exp_avg_sq, max_exp_avg_sq=None, *, double lr, double beta1,
         double beta2, double eps, double weight_decay, bint maximize, bint decoupled_weight_decay,
         n_threads=1):
    """One Adam step in place, as torch.optim.Adam (AMSGrad when ``max_exp_avg_sq`` is given; AdamW
    with ``decoupled_weight_decay``). Increments ``step``."""
    run(adam_batch([param], [grad], [step], [exp_avg], [exp_avg_sq],
                   None if max_exp_avg_sq is None else [max_exp_avg_sq], lr=lr, beta1=beta1, beta2=beta2,
                   eps=eps, weight_decay=weight_decay, maximize=maximize,
                   decoupled_weight_decay=decoupled_weight_decay, indexed=False), n_threads)


def adam_group(params, grads, steps, exp_avgs, exp_avg_sqs, max_exp_avg_sqs=None, *, double lr,
               double beta1, double beta2, double eps, double weight_decay, bint maximize,
               bint decoupled_weight_decay, n_threads=1):
    """``adam`` on every tensor of a group in one call (lists aligned with ``params``; a None
    gradient skips its tensor, whose step is not counted). Checks everything before writing."""
    run(adam_batch(params, grads, steps, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, lr=lr, beta1=beta1,
                   beta2=beta2, eps=eps, weight_decay=weight_decay, maximize=maximize,
                   decoupled_weight_decay=decoupled_weight_decay), n_threads)


# -- adamax -------------------------------------------------------------------------------------------

ctypedef struct AdamaxWork:
    WorkHead head
    void* p
    const void* g
    double grad_scale  # run()'s gradient scale (a clip coefficient); see _runtime.ItemHead
    void* step
    int step_single  # the step count's own dtype (torch keeps it float32 for float64 params)
    void* m
    void* u
    int single
    double lr, beta1, beta2, eps, weight_decay
    bint maximize
    double neg_step_size  # this tensor's step scalar


cdef void _adamax_prologue(void* work) noexcept nogil:
    cdef AdamaxWork* w = <AdamaxWork*>work
    cdef double t = bump(w.step, w.step_single)                                      # t
    w.neg_step_size = -w.lr / (1.0 - pow(w.beta1, t))                           # step_size


cdef void _adamax_span(store* p, floating math, Py_ssize_t lo, Py_ssize_t hi, const AdamaxWork* w) noexcept nogil:
    cdef const store* g = <const store*>w.g
    cdef store* m = <store*>w.m
    cdef store* u = <store*>w.u
    cdef floating sign = -w.grad_scale if w.maximize else w.grad_scale
    cdef floating wd = w.weight_decay, one_minus_b1 = 1.0 - w.beta1, b2 = w.beta2, eps = w.eps
    cdef floating step = w.neg_step_size
    cdef bint decay = w.weight_decay != 0.0
    cdef floating gi, pi, mi, ui
    cdef Py_ssize_t i
    cdef unsigned int k_m = stream(&w.head, &w.m), k_u = stream(&w.head, &w.u), k_p = stream(&w.head, &w.p)
    for i in range(lo, hi):
        load(&pi, p, i)
        load(&gi, g, i)
        load(&mi, m, i)
        load(&ui, u, i)
        gi = effective_grad(gi, pi, sign, wd, decay)    # g_t
        mi = mi + one_minus_b1 * (gi - mi)              # m_t
        ui = maxnan(b2 * ui, fabs_(gi) + eps)           # u_t
        save(m, i, mi, k_m)
        save(u, i, ui, k_u)
        save(p, i, pi + (step * mi) / ui, k_p)          # p_t


cdef void _adamax_chunk(void* work, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef AdamaxWork* w = <AdamaxWork*>work
    cdef int fmt = loop_format(&w.head, hi)
    if fmt == FO_F32:
        _adamax_span(<float*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_F64:
        _adamax_span(<double*>w.p, <double>0, lo, hi, w)
    elif fmt == FO_BF16:
        _adamax_span(<fo_bf16*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_F16:
        _adamax_span(<fo_f16*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_BF16_SR:
        _adamax_span(<fo_bf16sr*>w.p, <float>0, lo, hi, w)
    else:
        w.head.staged_fn(work, lo, hi)


cdef void _adamax_init(AdamaxWork* w, int single, double lr, double beta1, double beta2, double eps,
                       double weight_decay, bint maximize) noexcept:
    w.single, w.lr, w.beta1, w.beta2, w.eps = single, lr, beta1, beta2, eps
    w.weight_decay, w.maximize = weight_decay, maximize


ADAMAX_NAMES = ("params", "grads", "steps", "exp_avgs", "exp_infs")


def adamax_batch(params, grads, steps, exp_avgs, exp_infs, double lr, double beta1, double beta2,
                 double eps, double weight_decay, bint maximize, bint check_overlap=True,
                 bint indexed=True):
    """The checked work items of an ``adamax_group`` call, for ``run``."""
    cdef Batch b = new_batch(ADAMAX_NAMES, (params, grads, steps, exp_avgs, exp_infs), 5, sizeof(AdamaxWork),
                         indexed)
    cdef tuple P = b.lists[0], G = b.lists[1], S = b.lists[2], M = b.lists[3], U = b.lists[4]
    cdef AdamaxWork* w
    cdef Py_ssize_t k, n
    cdef int single
    for k in range(len(P)):
        if G[k] is None:
            continue
        w = <AdamaxWork*>batch_add(b, work_head(_adamax_chunk, _adamax_prologue), P[k], G[k], k, &single, &n)
        _adamax_init(w, single, lr, beta1, beta2, eps, weight_decay, maximize)
        w.step = batch_counter(b, S[k], single, &w.step_single, 2, k)
        batch_state(b, <void**>&w.m, M[k], n, 3, k)
        batch_state(b, <void**>&w.u, U[k], n, 4, k)
    if check_overlap:
        b.check_overlap()
    return b


def adamax(param, grad, step, exp_avg, exp_inf, *, double lr, double beta1, double beta2, double eps,
           double weight_decay, bint maximize, n_threads=1):
    """One Adamax step in place, as torch.optim.Adamax (eps inside the max). Increments ``step``."""
    run(adamax_batch([param], [grad], [step], [exp_avg], [exp_inf], lr=lr, beta1=beta1, beta2=beta2,
                     eps=eps, weight_decay=weight_decay, maximize=maximize, indexed=False), n_threads)


def adamax_group(params, grads, steps, exp_avgs, exp_infs, *, double lr, double beta1, double beta2,
                 double eps, double weight_decay, bint maximize, n_threads=1):
    """``adamax`` on every tensor of a group in one call. Checks everything before writing."""
    run(adamax_batch(params, grads, steps, exp_avgs, exp_infs, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                     weight_decay=weight_decay, maximize=maximize), n_threads)


# -- nadam --------------------------------------------------------------------------------------------

ctypedef struct NAdamWork:
    WorkHead head
    void* p
    const void* g
    double grad_scale  # run()'s gradient scale (a clip coefficient); see _runtime.ItemHead
    void* step
    int step_single  # the step count's own dtype (torch keeps it float32 for float64 params)
    void* mu_product
    int mu_single
    void* m
    void* v
    int single
    double lr, beta1, beta2, eps, weight_decay, momentum_decay
    bint maximize, decoupled
    double bc2, coef_grad, coef_avg, decay_factor  # this tensor's step scalars


cdef void _nadam_prologue(void* work) noexcept nogil:
    cdef NAdamWork* w = <NAdamWork*>work
    cdef double t = bump(w.step, w.step_single)                                      # t
    cdef double mu = w.beta1 * (1.0 - 0.5 * pow(0.96, t * w.momentum_decay))    # mu_t
    cdef double mu_next = w.beta1 * (1.0 - 0.5 * pow(0.96, (t + 1.0) * w.momentum_decay))  # mu_next
    cdef double mu_prod
    if w.mu_single:  # the stored product is rounded to its dtype every step, as torch's tensor
        (<float*>w.mu_product)[0] = (<float*>w.mu_product)[0] * <float>mu           # mu_product
        mu_prod = (<float*>w.mu_product)[0]
    else:
        (<double*>w.mu_product)[0] = (<double*>w.mu_product)[0] * mu                # mu_product
        mu_prod = (<double*>w.mu_product)[0]
    w.bc2 = 1.0 - pow(w.beta2, t)                                               # bc2
    w.coef_grad = -w.lr * (1.0 - mu) / (1.0 - mu_prod)                          # coef_grad
    w.coef_avg = (-w.lr * mu_next) / (1.0 - mu_prod * mu_next)                  # coef_avg
    w.decay_factor = 1.0 - w.lr * w.weight_decay                                # decay


cdef void _nadam_span(store* p, floating math, Py_ssize_t lo, Py_ssize_t hi, const NAdamWork* w) noexcept nogil:
    cdef const store* g = <const store*>w.g
    cdef store* m = <store*>w.m
    cdef store* v = <store*>w.v
    cdef floating sign = -w.grad_scale if w.maximize else w.grad_scale
    cdef floating wd = w.weight_decay, decay = w.decay_factor
    cdef floating one_minus_b1 = 1.0 - w.beta1, b2 = w.beta2, one_minus_b2 = 1.0 - w.beta2
    cdef floating eps = w.eps, bc2 = w.bc2, cg = w.coef_grad, cm = w.coef_avg
    cdef bint coupled_decay = w.weight_decay != 0.0 and not w.decoupled
    cdef bint decoupled_decay = w.weight_decay != 0.0 and w.decoupled
    cdef floating gi, pi, mi, vi, denom
    cdef Py_ssize_t i
    cdef unsigned int k_m = stream(&w.head, &w.m), k_v = stream(&w.head, &w.v), k_p = stream(&w.head, &w.p)
    for i in range(lo, hi):
        load(&pi, p, i)
        load(&gi, g, i)
        load(&mi, m, i)
        load(&vi, v, i)
        gi = effective_grad(gi, pi, sign, wd, coupled_decay)       # g_t
        if decoupled_decay:
            pi = pi * decay                             # p_t
        mi = mi + one_minus_b1 * (gi - mi)              # m_t
        vi = b2 * vi + (one_minus_b2 * gi) * gi         # v_t
        save(m, i, mi, k_m)
        save(v, i, vi, k_v)
        denom = fsqrt(vi / bc2) + eps                   # denom_t
        pi = pi + (cg * gi) / denom                     # p_t
        save(p, i, pi + (cm * mi) / denom, k_p)         # p_t


cdef void _nadam_chunk(void* work, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef NAdamWork* w = <NAdamWork*>work
    cdef int fmt = loop_format(&w.head, hi)
    if fmt == FO_F32:
        _nadam_span(<float*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_F64:
        _nadam_span(<double*>w.p, <double>0, lo, hi, w)
    elif fmt == FO_BF16:
        _nadam_span(<fo_bf16*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_F16:
        _nadam_span(<fo_f16*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_BF16_SR:
        _nadam_span(<fo_bf16sr*>w.p, <float>0, lo, hi, w)
    else:
        w.head.staged_fn(work, lo, hi)


cdef void _nadam_init(NAdamWork* w, int single, double lr, double beta1, double beta2, double eps,
                      double weight_decay, double momentum_decay, bint maximize,
                      bint decoupled) noexcept:
    w.single, w.lr, w.beta1, w.beta2, w.eps = single, lr, beta1, beta2, eps
    w.weight_decay, w.momentum_decay, w.maximize, w.decoupled = weight_decay, momentum_decay, maximize, decoupled


NADAM_NAMES = ("params", "grads", "steps", "mu_products", "exp_avgs", "exp_avg_sqs")


def nadam_batch(params, grads, steps, mu_products, exp_avgs, exp_avg_sqs, double lr, double beta1,
                double beta2, double eps, double weight_decay, double momentum_decay, bint maximize,
                bint decoupled_weight_decay, bint check_overlap=True, bint indexed=True):
    """The checked work items of an ``nadam_group`` call, for ``run``."""
    cdef Batch b = new_batch(NADAM_NAMES, (params, grads, steps, mu_products, exp_avgs, exp_avg_sqs), 6,
                         sizeof(NAdamWork), indexed)
    cdef tuple P = b.lists[0], G = b.lists[1], S = b.lists[2], MU = b.lists[3], M = b.lists[4]
    cdef tuple V = b.lists[5]
    cdef NAdamWork* w
    cdef Py_ssize_t k, n
    cdef int single
    for k in range(len(P)):
        if G[k] is None:
            continue
        w = <NAdamWork*>batch_add(b, work_head(_nadam_chunk, _nadam_prologue), P[k], G[k], k, &single, &n)
        _nadam_init(w, single, lr, beta1, beta2, eps, weight_decay, momentum_decay, maximize,
                    decoupled_weight_decay)
        w.step = batch_counter(b, S[k], single, &w.step_single, 2, k)
        w.mu_product = batch_counter(b, MU[k], single, &w.mu_single, 3, k)
        batch_state(b, <void**>&w.m, M[k], n, 4, k)
        batch_state(b, <void**>&w.v, V[k], n, 5, k)
    if check_overlap:
        b.check_overlap()
    return b


def nadam(param, grad, step, mu_product, exp_avg, exp_avg_sq, *, double lr, double beta1, double beta2,
          double eps, double weight_decay, double momentum_decay, bint maximize,
          bint decoupled_weight_decay, n_threads=1):
    """One NAdam step in place, as torch.optim.NAdam. Increments ``step`` and multiplies
    ``mu_product`` by this step's momentum coefficient (rounded to its dtype, as torch's tensor)."""
    run(nadam_batch([param], [grad], [step], [mu_product], [exp_avg], [exp_avg_sq], lr=lr, beta1=beta1,
                    beta2=beta2, eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay,
                    maximize=maximize, decoupled_weight_decay=decoupled_weight_decay, indexed=False),
        n_threads)


def nadam_group(params, grads, steps, mu_products, exp_avgs, exp_avg_sqs, *, double lr, double beta1,
                double beta2, double eps, double weight_decay, double momentum_decay, bint maximize,
                bint decoupled_weight_decay, n_threads=1):
    """``nadam`` on every tensor of a group in one call. Checks everything before writing."""
    run(nadam_batch(params, grads, steps, mu_products, exp_avgs, exp_avg_sqs, lr=lr, beta1=beta1,
                    beta2=beta2, eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay,
                    maximize=maximize, decoupled_weight_decay=decoupled_weight_decay), n_threads)


# -- radam --------------------------------------------------------------------------------------------

ctypedef struct RAdamWork:
    WorkHead head
    void* p
    const void* g
    double grad_scale  # run()'s gradient scale (a clip coefficient); see _runtime.ItemHead
    void* step
    int step_single  # the step count's own dtype (torch keeps it float32 for float64 params)
    void* m
    void* v
    int single
    double lr, beta1, beta2, eps, weight_decay
    bint maximize, decoupled
    double bc1, bc2_sqrt, rect, decay_factor  # this tensor's step scalars
    bint rectified


cdef void _radam_prologue(void* work) noexcept nogil:
    cdef RAdamWork* w = <RAdamWork*>work
    cdef double t = bump(w.step, w.step_single)                                      # t
    cdef double beta2_t = pow(w.beta2, t)
    cdef double bc2 = 1.0 - beta2_t                                             # bc2
    cdef double rho_inf = 2.0 / (1.0 - w.beta2) - 1.0                           # rho_inf
    cdef double rho_t = rho_inf - ((2.0 * t) * beta2_t) / bc2                   # rho_t
    w.bc1 = 1.0 - pow(w.beta1, t)                                               # bc1
    w.rectified = rho_t > 5.0
    if w.rectified:
        w.rect = pow((((rho_t - 4.0) * (rho_t - 2.0)) * rho_inf)
                     / (((rho_inf - 4.0) * (rho_inf - 2.0)) * rho_t), 0.5)      # rect
        w.bc2_sqrt = pow(bc2, 0.5)                                              # bc2_sqrt
    w.decay_factor = 1.0 - w.lr * w.weight_decay                                # decay


cdef void _radam_span(store* p, floating math, Py_ssize_t lo, Py_ssize_t hi, const RAdamWork* w) noexcept nogil:
    cdef const store* g = <const store*>w.g
    cdef store* m = <store*>w.m
    cdef store* v = <store*>w.v
    cdef floating sign = -w.grad_scale if w.maximize else w.grad_scale
    cdef floating wd = w.weight_decay, decay = w.decay_factor
    cdef floating one_minus_b1 = 1.0 - w.beta1, b2 = w.beta2, one_minus_b2 = 1.0 - w.beta2
    cdef floating eps = w.eps, lr = w.lr, bc1 = w.bc1, bc2s = w.bc2_sqrt, rect = w.rect
    cdef bint coupled_decay = w.weight_decay != 0.0 and not w.decoupled
    cdef bint decoupled_decay = w.weight_decay != 0.0 and w.decoupled
    cdef bint rectified = w.rectified
    cdef floating gi, pi, mi, vi, adaptive, update
    cdef Py_ssize_t i
    cdef unsigned int k_m = stream(&w.head, &w.m), k_v = stream(&w.head, &w.v), k_p = stream(&w.head, &w.p)
    for i in range(lo, hi):
        load(&pi, p, i)
        load(&gi, g, i)
        load(&mi, m, i)
        load(&vi, v, i)
        gi = effective_grad(gi, pi, sign, wd, coupled_decay)       # g_t
        if decoupled_decay:
            pi = pi * decay                             # p_t
        mi = mi + one_minus_b1 * (gi - mi)              # m_t
        vi = b2 * vi + (one_minus_b2 * gi) * gi         # v_t
        save(m, i, mi, k_m)
        save(v, i, vi, k_v)
        update = (mi / bc1) * lr                        # u_t
        if rectified:
            adaptive = (<floating>1 / (fsqrt(vi) + eps)) * bc2s    # a_t
            update = (update * adaptive) * rect         # u_t
        save(p, i, pi - update, k_p)                    # p_t


cdef void _radam_chunk(void* work, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef RAdamWork* w = <RAdamWork*>work
    cdef int fmt = loop_format(&w.head, hi)
    if fmt == FO_F32:
        _radam_span(<float*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_F64:
        _radam_span(<double*>w.p, <double>0, lo, hi, w)
    elif fmt == FO_BF16:
        _radam_span(<fo_bf16*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_F16:
        _radam_span(<fo_f16*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_BF16_SR:
        _radam_span(<fo_bf16sr*>w.p, <float>0, lo, hi, w)
    else:
        w.head.staged_fn(work, lo, hi)


cdef void _radam_init(RAdamWork* w, int single, double lr, double beta1, double beta2, double eps,
                      double weight_decay, bint maximize, bint decoupled) noexcept:
    w.single, w.lr, w.beta1, w.beta2, w.eps = single, lr, beta1, beta2, eps
    w.weight_decay, w.maximize, w.decoupled = weight_decay, maximize, decoupled


RADAM_NAMES = ("params", "grads", "steps", "exp_avgs", "exp_avg_sqs")


def radam_batch(params, grads, steps, exp_avgs, exp_avg_sqs, double lr, double beta1, double beta2,
                double eps, double weight_decay, bint maximize, bint decoupled_weight_decay,
                bint check_overlap=True, bint indexed=True):
    """The checked work items of a ``radam_group`` call, for ``run``."""
    cdef Batch b = new_batch(RADAM_NAMES, (params, grads, steps, exp_avgs, exp_avg_sqs), 5,
                             sizeof(RAdamWork), indexed)
    cdef tuple P = b.lists[0], G = b.lists[1], S = b.lists[2], M = b.lists[3], V = b.lists[4]
    cdef RAdamWork* w
    cdef Py_ssize_t k, n
    cdef int single
    for k in range(len(P)):
        if G[k] is None:
            continue
        w = <RAdamWork*>batch_add(b, work_head(_radam_chunk, _radam_prologue), P[k], G[k], k, &single, &n)
        _radam_init(w, single, lr, beta1, beta2, eps, weight_decay, maximize, decoupled_weight_decay)
        w.step = batch_counter(b, S[k], single, &w.step_single, 2, k)
        batch_state(b, <void**>&w.m, M[k], n, 3, k)
        batch_state(b, <void**>&w.v, V[k], n, 4, k)
    if check_overlap:
        b.check_overlap()
    return b


def radam(param, grad, step, exp_avg, exp_avg_sq, *, double lr, double beta1, double beta2, double eps,
          double weight_decay, bint maximize, bint decoupled_weight_decay, n_threads=1):
    """One RAdam step in place, as torch.optim.RAdam. Increments ``step``."""
    run(radam_batch([param], [grad], [step], [exp_avg], [exp_avg_sq], lr=lr, beta1=beta1, beta2=beta2,
                    eps=eps, weight_decay=weight_decay, maximize=maximize,
                    decoupled_weight_decay=decoupled_weight_decay, indexed=False), n_threads)


def radam_group(params, grads, steps, exp_avgs, exp_avg_sqs, *, double lr, double beta1, double beta2,
                double eps, double weight_decay, bint maximize, bint decoupled_weight_decay, n_threads=1):
    """``radam`` on every tensor of a group in one call. Checks everything before writing."""
    run(radam_batch(params, grads, steps, exp_avgs, exp_avg_sqs, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                    weight_decay=weight_decay, maximize=maximize,
                    decoupled_weight_decay=decoupled_weight_decay), n_threads)


# -- lamb ---------------------------------------------------------------------------------------------
#
# Two passes when the trust ratio is used (weight decay or ``always_adapt``): the first reads p, g, m
# and v, computes the update u and sums p^2 and u^2 (stores nothing); ``_lamb_reduce`` makes the norms
# and the ratio; the second pass computes u again from the same inputs (the same bits) and stores m, v
# and p. Storing m and v in the first pass would save a write stream but not a read one (the second
# needs m and v again), and would make the second pass see rounded (16-bit or quantized) state while
# the norms saw the exact values. Deterministic for any thread count: an item starts at a multiple of
# BLOCK in the job (``align``), its pieces are its BLOCKs, each summed by one thread in LANES double
# lanes (lane j: elements j, j+LANES, ... of the piece, in order), combined in a fixed tree, then the
# pieces in order; the twin sums the same way.

cdef enum:
    LANES = 16       # double lanes of a piece's sums (a row of LANES elements per vector step)
    LAMB_ROWS = 256  # elements of a first-pass sub-block (its p and u kept for the sums, in L1)
    LAMB_AHEAD = 4096  # how far ahead (elements) the read-only first pass prefetches its four streams


ctypedef struct LambWork:
    WorkHead head
    void* p
    const void* g
    double grad_scale  # run()'s gradient scale (a clip coefficient); see _runtime.ItemHead
    void* step
    int step_single
    void* m
    void* v
    int single
    double lr, beta1, beta2, beta3, eps, weight_decay
    bint maximize, bias_correction, trust_clip
    double* partials  # 2 * LANES per BLOCK piece: the lanes of sum p^2, then of sum u^2
    Py_ssize_t pieces
    double inv_bc1, bc2_sqrt, neg_step  # this tensor's step scalars


cdef void _lamb_prologue(void* work) noexcept nogil:
    cdef LambWork* w = <LambWork*>work
    cdef double t = bump(w.step, w.step_single)                                      # t
    if w.bias_correction:
        w.inv_bc1 = 1.0 / (1.0 - pow(w.beta1, t))                               # inv_bc1
        w.bc2_sqrt = sqrt(1.0 - pow(w.beta2, t))                                # bc2_sqrt
    else:
        w.inv_bc1, w.bc2_sqrt = 1.0, 1.0
    w.neg_step = -w.lr                                                          # step
    if w.head.reduce != NULL and w.pieces:  # (an empty tensor has no partials)
        memset(w.partials, 0, w.pieces * 2 * LANES * sizeof(double))


cdef inline double _lanes_total(const double* lanes) noexcept nogil:
    """A piece's sum: lanes j and j+8 added, then the 8 pairwise in a fixed tree."""
    cdef double u[8]
    cdef int j
    for j in range(8):
        u[j] = lanes[j] + lanes[j + 8]
    return ((u[0] + u[1]) + (u[2] + u[3])) + ((u[4] + u[5]) + (u[6] + u[7]))


cdef void _lamb_reduce(void* work) noexcept nogil:
    cdef LambWork* w = <LambWork*>work
    cdef double sp = 0.0, su = 0.0, p_norm, u_norm, ratio
    cdef Py_ssize_t k
    for k in range(w.pieces):  # in order
        sp = sp + _lanes_total(w.partials + 2 * LANES * k)                      # p_norm
        su = su + _lanes_total(w.partials + 2 * LANES * k + LANES)              # u_norm
    p_norm = sqrt(sp)                                                           # p_norm
    u_norm = sqrt(su)                                                           # u_norm
    ratio = p_norm / u_norm if p_norm > 0.0 and u_norm > 0.0 else 1.0           # ratio
    if w.trust_clip and ratio > 1.0:
        ratio = 1.0                                                             # ratio
    w.neg_step = -(w.lr * ratio)                                                # step


cdef extern from *:
    """
    /* A first-pass sub-block's squares added to its piece's lanes (_lamb_span): lane j (< 16) takes
       elements j, j+16, ... of p (lanes[0:16]) and of u (lanes[16:32]), in double, in order. With
       GCC/Clang vector types the 16 lanes are two 8-double vectors per array (the same per-lane adds on
       every ISA, no FMA: -ffp-contract=off); elsewhere one lane at a time. n: any (the first element at
       a multiple of 16 in its piece). */
    #include <string.h>
    #if (defined(__GNUC__) || defined(__clang__)) && !defined(FASTOPT_NO_VECTOR_TYPES)
    typedef double fo_l8d __attribute__((vector_size(64)));
    typedef float fo_l8f __attribute__((vector_size(32)));
    static inline fo_l8d fo_l8_f(const float* x) { fo_l8f v; memcpy(&v, x, sizeof v); return __builtin_convertvector(v, fo_l8d); }
    static inline fo_l8d fo_l8_d(const double* x) { fo_l8d v; memcpy(&v, x, sizeof v); return v; }
    #define FO_LANE_SUMS(NAME, T, LOAD) \
    static inline void NAME(double* lanes, const T* pv, const T* uv, Py_ssize_t n) { \
        fo_l8d a0, a1, b0, b1, x; Py_ssize_t r, rows = n / 16, j; \
        memcpy(&a0, lanes, 64); memcpy(&a1, lanes + 8, 64); memcpy(&b0, lanes + 16, 64); memcpy(&b1, lanes + 24, 64); \
        for (r = 0; r < rows; r++) { \
            x = LOAD(pv + 16 * r); a0 = a0 + x * x; x = LOAD(pv + 16 * r + 8); a1 = a1 + x * x; \
            x = LOAD(uv + 16 * r); b0 = b0 + x * x; x = LOAD(uv + 16 * r + 8); b1 = b1 + x * x; \
        } \
        memcpy(lanes, &a0, 64); memcpy(lanes + 8, &a1, 64); memcpy(lanes + 16, &b0, 64); memcpy(lanes + 24, &b1, 64); \
        for (j = 0; j < n - rows * 16; j++) { \
            lanes[j] = lanes[j] + (double)pv[rows * 16 + j] * (double)pv[rows * 16 + j]; \
            lanes[16 + j] = lanes[16 + j] + (double)uv[rows * 16 + j] * (double)uv[rows * 16 + j]; \
        } \
    }
    #else
    #define FO_LANE_SUMS(NAME, T, LOAD) \
    static inline void NAME(double* lanes, const T* pv, const T* uv, Py_ssize_t n) { \
        Py_ssize_t i; \
        for (i = 0; i < n; i++) { \
            lanes[i % 16] = lanes[i % 16] + (double)pv[i] * (double)pv[i]; \
            lanes[16 + i % 16] = lanes[16 + i % 16] + (double)uv[i] * (double)uv[i]; \
        } \
    }
    #endif
    FO_LANE_SUMS(fo_lane_sums_f, float, fo_l8_f)
    FO_LANE_SUMS(fo_lane_sums_d, double, fo_l8_d)
    """
    void fo_lane_sums_f(double* lanes, const float* pv, const float* uv, Py_ssize_t n) noexcept nogil
    void fo_lane_sums_d(double* lanes, const double* pv, const double* uv, Py_ssize_t n) noexcept nogil


cdef inline void _lamb_sums(double* lanes, const floating* pv, const floating* uv, Py_ssize_t n) noexcept nogil:
    """Add the squares of n elements (the first at a multiple of LANES in its piece) to a piece's lanes."""
    if floating is float:
        fo_lane_sums_f(lanes, pv, uv, n)
    else:
        fo_lane_sums_d(lanes, pv, uv, n)


cdef inline void _prefetch4(const store* p, const store* g, const store* m, const store* v, Py_ssize_t lo,
                            Py_ssize_t hi) noexcept nogil:
    """Prefetch elements [lo, hi) of the first pass's four read streams (prefetches never fault: past
    an array's end, or into staged scratch, they are harmless)."""
    cdef Py_ssize_t off
    for off in range(lo * <Py_ssize_t>sizeof(store), hi * <Py_ssize_t>sizeof(store), 64):
        FO_PREFETCH_R(<const char*>p + off)
        FO_PREFETCH_R(<const char*>g + off)
        FO_PREFETCH_R(<const char*>m + off)
        FO_PREFETCH_R(<const char*>v + off)


cdef void _lamb_span(store* p, floating math, Py_ssize_t lo, Py_ssize_t hi, const LambWork* w) noexcept nogil:
    cdef const store* g = <const store*>w.g
    cdef store* m = <store*>w.m
    cdef store* v = <store*>w.v
    cdef floating sign = -w.grad_scale if w.maximize else w.grad_scale
    cdef floating b1 = w.beta1, b3 = w.beta3, b2 = w.beta2, one_minus_b2 = 1.0 - w.beta2
    cdef floating eps = w.eps, wd = w.weight_decay, inv_bc1 = w.inv_bc1, bc2s = w.bc2_sqrt, step = w.neg_step
    cdef floating inv_bc2s = <floating>1 / bc2s
    cdef bint decay = w.weight_decay != 0.0
    cdef floating gi, pi, mi, vi, ui
    cdef floating pv[LAMB_ROWS]
    cdef floating uv[LAMB_ROWS]
    cdef Py_ssize_t i, a, b
    cdef unsigned int k_m = stream(&w.head, &w.m), k_v = stream(&w.head, &w.v), k_p = stream(&w.head, &w.p)
    cdef bint reading = w.head.reading  # the first pass: sums of p^2 and u^2, nothing stored
    a = lo
    while a < hi:  # sub-blocks (chunks, staged and prefetched blocks start at multiples of LAMB_ROWS)
        b = a + LAMB_ROWS if hi - a > LAMB_ROWS else hi
        if reading:
            _prefetch4(p, g, m, v, a + LAMB_AHEAD, b + LAMB_AHEAD)
        for i in range(a, b):  # (gcc unswitches the loop on ``reading``: one loop per pass)
            load(&pi, p, i)
            load(&gi, g, i)
            load(&mi, m, i)
            load(&vi, v, i)
            gi = effective_grad(gi, pi, sign, 0, False)         # g_t
            mi = mi * b1 + b3 * gi                              # m_t
            vi = vi * b2 + (one_minus_b2 * gi) * gi             # v_t
            # sqrt(v) / bc2s: 0, inf, NaN or normal (sqrt(v) >= 2^-75 and 1e-8 <= bc2s <= 1)
            ui = (mi * inv_bc1) / (div_fixed(fsqrt(vi), bc2s, inv_bc2s) + eps)  # u_t
            if decay:
                ui = ui + wd * pi                               # u_t
            if reading:
                pv[i - a] = pi
                uv[i - a] = ui
            else:
                save(m, i, mi, k_m)
                save(v, i, vi, k_v)
                save(p, i, pi + step * ui, k_p)                 # p_t
        if reading:
            _lamb_sums(w.partials + 2 * LANES * ((w.head.origin + a) // BLOCK), pv, uv, b - a)
        a = b


cdef void _lamb_chunk(void* work, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef LambWork* w = <LambWork*>work
    cdef int fmt = loop_format(&w.head, hi)
    if fmt == FO_F32:
        _lamb_span(<float*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_F64:
        _lamb_span(<double*>w.p, <double>0, lo, hi, w)
    elif fmt == FO_BF16:
        _lamb_span(<fo_bf16*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_F16:
        _lamb_span(<fo_f16*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_BF16_SR:
        _lamb_span(<fo_bf16sr*>w.p, <float>0, lo, hi, w)
    else:
        w.head.staged_fn(work, lo, hi)


LAMB_NAMES = ("params", "grads", "steps", "exp_avgs", "exp_avg_sqs")


def lamb_batch(params, grads, steps, exp_avgs, exp_avg_sqs, double lr, double beta1, double beta2,
               double eps, double weight_decay, bint bias_correction, bint grad_averaging, bint always_adapt,
               bint trust_clip, bint maximize, bint check_overlap=True, bint indexed=True):
    """The checked work items of a ``lamb_group`` call, for ``run``."""
    cdef Batch b = new_batch(LAMB_NAMES, (params, grads, steps, exp_avgs, exp_avg_sqs), 5,
                             sizeof(LambWork), indexed)
    cdef tuple P = b.lists[0], G = b.lists[1], S = b.lists[2], M = b.lists[3], V = b.lists[4]
    cdef LambWork* w
    cdef Py_ssize_t k, n, total = 0
    cdef int single
    cdef bint adapt = weight_decay != 0.0 or always_adapt
    for k in range(len(P)):
        if G[k] is None:
            continue
        w = <LambWork*>batch_add(b, work_head(_lamb_chunk, _lamb_prologue), P[k], G[k], k, &single, &n)
        w.single, w.lr, w.beta1, w.beta2, w.eps, w.weight_decay = single, lr, beta1, beta2, eps, weight_decay
        w.beta3 = 1.0 - beta1 if grad_averaging else 1.0
        w.maximize, w.bias_correction, w.trust_clip = maximize, bias_correction, trust_clip
        w.step = batch_counter(b, S[k], single, &w.step_single, 2, k)
        batch_state(b, <void**>&w.m, M[k], n, 3, k)
        batch_state(b, <void**>&w.v, V[k], n, 4, k)
        if adapt:  # the trust ratio: two passes, the item aligned to BLOCK (its pieces are its blocks)
            w.head.reduce, w.head.align = _lamb_reduce, True
            w.pieces = (n + BLOCK - 1) // BLOCK
            total += w.pieces
    if check_overlap:
        b.check_overlap()
    if total:
        partials = np.empty(2 * LANES * total)
        b.held = partials  # (kept alive with the batch)
        total = 0
        for k in range(b.count):
            w = <LambWork*>b.items[k]
            w.partials = <double*>cnp.PyArray_DATA(partials) + 2 * LANES * total
            total += w.pieces
    return b


def lamb(param, grad, step, exp_avg, exp_avg_sq, *, double lr, double beta1, double beta2, double eps,
         double weight_decay, bint bias_correction, bint grad_averaging, bint always_adapt, bint trust_clip,
         bint maximize, n_threads=1):
    """One LAMB step in place, as timm's Lamb (the trust ratio when ``weight_decay`` or
    ``always_adapt``). Increments ``step``."""
    run(lamb_batch([param], [grad], [step], [exp_avg], [exp_avg_sq], lr=lr, beta1=beta1, beta2=beta2,
                   eps=eps, weight_decay=weight_decay, bias_correction=bias_correction,
                   grad_averaging=grad_averaging, always_adapt=always_adapt, trust_clip=trust_clip,
                   maximize=maximize, indexed=False), n_threads)


def lamb_group(params, grads, steps, exp_avgs, exp_avg_sqs, *, double lr, double beta1, double beta2,
               double eps, double weight_decay, bint bias_correction, bint grad_averaging, bint always_adapt,
               bint trust_clip, bint maximize, n_threads=1):
    """``lamb`` on every tensor of a group in one call. Checks everything before writing."""
    run(lamb_batch(params, grads, steps, exp_avgs, exp_avg_sqs, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                   weight_decay=weight_decay, bias_correction=bias_correction, grad_averaging=grad_averaging,
                   always_adapt=always_adapt, trust_clip=trust_clip, maximize=maximize), n_threads)


# -- sfadamw (schedule-free AdamW) --------------------------------------------------------------------

ctypedef struct SFAdamWWork:
    WorkHead head
    void* p
    const void* g
    double grad_scale  # run()'s gradient scale (a clip coefficient); see _runtime.ItemHead
    void* z
    void* v
    int single
    double lr, beta1, beta2, eps, weight_decay, bc2, ckp1
    bint maximize


cdef void _sfadamw_span(store* p, floating math, Py_ssize_t lo, Py_ssize_t hi, const SFAdamWWork* w) noexcept nogil:
    cdef const store* g = <const store*>w.g
    cdef store* z = <store*>w.z
    cdef store* v = <store*>w.v
    cdef floating sign = -w.grad_scale if w.maximize else w.grad_scale
    cdef floating b2 = w.beta2, one_minus_b2 = 1.0 - w.beta2, eps = w.eps, bc2 = w.bc2
    cdef floating wd = w.weight_decay, c = w.ckp1, c_minus_one = w.ckp1 - 1.0
    cdef floating y_step = w.lr * (w.beta1 * (1.0 - w.ckp1) - 1.0), z_step = w.lr
    cdef bint decay = w.weight_decay != 0.0
    cdef bint near = w.ckp1 < 0.5  # torch's lerp: from the nearer end
    cdef floating gi, yi, zi, vi, gn
    cdef Py_ssize_t i
    cdef unsigned int k_z = stream(&w.head, &w.z), k_v = stream(&w.head, &w.v), k_p = stream(&w.head, &w.p)
    for i in range(lo, hi):
        load(&yi, p, i)
        load(&gi, g, i)
        load(&zi, z, i)
        load(&vi, v, i)
        gi = sign * gi                                  # g_t
        vi = b2 * vi + (one_minus_b2 * gi) * gi         # v_t
        save(v, i, vi, k_v)
        gn = gi / (fsqrt(vi / bc2) + eps)               # gn_t
        if decay:
            gn = gn + wd * yi                           # gn_t
        if near:
            yi = yi + c * (zi - yi)                     # y_t
        else:
            yi = zi + c_minus_one * (zi - yi)           # y_t
        save(p, i, yi + y_step * gn, k_p)               # y_t
        save(z, i, zi - z_step * gn, k_z)               # z_t


cdef void _sfadamw_chunk(void* work, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef SFAdamWWork* w = <SFAdamWWork*>work
    cdef int fmt = loop_format(&w.head, hi)
    if fmt == FO_F32:
        _sfadamw_span(<float*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_F64:
        _sfadamw_span(<double*>w.p, <double>0, lo, hi, w)
    elif fmt == FO_BF16:
        _sfadamw_span(<fo_bf16*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_F16:
        _sfadamw_span(<fo_f16*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_BF16_SR:
        _sfadamw_span(<fo_bf16sr*>w.p, <float>0, lo, hi, w)
    else:
        w.head.staged_fn(work, lo, hi)


SFADAMW_NAMES = ("params", "grads", "zs", "exp_avg_sqs")


def sfadamw_batch(params, grads, zs, exp_avg_sqs, double lr, double beta1, double beta2, double eps,
                  double weight_decay, double bc2, double ckp1, bint maximize, bint check_overlap=True,
                  bint indexed=True):
    """The checked work items of an ``sfadamw_group`` call, for ``run``."""
    cdef Batch b = new_batch(SFADAMW_NAMES, (params, grads, zs, exp_avg_sqs), 4, sizeof(SFAdamWWork), indexed)
    cdef tuple P = b.lists[0], G = b.lists[1], Z = b.lists[2], V = b.lists[3]
    cdef SFAdamWWork* w
    cdef Py_ssize_t k, n
    cdef int single
    for k in range(len(P)):
        if G[k] is None:
            continue
        w = <SFAdamWWork*>batch_add(b, work_head(_sfadamw_chunk, NULL), P[k], G[k], k, &single, &n)
        w.single, w.lr, w.beta1, w.beta2, w.eps = single, lr, beta1, beta2, eps
        w.weight_decay, w.bc2, w.ckp1, w.maximize = weight_decay, bc2, ckp1, maximize
        batch_state(b, <void**>&w.z, Z[k], n, 2, k)
        batch_state(b, <void**>&w.v, V[k], n, 3, k)
    if check_overlap:
        b.check_overlap()
    return b


def sfadamw(param, grad, z, exp_avg_sq, *, double lr, double beta1, double beta2, double eps,
            double weight_decay, double bc2, double ckp1, bint maximize, n_threads=1):
    """One schedule-free AdamW step in place (facebookresearch/schedule_free's AdamWScheduleFree):
    ``param`` holds y, ``z`` the base sequence; ``lr`` is this step's scheduled lr, ``bc2`` and
    ``ckp1`` its bias correction and averaging weight (the optimizer computes them per group)."""
    run(sfadamw_batch([param], [grad], [z], [exp_avg_sq], lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                      weight_decay=weight_decay, bc2=bc2, ckp1=ckp1, maximize=maximize, indexed=False),
        n_threads)


def sfadamw_group(params, grads, zs, exp_avg_sqs, *, double lr, double beta1, double beta2, double eps,
                  double weight_decay, double bc2, double ckp1, bint maximize, n_threads=1):
    """``sfadamw`` on every tensor of a group in one call. Checks everything before writing."""
    run(sfadamw_batch(params, grads, zs, exp_avg_sqs, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                      weight_decay=weight_decay, bc2=bc2, ckp1=ckp1, maximize=maximize), n_threads)
