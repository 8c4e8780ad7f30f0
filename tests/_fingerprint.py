"""A short fingerprint of what the compiled kernels compute, to compare instruction-set variants.

Every kernel variant (baseline, avx2, avx512; see setup.py) must produce bit-identical results, so the
SHA-256 of the parameters and optimizer state after 20 steps of Adam, NAdam, RMSprop, Adagrad, RAdam,
Rprop, ASGD, Lion, LAMB and ScheduleFreeAdamW (and quantized and stochastically rounded variants) on
fixed data, in float32, float64, float16 and bfloat16, must be the same whichever variant runs them and on whichever CPU.

The inputs are built with integer arithmetic only (no random generator, no libm), so they are the same
bits everywhere; the gradient of each step is an exactly rounded NumPy expression of the parameters.
One tensor is larger than the kernels' threading threshold so the threaded path is covered too.

Used by tests/test_dispatch.py (a subprocess per forced FASTOPT_ISA) and by .ci/qemu (under emulated
CPUs). As a script it prints one JSON object: the chosen isa, one digest per run and an overall digest.
Run it from outside a checkout so that the *installed* fastopt is imported.
"""
import hashlib
import json
import sys

import numpy as np

STEPS = 20
SHAPES = [(70001,), (1000,), (37,), (3, 5), ()]
DTYPES = ("float32", "float64", "float16", "bfloat16")  # bfloat16 where ml_dtypes is installed


def _optimizers():
    import fastopt

    return [
        ("Adam", fastopt.Adam, dict(lr=0.01, weight_decay=0.01)),
        ("Adam-amsgrad-decoupled", fastopt.Adam,
         dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True, decoupled_weight_decay=True)),
        ("NAdam", fastopt.NAdam, dict(lr=0.01, weight_decay=0.01)),
        ("RMSprop-centered-momentum", fastopt.RMSprop,
         dict(lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.01)),
        ("Adagrad", fastopt.Adagrad, dict(lr=0.05, lr_decay=0.01, initial_accumulator_value=0.1)),
        # quantized state (its lookup tables and block loops), with stochastic rounding for bfloat16
        ("AdamW-q8-q4", fastopt.AdamW, dict(lr=0.01, state_dtype={"exp_avg": "q8", "exp_avg_sq": "q4"})),
        ("SGD-stochastic", fastopt.SGD, dict(lr=0.01, momentum=0.9, rounding="stochastic", seed=1)),
        # rectified from step 6 on: its reciprocal square root and five roundings per element
        ("RAdam-decoupled", fastopt.RAdam, dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
        ("Rprop", fastopt.Rprop, dict(lr=0.01, etas=(0.4, 1.3))),
        ("ASGD-averaged", fastopt.ASGD, dict(lr=0.01, lambd=0.05, t0=5, weight_decay=0.01)),
        ("Lion", fastopt.Lion, dict(lr=0.01, weight_decay=0.1)),
        # two passes: the norms' lanes and pieces (the 70001-element tensor spans 18 blocks)
        ("LAMB", fastopt.LAMB, dict(lr=0.01, weight_decay=0.1)),
        ("ScheduleFreeAdamW", fastopt.ScheduleFreeAdamW, dict(lr=0.01, warmup_steps=5, weight_decay=0.1)),
    ]


def _values(n, salt, dtype):
    """n values in [-1, 1) from an integer hash: exactly representable in float32 and float64."""
    i = np.arange(n, dtype=np.uint64) + np.uint64(salt) * np.uint64(1_000_003)
    h = (i * np.uint64(2654435761) + np.uint64(12345)) % np.uint64(1 << 24)
    return ((h.astype(np.int64) - (1 << 23)) / float(1 << 23)).astype(dtype)


def _tensors(salt, dtype):
    out = []
    for k, shape in enumerate(SHAPES):
        size = int(np.prod(shape, dtype=np.int64))
        out.append(_values(size, 100 * salt + k, dtype).reshape(shape))
    return out


def _update(digest, arr):
    arr = np.ascontiguousarray(arr)
    digest.update(f"{arr.dtype.str}{arr.shape}".encode())
    digest.update(arr.tobytes())


def run(cls, kwargs, dtype, steps=STEPS, backend="cython"):
    """SHA-256 (hex) of the parameters and the optimizer state after ``steps`` steps. A 16-bit run's
    data and gradients are computed in float32 and rounded once (a cast: the same bits everywhere)."""
    wide = np.dtype(np.float32) if dtype.itemsize == 2 else dtype
    params = [t.astype(dtype) for t in _tensors(0, wide)]
    opt = cls(params, backend=backend, **kwargs)
    one_half = np.asarray(0.5, wide)
    for t in range(steps):
        data = _tensors(t + 1, wide)
        opt.step([(p.astype(wide) * one_half + d).astype(dtype) for p, d in zip(params, data)])
    digest = hashlib.sha256()
    for p in params:
        _update(digest, p)
    for i in sorted(opt.state):
        for key in sorted(opt.state[i]):
            digest.update(key.encode())
            _update(digest, np.asarray(opt.state[i][key]))
    return digest.hexdigest()


def fingerprint(backend="cython"):
    """{"isa": chosen variant, "runs": {"<optimizer>/<dtype>": sha256}, "digest": sha256 of all runs}.
    ``backend="numpy"`` computes the same with the pure-NumPy reference (it must match too)."""
    import fastopt._kernels

    try:
        import ml_dtypes  # noqa: F401  (registers np.dtype("bfloat16"))
        dtypes = DTYPES
    except ImportError:
        dtypes = DTYPES[:3]
    runs = {}
    for name, cls, kwargs in _optimizers():
        for dtype in dtypes:
            if ("q8" in name and dtype == "float64") or ("stochastic" in name and dtype in ("float64", "float16")):
                continue  # (options that do not fit the dtype)
            runs[f"{name}/{dtype}"] = run(cls, kwargs, np.dtype(dtype), backend=backend)
    overall = hashlib.sha256(json.dumps(runs, sort_keys=True).encode()).hexdigest()
    return {"isa": fastopt._kernels.ISA, "runs": runs, "digest": overall}


if __name__ == "__main__":
    result = fingerprint()
    import fastopt

    result["fastopt_file"] = fastopt.__file__
    json.dump(result, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
