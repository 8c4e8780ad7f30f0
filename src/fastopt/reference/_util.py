"""The reference's executor and checks; they mirror the runtime's ``Batch`` and ``run``
(``fastopt/_kernels/_runtime.pyx``) and raise the same errors with the same messages."""
import math
import numbers

import numpy as np

from ._formats import check_masters, format_of, is_16bit, is_quantized, item_keys, needs_staging, staged


def effective_grad(grad, param, maximize, weight_decay, grad_scale=1.0):
    """The gradient every rule starts from: ``run``'s gradient scale with ``maximize``'s sign, then L2
    weight decay (as the kernels' ``effective_grad``). Never writes into ``grad``."""
    if grad_scale == 1.0:
        g = -grad if maximize else grad                                         # g_t
    else:
        g = grad.dtype.type(-grad_scale if maximize else grad_scale) * grad     # g_t
    if weight_decay != 0.0:
        g = g + weight_decay * param                                            # g_t
    return g


def sign(x):
    """torch.sign on CPU, as the kernels' ``sign_of``: 1 or -1, and +0 for zeros and NaN."""
    return np.greater(x, 0).astype(x.dtype) - np.less(x, 0).astype(x.dtype)


def cpow(a, b):
    """C's pow(a, b), as the kernels' prologues call it (math.pow is libm's pow): inf on overflow, NaN
    for a negative base with a fractional exponent, inf for 0 to a negative power, where Python raises
    (np.power gives those special values; its finite results may differ from libm's in the last bit)."""
    try:
        return math.pow(a, b)
    except (OverflowError, ValueError):
        with np.errstate(all="ignore"):
            return float(np.power(np.float64(a), np.float64(b)))


def divide(a, b):
    """a / b as the kernels' C doubles divide: IEEE (x/0 is ±inf, 0/0 NaN), not Python's
    ZeroDivisionError (NAdam's mu product can round to exactly 1 in float32)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(a) / np.float64(b))


def real(value):
    """A hyperparameter as the kernels read it (a C double): a Python float."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (numbers.Real, np.ndarray)):
        raise TypeError(f"must be real number, not {type(value).__name__}")
    return float(value)


COUNTERS = ("steps", "mu_products", "etas", "mus")  # per-tensor scalar state: 1-element buffers


class Batch:
    """The checked work of one reference ``*_group`` call: ``rule(*args, **hyper)`` per tensor, and
    the masters ``attach`` gave its params."""

    def __init__(self, rule, work, hyper):
        self.rule, self.work, self.hyper, self.masters = rule, work, hyper, None

    def __len__(self):
        return len(self.work)

    def run(self, grad_scale=1.0, keys=None):
        for j, args in enumerate(self.work):
            key = None if keys is None else keys[j]
            master = None if self.masters is None else (self.masters[0], self.masters[1][j])
            if master is not None or any(needs_staging(a) for a in args):
                staged(self.rule, args, self.hyper, grad_scale, key, master)
            else:
                self.rule(*args, **self.hyper, grad_scale=grad_scale)


def attach(batch, kind, masters):
    """The runtime's ``attach``: float32 masters for the batch's params (see the kernels')."""
    if not isinstance(batch, Batch):
        raise TypeError(f"attach() takes a Batch, got {type(batch).__name__}")
    batch.masters = (kind, check_masters([args[0] for args in batch.work], kind, masters))


def run(batches, n_threads=1, grad_scale=1.0, rounding_seed=None):
    """Run ``batches`` (one ``Batch`` or a sequence), in order, every gradient multiplied by
    ``grad_scale`` as it is read; ``rounding_seed``: stochastic rounding of bfloat16 stores, with the
    runtime's keys. ``n_threads`` is checked and ignored."""
    grad_scale = real(grad_scale)
    if rounding_seed is not None and (isinstance(rounding_seed, bool) or not isinstance(rounding_seed, numbers.Integral)):
        raise TypeError(f"rounding_seed must be an int or None, got {type(rounding_seed).__name__}")
    if isinstance(n_threads, (bool, np.bool_)) or not isinstance(n_threads, numbers.Integral):
        raise TypeError(f"n_threads must be a positive int, got {type(n_threads).__name__}")
    if n_threads < 1:
        raise ValueError(f"n_threads must be a positive int, got {n_threads}")
    batches = [batches] if isinstance(batches, Batch) else list(batches)
    for batch in batches:
        if not isinstance(batch, Batch):
            raise TypeError(f"run() takes Batch objects, got {type(batch).__name__}")
    count = sum(len(batch) for batch in batches)
    keys = None if rounding_seed is None else item_keys(rounding_seed, count)
    done = 0
    for batch in batches:
        batch.run(grad_scale, None if keys is None else keys[done:done + len(batch)])
        done += len(batch)


def _label(name, k):
    return name if k < 0 else f"{name}[{k}]"


def _overlap_error(a, b):
    return ValueError(f"{a} and {b} overlap in memory: a step reads and writes every array in place, so "
                      "parameters, gradients and state must not share memory (pass a copy)")


def _flat(arr, dtype, n, write, name):
    """An array's flat view after the runtime's checks (``Batch.data``)."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(arr).__name__}")
    if arr.dtype != dtype:
        raise TypeError(f"{name} has dtype {arr.dtype}, expected {dtype}")
    if arr.size != n:
        raise ValueError(f"{name} has {arr.size} elements, expected {n}")
    if not (arr.flags.c_contiguous and arr.flags.aligned and arr.dtype.isnative):
        raise ValueError(f"{name} must be C-contiguous, aligned and in native byte order")
    if write and not arr.flags.writeable:
        raise ValueError(f"{name} is read-only")
    return arr.reshape(-1)


def _check_overlap(spans):
    """``spans``: (start, end, written, name); as ``Batch.check_overlap``."""
    written = sorted((s for s in spans if s[2] and s[1] > s[0]), key=lambda s: s[0])
    for a, b in zip(written, written[1:]):
        if b[0] < a[1]:
            raise _overlap_error(a[3], b[3])
    for lo, hi, write, name in spans:
        if write or hi == lo:
            continue
        j = np.searchsorted([s[1] for s in written], lo, side="right")  # the first that ends after lo
        if j < len(written) and written[j][0] < hi:
            raise _overlap_error(written[j][3], name)


def tensors(names, lists, required, check_overlap=True, indexed=True):
    """The per-tensor arguments of a ``*_batch`` call: ``(k, param, grad, *buffers)`` flat views for
    every tensor whose gradient is not None, all checked first (as the runtime's ``Batch``): lists (or
    tuples) aligned with the params, the first ``required`` of them not None; each array of the param's
    dtype and size, C-contiguous; written arrays sharing no memory with any other array of the call."""
    if not indexed:
        names = tuple(n[:-1] if n.endswith("s") else n for n in names)
    converted = []
    for i, values in enumerate(lists):
        if values is None:
            if i < required:
                raise TypeError(f"{names[i]} must be a list with one entry per param, got None")
        elif not isinstance(values, (list, tuple)):
            raise TypeError(f"{names[i]} must be a list with one entry per param, got {type(values).__name__}")
        converted.append(None if values is None else tuple(values))
    count = len(converted[0])
    if not indexed and count and converted[1][0] is None:
        raise TypeError(f"{names[1]} must be a numpy.ndarray, got NoneType")
    for name, values in zip(names[1:], converted[1:]):
        if values is not None and len(values) != count:
            raise ValueError(f"{name} has {len(values)} entries, expected {count} (one per param)")
    work, spans = [], []
    for k in range(count):
        if converted[1][k] is None:
            continue
        p = converted[0][k]
        label = _label(names[0], k if indexed else -1)
        if not isinstance(p, np.ndarray):
            raise TypeError(f"{label} must be a numpy.ndarray, got {type(p).__name__}")
        if format_of(p) is None and p.dtype not in (np.float32, np.float64):
            raise TypeError(f"{label} has dtype {p.dtype}, expected float32, float64, bfloat16 (ml_dtypes) "
                            "or float16")
        args = [k]
        for i, (name, values) in enumerate(zip(names, converted)):
            if values is None:
                args.append(None)
                continue
            counter = name in COUNTERS or name + "s" in COUNTERS
            if is_quantized(values[k]):  # quantized state: its size and its param's format
                q = values[k]
                if format_of(p) == "float64" or q.size != p.size:
                    raise ValueError(f"{_label(name, k if indexed else -1)} is {q.format} state of {q.size} "
                                     f"elements; expected the size of its param ({p.size}), which must be "
                                     "float32, bfloat16 or float16")
                args.append(q)
                continue
            n = 1 if counter else p.size
            label = _label(name, k if indexed else -1)
            write = i != 1
            # a counter is float32 or float64 whatever its param's dtype (as the kernels): by default
            # float32 for a 16-bit param
            dtype = np.dtype(np.float32) if counter and is_16bit(p) else p.dtype
            if counter and getattr(values[k], "dtype", None) in (np.float32, np.float64):
                dtype = values[k].dtype
            elif i >= 2 and not counter:  # state: float32 for a 16-bit param, bfloat16 for a float32 or float16 one
                fmt, param_fmt = format_of(values[k]), format_of(p)
                if (fmt == "float32" and param_fmt in ("bfloat16", "float16")
                        or fmt == "bfloat16" and param_fmt in ("float32", "float16")):
                    dtype = values[k].dtype
            try:
                arr = _flat(values[k], dtype, n, write, label)
            except ValueError as exc:
                if i and "elements, expected" in str(exc):
                    raise ValueError(f"{exc} (the size of {_label(names[0], k if indexed else -1)})") from None
                raise
            start = arr.__array_interface__["data"][0]
            spans.append((start, start + arr.nbytes, write, label))
            args.append(arr)
        work.append(args)
    if check_overlap:
        _check_overlap(spans)
    return work
