"""pytest-benchmark: the optimizer step where users run it, inside training loops (fastopt.cli.loops).

    pip install '.[bench]' && pytest bench/test_bench_loop.py --benchmark-only

Nothing here asserts on time (``python -m fastopt bench`` prints the same loops interleaved, as ratios).

- ``test_torch_loop``: an MLP (models of fastopt.cli.loops.LOOP_MODELS, batch 64, float32) trained by
  torch.optim fused, torch.optim foreach and fastopt.torch (Adam, AdamW, SGD with momentum, Adagrad), on
  torch's default threads. The benchmark times whole iterations (zero_grad, forward, backward, step);
  ``extra_info`` holds the p50 and p90 of ``opt.step()`` alone inside them.
- ``test_numpy_loop``: the 5.8M-parameter MLP with NumPy forward and backward, stepped by fastopt.Adam on
  1 thread and all CPUs: "loop" times forward + backward + step (the step's p50 in ``extra_info``),
  "back to back" the same step alone.

Groups: "loop-torch-5.8M-Adam", "loop-numpy-2threads", ...
"""
import pytest

import fastopt
from fastopt.cli.bench import import_torch, usable_cpus
from fastopt.cli.loops import LOOP_MODELS, LOOP_RULES, LOOP_VARIANTS, NumpyLoop, TorchLoop, percentile


@pytest.mark.parametrize("variant", list(LOOP_VARIANTS))
@pytest.mark.parametrize("rule", list(LOOP_RULES))
@pytest.mark.parametrize("model", list(LOOP_MODELS))
def test_torch_loop(benchmark, model, rule, variant):
    torch = import_torch()
    if torch is None:
        pytest.skip("torch is not installed")
    benchmark.group = f"loop-torch-{model}-{rule}"
    loop = TorchLoop(torch, LOOP_MODELS[model], rule, variant)
    steps = []

    def iteration():
        steps.append(loop()[0])
    benchmark(iteration)
    benchmark.extra_info.update(step_p50=percentile(steps, 0.5), step_p90=percentile(steps, 0.9),
                                torch_threads=torch.get_num_threads())


@pytest.mark.parametrize("part", ["loop", "back to back"])
@pytest.mark.parametrize("threads", sorted({1, usable_cpus()}))
def test_numpy_loop(benchmark, threads, part):
    benchmark.group = f"loop-numpy-{threads}thread{'s' if threads > 1 else ''}"
    saved = fastopt.get_num_threads()
    fastopt.set_num_threads(threads)
    try:
        loop = NumpyLoop(LOOP_MODELS["5.8M"])
        steps = []
        if part == "loop":
            benchmark(lambda: steps.append(loop.iteration()))
            benchmark.extra_info.update(step_p50=percentile(steps, 0.5), step_p90=percentile(steps, 0.9))
        else:
            benchmark(loop.step)
    finally:
        fastopt.set_num_threads(saved)
