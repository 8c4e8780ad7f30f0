"""Pure-NumPy twins of ``fastopt/_kernels/adam.pyx``: same signatures, same math, same line order and tags.

Scalars are computed in Python double and meet the arrays as Python floats, so NumPy rounds them to the
array dtype (NEP 50) exactly as the kernel casts them; float32 results are bit-identical to the kernel's.
"""
import math

import numpy as np

from ._util import Batch, cpow, divide, effective_grad, real, run, tensors


def _adam(param, grad, step, exp_avg, exp_avg_sq, max_exp_avg_sq, *, lr, beta1, beta2, eps, weight_decay,
          maximize, decoupled_weight_decay, grad_scale=1.0):
    """One Adam step on flat views (``adam`` checks them), as the kernel's prologue and ``_adam_span``;
    ``max_exp_avg_sq`` is None unless amsgrad."""
    step += 1                                                                   # t
    t = float(step.reshape(-1)[0])
    bc1 = 1.0 - beta1 ** t                                                      # bc1
    bc2_sqrt = math.sqrt(1.0 - beta2 ** t)                                      # bc2_sqrt
    neg_step_size = -lr / bc1                                                   # step_size
    decay_factor = 1.0 - lr * weight_decay                                      # decay
    p = param
    g = effective_grad(grad, p, maximize, 0.0 if decoupled_weight_decay else weight_decay, grad_scale)  # g_t
    if weight_decay != 0.0 and decoupled_weight_decay:
        p = p * decay_factor                                                    # p_t
    m = exp_avg + (1.0 - beta1) * (g - exp_avg)                                 # m_t
    v = beta2 * exp_avg_sq + ((1.0 - beta2) * g) * g                            # v_t
    exp_avg[...] = m
    exp_avg_sq[...] = v
    if max_exp_avg_sq is not None:
        v = np.maximum(max_exp_avg_sq, v)                                       # vmax_t
        max_exp_avg_sq[...] = v
    denom = np.sqrt(v) / bc2_sqrt + eps                                         # denom_t
    param[...] = p + (neg_step_size * m) / denom                                # p_t


def _adamax(param, grad, step, exp_avg, exp_inf, *, lr, beta1, beta2, eps, weight_decay, maximize,
            grad_scale=1.0):
    """One Adamax step on flat views, as the kernel's prologue and ``_adamax_span``."""
    step += 1                                                                   # t
    t = float(step.reshape(-1)[0])
    bc1 = 1.0 - beta1 ** t                                                      # bc1
    neg_step_size = -lr / bc1                                                   # step_size
    g = effective_grad(grad, param, maximize, weight_decay, grad_scale)         # g_t
    m = exp_avg + (1.0 - beta1) * (g - exp_avg)                                 # m_t
    u = np.maximum(beta2 * exp_inf, np.abs(g) + eps)                            # u_t
    exp_avg[...] = m
    exp_inf[...] = u
    param[...] = param + (neg_step_size * m) / u                                # p_t


def _radam(param, grad, step, exp_avg, exp_avg_sq, *, lr, beta1, beta2, eps, weight_decay, maximize,
           decoupled_weight_decay, grad_scale=1.0):
    """One RAdam step on flat views, as the kernel's prologue and ``_radam_span``."""
    step += 1                                                                   # t
    t = float(step.reshape(-1)[0])
    beta2_t = cpow(beta2, t)
    bc2 = 1.0 - beta2_t                                                         # bc2
    rho_inf = divide(2.0, 1.0 - beta2) - 1.0                                    # rho_inf
    rho_t = rho_inf - divide((2.0 * t) * beta2_t, bc2)                          # rho_t
    bc1 = 1.0 - cpow(beta1, t)                                                  # bc1
    rectified = rho_t > 5.0
    if rectified:
        rect = cpow(divide(((rho_t - 4.0) * (rho_t - 2.0)) * rho_inf,
                           ((rho_inf - 4.0) * (rho_inf - 2.0)) * rho_t), 0.5)   # rect
        bc2_sqrt = cpow(bc2, 0.5)                                               # bc2_sqrt
    decay_factor = 1.0 - lr * weight_decay                                      # decay
    p = param
    g = effective_grad(grad, p, maximize, 0.0 if decoupled_weight_decay else weight_decay, grad_scale)  # g_t
    if weight_decay != 0.0 and decoupled_weight_decay:
        p = p * decay_factor                                                    # p_t
    m = exp_avg + (1.0 - beta1) * (g - exp_avg)                                 # m_t
    v = beta2 * exp_avg_sq + ((1.0 - beta2) * g) * g                            # v_t
    exp_avg[...] = m
    exp_avg_sq[...] = v
    update = (m / bc1) * lr                                                     # u_t
    if rectified:
        adaptive = (1.0 / (np.sqrt(v) + eps)) * bc2_sqrt                        # a_t
        update = (update * adaptive) * rect                                     # u_t
    param[...] = p - update                                                     # p_t


def _sfadamw(param, grad, z, exp_avg_sq, *, lr, beta1, beta2, eps, weight_decay, bc2, ckp1, maximize,
             grad_scale=1.0):
    """One schedule-free AdamW step on flat views, as the kernel's ``_sfadamw_span`` (param holds y)."""
    g = effective_grad(grad, param, maximize, 0.0, grad_scale)                  # g_t
    v = beta2 * exp_avg_sq + ((1.0 - beta2) * g) * g                            # v_t
    exp_avg_sq[...] = v
    gn = g / (np.sqrt(v / bc2) + eps)                                           # gn_t
    if weight_decay != 0.0:
        gn = gn + weight_decay * param                                          # gn_t
    if ckp1 < 0.5:
        y = param + ckp1 * (z - param)                                          # y_t
    else:
        y = z + (ckp1 - 1.0) * (z - param)                                      # y_t
    param[...] = y + (lr * (beta1 * (1.0 - ckp1) - 1.0)) * gn                   # y_t
    z[...] = z - lr * gn                                                        # z_t


def _nadam(param, grad, step, mu_product, exp_avg, exp_avg_sq, *, lr, beta1, beta2, eps,
          weight_decay, momentum_decay, maximize, decoupled_weight_decay, grad_scale=1.0):
    """One NAdam step in place, as torch.optim.NAdam (see the kernel's docstring)."""
    step += 1                                                                   # t
    t = float(step.reshape(-1)[0])
    bc2 = 1.0 - beta2 ** t                                                      # bc2
    mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))                     # mu_t
    mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1.0) * momentum_decay))        # mu_next
    mu_product *= mu                                                            # mu_product
    mu_prod = float(mu_product.reshape(-1)[0])
    coef_grad = divide(-lr * (1.0 - mu), 1.0 - mu_prod)                         # coef_grad
    coef_avg = divide(-lr * mu_next, 1.0 - mu_prod * mu_next)                   # coef_avg
    decay_factor = 1.0 - lr * weight_decay                                      # decay
    p = param
    g = effective_grad(grad, p, maximize, 0.0 if decoupled_weight_decay else weight_decay, grad_scale)  # g_t
    if weight_decay != 0.0 and decoupled_weight_decay:
        p = p * decay_factor                                                    # p_t
    m = exp_avg + (1.0 - beta1) * (g - exp_avg)                                 # m_t
    v = beta2 * exp_avg_sq + ((1.0 - beta2) * g) * g                            # v_t
    exp_avg[...] = m
    exp_avg_sq[...] = v
    denom = np.sqrt(v / bc2) + eps                                              # denom_t
    p = p + (coef_grad * g) / denom                                             # p_t
    param[...] = p + (coef_avg * m) / denom                                     # p_t


ADAM_NAMES = ("params", "grads", "steps", "exp_avgs", "exp_avg_sqs", "max_exp_avg_sqs")


def adam_batch(params, grads, steps, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, lr, beta1, beta2,
               eps, weight_decay, maximize, decoupled_weight_decay, check_overlap=True, indexed=True):
    """The checked work of an ``adam_group`` call, for ``run``."""
    hyper = dict(lr=real(lr), beta1=real(beta1), beta2=real(beta2), eps=real(eps),
                 weight_decay=real(weight_decay), maximize=bool(maximize),
                 decoupled_weight_decay=bool(decoupled_weight_decay))
    work = tensors(ADAM_NAMES, (params, grads, steps, exp_avgs, exp_avg_sqs, max_exp_avg_sqs), 5,
                   check_overlap, indexed)
    return Batch(_adam, [args[1:] for args in work], hyper)


def adam(param, grad, step, exp_avg, exp_avg_sq, max_exp_avg_sq=None, *, lr, beta1, beta2, eps,
         weight_decay, maximize, decoupled_weight_decay, n_threads=1):
    """One Adam step in place, as torch.optim.Adam (see the kernel's docstring)."""
    run(adam_batch([param], [grad], [step], [exp_avg], [exp_avg_sq],
                   None if max_exp_avg_sq is None else [max_exp_avg_sq], lr=lr, beta1=beta1, beta2=beta2,
                   eps=eps, weight_decay=weight_decay, maximize=maximize,
                   decoupled_weight_decay=decoupled_weight_decay, indexed=False), n_threads)


def adam_group(params, grads, steps, exp_avgs, exp_avg_sqs, max_exp_avg_sqs=None, *, lr, beta1, beta2,
               eps, weight_decay, maximize, decoupled_weight_decay, n_threads=1):
    """``adam`` on every tensor of a group."""
    run(adam_batch(params, grads, steps, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, lr=lr, beta1=beta1,
                   beta2=beta2, eps=eps, weight_decay=weight_decay, maximize=maximize,
                   decoupled_weight_decay=decoupled_weight_decay), n_threads)


ADAMAX_NAMES = ("params", "grads", "steps", "exp_avgs", "exp_infs")


def adamax_batch(params, grads, steps, exp_avgs, exp_infs, lr, beta1, beta2, eps, weight_decay,
                 maximize, check_overlap=True, indexed=True):
    """The checked work of an ``adamax_group`` call, for ``run``."""
    hyper = dict(lr=real(lr), beta1=real(beta1), beta2=real(beta2), eps=real(eps),
                 weight_decay=real(weight_decay), maximize=bool(maximize))
    work = tensors(ADAMAX_NAMES, (params, grads, steps, exp_avgs, exp_infs), 5, check_overlap, indexed)
    return Batch(_adamax, [args[1:] for args in work], hyper)


def adamax(param, grad, step, exp_avg, exp_inf, *, lr, beta1, beta2, eps, weight_decay, maximize,
           n_threads=1):
    """One Adamax step in place, as torch.optim.Adamax (eps inside the max)."""
    run(adamax_batch([param], [grad], [step], [exp_avg], [exp_inf], lr=lr, beta1=beta1, beta2=beta2,
                     eps=eps, weight_decay=weight_decay, maximize=maximize, indexed=False), n_threads)


def adamax_group(params, grads, steps, exp_avgs, exp_infs, *, lr, beta1, beta2, eps, weight_decay,
                 maximize, n_threads=1):
    """``adamax`` on every tensor of a group."""
    run(adamax_batch(params, grads, steps, exp_avgs, exp_infs, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                     weight_decay=weight_decay, maximize=maximize), n_threads)


NADAM_NAMES = ("params", "grads", "steps", "mu_products", "exp_avgs", "exp_avg_sqs")


def nadam_batch(params, grads, steps, mu_products, exp_avgs, exp_avg_sqs, lr, beta1, beta2, eps,
                weight_decay, momentum_decay, maximize, decoupled_weight_decay, check_overlap=True,
                indexed=True):
    """The checked work of an ``nadam_group`` call, for ``run``."""
    hyper = dict(lr=real(lr), beta1=real(beta1), beta2=real(beta2), eps=real(eps),
                 weight_decay=real(weight_decay), momentum_decay=real(momentum_decay),
                 maximize=bool(maximize), decoupled_weight_decay=bool(decoupled_weight_decay))
    work = tensors(NADAM_NAMES, (params, grads, steps, mu_products, exp_avgs, exp_avg_sqs), 6,
                   check_overlap, indexed)
    return Batch(_nadam, [args[1:] for args in work], hyper)


def nadam(param, grad, step, mu_product, exp_avg, exp_avg_sq, *, lr, beta1, beta2, eps, weight_decay,
          momentum_decay, maximize, decoupled_weight_decay, n_threads=1):
    """One NAdam step in place, as torch.optim.NAdam (see the kernel's docstring)."""
    run(nadam_batch([param], [grad], [step], [mu_product], [exp_avg], [exp_avg_sq], lr=lr, beta1=beta1,
                    beta2=beta2, eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay,
                    maximize=maximize, decoupled_weight_decay=decoupled_weight_decay, indexed=False),
        n_threads)


def nadam_group(params, grads, steps, mu_products, exp_avgs, exp_avg_sqs, *, lr, beta1, beta2, eps,
                weight_decay, momentum_decay, maximize, decoupled_weight_decay, n_threads=1):
    """``nadam`` on every tensor of a group."""
    run(nadam_batch(params, grads, steps, mu_products, exp_avgs, exp_avg_sqs, lr=lr, beta1=beta1,
                    beta2=beta2, eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay,
                    maximize=maximize, decoupled_weight_decay=decoupled_weight_decay), n_threads)


RADAM_NAMES = ("params", "grads", "steps", "exp_avgs", "exp_avg_sqs")


def radam_batch(params, grads, steps, exp_avgs, exp_avg_sqs, lr, beta1, beta2, eps, weight_decay, maximize,
                decoupled_weight_decay, check_overlap=True, indexed=True):
    """The checked work of a ``radam_group`` call, for ``run``."""
    hyper = dict(lr=real(lr), beta1=real(beta1), beta2=real(beta2), eps=real(eps),
                 weight_decay=real(weight_decay), maximize=bool(maximize),
                 decoupled_weight_decay=bool(decoupled_weight_decay))
    work = tensors(RADAM_NAMES, (params, grads, steps, exp_avgs, exp_avg_sqs), 5, check_overlap, indexed)
    return Batch(_radam, [args[1:] for args in work], hyper)


def radam(param, grad, step, exp_avg, exp_avg_sq, *, lr, beta1, beta2, eps, weight_decay, maximize,
          decoupled_weight_decay, n_threads=1):
    """One RAdam step in place, as torch.optim.RAdam (see the kernel's docstring)."""
    run(radam_batch([param], [grad], [step], [exp_avg], [exp_avg_sq], lr=lr, beta1=beta1, beta2=beta2,
                    eps=eps, weight_decay=weight_decay, maximize=maximize,
                    decoupled_weight_decay=decoupled_weight_decay, indexed=False), n_threads)


def radam_group(params, grads, steps, exp_avgs, exp_avg_sqs, *, lr, beta1, beta2, eps, weight_decay, maximize,
                decoupled_weight_decay, n_threads=1):
    """``radam`` on every tensor of a group."""
    run(radam_batch(params, grads, steps, exp_avgs, exp_avg_sqs, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                    weight_decay=weight_decay, maximize=maximize,
                    decoupled_weight_decay=decoupled_weight_decay), n_threads)


LANES, BLOCK = 16, 4096  # the kernel's lanes per piece and its pieces (the runtime's BLOCK)


def _norm(x):
    """The kernel's L2 norm of a tensor: the squares in double, summed per BLOCK piece in LANES lanes
    (lane j: elements j, j+LANES, ... in order), the lanes in a fixed tree, then the pieces in order."""
    if x.size == 0:
        return 0.0
    pieces = -(-x.size // BLOCK)
    squares = np.zeros(pieces * BLOCK)  # (zeros past the end add nothing: squares are >= +0 or NaN)
    squares[:x.size] = np.square(x.reshape(-1).astype(np.float64))
    lanes = np.cumsum(squares.reshape(pieces, BLOCK // LANES, LANES), axis=1)[:, -1, :]
    u = lanes[:, :8] + lanes[:, 8:]
    piece = ((u[:, 0] + u[:, 1]) + (u[:, 2] + u[:, 3])) + ((u[:, 4] + u[:, 5]) + (u[:, 6] + u[:, 7]))
    return math.sqrt(float(np.cumsum(piece)[-1]))


def _lamb(param, grad, step, exp_avg, exp_avg_sq, *, lr, beta1, beta2, eps, weight_decay, bias_correction,
          grad_averaging, always_adapt, trust_clip, maximize, grad_scale=1.0):
    """One LAMB step on flat views, as the kernel's prologue, ``_lamb_span`` (both passes) and
    ``_lamb_reduce``."""
    step += 1                                                                   # t
    t = float(step.reshape(-1)[0])
    inv_bc1 = 1.0 / (1.0 - beta1 ** t) if bias_correction else 1.0              # inv_bc1
    bc2_sqrt = math.sqrt(1.0 - beta2 ** t) if bias_correction else 1.0          # bc2_sqrt
    neg_step = -lr                                                              # step
    beta3 = 1.0 - beta1 if grad_averaging else 1.0
    g = effective_grad(grad, param, maximize, 0.0, grad_scale)                  # g_t
    m = exp_avg * beta1 + beta3 * g                                             # m_t
    v = exp_avg_sq * beta2 + ((1.0 - beta2) * g) * g                            # v_t
    u = (m * inv_bc1) / (np.sqrt(v) / bc2_sqrt + eps)                           # u_t
    if weight_decay != 0.0:
        u = u + weight_decay * param                                            # u_t
    if weight_decay != 0.0 or always_adapt:
        p_norm, u_norm = _norm(param), _norm(u)                                 # p_norm, u_norm
        ratio = p_norm / u_norm if p_norm > 0.0 and u_norm > 0.0 else 1.0       # ratio
        if trust_clip and ratio > 1.0:
            ratio = 1.0                                                         # ratio
        neg_step = -(lr * ratio)                                                # step
    exp_avg[...] = m
    exp_avg_sq[...] = v
    param[...] = param + neg_step * u                                           # p_t


LAMB_NAMES = ("params", "grads", "steps", "exp_avgs", "exp_avg_sqs")


def lamb_batch(params, grads, steps, exp_avgs, exp_avg_sqs, lr, beta1, beta2, eps, weight_decay, bias_correction,
               grad_averaging, always_adapt, trust_clip, maximize, check_overlap=True, indexed=True):
    """The checked work of a ``lamb_group`` call, for ``run``."""
    hyper = dict(lr=real(lr), beta1=real(beta1), beta2=real(beta2), eps=real(eps), weight_decay=real(weight_decay),
                 bias_correction=bool(bias_correction), grad_averaging=bool(grad_averaging),
                 always_adapt=bool(always_adapt), trust_clip=bool(trust_clip), maximize=bool(maximize))
    work = tensors(LAMB_NAMES, (params, grads, steps, exp_avgs, exp_avg_sqs), 5, check_overlap, indexed)
    return Batch(_lamb, [args[1:] for args in work], hyper)


def lamb(param, grad, step, exp_avg, exp_avg_sq, *, lr, beta1, beta2, eps, weight_decay, bias_correction,
         grad_averaging, always_adapt, trust_clip, maximize, n_threads=1):
    """One LAMB step in place, as timm's Lamb (see the kernel's docstring)."""
    run(lamb_batch([param], [grad], [step], [exp_avg], [exp_avg_sq], lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                   weight_decay=weight_decay, bias_correction=bias_correction, grad_averaging=grad_averaging,
                   always_adapt=always_adapt, trust_clip=trust_clip, maximize=maximize, indexed=False), n_threads)


def lamb_group(params, grads, steps, exp_avgs, exp_avg_sqs, *, lr, beta1, beta2, eps, weight_decay, bias_correction,
               grad_averaging, always_adapt, trust_clip, maximize, n_threads=1):
    """``lamb`` on every tensor of a group."""
    run(lamb_batch(params, grads, steps, exp_avgs, exp_avg_sqs, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                   weight_decay=weight_decay, bias_correction=bias_correction, grad_averaging=grad_averaging,
                   always_adapt=always_adapt, trust_clip=trust_clip, maximize=maximize), n_threads)


SFADAMW_NAMES = ("params", "grads", "zs", "exp_avg_sqs")


def sfadamw_batch(params, grads, zs, exp_avg_sqs, lr, beta1, beta2, eps, weight_decay, bc2, ckp1, maximize,
                  check_overlap=True, indexed=True):
    """The checked work of an ``sfadamw_group`` call, for ``run``."""
    hyper = dict(lr=real(lr), beta1=real(beta1), beta2=real(beta2), eps=real(eps),
                 weight_decay=real(weight_decay), bc2=real(bc2), ckp1=real(ckp1), maximize=bool(maximize))
    work = tensors(SFADAMW_NAMES, (params, grads, zs, exp_avg_sqs), 4, check_overlap, indexed)
    return Batch(_sfadamw, [args[1:] for args in work], hyper)


def sfadamw(param, grad, z, exp_avg_sq, *, lr, beta1, beta2, eps, weight_decay, bc2, ckp1, maximize,
            n_threads=1):
    """One schedule-free AdamW step in place (see the kernel's docstring)."""
    run(sfadamw_batch([param], [grad], [z], [exp_avg_sq], lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                      weight_decay=weight_decay, bc2=bc2, ckp1=ckp1, maximize=maximize, indexed=False),
        n_threads)


def sfadamw_group(params, grads, zs, exp_avg_sqs, *, lr, beta1, beta2, eps, weight_decay, bc2, ckp1, maximize,
                  n_threads=1):
    """``sfadamw`` on every tensor of a group."""
    run(sfadamw_batch(params, grads, zs, exp_avg_sqs, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                      weight_decay=weight_decay, bc2=bc2, ckp1=ckp1, maximize=maximize), n_threads)
