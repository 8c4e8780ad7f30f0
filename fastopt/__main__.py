"""``python -m fastopt``: time one optimizer step of the Cython kernels against the NumPy reference and torch.optim.

For every registry row (its first config), dtype and size it prints the median step time of
``backend="cython"``, of ``backend="numpy"`` and, when torch is importable, of torch.optim (``fused=True``
where torch has a fused CPU implementation), with the ratios reference/kernel and fastopt/torch. The
contenders of a row are timed interleaved in one run (see ``fastopt._timing``).

Commands: ``table`` (the default, so ``python -m fastopt`` and ``python -m fastopt table`` are the same).
A new command is one parser function and one run function registered in ``COMMANDS``.
"""
import argparse
import os
import platform
import sys

import numpy as np

from . import __version__
from ._registry import CASES
from ._timing import compare

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

def make_problem(size, dtype, seed=0):
    """One parameter array and a gradient of modest magnitude, so that repeating the same step many
    times drifts neither into denormals nor into inf."""
    rng = np.random.default_rng(seed)
    param = rng.standard_normal(size).astype(dtype)
    grad = (0.01 * rng.standard_normal(size)).astype(dtype)
    return param, grad


def first_config(case):
    return next(iter(case.configs.values()))


def fastopt_step(case, backend, dtype, size):
    """A zero-argument callable doing one fastopt step (``backend``: "cython" or "numpy")."""
    param, grad = make_problem(size, dtype)
    opt = case.cls([param], **first_config(case), backend=backend)
    grads = [grad]
    opt.step(grads)  # the first step allocates the state: keep it out of the timing
    return lambda: opt.step(grads)


def torch_step(torch, case, dtype, size):
    """A zero-argument callable doing one torch.optim step, or None without a torch equivalent."""
    if case.torch is None:
        return None
    param, grad = make_problem(size, dtype)
    tensor = torch.from_numpy(param)
    tensor.grad = torch.from_numpy(grad)
    kwargs = dict(first_config(case))
    if case.name in TORCH_FUSED:
        kwargs["fused"] = True
    opt = getattr(torch.optim, case.torch)([tensor], **kwargs)
    opt.step()
    return opt.step


# -- the table command ----------------------------------------------------------------------------

def table_parser():
    parser = argparse.ArgumentParser(
        prog="python -m fastopt",
        description="Median step time of fastopt's Cython kernels vs its NumPy reference and torch.optim.")
    parser.add_argument("--sizes", nargs="+", type=lambda s: int(float(s)), default=SIZES, metavar="N",
                        help="elements in the one parameter array (default: 1e3 1e5 1e6)")
    parser.add_argument("--dtypes", nargs="+", choices=DTYPES, default=DTYPES)
    parser.add_argument("--optimizers", nargs="+", metavar="NAME",
                        help="registry names to run (default: all): " + " ".join(c.name for c in CASES))
    parser.add_argument("--quick", action="store_true", help="few short rounds (smoke test, CI)")
    parser.add_argument("--torch-threads", type=int, default=1, metavar="N",
                        help="torch intra-op threads (default 1, like fastopt's single-threaded kernels)")
    return parser


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def format_time(seconds):
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    return f"{seconds * 1e3:.2f} ms"


def print_row(cells, widths):
    """Left-align the first two columns (names), right-align the rest (numbers)."""
    print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))),
          flush=True)


def run_table(args, parser):
    cases = CASES
    if args.optimizers:
        known = {case.name.lower() for case in CASES}
        unknown = [name for name in args.optimizers if name.lower() not in known]
        if unknown:
            parser.error(f"unknown optimizer(s): {', '.join(unknown)} "
                         f"(choose from {', '.join(case.name for case in CASES)})")
        wanted = {name.lower() for name in args.optimizers}
        cases = [case for case in CASES if case.name.lower() in wanted]
    if any(size < 1 for size in args.sizes):
        parser.error("--sizes must be positive")
    if args.torch_threads < 1:
        parser.error("--torch-threads must be at least 1")
    rounds, target = (3, 0.001) if args.quick else (15, 0.003)

    torch = import_torch()
    if torch is not None:
        torch.set_num_threads(args.torch_threads)
    torch_info = (f"torch {torch.__version__} ({torch.get_num_threads()} thread(s))" if torch is not None
                  else "torch not installed")
    print(f"fastopt {__version__} on {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"numpy {np.__version__}, {torch_info}")
    print(f"Times: median seconds per step of {rounds} interleaved rounds (kernel, reference, torch, ...); "
          "ratios: median of the per-round ratios. fastopt kernels run on 1 thread.")
    print()

    header = ["optimizer", "dtype", "n", "fastopt", "numpy ref", "ref/fastopt"]
    widths = [max(len(c.name) for c in cases), 7, max(len(str(s)) for s in args.sizes), 10, 10, 11]
    if torch is not None:
        header += ["torch", "fastopt/torch"]
        widths += [18, 13]
    widths = [max(w, len(h)) for w, h in zip(widths, header)]
    print_row(header, widths)
    print("  ".join("-" * w for w in widths))
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


# -- entry point ----------------------------------------------------------------------------------

COMMANDS = {"table": (table_parser, run_table)}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    command = "table"
    if argv and argv[0] in COMMANDS:
        command = argv.pop(0)
    make_parser, run = COMMANDS[command]
    parser = make_parser()
    return run(parser.parse_args(argv), parser)


if __name__ == "__main__":
    sys.exit(main())
