"""Pure-NumPy twins of ``fastopt/_kernels/adam.pyx``: same signatures, same math, same line order and tags.

Scalars are computed in Python double and meet the arrays as Python floats, so NumPy rounds them to the
array dtype (NEP 50) exactly as the kernel casts them; float32 results are bit-identical to the kernel's.
"""
import math

import numpy as np

from ._util import check_counter, check_dtypes, check_size, effective_grad, tensors


def adam(param, grad, step, exp_avg, exp_avg_sq, max_exp_avg_sq=None, *, lr, beta1, beta2, eps,
         weight_decay, maximize, decoupled_weight_decay, n_threads=1):
    """One Adam step in place, as torch.optim.Adam (see the kernel's docstring)."""
    n = param.size
    check_dtypes(param, grad=grad, step=step, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq,
                 max_exp_avg_sq=max_exp_avg_sq)
    check_size(n, grad, "grad")
    check_counter(step, "step")
    check_size(n, exp_avg, "exp_avg")
    check_size(n, exp_avg_sq, "exp_avg_sq")
    if max_exp_avg_sq is not None:
        check_size(n, max_exp_avg_sq, "max_exp_avg_sq")
    step += 1                                                                   # t
    t = float(step.reshape(-1)[0])
    bc1 = 1.0 - beta1 ** t                                                      # bc1
    bc2_sqrt = math.sqrt(1.0 - beta2 ** t)                                      # bc2_sqrt
    neg_step_size = -lr / bc1                                                   # step_size
    decay_factor = 1.0 - lr * weight_decay                                      # decay
    p = param
    g = effective_grad(grad, p, maximize, 0.0 if decoupled_weight_decay else weight_decay)  # g_t
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


def adamax(param, grad, step, exp_avg, exp_inf, *, lr, beta1, beta2, eps, weight_decay, maximize, n_threads=1):
    """One Adamax step in place, as torch.optim.Adamax (eps inside the max)."""
    n = param.size
    check_dtypes(param, grad=grad, step=step, exp_avg=exp_avg, exp_inf=exp_inf)
    check_size(n, grad, "grad")
    check_counter(step, "step")
    check_size(n, exp_avg, "exp_avg")
    check_size(n, exp_inf, "exp_inf")
    step += 1                                                                   # t
    t = float(step.reshape(-1)[0])
    bc1 = 1.0 - beta1 ** t                                                      # bc1
    neg_step_size = -lr / bc1                                                   # step_size
    g = effective_grad(grad, param, maximize, weight_decay)                     # g_t
    m = exp_avg + (1.0 - beta1) * (g - exp_avg)                                 # m_t
    u = np.maximum(beta2 * exp_inf, np.abs(g) + eps)                            # u_t
    exp_avg[...] = m
    exp_inf[...] = u
    param[...] = param + (neg_step_size * m) / u                                # p_t


def nadam(param, grad, step, mu_product, exp_avg, exp_avg_sq, *, lr, beta1, beta2, eps,
          weight_decay, momentum_decay, maximize, decoupled_weight_decay, n_threads=1):
    """One NAdam step in place, as torch.optim.NAdam (see the kernel's docstring)."""
    n = param.size
    check_dtypes(param, grad=grad, step=step, mu_product=mu_product, exp_avg=exp_avg,
                 exp_avg_sq=exp_avg_sq)
    check_size(n, grad, "grad")
    check_counter(step, "step")
    check_counter(mu_product, "mu_product")
    check_size(n, exp_avg, "exp_avg")
    check_size(n, exp_avg_sq, "exp_avg_sq")
    step += 1                                                                   # t
    t = float(step.reshape(-1)[0])
    bc2 = 1.0 - beta2 ** t                                                      # bc2
    mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))                     # mu_t
    mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1.0) * momentum_decay))        # mu_next
    mu_product *= mu                                                            # mu_product
    mu_prod = float(mu_product.reshape(-1)[0])
    coef_grad = -lr * (1.0 - mu) / (1.0 - mu_prod)                              # coef_grad
    coef_avg = (-lr * mu_next) / (1.0 - mu_prod * mu_next)                      # coef_avg
    decay_factor = 1.0 - lr * weight_decay                                      # decay
    p = param
    g = effective_grad(grad, p, maximize, 0.0 if decoupled_weight_decay else weight_decay)  # g_t
    if weight_decay != 0.0 and decoupled_weight_decay:
        p = p * decay_factor                                                    # p_t
    m = exp_avg + (1.0 - beta1) * (g - exp_avg)                                 # m_t
    v = beta2 * exp_avg_sq + ((1.0 - beta2) * g) * g                            # v_t
    exp_avg[...] = m
    exp_avg_sq[...] = v
    denom = np.sqrt(v / bc2) + eps                                              # denom_t
    p = p + (coef_grad * g) / denom                                             # p_t
    param[...] = p + (coef_avg * m) / denom                                     # p_t


def adam_group(params, grads, steps, exp_avgs, exp_avg_sqs, max_exp_avg_sqs=None, *, lr, beta1, beta2,
               eps, weight_decay, maximize, decoupled_weight_decay, n_threads=1):
    """``adam`` on every tensor of a group."""
    for _, *args in tensors(params, grads, steps=steps, exp_avgs=exp_avgs, exp_avg_sqs=exp_avg_sqs,
                            max_exp_avg_sqs=max_exp_avg_sqs):
        adam(*args, lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
             maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)


def adamax_group(params, grads, steps, exp_avgs, exp_infs, *, lr, beta1, beta2, eps, weight_decay,
                 maximize, n_threads=1):
    """``adamax`` on every tensor of a group."""
    for _, *args in tensors(params, grads, steps=steps, exp_avgs=exp_avgs, exp_infs=exp_infs):
        adamax(*args, lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
               maximize=maximize)


def nadam_group(params, grads, steps, mu_products, exp_avgs, exp_avg_sqs, *, lr, beta1, beta2, eps,
                weight_decay, momentum_decay, maximize, decoupled_weight_decay, n_threads=1):
    """``nadam`` on every tensor of a group."""
    for _, *args in tensors(params, grads, steps=steps, mu_products=mu_products, exp_avgs=exp_avgs,
                            exp_avg_sqs=exp_avg_sqs):
        nadam(*args, lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
              momentum_decay=momentum_decay, maximize=maximize,
              decoupled_weight_decay=decoupled_weight_decay)
