"""Every argument check of fastopt, in one place.

Hyperparameter checks raise torch.optim's messages (ValueError for a bad value, TypeError for a bad type).
Array checks name the parameter index and what was expected. Everything here runs before any buffer is
touched, so a rejected constructor, step or load changes nothing.
"""
import numbers

import numpy as np

from ._formats import QUANTIZED, UNSIGNED_STATE, entry_dtype, format_of, quantized
from ._kernels._runtime import ABSOLUTE, MAXIMUM, POWERS, SQUARES, norm_kind  # noqa: F401  (checks of the kernels' own)
from ._kernels._runtime import Quantized

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# ---------------------------------------------------------------------------------------------------
# hyperparameters


def real(name, value):
    """A real number (Python or NumPy int/float, a 0-d array of one, or a 1-element torch tensor, as
    torch accepts for ``lr``); returns it as a float."""
    if is_tensor(value):
        if value.numel() != 1 or value.is_complex():
            raise ValueError(f"{name} as a tensor must have 1 real element, got shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, np.ndarray):
        if value.ndim != 0:
            raise ValueError(f"{name} as an array must be 0-d (a scalar), got shape {value.shape}")
        value = value[()]
    if (isinstance(value, (bool, np.bool_, np.timedelta64, np.datetime64))
            or not isinstance(value, numbers.Real)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{name} is too large for a float: {value}") from None


def is_tensor(value):
    """Whether ``value`` is a torch tensor (without importing torch)."""
    return type(value).__module__.startswith("torch") and hasattr(value, "numel")


def plain(value):
    """A loaded hyperparameter with torch tensors made Python scalars (torch's state_dicts may hold a
    tensor ``lr`` or tensor ``betas``); other values unchanged."""
    if is_tensor(value) and value.numel() == 1 and not value.is_complex():
        return value.item()
    if type(value) in (tuple, list):
        return type(value)(plain(v) for v in value)
    return value


# grad_norm's kinds of norm (the kernel's enum in _kernels/tools.pyx has the same numbers)
def nonnegative(name, value, label=None):
    """torch's ``if not 0.0 <= value: raise ValueError(f"Invalid {label}: {value}")`` (NaN fails too)."""
    if not 0.0 <= real(name, value):
        raise ValueError(f"Invalid {label or name + ' value'}: {value}")


def learning_rate(lr):
    nonnegative("lr", lr, "learning rate")


def epsilon(eps):
    nonnegative("eps", eps, "epsilon value")


def betas(value):
    if isinstance(value, np.ndarray) and value.shape == (2,):
        value = tuple(value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"betas must be a pair (beta1, beta2), got {value!r}")
    for i, beta in enumerate(value):
        if not 0.0 <= real(f"betas[{i}]", beta) < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {beta}")


def pair(name, value):
    """A pair of reals (Rprop's ``etas`` and ``step_sizes``), returned as floats."""
    if isinstance(value, np.ndarray) and value.shape == (2,):
        value = tuple(value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name} must be a pair of numbers, got {value!r}")
    return real(f"{name}[0]", value[0]), real(f"{name}[1]", value[1])


def unit_interval(name, value, closed=False):
    """0 <= value < 1 (or <= 1 when ``closed``), with torch's "Invalid {name} value" message."""
    v = real(name, value)
    if not (0.0 <= v <= 1.0 if closed else 0.0 <= v < 1.0):
        raise ValueError(f"Invalid {name} value: {value}")


def flag(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")


def adam_family(group):
    """The hyperparameters every Adam-family group has, in torch's order of checks: lr, eps, betas,
    weight_decay."""
    learning_rate(group["lr"])
    epsilon(group["eps"])
    betas(group["betas"])
    nonnegative("weight_decay", group["weight_decay"])


def gradient_options(max_grad_norm, norm_type, skip_nonfinite):
    """The gradient options every optimizer takes (both faces), checked: (max_grad_norm as a float or
    None, norm_type as a float, skip_nonfinite as a bool)."""
    if max_grad_norm is not None and not 0.0 < real("max_grad_norm", max_grad_norm) < float("inf"):
        raise ValueError(f"max_grad_norm must be a positive number or None, got {max_grad_norm!r}")
    norm_type = real("norm_type", norm_type)
    norm_kind(norm_type)  # ValueError for anything but a positive p or inf
    flag("skip_nonfinite", skip_nonfinite)
    return (None if max_grad_norm is None else float(max_grad_norm)), float(norm_type), bool(skip_nonfinite)


def clip_scale(max_grad_norm, norm):
    """The gradient scale of clipping to ``max_grad_norm`` (None: 1): torch's clip_grad_norm_
    coefficient ``min(1, max_grad_norm / (norm + 1e-6))``; a NaN norm gives NaN, as torch's clamp."""
    if max_grad_norm is None:
        return 1.0
    coef = max_grad_norm / (norm + 1e-6)
    return 1.0 if coef >= 1.0 else coef


def torch_only_flags(group):
    """torch's implementation switches (foreach, fused) are accepted and inert: fastopt always runs
    its one fused kernel. capturable and differentiable need CUDA graphs and autograd."""
    for name in ("foreach", "fused"):
        if name in group and group[name] is not None:
            flag(name, group[name])
    for name in ("capturable", "differentiable"):
        if group.get(name, False):
            raise ValueError(f"{name}=True is not supported by fastopt (it needs torch's "
                             f"{'CUDA graphs' if name == 'capturable' else 'autograd'})")


# ---------------------------------------------------------------------------------------------------
# parameters, gradients and state


def _dtype_message(what, dtype):
    if dtype.name == "bfloat16":  # another library's bfloat16 (ml_dtypes' is accepted)
        return (f"{what} has dtype {dtype} from {dtype.type.__module__}; fastopt steps ml_dtypes.bfloat16 "
                "(pip install \"fastopt[bf16]\")")
    return f"{what} has dtype {dtype}, expected float32, float64, bfloat16 (ml_dtypes) or float16"


def param(p, index):
    """A parameter fastopt can update in place: a writeable, C-contiguous float32/float64 ndarray."""
    if not isinstance(p, np.ndarray):
        raise TypeError(f"optimizer can only optimize NumPy arrays, but params[{index}] is "
                        f"{type(p).__module__}.{type(p).__qualname__}")
    if format_of(p.dtype) is None:
        raise TypeError(_dtype_message(f"params[{index}]", p.dtype))
    if not p.flags.c_contiguous:
        raise ValueError(f"params[{index}] must be C-contiguous (the optimizer updates it in place, "
                         "so a contiguous copy would not train your array)")
    if not p.flags.writeable:
        raise ValueError(f"params[{index}] is read-only; the optimizer updates parameters in place")


def state_entry(value, p, index, key, scalar, expected=None):
    """A live state entry (``opt.state[index][key]``, possibly replaced by the user) that a step can
    update in place: an ndarray of dtype ``expected`` (by default the parameter's; a 16-bit one's
    counters: float32) and the parameter's shape (one element for a counter), C-contiguous and
    writeable."""
    what = f"state[{index}][{key!r}]"
    if expected in QUANTIZED:
        if not isinstance(value, Quantized):
            raise TypeError(f"{what} must be {expected} state (fastopt's Quantized), got {type(value).__name__}")
        if value.format != expected or value.size != p.size:
            raise ValueError(f"{what} is {value.format} state of {value.size} elements, expected {expected} "
                             f"of {p.size} (the size of params[{index}])")
        return
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{what} must be a numpy.ndarray, got {type(value).__name__}")
    expected = entry_dtype(p.dtype, scalar) if expected is None else expected
    if value.dtype != expected:
        raise TypeError(f"{what} has dtype {value.dtype}, expected {expected} "
                        f"({'the dtype' if expected == p.dtype else 'the state dtype'} of params[{index}])")
    if scalar and value.size != 1:
        raise ValueError(f"{what} must hold exactly 1 element (a 0-d counter), got shape {value.shape}")
    if not scalar and value.shape != p.shape:
        raise ValueError(f"{what} has shape {value.shape}, expected {p.shape} (the shape of params[{index}])")
    if not (value.flags.c_contiguous and value.flags.aligned and value.dtype.isnative):
        raise ValueError(f"{what} must be C-contiguous, aligned and in native byte order")
    if not value.flags.writeable:
        raise ValueError(f"{what} is read-only; the optimizer updates its state in place")


def _quantized_from_dict(saved, p, index, key):
    """A ``Quantized`` from its state_dict form (codes, absmax, qmap, block_size, signed)."""
    try:
        return Quantized(np.array(saved["codes"], dtype=np.uint8, copy=True),
                         np.array(saved["absmax"], dtype=np.float32, copy=True), saved["qmap"],
                         tuple(saved.get("shape", p.shape)), bool(saved.get("signed", True)))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"state of params[{index}]: {key!r} is not a quantized state ({exc})") from None


def state_buffer(value, p, index, key, scalar, dtype=None):
    """A loaded state entry as a fresh C-contiguous array of ``dtype`` (by default the parameter's; a
    16-bit one's counters: float32): a 0-d counter for scalar state (``step``, ``mu_product``), the
    parameter's shape otherwise."""
    if isinstance(value, dict) and "codes" in value:  # a quantized entry of a state_dict
        value = _quantized_from_dict(value, p, index, key)
    if dtype in QUANTIZED:
        if isinstance(value, Quantized) and value.format == dtype and value.size == p.size:
            return Quantized(value.codes.copy(), value.absmax.copy(), value.qmap, p.shape, value.is_signed)
        values = state_buffer(value, p, index, key, False, np.dtype(np.float32))  # quantize what it holds
        return quantized(values, dtype, key not in UNSIGNED_STATE, p.shape)
    if isinstance(value, Quantized):
        value = value.dequantize()
    try:
        # asarray first: torch tensors' __array__ takes no copy keyword; then one C-contiguous copy
        dtype = entry_dtype(p.dtype, scalar) if dtype is None else dtype
        arr = np.array(np.asarray(value, dtype=dtype), order="C", copy=True)
    except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
        raise TypeError(f"state of params[{index}]: {key!r} is not a numeric array ({exc})") from None
    if scalar:
        if arr.size != 1:
            raise ValueError(f"state of params[{index}]: {key!r} must be a scalar, got shape {arr.shape}")
        return arr.reshape(())
    if arr.shape != p.shape:
        raise ValueError(f"state of params[{index}]: {key!r} has shape {arr.shape}, expected {p.shape} "
                         f"(the shape of params[{index}])")
    return arr
