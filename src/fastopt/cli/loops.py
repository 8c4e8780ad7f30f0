"""The training loops of ``python -m fastopt bench`` (its "training loop" tables) and of the
pytest-benchmark suite (bench/test_bench_loop.py): where users run an optimizer step, right after
backward, while the framework's own threads are still hot.

- ``TorchLoop``: an MLP on random data (batch 64, cross-entropy, float32), stepped by torch.optim
  (fused or foreach) or fastopt.torch; each call runs zero_grad, forward, loss, backward and
  ``opt.step()``, and returns the step's time and the iteration's.
- ``NumpyLoop``: the same MLP with NumPy matmuls for forward and backward (the BLAS library's threads
  on), stepped by a fastopt optimizer; ``iteration()`` times the step inside the loop, ``step()`` the
  same step back to back.
- ``loop_tables``: both tables, contenders interleaved by epochs of a few iterations.

Thread setup: torch's default intra-op threads (fastopt.torch runs its step on them), fastopt's default
thread count for the NumPy loop; the tables name both.
"""
import os
import time

import numpy as np

from fastopt._config import get_num_threads, set_num_threads
from fastopt.cli import percentile, print_header, print_row

LOOP_MODELS = {"5.8M": (784, 2048, 2048, 10), "small": (64, 256, 256, 10)}  # MLP layer widths
LOOP_RULES = {"Adam": {"lr": 1e-4}, "AdamW": {"lr": 1e-4}, "SGD": {"lr": 1e-3, "momentum": 0.9},
              "Adagrad": {"lr": 1e-3}}
LOOP_VARIANTS = {"torch fused": {"fused": True}, "torch foreach": {"foreach": True}, "fastopt.torch": {}}
BATCH = 64


class TorchLoop:
    """An MLP of layer widths ``sizes`` (ReLU between Linear layers) on one random batch, trained by
    ``rule`` (a LOOP_RULES name) in ``variant`` (a LOOP_VARIANTS name). Calling it runs one iteration and
    returns (seconds in ``opt.step()``, seconds of the whole iteration)."""

    def __init__(self, torch, sizes, rule, variant, seed=0):
        import fastopt.torch

        torch.manual_seed(seed)
        layers = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            layers += [torch.nn.Linear(fan_in, fan_out), torch.nn.ReLU()]
        self.model = torch.nn.Sequential(*layers[:-1])
        self.x, self.y = torch.randn(BATCH, sizes[0]), torch.randint(0, sizes[-1], (BATCH,))
        module = fastopt.torch if variant == "fastopt.torch" else torch.optim
        self.opt = getattr(module, rule)(self.model.parameters(), **LOOP_RULES[rule], **LOOP_VARIANTS[variant])
        self.loss = torch.nn.functional.cross_entropy
        self()

    def __call__(self):
        start = time.perf_counter()
        self.opt.zero_grad()
        self.loss(self.model(self.x), self.y).backward()
        before = time.perf_counter()
        self.opt.step()
        end = time.perf_counter()
        return end - before, end - start


class NumpyLoop:
    """The MLP of ``sizes`` in NumPy (forward and backward are matmuls on the BLAS library's threads),
    float32, trained by fastopt's ``rule``. ``iteration()``: forward, backward, step, returning the step's
    seconds; ``step()``: the same step alone (back to back), returning its seconds."""

    def __init__(self, sizes, rule="Adam", seed=0):
        import fastopt

        rng = np.random.default_rng(seed)
        self.weights = [(rng.standard_normal((a, b)) * np.sqrt(2 / a)).astype(np.float32)
                        for a, b in zip(sizes[:-1], sizes[1:])]
        self.biases = [np.zeros(b, np.float32) for b in sizes[1:]]
        self.params = [p for pair in zip(self.weights, self.biases) for p in pair]
        self.grads = [np.zeros_like(p) for p in self.params]
        self.x = rng.standard_normal((BATCH, sizes[0])).astype(np.float32)
        self.y = rng.integers(0, sizes[-1], BATCH)
        self.opt = getattr(fastopt, rule)(self.params, **LOOP_RULES[rule])
        self.iteration()

    def backward(self):
        """The gradients of the mean cross-entropy, written into ``self.grads``."""
        activations, h = [self.x], self.x
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w + b
            if i < len(self.weights) - 1:
                h = np.maximum(h, 0)
            activations.append(h)
        z = np.exp(h - h.max(axis=1, keepdims=True))
        d = z / z.sum(axis=1, keepdims=True)
        d[np.arange(BATCH), self.y] -= 1
        d /= BATCH
        for i in reversed(range(len(self.weights))):
            np.matmul(activations[i].T, d, out=self.grads[2 * i])
            np.sum(d, axis=0, out=self.grads[2 * i + 1])
            if i:
                d = (d @ self.weights[i].T) * (activations[i] > 0)

    def iteration(self):
        self.backward()
        return self.step()

    def step(self):
        start = time.perf_counter()
        self.opt.step(self.grads)
        return time.perf_counter() - start


def torch_loop_times(torch, sizes, rule, epochs, iterations):
    """{variant: (step seconds, iteration seconds)} of every LOOP_VARIANTS contender on one model and
    rule, interleaved by epochs of ``iterations`` iterations (the first of each epoch not kept: it
    follows another contender's)."""
    loops = {variant: TorchLoop(torch, sizes, rule, variant) for variant in LOOP_VARIANTS}
    times = {variant: ([], []) for variant in loops}
    for _ in range(epochs):
        for variant, loop in loops.items():
            loop()
            for _ in range(iterations):
                step, whole = loop()
                times[variant][0].append(step)
                times[variant][1].append(whole)
    return times


def numpy_loop_times(sizes, threads, epochs, iterations):
    """{n: (steps inside the loop, the same steps back to back)} for fastopt on each thread count of
    ``threads``, interleaved by epochs (thread counts and loop/back to back alternating)."""
    loop = NumpyLoop(sizes)
    times = {n: ([], []) for n in threads}
    saved = get_num_threads()
    try:
        for _ in range(epochs):
            for n in threads:
                set_num_threads(n)
                loop.iteration()
                times[n][0].extend(loop.iteration() for _ in range(iterations))
                times[n][1].extend(loop.step() for _ in range(iterations))
    finally:
        set_num_threads(saved)
    return times


def ms(seconds):
    return f"{seconds * 1e3:.3f} ms"


def loop_tables(torch, args, summary):
    """Print the PyTorch and NumPy training-loop tables; append headline ratios to ``summary``."""
    epochs, iterations = (3, 5) if args.quick else (10, 20)
    widths = [5, 7, 13, 11, 11, 11, 7, 7, 7]
    if torch is None:
        print()
        print("Training loops, PyTorch: not installed, no table")
    else:
        print()
        print(f"Training loops, PyTorch: MLPs {', '.join('-'.join(map(str, s)) for s in LOOP_MODELS.values())}, "
              f"batch {BATCH}, cross-entropy, float32; torch's threads: {torch.get_num_threads()} "
              f"(fastopt.torch steps on them), OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')};")
        print(f"  {epochs} epochs of {iterations} iterations per contender, interleaved; step: opt.step() alone, "
              "p50 and p90; iteration: zero_grad + forward + backward + step, median;")
        print("  x fused: over torch fused's (< 1: faster)")
        print_header(["model", "rule", "optimizer", "step p50", "step p90", "iteration", "p50 x", "p90 x",
                      "iter x"], widths)
        for model, sizes in LOOP_MODELS.items():
            for rule in LOOP_RULES:
                times = torch_loop_times(torch, sizes, rule, epochs, iterations)
                base = [percentile(times["torch fused"][0], 0.5), percentile(times["torch fused"][0], 0.9),
                        percentile(times["torch fused"][1], 0.5)]
                for variant, (steps, wholes) in times.items():
                    ours = [percentile(steps, 0.5), percentile(steps, 0.9), percentile(wholes, 0.5)]
                    print_row([model, rule, variant] + [ms(t) for t in ours]
                              + [f"{a / b:.2f}" for a, b in zip(ours, base)], widths)
                    if variant == "fastopt.torch" and rule in ("Adam", "SGD"):
                        summary.append(f"{model} MLP loop fastopt.torch.{rule} step p50/torch fused "
                                       f"{ours[0] / base[0]:.2f}")
    sizes = LOOP_MODELS["5.8M"]
    threads = sorted({1, get_num_threads()})
    print()
    print(f"Training loop, NumPy: MLP {'-'.join(map(str, sizes))} (NumPy matmuls, the BLAS library's threads on), "
          f"batch {BATCH}, fastopt.Adam float32;")
    print(f"  {epochs} epochs of {iterations} steps inside the loop then {iterations} back to back, per thread "
          "count, interleaved; x b2b: in the loop over back to back (p50)")
    widths = [7, 11, 11, 11, 11, 5]
    print_header(["threads", "loop p50", "loop p90", "b2b p50", "b2b p90", "x b2b"], widths)
    for n, (inside, alone) in numpy_loop_times(sizes, threads, epochs, iterations).items():
        ratio = percentile(inside, 0.5) / percentile(alone, 0.5)
        print_row([str(n), ms(percentile(inside, 0.5)), ms(percentile(inside, 0.9)), ms(percentile(alone, 0.5)),
                   ms(percentile(alone, 0.9)), f"{ratio:.2f}"], widths)
        summary.append(f"NumPy loop step/back to back ({n} thread{'s' if n > 1 else ''}) {ratio:.2f}")
