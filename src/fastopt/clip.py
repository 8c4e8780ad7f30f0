"""Gradient clipping over lists of NumPy gradients, with ``torch.nn.utils``' names and semantics.

    total = fastopt.clip_grad_norm_(grads, max_norm=1.0)    # grads scaled in place; returns the norm
    fastopt.clip_grad_value_(grads, clip_value=0.5)         # grads clamped to [-0.5, 0.5] in place

The norm is one compiled pass over every gradient (``fastopt.kernels.grad_norm``), accumulated in
double and deterministic for any thread count, so it can differ from torch's float32 norm in the last
bits. To clip inside an optimizer's step without rewriting the gradients, give the optimizer
``max_grad_norm`` instead (see :class:`fastopt.Optimizer`).
"""
import numpy as np

from . import _validation as check
from . import kernels
from ._config import get_num_threads

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm"]


def _grad_list(grads, name="grads"):
    """A list of gradient arrays (a single array is a list of one; None entries are dropped)."""
    if isinstance(grads, np.ndarray):
        return [grads]
    if isinstance(grads, (str, bytes, dict)) or not hasattr(grads, "__iter__"):
        raise TypeError(f"{name} must be an array or a list of arrays, got {type(grads).__name__}")
    out = [g for g in grads if g is not None]
    for k, g in enumerate(out):
        if not isinstance(g, np.ndarray):
            raise TypeError(f"{name}[{k}] must be a numpy.ndarray, got {type(g).__name__}")
    return out


def _writeable(grads):
    for k, g in enumerate(grads):
        if not g.flags.writeable:
            raise ValueError(f"grads[{k}] is read-only; clipping updates gradients in place")


def get_total_norm(grads, norm_type=2.0, error_if_nonfinite=False):
    """The ``norm_type``-norm of all of ``grads`` together (float32/float64 arrays, C-contiguous), as
    ``torch.nn.utils.get_total_norm``: 2, 1, inf or any p > 0. Raises RuntimeError, as torch, if it is
    NaN or inf and ``error_if_nonfinite``.

    Parameters
    ----------
    grads : numpy.ndarray or list of (numpy.ndarray or None)
        The gradients (None entries are ignored): float32 or float64, C-contiguous, any shapes, not
        written.
    norm_type : float, default 2.0
        2, 1, ``inf`` or any other p > 0.
    error_if_nonfinite : bool, default False
        Raise RuntimeError if the norm is NaN or inf.

    Returns
    -------
    float
        The norm, accumulated in double (0.0 for no gradients).

    Raises
    ------
    TypeError, ValueError
        For a bad gradient or ``norm_type``.
    RuntimeError
        For a non-finite norm with ``error_if_nonfinite``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> grads = [np.array([3.0, 0.0]), np.array([-4.0])]
    >>> print(fastopt.get_total_norm(grads), fastopt.get_total_norm(grads, norm_type=1))
    5.0 7.0
    """
    norm_type = check.real("norm_type", norm_type)
    total, _ = kernels.grad_norm(_grad_list(grads), norm_type, get_num_threads())
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(f"The total norm of order {float(norm_type)} for gradients from `parameters` is "
                           "non-finite, so it cannot be clipped. To disable this error and scale the gradients "
                           "by the non-finite norm anyway, set `error_if_nonfinite=False`")
    return total


def clip_grad_norm_(grads, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale ``grads`` in place so that their joint ``norm_type``-norm is at most ``max_norm``, as
    ``torch.nn.utils.clip_grad_norm_``: each gradient is multiplied by ``min(1, max_norm / (norm +
    1e-6))`` (rounded to its dtype; a NaN norm makes every gradient NaN, an infinite one zeroes the
    finite elements). Returns the norm before clipping (a float). Everything is checked before any
    gradient is written.

    Parameters
    ----------
    grads : numpy.ndarray or list of (numpy.ndarray or None)
        The gradients to scale in place (None entries are ignored): float32 or float64, C-contiguous,
        writeable, any shapes.
    max_norm : float
        The largest norm allowed, >= 0 (unchecked, as in torch: a negative one flips the gradients).
    norm_type : float, default 2.0
        2, 1, ``inf`` or any other p > 0.
    error_if_nonfinite : bool, default False
        Raise RuntimeError (before writing) if the norm is NaN or inf.

    Returns
    -------
    float
        The joint norm of ``grads`` before clipping.

    Raises
    ------
    TypeError, ValueError
        For a bad or read-only gradient, ``max_norm`` or ``norm_type``.
    RuntimeError
        For a non-finite norm with ``error_if_nonfinite``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> grads = [np.array([3.0, 0.0]), np.array([-4.0])]
    >>> total = fastopt.clip_grad_norm_(grads, max_norm=1.0)   # scaled by 1 / 5
    >>> print(total, grads[0].round(4), grads[1].round(4))
    5.0 [0.6 0. ] [-0.8]
    """
    max_norm = check.real("max_norm", max_norm)
    grads = _grad_list(grads)
    _writeable(grads)
    total = get_total_norm(grads, norm_type, error_if_nonfinite)
    coef = max_norm / (total + 1e-6)
    if not coef >= 1.0:  # NaN included: torch's clamp(max=1) keeps it
        for g in grads:
            np.multiply(g, g.dtype.type(coef), out=g)
    return total


def clip_grad_value_(grads, clip_value):
    """Clamp every element of ``grads`` to ``[-clip_value, clip_value]`` in place, as
    ``torch.nn.utils.clip_grad_value_`` (NaN stays NaN).

    Parameters
    ----------
    grads : numpy.ndarray or list of (numpy.ndarray or None)
        The gradients to clamp in place (None entries are ignored): float32 or float64, writeable,
        any shapes.
    clip_value : float
        The bound, >= 0 (unchecked, as in torch: a negative one sets every element to ``clip_value``).

    Raises
    ------
    TypeError, ValueError
        For a bad or read-only gradient or ``clip_value``, before any gradient is written.

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> g = np.array([-2.0, 0.3, 1.5])
    >>> fastopt.clip_grad_value_([g], clip_value=0.5)
    >>> print(g)
    [-0.5  0.3  0.5]
    """
    clip_value = check.real("clip_value", clip_value)
    grads = _grad_list(grads)
    _writeable(grads)
    for k, g in enumerate(grads):
        if check.format_of(g.dtype) is None:
            raise TypeError(f"grads[{k}] has dtype {g.dtype}, expected float32, float64, bfloat16 or float16")
    for g in grads:
        np.clip(g, -clip_value, clip_value, out=g)
