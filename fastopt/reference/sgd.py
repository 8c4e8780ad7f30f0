"""Pure-NumPy twins of ``fastopt/_kernels/sgd.pyx``: same signatures, same math, same line order and tags.

Scalars are Python floats, so NumPy rounds them to the array dtype where they meet an array (NEP 50),
exactly as the kernel casts them; float32 results are bit-identical to the kernel's.
"""
from ._util import check_dtypes, check_size, effective_grad, tensors


def sgd(param, grad, momentum_buffer=None, *, lr, momentum, dampening, weight_decay,
        nesterov, maximize, first_step, n_threads=1):
    """One SGD step in place, as torch.optim.SGD (see the kernel's docstring)."""
    n = param.size
    check_dtypes(param, grad=grad, momentum_buffer=momentum_buffer)
    check_size(n, grad, "grad")
    if momentum != 0.0:
        if momentum_buffer is None:
            raise ValueError("momentum_buffer is required when momentum != 0")
        check_size(n, momentum_buffer, "momentum_buffer")
    g = effective_grad(grad, param, maximize, weight_decay)                     # g_t
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


def momentum(param, grad, momentum_buffer, *, lr, beta, n_threads=1):
    """One step of the texts' momentum in place: v = beta*v + (1-beta)*g; p -= lr*v."""
    n = param.size
    check_dtypes(param, grad=grad, momentum_buffer=momentum_buffer)
    check_size(n, grad, "grad")
    check_size(n, momentum_buffer, "momentum_buffer")
    v = beta * momentum_buffer + (1.0 - beta) * grad                # v_t
    momentum_buffer[...] = v
    param[...] = param - lr * v                                     # p_t


def sgd_group(params, grads, momentum_buffers=None, *, lr, momentum, dampening, weight_decay, nesterov,
              maximize, first_steps=None, n_threads=1):
    """``sgd`` on every tensor of a group; ``first_steps[k]`` is tensor k's ``first_step``."""
    if momentum != 0.0 and momentum_buffers is None:
        raise ValueError("momentum_buffers are required when momentum != 0")
    if first_steps is not None and len(first_steps) != len(params):
        raise ValueError(f"first_steps has {len(first_steps)} entries, expected {len(params)} (one per param)")
    for k, *args in tensors(params, grads,
                            momentum_buffers=momentum_buffers if momentum != 0.0 else None):
        sgd(*args, lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
            nesterov=nesterov, maximize=maximize,
            first_step=first_steps is not None and bool(first_steps[k]))


def momentum_group(params, grads, momentum_buffers, *, lr, beta, n_threads=1):
    """``momentum`` on every tensor of a group."""
    for _, *args in tensors(params, grads, momentum_buffers=momentum_buffers):
        momentum(*args, lr=lr, beta=beta)
