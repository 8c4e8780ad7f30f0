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
STATE_DTYPES = (None, "float32", "bfloat16", "q8", "q4")
QUANTIZED = ("q8", "q4")
MIN_QUANT_SIZE = 4096  # smaller tensors keep float32 state (bitsandbytes' and torchao's rule)
# State that is never negative takes the unsigned map (one more bit of resolution); the rest the signed.
UNSIGNED_STATE = frozenset({"exp_avg_sq", "max_exp_avg_sq", "sum", "square_avg", "acc_delta", "exp_inf"})
# State that is a copy of the parameters, not a statistic of the gradients (schedule-free's z, which eval()
# swaps with them): never quantized, whatever ``state_dtype`` asks (it would quantize the weights).
WEIGHT_STATE = frozenset({"z"})

# The quantization maps, float32 bits: bitsandbytes' create_dynamic_map(signed, 7, 8) for 8 bits, its
# create_dynamic_map(True, 3, 4) without the padding zeros for signed 4 bits, and k/16 (k = 1..16, no
# zero) for unsigned 4 bits (torchao's and lpmm's). tests/test_quantized.py regenerates them.
SIGNED_8 = """
bf7e3333 bf7a999a bf770000 bf736666 bf6fcccd bf6c3333 bf68999a bf650000 bf616666 bf5dcccd
bf5a3333 bf56999a bf530000 bf4f6666 bf4bcccd bf483333 bf44999a bf410000 bf3d6666 bf39cccd
bf363334 bf32999a bf2f0000 bf2b6666 bf27cccd bf243334 bf20999a bf1d0000 bf196666 bf15cccd
bf123334 bf0e999a bf0b0000 bf076666 bf03cccc bf003333 bef93332 bef20000 beeacccc bee3999a
bedc6666 bed53333 bece0000 bec6cccc bebf999a beb86666 beb13333 beaa0000 bea2cccc be9b999a
be946666 be8d3334 be860000 be7d9999 be6f3333 be60cccd be526666 be440000 be35999a be273333
be18cccd be0a6666 bdf80000 bddb3334 bdc9eb85 bdc428f7 bdbe6667 bdb8a3d7 bdb2e148 bdad1eb8
bda75c2a bda1999a bd9bd70a bd96147b bd9051eb bd8a8f5d bd84cccd bd7e147b bd728f5d bd670a3d
bd5b851f bd500000 bd447ae1 bd38f5c3 bd2d70a3 bd21eb85 bd166667 bd0ae148 bcfeb852 bce7ae15
bcd0a3d7 bcb9999a bca28f5d bc8b851f bc68f5c3 bc3ae148 bc1f3b64 bc160418 bc0ccccd bc039581
bbf4bc6a bbe24dd3 bbcfdf3b bbbd70a4 bbab020d bb989374 bb8624dd bb676c8a bb428f5c bb1db22d
baf1a9fc baa7ef9d ba7765ff ba59e83e ba3c6a80 ba1eecc1 ba016f01 b9c7e283 b98ce705 b923d70b
b8ba1f4b b88aefb3 b8378034 b7b24206 b70205ff b65a1a94 b513a3b7 00000000 3513a3b7 365a1a94
370205ff 37b24206 38378034 388aefb3 38ba1f4b 3923d70b 398ce705 39c7e283 3a016f01 3a1eecc1
3a3c6a80 3a59e83e 3a7765ff 3aa7ef9d 3af1a9fc 3b1db22d 3b428f5c 3b676c8a 3b8624dd 3b989374
3bab020d 3bbd70a4 3bcfdf3b 3be24dd3 3bf4bc6a 3c039581 3c0ccccd 3c160418 3c1f3b64 3c3ae148
3c68f5c3 3c8b851f 3ca28f5d 3cb9999a 3cd0a3d7 3ce7ae15 3cfeb852 3d0ae148 3d166667 3d21eb85
3d2d70a3 3d38f5c3 3d447ae1 3d500000 3d5b851f 3d670a3d 3d728f5d 3d7e147b 3d84cccd 3d8a8f5d
3d9051eb 3d96147b 3d9bd70a 3da1999a 3da75c2a 3dad1eb8 3db2e148 3db8a3d7 3dbe6667 3dc428f7
3dc9eb85 3ddb3334 3df80000 3e0a6666 3e18cccd 3e273333 3e35999a 3e440000 3e526666 3e60cccd
3e6f3333 3e7d9999 3e860000 3e8d3334 3e946666 3e9b999a 3ea2cccc 3eaa0000 3eb13333 3eb86666
3ebf999a 3ec6cccc 3ece0000 3ed53333 3edc6666 3ee3999a 3eeacccc 3ef20000 3ef93332 3f003333
3f03cccc 3f076666 3f0b0000 3f0e999a 3f123334 3f15cccd 3f196666 3f1d0000 3f20999a 3f243334
3f27cccd 3f2b6666 3f2f0000 3f32999a 3f363334 3f39cccd 3f3d6666 3f410000 3f44999a 3f483333
3f4bcccd 3f4f6666 3f530000 3f56999a 3f5a3333 3f5dcccd 3f616666 3f650000 3f68999a 3f6c3333
3f6fcccd 3f736666 3f770000 3f7a999a 3f7e3333 3f800000"""

UNSIGNED_8 = """
00000000 34ae7baa 35500998 360e9b38 3692ccf6 36de4c51 3714e5d5 3783126e 37e171a0 381fe868
384f1800 387e479a 3896bb99 38ae5364 38c5eb31 3906594b 394154ca 397c5049 399ba5e4 39b923a2
39d6a163 39f41f22 3a08ce71 3a178d50 3a264c30 3a350b10 3a43c9ef 3a5288d0 3a6147af 3a70068e
3a7ec56e 3a958106 3aba5e35 3adf3b64 3b020c4a 3b147ae1 3b26e978 3b395810 3b4bc6a7 3b5e3540
3b70a3d7 3b818937 3b8ac082 3b93f7cf 3b9d2f1a 3ba66666 3baf9db2 3bb8d4fd 3bc20c4a 3bcb4395
3bd47ae1 3bddb22e 3be6e978 3bf020c5 3bf9580f 3c0147ae 3c05e354 3c0a7ef9 3c0f1aa0 3c13b645
3c1851eb 3c1ced92 3c218937 3c2f5c2a 3c466667 3c5d70a3 3c747ae2 3c85c28f 3c9147af 3c9ccccd
3ca851eb 3cb3d70b 3cbf5c29 3ccae147 3cd66667 3ce1eb87 3ced70a3 3cf8f5c3 3d023d70 3d080000
3d0dc28f 3d13851f 3d1947af 3d1f0a3d 3d24cccd 3d2a8f5c 3d3051eb 3d36147b 3d3bd70a 3d41999a
3d475c28 3d4d1eb8 3d52e147 3d58a3d7 3d5e6667 3d6428f7 3d69eb87 3d6fae15 3d7570a3 3d7b3333
3d807ae2 3d835c2a 3d863d71 3d891eb8 3d8c0000 3d8ee148 3d91c290 3d94a3d7 3d97851f 3d9a6667
3d9d47af 3da028f6 3da30a3e 3da5eb85 3da8cccd 3dabae15 3dae8f5c 3db170a4 3db451eb 3db73333
3dba147b 3dbcf5c3 3dbfd70b 3dc2b852 3dc5999a 3dc87ae2 3dcb5c29 3dd40000 3de26666 3df0cccd
3dff3333 3e06cccc 3e0e0000 3e153334 3e1c6666 3e23999a 3e2acccc 3e320000 3e393334 3e406666
3e47999a 3e4ecccc 3e560000 3e5d3334 3e646666 3e6b999a 3e72cccc 3e7a0000 3e809999 3e843333
3e87cccd 3e8b6666 3e8f0000 3e92999a 3e963333 3e99cccc 3e9d6666 3ea10000 3ea4999a 3ea83333
3eabcccc 3eaf6666 3eb30000 3eb6999a 3eba3333 3ebdcccc 3ec16666 3ec50000 3ec8999a 3ecc3333
3ecfcccc 3ed36666 3ed70000 3eda999a 3ede3333 3ee1cccc 3ee56666 3ee90000 3eec999a 3ef03333
3ef3cccc 3ef76666 3efb0000 3efe9999 3f01199a 3f02e666 3f04b333 3f068000 3f084ccc 3f0a199a
3f0be666 3f0db334 3f0f8000 3f114ccd 3f13199a 3f14e666 3f16b334 3f188000 3f1a4ccd 3f1c199a
3f1de666 3f1fb334 3f218000 3f234ccd 3f25199a 3f26e666 3f28b334 3f2a8000 3f2c4ccd 3f2e199a
3f2fe666 3f31b334 3f338000 3f354ccd 3f37199a 3f38e666 3f3ab334 3f3c8000 3f3e4ccd 3f40199a
3f41e666 3f43b334 3f458000 3f474ccc 3f49199a 3f4ae666 3f4cb334 3f4e8000 3f504ccc 3f52199a
3f53e666 3f55b334 3f578000 3f594ccc 3f5b199a 3f5ce666 3f5eb334 3f608000 3f624ccc 3f64199a
3f65e666 3f67b334 3f698000 3f6b4ccc 3f6d199a 3f6ee666 3f70b334 3f728000 3f744ccc 3f76199a
3f77e666 3f79b334 3f7b8000 3f7d4ccc 3f7f199a 3f800000"""

SIGNED_4 = """
bf633333 bf29999a bee00000 be599999 bd9eb852 bd051eb9 bbb43958 00000000 3bb43958 3d051eb9
3d9eb852 3e599999 3ee00000 3f29999a 3f633333 3f800000"""


def qmap(bits, signed):
    """The sorted float32 map of ``bits``-bit codes (8 or 4), signed or not."""
    if bits == 4 and not signed:
        return np.arange(1, 17, dtype=np.float32) / np.float32(16)
    text = {(8, True): SIGNED_8, (8, False): UNSIGNED_8, (4, True): SIGNED_4}[(bits, signed)]
    return np.array([int(word, 16) for word in text.split()], dtype=np.uint32).view(np.float32)


def quantized(values, fmt, signed, shape):
    """A new quantized state array ("q8" or "q4") holding float32 ``values`` (as a step stores them)."""
    from ._kernels._runtime import Quantized

    bits = 8 if fmt == "q8" else 4
    block = 256 if bits == 8 else 128
    size = int(np.prod(shape, dtype=np.int64))
    codes = np.zeros(size if bits == 8 else (size + 1) // 2, np.uint8)
    q = Quantized(codes, np.zeros((size + block - 1) // block, np.float32), qmap(bits, signed), shape, signed)
    q.quantize_from(np.broadcast_to(np.asarray(values, np.float32), (size,)) if np.ndim(values) == 0 else values)
    return q
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
    - ``state_dtype``: None (the param's dtype, float32 with a master), "float32", "bfloat16", "q8" or
      "q4" (quantized: tensors under MIN_QUANT_SIZE elements keep float32), or a dict per state key.
    """

    def __init__(self, rounding="nearest", seed=None, master_weights=None, state_dtype=None):
        if rounding not in ROUNDINGS:
            raise ValueError(f"rounding must be 'nearest' or 'stochastic', got {rounding!r}")
        if master_weights not in MASTERS:
            raise ValueError(f"master_weights must be None, 'split' or 'float32', got {master_weights!r}")
        if isinstance(state_dtype, dict):
            for key, value in state_dtype.items():
                if not isinstance(key, str) or value not in STATE_DTYPES[1:]:
                    raise ValueError(f"state_dtype[{key!r}] must be 'float32', 'bfloat16', 'q8' or 'q4', got {value!r}")
            state_dtype = dict(state_dtype)
        elif state_dtype not in STATE_DTYPES:
            raise ValueError(f"state_dtype must be None, 'float32', 'bfloat16', 'q8', 'q4' or a dict of them per "
                             f"state key, got {state_dtype!r}")
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

    def entry_dtype(self, param_dtype, key, scalar, size=None):
        """The dtype of state entry ``key`` of a parameter of ``param_dtype`` (and ``size`` elements: a
        quantized format is "q8" or "q4", float32 under MIN_QUANT_SIZE)."""
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
        if key in WEIGHT_STATE and wanted in QUANTIZED:
            wanted = None
        if wanted is None or param_dtype == np.float64:
            return param_dtype
        if wanted in QUANTIZED:
            return wanted if size is None or size >= MIN_QUANT_SIZE else np.dtype(np.float32)
        if wanted == "bfloat16":
            return _bfloat16()
        return np.dtype(np.float32)

    def new_entry(self, param, key, fill, scalar):
        """A fresh state entry."""
        dtype = self.entry_dtype(param.dtype, key, scalar, param.size)
        if dtype in QUANTIZED:
            return quantized(np.float32(0.0 if fill is None else fill), dtype, key not in UNSIGNED_STATE, param.shape)
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
