"""Fused kernels of the Adam family: ``adam`` (Adam, AdamW, AMSGrad), ``adamax`` and ``nadam``, each
one pass over param, grad and state with torch.optim's semantics.

Reference twin: ``fastopt/reference/adam.py``; every line that computes a symbol carries the same tag there.

Each rule has two entry points over the same loop: ``adam(param, grad, step, ...)`` on one tensor
(typed memoryviews), and ``adam_group(params, grads, steps, ...)`` on lists of tensors (one call for a
whole parameter group; a None gradient skips its tensor). Scalar state (``step``, ``mu_product``) is a
1-element buffer of the parameter's dtype that the kernel updates; the step's scalars (bias corrections,
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

from fastopt._kernels._util cimport (array_data, build_info, bump, check_counter, check_lists,
                                     check_size, effective_grad, execute, execute_one, fabs_, fsqrt,
                                     Items, items_add, items_alloc, items_free, maxnan)

cnp.import_array()
BUILD = build_info()


# -- adam ---------------------------------------------------------------------------------------------

ctypedef struct AdamWork:
    void* p
    const void* g
    void* step
    void* m
    void* v
    void* vmax
    int single
    double lr, beta1, beta2, eps, weight_decay
    bint maximize, decoupled
    double neg_step_size, bc2_sqrt, decay_factor  # this tensor's step scalars


cdef void _adam_prologue(void* work) noexcept nogil:
    cdef AdamWork* w = <AdamWork*>work
    cdef double t = bump(w.step, w.single)                                      # t
    w.neg_step_size = -w.lr / (1.0 - pow(w.beta1, t))                           # step_size
    w.bc2_sqrt = sqrt(1.0 - pow(w.beta2, t))                                    # bc2_sqrt
    w.decay_factor = 1.0 - w.lr * w.weight_decay                                # decay


cdef void _adam_span(floating* p, const floating* g, floating* m, floating* v, floating* vmax,
                     Py_ssize_t lo, Py_ssize_t hi, const AdamWork* w) noexcept nogil:
    cdef floating sign = -1.0 if w.maximize else 1.0
    cdef floating wd = w.weight_decay, decay = w.decay_factor
    cdef floating one_minus_b1 = 1.0 - w.beta1, b2 = w.beta2, one_minus_b2 = 1.0 - w.beta2
    cdef floating eps = w.eps, step = w.neg_step_size, bc2s = w.bc2_sqrt
    cdef bint coupled_decay = w.weight_decay != 0.0 and not w.decoupled
    cdef bint decoupled_decay = w.weight_decay != 0.0 and w.decoupled
    cdef bint amsgrad = vmax != NULL
    cdef floating gi, pi, mi, vi, denom
    cdef Py_ssize_t i
    for i in range(lo, hi):
        pi = p[i]
        gi = effective_grad(g[i], pi, sign, wd, coupled_decay)     # g_t
        if decoupled_decay:
            pi = pi * decay                             # p_t
        mi = m[i] + one_minus_b1 * (gi - m[i])          # m_t
        vi = b2 * v[i] + (one_minus_b2 * gi) * gi       # v_t
        m[i] = mi
        v[i] = vi
        if amsgrad:
            vi = maxnan(vmax[i], vi)                    # vmax_t
            vmax[i] = vi
        denom = fsqrt(vi) / bc2s + eps                  # denom_t
        p[i] = pi + (step * mi) / denom                 # p_t


cdef void _adam_chunk(void* work, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef AdamWork* w = <AdamWork*>work
    if w.single:
        _adam_span(<float*>w.p, <const float*>w.g, <float*>w.m, <float*>w.v, <float*>w.vmax, lo, hi, w)
    else:
        _adam_span(<double*>w.p, <const double*>w.g, <double*>w.m, <double*>w.v, <double*>w.vmax,
                   lo, hi, w)


cdef void _adam_init(AdamWork* w, int single, double lr, double beta1, double beta2, double eps,
                     double weight_decay, bint maximize, bint decoupled) noexcept:
    w.single, w.lr, w.beta1, w.beta2, w.eps = single, lr, beta1, beta2, eps
    w.weight_decay, w.maximize, w.decoupled = weight_decay, maximize, decoupled
    w.vmax = NULL


def adam(floating[::1] param, const floating[::1] grad, floating[::1] step,
         floating[::1] exp_avg, floating[::1] exp_avg_sq, floating[::1] max_exp_avg_sq=None, *,
         double lr, double beta1, double beta2, double eps, double weight_decay,
         bint maximize, bint decoupled_weight_decay, int n_threads=1):
    """One Adam step in place, as torch.optim.Adam (AMSGrad when ``max_exp_avg_sq`` is given; AdamW
    with ``decoupled_weight_decay``). Increments ``step``."""
    cdef Py_ssize_t n = param.shape[0]
    cdef AdamWork w
    check_size(n, grad.shape[0], "grad")
    check_counter(step.shape[0], "step")
    check_size(n, exp_avg.shape[0], "exp_avg")
    check_size(n, exp_avg_sq.shape[0], "exp_avg_sq")
    if max_exp_avg_sq is not None:
        check_size(n, max_exp_avg_sq.shape[0], "max_exp_avg_sq")
    _adam_init(&w, floating is float, lr, beta1, beta2, eps, weight_decay, maximize,
               decoupled_weight_decay)
    w.step = &step[0]
    if n:
        w.p, w.g, w.m, w.v = &param[0], &grad[0], &exp_avg[0], &exp_avg_sq[0]
        if max_exp_avg_sq is not None:
            w.vmax = &max_exp_avg_sq[0]
    execute_one(_adam_chunk, _adam_prologue, &w, n, n_threads)


def adam_group(list params, list grads, list steps, list exp_avgs, list exp_avg_sqs,
               list max_exp_avg_sqs=None, *, double lr, double beta1, double beta2, double eps,
               double weight_decay, bint maximize, bint decoupled_weight_decay, int n_threads=1):
    """``adam`` on every tensor of a group in one call (lists aligned with ``params``; a None
    gradient skips its tensor, whose step is not counted). Checks everything before writing."""
    cdef Py_ssize_t count = len(params), k, n
    check_lists(count, (grads, steps, exp_avgs, exp_avg_sqs, max_exp_avg_sqs),
                ("grads", "steps", "exp_avgs", "exp_avg_sqs", "max_exp_avg_sqs"))
    cdef Items items
    cdef AdamWork* w
    cdef int single
    items_alloc(&items, count, sizeof(AdamWork))
    try:
        for k in range(count):
            if grads[k] is None:
                continue
            w = <AdamWork*>items_add(&items, params[k], grads[k], k, &single, &n)
            _adam_init(w, single, lr, beta1, beta2, eps, weight_decay, maximize, decoupled_weight_decay)
            w.step = array_data(steps[k], single, 1, True, "steps", k)
            w.m = array_data(exp_avgs[k], single, n, True, "exp_avgs", k)
            w.v = array_data(exp_avg_sqs[k], single, n, True, "exp_avg_sqs", k)
            if max_exp_avg_sqs is not None:
                w.vmax = array_data(max_exp_avg_sqs[k], single, n, True, "max_exp_avg_sqs", k)
        execute(_adam_chunk, _adam_prologue, items.works, items.size, items.offsets, items.count, n_threads)
    finally:
        items_free(&items)


# -- adamax -------------------------------------------------------------------------------------------

ctypedef struct AdamaxWork:
    void* p
    const void* g
    void* step
    void* m
    void* u
    int single
    double lr, beta1, beta2, eps, weight_decay
    bint maximize
    double neg_step_size  # this tensor's step scalar


cdef void _adamax_prologue(void* work) noexcept nogil:
    cdef AdamaxWork* w = <AdamaxWork*>work
    cdef double t = bump(w.step, w.single)                                      # t
    w.neg_step_size = -w.lr / (1.0 - pow(w.beta1, t))                           # step_size


cdef void _adamax_span(floating* p, const floating* g, floating* m, floating* u, Py_ssize_t lo,
                       Py_ssize_t hi, const AdamaxWork* w) noexcept nogil:
    cdef floating sign = -1.0 if w.maximize else 1.0
    cdef floating wd = w.weight_decay, one_minus_b1 = 1.0 - w.beta1, b2 = w.beta2, eps = w.eps
    cdef floating step = w.neg_step_size
    cdef bint decay = w.weight_decay != 0.0
    cdef floating gi, mi, ui
    cdef Py_ssize_t i
    for i in range(lo, hi):
        gi = effective_grad(g[i], p[i], sign, wd, decay)           # g_t
        mi = m[i] + one_minus_b1 * (gi - m[i])          # m_t
        ui = maxnan(b2 * u[i], fabs_(gi) + eps)         # u_t
        m[i] = mi
        u[i] = ui
        p[i] = p[i] + (step * mi) / ui                  # p_t


cdef void _adamax_chunk(void* work, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef AdamaxWork* w = <AdamaxWork*>work
    if w.single:
        _adamax_span(<float*>w.p, <const float*>w.g, <float*>w.m, <float*>w.u, lo, hi, w)
    else:
        _adamax_span(<double*>w.p, <const double*>w.g, <double*>w.m, <double*>w.u, lo, hi, w)


cdef void _adamax_init(AdamaxWork* w, int single, double lr, double beta1, double beta2, double eps,
                       double weight_decay, bint maximize) noexcept:
    w.single, w.lr, w.beta1, w.beta2, w.eps = single, lr, beta1, beta2, eps
    w.weight_decay, w.maximize = weight_decay, maximize


def adamax(floating[::1] param, const floating[::1] grad, floating[::1] step,
           floating[::1] exp_avg, floating[::1] exp_inf, *,
           double lr, double beta1, double beta2, double eps, double weight_decay, bint maximize,
           int n_threads=1):
    """One Adamax step in place, as torch.optim.Adamax (eps inside the max). Increments ``step``."""
    cdef Py_ssize_t n = param.shape[0]
    cdef AdamaxWork w
    check_size(n, grad.shape[0], "grad")
    check_counter(step.shape[0], "step")
    check_size(n, exp_avg.shape[0], "exp_avg")
    check_size(n, exp_inf.shape[0], "exp_inf")
    _adamax_init(&w, floating is float, lr, beta1, beta2, eps, weight_decay, maximize)
    w.step = &step[0]
    if n:
        w.p, w.g, w.m, w.u = &param[0], &grad[0], &exp_avg[0], &exp_inf[0]
    execute_one(_adamax_chunk, _adamax_prologue, &w, n, n_threads)


def adamax_group(list params, list grads, list steps, list exp_avgs, list exp_infs, *, double lr,
                 double beta1, double beta2, double eps, double weight_decay, bint maximize,
                 int n_threads=1):
    """``adamax`` on every tensor of a group in one call. Checks everything before writing."""
    cdef Py_ssize_t count = len(params), k, n
    check_lists(count, (grads, steps, exp_avgs, exp_infs), ("grads", "steps", "exp_avgs", "exp_infs"))
    cdef Items items
    cdef AdamaxWork* w
    cdef int single
    items_alloc(&items, count, sizeof(AdamaxWork))
    try:
        for k in range(count):
            if grads[k] is None:
                continue
            w = <AdamaxWork*>items_add(&items, params[k], grads[k], k, &single, &n)
            _adamax_init(w, single, lr, beta1, beta2, eps, weight_decay, maximize)
            w.step = array_data(steps[k], single, 1, True, "steps", k)
            w.m = array_data(exp_avgs[k], single, n, True, "exp_avgs", k)
            w.u = array_data(exp_infs[k], single, n, True, "exp_infs", k)
        execute(_adamax_chunk, _adamax_prologue, items.works, items.size, items.offsets, items.count, n_threads)
    finally:
        items_free(&items)


# -- nadam --------------------------------------------------------------------------------------------

ctypedef struct NAdamWork:
    void* p
    const void* g
    void* step
    void* mu_product
    void* m
    void* v
    int single
    double lr, beta1, beta2, eps, weight_decay, momentum_decay
    bint maximize, decoupled
    double bc2, coef_grad, coef_avg, decay_factor  # this tensor's step scalars


cdef void _nadam_prologue(void* work) noexcept nogil:
    cdef NAdamWork* w = <NAdamWork*>work
    cdef double t = bump(w.step, w.single)                                      # t
    cdef double mu = w.beta1 * (1.0 - 0.5 * pow(0.96, t * w.momentum_decay))    # mu_t
    cdef double mu_next = w.beta1 * (1.0 - 0.5 * pow(0.96, (t + 1.0) * w.momentum_decay))  # mu_next
    cdef double mu_prod
    if w.single:  # the stored product is rounded to the dtype every step, as torch's tensor
        (<float*>w.mu_product)[0] = (<float*>w.mu_product)[0] * <float>mu           # mu_product
        mu_prod = (<float*>w.mu_product)[0]
    else:
        (<double*>w.mu_product)[0] = (<double*>w.mu_product)[0] * mu                # mu_product
        mu_prod = (<double*>w.mu_product)[0]
    w.bc2 = 1.0 - pow(w.beta2, t)                                               # bc2
    w.coef_grad = -w.lr * (1.0 - mu) / (1.0 - mu_prod)                          # coef_grad
    w.coef_avg = (-w.lr * mu_next) / (1.0 - mu_prod * mu_next)                  # coef_avg
    w.decay_factor = 1.0 - w.lr * w.weight_decay                                # decay


cdef void _nadam_span(floating* p, const floating* g, floating* m, floating* v, Py_ssize_t lo,
                      Py_ssize_t hi, const NAdamWork* w) noexcept nogil:
    cdef floating sign = -1.0 if w.maximize else 1.0
    cdef floating wd = w.weight_decay, decay = w.decay_factor
    cdef floating one_minus_b1 = 1.0 - w.beta1, b2 = w.beta2, one_minus_b2 = 1.0 - w.beta2
    cdef floating eps = w.eps, bc2 = w.bc2, cg = w.coef_grad, cm = w.coef_avg
    cdef bint coupled_decay = w.weight_decay != 0.0 and not w.decoupled
    cdef bint decoupled_decay = w.weight_decay != 0.0 and w.decoupled
    cdef floating gi, pi, mi, vi, denom
    cdef Py_ssize_t i
    for i in range(lo, hi):
        pi = p[i]
        gi = effective_grad(g[i], pi, sign, wd, coupled_decay)     # g_t
        if decoupled_decay:
            pi = pi * decay                             # p_t
        mi = m[i] + one_minus_b1 * (gi - m[i])          # m_t
        vi = b2 * v[i] + (one_minus_b2 * gi) * gi       # v_t
        m[i] = mi
        v[i] = vi
        denom = fsqrt(vi / bc2) + eps                   # denom_t
        pi = pi + (cg * gi) / denom                     # p_t
        p[i] = pi + (cm * mi) / denom                   # p_t


cdef void _nadam_chunk(void* work, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef NAdamWork* w = <NAdamWork*>work
    if w.single:
        _nadam_span(<float*>w.p, <const float*>w.g, <float*>w.m, <float*>w.v, lo, hi, w)
    else:
        _nadam_span(<double*>w.p, <const double*>w.g, <double*>w.m, <double*>w.v, lo, hi, w)


cdef void _nadam_init(NAdamWork* w, int single, double lr, double beta1, double beta2, double eps,
                      double weight_decay, double momentum_decay, bint maximize,
                      bint decoupled) noexcept:
    w.single, w.lr, w.beta1, w.beta2, w.eps = single, lr, beta1, beta2, eps
    w.weight_decay, w.momentum_decay, w.maximize, w.decoupled = weight_decay, momentum_decay, maximize, decoupled


def nadam(floating[::1] param, const floating[::1] grad, floating[::1] step,
          floating[::1] mu_product, floating[::1] exp_avg, floating[::1] exp_avg_sq, *,
          double lr, double beta1, double beta2, double eps, double weight_decay,
          double momentum_decay, bint maximize, bint decoupled_weight_decay, int n_threads=1):
    """One NAdam step in place, as torch.optim.NAdam. Increments ``step`` and multiplies
    ``mu_product`` by this step's momentum coefficient (rounded to its dtype, as torch's tensor)."""
    cdef Py_ssize_t n = param.shape[0]
    cdef NAdamWork w
    check_size(n, grad.shape[0], "grad")
    check_counter(step.shape[0], "step")
    check_counter(mu_product.shape[0], "mu_product")
    check_size(n, exp_avg.shape[0], "exp_avg")
    check_size(n, exp_avg_sq.shape[0], "exp_avg_sq")
    _nadam_init(&w, floating is float, lr, beta1, beta2, eps, weight_decay, momentum_decay, maximize,
                decoupled_weight_decay)
    w.step, w.mu_product = &step[0], &mu_product[0]
    if n:
        w.p, w.g, w.m, w.v = &param[0], &grad[0], &exp_avg[0], &exp_avg_sq[0]
    execute_one(_nadam_chunk, _nadam_prologue, &w, n, n_threads)


def nadam_group(list params, list grads, list steps, list mu_products, list exp_avgs,
                list exp_avg_sqs, *, double lr, double beta1, double beta2, double eps,
                double weight_decay, double momentum_decay, bint maximize,
                bint decoupled_weight_decay, int n_threads=1):
    """``nadam`` on every tensor of a group in one call. Checks everything before writing."""
    cdef Py_ssize_t count = len(params), k, n
    check_lists(count, (grads, steps, mu_products, exp_avgs, exp_avg_sqs),
                ("grads", "steps", "mu_products", "exp_avgs", "exp_avg_sqs"))
    cdef Items items
    cdef NAdamWork* w
    cdef int single
    items_alloc(&items, count, sizeof(NAdamWork))
    try:
        for k in range(count):
            if grads[k] is None:
                continue
            w = <NAdamWork*>items_add(&items, params[k], grads[k], k, &single, &n)
            _nadam_init(w, single, lr, beta1, beta2, eps, weight_decay, momentum_decay, maximize,
                        decoupled_weight_decay)
            w.step = array_data(steps[k], single, 1, True, "steps", k)
            w.mu_product = array_data(mu_products[k], single, 1, True, "mu_products", k)
            w.m = array_data(exp_avgs[k], single, n, True, "exp_avgs", k)
            w.v = array_data(exp_avg_sqs[k], single, n, True, "exp_avg_sqs", k)
        execute(_nadam_chunk, _nadam_prologue, items.works, items.size, items.offsets, items.count, n_threads)
    finally:
        items_free(&items)
