"""Fused kernels of the SGD family: ``sgd`` (momentum, dampening, Nesterov, torch.optim.SGD) and
``momentum`` (the texts' EMA form).

Reference twin: ``fastopt/reference/sgd.py``; every line that computes a symbol carries the same tag there.

    sgd:       g = ±g + wd*p;  b = g (first step) or mu*b + (1-dampening)*g;  g = g + mu*b (nesterov) or b
               p = p - lr*g
    momentum:  v = beta*v + (1-beta)*g;  p = p - lr*v
"""
from cython cimport floating

from ._util cimport check_size, effective_grad


cdef void _sgd_span(floating* p, const floating* g, floating* buf, Py_ssize_t n,
                    double lr, double momentum, double dampening, double weight_decay,
                    bint nesterov, bint maximize, bint first_step) noexcept nogil:
    cdef floating sign = -1.0 if maximize else 1.0
    cdef floating wd = weight_decay, mu = momentum, damp1 = 1.0 - dampening, lr_ = lr
    cdef bint decay = weight_decay != 0.0, use_buf = buf != NULL
    cdef floating gi, b
    cdef Py_ssize_t i
    for i in range(n):
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
        p[i] = p[i] - lr_ * gi                          # p_t


def sgd(floating[::1] param, const floating[::1] grad, floating[::1] momentum_buffer=None, *,
        double lr, double momentum, double dampening, double weight_decay,
        bint nesterov, bint maximize, bint first_step):
    """One SGD step in place, as torch.optim.SGD. ``momentum_buffer`` is needed when momentum != 0;
    ``first_step`` copies the gradient into it instead of decaying it (torch's first-step rule)."""
    cdef Py_ssize_t n = param.shape[0]
    cdef floating* buf = NULL
    check_size(n, grad.shape[0], "grad")
    if momentum != 0.0:
        if momentum_buffer is None:
            raise ValueError("momentum_buffer is required when momentum != 0")
        check_size(n, momentum_buffer.shape[0], "momentum_buffer")
    if n == 0:
        return
    if momentum != 0.0:
        buf = &momentum_buffer[0]
    with nogil:
        _sgd_span(&param[0], &grad[0], buf, n, lr, momentum, dampening, weight_decay,
                  nesterov, maximize, first_step)


cdef void _momentum_span(floating* p, const floating* g, floating* v, Py_ssize_t n,
                         double lr, double beta) noexcept nogil:
    cdef floating beta_ = beta, one_minus_beta = 1.0 - beta, lr_ = lr
    cdef floating vi
    cdef Py_ssize_t i
    for i in range(n):
        vi = beta_ * v[i] + one_minus_beta * g[i]       # v_t
        v[i] = vi
        p[i] = p[i] - lr_ * vi                          # p_t


def momentum(floating[::1] param, const floating[::1] grad, floating[::1] momentum_buffer, *,
             double lr, double beta):
    """One step of the texts' momentum in place: v = beta*v + (1-beta)*g; p -= lr*v (v starts at 0)."""
    cdef Py_ssize_t n = param.shape[0]
    check_size(n, grad.shape[0], "grad")
    check_size(n, momentum_buffer.shape[0], "momentum_buffer")
    if n == 0:
        return
    with nogil:
        _momentum_span(&param[0], &grad[0], &momentum_buffer[0], n, lr, beta)
