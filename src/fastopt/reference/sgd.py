"""Pure-NumPy twins of ``fastopt/_kernels/sgd.pyx``: same signatures, same math, same line order and tags.

Scalars are Python floats, so NumPy rounds them to the array dtype where they meet an array (NEP 50),
exactly as the kernel casts them; float32 results are bit-identical to the kernel's.
"""
from ._util import Batch, effective_grad, real, run, tensors


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
