"""``python -m fastopt demo``: the texts' worked problems, solved with fastopt's optimizers.

Seven problems, each printing a table and writing PNG figures to ``--out`` (default ``./fastopt-demo``):

1. Linear regression (``y = 4 + 3x + noise``, full-batch MSE) with every optimizer, against the
   least-squares answer, with the kernels' speed-up over ``backend="numpy"``.
2. The parabola ``J(t) = (t - 2.5)^2 - 1`` through ``fastopt.minimize``: every optimizer's path.
3. An ill-conditioned 2-D quadratic: gradient descent zig-zags, momentum goes straighter; Adam.
4. The texts' three learning-rate schedules driving single-sample SGD on the regression.
5. Newton's method against gradient descent on the quadratic.
6. An MLP on scikit-learn's digits (forward and backward in NumPy) trained with every optimizer; with
   torch installed, also ``fastopt.torch.Adam`` against ``torch.optim.Adam`` on the same model.
7. The same MLP in fewer bytes (with Adam selected): bfloat16 weights (to nearest, stochastic rounding, split masters) and
   8-bit state, against float32; and a long run at a small learning rate where bfloat16 rounded to
   nearest stalls.

The problems' arithmetic (losses, gradients, the MLP) is written out here in NumPy: this is an example of
using fastopt, not part of the library. Seeds are fixed, so everything but the timings is reproducible.
Needs matplotlib, scikit-learn and tqdm: ``pip install "fastopt[demo]"``.

    python -m fastopt demo --quick --optimizers adam sgd --out /tmp/demo
"""
import argparse
import importlib
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import fastopt
from fastopt._registry import CASES
from fastopt.cli import print_header, print_row

NAMES = [case.name for case in CASES]

# import name -> pip name of what the demo needs beyond fastopt (the "demo" extra)
DEPENDENCIES = {"matplotlib": "matplotlib", "sklearn": "scikit-learn", "tqdm": "tqdm", "ml_dtypes": "ml_dtypes"}


# -- command line ----------------------------------------------------------------------------------

def _optimizer_name(text):
    """An optimizer's registry name from any capitalisation (argparse reports the error, exit 2)."""
    for name in NAMES:
        if name.lower() == text.lower():
            return name
    raise argparse.ArgumentTypeError(f"unknown optimizer {text!r} (choose from {', '.join(NAMES)})")


def add_arguments(parser):
    """Add the demo's options to an ``argparse`` parser (also used by ``python -m fastopt demo``)."""
    parser.add_argument("--out", type=Path, default=Path("fastopt-demo"), metavar="DIR",
                        help="where the PNG figures are written (default: ./fastopt-demo)")
    parser.add_argument("--quick", action="store_true",
                        help="fewer iterations and epochs, shorter timings (well under a minute)")
    parser.add_argument("--optimizers", nargs="+", type=_optimizer_name, default=list(NAMES), metavar="NAME",
                        help=f"the optimizers to run, case-insensitive (default: all: {' '.join(NAMES)})")
    return parser


def _missing_dependencies():
    """Import the optional dependencies; return (modules by import name, pip names of the missing ones)."""
    modules, missing = {}, []
    for module, package in DEPENDENCIES.items():
        try:
            modules[module] = importlib.import_module(module)
        except ImportError:
            missing.append(package)
    return modules, missing


def run(args):
    """Run every problem; return the exit status (2 when a dependency is missing)."""
    modules, missing = _missing_dependencies()
    if missing:
        print(f"fastopt demo: missing {', '.join(missing)} (the demo's plotting, data and progress-bar "
              "dependencies). Install them with\n"
              '    pip install "fastopt[demo]"\n'
              "or, from a fastopt checkout,\n"
              '    pip install ".[demo]"\n'
              f"(or directly: pip install {' '.join(missing)})", file=sys.stderr)
        return 2
    from matplotlib.figure import Figure  # no pyplot: nothing global, never a window
    from sklearn.datasets import load_digits

    wanted = set(args.optimizers or NAMES)
    demo = Demo(out=Path(args.out), quick=args.quick, cases=[case for case in CASES if case.name in wanted],
                Figure=Figure, tqdm=modules["tqdm"].tqdm, load_digits=load_digits)
    demo.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    print(f"fastopt {fastopt.__version__} demo{' (--quick)' if demo.quick else ''}: "
          f"{', '.join(case.name for case in demo.cases)}; figures go to {demo.out}")
    data = regression_data()
    linear_regression(demo, data)
    parabola(demo)
    ravine(demo)
    schedules(demo, data)
    newton_vs_gradient_descent(demo)
    data = digits_mlp(demo)
    precision_mlp(demo, data)
    print()
    print(f"done in {time.perf_counter() - start:.1f} s")
    print("figures: " + ", ".join(str(path) for path in demo.figures))
    return 0


# -- shared helpers: the run's context, tables, figures, timing ------------------------------------

@dataclass
class Demo:
    out: Path
    quick: bool
    cases: list         # the selected registry rows, in registry order
    Figure: type        # matplotlib.figure.Figure
    tqdm: type
    load_digits: object
    figures: list = field(default_factory=list)

    def figure(self, nrows=1, ncols=1, size=(7, 4.5), **kwargs):
        fig = self.Figure(figsize=size, layout="constrained")
        return fig, fig.subplots(nrows, ncols, squeeze=False, **kwargs)

    def save(self, fig, name):
        path = self.out / name
        fig.savefig(path, dpi=100)
        self.figures.append(path)

    def progress(self, total, desc):
        """A progress bar on stderr (off when stderr is not a terminal), gone when done."""
        return self.tqdm(total=total, desc=desc, leave=False, file=sys.stderr, disable=None)

    def selected(self, name):
        return any(case.name == name for case in self.cases)


def color(name):
    """The same colour for an optimizer in every figure (its position in the registry; past matplotlib's
    ten cycle colours, the XKCD ones below)."""
    if name not in NAMES:
        return "k"
    i = NAMES.index(name)
    return f"C{i}" if i < 10 else ("xkcd:teal", "xkcd:magenta", "xkcd:navy", "xkcd:lime", "xkcd:maroon")[(i - 10) % 5]


def settings(kwargs):
    return ", ".join(f"{key}={value}" for key, value in kwargs.items()) or "defaults"


def heading(number, title):
    print()
    print(f"== {number}. {title} ==")


def print_table(header, rows, notes=()):
    """Aligned columns sized to their cells: the first left-aligned (names), the rest right-aligned."""
    rows = [[str(cell) for cell in row] for row in rows]
    widths = [max([0] + [len(row[i]) for row in rows]) for i in range(len(header))]
    print_header(header, widths, left=1)
    for row in rows:
        print_row(row, widths, left=1)
    for note in notes:
        print(f"  {note}")


def timed_step(opt, grads, times):
    """``opt.step(grads)``, appending its duration to ``times``."""
    start = time.perf_counter()
    opt.step(grads)
    times.append(time.perf_counter() - start)


def rate(times):
    """Steps per second from per-step times (their median: robust on a busy machine)."""
    return f"{1 / statistics.median(times):,.0f}"


def speedup(numpy_times, kernel_times):
    return f"{statistics.median(numpy_times) / statistics.median(kernel_times):.1f}x"


def contour(ax, f, xlim, ylim):
    xs, ys = np.meshgrid(np.linspace(*xlim, 200), np.linspace(*ylim, 200))
    ax.contour(xs, ys, f(np.stack([xs, ys])), levels=np.geomspace(0.05, 60, 14), colors="0.75", linewidths=0.7)
    ax.plot(0, 0, "k*", ms=10)
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)
    ax.set_aspect("equal")


def draw_path(ax, path, col, label):
    ax.plot(path[:, 0], path[:, 1], "-o", color=col, ms=2.5, lw=1, label=label)
    ax.plot(*path[0], "s", color=col, ms=6)


# -- 1. linear regression ------------------------------------------------------------------------

REGRESSION_KWARGS = {"SGD": dict(lr=0.1), "Momentum": dict(lr=0.1, beta=0.9), "Adam": dict(lr=0.1),
                     "AdamW": dict(lr=0.1), "Adamax": dict(lr=0.2), "NAdam": dict(lr=0.1),
                     "Adagrad": dict(lr=1.0), "Adadelta": dict(lr=1.0), "RMSprop": dict(lr=0.02),
                     "RAdam": dict(lr=0.1), "Rprop": dict(lr=0.01), "ASGD": dict(lr=0.1), "Lion": dict(lr=0.02),
                     "LAMB": dict(lr=0.1, weight_decay=0.0), "ScheduleFreeAdamW": dict(lr=0.5)}


@dataclass
class Regression:
    x: np.ndarray          # (100,) the inputs
    X: np.ndarray          # (100, 2) with the bias column
    y: np.ndarray          # (100,)
    theta: np.ndarray      # the least-squares answer
    loss: float            # its MSE

    def mse(self, theta):
        residual = self.X @ theta - self.y
        return float(residual @ residual) / len(self.y)


def regression_data():
    """SPEC 4.1 with seed 0 (NumPy's legacy generator, as np.random.seed(0) then rand and randn)."""
    rng = np.random.RandomState(0)
    x = 2 * rng.rand(100, 1)
    y = 4 + 3 * x + rng.randn(100, 1)
    X = np.c_[np.ones((100, 1)), x]
    theta = np.linalg.lstsq(X, y.ravel(), rcond=None)[0]
    data = Regression(x.ravel(), X, y.ravel(), theta, 0.0)
    data.loss = data.mse(theta)
    return data


def fit_regression(data, case, iterations, backend="cython"):
    """Full-batch descent on the MSE from theta = 0: (theta, loss after each step from the start, step times)."""
    theta = np.zeros(2)
    opt = case.cls([theta], backend=backend, **REGRESSION_KWARGS[case.name])
    losses, times = [data.mse(theta)], []
    for _ in range(iterations):
        grad = 2 / len(data.y) * data.X.T @ (data.X @ theta - data.y)
        timed_step(opt, [grad], times)
        losses.append(data.mse(theta))
    return theta, np.array(losses), times


def linear_regression(demo, data):
    iterations = 500 if demo.quick else 1000
    timed = 200 if demo.quick else iterations  # steps of the backend="numpy" run
    heading(1, f"Linear regression, y = 4 + 3x + noise (100 points), full-batch MSE, {iterations} iterations")
    print(f"least squares (np.linalg.lstsq): theta = [{data.theta[0]:.4f}, {data.theta[1]:.4f}], "
          f"loss {data.loss:.5f}")
    rows, fits = [], {}
    with demo.progress(len(demo.cases), "regression") as bar:
        for case in demo.cases:
            theta, losses, times = fit_regression(data, case, iterations)
            numpy_times = fit_regression(data, case, timed, backend="numpy")[2]
            fits[case.name] = (theta, losses)
            rows.append([case.name, settings(REGRESSION_KWARGS[case.name]), f"{losses[-1]:.5f}", f"{theta[0]:.4f}",
                         f"{theta[1]:.4f}", f"{np.linalg.norm(theta - data.theta):.2g}", rate(times),
                         speedup(numpy_times, times[:timed])])
            bar.update()
    notes = ["|dtheta|: distance to the least-squares theta; steps/s: optimizer steps per second (median step); "
             'x numpy: the kernel\'s speed-up over backend="numpy", same steps']
    if "AdamW" in fits:
        notes.append("AdamW's default weight_decay=0.01 (decoupled) pulls theta toward 0: it settles short of "
                     "the least-squares answer")
    if "Adadelta" in fits:
        notes.append("Adadelta's steps start at about sqrt(eps) and grow slowly: it is still on its way")
    if "LAMB" in fits:
        notes.append("LAMB with weight_decay=0 applies no trust ratio (timm's rule): Adam's step in its form; "
                     "with the ratio every step is about lr*|theta| long, too long to settle on a 2-parameter fit")
    print_table(["optimizer", "settings", "loss", "theta0", "theta1", "|dtheta|", "steps/s", "x numpy"], rows, notes)

    fig, axes = demo.figure()
    ax = axes[0, 0]
    ax.scatter(data.x, data.y, s=12, color="0.6", label="data")
    grid = np.array([0.0, 2.0])
    ax.plot(grid, data.theta[0] + data.theta[1] * grid, "k--", lw=2.5, label="least squares")
    for name, (theta, _) in fits.items():
        ax.plot(grid, theta[0] + theta[1] * grid, color=color(name), lw=1.2, label=name)
    ax.set(xlabel="x", ylabel="y", title=f"Fitted lines after {iterations} full-batch iterations")
    ax.legend(fontsize=8, ncols=2)
    demo.save(fig, "regression_fit.png")

    fig, axes = demo.figure(1, 2, size=(11, 4.5))
    for name, (_, losses) in fits.items():
        axes[0, 0].plot(losses, color=color(name), lw=1.2, label=name)
        axes[0, 1].plot(np.maximum(losses - data.loss, 1e-16), color=color(name), lw=1.2, label=name)
    axes[0, 0].axhline(data.loss, color="k", ls="--", lw=1, label="least squares")
    axes[0, 0].set(yscale="log", xlabel="iteration", ylabel="MSE", title="Loss per iteration")
    axes[0, 1].set(yscale="log", xlabel="iteration", ylabel="MSE - least-squares MSE",
                   title="Excess loss over the least-squares fit")
    axes[0, 0].legend(fontsize=8, ncols=2)
    demo.save(fig, "regression_loss.png")


# -- 2. the parabola ---------------------------------------------------------------------------------

PARABOLA_LR = {"Adadelta": 1.0}  # everyone else: the texts' eta = 0.1


def J(t):
    return (t - 2.5) ** 2 - 1


def dJ(t):
    return 2 * (t - 2.5)


def parabola(demo):
    heading(2, "The parabola J(t) = (t - 2.5)^2 - 1 from t = 0, fastopt.minimize(tol=1e-8), eta = 0.1")
    rows, paths = [], {}
    for case in demo.cases:
        lr = PARABOLA_LR.get(case.name, 0.1)
        res = fastopt.minimize(J, 0.0, dJ, method=case.name.lower(), lr=lr, tol=1e-8, max_iter=5000)
        paths[case.name] = res.history["x"]
        rows.append([case.name, f"{lr:g}", res.nit, "yes" if res.success else "no", f"{res.x:.6f}", f"{res.fun:.8f}"])
    notes = ["steps: until |J(t_k) - J(t_k-1)| < 1e-8; the minimum is t = 2.5, J = -1"]
    if "Adadelta" in paths:
        notes.append("Adadelta: lr 1.0, its usual value (its step is a ratio of running averages times lr)")
    if "Rprop" in paths:
        notes.append("Rprop: 'converged' where t stood still for a step: a step that flips the gradient's sign "
                     "shrinks the step size and leaves t where it is")
    if "LAMB" in paths:
        notes.append("LAMB: its trust ratio makes every step about lr*|t| long (the ratio |t|/|u| times lr), so "
                     "it ends bouncing around the minimum")
    if "Lion" in paths:
        notes.append("Lion: every step moves t by exactly lr, so it ends bouncing lr around the minimum "
                     "(it needs a decaying lr to settle)")
    print_table(["optimizer", "lr", "steps", "converged", "final t", "J(t)"], rows, notes)

    ncols = min(3, len(paths))
    nrows = math.ceil(len(paths) / ncols)
    fig, axes = demo.figure(nrows, ncols, size=(4 * ncols, 3 * nrows + 0.5), sharex=True, sharey=True)
    lo = min(-0.3, *(path.min() for path in paths.values()))
    hi = max(3.5, *(path.max() + 0.3 for path in paths.values()))
    grid = np.linspace(lo, hi, 200)
    for ax, (name, path) in zip(axes.flat, paths.items()):
        ax.plot(grid, J(grid), color="0.6", lw=1)
        ax.plot(path, J(path), "-o", color=color(name), ms=3, lw=0.7)
        ax.plot(path[0], J(path[0]), "ks", ms=5)
        ax.set_title(f"{name}: {len(path) - 1} steps", fontsize=10)
    for ax in axes.flat[len(paths):]:
        ax.set_visible(False)
    fig.suptitle("Paths on J(t) = (t - 2.5)^2 - 1 from t = 0 (square: start)")
    fig.supxlabel("t")
    fig.supylabel("J(t)")
    demo.save(fig, "parabola_paths.png")


# -- 3. an ill-conditioned quadratic ------------------------------------------------------------------

RAVINE_START = np.array([-4.0, 1.5])


def ravine_f(p):
    return 0.5 * (p[0] ** 2 + 25 * p[1] ** 2)


def ravine_grad(p):
    return np.array([p[0], 25 * p[1]])


def ravine_hess(p):
    return np.diag([1.0, 25.0])


# (optimizer, label, kwargs): gradient descent is always drawn, the others when selected
RAVINE_RUNS = [("SGD", "gradient descent", dict(lr=0.07)),
               ("SGD", "SGD with momentum", dict(lr=0.05, momentum=0.5)),
               ("Momentum", "Momentum", dict(lr=0.1, beta=0.7)),
               ("Adam", "Adam", dict(lr=0.3))]


def ravine(demo):
    heading(3, "An ill-conditioned quadratic f = (x^2 + 25 y^2) / 2 from (-4, 1.5), fastopt.minimize(tol=1e-8)")
    runs = [run for i, run in enumerate(RAVINE_RUNS) if i == 0 or demo.selected(run[0])]
    rows, paths = [], {}
    for name, label, kwargs in runs:
        res = fastopt.minimize(ravine_f, RAVINE_START, ravine_grad, method=name.lower(), tol=1e-8, max_iter=1000,
                               **kwargs)
        paths[label] = (name, res.history["x"])
        rows.append([label, f"{name} {settings(kwargs)}", res.nit, f"{res.x[0]:.2e}", f"{res.x[1]:.2e}",
                     f"{res.fun:.2e}"])
    print_table(["method", "optimizer", "steps", "x", "y", "f"], rows, [
        "the steep axis (curvature 25) makes gradient descent bounce across the valley (its lr must stay below "
        "2/25),",
        "and then crawl along the shallow axis; momentum averages the bounces away and builds up speed along the "
        "valley;",
        "Adam divides each coordinate's step by that coordinate's gradient scale: it heads diagonally at first"])

    ncols = min(2, len(paths))
    nrows = math.ceil(len(paths) / ncols)
    fig, axes = demo.figure(nrows, ncols, size=(6.5 * ncols, 3.2 * nrows + 0.4), sharex=True, sharey=True)
    baseline = paths["gradient descent"][1]
    for ax, (label, (name, path)) in zip(axes.flat, paths.items()):
        contour(ax, ravine_f, (-5, 5), (-2, 2))
        if label != "gradient descent":
            ax.plot(baseline[:, 0], baseline[:, 1], color="0.8", lw=1)  # for comparison
        draw_path(ax, path, "C7" if label == "gradient descent" else color(name), label)
        ax.set_title(f"{label}: {len(path) - 1} steps", fontsize=10)
    for ax in axes.flat[len(paths):]:
        ax.set_visible(False)
    fig.suptitle("f = (x^2 + 25 y^2) / 2: paths from (-4, 1.5) (square) to the minimum (star); "
                 "light grey: gradient descent")
    demo.save(fig, "quadratic_paths.png")


# -- 4. learning-rate schedules --------------------------------------------------------------------------

def schedules(demo, data):
    from fastopt.lr_scheduler import ExponentialDecayLR, InverseTimeDecayLR, PiecewiseConstantLR

    n, lr0 = 1000, 0.1
    heading(4, f"Learning-rate schedules: single-sample SGD (lr0 = {lr0}) on the regression, {n} iterations")
    plans = {
        "constant": (None, f"lr = {lr0}"),
        "piecewise constant": (lambda opt: PiecewiseConstantLR(opt, [300, 600], [lr0, 0.03, 0.01]),
                               "boundaries [300, 600], values [0.1, 0.03, 0.01]"),
        "exponential decay": (lambda opt: ExponentialDecayLR(opt, decay=0.003), "lr0 * exp(-0.003 t)"),
        "inverse-time decay": (lambda opt: InverseTimeDecayLR(opt, alpha=1.0, beta=0.01), "lr0 / (1 + 0.01 t)"),
    }
    samples = np.random.RandomState(42).randint(0, len(data.y), size=n)  # the same order for every schedule
    rows, curves = [], {}
    for label, (make, formula) in plans.items():
        theta = np.zeros(2)
        opt = fastopt.SGD([theta], lr=lr0)
        scheduler = make(opt) if make else None
        lrs, losses = [], []
        for i in samples:
            lrs.append(opt.param_groups[0]["lr"])
            xi = data.X[i]
            opt.step([2 * xi * (xi @ theta - data.y[i])])
            if scheduler is not None:
                scheduler.step()
            losses.append(data.mse(theta))
        curves[label] = (np.array(lrs), np.array(losses))
        rows.append([label, formula, f"{lrs[-1]:.4f}", f"{np.mean(losses[-n // 10:]):.5f}", f"{theta[0]:.4f}",
                     f"{theta[1]:.4f}", f"{np.linalg.norm(theta - data.theta):.2g}"])
    print_table(["schedule", "lr(t)", "last lr", "loss (last 10%)", "theta0", "theta1", "|dtheta|"], rows, [
        f"loss: full-data MSE (least squares: {data.loss:.5f}); a constant lr keeps jumping around the answer,",
        "a decaying one lets single-sample SGD settle"])

    fig, axes = demo.figure(1, 2, size=(11, 4.5))
    window = 50
    for k, (label, (lrs, losses)) in enumerate(curves.items()):
        excess = np.maximum(losses - data.loss, 1e-12)
        axes[0, 0].plot(lrs, color=f"C{k}", lw=1.5, label=label)
        axes[0, 1].plot(excess, color=f"C{k}", lw=0.5, alpha=0.3)
        axes[0, 1].plot(np.arange(window - 1, n), np.convolve(excess, np.ones(window) / window, "valid"),
                        color=f"C{k}", lw=1.8, label=label)
    axes[0, 0].set(xlabel="iteration", ylabel="learning rate", title="Learning rate")
    axes[0, 1].set(yscale="log", xlabel="iteration", ylabel="MSE - least-squares MSE",
                   title=f"Excess full-data loss (faint: every step; bold: mean of {window})")
    axes[0, 0].legend(fontsize=9)
    demo.save(fig, "lr_schedules.png")


# -- 5. Newton against gradient descent ------------------------------------------------------------------

def newton_vs_gradient_descent(demo):
    heading(5, "Newton's method against gradient descent on f = (x^2 + 25 y^2) / 2 from (-4, 1.5)")
    runs = {"gradient descent": dict(method="sgd", lr=0.07),
            "Newton": dict(method="newton", hess=ravine_hess)}
    rows, paths = [], {}
    for label, kwargs in runs.items():
        res = fastopt.minimize(ravine_f, RAVINE_START, ravine_grad, tol=1e-8, max_iter=1000, **kwargs)
        path = res.history["x"]
        paths[label] = path
        near = np.flatnonzero(np.linalg.norm(path, axis=1) < 1e-6)
        rows.append([label, "lr=1, x -= H^-1 g" if label == "Newton" else "SGD lr=0.07", res.nit,
                     near[0] if near.size else "-", f"{res.fun:.2e}"])
    print_table(["method", "step", "steps", "at minimum after", "f"], rows, [
        "steps: until |f_k - f_k-1| < 1e-8 (Newton needs a second step to see it has stopped); "
        "at minimum: first step with |x| < 1e-6",
        "on a quadratic Newton's step H^-1 g lands on the minimum at once, whatever the conditioning"])

    fig, axes = demo.figure(size=(8, 4))
    ax = axes[0, 0]
    contour(ax, ravine_f, (-5, 5), (-2, 2))
    draw_path(ax, paths["gradient descent"], "C7", f"gradient descent ({len(paths['gradient descent']) - 1} steps)")
    draw_path(ax, paths["Newton"], "C3", "Newton (1 step to the minimum)")
    ax.legend(fontsize=9, loc="upper right")
    ax.set(xlabel="x", ylabel="y", title="Newton's method against gradient descent")
    demo.save(fig, "newton_vs_gd.png")


# -- 6. an MLP on the digits -------------------------------------------------------------------------------

MLP_KWARGS = {"SGD": dict(lr=0.1), "Momentum": dict(lr=0.1, beta=0.9), "Adam": dict(lr=1e-3),
              "AdamW": dict(lr=1e-3), "Adamax": dict(lr=2e-3), "NAdam": dict(lr=2e-3), "Adagrad": dict(lr=0.05),
              "Adadelta": dict(lr=1.0), "RMSprop": dict(lr=1e-3), "RAdam": dict(lr=1e-2), "Rprop": dict(lr=1e-3),
              "ASGD": dict(lr=0.1), "Lion": dict(lr=1e-3), "LAMB": dict(lr=1e-2), "ScheduleFreeAdamW": dict(lr=5e-3)}
BATCH = 64
HIDDEN = 64


@dataclass
class Digits:
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    init: list             # W1, b1, W2, b2: the same start for every optimizer
    orders: list           # one permutation of the training set per epoch: the same batches for all

    def batches(self, epoch):
        order = self.orders[epoch]
        for start in range(0, len(order), BATCH):
            index = order[start:start + BATCH]
            yield self.X_train[index], self.y_train[index]


def digits_data(demo, epochs):
    """sklearn's 8x8 digits (1797 images, 10 classes), a fixed 80/20 split, standardized by the training set."""
    digits = demo.load_digits()
    X, y = digits.data.astype(np.float32), digits.target
    order = np.random.default_rng(0).permutation(len(y))
    cut = int(0.8 * len(y))
    train, test = order[:cut], order[cut:]
    mean, std = X[train].mean(axis=0), X[train].std(axis=0)
    std[std == 0] = 1  # pixels that are always blank
    X = (X - mean) / std
    rng = np.random.default_rng(1)
    scale = np.float32(np.sqrt(2 / X.shape[1]))  # He initialization
    init = [(rng.standard_normal((X.shape[1], HIDDEN)) * scale).astype(np.float32), np.zeros(HIDDEN, np.float32),
            (rng.standard_normal((HIDDEN, 10)) * np.sqrt(2 / HIDDEN)).astype(np.float32), np.zeros(10, np.float32)]
    orders = [rng.permutation(len(train)) for _ in range(epochs)]
    return Digits(X[train], y[train], X[test], y[test], init, orders)


def forward(params, X):
    W1, b1, W2, b2 = params
    hidden = np.maximum(X @ W1 + b1, 0)
    return hidden, hidden @ W2 + b2


def cross_entropy(logits, y):
    """Mean softmax cross-entropy and the softmax probabilities."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(y)), y].mean()), np.exp(log_probs)


def loss_and_grads(params, X, y):
    """Forward and backward of the 64-64-10 ReLU MLP: (loss, [dW1, db1, dW2, db2])."""
    W1, b1, W2, b2 = params
    hidden, logits = forward(params, X)
    loss, probs = cross_entropy(logits, y)
    dlogits = probs
    dlogits[np.arange(len(y)), y] -= 1
    dlogits /= len(y)
    dhidden = (dlogits @ W2.T) * (hidden > 0)
    return loss, [X.T @ dhidden, dhidden.sum(axis=0), hidden.T @ dlogits, dlogits.sum(axis=0)]


def evaluate(params, data):
    """(training-set loss, test accuracy)."""
    loss = cross_entropy(forward(params, data.X_train)[1], data.y_train)[0]
    return loss, float((forward(params, data.X_test)[1].argmax(axis=1) == data.y_test).mean())


def train_mlp(data, case, epochs, backend="cython", bar=None):
    """Train from ``data.init``; returns (losses and accuracies per epoch from the start, step times)."""
    params = [p.copy() for p in data.init]
    opt = case.cls(params, backend=backend, **MLP_KWARGS[case.name])
    history, times = [evaluate(params, data)], []
    for epoch in range(epochs):
        for X, y in data.batches(epoch):
            grads = loss_and_grads(params, X, y)[1]
            timed_step(opt, grads, times)
        if hasattr(opt, "eval"):  # schedule-free: evaluate at x, the average, then train on from y
            opt.eval()
            history.append(evaluate(params, data))
            opt.train()
        else:
            history.append(evaluate(params, data))
        if bar is not None:
            bar.update()
    return np.array(history), times


def digits_mlp(demo):
    epochs = 4 if demo.quick else 20
    timed = 1 if demo.quick else epochs  # epochs of the backend="numpy" run
    data = digits_data(demo, epochs)
    steps = epochs * math.ceil(len(data.y_train) / BATCH)
    heading(6, f"An MLP 64-{HIDDEN}-10 (ReLU, softmax cross-entropy) on sklearn's digits: "
               f"{len(data.y_train)} training / {len(data.y_test)} test images, batches of {BATCH}, "
               f"{epochs} epochs ({steps} steps), float32")
    rows, histories = [], {}
    with demo.progress(len(demo.cases) * (epochs + timed), "digits MLP") as bar:
        for case in demo.cases:
            history, times = train_mlp(data, case, epochs, bar=bar)
            numpy_times = train_mlp(data, case, timed, backend="numpy", bar=bar)[1]
            histories[case.name] = history
            rows.append([case.name, settings(MLP_KWARGS[case.name]), f"{history[-1, 0]:.4f}",
                         f"{history[-1, 1]:.1%}", rate(times), speedup(numpy_times, times[:len(numpy_times)])])
    notes = ["train loss: on the whole training set after the last epoch; steps/s: optimizer steps per second "
             "(median step);",
             f'x numpy: the kernel\'s speed-up over backend="numpy" on the same steps '
             f'({timed} epoch{"s" if timed > 1 else ""})']
    if "ScheduleFreeAdamW" in histories:
        notes.append("ScheduleFreeAdamW: evaluated in eval mode (at the average of its iterates), as its authors "
                     "prescribe; its step also reads its group's schedule (a few us per step at this size)")
    if "Rprop" in histories:
        notes.append("Rprop is a full-batch method: on mini-batches each batch's signs grow or shrink the step "
                     "sizes, the weights grow and the loss with them (the predictions stay mostly right)")
    print_table(["optimizer", "settings", "train loss", "test acc", "steps/s", "x numpy"], rows, notes)

    fig, axes = demo.figure(1, 2, size=(11, 4.5))
    for name, history in histories.items():
        axes[0, 0].plot(history[:, 0], "-o", ms=3, color=color(name), label=name)
        axes[0, 1].plot(history[:, 1], "-o", ms=3, color=color(name), label=name)
    axes[0, 0].set(yscale="log", xlabel="epoch", ylabel="cross-entropy", title="Training loss")
    axes[0, 1].set(xlabel="epoch", ylabel="accuracy", title="Test accuracy", ylim=(0, 1))
    axes[0, 1].legend(fontsize=8, ncols=2, loc="lower right")
    for ax in axes.flat:
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle("MLP on sklearn's digits: every optimizer from the same start, on the same batches")
    demo.save(fig, "mlp_digits.png")

    torch_mlp(data, epochs)
    return data


def torch_mlp(data, epochs):
    """The same MLP as a torch module, trained by fastopt.torch.Adam and torch.optim.Adam (skipped without
    torch)."""
    try:
        import torch
    except ImportError:
        print("\n(torch is not installed, so the comparison of fastopt.torch.Adam with torch.optim.Adam on this "
              "MLP is left out; the CPU build adds it: pip install torch --index-url "
              "https://download.pytorch.org/whl/cpu)")
        return
    import fastopt.torch

    X_train, y_train = torch.from_numpy(data.X_train), torch.from_numpy(data.y_train)
    X_test = torch.from_numpy(data.X_test)
    loss_fn = torch.nn.functional.cross_entropy
    rows, medians = [], {}
    for label, cls in (("fastopt.torch.Adam", fastopt.torch.Adam), ("torch.optim.Adam", torch.optim.Adam)):
        model = torch.nn.Sequential(torch.nn.Linear(X_train.shape[1], HIDDEN), torch.nn.ReLU(),
                                    torch.nn.Linear(HIDDEN, 10))
        with torch.no_grad():
            W1, b1, W2, b2 = data.init
            for tensor, value in zip(model.parameters(), (W1.T, b1, W2.T, b2)):
                tensor.copy_(torch.from_numpy(np.ascontiguousarray(value)))
        opt = cls(model.parameters(), **MLP_KWARGS["Adam"])
        step_times, train_times = [], []
        for epoch in range(epochs):
            for X, y in data.batches(epoch):
                start = time.perf_counter()
                opt.zero_grad()
                loss_fn(model(torch.from_numpy(X)), torch.from_numpy(y)).backward()
                before = time.perf_counter()
                opt.step()
                end = time.perf_counter()
                step_times.append(end - before)
                train_times.append(end - start)
        with torch.no_grad():
            loss = float(loss_fn(model(X_train), y_train))
            accuracy = float((model(X_test).argmax(dim=1).numpy() == data.y_test).mean())
        medians[label] = statistics.median(step_times)
        rows.append([label, f"{loss:.4f}", f"{accuracy:.1%}", f"{medians[label] * 1e6:.1f} us",
                     f"{statistics.median(train_times) * 1e6:.1f} us"])
    for row in rows:
        row.append(f"{medians[row[0]] / medians['torch.optim.Adam']:.2f}")
    print()
    print(f"The same MLP as a torch module (torch {torch.__version__}), same start and batches, "
          f"Adam {settings(MLP_KWARGS['Adam'])}:")
    print_table(["optimizer", "train loss", "test acc", "opt.step", "train step", "step ratio"], rows, [
        "opt.step, train step (zero_grad, forward, backward, step): median times; step ratio: opt.step over "
        "torch.optim.Adam's (< 1: faster)"])


# -- 7. the MLP in fewer bytes ---------------------------------------------------------------------------

# (label, param dtype, Adam options): the formats of docs/precision.md
PRECISION_VARIANTS = [
    ("float32", "float32", {}),
    ("bf16 nearest", "bfloat16", {}),
    ("bf16 stochastic", "bfloat16", {"rounding": "stochastic", "seed": 0}),
    ("bf16 split", "bfloat16", {"master_weights": "split"}),
    ("f32, q8 state", "float32", {"state_dtype": "q8"}),
]
PRECISION_LR = 1e-3
SMALL_LR = 1e-4  # Adam moves each weight by about lr: below half a bfloat16 ulp of weights near 0.1-1


def train_precision(data, dtype, options, epochs, lr):
    """Adam on the digits MLP with params of ``dtype`` (forward and backward in float32 on their
    values, gradients rounded to the params' dtype); returns (loss, accuracy) per epoch from the start
    and the optimizer's state bytes per parameter."""
    import ml_dtypes

    dtype = np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(dtype)
    params = [p.astype(dtype) for p in data.init]
    opt = fastopt.Adam(params, lr=lr, **options)
    wide = lambda: [p.astype(np.float32) for p in params]  # noqa: E731
    history = [evaluate(wide(), data)]
    for epoch in range(epochs):
        for X, y in data.batches(epoch):
            grads = loss_and_grads(wide(), X, y)[1]
            opt.step([g.astype(dtype) for g in grads])
        history.append(evaluate(wide(), data))
    state = [v for entry in opt.state.values() for key, v in entry.items() if key != "step"]
    nbytes = sum(v.codes.nbytes + v.absmax.nbytes if hasattr(v, "codes") else v.nbytes for v in state)
    return np.array(history), nbytes / sum(p.size for p in params)


def precision_mlp(demo, data):
    if not demo.selected("Adam"):
        return None
    epochs = len(data.orders)
    long_epochs = 6 if demo.quick else 60
    data = data if long_epochs <= epochs else digits_data(demo, long_epochs)
    heading(7, f"The same MLP in fewer bytes: Adam lr {PRECISION_LR:g}, {epochs} epochs, then lr "
               f"{SMALL_LR:g} for {long_epochs} epochs (docs/precision.md)")
    rows, histories, long_runs = [], {}, {}
    with demo.progress(len(PRECISION_VARIANTS) * (epochs + long_epochs), "precision") as bar:
        for label, dtype, options in PRECISION_VARIANTS:
            history, state_bytes = train_precision(data, dtype, options, epochs, PRECISION_LR)
            bar.update(epochs)
            long_run, _ = train_precision(data, dtype, options, long_epochs, SMALL_LR)
            bar.update(long_epochs)
            histories[label], long_runs[label] = history, long_run
            rows.append([label, f"{np.dtype(np.float32).itemsize if dtype == 'float32' else 2}",
                         f"{state_bytes:.2f}", f"{history[-1, 0]:.4f}", f"{history[-1, 1]:.1%}",
                         f"{(history[-1, 1] - histories['float32'][-1, 1]) * 100:+.1f}",
                         f"{long_run[-1, 0]:.4f}"])
    print_table(["variant", "param bytes", "state bytes", "train loss", "test acc", "vs f32 (points)",
                 f"loss at lr {SMALL_LR:g}"], rows, [
        "state bytes: the optimizer's persistent state per parameter (the step counters aside; the 4096+ element "
        "first layer is quantized, the smaller ones keep float32);",
        f"last column: training loss after {long_epochs} epochs at lr {SMALL_LR:g}, from the same start (loss "
        f"there: {long_runs['float32'][0, 0]:.4f}): rounded to nearest, bfloat16 weights lose every update "
        "smaller than half their spacing"])

    fig, axes = demo.figure(1, 2, size=(11, 4.5))
    for label, history in histories.items():
        axes[0, 0].plot(history[:, 1], "-o", ms=3, label=label)
    for label, history in long_runs.items():
        axes[0, 1].plot(history[:, 0], "-", label=label)
    axes[0, 0].set(xlabel="epoch", ylabel="accuracy", title=f"Test accuracy, lr {PRECISION_LR:g}", ylim=(0, 1))
    axes[0, 1].set(yscale="log", xlabel="epoch", ylabel="cross-entropy",
                   title=f"Training loss, lr {SMALL_LR:g}: nearest rounding stalls")
    for ax in axes.flat:
        ax.legend(fontsize=8)
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle("The digits MLP with Adam in float32, bfloat16 (three ways) and 8-bit state")
    demo.save(fig, "precision_digits.png")
    return histories, long_runs


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastopt demo",
                                     description="The texts' worked problems solved with fastopt's optimizers: "
                                                 "tables on stdout, PNG figures in --out.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
