"""Pure-NumPy twin of ``fastopt/_kernels/_formats.h``: the storage formats, and staging through float32.

A 16-bit array (bfloat16 from ``ml_dtypes``, or NumPy's float16) is widened to a float32 copy, the rule
runs on the copies as on float32 arrays, and what the rule writes is rounded back, with the kernels'
integer sequences (so NaN becomes the same bits too).
"""
import numpy as np

from .._formats import format_of as _dtype_format

def format_of(arr):
    """The name of ``arr``'s storage format, or None (as the runtime's ``format_of``)."""
    return _dtype_format(arr.dtype) if isinstance(arr, np.ndarray) else None


def is_16bit(arr):
    return format_of(arr) in ("bfloat16", "float16")


def is_quantized(value):
    """A quantized state array (``fastopt._kernels._runtime.Quantized``: codes, absmax and qmap)."""
    return type(value).__name__ == "Quantized" and hasattr(value, "qmap")


def needs_staging(value):
    return is_16bit(value) or is_quantized(value)


def _codes(q):
    """The codes of a quantized array, one per element."""
    if q.bits == 8:
        return q.codes[:q.size].astype(np.intp)
    return np.stack([q.codes >> 4, q.codes & 15], axis=1).reshape(-1)[:q.size].astype(np.intp)


def dequantize(q):
    """float32 values of a quantized array: qmap[code] * its block's absmax (the kernel's fo_dequantize)."""
    return q.qmap[_codes(q)] * np.repeat(q.absmax, q.block_size)[:q.size]


def quantize_into(q, values):
    """Store float32 ``values`` into a quantized array in place, as the kernel's ``fo_quantize``: per
    block its absmax (NaN if an element is), then each value's nearest map entry after scaling by
    1/absmax, ties up (``searchsorted`` on the midpoints; NaN: code 0)."""
    size, block = q.size, q.block_size
    padded = np.zeros((size + block - 1) // block * block, np.float32)
    padded[:size] = values
    blocks = padded.reshape(-1, block)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        absmax = np.max(np.abs(blocks), axis=1)
        inv = np.where(absmax == 0, np.float32(0), np.float32(1) / absmax).astype(np.float32)
        scaled = (blocks * inv[:, None]).reshape(-1)[:size]
    mid = (q.qmap[:-1] + q.qmap[1:]) * np.float32(0.5)
    codes = np.searchsorted(mid, scaled, side="right")
    codes[np.isnan(scaled)] = 0
    q.absmax[...] = absmax
    if q.bits == 8:
        q.codes[...] = codes.astype(np.uint8)
    else:
        pairs = np.zeros(q.codes.size * 2, np.uint8)
        pairs[:size] = codes
        q.codes[...] = (pairs[0::2] << 4) | pairs[1::2]


def _widen_bits(bits, storage):
    """float32 values of uint16 ``bits`` of a 16-bit format (exact)."""
    if storage == "bfloat16":
        return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)
    return bits.view(np.float16).astype(np.float32)


def _narrow_bits(values, storage):
    """The uint16 bits of float32 ``values`` rounded to nearest even in a 16-bit format: bfloat16 by the
    kernel's integer rounding (NaN: 0x7FC0), float16 as IEEE (NumPy's cast: the same rounding) with NaN
    as 0x7E00 and its sign, as the kernel's."""
    values = np.asarray(values, dtype=np.float32)
    u = values.view(np.uint32)
    nan = values != values
    if storage == "bfloat16":
        rounded = ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)).astype(np.uint16)
        return np.where(nan, np.uint16(0x7FC0), rounded)
    with np.errstate(over="ignore", invalid="ignore"):
        rounded = values.astype(np.float16).view(np.uint16)
    return np.where(nan, ((u >> np.uint32(16)) & np.uint32(0x8000)).astype(np.uint16) | np.uint16(0x7E00), rounded)


def widen(arr):
    """A float32 copy of a bfloat16 or float16 array (exact)."""
    return _widen_bits(arr.view(np.uint16), format_of(arr))


def narrow_into(out, values):
    """Round float32 ``values`` to ``out``'s 16-bit format (``_narrow_bits``) and write them into ``out``."""
    out.view(np.uint16)[...] = _narrow_bits(values, format_of(out)).reshape(out.shape)


def round_scalar(x, storage):
    """A hyperparameter rounded to float32 and then to a 16-bit ``storage`` format (as the kernel's
    ``fo_round_scalar``); unchanged for other formats (None: float32/float64)."""
    if storage not in ("bfloat16", "float16"):
        return x
    with np.errstate(over="ignore"):
        value = np.array([x], dtype=np.float32)
    return float(_widen_bits(_narrow_bits(value, storage), storage)[0])


M32 = 0xFFFFFFFF


def hash32(key, i):
    """The kernels' ``fo_hash`` (murmur3's finalizer over key ^ i * golden ratio) on Python ints."""
    h = (key ^ (i * 0x9E3779B9)) & M32
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & M32
    return h ^ (h >> 16)


def _hash_array(key, i):
    """``hash32`` elementwise: ``key`` and ``i`` uint32 arrays (or a key broadcast), wrapping as C's."""
    h = np.asarray(key, dtype=np.uint32) ^ (np.asarray(i, dtype=np.uint32) * np.uint32(0x9E3779B9))
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def item_keys(rounding_seed, count):
    """The stochastic-rounding keys of a job's items (the runtime's ``run``)."""
    seed = int(rounding_seed) & 0xFFFFFFFFFFFFFFFF
    base = hash32(seed & M32, hash32(seed >> 32, 0x2545F491))
    return [hash32(base, k) for k in range(count)]


def _stochastic_bits(values, key):
    """bfloat16 bits of float32 ``values`` (element i of the array at i), rounded up with probability
    (u & 0xFFFF) / 65536 from the array's stream ``key`` (the kernel's ``fo_narrow_sr``)."""
    values = np.asarray(values, dtype=np.float32).reshape(-1)
    index = np.arange(values.size, dtype=np.uint64)
    high = (index >> np.uint64(32)).astype(np.uint32)
    keys = np.where(high == 0, np.uint32(key), _hash_array(np.uint32(key), high))
    r = _hash_array(keys, (index & np.uint64(M32)).astype(np.uint32)) >> np.uint32(16)
    u = values.view(np.uint32)
    return np.where(values != values, np.uint16(0x7FC0), ((u + r) >> np.uint32(16)).astype(np.uint16))


def _join(hi, lo):
    """The float32 masters of bfloat16 high halves and int16 low halves (``fo_join``)."""
    u = (hi.view(np.uint16).astype(np.uint32) << np.uint32(16)) + lo.view(np.int16).astype(np.int32).view(np.uint32)
    return u.view(np.float32)


def _split(values):
    """(high, low) uint16 bits of float32 ``values`` (``fo_split``): high rounded to nearest, ties away
    from zero; low the exact rest; NaN as 0x7FC0 and 0."""
    values = np.asarray(values, dtype=np.float32)
    u = values.view(np.uint32)
    h = (u + np.uint32(0x8000)) >> np.uint32(16)
    nan = values != values
    low = (u - (h << np.uint32(16))).astype(np.uint16)
    return np.where(nan, np.uint16(0x7FC0), h.astype(np.uint16)), np.where(nan, np.uint16(0), low)


def store16(out, values, key, salt):
    """Write float32 ``values`` into the 16-bit ``out``: stochastically for bfloat16 when ``key`` (the
    item's) is not None, from the stream of argument ``salt``; to nearest otherwise."""
    if key is not None and format_of(out) == "bfloat16":
        out.view(np.uint16)[...] = _stochastic_bits(values, hash32(key, salt)).reshape(out.shape)
    else:
        narrow_into(out, values)


def staged(rule, args, hyper, grad_scale, key=None, master=None):
    """``rule(*args)`` for a work item (param, grad, state..., in the kernel's argument order, which is
    each array's stream ``salt``) with arrays in other formats than its math's: 16-bit ones run as
    float32 copies; ``master`` (kind, array) gives the param a float32 master, "split" (its int16 low
    halves) or "float32" (the master itself, rounded into the param). What the rule writes (all but the
    gradient, ``args[1]``) is stored back as the kernel's ``staged_chunk`` does. A rule marked
    ``takes_storage`` is told the param's format."""
    wide = [widen(a) if is_16bit(a) else dequantize(a) if is_quantized(a) else a for a in args]
    if master is not None:
        kind, extra = master
        wide[0] = _join(args[0], extra) if kind == "split" else extra
    extras = {"storage": format_of(args[0])} if getattr(rule, "takes_storage", False) else {}
    rule(*wide, **hyper, grad_scale=grad_scale, **extras)
    for i, (a, w) in enumerate(zip(args, wide)):
        if i == 1 or w is a:
            continue
        if i == 0 and master is not None:
            if master[0] == "split":
                high, low = _split(w)
                a.view(np.uint16)[...] = high.reshape(a.shape)
                master[1].view(np.uint16)[...] = low.reshape(a.shape)
            else:
                store16(a, w, key, 0)
        elif is_quantized(a):
            quantize_into(a, w)
        else:
            store16(a, w, key, i)


def check_masters(params, kind, masters):
    """The runtime's ``attach`` checks on the reference's side: ``params`` the batch's flat param views
    (its items), ``masters`` one entry per param of the call, None where it has no gradient (no item)."""
    if kind not in ("split", "float32"):
        raise ValueError(f"kind must be 'split' or 'float32', got {kind!r}")
    present = [(k, m) for k, m in enumerate(masters) if m is not None]
    if len(present) != len(params):
        raise ValueError(f"masters has {len(present)} arrays, expected {len(params)} (one per param with a gradient)")
    out = []
    for p, (k, m) in zip(params, present):
        fmt = format_of(p)
        if kind == "split" and fmt != "bfloat16" or kind == "float32" and fmt not in ("bfloat16", "float16"):
            raise ValueError(f"master_weights={kind!r} is for {'bfloat16' if kind == 'split' else 'bfloat16 and float16'} "
                             f"params; params[{k}] is {fmt}")
        if not isinstance(m, np.ndarray):
            raise TypeError(f"the master of params[{k}] must be a numpy.ndarray, got {type(m).__name__}")
        dtype = np.int16 if kind == "split" else np.float32
        if m.dtype != dtype or m.size != p.size or not (m.flags.c_contiguous and m.flags.aligned
                                                         and m.dtype.isnative and m.flags.writeable):
            raise ValueError(f"the master of params[{k}] must be a writeable C-contiguous "
                             f"{np.dtype(dtype).name} array of {p.size} elements, got {m.dtype} of shape {m.shape}")
        out.append(m.reshape(-1))
    return out
