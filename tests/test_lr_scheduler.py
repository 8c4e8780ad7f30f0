"""fastopt.lr_scheduler: torch's schedulers (numbers, momentum/betas cycling, state_dicts, errors) on
fastopt's NumPy optimizers, exact resumption from checkpoints, and the texts' three schedules.

The torch comparisons run one recipe on a torch.optim optimizer with torch's scheduler and on a fastopt
NumPy optimizer with fastopt's (two param groups with different lrs), and compare every step's lr and
momentum / beta1. They skip without torch; everything else runs without it.
"""
import copy
import math
import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

import fastopt
from fastopt import lr_scheduler as fls

N = 300  # steps of the long runs


# ---------------------------------------------------------------------------------------------------
# optimizers: the same two-group setup in torch and in fastopt


def _grads(t):
    """The gradients of step t (the same for both libraries and for every run)."""
    return [np.array([math.sin(t), math.cos(0.5 * t), 0.25]), np.array([0.5 - math.sin(0.3 * t), 1.0, -0.75])]


def _groups(params):
    return [{"params": [params[0]]}, {"params": [params[1]], "lr": 0.05}]


def make_fastopt(kind):
    params = [np.zeros(3), np.zeros(3)]
    groups = _groups(params)
    if kind == "sgd":
        opt = fastopt.SGD(groups, lr=0.1, momentum=0.9)
    elif kind == "adam":
        opt = fastopt.Adam(groups, lr=0.1, betas=(0.9, 0.999))
    else:
        opt = fastopt.Adagrad(groups, lr=0.1)
    return opt, (lambda t: opt.step(_grads(t))), params


def make_torch(kind):
    import torch
    params = [torch.nn.Parameter(torch.zeros(3, dtype=torch.float64)) for _ in range(2)]
    groups = _groups(params)
    if kind == "sgd":
        opt = torch.optim.SGD(groups, lr=0.1, momentum=0.9)
    elif kind == "adam":
        opt = torch.optim.Adam(groups, lr=0.1, betas=(0.9, 0.999))
    else:
        opt = torch.optim.Adagrad(groups, lr=0.1)

    def step(t):
        for p, g in zip(params, _grads(t)):
            p.grad = torch.from_numpy(g)
        opt.step()
    return opt, step, params


def hyper(opt):
    """Every group's (lr, momentum, beta1)."""
    return [(g["lr"], g.get("momentum"), g["betas"][0] if "betas" in g else None) for g in opt.param_groups]


def torch_lr_scheduler():
    pytest.importorskip("torch")
    import torch.optim.lr_scheduler as tls
    return tls


# ---------------------------------------------------------------------------------------------------
# recipes: build(L, opt) with L either torch.optim.lr_scheduler or fastopt.lr_scheduler


class Warmup:
    """A callable object: torch (and fastopt) save its __dict__ in LambdaLR's state_dict."""

    def __init__(self, steps):
        self.steps = steps

    def __call__(self, e):
        return min(1.0, (e + 1) / self.steps)


class Wave:
    """A callable-object scale_fn for CyclicLR."""

    def __init__(self, depth):
        self.depth = depth

    def __call__(self, x):
        return 1.0 - self.depth * (1 - math.cos(x)) / 2


def _min_metric(t):
    return max(0.3, 1 - 0.01 * t) + 0.05 * ((t * 37) % 11) / 11


def _max_metric(t):
    return 2.0 - _min_metric(t)


class Recipe:
    def __init__(self, name, build, opt="sgd", steps=N, metric=None, epochs=None, torch=True):
        self.name, self.build, self.opt, self.steps = name, build, opt, steps
        self.metric, self.epochs, self.torch = metric, epochs, torch

    def step(self, sched, t):
        if self.metric is not None:
            sched.step(self.metric(t))
        elif self.epochs is not None:
            sched.step(self.epochs(t))
        else:
            sched.step()


R = Recipe
RECIPES = [
    R("LambdaLR-one", lambda L, o: L.LambdaLR(o, lambda e: 0.97 ** e)),
    R("LambdaLR-per-group", lambda L, o: L.LambdaLR(o, [lambda e: 1 / (1 + 0.05 * e),
                                                        lambda e: 0.5 if e % 20 < 10 else 1.0])),
    R("LambdaLR-callable-object", lambda L, o: L.LambdaLR(o, Warmup(40))),
    R("MultiplicativeLR-one", lambda L, o: L.MultiplicativeLR(o, lambda e: 0.99)),
    R("MultiplicativeLR-per-group", lambda L, o: L.MultiplicativeLR(o, [lambda e: 0.995,
                                                                        lambda e: 1.0 if e % 50 else 0.5])),
    R("StepLR", lambda L, o: L.StepLR(o, 30, 0.5)),
    R("StepLR-default-gamma", lambda L, o: L.StepLR(o, 7), opt="adam"),
    R("StepLR-epochs", lambda L, o: L.StepLR(o, 4, 0.8), epochs=lambda t: (t * 7) % 50),
    R("MultiStepLR-repeated", lambda L, o: L.MultiStepLR(o, [30, 80, 80, 150], 0.5)),
    R("MultiStepLR-triple", lambda L, o: L.MultiStepLR(o, [5, 5, 5, 200])),
    R("MultiStepLR-epochs", lambda L, o: L.MultiStepLR(o, [3, 9, 9, 20], 0.5), epochs=lambda t: (t * 5) % 31),
    R("ConstantLR-default", lambda L, o: L.ConstantLR(o)),
    R("ConstantLR", lambda L, o: L.ConstantLR(o, 0.5, 40)),
    R("ConstantLR-epochs", lambda L, o: L.ConstantLR(o, 0.25, 6), epochs=lambda t: (t * 3) % 13),
    R("LinearLR-default", lambda L, o: L.LinearLR(o)),
    R("LinearLR-warmup", lambda L, o: L.LinearLR(o, 0.1, 1.0, 50)),
    R("LinearLR-decay", lambda L, o: L.LinearLR(o, 1.0, 0.05, 100)),
    R("LinearLR-epochs", lambda L, o: L.LinearLR(o, 0.2, 0.9, 10), epochs=lambda t: (t * 3) % 17),
    R("ExponentialLR", lambda L, o: L.ExponentialLR(o, 0.98)),
    R("ExponentialLR-epochs", lambda L, o: L.ExponentialLR(o, 0.99), epochs=lambda t: (t * 11) % 97),
    R("PolynomialLR-default", lambda L, o: L.PolynomialLR(o)),
    R("PolynomialLR-square", lambda L, o: L.PolynomialLR(o, 100, 2.0)),
    R("PolynomialLR-sqrt", lambda L, o: L.PolynomialLR(o, 250, 0.5)),
    R("PolynomialLR-epochs", lambda L, o: L.PolynomialLR(o, 30, 1.5), epochs=lambda t: (t * 7) % 41),
    R("CosineAnnealingLR-oscillating", lambda L, o: L.CosineAnnealingLR(o, 50, 0.001)),
    R("CosineAnnealingLR-full", lambda L, o: L.CosineAnnealingLR(o, N)),
    R("CosineAnnealingLR-short", lambda L, o: L.CosineAnnealingLR(o, 7, 0.01), opt="adam"),
    R("CosineAnnealingLR-epochs", lambda L, o: L.CosineAnnealingLR(o, 20, 0.002), epochs=lambda t: (t * 3) % 45),
    R("CosineAnnealingWarmRestarts", lambda L, o: L.CosineAnnealingWarmRestarts(o, 10)),
    R("CosineAnnealingWarmRestarts-Tmult2", lambda L, o: L.CosineAnnealingWarmRestarts(o, 5, 2, 0.001)),
    R("CosineAnnealingWarmRestarts-Tmult3", lambda L, o: L.CosineAnnealingWarmRestarts(o, 3, 3)),
    R("CosineAnnealingWarmRestarts-fractional-epochs",
      lambda L, o: L.CosineAnnealingWarmRestarts(o, 3, 2, 0.0005), epochs=lambda t: t / 4),
    R("CosineAnnealingWarmRestarts-int-epochs",
      lambda L, o: L.CosineAnnealingWarmRestarts(o, 4, 1), epochs=lambda t: (t * 5) % 23),
    R("CyclicLR-triangular", lambda L, o: L.CyclicLR(o, 0.01, 0.1, 20)),
    R("CyclicLR-triangular2-betas", lambda L, o: L.CyclicLR(o, 0.001, 0.01, 10, 25, "triangular2"), opt="adam"),
    R("CyclicLR-exp_range", lambda L, o: L.CyclicLR(o, 0.01, 0.1, 15, mode="exp_range", gamma=0.995)),
    R("CyclicLR-scale_fn-cycle", lambda L, o: L.CyclicLR(o, 0.01, 0.1, 8, scale_fn=lambda x: 1 / x)),
    R("CyclicLR-scale_fn-iterations-betas",
      lambda L, o: L.CyclicLR(o, 0.01, 0.1, 12, 6, scale_fn=Wave(0.5), scale_mode="iterations"), opt="adam"),
    R("CyclicLR-no-momentum", lambda L, o: L.CyclicLR(o, 0.01, 0.1, 9, cycle_momentum=False), opt="adagrad"),
    R("CyclicLR-per-group", lambda L, o: L.CyclicLR(o, [0.01, 0.02], [0.1, 0.05], 11, base_momentum=[0.8, 0.85],
                                                    max_momentum=[0.9, 0.95])),
    R("OneCycleLR", lambda L, o: L.OneCycleLR(o, 1.0, total_steps=N)),
    R("OneCycleLR-three_phase-linear-betas",
      lambda L, o: L.OneCycleLR(o, 0.01, total_steps=N, anneal_strategy="linear", three_phase=True), opt="adam"),
    R("OneCycleLR-three_phase-cos", lambda L, o: L.OneCycleLR(o, 0.5, total_steps=N, three_phase=True)),
    R("OneCycleLR-epochs-per-group", lambda L, o: L.OneCycleLR(o, [0.5, 0.1], epochs=10, steps_per_epoch=30,
                                                              pct_start=0.25, base_momentum=[0.8, 0.85])),
    R("OneCycleLR-no-momentum", lambda L, o: L.OneCycleLR(o, 0.2, total_steps=N, cycle_momentum=False,
                                                          div_factor=10.0, final_div_factor=100.0),
      opt="adagrad"),
    R("SequentialLR-warmup-cosine", lambda L, o: L.SequentialLR(
        o, [L.LinearLR(o, 0.1, 1.0, 20), L.CosineAnnealingLR(o, 280, 1e-4)], [20])),
    R("SequentialLR-three", lambda L, o: L.SequentialLR(
        o, [L.ConstantLR(o, 0.5, 5), L.ExponentialLR(o, 0.97), L.StepLR(o, 20, 0.5)], [10, 100])),
    R("SequentialLR-lambda-restarts-poly", lambda L, o: L.SequentialLR(
        o, [L.LambdaLR(o, lambda e: (e + 1) / 10), L.CosineAnnealingWarmRestarts(o, 20, 2),
            L.PolynomialLR(o, 50, 2.0)], [10, 150])),
    R("SequentialLR-exp-cyclic", lambda L, o: L.SequentialLR(
        o, [L.ExponentialLR(o, 0.99), L.CyclicLR(o, 0.01, 0.1, 10)], [50])),
    R("SequentialLR-mult-onecycle-betas", lambda L, o: L.SequentialLR(
        o, [L.MultiplicativeLR(o, lambda e: 0.98), L.OneCycleLR(o, 1.0, total_steps=250)], [50]), opt="adam"),
    R("ChainedScheduler-two", lambda L, o: L.ChainedScheduler([L.ConstantLR(o, 0.5, 10), L.ExponentialLR(o, 0.99)])),
    R("ChainedScheduler-three", lambda L, o: L.ChainedScheduler(
        [L.LinearLR(o, 0.1, 1.0, 20), L.CosineAnnealingLR(o, N), L.MultiStepLR(o, [100, 200], 0.5)], o)),
    R("ReduceLROnPlateau-min-rel", lambda L, o: L.ReduceLROnPlateau(o, patience=10), metric=_min_metric),
    R("ReduceLROnPlateau-min-abs", lambda L, o: L.ReduceLROnPlateau(
        o, "min", 0.5, 3, 0.01, "abs", cooldown=2), metric=_min_metric),
    R("ReduceLROnPlateau-max-rel", lambda L, o: L.ReduceLROnPlateau(
        o, "max", 0.5, 5, min_lr=[0.001, 0.0005]), metric=_max_metric, opt="adam"),
    R("ReduceLROnPlateau-max-abs", lambda L, o: L.ReduceLROnPlateau(
        o, "max", 0.3, 2, 0.05, "abs", cooldown=5, min_lr=1e-3, eps=1e-3), metric=_max_metric),
    # the texts' three (fastopt only)
    R("PiecewiseConstantLR", lambda L, o: L.PiecewiseConstantLR(o, [10, 100, 200], [0.1, 0.05, 0.01, 0.001]),
      torch=False),
    R("PiecewiseConstantLR-per-group", lambda L, o: L.PiecewiseConstantLR(o, [50], [(0.2, 0.1), 0.01]),
      opt="adam", torch=False),
    R("ExponentialDecayLR", lambda L, o: L.ExponentialDecayLR(o, 0.01), torch=False),
    R("InverseTimeDecayLR", lambda L, o: L.InverseTimeDecayLR(o, 0.5, 0.1), torch=False),
    R("SequentialLR-texts", lambda L, o: L.SequentialLR(
        o, [L.LinearLR(o, 0.2, 1.0, 10), L.InverseTimeDecayLR(o, 1.0, 0.05)], [10]), torch=False),
]
TORCH_RECIPES = [pytest.param(r, id=r.name) for r in RECIPES if r.torch]
ALL_RECIPES = [pytest.param(r, id=r.name) for r in RECIPES]


def run(recipe, L, make, steps=None):
    """Build and run a recipe; returns (every step's hyper(opt), params, optimizer, scheduler)."""
    opt, step_opt, params = make(recipe.opt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = recipe.build(L, opt)
        out = [hyper(opt)]
        for t in range(1, (recipe.steps if steps is None else steps) + 1):
            step_opt(t)
            recipe.step(sched, t)
            out.append(hyper(opt))
    return out, params, opt, sched


# ---------------------------------------------------------------------------------------------------
# 1. torch parity


@pytest.mark.parametrize("recipe", TORCH_RECIPES)
def test_matches_torch(recipe):
    """Every step's lr and momentum/beta1 equal torch's exactly (the same arithmetic, in the same
    order), and so does the whole state_dict: same keys, same values."""
    tls = torch_lr_scheduler()
    ours, _, opt, sched = run(recipe, fls, make_fastopt)
    theirs, _, topt, tsched = run(recipe, tls, make_torch)
    assert len(ours) == len(theirs) == recipe.steps + 1
    for t, (a, b) in enumerate(zip(ours, theirs)):
        assert a == b, (t, a, b)
    assert sched.get_last_lr() == tsched.get_last_lr()
    for group, tgroup in zip(opt.param_groups, topt.param_groups):
        assert {k: v for k, v in group.items() if k != "params"}.keys() == \
            {k: v for k, v in tgroup.items() if k != "params"}.keys()
        assert group.get("initial_lr") == tgroup.get("initial_lr")
    if hasattr(tsched, "base_lrs"):
        assert sched.base_lrs == tsched.base_lrs
    ours_sd, theirs_sd = sched.state_dict(), tsched.state_dict()
    assert list(ours_sd) == list(theirs_sd)
    assert ours_sd == theirs_sd


def test_spec_test_vectors():
    """The vectors of spec/torch-optim.md section 6 (lr 0.1; the lr after 0..10 steps)."""
    def lrs(build, n=10, kind="sgd"):
        params = [np.zeros(2)]
        opt = fastopt.SGD(params, lr=0.1, momentum=0.9) if kind == "sgd" else fastopt.Adam(params, lr=0.1)
        sched = build(opt)
        out = [opt.param_groups[0]["lr"]]
        for _ in range(n):
            opt.step([np.ones(2)])
            sched.step()
            out.append(opt.param_groups[0]["lr"])
        return out, opt

    approx = lambda xs: pytest.approx(xs, rel=2e-3, abs=1e-6)  # noqa: E731
    assert lrs(lambda o: fls.StepLR(o, 3, 0.5))[0] == approx(
        [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125, 0.0125])
    assert lrs(lambda o: fls.MultiStepLR(o, [2, 5, 5], 0.1), 6)[0] == approx([0.1, 0.1, 0.01, 0.01, 0.01, 1e-4, 1e-4])
    assert lrs(lambda o: fls.ConstantLR(o, 1 / 3, 4), 5)[0] == approx([0.0333, 0.0333, 0.0333, 0.0333, 0.1, 0.1])
    assert lrs(lambda o: fls.LinearLR(o, 0.25, 1, 4), 5)[0] == approx([0.025, 0.04375, 0.0625, 0.08125, 0.1, 0.1])
    assert lrs(lambda o: fls.PolynomialLR(o, 5, 2), 7)[0] == approx([0.1, 0.064, 0.036, 0.016, 0.004, 0, 0, 0])
    assert lrs(lambda o: fls.CosineAnnealingLR(o, 4, 0.01))[0] == approx(
        [0.1, 0.08682, 0.055, 0.02318, 0.01, 0.02318, 0.055, 0.08682, 0.1, 0.08682, 0.055])
    assert lrs(lambda o: fls.CosineAnnealingWarmRestarts(o, 3, 2))[0] == approx(
        [0.1, 0.075, 0.025, 0.1, 0.0933, 0.075, 0.05, 0.025, 0.0067, 0.1, 0.0983])
    cyc, opt = lrs(lambda o: fls.CyclicLR(o, 0.01, 0.1, 2, 3), 6)
    assert cyc == approx([0.01, 0.055, 0.1, 0.07, 0.04, 0.01, 0.055])
    assert lrs(lambda o: fls.OneCycleLR(o, 1.0, total_steps=10))[0] == approx(
        [0.04, 0.52, 1, 0.9505, 0.8117, 0.6113, 0.3887, 0.1883, 0.0495, 4e-06, 0.0495])
    assert lrs(lambda o: fls.SequentialLR(o, [fls.LinearLR(o, 0.5, 1, 2), fls.ExponentialLR(o, 0.5)], [3]), 5)[0] \
        == approx([0.05, 0.075, 0.1, 0.1, 0.05, 0.025])
    assert lrs(lambda o: fls.ChainedScheduler([fls.ConstantLR(o, 0.5, 2), fls.ExponentialLR(o, 0.9)]), 3)[0] \
        == approx([0.05, 0.045, 0.081, 0.0729])
    # momentum of CyclicLR(0.01, 0.1, 2, 3): 0.9, 0.85, 0.8, 0.833, 0.867, 0.9
    params = [np.zeros(2)]
    opt = fastopt.SGD(params, lr=0.1, momentum=0.9)
    sched = fls.CyclicLR(opt, 0.01, 0.1, 2, 3)
    moms = [opt.param_groups[0]["momentum"]]
    for _ in range(5):
        sched.step()
        moms.append(opt.param_groups[0]["momentum"])
    assert moms == approx([0.9, 0.85, 0.8, 0.8333, 0.8667, 0.9])
    # ReduceLROnPlateau(factor=.5, patience=2, cooldown=1)
    opt = fastopt.SGD([np.zeros(2)], lr=0.1)
    sched = fls.ReduceLROnPlateau(opt, factor=0.5, patience=2, cooldown=1)
    out = []
    for m in [1, 1, 1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5]:
        sched.step(m)
        out.append(opt.param_groups[0]["lr"])
    assert out == approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.025])


def test_onecycle_past_total_steps_raises_like_torch():
    tls = torch_lr_scheduler()
    for L, make in ((fls, make_fastopt), (tls, make_torch)):
        opt, _, _ = make("sgd")
        sched = L.OneCycleLR(opt, 1.0, total_steps=10)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(10):
                sched.step()
            with pytest.raises(ValueError, match="Tried to step 11 times. The specified number of total steps is 10"):
                sched.step()


def _continue(recipe, L, make, saved_groups, saved_sched, start, stop):
    """A fresh optimizer and scheduler given the groups' hyperparameters and the scheduler state of
    step ``start`` (possibly from the other library); returns hyper(opt) of steps start..stop."""
    opt, step_opt, _ = make(recipe.opt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = recipe.build(L, opt)
        for group, saved in zip(opt.param_groups, saved_groups):
            group.update({k: v for k, v in saved.items() if k != "params"})
        sched.load_state_dict(copy.deepcopy(saved_sched))  # (torch's load_state_dict pops keys)
        out = [hyper(opt)]
        for t in range(start + 1, stop + 1):
            step_opt(t)
            recipe.step(sched, t)
            out.append(hyper(opt))
    return out


def test_state_dicts_cross_between_torch_and_fastopt():
    """The state_dicts have torch's keys and values, so a checkpoint crosses libraries both ways."""
    tls = torch_lr_scheduler()
    for recipe in RECIPES:
        if not recipe.torch or recipe.name.startswith(("LambdaLR-callable", "CyclicLR-scale_fn-iter")):
            continue
        full, _, _, _ = run(recipe, fls, make_fastopt, steps=60)
        _, _, topt, tsched = run(recipe, tls, make_torch, steps=25)
        _, _, opt, sched = run(recipe, fls, make_fastopt, steps=25)
        into_fastopt = _continue(recipe, fls, make_fastopt, topt.state_dict()["param_groups"],
                                 tsched.state_dict(), 25, 60)
        into_torch = _continue(recipe, tls, make_torch, opt.state_dict()["param_groups"], sched.state_dict(), 25, 60)
        assert into_fastopt == full[25:], recipe.name
        assert into_torch == full[25:], recipe.name


LAST_EPOCH = [
    lambda L, o, e: L.StepLR(o, 4, 0.5, last_epoch=e),
    lambda L, o, e: L.MultiStepLR(o, [3, 8, 8, 12], 0.5, last_epoch=e),
    lambda L, o, e: L.LambdaLR(o, lambda k: 0.9 ** k, last_epoch=e),
    lambda L, o, e: L.MultiplicativeLR(o, lambda k: 0.95, last_epoch=e),
    lambda L, o, e: L.ConstantLR(o, 0.5, 9, last_epoch=e),
    lambda L, o, e: L.LinearLR(o, 0.2, 1.0, 10, last_epoch=e),
    lambda L, o, e: L.ExponentialLR(o, 0.9, last_epoch=e),
    lambda L, o, e: L.PolynomialLR(o, 12, 2.0, last_epoch=e),
    lambda L, o, e: L.CosineAnnealingLR(o, 10, 0.01, last_epoch=e),
    lambda L, o, e: L.CosineAnnealingWarmRestarts(o, 4, 2, last_epoch=e),
    lambda L, o, e: L.CyclicLR(o, 0.01, 0.1, 5, last_epoch=e),
    lambda L, o, e: L.OneCycleLR(o, 1.0, total_steps=40, last_epoch=e),
]


@pytest.mark.parametrize("k", range(len(LAST_EPOCH)))
def test_last_epoch_resumption_like_torch(k):
    """The old way to resume: load the optimizer (its groups hold initial_lr), then build the
    scheduler with last_epoch=N. torch's semantics (off by one for some schedulers) are matched."""
    tls = torch_lr_scheduler()
    build = LAST_EPOCH[k]
    runs = []
    for L, make in ((fls, make_fastopt), (tls, make_torch)):
        opt, step_opt, _ = make("sgd")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sched = build(L, opt, -1)
            for t in range(1, 8):
                step_opt(t)
                sched.step()
            opt2, step_opt2, _ = make("sgd")
            opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
            sched2 = build(L, opt2, 7)
            out = [hyper(opt2)]
            for t in range(8, 30):
                step_opt2(t)
                sched2.step()
                out.append(hyper(opt2))
        runs.append((out, sched2.last_epoch, sched2.get_last_lr()))
    assert runs[0] == runs[1]


def test_tensor_lr_of_a_torch_optimizer_is_filled_in_place():
    """A torch optimizer with a Tensor lr: fastopt's schedulers fill it in place, as torch's do."""
    tls = torch_lr_scheduler()
    import torch
    seqs = []
    for L in (fls, tls):
        p = torch.nn.Parameter(torch.zeros(2))
        opt = torch.optim.SGD([p], lr=torch.tensor(0.1), momentum=0.9)
        lr_tensor = opt.param_groups[0]["lr"]
        sched = L.SequentialLR(opt, [L.LinearLR(opt, 0.5, 1.0, 4), L.CosineAnnealingLR(opt, 10)], [4])
        out = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(20):
                p.grad = torch.ones(2)
                opt.step()
                sched.step()
                out.append(float(opt.param_groups[0]["lr"]))
        assert opt.param_groups[0]["lr"] is lr_tensor
        assert isinstance(sched.get_last_lr()[0], torch.Tensor)
        assert sched.get_last_lr()[0] is not lr_tensor
        seqs.append(out)
    assert seqs[0] == seqs[1]


def test_same_error_messages_as_torch():
    tls = torch_lr_scheduler()
    cases = [
        lambda L, o: L.ConstantLR(o, factor=1.5),
        lambda L, o: L.LinearLR(o, start_factor=0),
        lambda L, o: L.LinearLR(o, end_factor=1.5),
        lambda L, o: L.LambdaLR(o, [lambda e: 1.0]),
        lambda L, o: L.MultiplicativeLR(o, 3),
        lambda L, o: L.CosineAnnealingWarmRestarts(o, 0),
        lambda L, o: L.CosineAnnealingWarmRestarts(o, 2.5),
        lambda L, o: L.CosineAnnealingWarmRestarts(o, 3, 0),
        lambda L, o: L.CosineAnnealingWarmRestarts(o, 3, 1, "0"),
        lambda L, o: L.CosineAnnealingWarmRestarts(o, 3).step(-1),
        lambda L, o: L.CyclicLR(o, 0.01, 0.1, mode="sine"),
        lambda L, o: L.CyclicLR(o, [0.01, 0.02, 0.03], 0.1),
        lambda L, o: L.CyclicLR(o, 0.01, [0.1]),
        lambda L, o: L.CyclicLR(o, 0.01, 0.1, base_momentum=[0.8]),
        lambda L, o: L.OneCycleLR(o, 1.0),
        lambda L, o: L.OneCycleLR(o, 1.0, total_steps=0),
        lambda L, o: L.OneCycleLR(o, 1.0, total_steps=2.5),
        lambda L, o: L.OneCycleLR(o, 1.0, epochs=0, steps_per_epoch=3),
        lambda L, o: L.OneCycleLR(o, 1.0, epochs=3, steps_per_epoch=-1),
        lambda L, o: L.OneCycleLR(o, 1.0, total_steps=10, pct_start=1.5),
        lambda L, o: L.OneCycleLR(o, 1.0, total_steps=10, pct_start=1),
        lambda L, o: L.OneCycleLR(o, 1.0, total_steps=10, anneal_strategy="exp"),
        lambda L, o: L.OneCycleLR(o, [1.0], total_steps=10),
        lambda L, o: L.SequentialLR(o, [], []),
        lambda L, o: L.SequentialLR(o, [L.ExponentialLR(o, 0.9), L.StepLR(o, 2)], [2, 4]),
        lambda L, o: L.SequentialLR(o, [L.ExponentialLR(o, 0.9), L.ReduceLROnPlateau(o)], [2]),
        lambda L, o: L.SequentialLR(o, [L.ExponentialLR(o, 0.9), object()], [2]),
        lambda L, o: L.ChainedScheduler([]),
        lambda L, o: L.ChainedScheduler([L.ExponentialLR(o, 0.9), L.ReduceLROnPlateau(o)]),
        lambda L, o: L.ChainedScheduler([L.ExponentialLR(o, 0.9), object()]),
        lambda L, o: L.ReduceLROnPlateau(o, factor=1.0),
        lambda L, o: L.ReduceLROnPlateau(o, mode="mean"),
        lambda L, o: L.ReduceLROnPlateau(o, threshold_mode="log"),
        lambda L, o: L.ReduceLROnPlateau(o, min_lr=[0.1, 0.2, 0.3]),
        lambda L, o: L.ExponentialLR(o, 0.9, last_epoch=5),
        lambda L, o: L.StepLR(o, 3, last_epoch=2),
    ]
    for i, case in enumerate(cases):
        outcomes = []
        for L, make in ((fls, make_fastopt), (tls, make_torch)):
            opt = make("sgd")[0]
            with pytest.raises(Exception) as info:
                case(L, opt)
            outcomes.append((type(info.value), str(info.value)))
        assert outcomes[0] == outcomes[1], (i, outcomes)
    # no momentum nor betas, cycle_momentum=True
    for L, make in ((fls, make_fastopt), (tls, make_torch)):
        with pytest.raises(ValueError, match="optimizer must support momentum or beta1 with `cycle_momentum`"):
            L.CyclicLR(make("adagrad")[0], 0.01, 0.1)
        with pytest.raises(ValueError, match="optimizer must support momentum or beta1 with `cycle_momentum`"):
            L.OneCycleLR(make("adagrad")[0], 0.1, total_steps=10)


def test_sequential_lr_resume_where_torch_gets_the_lr_wrong():
    """The checkpoint is loaded the common way: a fresh optimizer loads its state, then the
    schedulers are built and load theirs. torch 2.13's SequentialLR constructor rewrites the lrs
    (initial_lr, then the first child's initial step) and its load_state_dict does not restore them;
    its children are chainable, so the error stays until the next milestone."""
    tls = torch_lr_scheduler()

    def build(L, o):
        return L.SequentialLR(o, [L.LinearLR(o, 0.5, 1.0, 2), L.ExponentialLR(o, 0.5)], [3])

    recipe = Recipe("seq", build, steps=12)
    full, _, _, _ = run(recipe, tls, make_torch)   # uninterrupted torch == uninterrupted fastopt
    assert full == run(recipe, fls, make_fastopt)[0]
    results = {}
    for L, make in ((fls, make_fastopt), (tls, make_torch)):
        opt, step_opt, _ = make("sgd")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sched = build(L, opt)
            out = [hyper(opt)]
            for t in range(1, 6):
                step_opt(t)
                sched.step()
                out.append(hyper(opt))
            osd, ssd = pickle.loads(pickle.dumps(opt.state_dict())), pickle.loads(pickle.dumps(sched.state_dict()))
            opt2, step_opt2, _ = make("sgd")
            opt2.load_state_dict(osd)
            sched2 = build(L, opt2)
            sched2.load_state_dict(ssd)
            out[-1] = hyper(opt2)  # the lr the next optimizer step uses
            for t in range(6, 13):
                step_opt2(t)
                sched2.step()
                out.append(hyper(opt2))
        results[L] = out
    # uninterrupted, group 0: 0.05, 0.075, 0.1, 0.1, 0.05, 0.025 | 0.0125, 0.00625, ...
    # torch resumed:          0.05, 0.075, 0.1, 0.1, 0.05, 0.05  | 0.025,  0.0125, ...  (2x until the end)
    assert results[fls] == full
    assert [round(h[0][0], 6) for h in full[5:8]] == [0.025, 0.0125, 0.00625]


# ---------------------------------------------------------------------------------------------------
# 2. resuming from a checkpoint (fastopt only)


def _resume(recipe, k, mode, order="scheduler-first"):
    """k steps, checkpoint (pickled or deep-copied state_dicts), fresh optimizer and scheduler,
    load, continue: returns every step's hyper(opt), the lr used right after loading included."""
    opt, step_opt, params = make_fastopt(recipe.opt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = recipe.build(fls, opt)
        out = [hyper(opt)]
        for t in range(1, k + 1):
            step_opt(t)
            recipe.step(sched, t)
            out.append(hyper(opt))
        saved = {"opt": opt.state_dict(), "sched": sched.state_dict(), "params": params}
        saved = pickle.loads(pickle.dumps(saved)) if mode == "pickle" else copy.deepcopy(saved)
        for _ in range(3):  # the live objects go on: the checkpoint must not change
            step_opt(k + 1)
            recipe.step(sched, k + 1)
        opt2, step_opt2, params2 = make_fastopt(recipe.opt)
        for p, v in zip(params2, saved["params"]):
            p[...] = v
        if order == "optimizer-first":
            opt2.load_state_dict(saved["opt"])
            sched2 = recipe.build(fls, opt2)
        else:
            sched2 = recipe.build(fls, opt2)
            opt2.load_state_dict(saved["opt"])
        sched2.load_state_dict(saved["sched"])
        out[-1] = hyper(opt2)
        for t in range(k + 1, recipe.steps + 1):
            step_opt2(t)
            recipe.step(sched2, t)
            out.append(hyper(opt2))
    return out, params2, sched2


@pytest.mark.parametrize("recipe", ALL_RECIPES)
def test_resume_is_exact(recipe):
    full, params, _, sched = run(recipe, fls, make_fastopt)
    for k, mode in ((1, "pickle"), (recipe.steps // 3 + 1, "copy"), (recipe.steps - 7, "pickle")):
        out, params2, sched2 = _resume(recipe, k, mode)
        assert out == full, (k, mode)
        for a, b in zip(params, params2):
            np.testing.assert_array_equal(a, b)
        assert sched2.state_dict().keys() == sched.state_dict().keys()
        assert all(type(lr) is float for lr in sched2.get_last_lr())


SEQUENTIAL = [pytest.param(r, id=r.name) for r in RECIPES if r.name.startswith(("SequentialLR", "Chained"))]


@pytest.mark.parametrize("recipe", SEQUENTIAL)
def test_sequential_and_chained_resume_exactly_in_either_load_order(recipe):
    full = run(recipe, fls, make_fastopt)[0]
    for k in (3, 10, 11, 49, 50, 51, 120):
        assert _resume(recipe, k, "copy", "optimizer-first")[0] == full, k


def test_sequential_lr_last_epoch_replays_the_schedule():
    """SequentialLR(..., last_epoch=N) with fresh children: the state of step N (torch: epoch 0's lr)."""
    def build(o, last_epoch=-1):
        return fls.SequentialLR(o, [fls.LinearLR(o, 0.5, 1.0, 4), fls.ExponentialLR(o, 0.9)], [4], last_epoch)

    opt = make_fastopt("sgd")[0]
    sched = build(opt)
    for _ in range(9):
        sched.step()
    opt2 = make_fastopt("sgd")[0]
    sched2 = build(opt2, last_epoch=9)
    assert hyper(opt2) == hyper(opt)
    assert sched2.last_epoch == sched.last_epoch == 9
    sched.step()
    sched2.step()
    assert hyper(opt2) == hyper(opt)


def test_state_dict_is_a_plain_snapshot():
    opt = make_fastopt("sgd")[0]
    sched = fls.LambdaLR(opt, [lambda e: 0.9 ** e, Warmup(10)])
    sd = sched.state_dict()
    assert sd["lr_lambdas"] == [None, {"steps": 10}]
    before = copy.deepcopy(sd)
    sched.step()
    assert sd == before  # a snapshot
    pickle.dumps(sd)
    # a callable object's __dict__ is restored on load; the argument is not modified
    opt2 = make_fastopt("sgd")[0]
    warm = Warmup(99)
    sched2 = fls.LambdaLR(opt2, [lambda e: 0.9 ** e, warm])
    sched2.load_state_dict(sd)
    assert warm.steps == 10 and sd == before
    cyc = fls.CyclicLR(opt2, 0.01, 0.1, 5, scale_fn=Wave(0.25))
    assert cyc.state_dict()["_scale_fn_custom"] == {"depth": 0.25}
    assert fls.CyclicLR(opt2, 0.01, 0.1, 5, scale_fn=lambda x: 1.0).state_dict()["_scale_fn_custom"] is None

    def no_callables(value):
        if isinstance(value, dict):
            return all(no_callables(v) for v in value.values())
        if isinstance(value, (list, tuple)):
            return all(no_callables(v) for v in value)
        return not callable(value)

    for recipe in RECIPES:
        _, _, _, s = run(recipe, fls, make_fastopt, steps=5)
        assert no_callables(s.state_dict()), recipe.name


def test_group_values_are_python_floats():
    """fastopt's optimizers take float hyperparameters: NumPy arguments never reach the groups."""
    opt = make_fastopt("adam")[0]
    sched = fls.ChainedScheduler([fls.ExponentialLR(opt, np.float64(0.9)),
                                  fls.CyclicLR(opt, np.float32(0.01), np.float64(0.1), 3,
                                               base_momentum=np.float64(0.8), max_momentum=np.float64(0.9))])
    for t in range(1, 8):
        opt.step(_grads(t))
        sched.step()
        for group in opt.param_groups:
            assert type(group["lr"]) is float and type(group["betas"][0]) is float
            assert type(group["initial_lr"]) is float


def test_lr_scheduler_does_not_import_torch():
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastopt.__file__)))
    code = ("import sys, numpy as np, fastopt, fastopt.lr_scheduler as L; "
            "o = fastopt.SGD([np.zeros(2)], lr=0.1, momentum=0.9); s = L.OneCycleLR(o, 1.0, total_steps=5); "
            "s.step(); assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True, timeout=120)


def test_base_class_and_alias():
    assert issubclass(fls._LRScheduler, fls.LRScheduler)
    for name in fls.__all__:
        cls = getattr(fls, name)
        assert issubclass(cls, fls.LRScheduler) and cls.__doc__, name
    opt = make_fastopt("sgd")[0]
    sched = fls.StepLR(opt, 2)
    assert [g["initial_lr"] for g in opt.param_groups] == sched.base_lrs == [0.1, 0.05]
    assert sched.last_epoch == 0 and sched.get_last_lr() == [0.1, 0.05]
    with pytest.warns(UserWarning, match="please use `get_last_lr\\(\\)`"):
        sched.get_lr()
    with pytest.warns(UserWarning, match="The epoch parameter in `scheduler.step\\(\\)`"):
        sched.step(4)
    assert sched.get_last_lr() == [0.1 * 0.1 ** 2, 0.05 * 0.1 ** 2]


# ---------------------------------------------------------------------------------------------------
# 3. the texts' three schedules


def _texts(opt, i):
    """The i-th of the texts' schedules, built on ``opt``."""
    return [lambda: fls.PiecewiseConstantLR(opt, [3, 7], [0.5, 0.25, 0.125]),
            lambda: fls.ExponentialDecayLR(opt, 0.5),
            lambda: fls.InverseTimeDecayLR(opt, 0.5, 1.0)][i]()


EXPECTED = {  # t = 0..8 for lr0 = 0.1 (group 0); every value exact
    "PiecewiseConstantLR": [0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.125, 0.125],
    "ExponentialDecayLR": [0.1 * math.exp(-0.5 * t) for t in range(9)],
    "InverseTimeDecayLR": [0.1 * (t + 1) ** -0.5 for t in range(9)],
}


def test_texts_closed_forms():
    assert EXPECTED["ExponentialDecayLR"][2] == pytest.approx(0.03678794411714424, rel=1e-15)
    assert EXPECTED["InverseTimeDecayLR"][3] == 0.05 and EXPECTED["InverseTimeDecayLR"][8] == 0.1 / 3
    for i in range(3):
        opt, step_opt, _ = make_fastopt("sgd")
        sched = _texts(opt, i)
        name = type(sched).__name__
        out = [opt.param_groups[0]["lr"]]
        for t in range(1, 9):
            step_opt(t)
            sched.step()
            out.append(opt.param_groups[0]["lr"])
        assert out == EXPECTED[name], name
        assert all(type(lr) is float for lr in out)
        assert sched.last_epoch == 8 and sched.get_last_lr()[0] == out[-1]
    # two groups: lr0 per group; t = 0 is lr0
    opt = make_fastopt("adam")[0]
    sched = fls.InverseTimeDecayLR(opt, 1.0, 0.5)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.05]
    sched.step()
    sched.step()
    assert [g["lr"] for g in opt.param_groups] == [0.05, 0.025]
    # step(epoch): the closed form at that t
    opt = make_fastopt("sgd")[0]
    sched = fls.ExponentialDecayLR(opt, 0.5)
    with pytest.warns(UserWarning):
        sched.step(6)
    assert opt.param_groups[0]["lr"] == EXPECTED["ExponentialDecayLR"][6]
    opt = make_fastopt("sgd")[0]
    sched = fls.PiecewiseConstantLR(opt, [2], [[0.3, 0.2], [0.03, 0.02]])
    assert [g["lr"] for g in opt.param_groups] == [0.3, 0.2]
    sched.step(), sched.step()
    assert [g["lr"] for g in opt.param_groups] == [0.03, 0.02]


@pytest.mark.parametrize("flavour", ["torch.optim", "fastopt.torch"])
def test_texts_on_torch_optimizers(flavour):
    torch = pytest.importorskip("torch")
    if flavour == "fastopt.torch":
        import fastopt.torch as ftorch
        make = lambda params: ftorch.SGD(params, lr=0.1)  # noqa: E731
    else:
        make = lambda params: torch.optim.SGD(params, lr=0.1)  # noqa: E731
    for i in range(3):
        p = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
        opt = make([p])
        sched = _texts(opt, i)
        name = type(sched).__name__
        expected_p = torch.zeros(2, dtype=torch.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for t in range(9):
                assert opt.param_groups[0]["lr"] == EXPECTED[name][t], (name, t)
                p.grad = torch.ones(2, dtype=torch.float64)
                opt.step()
                expected_p -= EXPECTED[name][t]  # the optimizer step used the scheduled lr
                sched.step()
        torch.testing.assert_close(p.detach(), expected_p, rtol=1e-14, atol=0)
        # a checkpoint of the torch optimizer and of the scheduler resumes exactly
        osd, ssd = copy.deepcopy(opt.state_dict()), pickle.loads(pickle.dumps(sched.state_dict()))
        p2 = torch.nn.Parameter(p.detach().clone())
        opt2 = make([p2])
        sched2 = _texts(opt2, i)
        opt2.load_state_dict(osd)
        sched2.load_state_dict(ssd)
        assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"] == sched.get_last_lr()[0]
        for _ in range(3):
            sched.step()
            sched2.step()
            assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    # a Tensor lr is filled in place
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([p], lr=torch.tensor(0.1))
    lr = opt.param_groups[0]["lr"]
    sched = fls.InverseTimeDecayLR(opt, 0.5, 1.0)
    sched.step()
    assert opt.param_groups[0]["lr"] is lr and float(lr) == pytest.approx(0.1 / math.sqrt(2))


# ---------------------------------------------------------------------------------------------------
# 4. errors (fastopt's own checks; torch's messages are compared above)


def test_errors():
    opt = make_fastopt("sgd")[0]
    constructors = [lambda o: fls.StepLR(o, 3), lambda o: fls.LambdaLR(o, lambda e: 1.0),
                    lambda o: fls.MultiplicativeLR(o, lambda e: 1.0), lambda o: fls.MultiStepLR(o, [2]),
                    lambda o: fls.ConstantLR(o), lambda o: fls.LinearLR(o), lambda o: fls.ExponentialLR(o, 0.9),
                    lambda o: fls.PolynomialLR(o), lambda o: fls.CosineAnnealingLR(o, 3),
                    lambda o: fls.CosineAnnealingWarmRestarts(o, 3), lambda o: fls.CyclicLR(o, 0.01, 0.1),
                    lambda o: fls.OneCycleLR(o, 1.0, 10), lambda o: fls.ReduceLROnPlateau(o),
                    lambda o: fls.SequentialLR(o, [], []), lambda o: fls.PiecewiseConstantLR(o, [], [0.1]),
                    lambda o: fls.ExponentialDecayLR(o, 0.1), lambda o: fls.InverseTimeDecayLR(o, 1, 1)]
    for make in constructors:
        for bad in (object(), [np.zeros(2)], None):
            with pytest.raises(TypeError, match="is not an Optimizer"):
                make(bad)
    with pytest.raises(TypeError, match="is not an Optimizer"):
        fls.ChainedScheduler([fls.StepLR(opt, 3)], optimizer=object())
    with pytest.raises(KeyError, match="param 'initial_lr' is not specified in param_groups\\[0\\]"):
        fls.PiecewiseConstantLR(make_fastopt("sgd")[0], [2], [0.1, 0.01], last_epoch=3)
    with pytest.raises(TypeError, match="lr_lambda should be a function, but got float"):
        fls.LambdaLR(opt, 0.5)  # torch accepts it, then fails at its first step
    with pytest.raises(ValueError, match="Expected positive step_size, but got 0"):
        fls.StepLR(opt, 0)
    with pytest.raises(ValueError, match="Expected non-zero T_max"):
        fls.CosineAnnealingLR(opt, 0)
    with pytest.raises(ValueError, match="Expected positive step_size_up, but got 0"):
        fls.CyclicLR(opt, 0.01, 0.1, 0)
    with pytest.raises(ValueError, match="boundaries must be strictly increasing, but boundaries\\[1\\] = 5 and "
                                         "boundaries\\[2\\] = 5"):
        fls.PiecewiseConstantLR(opt, [2, 5, 5], [0.1, 0.05, 0.01, 0.001])
    with pytest.raises(ValueError, match="boundaries must be strictly increasing"):
        fls.PiecewiseConstantLR(opt, [5, 2], [0.1, 0.05, 0.01])
    with pytest.raises(ValueError, match="values must have one more entry than boundaries, but got 2 values and "
                                         "2 boundaries"):
        fls.PiecewiseConstantLR(opt, [2, 5], [0.1, 0.05])
    with pytest.raises(ValueError, match="values\\[1\\] must be a number or have one lr per param group \\(2\\)"):
        fls.PiecewiseConstantLR(opt, [2], [0.1, [0.05]])
    with pytest.raises(ValueError, match="Expected values\\[0\\] >= 0"):
        fls.PiecewiseConstantLR(opt, [2], [-0.1, 0.05])
    with pytest.raises(TypeError, match="boundaries\\[0\\] must be a real number, got str"):
        fls.PiecewiseConstantLR(opt, ["2"], [0.1, 0.05])
    with pytest.raises(ValueError, match="Expected decay >= 0, but got -0.1"):
        fls.ExponentialDecayLR(opt, -0.1)
    with pytest.raises(TypeError, match="decay must be a real number, got str"):
        fls.ExponentialDecayLR(opt, "0.1")
    with pytest.raises(ValueError, match="decay must be finite"):
        fls.ExponentialDecayLR(opt, math.nan)
    with pytest.raises(ValueError, match="Expected alpha >= 0, but got -1"):
        fls.InverseTimeDecayLR(opt, -1, 1)
    with pytest.raises(ValueError, match="Expected beta >= 0, but got -0.5"):
        fls.InverseTimeDecayLR(opt, 1, -0.5)
    with pytest.raises(TypeError, match="state_dict must be a dict, got list"):
        fls.StepLR(opt, 3).load_state_dict([])
    # rejected constructors leave the lrs alone
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.05]
