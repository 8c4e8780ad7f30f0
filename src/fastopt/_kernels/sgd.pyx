"""Fused kernels of the SGD family: ``sgd`` (momentum, dampening, Nesterov, torch.optim.SGD) and
``momentum`` (the texts' EMA form). Each has three entry points over the same loop: ``*_batch`` checks
a list of tensors (a None gradient skips its tensor) and returns their work items for the runtime's
``run``; ``*_group`` checks and runs one list; the rule's own name, one tensor.

Reference twin: ``fastopt/reference/sgd.py``; every line that computes a symbol carries the same tag there.

    sgd:       g = ±g + wd*p;  b = g (first step) or mu*b + (1-dampening)*g;  g = g + mu*b (nesterov) or b
               p = p - lr*g
    momentum:  v = beta*v + (1-beta)*g;  p = p - lr*v
"""
cimport numpy as cnp

from cython cimport floating

from fastopt._kernels._runtime cimport Batch, new_batch, run, WorkHead
from fastopt._kernels._util cimport (batch_add, batch_state, build_info, effective_grad, load, loop_format, save, store,
                                     stream, work_head)
from fastopt._kernels._util cimport fo_bf16, fo_bf16sr, fo_f16, FO_BF16, FO_BF16_SR, FO_F16, FO_F32, FO_F64

cnp.import_array()
BUILD = build_info()


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
