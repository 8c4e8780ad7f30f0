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


COUNTERS = ("steps", "mu_products")  # per-tensor scalar state: 1-element buffers


def flat(arr, dtype, n, write, name, k):
    """Tensor k's buffer ``name`` as a flat view, after the compiled kernels' checks (``array_data``)."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{name}[{k}] must be a numpy.ndarray, got {type(arr).__name__}")
    if arr.dtype != dtype:
        raise TypeError(f"{name}[{k}] has dtype {arr.dtype}, expected {dtype}")
    if arr.size != n:
        raise ValueError(f"{name}[{k}] has {arr.size} elements, expected {n}")
    if not (arr.flags.c_contiguous and arr.flags.aligned):
        raise ValueError(f"{name}[{k}] must be C-contiguous, aligned and in native byte order")
    if write and not arr.flags.writeable:
        raise ValueError(f"{name}[{k}] is read-only")
    return arr.reshape(-1)


def tensors(params, grads, **buffers):
    """The per-tensor arguments of a ``*_group`` call: ``(k, param, grad, *buffers)`` flat views for
    every tensor whose gradient is not None, all checked before the first is returned (so, like the
    compiled group kernels, a rejected call changes nothing). A buffer list may be None (unused)."""
    count = len(params)
    for name, values in [("grads", grads), *buffers.items()]:
        if values is not None and len(values) != count:
            raise ValueError(f"{name} has {len(values)} entries, expected {count} (one per param)")
    work = []
    for k, (p, g) in enumerate(zip(params, grads)):
        if g is None:
            continue
        if not isinstance(p, np.ndarray):
            raise TypeError(f"params[{k}] must be a numpy.ndarray, got {type(p).__name__}")
        if p.dtype not in (np.float32, np.float64):
            raise TypeError(f"params[{k}] has dtype {p.dtype}, expected float32 or float64")
        args = [k, flat(p, p.dtype, p.size, True, "params", k), flat(g, p.dtype, p.size, False, "grads", k)]
        for name, values in buffers.items():
            n = 1 if name in COUNTERS else p.size
            args.append(None if values is None else flat(values[k], p.dtype, n, True, name, k))
        work.append(args)
    return work
