"""Pure-NumPy twins of ``fastopt/_kernels/rmsprop.pyx``: same signatures, same math, same line order and tags.

Scalars are computed in Python double and meet the arrays as Python floats, so NumPy rounds them to the
array dtype (NEP 50) exactly as the kernel casts them; float32 results are bit-identical to the kernel's.
"""
import numpy as np

from ._util import check_counter, check_dtypes, check_size, effective_grad, tensors


def adagrad(param, grad, step, state_sum, *, lr, lr_decay, eps, weight_decay, maximize, n_threads=1):
    """One Adagrad step in place, as torch.optim.Adagrad (eps outside the sqrt)."""
    n = param.size
    check_dtypes(param, grad=grad, step=step, state_sum=state_sum)
    check_size(n, grad, "grad")
    check_counter(step, "step")
    check_size(n, state_sum, "state_sum")
    step += 1                                                                   # t
    t = float(step.reshape(-1)[0])
    neg_clr = -(lr / (1.0 + (t - 1.0) * lr_decay))                              # clr
    g = effective_grad(grad, param, maximize, weight_decay)                     # g_t
    s = state_sum + g * g                                                       # s_t
    state_sum[...] = s
    param[...] = param + (neg_clr * g) / (np.sqrt(s) + eps)                     # p_t


def rmsprop(param, grad, step, square_avg, momentum_buffer=None, grad_avg=None, *, lr, alpha, eps,
            weight_decay, momentum, maximize, n_threads=1):
    """One RMSprop step in place, as torch.optim.RMSprop (see the kernel's docstring)."""
    n = param.size
    check_dtypes(param, grad=grad, step=step, square_avg=square_avg,
                 momentum_buffer=momentum_buffer, grad_avg=grad_avg)
    check_size(n, grad, "grad")
    check_counter(step, "step")
    check_size(n, square_avg, "square_avg")
    if momentum > 0.0:
        if momentum_buffer is None:
            raise ValueError("momentum_buffer is required when momentum > 0")
        check_size(n, momentum_buffer, "momentum_buffer")
    if grad_avg is not None:
        check_size(n, grad_avg, "grad_avg")
    step += 1                                                                   # t
    g = effective_grad(grad, param, maximize, weight_decay)                     # g_t
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


def adadelta(param, grad, step, square_avg, acc_delta, *, lr, rho, eps, weight_decay, maximize, n_threads=1):
    """One Adadelta step in place, as torch.optim.Adadelta (eps inside both square roots)."""
    n = param.size
    check_dtypes(param, grad=grad, step=step, square_avg=square_avg, acc_delta=acc_delta)
    check_size(n, grad, "grad")
    check_counter(step, "step")
    check_size(n, square_avg, "square_avg")
    check_size(n, acc_delta, "acc_delta")
    step += 1                                                                   # t
    g = effective_grad(grad, param, maximize, weight_decay)                     # g_t
    v = rho * square_avg + ((1.0 - rho) * g) * g                                # v_t
    square_avg[...] = v
    dx = np.sqrt(acc_delta + eps) / np.sqrt(v + eps) * g                        # dx_t
    acc_delta[...] = rho * acc_delta + ((1.0 - rho) * dx) * dx                  # u_t
    param[...] = param - lr * dx                                                # p_t


def adagrad_group(params, grads, steps, state_sums, *, lr, lr_decay, eps, weight_decay, maximize,
                  n_threads=1):
    """``adagrad`` on every tensor of a group."""
    for _, *args in tensors(params, grads, steps=steps, state_sums=state_sums):
        adagrad(*args, lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay, maximize=maximize)


def rmsprop_group(params, grads, steps, square_avgs, momentum_buffers=None, grad_avgs=None, *, lr, alpha,
                  eps, weight_decay, momentum, maximize, n_threads=1):
    """``rmsprop`` on every tensor of a group (centered when ``grad_avgs`` is given)."""
    if momentum > 0.0 and momentum_buffers is None:
        raise ValueError("momentum_buffers are required when momentum > 0")
    for _, *args in tensors(params, grads, steps=steps, square_avgs=square_avgs,
                            momentum_buffers=momentum_buffers if momentum > 0.0 else None,
                            grad_avgs=grad_avgs):
        rmsprop(*args, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                maximize=maximize)


def adadelta_group(params, grads, steps, square_avgs, acc_deltas, *, lr, rho, eps, weight_decay, maximize,
                   n_threads=1):
    """``adadelta`` on every tensor of a group."""
    for _, *args in tensors(params, grads, steps=steps, square_avgs=square_avgs, acc_deltas=acc_deltas):
        adadelta(*args, lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
