"""Fused kernels of the squared-gradient family: ``adagrad``, ``rmsprop`` (centered, momentum) and
``adadelta``, each one pass over param, grad and state with torch.optim's semantics.

Reference twin: ``fastopt/reference/rmsprop.py``; every line that computes a symbol carries the same tag there.

    adagrad:   s = s + g*g;  p = p + (-clr*g) / (sqrt(s) + eps),  clr = lr / (1 + (t-1)*lr_decay)
    rmsprop:   v = a*v + ((1-a)*g)*g;  [ga = ga + (1-a)*(g-ga);  v~ = v - ga*ga]
               d = sqrt(v~) + eps;  b = mu*b + g/d, p = p - lr*b  (momentum)  or  p = p + (-lr*g)/d
    adadelta:  v = rho*v + ((1-rho)*g)*g;  dx = sqrt(u+eps)/sqrt(v+eps)*g;  u = rho*u + ((1-rho)*dx)*dx
               p = p - lr*dx
"""
from cython cimport floating

from ._util cimport check_counter, check_size, effective_grad, fsqrt


cdef void _adagrad_span(floating* p, const floating* g, floating* s, Py_ssize_t n,
                        double neg_clr, double eps, double weight_decay, bint maximize) noexcept nogil:
    cdef floating sign = -1.0 if maximize else 1.0
    cdef floating wd = weight_decay, clr = neg_clr, eps_ = eps
    cdef bint decay = weight_decay != 0.0
    cdef floating gi, si
    cdef Py_ssize_t i
    for i in range(n):
        gi = effective_grad(g[i], p[i], sign, wd, decay)           # g_t
        si = s[i] + gi * gi                             # s_t
        s[i] = si
        p[i] = p[i] + (clr * gi) / (fsqrt(si) + eps_)    # p_t


def adagrad(floating[::1] param, const floating[::1] grad, floating[::1] step,
            floating[::1] state_sum, *,
            double lr, double lr_decay, double eps, double weight_decay, bint maximize):
    """One Adagrad step in place, as torch.optim.Adagrad (eps outside the sqrt). Increments ``step``."""
    cdef Py_ssize_t n = param.shape[0]
    check_size(n, grad.shape[0], "grad")
    check_counter(step.shape[0], "step")
    check_size(n, state_sum.shape[0], "state_sum")
    step[0] = step[0] + 1                                                       # t
    cdef double t = step[0]
    cdef double neg_clr = -(lr / (1.0 + (t - 1.0) * lr_decay))                  # clr
    if n == 0:
        return
    with nogil:
        _adagrad_span(&param[0], &grad[0], &state_sum[0], n, neg_clr, eps, weight_decay, maximize)


cdef void _rmsprop_span(floating* p, const floating* g, floating* v, floating* buf, floating* ga,
                        Py_ssize_t n, double lr, double alpha, double eps, double weight_decay,
                        double momentum, bint maximize) noexcept nogil:
    cdef floating sign = -1.0 if maximize else 1.0
    cdef floating wd = weight_decay, a = alpha, one_minus_a = 1.0 - alpha, eps_ = eps
    cdef floating mu = momentum, lr_ = lr, neg_lr = -lr
    cdef bint decay = weight_decay != 0.0, centered = ga != NULL, use_buf = buf != NULL
    cdef floating gi, vi, gai, avg, bi
    cdef Py_ssize_t i
    for i in range(n):
        gi = effective_grad(g[i], p[i], sign, wd, decay)           # g_t
        vi = a * v[i] + (one_minus_a * gi) * gi         # v_t
        v[i] = vi
        if centered:
            gai = ga[i] + one_minus_a * (gi - ga[i])    # ga_t
            ga[i] = gai
            vi = vi - gai * gai                         # v_t~
        avg = fsqrt(vi) + eps_                           # avg_t
        if use_buf:
            bi = mu * buf[i] + gi / avg                 # b_t
            buf[i] = bi
            p[i] = p[i] - lr_ * bi                      # p_t
        else:
            p[i] = p[i] + (neg_lr * gi) / avg           # p_t


def rmsprop(floating[::1] param, const floating[::1] grad, floating[::1] step,
            floating[::1] square_avg, floating[::1] momentum_buffer=None,
            floating[::1] grad_avg=None, *,
            double lr, double alpha, double eps, double weight_decay, double momentum,
            bint maximize):
    """One RMSprop step in place, as torch.optim.RMSprop: centered when ``grad_avg`` is given;
    ``momentum_buffer`` is needed when momentum > 0. Increments ``step`` (unused by the math)."""
    cdef Py_ssize_t n = param.shape[0]
    cdef floating* buf = NULL
    cdef floating* ga = NULL
    check_size(n, grad.shape[0], "grad")
    check_counter(step.shape[0], "step")
    check_size(n, square_avg.shape[0], "square_avg")
    if momentum > 0.0:
        if momentum_buffer is None:
            raise ValueError("momentum_buffer is required when momentum > 0")
        check_size(n, momentum_buffer.shape[0], "momentum_buffer")
    if grad_avg is not None:
        check_size(n, grad_avg.shape[0], "grad_avg")
    step[0] = step[0] + 1                                                       # t
    if n == 0:
        return
    if momentum > 0.0:
        buf = &momentum_buffer[0]
    if grad_avg is not None:
        ga = &grad_avg[0]
    with nogil:
        _rmsprop_span(&param[0], &grad[0], &square_avg[0], buf, ga, n, lr, alpha, eps,
                      weight_decay, momentum, maximize)


cdef void _adadelta_span(floating* p, const floating* g, floating* v, floating* u, Py_ssize_t n,
                         double lr, double rho, double eps, double weight_decay,
                         bint maximize) noexcept nogil:
    cdef floating sign = -1.0 if maximize else 1.0
    cdef floating wd = weight_decay, r = rho, one_minus_r = 1.0 - rho, eps_ = eps, lr_ = lr
    cdef bint decay = weight_decay != 0.0
    cdef floating gi, vi, dx
    cdef Py_ssize_t i
    for i in range(n):
        gi = effective_grad(g[i], p[i], sign, wd, decay)           # g_t
        vi = r * v[i] + (one_minus_r * gi) * gi         # v_t
        v[i] = vi
        dx = fsqrt(u[i] + eps_) / fsqrt(vi + eps_) * gi   # dx_t
        u[i] = r * u[i] + (one_minus_r * dx) * dx       # u_t
        p[i] = p[i] - lr_ * dx                          # p_t


def adadelta(floating[::1] param, const floating[::1] grad, floating[::1] step,
             floating[::1] square_avg, floating[::1] acc_delta, *,
             double lr, double rho, double eps, double weight_decay, bint maximize):
    """One Adadelta step in place, as torch.optim.Adadelta (eps inside both square roots).
    Increments ``step`` (unused by the math)."""
    cdef Py_ssize_t n = param.shape[0]
    check_size(n, grad.shape[0], "grad")
    check_counter(step.shape[0], "step")
    check_size(n, square_avg.shape[0], "square_avg")
    check_size(n, acc_delta.shape[0], "acc_delta")
    step[0] = step[0] + 1                                                       # t
    if n == 0:
        return
    with nogil:
        _adadelta_span(&param[0], &grad[0], &square_avg[0], &acc_delta[0], n, lr, rho, eps,
                       weight_decay, maximize)
