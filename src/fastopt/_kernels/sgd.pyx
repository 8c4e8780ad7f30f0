"""Fused kernels of the SGD family: ``sgd`` (momentum, dampening, Nesterov, torch.optim.SGD),
``momentum`` (the texts' EMA form), ``asgd`` (averaged SGD, torch.optim.ASGD), and the sign rules
``rprop`` (torch.optim.Rprop) and ``lion`` (Chen et al. 2023, google/automl's lion_pytorch). Each has three entry points over the same loop: ``*_batch`` checks
a list of tensors (a None gradient skips its tensor) and returns their work items for the runtime's
``run``; ``*_group`` checks and runs one list; the rule's own name, one tensor.

Reference twin: ``fastopt/reference/sgd.py``; every line that computes a symbol carries the same tag there.

    sgd:       g = ±g + wd*p;  b = g (first step) or mu*b + (1-dampening)*g;  g = g + mu*b (nesterov) or b
               p = p - lr*g
    momentum:  v = beta*v + (1-beta)*g;  p = p - lr*v
    asgd:      g = ±g + wd*p;  p = p*(1 - lambd*eta);  p = p - eta*g;  ax = p (mu == 1) or ax + (p-ax)*mu
               eta, mu: the values the last step stored (its prologue stores the next ones)
    rprop:     s = g*prev;  f = etaplus (s > 0), etaminus (s < 0), 1 (else);  h = clamp(h*f, min, max)
               g = 0 where f == etaminus;  p = p - sign(g)*h;  prev = g
    lion:      p = p*(1 - lr*wd);  c = m*b1 + g*(1-b1);  p = p - sign(c)*lr;  m = m*b2 + g*(1-b2)

``sign`` is torch's: +1, -1, or 0 for zeros and NaN (torch.sign(nan) is 0 on CPU).
"""
cimport numpy as cnp
from libc.math cimport pow

from cython cimport floating

from fastopt._kernels._runtime cimport Batch, new_batch, run, WorkHead
from fastopt._kernels._util cimport (batch_add, batch_counter, batch_state, build_info, bump, counter_get,
                                     counter_set, effective_grad, load, loop_format, save, store, stream,
                                     work_head)
from fastopt._kernels._util cimport fo_bf16, fo_bf16sr, fo_f16, FO_BF16, FO_BF16_SR, FO_F16, FO_F32, FO_F64

cnp.import_array()
BUILD = build_info()


cdef inline floating sign_of(floating x) noexcept nogil:
    """torch.sign on CPU: 1 or -1, and +0 for zeros and NaN."""
    return <floating>(x > 0) - <floating>(x < 0)


cdef inline floating clamp(floating x, floating lo, floating hi) noexcept nogil:
    """torch.clamp: min(max(x, lo), hi), NaN propagating (hi wins when lo > hi)."""
    if x < lo:
        x = lo
    if x > hi:
        x = hi
    return x


# -- sgd ----------------------------------------------------------------------------------------------

ctypedef struct SGDWork:
    WorkHead head
    void* p
    const void* g
    double grad_scale  # run()'s gradient scale (a clip coefficient); see _runtime.ItemHead
    void* buf
    int single
    double lr, momentum, dampening, weight_decay
    bint nesterov, maximize, first_step


cdef void _sgd_span(store* p, floating math, Py_ssize_t lo, Py_ssize_t hi, const SGDWork* w) noexcept nogil:
    cdef const store* g = <const store*>w.g
    cdef store* buf = <store*>w.buf
    cdef floating sign = -w.grad_scale if w.maximize else w.grad_scale
    cdef floating wd = w.weight_decay, mu = w.momentum, damp1 = 1.0 - w.dampening, lr = w.lr
    cdef bint decay = w.weight_decay != 0.0, use_buf = buf != NULL
    cdef bint nesterov = w.nesterov, first_step = w.first_step
    cdef floating gi, pi, b
    cdef Py_ssize_t i
    cdef unsigned int k_buf = stream(&w.head, &w.buf), k_p = stream(&w.head, &w.p)
    for i in range(lo, hi):
        load(&pi, p, i)
        load(&gi, g, i)
        gi = effective_grad(gi, pi, sign, wd, decay)    # g_t
        if use_buf:
            if first_step:
                b = gi                                  # b_t
            else:
                load(&b, buf, i)
                b = mu * b + damp1 * gi                 # b_t
            save(buf, i, b, k_buf)
            if nesterov:
                gi = gi + mu * b                        # g_t
            else:
                gi = b                                  # g_t
        save(p, i, pi - lr * gi, k_p)                   # p_t


cdef void _sgd_chunk(void* work, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef SGDWork* w = <SGDWork*>work
    cdef int fmt = loop_format(&w.head, hi)
    if fmt == FO_F32:
        _sgd_span(<float*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_F64:
        _sgd_span(<double*>w.p, <double>0, lo, hi, w)
    elif fmt == FO_BF16:
        _sgd_span(<fo_bf16*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_F16:
        _sgd_span(<fo_f16*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_BF16_SR:
        _sgd_span(<fo_bf16sr*>w.p, <float>0, lo, hi, w)
    else:
        w.head.staged_fn(work, lo, hi)


cdef void _sgd_init(SGDWork* w, int single, double lr, double momentum, double dampening,
                    double weight_decay, bint nesterov, bint maximize, bint first_step) noexcept:
    w.single, w.lr, w.momentum, w.dampening, w.weight_decay = single, lr, momentum, dampening, weight_decay
    w.nesterov, w.maximize, w.first_step = nesterov, maximize, first_step
    w.buf = NULL


SGD_NAMES = ("params", "grads", "momentum_buffers")


def sgd_batch(params, grads, momentum_buffers, double lr, double momentum, double dampening,
              double weight_decay, bint nesterov, bint maximize, first_steps=None,
              bint check_overlap=True, bint indexed=True):
    """The checked work items of an ``sgd_group`` call, for ``run``."""
    cdef Batch b = new_batch(SGD_NAMES, (params, grads, momentum_buffers), 2, sizeof(SGDWork), indexed)
    cdef tuple P = b.lists[0], G = b.lists[1]
    cdef object B = b.lists[2]
    if momentum != 0.0 and B is None:
        raise TypeError(f"{b.names[2]} {'are' if indexed else 'is'} required when momentum != 0")
    if first_steps is not None:
        if not isinstance(first_steps, (list, tuple)):
            raise TypeError(f"first_steps must be a list of bools (one per param), got {type(first_steps).__name__}")
        first_steps = tuple([bool(flag) for flag in first_steps])
        if len(first_steps) != len(P):
            raise ValueError(f"first_steps has {len(first_steps)} entries, expected {len(P)} (one per param)")
    cdef SGDWork* w
    cdef Py_ssize_t k, n
    cdef int single
    for k in range(len(P)):
        if G[k] is None:
            continue
        w = <SGDWork*>batch_add(b, work_head(_sgd_chunk, NULL), P[k], G[k], k, &single, &n)
        _sgd_init(w, single, lr, momentum, dampening, weight_decay, nesterov, maximize,
                  first_steps is not None and (<tuple>first_steps)[k])
        if momentum != 0.0:
            batch_state(b, <void**>&w.buf, (<tuple>B)[k], n, 2, k)
    if check_overlap:
        b.check_overlap()
    return b


def sgd(param, grad, momentum_buffer=None, *, double lr, double momentum, double dampening,
        double weight_decay, bint nesterov, bint maximize, bint first_step, n_threads=1):
    """One SGD step in place, as torch.optim.SGD. ``momentum_buffer`` is needed when momentum != 0;
    ``first_step`` copies the gradient into it instead of decaying it (torch's first-step rule)."""
    run(sgd_batch([param], [grad], None if momentum_buffer is None else [momentum_buffer], lr=lr,
                  momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov,
                  maximize=maximize, first_steps=[first_step], indexed=False), n_threads)


def sgd_group(params, grads, momentum_buffers=None, *, double lr, double momentum, double dampening,
              double weight_decay, bint nesterov, bint maximize, first_steps=None, n_threads=1):
    """``sgd`` on every tensor of a group in one call; ``first_steps[k]`` is tensor k's
    ``first_step`` (None: False for all). Checks everything before writing."""
    run(sgd_batch(params, grads, momentum_buffers, lr=lr, momentum=momentum, dampening=dampening,
                  weight_decay=weight_decay, nesterov=nesterov, maximize=maximize, first_steps=first_steps),
        n_threads)


# -- momentum -----------------------------------------------------------------------------------------

ctypedef struct MomentumWork:
    WorkHead head
    void* p
    const void* g
    double grad_scale  # run()'s gradient scale (a clip coefficient); see _runtime.ItemHead
    void* v
    int single
    double lr, beta


cdef void _momentum_span(store* p, floating math, Py_ssize_t lo, Py_ssize_t hi, const MomentumWork* w) noexcept nogil:
    cdef const store* g = <const store*>w.g
    cdef store* v = <store*>w.v
    cdef floating beta = w.beta, one_minus_beta = 1.0 - w.beta, lr = w.lr, scale = w.grad_scale
    cdef floating gi, pi, vi
    cdef Py_ssize_t i
    cdef unsigned int k_v = stream(&w.head, &w.v), k_p = stream(&w.head, &w.p)
    for i in range(lo, hi):
        load(&pi, p, i)
        load(&gi, g, i)
        load(&vi, v, i)
        vi = beta * vi + one_minus_beta * (scale * gi)  # v_t
        save(v, i, vi, k_v)
        save(p, i, pi - lr * vi, k_p)                   # p_t


cdef void _momentum_chunk(void* work, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef MomentumWork* w = <MomentumWork*>work
    cdef int fmt = loop_format(&w.head, hi)
    if fmt == FO_F32:
        _momentum_span(<float*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_F64:
        _momentum_span(<double*>w.p, <double>0, lo, hi, w)
    elif fmt == FO_BF16:
        _momentum_span(<fo_bf16*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_F16:
        _momentum_span(<fo_f16*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_BF16_SR:
        _momentum_span(<fo_bf16sr*>w.p, <float>0, lo, hi, w)
    else:
        w.head.staged_fn(work, lo, hi)


MOMENTUM_NAMES = ("params", "grads", "momentum_buffers")


def momentum_batch(params, grads, momentum_buffers, double lr, double beta, bint check_overlap=True,
                   bint indexed=True):
    """The checked work items of a ``momentum_group`` call, for ``run``."""
    cdef Batch b = new_batch(MOMENTUM_NAMES, (params, grads, momentum_buffers), 3, sizeof(MomentumWork), indexed)
    cdef tuple P = b.lists[0], G = b.lists[1], B = b.lists[2]
    cdef MomentumWork* w
    cdef Py_ssize_t k, n
    cdef int single
    for k in range(len(P)):
        if G[k] is None:
            continue
        w = <MomentumWork*>batch_add(b, work_head(_momentum_chunk, NULL), P[k], G[k], k, &single, &n)
        w.single, w.lr, w.beta = single, lr, beta
        batch_state(b, <void**>&w.v, B[k], n, 2, k)
    if check_overlap:
        b.check_overlap()
    return b


def momentum(param, grad, momentum_buffer, *, double lr, double beta, n_threads=1):
    """One step of the texts' momentum in place: v = beta*v + (1-beta)*g; p -= lr*v (v starts at 0)."""
    run(momentum_batch([param], [grad], [momentum_buffer], lr=lr, beta=beta, indexed=False), n_threads)


def momentum_group(params, grads, momentum_buffers, *, double lr, double beta, n_threads=1):
    """``momentum`` on every tensor of a group in one call. Checks everything before writing."""
    run(momentum_batch(params, grads, momentum_buffers, lr=lr, beta=beta), n_threads)


# -- asgd ---------------------------------------------------------------------------------------------

ctypedef struct ASGDWork:
    WorkHead head
    void* p
    const void* g
    double grad_scale  # run()'s gradient scale (a clip coefficient); see _runtime.ItemHead
    void* step
    int step_single  # the counters' own dtypes (torch keeps them float32 for float64 params)
    void* eta
    int eta_single
    void* mu
    int mu_single
    void* ax
    int single
    double lr, lambd, alpha, t0, weight_decay
    bint maximize
    double eta_now, mu_now, decay_factor  # this tensor's step scalars


cdef void _asgd_prologue(void* work) noexcept nogil:
    cdef ASGDWork* w = <ASGDWork*>work
    cdef double t = bump(w.step, w.step_single)                                          # t
    w.eta_now = counter_get(w.eta, w.eta_single)                                         # eta
    w.mu_now = counter_get(w.mu, w.mu_single)                                            # mu
    w.decay_factor = 1.0 - w.lambd * w.eta_now                                           # decay
    counter_set(w.eta, w.eta_single, w.lr / pow(1.0 + (w.lambd * w.lr) * t, w.alpha))   # eta_next
    counter_set(w.mu, w.mu_single, 1.0 / (t - w.t0 if t - w.t0 > 1.0 else 1.0))         # mu_next


cdef void _asgd_span(store* p, floating math, Py_ssize_t lo, Py_ssize_t hi, const ASGDWork* w) noexcept nogil:
    cdef const store* g = <const store*>w.g
    cdef store* ax = <store*>w.ax
    cdef floating sign = -w.grad_scale if w.maximize else w.grad_scale
    cdef floating wd = w.weight_decay, decay = w.decay_factor, eta = w.eta_now
    cdef floating mu = w.mu_now
    cdef bint coupled_decay = w.weight_decay != 0.0
    cdef bint average = w.mu_now != 1.0
    cdef floating gi, pi, ai
    cdef Py_ssize_t i
    cdef unsigned int k_ax = stream(&w.head, &w.ax), k_p = stream(&w.head, &w.p)
    for i in range(lo, hi):  # (gcc unswitches the loop on ``average``: no load of ax when it is a copy)
        load(&pi, p, i)
        load(&gi, g, i)
        gi = effective_grad(gi, pi, sign, wd, coupled_decay)   # g_t
        pi = pi * decay                                 # p_t
        pi = pi - eta * gi                              # p_t
        save(p, i, pi, k_p)
        if average:
            load(&ai, ax, i)
            ai = ai + (pi - ai) * mu                    # ax_t
        else:
            ai = pi                                     # ax_t (mu is 1: a copy, as torch's)
        save(ax, i, ai, k_ax)


cdef void _asgd_chunk(void* work, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef ASGDWork* w = <ASGDWork*>work
    cdef int fmt = loop_format(&w.head, hi)
    if fmt == FO_F32:
        _asgd_span(<float*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_F64:
        _asgd_span(<double*>w.p, <double>0, lo, hi, w)
    elif fmt == FO_BF16:
        _asgd_span(<fo_bf16*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_F16:
        _asgd_span(<fo_f16*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_BF16_SR:
        _asgd_span(<fo_bf16sr*>w.p, <float>0, lo, hi, w)
    else:
        w.head.staged_fn(work, lo, hi)


ASGD_NAMES = ("params", "grads", "steps", "etas", "mus", "axs")


def asgd_batch(params, grads, steps, etas, mus, axs, double lr, double lambd, double alpha, double t0,
               double weight_decay, bint maximize, bint check_overlap=True, bint indexed=True):
    """The checked work items of an ``asgd_group`` call, for ``run``."""
    cdef Batch b = new_batch(ASGD_NAMES, (params, grads, steps, etas, mus, axs), 6, sizeof(ASGDWork), indexed)
    cdef tuple P = b.lists[0], G = b.lists[1], S = b.lists[2], E = b.lists[3], MU = b.lists[4], AX = b.lists[5]
    cdef ASGDWork* w
    cdef Py_ssize_t k, n
    cdef int single
    for k in range(len(P)):
        if G[k] is None:
            continue
        w = <ASGDWork*>batch_add(b, work_head(_asgd_chunk, _asgd_prologue), P[k], G[k], k, &single, &n)
        w.single, w.lr, w.lambd, w.alpha, w.t0 = single, lr, lambd, alpha, t0
        w.weight_decay, w.maximize = weight_decay, maximize
        w.step = batch_counter(b, S[k], single, &w.step_single, 2, k)
        w.eta = batch_counter(b, E[k], single, &w.eta_single, 3, k)
        w.mu = batch_counter(b, MU[k], single, &w.mu_single, 4, k)
        batch_state(b, <void**>&w.ax, AX[k], n, 5, k)
    if check_overlap:
        b.check_overlap()
    return b


def asgd(param, grad, step, eta, mu, ax, *, double lr, double lambd, double alpha, double t0,
         double weight_decay, bint maximize, n_threads=1):
    """One ASGD step in place, as torch.optim.ASGD. Increments ``step`` and stores the next step's
    ``eta`` and ``mu`` (rounded to their dtypes, as torch's tensors)."""
    run(asgd_batch([param], [grad], [step], [eta], [mu], [ax], lr=lr, lambd=lambd, alpha=alpha, t0=t0,
                   weight_decay=weight_decay, maximize=maximize, indexed=False), n_threads)


def asgd_group(params, grads, steps, etas, mus, axs, *, double lr, double lambd, double alpha, double t0,
               double weight_decay, bint maximize, n_threads=1):
    """``asgd`` on every tensor of a group in one call. Checks everything before writing."""
    run(asgd_batch(params, grads, steps, etas, mus, axs, lr=lr, lambd=lambd, alpha=alpha, t0=t0,
                   weight_decay=weight_decay, maximize=maximize), n_threads)


# -- rprop --------------------------------------------------------------------------------------------

ctypedef struct RpropWork:
    WorkHead head
    void* p
    const void* g
    double grad_scale  # run()'s gradient scale (a clip coefficient); see _runtime.ItemHead
    void* step
    int step_single
    void* prev
    void* step_size
    int single
    double etaminus, etaplus, step_size_min, step_size_max
    bint maximize


cdef void _rprop_prologue(void* work) noexcept nogil:
    cdef RpropWork* w = <RpropWork*>work
    bump(w.step, w.step_single)                                                 # t (counted, unused)


cdef void _rprop_span(store* p, floating math, Py_ssize_t lo, Py_ssize_t hi, const RpropWork* w) noexcept nogil:
    cdef const store* g = <const store*>w.g
    cdef store* prev = <store*>w.prev
    cdef store* h = <store*>w.step_size
    cdef floating sign = -w.grad_scale if w.maximize else w.grad_scale
    cdef floating etaminus = w.etaminus, etaplus = w.etaplus
    cdef floating lo_step = w.step_size_min, hi_step = w.step_size_max
    cdef floating gi, pi, qi, hi_, s, f
    cdef Py_ssize_t i
    cdef unsigned int k_prev = stream(&w.head, &w.prev), k_h = stream(&w.head, &w.step_size)
    cdef unsigned int k_p = stream(&w.head, &w.p)
    for i in range(lo, hi):
        load(&pi, p, i)
        load(&gi, g, i)
        load(&qi, prev, i)
        load(&hi_, h, i)
        gi = sign * gi                                  # g_t
        s = gi * qi                                     # s_t
        f = etaplus if s > 0 else (etaminus if s < 0 else 1)       # f_t
        hi_ = clamp(hi_ * f, lo_step, hi_step)          # h_t
        if f == etaminus:
            gi = 0                                      # g_t
        save(h, i, hi_, k_h)
        save(prev, i, gi, k_prev)
        save(p, i, pi - sign_of(gi) * hi_, k_p)         # p_t


cdef void _rprop_chunk(void* work, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef RpropWork* w = <RpropWork*>work
    cdef int fmt = loop_format(&w.head, hi)
    if fmt == FO_F32:
        _rprop_span(<float*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_F64:
        _rprop_span(<double*>w.p, <double>0, lo, hi, w)
    elif fmt == FO_BF16:
        _rprop_span(<fo_bf16*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_F16:
        _rprop_span(<fo_f16*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_BF16_SR:
        _rprop_span(<fo_bf16sr*>w.p, <float>0, lo, hi, w)
    else:
        w.head.staged_fn(work, lo, hi)


RPROP_NAMES = ("params", "grads", "steps", "prevs", "step_sizes")


def rprop_batch(params, grads, steps, prevs, step_sizes, double etaminus, double etaplus, double step_size_min,
                double step_size_max, bint maximize, bint check_overlap=True, bint indexed=True):
    """The checked work items of an ``rprop_group`` call, for ``run``."""
    cdef Batch b = new_batch(RPROP_NAMES, (params, grads, steps, prevs, step_sizes), 5, sizeof(RpropWork), indexed)
    cdef tuple P = b.lists[0], G = b.lists[1], S = b.lists[2], Q = b.lists[3], H = b.lists[4]
    cdef RpropWork* w
    cdef Py_ssize_t k, n
    cdef int single
    for k in range(len(P)):
        if G[k] is None:
            continue
        w = <RpropWork*>batch_add(b, work_head(_rprop_chunk, _rprop_prologue), P[k], G[k], k, &single, &n)
        w.single, w.etaminus, w.etaplus = single, etaminus, etaplus
        w.step_size_min, w.step_size_max, w.maximize = step_size_min, step_size_max, maximize
        w.step = batch_counter(b, S[k], single, &w.step_single, 2, k)
        batch_state(b, <void**>&w.prev, Q[k], n, 3, k)
        batch_state(b, <void**>&w.step_size, H[k], n, 4, k)
    if check_overlap:
        b.check_overlap()
    return b


def rprop(param, grad, step, prev, step_size, *, double etaminus, double etaplus, double step_size_min,
          double step_size_max, bint maximize, n_threads=1):
    """One Rprop step in place, as torch.optim.Rprop (``step_size`` starts at lr). Increments ``step``."""
    run(rprop_batch([param], [grad], [step], [prev], [step_size], etaminus=etaminus, etaplus=etaplus,
                    step_size_min=step_size_min, step_size_max=step_size_max, maximize=maximize,
                    indexed=False), n_threads)


def rprop_group(params, grads, steps, prevs, step_sizes, *, double etaminus, double etaplus,
                double step_size_min, double step_size_max, bint maximize, n_threads=1):
    """``rprop`` on every tensor of a group in one call. Checks everything before writing."""
    run(rprop_batch(params, grads, steps, prevs, step_sizes, etaminus=etaminus, etaplus=etaplus,
                    step_size_min=step_size_min, step_size_max=step_size_max, maximize=maximize), n_threads)


# -- lion ---------------------------------------------------------------------------------------------

ctypedef struct LionWork:
    WorkHead head
    void* p
    const void* g
    double grad_scale  # run()'s gradient scale (a clip coefficient); see _runtime.ItemHead
    void* m
    int single
    double lr, beta1, beta2, weight_decay
    bint maximize


cdef void _lion_span(store* p, floating math, Py_ssize_t lo, Py_ssize_t hi, const LionWork* w) noexcept nogil:
    cdef const store* g = <const store*>w.g
    cdef store* m = <store*>w.m
    cdef floating sign = -w.grad_scale if w.maximize else w.grad_scale
    cdef floating decay = 1.0 - w.lr * w.weight_decay, lr = w.lr
    cdef floating b1 = w.beta1, one_minus_b1 = 1.0 - w.beta1, b2 = w.beta2, one_minus_b2 = 1.0 - w.beta2
    cdef floating gi, pi, mi, c
    cdef Py_ssize_t i
    cdef unsigned int k_m = stream(&w.head, &w.m), k_p = stream(&w.head, &w.p)
    for i in range(lo, hi):
        load(&pi, p, i)
        load(&gi, g, i)
        load(&mi, m, i)
        gi = sign * gi                                  # g_t
        pi = pi * decay                                 # p_t
        c = mi * b1 + gi * one_minus_b1                 # c_t
        save(p, i, pi - sign_of(c) * lr, k_p)           # p_t
        save(m, i, mi * b2 + gi * one_minus_b2, k_m)    # m_t


cdef void _lion_chunk(void* work, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef LionWork* w = <LionWork*>work
    cdef int fmt = loop_format(&w.head, hi)
    if fmt == FO_F32:
        _lion_span(<float*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_F64:
        _lion_span(<double*>w.p, <double>0, lo, hi, w)
    elif fmt == FO_BF16:
        _lion_span(<fo_bf16*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_F16:
        _lion_span(<fo_f16*>w.p, <float>0, lo, hi, w)
    elif fmt == FO_BF16_SR:
        _lion_span(<fo_bf16sr*>w.p, <float>0, lo, hi, w)
    else:
        w.head.staged_fn(work, lo, hi)


LION_NAMES = ("params", "grads", "exp_avgs")


def lion_batch(params, grads, exp_avgs, double lr, double beta1, double beta2, double weight_decay,
               bint maximize, bint check_overlap=True, bint indexed=True):
    """The checked work items of a ``lion_group`` call, for ``run``."""
    cdef Batch b = new_batch(LION_NAMES, (params, grads, exp_avgs), 3, sizeof(LionWork), indexed)
    cdef tuple P = b.lists[0], G = b.lists[1], M = b.lists[2]
    cdef LionWork* w
    cdef Py_ssize_t k, n
    cdef int single
    for k in range(len(P)):
        if G[k] is None:
            continue
        w = <LionWork*>batch_add(b, work_head(_lion_chunk, NULL), P[k], G[k], k, &single, &n)
        w.single, w.lr, w.beta1, w.beta2 = single, lr, beta1, beta2
        w.weight_decay, w.maximize = weight_decay, maximize
        batch_state(b, <void**>&w.m, M[k], n, 2, k)
    if check_overlap:
        b.check_overlap()
    return b


def lion(param, grad, exp_avg, *, double lr, double beta1, double beta2, double weight_decay, bint maximize,
         n_threads=1):
    """One Lion step in place, as google/automl's lion_pytorch (no step counter)."""
    run(lion_batch([param], [grad], [exp_avg], lr=lr, beta1=beta1, beta2=beta2, weight_decay=weight_decay,
                   maximize=maximize, indexed=False), n_threads)


def lion_group(params, grads, exp_avgs, *, double lr, double beta1, double beta2, double weight_decay,
               bint maximize, n_threads=1):
    """``lion`` on every tensor of a group in one call. Checks everything before writing."""
    run(lion_batch(params, grads, exp_avgs, lr=lr, beta1=beta1, beta2=beta2, weight_decay=weight_decay,
                   maximize=maximize), n_threads)
