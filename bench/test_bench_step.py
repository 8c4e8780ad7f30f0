"""pytest-benchmark suite: one optimizer ``step`` of fastopt's Cython kernel, its NumPy reference and torch.optim.

Run it (from a checkout):

    pip install '.[bench]' && pytest bench/ --benchmark-only

The normal test run (``pytest``, testpaths=["tests"]) does not collect these. Every registry row (its
first config) x float32/float64 x 1e3, 1e5, 1e6 elements (add 1e7 with FASTOPT_BENCH_LARGE=1) x
{fastopt, numpy, torch}; torch is fused where torch has a fused CPU step, and skipped when torch is not
installed or has no equivalent optimizer. Each group ("Adam-float32-1000000", ...) puts the three
contenders in one table. Nothing here asserts on time; for ratios measured interleaved on a noisy
machine, use ``python -m fastopt``. Select with -k, e.g. ``-k "Adam and float32"``.
"""
import os

import pytest

from fastopt.__main__ import fastopt_step, import_torch, torch_step
from fastopt._registry import CASES

SIZES = [1_000, 100_000, 1_000_000]
if os.environ.get("FASTOPT_BENCH_LARGE", "") not in ("", "0"):
    SIZES.append(10_000_000)


@pytest.mark.parametrize("contender", ["fastopt", "numpy", "torch"])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_step(benchmark, case, dtype, size, contender):
    benchmark.group = f"{case.name}-{dtype}-{size}"
    if contender == "fastopt":
        step = fastopt_step(case, "cython", dtype, size)
    elif contender == "numpy":
        step = fastopt_step(case, "numpy", dtype, size)
    else:
        torch = import_torch()
        if torch is None:
            pytest.skip("torch is not installed")
        if case.torch is None:
            pytest.skip(f"torch.optim has no equivalent of {case.name}")
        torch.set_num_threads(1)  # fastopt's kernels run on one thread
        step = torch_step(torch, case, dtype, size)
    benchmark(step)
