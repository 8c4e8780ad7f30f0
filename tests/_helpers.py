"""Helpers shared by the test modules (importable because pytest puts tests/ on sys.path)."""
import numpy as np
import pytest

from fastopt._registry import CASES

DTYPES = [np.float32, np.float64]

# (case, config label, kwargs) for every registry row and option combination
CONFIGS = [pytest.param(case, label, kwargs, id=f"{case.name}-{label}")
           for case in CASES for label, kwargs in case.configs.items()]


def make_params(shapes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for shape in shapes]


def make_grads(shapes, dtype, steps, seed=1, skip=()):
    """``steps`` lists of gradients; ``skip`` holds (step, index) pairs whose gradient is None."""
    rng = np.random.default_rng(seed)
    out = []
    for t in range(steps):
        out.append([None if (t, i) in skip else rng.standard_normal(shape).astype(dtype)
                    for i, shape in enumerate(shapes)])
    return out


def ulp_tolerance(dtype):
    return dict(rtol=2e-4, atol=1e-6) if np.dtype(dtype) == np.float32 else dict(rtol=1e-10, atol=1e-12)

