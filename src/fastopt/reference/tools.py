"""Pure-NumPy twins of ``fastopt/_kernels/tools.pyx``: the same math in the same order, so the same bits.

``grad_norm``: the gradients are laid end to end and cut at every multiple of BLOCK elements; each piece is summed in
double over 32 lanes (lane j takes elements j, j+32, ...: the piece padded with zeros to a multiple of
32, reshaped to rows of 32 and combined down the columns, one row after another), the lanes combined in
the kernel's tree, the pieces in order.
"""
import math

import numpy as np

from ._formats import is_16bit, widen
from ._util import Batch, real, run, tensors

from .._validation import ABSOLUTE, MAXIMUM, POWERS, SQUARES, norm_kind

BLOCK = 4096


def _pow(a, b):
    """C's pow (NumPy's power may use its own SIMD routines; math.pow raises where C gives inf)."""
    try:
        return math.pow(a, b)
    except OverflowError:
        return math.inf


def _lanes(values, combine):
    """32 lanes (lane j: elements j, j+32, ...) combined down the rows in order, then lanes j, j+8,
    j+16, j+24 as (a, b) (c, d), then the 8 results pairwise (the kernel's tree)."""
    padded = np.zeros((len(values) + 31) // 32 * 32)  # a lane's trailing zeros add nothing
    padded[:len(values)] = values
    rows = padded.reshape(-1, 32)
    lanes = rows[0].copy() if len(rows) else np.zeros(32)
    for row in rows[1:]:
        lanes = combine(lanes, row)
    u = combine(combine(lanes[0:8], lanes[8:16]), combine(lanes[16:24], lanes[24:32]))
    return combine(combine(combine(u[0], u[1]), combine(u[2], u[3])), combine(combine(u[4], u[5]), combine(u[6], u[7])))


def _piece(x, kind, power):
    """One piece's value, as the kernel's ``_norm_span``."""
    with np.errstate(invalid="ignore", over="ignore"):
        x = x.astype(np.float64)
        if kind == SQUARES:
            terms, combine = x * x, np.add                                       # s
        elif kind == ABSOLUTE:
            terms, combine = np.abs(x), np.add                                   # s
        elif kind == MAXIMUM:
            terms, combine = np.abs(x), np.maximum                               # s
        else:  # C's pow, as the kernel (NumPy's power may use its own SIMD routines)
            terms, combine = np.array([_pow(v, power) for v in np.abs(x)]), np.add  # s
        return float(_lanes(terms, combine))


def _finite(total, kind, grads):
    """As the kernel's: a finite total means finite elements; a non-finite one too, unless a float64
    sum (or any sum of powers) may have overflowed from finite elements: then element by element."""
    if np.isfinite(total):
        return True
    if kind == MAXIMUM or (kind != POWERS and all(g.dtype != np.float64 for g in grads)):
        return False
    return all(bool(np.isfinite(g).all()) for g in grads)


def grad_norm(grads, norm_type=2.0, n_threads=1):
    """``(norm, finite)`` of all of ``grads`` together (see the kernel's ``grad_norm``)."""
    kind, power = norm_kind(norm_type)
    if isinstance(grads, np.ndarray) or not isinstance(grads, (list, tuple)):
        raise TypeError(f"grads must be a list of arrays, got {type(grads).__name__}")
    present = [g for g in grads if g is not None]
    run([], n_threads)  # checks n_threads as the kernel's run does
    for k, g in enumerate(present):
        if not isinstance(g, np.ndarray):
            raise TypeError(f"grads[{k}] must be a numpy.ndarray, got {type(g).__name__}")
        if g.dtype.newbyteorder("=") not in (np.float32, np.float64) and not is_16bit(g):  # byte order: the layout check
            raise TypeError(f"grads[{k}] has dtype {g.dtype}, expected float32, float64, bfloat16 or float16")
        if not (g.flags.c_contiguous and g.flags.aligned and g.dtype.isnative):
            raise ValueError(f"grads[{k}] must be C-contiguous, aligned and in native byte order")
    pieces, offset = [], 0
    for g in present:
        flat = widen(g).reshape(-1) if is_16bit(g) else g.reshape(-1)  # 16-bit: as float32 (exact)
        a = 0
        while a < flat.size:
            b = min(flat.size, ((offset + a) // BLOCK + 1) * BLOCK - offset)
            pieces.append(_piece(flat[a:b], kind, power))
            a = b
        offset += flat.size
    total = 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        for value in pieces:
            total = float(np.maximum(total, value)) if kind == MAXIMUM else total + value   # s
        if kind == SQUARES:
            total = float(np.sqrt(total))                                                   # norm
        elif kind == POWERS:
            total = _pow(total, 1.0 / power)                                                # norm
    return total, _finite(total, kind, present)


def _ema(shadow, param, *, weight, grad_scale=1.0):
    """torch's lerp_(shadow, param, weight), as the kernel's ``_ema_span``."""
    w = shadow.dtype.type(weight)
    if abs(float(w)) < 0.5:  # the weight as rounded to the dtype, as torch's
        shadow[...] = shadow + w * (param - shadow)                             # shadow_t
    else:
        shadow[...] = param - (param - shadow) * (1 - w)                        # shadow_t


EMA_NAMES = ("shadows", "params")


def ema_update(shadows, params, weight, n_threads=1):
    """``shadow = lerp(shadow, param, weight)`` in place for every pair (see the kernel's)."""
    if not isinstance(shadows, (list, tuple)) or not isinstance(params, (list, tuple)):
        raise TypeError("shadows and params must be lists of arrays")
    for k, p in enumerate(params):
        if p is None:
            raise TypeError(f"params[{k}] must be a numpy.ndarray, got NoneType")
    weight = real(weight)
    work = tensors(EMA_NAMES, (shadows, params), 2)
    run(Batch(_ema, [args[1:] for args in work], dict(weight=weight)), n_threads)
