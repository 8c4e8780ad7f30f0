"""Fused kernels of the Adam family: ``adam`` (Adam, AdamW, AMSGrad), ``adamax`` and ``nadam``, each
one pass over param, grad and state with torch.optim's semantics.

Reference twin: ``fastopt/reference/adam.py``; every line that computes a symbol carries the same tag there.

Scalar state (``step``, ``mu_product``) arrives as a 1-element buffer of the parameter's dtype; the kernel
increments it, then computes the step's scalars in double once (bias corrections, step size) and rounds
them to the dtype where they meet the arrays, as torch does.

    adam:    m = m + (1-b1)*(g-m);  v = b2*v + ((1-b2)*g)*g;  [vmax = max(vmax, v)]
             p = p + (-lr/bc1 * m) / (sqrt(v)/sqrt(bc2) + eps)
    adamax:  m = m + (1-b1)*(g-m);  u = max(b2*u, |g|+eps);  p = p + (-lr/bc1 * m) / u
    nadam:   m, v as adam;  d = sqrt(v/bc2) + eps
             p = p + (c_g*g)/d + (c_m*m)/d  with the mu-schedule coefficients c_g, c_m
"""
from libc.math cimport pow, sqrt

from cython cimport floating

from ._util cimport check_counter, check_size, effective_grad, fabs_, fsqrt, maxnan


cdef void _adam_span(floating* p, const floating* g, floating* m, floating* v, floating* vmax,
                     Py_ssize_t n, double beta1, double beta2, double eps, double weight_decay,
                     double decay_factor, double neg_step_size, double bc2_sqrt,
                     bint maximize, bint decoupled) noexcept nogil:
    cdef floating sign = -1.0 if maximize else 1.0
    cdef floating wd = weight_decay, decay = decay_factor
    cdef floating one_minus_b1 = 1.0 - beta1, b2 = beta2, one_minus_b2 = 1.0 - beta2
    cdef floating eps_ = eps, step_ = neg_step_size, bc2s = bc2_sqrt
    cdef bint coupled_decay = weight_decay != 0.0 and not decoupled
    cdef bint decoupled_decay = weight_decay != 0.0 and decoupled
    cdef bint amsgrad = vmax != NULL
    cdef floating gi, pi, mi, vi, denom
    cdef Py_ssize_t i
    for i in range(n):
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
        denom = fsqrt(vi) / bc2s + eps_                  # denom_t
        p[i] = pi + (step_ * mi) / denom                # p_t


def adam(floating[::1] param, const floating[::1] grad, floating[::1] step,
         floating[::1] exp_avg, floating[::1] exp_avg_sq, floating[::1] max_exp_avg_sq=None, *,
         double lr, double beta1, double beta2, double eps, double weight_decay,
         bint maximize, bint decoupled_weight_decay):
    """One Adam step in place, as torch.optim.Adam (AMSGrad when ``max_exp_avg_sq`` is given; AdamW
    with ``decoupled_weight_decay``). Increments ``step``."""
    cdef Py_ssize_t n = param.shape[0]
    cdef floating* vmax = NULL
    check_size(n, grad.shape[0], "grad")
    check_counter(step.shape[0], "step")
    check_size(n, exp_avg.shape[0], "exp_avg")
    check_size(n, exp_avg_sq.shape[0], "exp_avg_sq")
    if max_exp_avg_sq is not None:
        check_size(n, max_exp_avg_sq.shape[0], "max_exp_avg_sq")
    step[0] = step[0] + 1                                                       # t
    cdef double t = step[0]
    cdef double bc1 = 1.0 - pow(beta1, t)                                       # bc1
    cdef double bc2_sqrt = sqrt(1.0 - pow(beta2, t))                            # bc2_sqrt
    cdef double neg_step_size = -lr / bc1                                       # step_size
    cdef double decay_factor = 1.0 - lr * weight_decay                          # decay
    if n == 0:
        return
    if max_exp_avg_sq is not None:
        vmax = &max_exp_avg_sq[0]
    with nogil:
        _adam_span(&param[0], &grad[0], &exp_avg[0], &exp_avg_sq[0], vmax, n, beta1, beta2, eps,
                   weight_decay, decay_factor, neg_step_size, bc2_sqrt,
                   maximize, decoupled_weight_decay)


cdef void _adamax_span(floating* p, const floating* g, floating* m, floating* u, Py_ssize_t n,
                       double beta1, double beta2, double eps, double weight_decay,
                       double neg_step_size, bint maximize) noexcept nogil:
    cdef floating sign = -1.0 if maximize else 1.0
    cdef floating wd = weight_decay, one_minus_b1 = 1.0 - beta1, b2 = beta2, eps_ = eps
    cdef floating step_ = neg_step_size
    cdef bint decay = weight_decay != 0.0
    cdef floating gi, mi, ui
    cdef Py_ssize_t i
    for i in range(n):
        gi = effective_grad(g[i], p[i], sign, wd, decay)           # g_t
        mi = m[i] + one_minus_b1 * (gi - m[i])          # m_t
        ui = maxnan(b2 * u[i], fabs_(gi) + eps_)               # u_t
        m[i] = mi
        u[i] = ui
        p[i] = p[i] + (step_ * mi) / ui                 # p_t


def adamax(floating[::1] param, const floating[::1] grad, floating[::1] step,
           floating[::1] exp_avg, floating[::1] exp_inf, *,
           double lr, double beta1, double beta2, double eps, double weight_decay, bint maximize):
    """One Adamax step in place, as torch.optim.Adamax (eps inside the max). Increments ``step``."""
    cdef Py_ssize_t n = param.shape[0]
    check_size(n, grad.shape[0], "grad")
    check_counter(step.shape[0], "step")
    check_size(n, exp_avg.shape[0], "exp_avg")
    check_size(n, exp_inf.shape[0], "exp_inf")
    step[0] = step[0] + 1                                                       # t
    cdef double t = step[0]
    cdef double bc1 = 1.0 - pow(beta1, t)                                       # bc1
    cdef double neg_step_size = -lr / bc1                                       # step_size
    if n == 0:
        return
    with nogil:
        _adamax_span(&param[0], &grad[0], &exp_avg[0], &exp_inf[0], n, beta1, beta2, eps,
                     weight_decay, neg_step_size, maximize)


cdef void _nadam_span(floating* p, const floating* g, floating* m, floating* v, Py_ssize_t n,
                      double beta1, double beta2, double eps, double weight_decay,
                      double decay_factor, double bc2, double coef_grad, double coef_avg,
                      bint maximize, bint decoupled) noexcept nogil:
    cdef floating sign = -1.0 if maximize else 1.0
    cdef floating wd = weight_decay, decay = decay_factor
    cdef floating one_minus_b1 = 1.0 - beta1, b2 = beta2, one_minus_b2 = 1.0 - beta2
    cdef floating eps_ = eps, bc2_ = bc2, cg = coef_grad, cm = coef_avg
    cdef bint coupled_decay = weight_decay != 0.0 and not decoupled
    cdef bint decoupled_decay = weight_decay != 0.0 and decoupled
    cdef floating gi, pi, mi, vi, denom
    cdef Py_ssize_t i
    for i in range(n):
        pi = p[i]
        gi = effective_grad(g[i], pi, sign, wd, coupled_decay)     # g_t
        if decoupled_decay:
            pi = pi * decay                             # p_t
        mi = m[i] + one_minus_b1 * (gi - m[i])          # m_t
        vi = b2 * v[i] + (one_minus_b2 * gi) * gi       # v_t
        m[i] = mi
        v[i] = vi
        denom = fsqrt(vi / bc2_) + eps_                  # denom_t
        pi = pi + (cg * gi) / denom                     # p_t
        p[i] = pi + (cm * mi) / denom                   # p_t


def nadam(floating[::1] param, const floating[::1] grad, floating[::1] step,
          floating[::1] mu_product, floating[::1] exp_avg, floating[::1] exp_avg_sq, *,
          double lr, double beta1, double beta2, double eps, double weight_decay,
          double momentum_decay, bint maximize, bint decoupled_weight_decay):
    """One NAdam step in place, as torch.optim.NAdam. Increments ``step`` and multiplies
    ``mu_product`` by this step's momentum coefficient (rounded to its dtype, as torch's tensor)."""
    cdef Py_ssize_t n = param.shape[0]
    check_size(n, grad.shape[0], "grad")
    check_counter(step.shape[0], "step")
    check_counter(mu_product.shape[0], "mu_product")
    check_size(n, exp_avg.shape[0], "exp_avg")
    check_size(n, exp_avg_sq.shape[0], "exp_avg_sq")
    step[0] = step[0] + 1                                                       # t
    cdef double t = step[0]
    cdef double bc2 = 1.0 - pow(beta2, t)                                       # bc2
    cdef double mu = beta1 * (1.0 - 0.5 * pow(0.96, t * momentum_decay))        # mu_t
    cdef double mu_next = beta1 * (1.0 - 0.5 * pow(0.96, (t + 1.0) * momentum_decay))  # mu_next
    mu_product[0] = mu_product[0] * <floating>mu                                # mu_product
    cdef double mu_prod = mu_product[0]
    cdef double coef_grad = -lr * (1.0 - mu) / (1.0 - mu_prod)                  # coef_grad
    cdef double coef_avg = (-lr * mu_next) / (1.0 - mu_prod * mu_next)          # coef_avg
    cdef double decay_factor = 1.0 - lr * weight_decay                          # decay
    if n == 0:
        return
    with nogil:
        _nadam_span(&param[0], &grad[0], &exp_avg[0], &exp_avg_sq[0], n, beta1, beta2, eps,
                    weight_decay, decay_factor, bc2, coef_grad, coef_avg,
                    maximize, decoupled_weight_decay)
