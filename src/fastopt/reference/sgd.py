"""Pure-NumPy twins of ``fastopt/_kernels/sgd.pyx``: same signatures, same math, same line order and tags.

Scalars are Python floats, so NumPy rounds them to the array dtype where they meet an array (NEP 50),
exactly as the kernel casts them; float32 results are bit-identical to the kernel's.
"""
import numpy as np

from ._util import Batch, cpow, divide, effective_grad, real, run, sign, tensors


def _sgd(param, grad, momentum_buffer, first_step, *, lr, momentum, dampening, weight_decay, nesterov,
         maximize, grad_scale=1.0):
    """One SGD step on flat views (``sgd`` checks them), as the kernel's ``_sgd_span``."""
    g = effective_grad(grad, param, maximize, weight_decay, grad_scale)         # g_t
    if momentum != 0.0:
        if first_step:
            b = g                                                   # b_t
        else:
            b = momentum * momentum_buffer + (1.0 - dampening) * g  # b_t
        momentum_buffer[...] = b
        if nesterov:
            g = g + momentum * b                                    # g_t
        else:
            g = b                                                   # g_t
    param[...] = param - lr * g                                     # p_t


def _momentum(param, grad, momentum_buffer, *, lr, beta, grad_scale=1.0):
    """One step of the texts' momentum on flat views, as the kernel's ``_momentum_span``."""
    g = grad if grad_scale == 1.0 else grad.dtype.type(grad_scale) * grad      # g_t
    v = beta * momentum_buffer + (1.0 - beta) * g                   # v_t
    momentum_buffer[...] = v
    param[...] = param - lr * v                                     # p_t


def _asgd(param, grad, step, eta, mu, ax, *, lr, lambd, alpha, t0, weight_decay, maximize, grad_scale=1.0):
    """One ASGD step on flat views, as the kernel's prologue and ``_asgd_span``."""
    step += 1                                                                   # t
    t = float(step.reshape(-1)[0])
    eta_now = float(eta.reshape(-1)[0])                                         # eta
    mu_now = float(mu.reshape(-1)[0])                                           # mu
    decay_factor = 1.0 - lambd * eta_now                                        # decay
    eta[...] = divide(lr, cpow(1.0 + (lambd * lr) * t, alpha))                  # eta_next
    mu[...] = 1.0 / max(1.0, t - t0)                                            # mu_next
    g = effective_grad(grad, param, maximize, weight_decay, grad_scale)         # g_t
    p = param * decay_factor                                                    # p_t
    p = p - eta_now * g                                                         # p_t
    param[...] = p
    if mu_now != 1.0:
        p = ax + (p - ax) * mu_now                                              # ax_t
    ax[...] = p


def _rprop(param, grad, step, prev, step_size, *, etaminus, etaplus, step_size_min, step_size_max, maximize,
           grad_scale=1.0):
    """One Rprop step on flat views, as the kernel's ``_rprop_span``."""
    step += 1                                                                   # t (counted, unused)
    real_t = param.dtype.type
    g = effective_grad(grad, param, maximize, 0.0, grad_scale)                  # g_t
    s = g * prev                                                                # s_t
    f = np.where(s > 0, real_t(etaplus), np.where(s < 0, real_t(etaminus), real_t(1)))  # f_t
    h = np.minimum(np.maximum(step_size * f, real_t(step_size_min)), real_t(step_size_max))  # h_t
    g = np.where(f == real_t(etaminus), real_t(0), g)                           # g_t
    step_size[...] = h
    prev[...] = g
    param[...] = param - sign(g) * h                                            # p_t


def _lion(param, grad, exp_avg, *, lr, beta1, beta2, weight_decay, maximize, grad_scale=1.0):
    """One Lion step on flat views, as the kernel's ``_lion_span``."""
    g = effective_grad(grad, param, maximize, 0.0, grad_scale)                  # g_t
    p = param * (1.0 - lr * weight_decay)                                       # p_t
    c = exp_avg * beta1 + g * (1.0 - beta1)                                     # c_t
    param[...] = p - sign(c) * lr                                               # p_t
    exp_avg[...] = exp_avg * beta2 + g * (1.0 - beta2)                          # m_t


SGD_NAMES = ("params", "grads", "momentum_buffers")


def sgd_batch(params, grads, momentum_buffers, lr, momentum, dampening, weight_decay, nesterov,
              maximize, first_steps=None, check_overlap=True, indexed=True):
    """The checked work of an ``sgd_group`` call, for ``run``."""
    hyper = dict(lr=real(lr), momentum=real(momentum), dampening=real(dampening),
                 weight_decay=real(weight_decay), nesterov=bool(nesterov), maximize=bool(maximize))
    if hyper["momentum"] != 0.0 and momentum_buffers is None:
        raise TypeError(f"momentum_buffer{'s are' if indexed else ' is'} required when momentum != 0")
    work = tensors(SGD_NAMES, (params, grads, momentum_buffers if hyper["momentum"] != 0.0 else None), 2,
                   check_overlap, indexed)
    if first_steps is not None:
        if not isinstance(first_steps, (list, tuple)):
            raise TypeError(f"first_steps must be a list of bools (one per param), got {type(first_steps).__name__}")
        first_steps = tuple(bool(flag) for flag in first_steps)
        if len(first_steps) != len(params):
            raise ValueError(f"first_steps has {len(first_steps)} entries, expected {len(params)} (one per param)")
    return Batch(_sgd, [(*args[1:], first_steps is not None and first_steps[args[0]]) for args in work], hyper)


def sgd(param, grad, momentum_buffer=None, *, lr, momentum, dampening, weight_decay, nesterov, maximize,
        first_step, n_threads=1):
    """One SGD step in place, as torch.optim.SGD (see the kernel's docstring)."""
    run(sgd_batch([param], [grad], None if momentum_buffer is None else [momentum_buffer], lr=lr,
                  momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov,
                  maximize=maximize, first_steps=[first_step], indexed=False), n_threads)


def sgd_group(params, grads, momentum_buffers=None, *, lr, momentum, dampening, weight_decay, nesterov,
              maximize, first_steps=None, n_threads=1):
    """``sgd`` on every tensor of a group; ``first_steps[k]`` is tensor k's ``first_step``."""
    run(sgd_batch(params, grads, momentum_buffers, lr=lr, momentum=momentum, dampening=dampening,
                  weight_decay=weight_decay, nesterov=nesterov, maximize=maximize, first_steps=first_steps),
        n_threads)


MOMENTUM_NAMES = ("params", "grads", "momentum_buffers")


def momentum_batch(params, grads, momentum_buffers, lr, beta, check_overlap=True, indexed=True):
    """The checked work of a ``momentum_group`` call, for ``run``."""
    hyper = dict(lr=real(lr), beta=real(beta))
    work = tensors(MOMENTUM_NAMES, (params, grads, momentum_buffers), 3, check_overlap, indexed)
    return Batch(_momentum, [args[1:] for args in work], hyper)


def momentum(param, grad, momentum_buffer, *, lr, beta, n_threads=1):
    """One step of the texts' momentum in place: v = beta*v + (1-beta)*g; p -= lr*v."""
    run(momentum_batch([param], [grad], [momentum_buffer], lr=lr, beta=beta, indexed=False), n_threads)


def momentum_group(params, grads, momentum_buffers, *, lr, beta, n_threads=1):
    """``momentum`` on every tensor of a group."""
    run(momentum_batch(params, grads, momentum_buffers, lr=lr, beta=beta), n_threads)


ASGD_NAMES = ("params", "grads", "steps", "etas", "mus", "axs")


def asgd_batch(params, grads, steps, etas, mus, axs, lr, lambd, alpha, t0, weight_decay, maximize,
               check_overlap=True, indexed=True):
    """The checked work of an ``asgd_group`` call, for ``run``."""
    hyper = dict(lr=real(lr), lambd=real(lambd), alpha=real(alpha), t0=real(t0),
                 weight_decay=real(weight_decay), maximize=bool(maximize))
    work = tensors(ASGD_NAMES, (params, grads, steps, etas, mus, axs), 6, check_overlap, indexed)
    return Batch(_asgd, [args[1:] for args in work], hyper)


def asgd(param, grad, step, eta, mu, ax, *, lr, lambd, alpha, t0, weight_decay, maximize, n_threads=1):
    """One ASGD step in place, as torch.optim.ASGD (see the kernel's docstring)."""
    run(asgd_batch([param], [grad], [step], [eta], [mu], [ax], lr=lr, lambd=lambd, alpha=alpha, t0=t0,
                   weight_decay=weight_decay, maximize=maximize, indexed=False), n_threads)


def asgd_group(params, grads, steps, etas, mus, axs, *, lr, lambd, alpha, t0, weight_decay, maximize,
               n_threads=1):
    """``asgd`` on every tensor of a group."""
    run(asgd_batch(params, grads, steps, etas, mus, axs, lr=lr, lambd=lambd, alpha=alpha, t0=t0,
                   weight_decay=weight_decay, maximize=maximize), n_threads)


RPROP_NAMES = ("params", "grads", "steps", "prevs", "step_sizes")


def rprop_batch(params, grads, steps, prevs, step_sizes, etaminus, etaplus, step_size_min, step_size_max,
                maximize, check_overlap=True, indexed=True):
    """The checked work of an ``rprop_group`` call, for ``run``."""
    hyper = dict(etaminus=real(etaminus), etaplus=real(etaplus), step_size_min=real(step_size_min),
                 step_size_max=real(step_size_max), maximize=bool(maximize))
    work = tensors(RPROP_NAMES, (params, grads, steps, prevs, step_sizes), 5, check_overlap, indexed)
    return Batch(_rprop, [args[1:] for args in work], hyper)


def rprop(param, grad, step, prev, step_size, *, etaminus, etaplus, step_size_min, step_size_max, maximize,
          n_threads=1):
    """One Rprop step in place, as torch.optim.Rprop (see the kernel's docstring)."""
    run(rprop_batch([param], [grad], [step], [prev], [step_size], etaminus=etaminus, etaplus=etaplus,
                    step_size_min=step_size_min, step_size_max=step_size_max, maximize=maximize,
                    indexed=False), n_threads)


def rprop_group(params, grads, steps, prevs, step_sizes, *, etaminus, etaplus, step_size_min, step_size_max,
                maximize, n_threads=1):
    """``rprop`` on every tensor of a group."""
    run(rprop_batch(params, grads, steps, prevs, step_sizes, etaminus=etaminus, etaplus=etaplus,
                    step_size_min=step_size_min, step_size_max=step_size_max, maximize=maximize), n_threads)


LION_NAMES = ("params", "grads", "exp_avgs")


def lion_batch(params, grads, exp_avgs, lr, beta1, beta2, weight_decay, maximize, check_overlap=True,
               indexed=True):
    """The checked work of a ``lion_group`` call, for ``run``."""
    hyper = dict(lr=real(lr), beta1=real(beta1), beta2=real(beta2), weight_decay=real(weight_decay),
                 maximize=bool(maximize))
    work = tensors(LION_NAMES, (params, grads, exp_avgs), 3, check_overlap, indexed)
    return Batch(_lion, [args[1:] for args in work], hyper)


def lion(param, grad, exp_avg, *, lr, beta1, beta2, weight_decay, maximize, n_threads=1):
    """One Lion step in place, as google/automl's lion_pytorch (see the kernel's docstring)."""
    run(lion_batch([param], [grad], [exp_avg], lr=lr, beta1=beta1, beta2=beta2, weight_decay=weight_decay,
                   maximize=maximize, indexed=False), n_threads)


def lion_group(params, grads, exp_avgs, *, lr, beta1, beta2, weight_decay, maximize, n_threads=1):
    """``lion`` on every tensor of a group."""
    run(lion_batch(params, grads, exp_avgs, lr=lr, beta1=beta1, beta2=beta2, weight_decay=weight_decay,
                   maximize=maximize), n_threads)
