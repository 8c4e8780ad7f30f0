"""pytest-benchmark suite: optimizer steps of fastopt's Cython kernel, its NumPy reference, torch.optim and
the memory floor.

Run it (from a checkout):

    pip install '.[bench]' && pytest bench/ --benchmark-only

The normal test run (``pytest``, testpaths=["tests"]) does not collect these. Nothing here asserts on time;
for ratios measured interleaved on a noisy machine, use ``python -m fastopt bench``. Select with -k, e.g.
``-k "Adam and float32 and 1thread"``. fastopt and torch run on the same number of threads: 1 and all CPUs.

- ``test_step``: every registry row (its first config) x float32/float64 x 1e3, 1e5, 1e6 elements (add 1e7
  with FASTOPT_BENCH_LARGE=1) x threads x {fastopt, numpy, torch, floor}. torch is fused where torch has a
  fused CPU step, and skipped when torch is not installed or has no equivalent optimizer; floor is
  ``kernels.floor_batch`` + ``run`` with the step's buffer count (same memory traffic, no math).
- ``test_model``: the two whole models of docs/benchmarks.md ("small": 51 tensors, 0.33 M parameters; "large": 147
  tensors, 9.99 M), Adam float32, x threads x {fastopt (``opt.step(list_of_grads)``), torch fused,
  floor (``kernels.floor_batch`` + ``run`` over the same tensors)}.
- ``test_overhead``: per-call and per-tensor overhead, Adam float32 on 1 and on 147 tensors of 16 elements,
  1 thread, {fastopt, torch fused, floor}.
- ``test_torch_model``: the two models as torch tensors, x threads x {fastopt.torch.Adam, torch.optim.Adam
  fused, foreach, for-loop, and fastopt's NumPy-API step on the same shapes (the adapter's cost)}.
- ``test_toolkit``: Adam float32 at 1e7, 1 thread: plain, clipping fused into the step, a separate
  ``clip_grad_norm_`` then the step, and ``skip_nonfinite``.
- ``test_training_step``: a whole training step of an MLP (forward, backward, Adam step) and the optimizer
  step alone, x threads x {fastopt.torch, torch fused, torch for-loop}.

Each group ("Adam-float32-1000000-1thread", "model-small-Adam-float32-2threads", ...) puts the contenders
in one table.
"""
import os

import pytest

import fastopt
from fastopt._registry import BY_NAME, CASES
from fastopt.cli.bench import (MODELS, OVERHEAD_ELEMENTS, OVERHEAD_TENSORS, TOOLKIT_SIZE, TORCH_ADAMS, fastopt_step,
                               floor_step, import_torch, toolkit_steps, torch_adam_step, torch_step,
                               torch_training_step, usable_cpus)

SIZES = [1_000, 100_000, 1_000_000]
if os.environ.get("FASTOPT_BENCH_LARGE", "") not in ("", "0"):
    SIZES.append(10_000_000)
THREADS = sorted({1, usable_cpus()})
CONTENDERS = ["fastopt", "numpy", "torch", "floor"]


@pytest.fixture
def threads(request):
    """Run fastopt and torch on ``request.param`` threads, and restore both afterwards."""
    torch = import_torch()
    saved = fastopt.get_num_threads(), torch.get_num_threads() if torch is not None else None
    fastopt.set_num_threads(request.param)
    if torch is not None:
        torch.set_num_threads(request.param)
    yield fastopt.get_num_threads()
    fastopt.set_num_threads(saved[0])
    if torch is not None:
        torch.set_num_threads(saved[1])


def make_step(contender, case, dtype, size):
    """One zero-argument step of ``contender`` (see CONTENDERS), or a pytest skip."""
    if contender == "fastopt":
        return fastopt_step(case, "cython", dtype, size)
    if contender == "numpy":
        return fastopt_step(case, "numpy", dtype, size)
    if contender == "floor":
        return floor_step(case, dtype, size)
    torch = import_torch()
    if torch is None:
        pytest.skip("torch is not installed")
    if case.torch is None:
        pytest.skip(f"torch.optim has no equivalent of {case.name}")
    return torch_step(torch, case, dtype, size)


def thread_label(n):
    return f"{n}thread" + ("s" if n > 1 else "")


@pytest.mark.parametrize("contender", CONTENDERS)
@pytest.mark.parametrize("threads", THREADS, ids=thread_label, indirect=True)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_step(benchmark, case, dtype, size, threads, contender):
    benchmark.group = f"{case.name}-{dtype}-{size}-{thread_label(threads)}"
    benchmark(make_step(contender, case, dtype, size))


@pytest.mark.parametrize("contender", ["fastopt", "torch", "floor"])
@pytest.mark.parametrize("threads", THREADS, ids=thread_label, indirect=True)
@pytest.mark.parametrize("model", list(MODELS))
def test_model(benchmark, model, threads, contender):
    benchmark.group = f"model-{model}-Adam-float32-{thread_label(threads)}"
    benchmark(make_step(contender, BY_NAME["Adam"], "float32", MODELS[model]))


@pytest.mark.parametrize("contender", ["fastopt", "torch", "floor"])
@pytest.mark.parametrize("threads", [1], ids=thread_label, indirect=True)
@pytest.mark.parametrize("tensors", [1, OVERHEAD_TENSORS])
def test_overhead(benchmark, tensors, threads, contender):
    """Per-tensor overhead = (time at 147 tensors - time at 1) / 146."""
    benchmark.group = f"overhead-Adam-float32-{tensors}x{OVERHEAD_ELEMENTS}"
    benchmark(make_step(contender, BY_NAME["Adam"], "float32", [(OVERHEAD_ELEMENTS,)] * tensors))


def needs_torch():
    torch = import_torch()
    if torch is None:
        pytest.skip("torch is not installed")
    return torch


@pytest.mark.parametrize("contender", list(TORCH_ADAMS) + ["fastopt numpy api"])
@pytest.mark.parametrize("threads", THREADS, ids=thread_label, indirect=True)
@pytest.mark.parametrize("model", list(MODELS))
def test_torch_model(benchmark, model, threads, contender):
    """fastopt.torch.Adam vs torch.optim.Adam (fused, foreach, for-loop) over the models' torch tensors;
    the NumPy-API step on the same shapes shows the adapter's cost."""
    torch = needs_torch()
    benchmark.group = f"torch-model-{model}-Adam-float32-{thread_label(threads)}"
    if contender == "fastopt numpy api":
        benchmark(fastopt_step(BY_NAME["Adam"], "cython", "float32", MODELS[model]))
    else:
        benchmark(torch_adam_step(torch, contender, MODELS[model]))


@pytest.mark.parametrize("part", ["train", "opt.step"])
@pytest.mark.parametrize("contender", ["fastopt.torch", "torch fused", "torch for-loop"])
@pytest.mark.parametrize("threads", THREADS, ids=thread_label, indirect=True)
def test_training_step(benchmark, threads, contender, part):
    """A whole training step of an MLP (zero_grad, forward, loss, backward, Adam step) and its optimizer
    step alone: the step's share of a real iteration."""
    torch = needs_torch()
    benchmark.group = f"training-step-mlp-Adam-float32-{thread_label(threads)}"
    train, step = torch_training_step(torch, contender)
    benchmark(train if part == "train" else step)


@pytest.mark.parametrize("variant", ["plain", "fused clip", "clip + step", "skip nonfinite"])
@pytest.mark.parametrize("threads", [1], ids=thread_label, indirect=True)
def test_toolkit(benchmark, threads, variant):
    """Adam float32 at 1e7 elements: the plain step, clipping fused into it (``max_grad_norm``),
    ``fastopt.clip_grad_norm_`` then a plain step, and ``skip_nonfinite=True``."""
    benchmark.group = f"toolkit-Adam-float32-{TOOLKIT_SIZE}-{thread_label(threads)}"
    benchmark(toolkit_steps(TOOLKIT_SIZE)[variant])
