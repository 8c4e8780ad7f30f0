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

from cython cimport floating

from fastopt._kernels._runtime cimport Batch, new_batch, run, WorkHead
from fastopt._kernels._util cimport (batch_add, batch_counter, batch_state, build_info, bump, effective_grad, fabs_,
                                     div_fixed, fsqrt, load, loop_format, maxnan, save, store, stream, work_head)
from fastopt._kernels._util cimport fo_bf16, fo_bf16sr, fo_f16, FO_BF16, FO_BF16_SR, FO_F16, FO_F32, FO_F64

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
