"""The precision table of ``python -m fastopt bench``: Adam's step in fewer bytes than float32's.

One parameter array of ``PRECISION_SIZE`` elements, interleaved rounds, medians; every row against
fastopt's float32 step, the bfloat16 row also against its own floor (the floor kernel over the same
bytes: float32 arrays of half the length), against its arithmetic alone ("bf16 math": the same kernel
on an in-cache array, one thread's time divided by the thread count) and torch's fused bfloat16 Adam. Bytes per element count what
one step reads and writes (docs/precision.md).
"""
import numpy as np

from fastopt import kernels
from fastopt._config import get_num_threads, set_num_threads
from fastopt._timing import compare
from fastopt.adam import Adam
from fastopt.cli import print_header, print_row

PRECISION_SIZE = 10_000_000

# (row, param dtype name, options, bytes per element: read + written)
ROWS = [
    ("float32", "float32", {}, 28),
    ("bf16", "bfloat16", {}, 14),
    ("bf16 stochastic", "bfloat16", {"rounding": "stochastic", "seed": 0}, 14),
    ("bf16, f32 state", "bfloat16", {"state_dtype": "float32"}, 22),
    ("bf16 split", "bfloat16", {"master_weights": "split"}, 26),
    ("f32, bf16 state", "float32", {"state_dtype": "bfloat16"}, 20),
    ("f32, q8 state", "float32", {"state_dtype": "q8"}, 16.06),
    ("bf16, q8 state", "bfloat16", {"state_dtype": "q8"}, 10.06),
    ("bf16, q4 state", "bfloat16", {"state_dtype": "q4"}, 8.13),
]
PEERS = {"torch fused bf16": 14, "torchao AdamW8bit": 16.06, "bnb AdamW8bit": 16.06}  # bytes per element


def _dtype(name):
    if name == "bfloat16":
        import ml_dtypes
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def precision_steps(size, torch=None):
    """Zero-argument steps: fastopt's Adam for every row, the floor of the bfloat16 row ("bf16 floor":
    2 state arrays, float32 of size/2: the same bytes) and torch's fused bfloat16 Adam when torch is
    given."""
    rng = np.random.default_rng(0)
    p32 = rng.standard_normal(size, dtype=np.float32)
    g32 = (0.01 * rng.standard_normal(size, dtype=np.float32))
    steps = {}
    for name, dtype, options, _ in ROWS:
        p, g = p32.astype(_dtype(dtype)), g32.astype(_dtype(dtype))
        opt = Adam([p], lr=1e-4, **options)
        opt.step([g])
        steps[name] = lambda opt=opt, g=g: opt.step([g])
    steps["bf16 math"] = _math_step(p32, g32, size)
    half = size // 2
    floor_arrays = [p32[:half].copy(), g32[:half].copy(), np.zeros(half, np.float32), np.zeros(half, np.float32)]
    steps["bf16 floor"] = lambda a=floor_arrays: kernels.run(
        kernels.floor_batch([a[0]], [a[1]], [a[2]], [a[3]], None, False), get_num_threads())
    if torch is not None:
        steps.update(_peer_steps(torch, p32, g32))
    return steps


MATH_CHUNK = 65536  # elements of the in-cache array of the "bf16 math" row (0.5 MB of bfloat16 arrays)


def _math_step(p32, g32, size):
    """bfloat16 Adam's arithmetic alone: the kernel on one in-cache array of MATH_CHUNK elements, on one
    thread, run often enough to cover ``size`` elements (``precision_table`` divides it by the thread
    count: the time with no memory traffic, if threads scaled perfectly)."""
    import ml_dtypes
    n = min(MATH_CHUNK, size)
    reps = max(1, round(size / n))
    p, g = p32[:n].astype(ml_dtypes.bfloat16), g32[:n].astype(ml_dtypes.bfloat16)
    m, v = np.zeros_like(p), np.zeros_like(p)
    batch = kernels.adam_batch([p], [g], [np.zeros(1, np.float32)], [m], [v], None, lr=1e-4, beta1=0.9,
                               beta2=0.999, eps=1e-8, weight_decay=0.0, maximize=False,
                               decoupled_weight_decay=False)

    def step():
        for _ in range(reps):
            kernels.run(batch, 1)
    return step


def _peer_steps(torch, p32, g32):
    """torch's fused bfloat16 Adam, and the 8-bit AdamW of torchao and bitsandbytes (float32 params)
    where they are installed."""
    peers = {}
    tp = torch.from_numpy(p32).to(torch.bfloat16)
    tp.grad = torch.from_numpy(g32).to(torch.bfloat16)
    peers["torch fused bf16"] = torch.optim.Adam([tp], lr=1e-4, fused=True)
    try:
        from torchao.optim import AdamW8bit
        tp = torch.from_numpy(p32.copy())
        tp.grad = torch.from_numpy(g32.copy())
        peers["torchao AdamW8bit"] = AdamW8bit([tp], lr=1e-4, weight_decay=0.0)
    except Exception:  # noqa: BLE001 - not installed, or not usable on this CPU
        pass
    try:
        import bitsandbytes
        tp = torch.from_numpy(p32.copy())
        tp.grad = torch.from_numpy(g32.copy())
        peers["bnb AdamW8bit"] = bitsandbytes.optim.AdamW8bit([tp], lr=1e-4, weight_decay=0.0)
    except Exception:  # noqa: BLE001
        pass
    steps = {}
    for name, opt in peers.items():
        try:
            opt.step()
        except Exception:  # noqa: BLE001 - a peer that cannot step here is left out
            continue
        steps[name] = opt.step
    return steps


def precision_table(torch, threads, args, summary):
    """Adam at PRECISION_SIZE elements on each thread count: every format against fastopt float32."""
    try:
        import ml_dtypes  # noqa: F401
    except ImportError:
        print("\nPrecision: skipped (bfloat16 needs ml_dtypes: pip install \"fastopt[bf16]\")")
        return
    size = 200_000 if args.quick else PRECISION_SIZE
    print()
    print(f"Precision: Adam, n = {size:.0e}, one array; x f32: time over fastopt float32 (< 1: faster); "
          "bytes: read + written per element")
    print("  (goals at 1e7: bf16 x f32 <= 0.55, bf16 x its floor <= 1.05, bf16 x torch fused bf16 <= 0.5; "
          "bf16+q8 x f32 <= 0.5 on 2 threads, f32+q8 <= 0.7; f32+q8 x torchao <= 0.4, x bnb <= 0.05)")
    header = ["threads", "variant", "bytes", "time", "x f32", "GB/s"]
    widths = [7, 18, 5, 10, 6, 6]
    print_header(header, widths, left=2)
    saved = get_num_threads()
    saved_torch = torch.get_num_threads() if torch is not None else None
    nbytes = {name: b for name, _, _, b in ROWS}
    nbytes["bf16 floor"] = 14
    nbytes["bf16 math"] = 0
    nbytes.update(PEERS)
    try:
        for n in threads:
            set_num_threads(n)
            if torch is not None:
                torch.set_num_threads(n)
            result = compare(precision_steps(size, torch), baseline="float32", rounds=3 if args.quick else 9,
                             target=0.0)
            medians = dict(result.medians)
            medians["bf16 math"] /= n  # one thread's in-cache time, as if n threads shared it perfectly
            for name, seconds in medians.items():
                print_row([str(n), name, "-" if name == "bf16 math" else f"{nbytes[name]:g}", f"{seconds * 1e3:.2f} ms",
                           f"{seconds / medians['float32']:.2f}",
                           "-" if name == "bf16 math" else f"{nbytes[name] * size / seconds / 1e9:.1f}"],
                          widths, left=2)
            line = (f"{n} thread{'s' if n > 1 else ''}: bf16/f32 {result.ratio('bf16', 'float32'):.2f}, "
                    f"bf16/its floor {result.ratio('bf16', 'bf16 floor'):.2f}, "
                    f"bf16/its math {medians['bf16'] / medians['bf16 math']:.2f}")
            if "torch fused bf16" in result.medians:
                line += f", bf16/torch fused bf16 {result.ratio('bf16', 'torch fused bf16'):.2f}"
            line += f", bf16+q8/f32 {result.ratio('bf16, q8 state', 'float32'):.2f}"
            line += f", f32+q8/f32 {result.ratio('f32, q8 state', 'float32'):.2f}"
            for peer in ("torchao AdamW8bit", "bnb AdamW8bit"):
                if peer in result.medians:
                    line += f", f32+q8/{peer} {result.ratio('f32, q8 state', peer):.3f}"
            print("  " + line)
            summary.append("precision " + line)
    finally:
        set_num_threads(saved)
        if torch is not None:
            torch.set_num_threads(saved_torch)
