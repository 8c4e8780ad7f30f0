"""Checks shared by the reference twins; they mirror the kernels' own O(1) checks (``_kernels/_util.pxd``)."""
import numpy as np


def check_size(n, buf, name):
    if buf.size != n:
        raise ValueError(f"{name} has {buf.size} elements, expected {n} (the size of param)")


def check_counter(buf, name):
    if buf.size != 1:
        raise ValueError(f"{name} must hold exactly 1 element (a 0-d counter), got {buf.size}")


def check_dtypes(param, **buffers):
    """The kernels take one dtype for every buffer (one fused type); so does the reference."""
    if param.dtype not in (np.float32, np.float64):
        raise TypeError(f"param must be float32 or float64, got {param.dtype}")
    for name, buf in buffers.items():
        if buf is not None and buf.dtype != param.dtype:
            raise TypeError(f"{name} has dtype {buf.dtype}, expected {param.dtype} (the dtype of param)")


def effective_grad(grad, param, maximize, weight_decay):
    """The gradient every rule starts from: ``maximize``'s sign, then L2 weight decay (as the kernels'
    ``effective_grad``). Never writes into ``grad``."""
    g = -grad if maximize else grad                                             # g_t
    if weight_decay != 0.0:
        g = g + weight_decay * param                                            # g_t
    return g
