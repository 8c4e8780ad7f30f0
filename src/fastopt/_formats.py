"""The dtypes fastopt steps, in one place for the Python layer (the kernels' is ``_kernels/_formats.h``).

Parameters (and their gradients and state) are float32, float64, bfloat16 (``ml_dtypes.bfloat16``: the
``fastopt[bf16]`` extra) or float16. 16-bit arrays are computed in float32 and stored rounded to nearest
even, as torch's fused CPU optimizers do; their counters (``step``, ``mu_product``) stay float32.
"""
import numpy as np

FORMATS = ("float32", "float64", "bfloat16", "float16")
HALF = ("bfloat16", "float16")


def format_of(dtype):
    """The format name of a parameter dtype, or None where fastopt cannot step it."""
    dtype = np.dtype(dtype)
    if not dtype.isnative:
        return None
    if dtype in (np.float32, np.float64, np.float16):
        return dtype.name
    if dtype.name == "bfloat16" and dtype.itemsize == 2 and dtype.type.__module__.startswith("ml_dtypes"):
        return "bfloat16"
    return None


def entry_dtype(param_dtype, scalar):
    """The dtype of a state entry of a parameter of ``param_dtype``: the parameter's own, but float32
    for the counters of a 16-bit parameter (a bfloat16 step count would stop at 256)."""
    param_dtype = np.dtype(param_dtype)
    if scalar and format_of(param_dtype) in HALF:
        return np.dtype(np.float32)
    return param_dtype


ROUNDINGS = ("nearest", "stochastic")
MASTERS = (None, "split", "float32")
STATE_DTYPES = (None, "float32", "bfloat16")
STATE_KEYS = {"split": "param_lo", "float32": "master_param"}  # a master's state entry


def _splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


class Precision:
    """The precision options every optimizer takes (both faces), checked and applied in one place:

    - ``rounding``: "nearest" (default) or "stochastic" rounding of bfloat16 stores, from a hash of
      (``seed``, the step, the tensor, the element): reproducible for a seed, the same for any thread
      count;
    - ``master_weights``: None, "split" (a bfloat16 param plus its int16 low halves, state
      ``param_lo``: together exactly a float32 master) or "float32" (a float32 master in state
      ``master_param``, rounded into the 16-bit param at every step);
    - ``state_dtype``: None (the param's dtype, float32 with a master), "float32" or "bfloat16", or a
      dict of those per state key.
    """

    def __init__(self, rounding="nearest", seed=None, master_weights=None, state_dtype=None):
        if rounding not in ROUNDINGS:
            raise ValueError(f"rounding must be 'nearest' or 'stochastic', got {rounding!r}")
        if master_weights not in MASTERS:
            raise ValueError(f"master_weights must be None, 'split' or 'float32', got {master_weights!r}")
        if isinstance(state_dtype, dict):
            for key, value in state_dtype.items():
                if not isinstance(key, str) or value not in STATE_DTYPES[1:]:
                    raise ValueError(f"state_dtype[{key!r}] must be 'float32' or 'bfloat16', got {value!r}")
            state_dtype = dict(state_dtype)
        elif state_dtype not in STATE_DTYPES:
            raise ValueError(f"state_dtype must be None, 'float32', 'bfloat16' or a dict of them per state key, "
                             f"got {state_dtype!r}")
        if seed is None:
            seed = int(np.random.SeedSequence().entropy) & 0xFFFFFFFFFFFFFFFF if rounding == "stochastic" else 0
        elif isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
        self.rounding, self.seed, self.master_weights, self.state_dtype = rounding, int(seed), master_weights, state_dtype
        self.steps = 0  # steps run with stochastic rounding: the step in its hash

    def check_param(self, p, index):
        """ValueError for a parameter the options do not fit, before anything changes."""
        self.check_format(format_of(p.dtype), f"params[{index}]")

    def check_format(self, fmt, name):
        """ValueError for a parameter (``name``, of format ``fmt``) the options do not fit."""
        what = f"{name} ({fmt})"
        if self.master_weights == "split" and fmt != "bfloat16":
            raise ValueError(f"master_weights='split' is for bfloat16 parameters, not {what}")
        if self.master_weights == "float32" and fmt not in HALF:
            raise ValueError(f"master_weights='float32' is for bfloat16 and float16 parameters, not {what}")
        if self.rounding == "stochastic" and fmt == "float16":
            raise ValueError(f"rounding='stochastic' is for bfloat16 stores, not {what} (keep float16 parameters "
                             "with master_weights='float32', or use bfloat16)")
        wanted = self.state_dtype.values() if isinstance(self.state_dtype, dict) else [self.state_dtype]
        if fmt == "float64" and any(v is not None for v in wanted):
            raise ValueError(f"state_dtype={self.state_dtype!r} is for float32 and 16-bit parameters, not {what}")

    def extra_spec(self):
        """The state entries of the master (``{key: (fill, scalar)}``; fill "param": a copy of it)."""
        if self.master_weights == "split":
            return {"param_lo": (0, False)}
        if self.master_weights == "float32":
            return {"master_param": ("param", False)}
        return {}

    def entry_dtype(self, param_dtype, key, scalar):
        """The dtype of state entry ``key`` of a parameter of ``param_dtype``."""
        param_dtype = np.dtype(param_dtype)
        if key == "param_lo":
            return np.dtype(np.int16)
        if key == "master_param":
            return np.dtype(np.float32)
        if scalar:
            return entry_dtype(param_dtype, True)
        wanted = self.state_dtype.get(key) if isinstance(self.state_dtype, dict) else self.state_dtype
        if wanted is None and self.master_weights is not None:
            wanted = "float32"
        if wanted is None or param_dtype == np.float64:
            return param_dtype
        if wanted == "bfloat16":
            return _bfloat16()
        return np.dtype(np.float32)

    def new_entry(self, param, key, fill, scalar):
        """A fresh state entry."""
        dtype = self.entry_dtype(param.dtype, key, scalar)
        if fill == "param":
            return param.astype(dtype)
        return np.full(() if scalar else param.shape, 0.0 if fill is None else fill, dtype=dtype)

    def rounding_seed(self):
        """The ``run`` seed of the next step (None: to nearest); ``advance`` after the step ran."""
        if self.rounding != "stochastic":
            return None
        return _splitmix64(self.seed ^ _splitmix64(self.steps))

    def advance(self):
        if self.rounding == "stochastic":
            self.steps += 1


def _bfloat16():
    try:
        import ml_dtypes
    except ImportError:
        raise ValueError("state_dtype='bfloat16' needs ml_dtypes (pip install \"fastopt[bf16]\")") from None
    return np.dtype(ml_dtypes.bfloat16)
