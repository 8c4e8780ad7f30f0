"""Pure-NumPy twins of ``fastopt/_kernels/rmsprop.pyx``: same signatures, same math, same line order and tags.

Scalars are computed in Python double and meet the arrays as Python floats, so NumPy rounds them to the
array dtype (NEP 50) exactly as the kernel casts them; float32 results are bit-identical to the kernel's.
"""
import numpy as np

from ._formats import round_scalar
from ._util import Batch, effective_grad, real, run, tensors


def _adagrad(param, grad, step, state_sum, *, lr, lr_decay, eps, weight_decay, maximize,
             grad_scale=1.0, storage=None):
    """One Adagrad step in place, as torch.optim.Adagrad (eps outside the sqrt). ``storage``: the
    param's format, for a 16-bit one (``staged``)."""
    step += 1                                                                   # t
    t = float(step.reshape(-1)[0])
    # a 16-bit param meets clr, eps and weight_decay rounded to its format, as torch's fused Adagrad
    neg_clr = -round_scalar(lr / (1.0 + (t - 1.0) * lr_decay), storage)        # clr
    eps_used, wd_used = round_scalar(eps, storage), round_scalar(weight_decay, storage)
    g = effective_grad(grad, param, maximize, wd_used, grad_scale)             # g_t
    s = state_sum + g * g                                                       # s_t
    state_sum[...] = s
    param[...] = param + (neg_clr * g) / (np.sqrt(s) + eps_used)                # p_t


_adagrad.takes_storage = True


def _rmsprop(param, grad, step, square_avg, momentum_buffer, grad_avg, *, lr, alpha, eps, weight_decay,
             momentum, maximize, grad_scale=1.0):
    """One RMSprop step on flat views (``rmsprop`` checks them), as the kernel's ``_rmsprop_span``.
    ``momentum_buffer`` is None unless momentum > 0, ``grad_avg`` unless centered."""
    step += 1                                                                   # t
    g = effective_grad(grad, param, maximize, weight_decay, grad_scale)         # g_t
    v = alpha * square_avg + ((1.0 - alpha) * g) * g                            # v_t
    square_avg[...] = v
    if grad_avg is not None:
        ga = grad_avg + (1.0 - alpha) * (g - grad_avg)                          # ga_t
        grad_avg[...] = ga
        v = v - ga * ga                                                         # v_t~
    avg = np.sqrt(v) + eps                                                      # avg_t
    if momentum > 0.0:
        b = momentum * momentum_buffer + g / avg                                # b_t
        momentum_buffer[...] = b
        param[...] = param - lr * b                                             # p_t
    else:
        param[...] = param + (-lr * g) / avg                                    # p_t


def _adadelta(param, grad, step, square_avg, acc_delta, *, lr, rho, eps, weight_decay, maximize,
              grad_scale=1.0):
    """One Adadelta step in place, as torch.optim.Adadelta (eps inside both square roots)."""
    step += 1                                                                   # t
    g = effective_grad(grad, param, maximize, weight_decay, grad_scale)         # g_t
    v = rho * square_avg + ((1.0 - rho) * g) * g                                # v_t
    square_avg[...] = v
    dx = np.sqrt(acc_delta + eps) / np.sqrt(v + eps) * g                        # dx_t
    acc_delta[...] = rho * acc_delta + ((1.0 - rho) * dx) * dx                  # u_t
    param[...] = param - lr * dx                                                # p_t


ADAGRAD_NAMES = ("params", "grads", "steps", "state_sums")


def adagrad_batch(params, grads, steps, state_sums, lr, lr_decay, eps, weight_decay, maximize,
                  check_overlap=True, indexed=True):
    """The checked work of an ``adagrad_group`` call, for ``run``."""
    hyper = dict(lr=real(lr), lr_decay=real(lr_decay), eps=real(eps), weight_decay=real(weight_decay),
                 maximize=bool(maximize))
    work = tensors(ADAGRAD_NAMES, (params, grads, steps, state_sums), 4, check_overlap, indexed)
    return Batch(_adagrad, [args[1:] for args in work], hyper)


def adagrad(param, grad, step, state_sum, *, lr, lr_decay, eps, weight_decay, maximize, n_threads=1):
    """One Adagrad step in place, as torch.optim.Adagrad (eps outside the sqrt)."""
    run(adagrad_batch([param], [grad], [step], [state_sum], lr=lr, lr_decay=lr_decay, eps=eps,
                      weight_decay=weight_decay, maximize=maximize, indexed=False), n_threads)


def adagrad_group(params, grads, steps, state_sums, *, lr, lr_decay, eps, weight_decay, maximize,
                  n_threads=1):
    """``adagrad`` on every tensor of a group."""
    run(adagrad_batch(params, grads, steps, state_sums, lr=lr, lr_decay=lr_decay, eps=eps,
                      weight_decay=weight_decay, maximize=maximize), n_threads)


RMSPROP_NAMES = ("params", "grads", "steps", "square_avgs", "momentum_buffers", "grad_avgs")


def rmsprop_batch(params, grads, steps, square_avgs, momentum_buffers, grad_avgs, lr, alpha,
                  eps, weight_decay, momentum, maximize, check_overlap=True, indexed=True):
    """The checked work of an ``rmsprop_group`` call, for ``run``."""
    hyper = dict(lr=real(lr), alpha=real(alpha), eps=real(eps), weight_decay=real(weight_decay),
                 momentum=real(momentum), maximize=bool(maximize))
    if hyper["momentum"] > 0.0 and momentum_buffers is None:
        raise TypeError(f"momentum_buffer{'s are' if indexed else ' is'} required when momentum > 0")
    work = tensors(RMSPROP_NAMES, (params, grads, steps, square_avgs,
                                   momentum_buffers if hyper["momentum"] > 0.0 else None, grad_avgs), 4,
                   check_overlap, indexed)
    return Batch(_rmsprop, [args[1:] for args in work], hyper)


def rmsprop(param, grad, step, square_avg, momentum_buffer=None, grad_avg=None, *, lr, alpha, eps,
            weight_decay, momentum, maximize, n_threads=1):
    """One RMSprop step in place, as torch.optim.RMSprop (see the kernel's docstring)."""
    run(rmsprop_batch([param], [grad], [step], [square_avg],
                      None if momentum_buffer is None else [momentum_buffer],
                      None if grad_avg is None else [grad_avg], lr=lr, alpha=alpha, eps=eps,
                      weight_decay=weight_decay, momentum=momentum, maximize=maximize, indexed=False),
        n_threads)


def rmsprop_group(params, grads, steps, square_avgs, momentum_buffers=None, grad_avgs=None, *, lr, alpha,
                  eps, weight_decay, momentum, maximize, n_threads=1):
    """``rmsprop`` on every tensor of a group."""
    run(rmsprop_batch(params, grads, steps, square_avgs, momentum_buffers, grad_avgs, lr=lr, alpha=alpha,
                      eps=eps, weight_decay=weight_decay, momentum=momentum, maximize=maximize), n_threads)


ADADELTA_NAMES = ("params", "grads", "steps", "square_avgs", "acc_deltas")


def adadelta_batch(params, grads, steps, square_avgs, acc_deltas, lr, rho, eps, weight_decay, maximize,
                   check_overlap=True, indexed=True):
    """The checked work of an ``adadelta_group`` call, for ``run``."""
    hyper = dict(lr=real(lr), rho=real(rho), eps=real(eps), weight_decay=real(weight_decay),
                 maximize=bool(maximize))
    work = tensors(ADADELTA_NAMES, (params, grads, steps, square_avgs, acc_deltas), 5, check_overlap, indexed)
    return Batch(_adadelta, [args[1:] for args in work], hyper)


def adadelta(param, grad, step, square_avg, acc_delta, *, lr, rho, eps, weight_decay, maximize, n_threads=1):
    """One Adadelta step in place, as torch.optim.Adadelta (eps inside both square roots)."""
    run(adadelta_batch([param], [grad], [step], [square_avg], [acc_delta], lr=lr, rho=rho, eps=eps,
                       weight_decay=weight_decay, maximize=maximize, indexed=False), n_threads)


def adadelta_group(params, grads, steps, square_avgs, acc_deltas, *, lr, rho, eps, weight_decay, maximize,
                   n_threads=1):
    """``adadelta`` on every tensor of a group."""
    run(adadelta_batch(params, grads, steps, square_avgs, acc_deltas, lr=lr, rho=rho, eps=eps,
                       weight_decay=weight_decay, maximize=maximize), n_threads)
