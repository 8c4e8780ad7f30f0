"""``python -m fastopt bench`` and ``python -m fastopt table``: the speed tables.

- ``bench``: the ratio table of docs/benchmarks.md: every optimizer x dtype x size (1e3 to 1e7) x threads (1
  and all CPUs) against the NumPy reference, torch and the floor kernel with the same memory traffic, with
  the achieved GB/s; the two whole models ("small", "large"), the per-call overhead, fastopt.torch, the
  training loops (PyTorch and NumPy, fastopt.cli.loops), the training toolkit and a busy machine.
- ``table``: a short speed table, for every registry row (its first config), dtype and size: the median
  step time of ``backend="cython"``, of ``backend="numpy"`` and, when torch is importable, of torch.optim
  (``fused=True`` where torch has a fused CPU implementation), with the ratios reference/kernel and
  fastopt/torch.

The contenders of a row are timed interleaved in one run (see ``fastopt._timing``). ``fastopt.__main__``
parses the command line and calls a command's parser function (``bench_parser``, ``table_parser``) and
its run function (``run_bench(args, parser)``, ``run_table(args, parser)``: they print the tables and
return the exit status). The steps being timed (``fastopt_step``, ``torch_step``, ``floor_step``,
``model_shapes``, ...) are also those of the pytest-benchmark suite, bench/test_bench_step.py.

    python -m fastopt bench --quick --sizes 1e3 --optimizers adam
"""
import argparse
import functools
import io
import math
import os
import platform
import subprocess
import sys
import time

import numpy as np

from fastopt import __version__, kernels
from fastopt._config import get_num_threads, set_num_threads, show_config
from fastopt._registry import BY_NAME, CASES
from fastopt._timing import compare
from fastopt.cli import percentile, print_header, print_row
from fastopt.cli.loops import loop_tables
from fastopt.cli.precision import precision_table

DTYPES = ["float32", "float64"]
SIZES = [1_000, 100_000, 1_000_000]
TORCH_FUSED = {"SGD", "Adam", "AdamW", "Adagrad"}  # torch.optim classes with a fused CPU step


def import_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


# -- the steps being timed (also used by bench/test_bench_step.py) ----------------------------------
#
# ``size`` is the number of elements of one parameter array, or a list of shapes: one array per shape, as
# the parameters of a model (see ``model_shapes``).

def as_shapes(size):
    return [(size,)] if isinstance(size, (int, np.integer)) else [tuple(shape) for shape in size]


@functools.lru_cache(maxsize=16)
def _random_tensors(shapes, dtype, seed):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(shape, dtype=dtype) for shape in shapes]
    grads = [0.01 * rng.standard_normal(shape, dtype=dtype) for shape in shapes]
    return params, grads


def make_tensors(size, dtype, seed=0):
    """Parameter arrays and gradients of modest magnitude, so that repeating the same step many times
    drifts neither into denormals nor into inf. Fresh copies of cached random arrays (drawing 1e7 normals
    takes longer than the steps being timed)."""
    params, grads = _random_tensors(tuple(as_shapes(size)), np.dtype(dtype).name, seed)
    return [p.copy() for p in params], [g.copy() for g in grads]


def make_problem(size, dtype, seed=0):
    """One parameter array of ``size`` elements and its gradient (see ``make_tensors``)."""
    params, grads = make_tensors(size, dtype, seed)
    return params[0], grads[0]


def first_config(case):
    return next(iter(case.configs.values()))


def fastopt_step(case, backend, dtype, size):
    """A zero-argument callable doing one fastopt step (``backend``: "cython" or "numpy") through the
    plain list API, ``opt.step(grads)``, on ``get_num_threads()`` threads."""
    params, grads = make_tensors(size, dtype)
    opt = case.cls(params, **first_config(case), backend=backend)
    opt.step(grads)  # the first step allocates the state: keep it out of the timing
    return lambda: opt.step(grads)


def torch_step(torch, case, dtype, size):
    """A zero-argument callable doing one torch.optim step (fused where torch has a fused CPU step, its
    default for-loop otherwise), or None without a torch equivalent."""
    if case.torch is None:
        return None
    params, grads = make_tensors(size, dtype)
    tensors = []
    for param, grad in zip(params, grads):
        tensor = torch.from_numpy(param)
        tensor.grad = torch.from_numpy(grad)
        tensors.append(tensor)
    kwargs = dict(first_config(case))
    if case.name in TORCH_FUSED:
        kwargs["fused"] = True
    opt = getattr(torch.optim, case.torch)(tensors, **kwargs)
    opt.step()
    return opt.step


TORCH_ADAMS = {"fastopt.torch": {}, "torch fused": {"fused": True}, "torch foreach": {"foreach": True},
               "torch for-loop": {"foreach": False}}  # fastopt.torch.Adam and torch.optim.Adam's three steps


def torch_adam_step(torch, variant, shapes):
    """A zero-argument Adam step (lr 1e-4) over float32 torch parameters of ``shapes`` holding gradients:
    ``fastopt.torch.Adam`` or one of torch.optim.Adam's implementations (``TORCH_ADAMS``)."""
    import fastopt.torch

    params, grads = make_tensors(shapes, "float32")
    tensors = []
    for param, grad in zip(params, grads):
        tensor = torch.nn.Parameter(torch.from_numpy(param))
        tensor.grad = torch.from_numpy(grad)
        tensors.append(tensor)
    cls = fastopt.torch.Adam if variant == "fastopt.torch" else torch.optim.Adam
    opt = cls(tensors, lr=1e-4, **TORCH_ADAMS[variant])
    opt.step()
    return opt.step


def torch_training_step(torch, variant, batch=64, width=1024, depth=3, seed=0):
    """(a whole training step, its optimizer step alone) for an MLP on random data: zero_grad, forward,
    cross-entropy, backward and an Adam step (``variant`` as in ``torch_adam_step``)."""
    import fastopt.torch

    torch.manual_seed(seed)
    layers = [torch.nn.Linear(784, width), torch.nn.ReLU()]
    for _ in range(depth - 1):
        layers += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(width, 10))
    x, y = torch.randn(batch, 784), torch.randint(0, 10, (batch,))
    cls = fastopt.torch.Adam if variant == "fastopt.torch" else torch.optim.Adam
    opt = cls(model.parameters(), lr=1e-5, **TORCH_ADAMS[variant])

    def train():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    train()
    return train, opt.step


def floor_step(case, dtype, size):
    """A zero-argument callable running the memory-floor kernel with the traffic of one ``case`` step
    (``case.buffers - 2`` state arrays) on ``get_num_threads()`` threads, one call for all the tensors as a
    step makes it: ``kernels.floor_batch`` then ``kernels.run``. Like a step (whose plan checked memory
    overlap once), it skips the per-call overlap sort of ``kernels.floor_group``."""
    params, grads = make_tensors(size, dtype)
    states = [[np.zeros_like(p) for p in params] for _ in range(case.buffers - 2)]
    states += [None] * (3 - len(states))
    return lambda: kernels.run(kernels.floor_batch(params, grads, *states, False), get_num_threads())


def bytes_per_step(case, dtype, elements):
    """Memory traffic of one fused step: the gradient is read, every other buffer read and written."""
    return (2 * (case.buffers - 1) + 1) * np.dtype(dtype).itemsize * elements


def model_shapes(layers, width, vocab=2000):
    """The whole-model parameter set of docs/benchmarks.md: an embedding, then per layer the attention (w, 3w), (3w,),
    (w, w), (w,), the MLP (w, 4w), (4w,), (4w, w), (w,) and four (w,) norm vectors; then two (w,)."""
    w = width
    shapes = [(vocab, w)]
    for _ in range(layers):
        shapes += [(w, 3 * w), (3 * w,), (w, w), (w,), (w, 4 * w), (4 * w,), (4 * w, w), (w,)] + [(w,)] * 4
    return shapes + [(w,)] * 2


MODELS = {"small": model_shapes(layers=4, width=64),      # 51 tensors, 0.33 M parameters
          "large": model_shapes(layers=12, width=256)}    # 147 tensors, 9.99 M parameters


# -- shared by the commands -----------------------------------------------------------------------

def add_common_arguments(parser, sizes, sizes_help):
    parser.add_argument("--sizes", nargs="+", type=lambda s: int(float(s)), default=sizes, metavar="N",
                        help=f"elements in the one parameter array (default: {sizes_help})")
    parser.add_argument("--dtypes", nargs="+", choices=DTYPES, default=DTYPES)
    parser.add_argument("--optimizers", nargs="+", metavar="NAME",
                        help="registry names to run (default: all): " + " ".join(c.name for c in CASES))
    parser.add_argument("--quick", action="store_true", help="few short rounds (smoke test, CI)")


def selected_cases(args, parser):
    """The registry rows asked for with ``--optimizers`` (all by default); checks ``--sizes`` too."""
    if any(size < 1 for size in args.sizes):
        parser.error("--sizes must be positive")
    if not args.optimizers:
        return CASES
    known = {case.name.lower() for case in CASES}
    unknown = [name for name in args.optimizers if name.lower() not in known]
    if unknown:
        parser.error(f"unknown optimizer(s): {', '.join(unknown)} "
                     f"(choose from {', '.join(case.name for case in CASES)})")
    wanted = {name.lower() for name in args.optimizers}
    return [case for case in CASES if case.name.lower() in wanted]


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def sci(n):
    """1000000 -> "1e6"."""
    return f"{n:.0e}".replace("e+0", "e").replace("e+", "e")


def format_time(seconds):
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    return f"{seconds * 1e3:.2f} ms"


# -- the table command ----------------------------------------------------------------------------

def table_parser():
    parser = argparse.ArgumentParser(
        prog="python -m fastopt",
        description="Median step time of fastopt's Cython kernels vs its NumPy reference and torch.optim. "
                    "'python -m fastopt bench --help': the full ratio table (threads, floor, models).")
    add_common_arguments(parser, SIZES, "1e3 1e5 1e6")
    parser.add_argument("--torch-threads", type=int, default=1, metavar="N",
                        help="threads of torch and of fastopt's kernels (default 1)")
    return parser


def run_table(args, parser):
    cases = selected_cases(args, parser)
    if args.torch_threads < 1:
        parser.error("--torch-threads must be at least 1")
    rounds, target = (3, 0.001) if args.quick else (15, 0.003)

    set_num_threads(args.torch_threads)
    torch = import_torch()
    if torch is not None:
        torch.set_num_threads(args.torch_threads)
    torch_info = (f"torch {torch.__version__} ({torch.get_num_threads()} thread(s))" if torch is not None
                  else "torch not installed")
    print(f"fastopt {__version__} on {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"numpy {np.__version__}, {torch_info}")
    print(f"Times: median seconds per step of {rounds} interleaved rounds (kernel, reference, torch, ...); "
          f"ratios: median of the per-round ratios. fastopt kernels run on {get_num_threads()} thread(s).")
    print()

    header = ["optimizer", "dtype", "n", "fastopt", "numpy ref", "ref/fastopt"]
    widths = [max(len(c.name) for c in cases), 7, max(len(str(s)) for s in args.sizes), 10, 10, 11]
    if torch is not None:
        header += ["torch", "fastopt/torch"]
        widths += [18, 13]
    print_header(header, widths)
    for case in cases:
        for dtype in args.dtypes:
            for size in args.sizes:
                contenders = {"cython": fastopt_step(case, "cython", dtype, size),
                              "numpy": fastopt_step(case, "numpy", dtype, size)}
                torch_call = torch_step(torch, case, dtype, size) if torch is not None else None
                if torch_call is not None:
                    contenders["torch"] = torch_call
                result = compare(contenders, baseline="cython", rounds=rounds, target=target)
                medians = result.medians
                row = [case.name, dtype, str(size), format_time(medians["cython"]),
                       format_time(medians["numpy"]), f"{result.ratio('numpy', 'cython'):.2f}x"]
                if torch is not None:
                    if torch_call is None:
                        row += ["-", "-"]
                    else:
                        label = " (fused)" if case.name in TORCH_FUSED else ""
                        row += [format_time(medians["torch"]) + label, f"{result.ratio('cython', 'torch'):.2f}"]
                print_row(row, widths)
    return 0


# -- the bench command ----------------------------------------------------------------------------

BENCH_SIZES = [1_000, 100_000, 1_000_000, 10_000_000]
NUMPY_MAX = 1_000_000  # the NumPy reference is not timed above this: ~10x fastopt, seconds per row
LARGE = 5_000_000      # from here a step takes 10-100 ms: fewer rounds of one call each
OVERHEAD_TENSORS, OVERHEAD_ELEMENTS = 147, 16  # as many tensors as the large model, tiny ones


def bench_parser():
    parser = argparse.ArgumentParser(
        prog="python -m fastopt bench",
        description="The ratio table (docs/benchmarks.md): fastopt vs its NumPy reference, torch.optim and the memory floor, "
                    "on single tensors and whole models, 1 thread and all threads.")
    add_common_arguments(parser, BENCH_SIZES, "1e3 1e5 1e6 1e7")
    parser.add_argument("--threads", nargs="+", type=int, metavar="N",
                        help="threads of fastopt and torch, a row each (default: 1 and all CPUs)")
    parser.add_argument("--models-all", action="store_true",
                        help="time the whole models with every selected optimizer (default: Adam only)")
    return parser


def timing(elements, quick):
    """(rounds, target seconds per round) for a step over ``elements`` parameters."""
    if quick:
        return 3, 0.001
    if elements >= LARGE:
        return 9, 0.0  # one call per round
    return 15, 0.003


def measure(contenders, elements, quick):
    """``compare`` the contenders that exist (None: not available), interleaved; ratios against fastopt."""
    rounds, target = timing(elements, quick)
    return compare({name: step for name, step in contenders.items() if step is not None},
                   baseline="fastopt", rounds=rounds, target=target)


def use_threads(torch, n):
    """The same thread count for fastopt's kernels and torch's intra-op pool."""
    set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)


def timed(result, name, a, b):
    """[median of ``name``, ratio time(a)/time(b)], or dashes when ``name`` was not timed."""
    if name not in result.times:
        return ["-", "-"]
    return [format_time(result.medians[name]), f"{result.ratio(a, b):.2f}"]


def gigabytes_per_second(case, dtype, elements, seconds):
    return f"{bytes_per_step(case, dtype, elements) / seconds / 1e9:.1f}"


def print_bench_header(torch):
    config = show_config(file=io.StringIO())
    load = f", load average {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else ""
    torch_info = f"torch {torch.__version__}" if torch is not None else "torch not installed"
    print(f"fastopt {__version__} bench on {cpu_model()}, {os.cpu_count()} cores ({usable_cpus()} usable){load}")
    print(f"kernels: {config['isa']} ({config['isa_selected_by']}), {config['compiler']}, "
          f"threads: {config['threads']}; Python {platform.python_version()}, "
          f"numpy {np.__version__}, {torch_info}")
    (rounds, target), (large_rounds, _), (quick_rounds, _) = timing(1, False), timing(LARGE, False), timing(1, True)
    print("Times: medians per step over interleaved rounds (fastopt, numpy ref, torch, floor, fastopt, ...): "
          f"{rounds} rounds of about {target * 1e3:.0f} ms,")
    print(f"  or {large_rounds} rounds of one call from {sci(LARGE)} elements ({quick_rounds} short rounds with "
          "--quick); ratios: median of the per-round ratios.")
    print("threads: fastopt's and torch's thread count for the row (the NumPy reference is single-threaded).")
    print(f"torch: fused for {', '.join(c.name for c in CASES if c.name in TORCH_FUSED)}; torch's for-loop step "
          f"otherwise; none for {' and '.join(c.name for c in CASES if c.torch is None)}.")
    print("floor: kernels.floor_batch + run, the same memory traffic as the step (buffers - 2 state arrays), no math.")
    print("GB/s: fastopt's bytes per step / its median, bytes = (2 x (buffers - 1) + 1) x itemsize x n "
          "(grad read; param and states read and written).")
    print(f"numpy ref: not timed above {sci(NUMPY_MAX)} elements ('-'): about 10x slower than fastopt there.")
    print("Legend: a column 'a/b' (or 'x b') is time(a) / time(b): below 1, a is faster (fastopt/torch 0.5: "
          "fastopt takes half torch's time); 'ref/fastopt' above 1 is fastopt's speed-up; 'fastopt/floor' near 1 "
          "is a step at the memory floor.")


def single_tensor_table(cases, threads, torch, args):
    print()
    print("Single tensor: one parameter array of n elements, registry first config")
    header = ["optimizer", "dtype", "n", "threads", "fastopt", "GB/s", "numpy ref", "ref/fastopt",
              "torch", "fastopt/torch", "floor", "fastopt/floor"]
    widths = [max(len(c.name) for c in cases), 7, max(len(str(s)) for s in args.sizes), 7, 9, 5, 9, 11,
              9, 13, 9, 13]
    print_header(header, widths)
    for case in cases:
        for dtype in args.dtypes:
            for size in args.sizes:
                for n in threads:
                    use_threads(torch, n)
                    result = measure({
                        "fastopt": fastopt_step(case, "cython", dtype, size),
                        "numpy": fastopt_step(case, "numpy", dtype, size) if size <= NUMPY_MAX else None,
                        "torch": torch_step(torch, case, dtype, size) if torch is not None else None,
                        "floor": floor_step(case, dtype, size),
                    }, size, args.quick)
                    seconds = result.medians["fastopt"]
                    print_row([case.name, dtype, str(size), str(get_num_threads()), format_time(seconds),
                               gigabytes_per_second(case, dtype, size, seconds)]
                              + timed(result, "numpy", "numpy", "fastopt")
                              + timed(result, "torch", "fastopt", "torch")
                              + timed(result, "floor", "fastopt", "floor"), widths)


def model_table(cases, threads, torch, args):
    print()
    print("Whole models, float32 (docs/benchmarks.md): every tensor in one list; fastopt opt.step(list_of_grads), torch "
          "over the same shapes, the floor over the same tensors (one call)")
    header = ["model", "optimizer", "threads", "tensors", "params", "fastopt", "GB/s", "torch",
              "fastopt/torch", "floor", "fastopt/floor", "torch/floor"]
    widths = [5, max(len(c.name) for c in cases), 7, 7, 7, 9, 5, 9, 13, 9, 13, 11]
    print_header(header, widths)
    for model, shapes in MODELS.items():
        elements = sum(math.prod(shape) for shape in shapes)
        for case in cases:
            for n in threads:
                use_threads(torch, n)
                result = measure({
                    "fastopt": fastopt_step(case, "cython", "float32", shapes),
                    "torch": torch_step(torch, case, "float32", shapes) if torch is not None else None,
                    "floor": floor_step(case, "float32", shapes),
                }, elements, args.quick)
                seconds = result.medians["fastopt"]
                torch_floor = f"{result.ratio('torch', 'floor'):.2f}" if "torch" in result.times else "-"
                if case.name == "Adam" and n == 1:
                    SUMMARY.append(f"{model} model Adam 1 thread: fastopt/floor {result.ratio('fastopt', 'floor'):.2f}"
                                   + (f", fastopt/torch fused {result.ratio('fastopt', 'torch'):.2f}"
                                      if "torch" in result.times else ""))
                print_row([model, case.name, str(get_num_threads()), str(len(shapes)), f"{elements / 1e6:.2f} M",
                           format_time(seconds), gigabytes_per_second(case, "float32", elements, seconds)]
                          + timed(result, "torch", "fastopt", "torch")
                          + timed(result, "floor", "fastopt", "floor") + [torch_floor], widths)


def overhead_lines(torch, args):
    """Adam at 1e3 elements (fastopt vs torch fused), and the cost of each extra tensor in a step."""
    adam, tiny = BY_NAME["Adam"], [(OVERHEAD_ELEMENTS,)]
    use_threads(torch, 1)
    steps = {"fastopt": lambda size: fastopt_step(adam, "cython", "float32", size),
             "floor": lambda size: floor_step(adam, "float32", size)}
    if torch is not None:
        steps["torch fused"] = lambda size: torch_step(torch, adam, "float32", size)
    contenders = {"fastopt": steps["fastopt"](1_000)}
    if torch is not None:
        contenders["torch"] = steps["torch fused"](1_000)
    for name, make in steps.items():
        contenders[f"{name} x1"] = make(tiny)
        contenders[f"{name} x{OVERHEAD_TENSORS}"] = make(tiny * OVERHEAD_TENSORS)
    result = measure(contenders, 1_000, args.quick)
    medians = result.medians

    def per_tensor(name):
        extra = (medians[f"{name} x{OVERHEAD_TENSORS}"] - medians[f"{name} x1"]) / (OVERHEAD_TENSORS - 1)
        return f"{name} {extra * 1e9:.0f} ns"

    print()
    print("Per-call overhead (Adam, float32, 1 thread):")
    line = f"  one tensor of 1000 elements: fastopt {format_time(medians['fastopt'])}"
    if torch is not None:
        line += (f", torch fused {format_time(medians['torch'])}, "
                 f"fastopt/torch {result.ratio('fastopt', 'torch'):.2f}")
    print(line)
    print(f"  per extra tensor, (step of {OVERHEAD_TENSORS} tensors of {OVERHEAD_ELEMENTS} elements - step of 1) "
          f"/ {OVERHEAD_TENSORS - 1}: " + ", ".join(per_tensor(name) for name in steps))


def torch_table(torch, threads, args):
    """fastopt.torch.Adam against torch.optim.Adam (fused, foreach, for-loop) on the two models, the
    adapter's own cost per tensor, and whole training steps with the optimizer step's share."""
    if torch is None:
        print()
        print("PyTorch: not installed, no fastopt.torch table")
        return
    print()
    print("PyTorch CPU loops, Adam float32 (fastopt.torch.Adam vs torch.optim.Adam): the step over the models'")
    print("  tensors holding gradients; x fused / x foreach / x for-loop: fastopt.torch's time over torch's "
          "(< 1: fastopt.torch faster);")
    print("  adapter: (fastopt.torch step - fastopt NumPy-API step on the same shapes) / tensors, same run")
    header = ["model", "threads", "tensors", "fastopt.torch", "torch fused", "x fused", "x foreach",
              "x for-loop", "adapter/tensor"]
    widths = [5, 7, 7, 13, 11, 7, 9, 10, 14]
    print_header(header, widths)
    adam = BY_NAME["Adam"]
    for model, shapes in MODELS.items():
        elements = sum(math.prod(shape) for shape in shapes)
        for n in threads:
            use_threads(torch, n)
            contenders = {"fastopt": torch_adam_step(torch, "fastopt.torch", shapes)}
            contenders.update({name: torch_adam_step(torch, name, shapes) for name in TORCH_ADAMS
                               if name != "fastopt.torch"})
            contenders["numpy api"] = fastopt_step(adam, "cython", "float32", shapes)
            result = measure(contenders, elements, args.quick)
            medians = result.medians
            adapter = (medians["fastopt"] - medians["numpy api"]) / len(shapes)
            if n == 1:
                SUMMARY.append(f"{model} model fastopt.torch.Adam/torch fused {result.ratio('fastopt', 'torch fused'):.2f}")
            print_row([model, str(get_num_threads()), str(len(shapes)), format_time(medians["fastopt"]),
                       format_time(medians["torch fused"])]
                      + [f"{result.ratio('fastopt', name):.2f}" for name in ("torch fused", "torch foreach",
                                                                             "torch for-loop")]
                      + [f"{adapter * 1e9:.0f} ns"], widths)
    print()
    print("A training step (zero_grad, forward, loss, backward, Adam step) of an MLP 784-1024-1024-1024-10 "
          "(2.9 M params), batch 64, float32:")
    print("  train: the whole step; opt.step: the optimizer's step alone; share: opt.step / train")
    header = ["threads", "optimizer", "train", "opt.step", "share", "train x fused"]
    widths = [7, 14, 9, 9, 5, 13]
    print_header(header, widths, left=2)
    for n in threads:
        use_threads(torch, n)
        contenders = {}
        for name in ("fastopt.torch", "torch fused", "torch for-loop"):
            train, step = torch_training_step(torch, name)
            contenders[name], contenders[name + " step"] = train, step
        result = compare(contenders, baseline="torch fused", rounds=3 if args.quick else 11,
                         target=0.001 if args.quick else 0.02)
        medians = result.medians
        for name in ("fastopt.torch", "torch fused", "torch for-loop"):
            print_row([str(get_num_threads()), name, format_time(medians[name]), format_time(medians[name + " step"]),
                       f"{medians[name + ' step'] / medians[name]:.0%}", f"{result.ratio(name, 'torch fused'):.2f}"],
                      widths)


TOOLKIT_SIZE = 10_000_000  # Adam float32, memory-bound: the extra pass over the gradients shows


def toolkit_steps(size, dtype="float32"):
    """Zero-argument Adam steps (lr 1e-4) on one parameter array of ``size`` elements: "plain", "fused
    clip" (``max_grad_norm``: a norm pass, the coefficient folded into the update), "clip + step"
    (``fastopt.clip_grad_norm_`` rewriting the gradients, then a plain step) and "skip nonfinite"
    (``skip_nonfinite=True``: the finiteness pass, no clipping). Clipping is active at every call: the
    fused step's threshold is half the gradients' norm; the separate clip's starts there and shrinks by
    0.1% per call, so it rewrites the gradients every time (by 0.999) without driving them toward
    denormals."""
    from fastopt.clip import clip_grad_norm_, get_total_norm

    adam = BY_NAME["Adam"]
    steps = {}
    threshold = get_total_norm(make_tensors(size, dtype)[1]) / 2
    for name, options in (("plain", {}), ("fused clip", {"max_grad_norm": threshold}), ("clip + step", {}),
                          ("skip nonfinite", {"skip_nonfinite": True})):
        params, grads = make_tensors(size, dtype)
        opt = adam.cls(params, lr=1e-4, **options)
        opt.step(grads)
        if name == "clip + step":
            def clip_then_step(opt=opt, grads=grads, calls=[0]):
                calls[0] += 1
                clip_grad_norm_(grads, threshold * 0.999 ** calls[0])
                opt.step(grads)
            steps[name] = clip_then_step
        else:
            steps[name] = lambda opt=opt, grads=grads: opt.step(grads)
    return steps


def toolkit_table(args):
    """Clipping and non-finite skipping inside the step against the plain step and a separate clip."""
    print()
    print(f"Training toolkit: Adam float32, n = {sci(TOOLKIT_SIZE)}, 1 thread; x plain: time over the plain step "
          "(< 1: faster), x clip+step: over fastopt.clip_grad_norm_ then a plain step")
    print("  (goals: fused clip x plain <= 1.15, fused clip x clip+step <= 0.85, skip nonfinite x plain <= 1.15)")
    header = ["variant", "time", "x plain", "x clip+step"]
    widths = [14, 9, 7, 11]
    print_header(header, widths, left=1)
    saved = get_num_threads()
    set_num_threads(1)
    try:
        result = compare(toolkit_steps(TOOLKIT_SIZE), baseline="plain", rounds=3 if args.quick else 9,
                         target=0.0)
    finally:
        set_num_threads(saved)
    for name, seconds in result.medians.items():
        print_row([name, format_time(seconds), f"{result.ratio(name, 'plain'):.2f}",
                   f"{result.ratio(name, 'clip + step'):.2f}"], widths, left=1)
    SUMMARY.append(f"fused clip/plain step {result.ratio('fused clip', 'plain'):.2f}, "
                   f"fused clip/(clip + step) {result.ratio('fused clip', 'clip + step'):.2f}")


BUSY_SIZE = 1_000_000  # Adam float32: a step of about a millisecond
BUSY_BLOCK = 10  # steps back to back per contender and round
LIGHT_LOAD = ("import time\n"  # one process busy 3 ms of every 10 ms: 30% of a core
              "while True:\n"
              "    t = time.perf_counter()\n"
              "    while time.perf_counter() - t < 0.003: pass\n"
              "    time.sleep(0.007)\n")


def step_percentiles(contenders, rounds, block=1):
    """Each contender called ``block`` times in a row per round, interleaved round by round; returns
    {name: sorted per-call seconds}."""
    times = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, (threads, step) in contenders.items():
            set_num_threads(threads)
            for _ in range(block):
                start = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - start)
    return {name: sorted(values) for name, values in times.items()}


def busy_table(torch, args):
    """Adam float32 at BUSY_SIZE, every thread count against one thread: on a quiet machine, with light
    other work (one process busy 30% of a core) and with one CPU-bound process per usable core competing
    for every core (the caller must not wait for a helper thread the OS has descheduled). fastopt's
    contenders are interleaved in blocks of BUSY_BLOCK steps back to back (its thread count is a per-call
    setting); torch fused and fastopt.torch (on torch's threads) run in a pass per torch thread count
    (switching torch's thread pool costs milliseconds), right after fastopt's under the same load."""
    cpus, adam = usable_cpus(), BY_NAME["Adam"]
    rounds = 3 if args.quick else 31
    counts = sorted({1, cpus})
    ours = {n: fastopt_step(adam, "cython", "float32", BUSY_SIZE) for n in counts}
    # on torch's thread count: torch's fused step, and fastopt.torch's (on torch's OpenMP team)
    on_torch = {} if torch is None else {"torch fused": torch_step(torch, adam, "float32", BUSY_SIZE),
                                         "fastopt.torch": torch_adam_step(torch, "fastopt.torch", [(BUSY_SIZE,)])}
    print()
    print(f"Busy machine: Adam float32, n = {sci(BUSY_SIZE)}, {rounds * BUSY_BLOCK} steps per contender (fastopt's "
          f"interleaved in blocks of {BUSY_BLOCK} back to back, torch fused's and fastopt.torch's in one pass "
          "per torch thread count);")
    print("  p50/p90 of the per-step times; x1: p50 or p90 over the same library's on 1 thread, same load (< 1: "
          "faster; goals: p50 x1 <= 0.6 quiet and light, p90 x1 <= 1.2 busy)")
    header = ["load", "library", "threads", "p50", "p90", "p50 x1", "p90 x1"]
    widths = [27, 13, 7, 9, 9, 6, 6]
    print_header(header, widths)
    saved, others = get_num_threads(), []

    def rows(load, library, times):
        for n in counts:
            values = times[n]
            print_row([load, library, str(n), format_time(percentile(values, 0.5)),
                       format_time(percentile(values, 0.9)),
                       f"{percentile(values, 0.5) / percentile(times[1], 0.5):.2f}",
                       f"{percentile(values, 0.9) / percentile(times[1], 0.9):.2f}"], widths, left=3)

    loads = {"quiet": [], "light (30% of a core)": [LIGHT_LOAD],
             f"{cpus} busy processes (1/core)": ["while True: pass"] * cpus}
    try:
        for load, programs in loads.items():
            others = [subprocess.Popen([sys.executable, "-c", code]) for code in programs]
            if others:
                time.sleep(0.5)  # let the scheduler spread them
            contenders = {n: (n, ours[n]) for n in counts}
            step_percentiles(contenders, 1, BUSY_BLOCK)  # warm-up
            rows(load, "fastopt", step_percentiles(contenders, rounds, BUSY_BLOCK))
            for library, step in on_torch.items():
                times = {}
                for n in counts:
                    torch.set_num_threads(n)
                    step_percentiles({n: (saved, step)}, 1, BUSY_BLOCK)
                    times[n] = step_percentiles({n: (saved, step)}, rounds, BUSY_BLOCK)[n]
                rows(load, library, times)
            for proc in others:
                proc.kill()
                proc.wait()
            others = []
    finally:
        for proc in others:
            proc.kill()
            proc.wait()
        set_num_threads(saved)
        if torch is not None:
            torch.set_num_threads(saved)


SUMMARY = []  # the bench's closing line: a few headline ratios, appended by the tables


def run_bench(args, parser):
    SUMMARY.clear()
    cases = selected_cases(args, parser)
    threads = args.threads or sorted({1, usable_cpus()})
    if any(n < 1 for n in threads):
        parser.error("--threads must be at least 1")
    torch = import_torch()
    print_bench_header(torch)
    single_tensor_table(cases, threads, torch, args)
    model_table(cases if args.models_all else [BY_NAME["Adam"]], threads, torch, args)
    overhead_lines(torch, args)
    torch_table(torch, threads, args)
    loop_tables(torch, args, SUMMARY)
    toolkit_table(args)
    precision_table(torch, threads, args, SUMMARY)
    busy_table(torch, args)
    print()
    print("Summary (below 1: fastopt faster): " + "; ".join(SUMMARY))
    return 0
