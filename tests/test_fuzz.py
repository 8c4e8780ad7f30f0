"""Differential fuzzing (hypothesis): the compiled kernels against their NumPy twins, and against themselves
over thread counts, bit for bit, on random optimizers' inputs.

For every registry row (``fastopt._registry.CASES``; a new row is fuzzed with no edit here) hypothesis
draws a scenario: a dtype (float32, float64, bfloat16, float16 or a mix) with precision options that fit
it (stochastic rounding, split or float32 masters, bfloat16/q8/q4 state), 1-3 parameter groups of 1-4 parameters each
(shapes ``()``, ``(0,)``, ``(1,)``, odd and SIMD-tail sizes, 2-D/3-D, and rarely a tensor above the
threading threshold), hyperparameters from each optimizer's valid ranges for the constructor and for
each group (``HYPERPARAMETERS`` below: every keyword of every optimizer), parameter values with
occasional NaN, +-inf, -0.0, huge and subnormal values, 1-5 steps whose gradients are sometimes None
and sometimes hold NaN/inf (sometimes read-only), occasional hyperparameter changes between steps and
jumps of the ``step`` counters (a resumed run), and the compiled run's thread count (1-3).
Hyperparameters are Python floats and bools here; NumPy scalars have their own property.

* ``test_backends_bit_identical``: ``backend="cython"`` and ``backend="numpy"`` on fresh copies give
  the same bits in every parameter and every state buffer (0-d counters included), the same
  ``opt.state`` keys and the same keys per state. NaN may carry any payload (both NaN is equal), but
  a NaN must sit at the same positions, and -0.0 differs from +0.0. Gradients are never written.
* ``test_thread_counts_bit_identical``: the compiled backend with 1, 2 and 3 threads (each draw has
  at least one tensor above ``show_config()["parallel_min_elements"]``).
* ``test_numpy_scalar_hyperparameters``: hyperparameters given as NumPy scalars (np.float32,
  np.float64, 0-d arrays, np.bool_) give both backends the results of the same values as Python
  floats.

Profiles (environment variable ``FASTOPT_FUZZ_PROFILE``):

* ``ci`` (default): 200 examples per optimizer for the main property (a quarter of that with threads,
  half in all for NumPy scalars), under a minute on 2 cores;
* ``long``: ten times the examples, e.g. ``FASTOPT_FUZZ_PROFILE=long python -m pytest tests/test_fuzz.py``;
* ``quick``: a tenth of them (``.ci/qemu`` runs the suite on emulated CPUs, some twenty times slower).

The profiles are registered here but never loaded globally (each test takes its settings from the
selected one), so other hypothesis tests keep theirs. Examples are fresh on every run (not
derandomized) and there is no example database (``database=None``), so a failure prints its
``@reproduce_failure(...)`` blob: paste it above the failing test to replay that exact example.
"""
import dataclasses
import functools
import inspect
import io
import math
import os
import warnings

import numpy as np
import pytest

pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, Phase, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import fastopt  # noqa: E402
from fastopt._kernels._runtime import Quantized  # noqa: E402
from fastopt._registry import BY_NAME, CASES  # noqa: E402

ml_dtypes = pytest.importorskip("ml_dtypes")
BF16, F16 = np.dtype(ml_dtypes.bfloat16), np.dtype(np.float16)

# ---------------------------------------------------------------------------------------------------
# profiles

settings.register_profile("ci", max_examples=200, deadline=None, print_blob=True, database=None,
                          derandomize=False)
settings.register_profile("long", max_examples=2000, deadline=None, print_blob=True, database=None,
                          derandomize=False)
settings.register_profile("quick", max_examples=20, deadline=None, print_blob=True, database=None,
                          derandomize=False)
PROFILE = settings.get_profile(os.environ.get("FASTOPT_FUZZ_PROFILE", "ci").strip() or "ci")
SUPPRESS = [HealthCheck.too_slow, HealthCheck.data_too_large]
# no "explain" phase: it traces every line a failing example runs, which costs more than it tells here
PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink]


def fuzz_settings(fraction=1.0):
    """The profile's settings (never loaded globally: other test files keep theirs), with
    ``fraction`` of its examples."""
    return settings(PROFILE, max_examples=max(1, round(PROFILE.max_examples * fraction)), deadline=None,
                    suppress_health_check=SUPPRESS, phases=PHASES)


def _parallel_min():
    """The element count from which a step is split over threads (32768 when not reported)."""
    try:
        value = fastopt.show_config(file=io.StringIO()).get("parallel_min_elements")
    except Exception:  # noqa: BLE001 - the config is being reworked; the fallback is the documented value
        value = None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0:
        return int(value)
    return 32768


PARALLEL_MIN = _parallel_min()
SMALL = 8  # arrays up to this size get every element from hypothesis; larger ones from a seeded generator

CASE_PARAMS = [pytest.param(case, id=case.name) for case in CASES]


# ---------------------------------------------------------------------------------------------------
# strategy helpers


def weighted(*options):
    """``(weight, strategy)`` pairs: one strategy, chosen with probability ~ weight. Shrinks towards
    the first option (list the ordinary case first). Built once: no strategy is made per draw."""
    table = [strategy for weight, strategy in options for _ in range(weight)]
    index = st.integers(0, len(table) - 1)

    @st.composite
    def pick(draw):
        return draw(table[draw(index)])

    return pick()


def nonnegative(typical_max, rare=()):
    """A hyperparameter checked as ``0 <= value`` (inf passes, NaN does not)."""
    return weighted((5, st.floats(0.0, typical_max)), (2, st.just(0.0)),
                    (2, st.sampled_from([0.0, 5e-324, 1e-45, 1e-30, typical_max, *rare, 1e30, math.inf])))


def unit(closed=False, specials=()):
    """A hyperparameter in [0, 1) (or [0, 1])."""
    # open: just below 1, in float64 and float32 (1 - 2**-26 rounds to 1.0 in float32)
    top = [1.0] if closed else [0.9999999, 1.0 - 2.0 ** -24, 1.0 - 2.0 ** -26, 1.0 - 2.0 ** -53]
    return weighted((5, st.floats(0.0, 1.0, exclude_max=not closed)),
                    (2, st.sampled_from([0.0, 0.5, 0.9, 0.99, 0.999, *specials, *top])),
                    (2, st.sampled_from([5e-324, 1e-30, *top])))


LR = weighted((6, st.floats(1e-5, 2.0)), (2, st.sampled_from([1e-3, 0.01, 0.1, 1.0])),
              (1, st.sampled_from([0.0, 5e-324, 1e-40, 50.0, 1e30, 1e300, math.inf])))
EPS = weighted((6, st.floats(1e-12, 0.1)), (2, st.sampled_from([1e-8, 1e-6, 1e-10])),
               (1, st.sampled_from([0.0, 5e-324, 1e-45, 1e-40, 1.0, 1e30, math.inf])))
WEIGHT_DECAY = weighted((3, st.just(0.0)), (4, st.floats(0.0, 0.5)),
                        (1, st.sampled_from([1e-2, 5e-324, 1e-40, 1.0, 10.0, 1e30, math.inf])))
BETAS = st.tuples(unit(specials=[0.8]), unit(specials=[0.95]), st.booleans()).map(
    lambda b: list(b[:2]) if b[2] else b[:2])  # a tuple or a list, as torch
BOOL = st.booleans()
OPTIONAL_BOOL = st.sampled_from([None, False, True])  # foreach, fused: accepted and inert
FALSE = st.just(False)  # capturable, differentiable: True raises


def _sgd_fixup(hp):
    # "Nesterov momentum requires a momentum and zero dampening": keep Nesterov when there is a momentum
    if hp["nesterov"] and hp["momentum"] > 0:
        hp["dampening"] = 0.0 if hp["dampening"] != 0 else hp["dampening"]
    elif hp["nesterov"]:
        hp["nesterov"] = False
    return hp


# Per registry name: a strategy for every constructor keyword (test_hyperparameter_table_is_complete
# keeps this in step with the classes) over the range the class accepts, with its edges (0, inf, just
# below 1, subnormal), and a fixup for constraints between keywords. A registry row missing here is
# fuzzed with its own ``configs`` and a random lr (see ``draw_hyperparameters``).
ADAM_COMMON = dict(lr=LR, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY, amsgrad=BOOL, maximize=BOOL,
                   foreach=OPTIONAL_BOOL, capturable=FALSE, differentiable=FALSE, fused=OPTIONAL_BOOL)
HYPERPARAMETERS = {
    "SGD": (dict(lr=LR,
                 momentum=weighted((3, st.floats(0.0, 1.0)), (2, st.just(0.0)),
                                   (1, st.sampled_from([0.9, 0.99, 1.0, 1.5, 5e-324, 1e-40]))),
                 dampening=weighted((3, st.just(0.0)), (3, st.floats(0.0, 1.0)),
                                    (1, st.sampled_from([-0.0, 1.0, -0.5, 2.0, 1e30]))),
                 weight_decay=WEIGHT_DECAY, nesterov=BOOL, maximize=BOOL, foreach=OPTIONAL_BOOL,
                 differentiable=FALSE, fused=OPTIONAL_BOOL), _sgd_fixup),
    "Momentum": (dict(lr=LR, beta=unit()), None),
    "Adam": (dict(ADAM_COMMON, decoupled_weight_decay=BOOL), None),
    "AdamW": (dict(ADAM_COMMON), None),  # decoupled_weight_decay is always True
    "Adamax": (dict(lr=LR, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY, foreach=OPTIONAL_BOOL,
                    maximize=BOOL, differentiable=FALSE, capturable=FALSE), None),
    "NAdam": (dict(lr=LR, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY,
                   momentum_decay=nonnegative(0.1, rare=[4e-3, 1.0, 100.0, 1e4]), decoupled_weight_decay=BOOL,
                   foreach=OPTIONAL_BOOL, maximize=BOOL, capturable=FALSE, differentiable=FALSE), None),
    "Adagrad": (dict(lr=LR, lr_decay=nonnegative(0.5, rare=[1.0, 100.0]), weight_decay=WEIGHT_DECAY,
                     initial_accumulator_value=nonnegative(1.0, rare=[0.1, 1e10]), eps=EPS,
                     foreach=OPTIONAL_BOOL, maximize=BOOL, differentiable=FALSE, fused=OPTIONAL_BOOL),
                None),
    "Adadelta": (dict(lr=LR, rho=unit(closed=True), eps=EPS, weight_decay=WEIGHT_DECAY,
                      foreach=OPTIONAL_BOOL, capturable=FALSE, maximize=BOOL, differentiable=FALSE), None),
    "RMSprop": (dict(lr=LR, alpha=weighted((4, unit(specials=[0.99])), (1, st.sampled_from([1.0, 1.5, 10.0]))),
                     eps=EPS, weight_decay=WEIGHT_DECAY,
                     momentum=weighted((3, st.just(0.0)), (3, st.floats(0.0, 1.0)),
                                       (1, st.sampled_from([0.9, 1.0, 1.5, 5e-324]))),
                     centered=BOOL, capturable=FALSE, foreach=OPTIONAL_BOOL, maximize=BOOL,
                     differentiable=FALSE), None),
    "RAdam": (dict(lr=LR, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY, decoupled_weight_decay=BOOL,
                   foreach=OPTIONAL_BOOL, maximize=BOOL, capturable=FALSE, differentiable=FALSE), None),
    "Rprop": (dict(lr=LR,
                   etas=st.tuples(weighted((4, st.floats(1e-6, 1.0, exclude_min=True, exclude_max=True)),
                                           (1, st.sampled_from([5e-324, 0.5, 1.0 - 2.0 ** -53, 1.0 - 2.0 ** -26]))),
                                  weighted((4, st.floats(1.0, 10.0, exclude_min=True)),
                                           (1, st.sampled_from([1.0 + 2.0 ** -52, 1.2, 1e30, math.inf])))),
                   step_sizes=st.tuples(nonnegative(1e-3, rare=[1.0]), nonnegative(100.0, rare=[1e-6])),
                   capturable=FALSE, foreach=OPTIONAL_BOOL, maximize=BOOL, differentiable=FALSE), None),
    "ASGD": (dict(lr=LR, lambd=nonnegative(1.0, rare=[1e-4, 100.0]), alpha=nonnegative(2.0, rare=[0.75, 10.0]),
                  t0=weighted((3, st.floats(0.0, 50.0)), (1, st.sampled_from([1e6, -1.0, 0.0, math.inf]))),
                  weight_decay=WEIGHT_DECAY, foreach=OPTIONAL_BOOL, maximize=BOOL, differentiable=FALSE,
                  capturable=FALSE), None),
    "Lion": (dict(lr=LR, betas=BETAS, weight_decay=WEIGHT_DECAY, maximize=BOOL), None),
    "LAMB": (dict(lr=LR, bias_correction=BOOL, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY, grad_averaging=BOOL,
                  trust_clip=BOOL, always_adapt=BOOL, maximize=BOOL), None),
}


@functools.lru_cache(maxsize=None)
def _keywords(cls):
    return {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()
            if name not in ("self", "params", "backend") and p.default is not inspect.Parameter.empty}


def keywords(cls):
    """The constructor's hyperparameter keywords and their defaults."""
    return dict(_keywords(cls))


def draw_hyperparameters(draw, case):
    """A complete, valid set of hyperparameters for ``case``."""
    if case.name not in HYPERPARAMETERS:  # a new registry row: its own (valid) configs, with a random lr
        hp = dict(draw(st.sampled_from(list(case.configs.values()))))
        if "lr" in keywords(case.cls):
            hp["lr"] = draw(LR)
        return hp
    table, fixup = HYPERPARAMETERS[case.name]
    hp = {name: draw(strategy) for name, strategy in table.items()}
    return fixup(hp) if fixup else hp


def draw_partial_hyperparameters(draw, case, inherited):
    """Some keywords of a fresh valid draw (the rest comes from ``inherited``: the class defaults for
    the constructor, the constructor's values for a group), plus whatever the fixup had to change so
    the combination is valid. Returns (keywords to pass, the resulting complete values)."""
    full = draw_hyperparameters(draw, case)
    if case.name not in HYPERPARAMETERS:  # a config is valid over the class defaults, not over another
        passed = {**keywords(case.cls), **full} if draw(BOOL) else {}
        return passed, {**inherited, **passed}
    passed = {name: value for name, value in full.items() if draw(BOOL)}
    effective = {**inherited, **passed}
    fixup = HYPERPARAMETERS[case.name][1]
    if fixup:
        fixed = fixup(dict(effective))
        passed.update({name: value for name, value in fixed.items() if value is not effective[name]})
        effective = fixed
    return passed, effective


# ---------------------------------------------------------------------------------------------------
# arrays


def _special_values(dtype):
    fi = np.finfo(dtype)
    big, tiny, sub = float(fi.max), float(fi.tiny), float(fi.smallest_subnormal)
    return [math.nan, -math.nan, math.inf, -math.inf, 0.0, -0.0, big, -big, big / 2, math.sqrt(big) * 2,
            tiny, -tiny, sub, -sub, tiny / 4, 1.0, -1.0, float(fi.eps)]


SPECIALS = {np.dtype(t): _special_values(t) for t in (np.float32, np.float64)}
# 16-bit arrays are drawn in float32 and rounded (the specials of float32 become 16-bit inf, 0, ...)
SPECIAL_ARRAYS = {dtype: np.array(v, dtype=dtype) for dtype, v in SPECIALS.items()}
SPECIAL = {dtype: st.sampled_from(v) for dtype, v in SPECIALS.items()}
ELEMENT = {np.dtype(t): weighted((8, st.floats(-4.0, 4.0, width=w)), (1, SPECIAL[np.dtype(t)]),
                                 (1, st.floats(width=w, allow_nan=True, allow_infinity=True)))
           for t, w in ((np.float32, 32), (np.float64, 64))}
SEED = st.integers(0, 2 ** 32 - 1)
SCALE = st.sampled_from([1.0, 1e-3, 1e3, 1e-30, 1e30])
DENSITY = st.sampled_from([0.0, 0.0, 0.01, 0.3])
FEW = st.integers(0, 3)


def draw_values(draw, dtype, shape):
    """An array of ``shape``: ordinary values with occasional NaN, +-inf, -0.0, huge and subnormal
    ones. Up to SMALL elements each is drawn; larger arrays come from a drawn seed, scale and density
    of special values, plus a few special values at drawn positions."""
    dtype = np.dtype(dtype)
    if dtype.itemsize == 2:
        with np.errstate(over="ignore"):
            return draw_values(draw, np.float32, shape).astype(dtype)
    n = math.prod(shape)
    if n <= SMALL:
        return np.array([draw(ELEMENT[dtype]) for _ in range(n)], dtype=dtype).reshape(shape)
    rng = np.random.default_rng(draw(SEED))
    arr = (rng.standard_normal(n) * draw(SCALE)).astype(dtype)
    density = draw(DENSITY)
    if density:
        where = rng.random(n) < density
        arr[where] = rng.choice(SPECIAL_ARRAYS[dtype], size=int(where.sum()))
    for _ in range(draw(FEW)):
        arr[draw(st.integers(0, n - 1))] = draw(SPECIAL[dtype])
    return arr.reshape(shape)


TAIL_SIZES = [2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 129]


# above the threading threshold (up to ~2x, so 3 threads get work too), 1-D or 2-D
BIG_SHAPE = st.tuples(st.integers(PARALLEL_MIN, 2 * PARALLEL_MIN + 97), st.sampled_from([1, 1, 3, 16, 129])).map(
    lambda nc: (nc[0],) if nc[1] == 1 else (-(-nc[0] // nc[1]), nc[1]))
_ORDINARY_SHAPES = [
    (16, st.sampled_from(TAIL_SIZES).map(lambda n: (n,))),
    (12, st.sampled_from([(), (0,), (1,), (0, 3), (4, 0), (1, 1)])),
    (12, st.integers(1, 300).map(lambda n: (n,))),
    (12, st.tuples(st.integers(0, 9), st.integers(0, 13))),
    (4, st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 5))),
]
SHAPE = weighted(*_ORDINARY_SHAPES, (1, BIG_SHAPE))  # about 1 tensor in 57 is big
SMALL_SHAPE = weighted(*_ORDINARY_SHAPES)


# ---------------------------------------------------------------------------------------------------
# scenarios


@dataclasses.dataclass
class Step:
    """One ``opt.step(grads)``; before it, ``change = (group index, hyperparameters)`` updates a group
    and ``step_count`` sets every existing ``"step"`` counter (a resumed run)."""
    grads: list
    readonly: bool = False
    change: tuple = None
    step_count: float = None


@dataclasses.dataclass
class Scenario:
    """One fuzzed run: ``ctor`` (constructor keywords), ``groups`` (per group: its keywords and its
    parameters' initial values), ``steps``, and ``threads`` for the compiled backend."""
    ctor: dict
    groups: list
    steps: list
    threads: int


DTYPE_MODE = st.sampled_from(["float32", "float64", "float32", "float64", "mixed", "bfloat16", "float16",
                              "mixed16"])
DTYPE = st.sampled_from([np.float32, np.float64, BF16, F16])
DTYPE16 = st.sampled_from([np.float32, BF16, F16])  # "mixed16": no float64, so state_dtype fits
STATE = st.sampled_from([None, "float32", "bfloat16", "q8", "q4"])
def _with_seed(options):
    """Stochastic rounding always with a seed: without one each backend draws its own."""
    seed = options.pop("stochastic", None)
    return options if seed is None else {**options, "rounding": "stochastic", "seed": seed}


# the precision options that fit each dtype mode (docs/precision.md)
PRECISION = {
    "bfloat16": st.fixed_dictionaries({}, optional={"stochastic": SEED,
                                                   "master_weights": st.sampled_from(["split", "float32"]),
                                                   "state_dtype": STATE}).map(_with_seed),
    "float16": st.fixed_dictionaries({}, optional={"master_weights": st.just("float32"), "state_dtype": STATE}),
    "float32": st.fixed_dictionaries({}, optional={"stochastic": SEED, "state_dtype": STATE}).map(_with_seed),
    "mixed16": st.fixed_dictionaries({}, optional={"state_dtype": STATE}),
}
RARELY = weighted((4, st.just(False)), (1, st.just(True)))  # a hyperparameter change, read-only grads
NO_GRAD = weighted((5, st.just(False)), (1, st.just(True)))
STEP_COUNT = weighted((12, st.none()), (1, st.sampled_from([10.0, 1000.0, 1e6, 2.0 ** 24 - 2, 2.0 ** 24, 1e9,
                                                            2.0 ** 53])))
THREADS = st.integers(1, 3)
COIN = st.booleans()
# the options every optimizer takes: clipping fused into the step, skipping non-finite steps
STEP_OPTIONS = weighted((3, st.just({})), (2, st.fixed_dictionaries({}, optional={
    "max_grad_norm": weighted((3, st.floats(1e-3, 10.0)), (1, st.sampled_from([5e-324, 1e-30, 0.5, 1e30, 1e300]))),
    "norm_type": st.sampled_from([2.0, 1.0, math.inf, 3.0, 0.5]),
    "skip_nonfinite": st.booleans()})))


@st.composite
def scenarios(draw, case, big=True, force_big=False, max_groups=3, max_params=4, max_steps=5, changes=True):
    """A Scenario for ``case``: ``big`` allows (rare) tensors above the threading threshold,
    ``force_big`` makes the first one of them big."""
    dtype_mode = draw(DTYPE_MODE)
    ctor, ctor_values = draw_partial_hyperparameters(draw, case, keywords(case.cls))
    ctor = {**ctor, **draw(STEP_OPTIONS)}
    if dtype_mode in PRECISION and draw(COIN):
        ctor.update(draw(PRECISION[dtype_mode]))
    groups = []
    n_groups = draw(st.integers(1, max_groups))
    for k in range(n_groups):
        kwargs, _ = draw_partial_hyperparameters(draw, case, ctor_values)
        params = []
        for i in range(draw(st.integers(1, max_params))):
            dtype = (draw(DTYPE) if dtype_mode == "mixed" else draw(DTYPE16) if dtype_mode == "mixed16"
                     else BF16 if dtype_mode == "bfloat16" else np.dtype(dtype_mode))
            shape = draw(BIG_SHAPE if force_big and k == i == 0 else SHAPE if big else SMALL_SHAPE)
            params.append(draw_values(draw, dtype, shape))
        groups.append((kwargs, params))
    flat = [p for _, params in groups for p in params]
    steps = []
    for t in range(draw(st.integers(1, max_steps))):
        change = None
        if changes and case.name in HYPERPARAMETERS and t and draw(RARELY):
            change = (draw(st.integers(0, n_groups - 1)), draw_hyperparameters(draw, case))
        step_count = draw(STEP_COUNT) if changes else None
        readonly = draw(RARELY)
        grads = [None if draw(NO_GRAD) else draw_values(draw, p.dtype, p.shape) for p in flat]
        steps.append(Step(grads, readonly, change, step_count))
    return Scenario(ctor, groups, steps, draw(THREADS))


def run(case, scenario, backend, threads=None):
    """The scenario on fresh copies of its arrays; returns (parameters, optimizer)."""
    groups = [{"params": [p.copy() for p in params], **kwargs} for kwargs, params in scenario.groups]
    params = [p for group in groups for p in group["params"]]
    before = fastopt.get_num_threads()
    try:
        fastopt.set_num_threads(threads or scenario.threads)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            opt = case.cls(groups, backend=backend, **scenario.ctor)
            for t, step in enumerate(scenario.steps):
                if step.change is not None:
                    opt.param_groups[step.change[0]].update(step.change[1])
                if step.step_count is not None:
                    for state in opt.state.values():
                        if "step" in state:
                            state["step"][...] = step.step_count
                given_grads = [None if g is None else g.copy() for g in step.grads]
                for g in given_grads:
                    if g is not None:
                        g.flags.writeable = not step.readonly
                opt.step(given_grads)
                for i, (g, original) in enumerate(zip(given_grads, step.grads)):
                    if g is not None:
                        assert_bit_identical(g, original, f"{backend}: step {t} wrote into grads[{i}]")
    finally:
        fastopt.set_num_threads(before)
    return params, opt


# ---------------------------------------------------------------------------------------------------
# comparing


def assert_bit_identical(actual, expected, what):
    """Same dtype, shape and bits; NaN where the other is NaN (with any payload). -0.0 != +0.0.
    Quantized state: the same codes and absmax."""
    if isinstance(actual, Quantized) or isinstance(expected, Quantized):
        assert type(actual) is type(expected), f"{what}: {type(actual).__name__} vs {type(expected).__name__}"
        np.testing.assert_array_equal(actual.codes, expected.codes, err_msg=f"{what} codes", strict=True)
        assert_bit_identical(actual.absmax, expected.absmax, f"{what} absmax")
        return
    assert isinstance(actual, np.ndarray) and isinstance(expected, np.ndarray), \
        f"{what}: {type(actual).__name__} vs {type(expected).__name__}"
    np.testing.assert_array_equal(actual, expected, err_msg=what, strict=True)
    uint = {2: np.uint16, 4: np.uint32, 8: np.uint64}[actual.dtype.itemsize]
    a, b = actual.reshape(-1), expected.reshape(-1)
    differ = (a.view(uint) != b.view(uint)) & ~(np.isnan(a) & np.isnan(b))
    if differ.any():
        where = np.flatnonzero(differ)
        shown = ", ".join(f"[{i}] {a[i]!r} ({a.view(uint)[i]:#x}) vs {b[i]!r} ({b.view(uint)[i]:#x})"
                          for i in where[:5])
        raise AssertionError(f"{what}: {where.size} element(s) differ in their bits: {shown}")


def assert_same_result(first, second, labels):
    (p1, opt1), (p2, opt2) = first, second
    assert len(p1) == len(p2)
    for i, (a, b) in enumerate(zip(p1, p2)):
        assert_bit_identical(a, b, f"params[{i}] ({labels[0]} vs {labels[1]})")
    assert opt1.skipped_steps == opt2.skipped_steps, f"skipped_steps ({labels[0]} vs {labels[1]})"
    n1, n2 = opt1.last_grad_norm, opt2.last_grad_norm
    assert (n1 is None) == (n2 is None) and (n1 is None or n1 == n2 or (n1 != n1 and n2 != n2)), \
        f"last_grad_norm {n1!r} vs {n2!r} ({labels[0]} vs {labels[1]})"
    assert opt1.state.keys() == opt2.state.keys(), f"opt.state keys ({labels[0]} vs {labels[1]})"
    for i in opt1.state:
        s1, s2 = opt1.state[i], opt2.state[i]
        assert set(s1) == set(s2), f"opt.state[{i}] keys ({labels[0]} vs {labels[1]})"
        assert list(s1) == list(s2), f"opt.state[{i}] key order ({labels[0]} vs {labels[1]})"
        for key in s1:
            assert_bit_identical(s1[key], s2[key], f"opt.state[{i}][{key!r}] ({labels[0]} vs {labels[1]})")


# ---------------------------------------------------------------------------------------------------
# the properties


@pytest.mark.parametrize("case", CASE_PARAMS)
@fuzz_settings()
@given(data=st.data())
def test_backends_bit_identical(case, data):
    """The compiled kernels (1-3 threads) and the NumPy reference: the same bits everywhere."""
    scenario = data.draw(scenarios(case), label="scenario")
    compiled = run(case, scenario, "cython")
    reference = run(case, scenario, "numpy")
    assert_same_result(compiled, reference, (f"cython, {scenario.threads} thread(s)", "numpy"))


@pytest.mark.parametrize("case", CASE_PARAMS)
@fuzz_settings(0.25)
@given(data=st.data())
def test_thread_counts_bit_identical(case, data):
    """The compiled kernels on 1, 2 and 3 threads, with a tensor above the threading threshold."""
    scenario = data.draw(scenarios(case, force_big=True, max_steps=3), label="scenario")
    assert any(p.size >= PARALLEL_MIN for _, params in scenario.groups for p in params)
    one = run(case, scenario, "cython", threads=1)
    for n in (2, 3):
        assert_same_result(one, run(case, scenario, "cython", threads=n), ("1 thread", f"{n} threads"))


NUMPY_KINDS = {
    "np.float32": np.float32,
    "np.float64": np.float64,
    "0-d float32": lambda x: np.array(x, np.float32),
    "0-d float64": lambda x: np.array(x, np.float64),
    "float": float,
}


NUMPY_KIND = st.sampled_from(list(NUMPY_KINDS))


def as_numpy(draw, value):
    """``value`` (a drawn hyperparameter) as a NumPy scalar or 0-d array, sometimes left alone."""
    if isinstance(value, bool):
        return np.bool_(value) if draw(BOOL) else value
    if isinstance(value, (tuple, list)):
        return type(value)(as_numpy(draw, v) for v in value)
    if isinstance(value, float):
        with np.errstate(all="ignore"):
            return NUMPY_KINDS[draw(NUMPY_KIND)](value)
    return value


@st.composite
def numpy_hyperparameters(draw, scenario):
    """The scenario's constructor and group keywords, with NumPy scalars for Python floats and bools."""
    return ({k: as_numpy(draw, v) for k, v in scenario.ctor.items()},
            [{k: as_numpy(draw, v) for k, v in kwargs.items()} for kwargs, _ in scenario.groups])


def as_python(value):
    """The Python value the optimizer's checks see in a NumPy hyperparameter."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (tuple, list)):
        return type(value)(as_python(v) for v in value)
    if isinstance(value, (np.ndarray, np.floating)):
        return float(np.asarray(value).reshape(-1)[0])
    return value


@fuzz_settings(0.5)
@given(data=st.data())
def test_numpy_scalar_hyperparameters(data):
    """Hyperparameters given as NumPy scalars (np.float32, np.float64, 0-d arrays, np.bool_) give both
    backends the bits of the same values given as Python floats: the kernels take C doubles, and the
    reference must not compute in the scalar's precision. (The main property draws Python floats.)"""
    case = BY_NAME[data.draw(st.sampled_from([c.name for c in CASES]), label="optimizer")]
    scenario = data.draw(scenarios(case, big=False, max_groups=2, max_params=2, max_steps=2, changes=False),
                         label="scenario")
    ctor, group_kwargs = data.draw(numpy_hyperparameters(scenario), label="as NumPy (constructor, groups)")
    groups = [(kwargs, params) for kwargs, (_, params) in zip(group_kwargs, scenario.groups)]
    numpy_scenario = dataclasses.replace(scenario, ctor=ctor, groups=groups)
    python_scenario = dataclasses.replace(
        scenario, ctor={k: as_python(v) for k, v in ctor.items()},
        groups=[({k: as_python(v) for k, v in kwargs.items()}, params) for kwargs, params in groups])
    try:  # a float32 rounding can leave the valid range (a beta rounded up to 1.0): not this test's business
        case.cls([{"params": [np.zeros(1)], **kwargs} for kwargs, _ in python_scenario.groups],
                 **python_scenario.ctor)
    except ValueError:
        assume(False)
    compiled, reference = run(case, numpy_scenario, "cython"), run(case, numpy_scenario, "numpy")
    assert_same_result(compiled, run(case, python_scenario, "cython"), ("cython, NumPy scalars", "cython, floats"))
    assert_same_result(reference, run(case, python_scenario, "numpy"), ("numpy, NumPy scalars", "numpy, floats"))
    assert_same_result(compiled, reference, ("cython, NumPy scalars", "numpy, NumPy scalars"))


# ---------------------------------------------------------------------------------------------------
# the fuzzer's own coverage


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_hyperparameter_table_is_complete(case):
    """Every constructor keyword of every optimizer with a row in ``HYPERPARAMETERS`` is fuzzed (a
    registry row without one is fuzzed from its ``configs``)."""
    if case.name not in HYPERPARAMETERS:
        pytest.skip(f"{case.name} has no row in HYPERPARAMETERS: fuzzed from its registry configs")
    assert set(HYPERPARAMETERS[case.name][0]) == set(keywords(case.cls))
