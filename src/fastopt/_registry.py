"""One row per optimizer: the registry that drives the tests and the benchmarks.

Adding an optimizer means adding its row here; parity, conformance, error, state_dict and benchmark
suites then cover it without other edits, and a structure test fails for a public optimizer without a row.
"""
from dataclasses import dataclass, field

from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adamax import Adamax
from .asgd import ASGD
from .lamb import LAMB
from .lbfgs import LBFGS
from .lion import Lion
from .momentum import Momentum
from .nadam import NAdam
from .radam import RAdam
from .rmsprop import RMSprop
from .rprop import Rprop
from .schedulefree import ScheduleFreeAdamW
from .sgd import SGD


@dataclass(frozen=True)
class Case:
    """An optimizer under test.

    ``configs`` maps a label to constructor keywords; together they exercise every option (the first is
    the one benchmarks use). ``torch`` names the torch.optim class with the same semantics (None: no
    torch equivalent). ``buffers`` counts the arrays one step streams through for the first config
    (param, grad and state), which sizes the memory-floor kernel it is compared with. ``elementwise``:
    every element's update depends on that element only (False: LAMB's per-tensor trust ratio).
    """

    name: str
    cls: type
    kernel: str
    configs: dict = field(default_factory=dict)
    torch: str = None
    buffers: int = 2
    elementwise: bool = True


CASES = [
    Case("SGD", SGD, "sgd", torch="SGD", buffers=3, configs={
        "momentum": dict(lr=0.05, momentum=0.9),
        "plain": dict(lr=0.05),
        "dampening": dict(lr=0.05, momentum=0.9, dampening=0.3),
        "nesterov": dict(lr=0.05, momentum=0.9, nesterov=True),
        "weight_decay": dict(lr=0.05, momentum=0.5, weight_decay=0.1),
        "maximize": dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1, maximize=True),
    }),
    Case("Momentum", Momentum, "momentum", torch=None, buffers=3, configs={
        "default": dict(lr=0.05),
        "beta": dict(lr=0.1, beta=0.5),
    }),
    Case("Adam", Adam, "adam", torch="Adam", buffers=4, configs={
        "default": dict(lr=0.01),
        "amsgrad": dict(lr=0.01, amsgrad=True),
        "weight_decay": dict(lr=0.01, weight_decay=0.1),
        "decoupled": dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True),
        "betas": dict(lr=0.01, betas=(0.3, 0.9), eps=1e-3),
        "maximize": dict(lr=0.01, amsgrad=True, weight_decay=0.1, maximize=True),
    }),
    Case("AdamW", AdamW, "adam", torch="AdamW", buffers=4, configs={
        "default": dict(lr=0.01),
        "amsgrad": dict(lr=0.01, amsgrad=True, weight_decay=0.1),
        "maximize": dict(lr=0.01, maximize=True),
    }),
    Case("Adamax", Adamax, "adamax", torch="Adamax", buffers=4, configs={
        "default": dict(lr=0.01),
        "weight_decay": dict(lr=0.01, weight_decay=0.1, eps=1e-3),
        "maximize": dict(lr=0.01, betas=(0.5, 0.9), maximize=True),
    }),
    Case("NAdam", NAdam, "nadam", torch="NAdam", buffers=4, configs={
        "default": dict(lr=0.01),
        "weight_decay": dict(lr=0.01, weight_decay=0.1),
        "decoupled": dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True),
        "momentum_decay": dict(lr=0.01, momentum_decay=0.05, betas=(0.8, 0.99)),
        "maximize": dict(lr=0.01, maximize=True),
    }),
    Case("RAdam", RAdam, "radam", torch="RAdam", buffers=4, configs={
        "default": dict(lr=0.01),
        "weight_decay": dict(lr=0.01, weight_decay=0.1),
        "decoupled": dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True),
        "eps": dict(lr=2e-3, eps=1e-6, betas=(0.6, 0.9)),
        "maximize": dict(lr=0.01, weight_decay=0.1, maximize=True),
    }),
    Case("Rprop", Rprop, "rprop", torch="Rprop", buffers=4, configs={
        "default": dict(),
        "etas": dict(lr=2e-4, etas=(0.5, 1.5)),
        "step_sizes": dict(lr=0.5, step_sizes=(2e-6, 0.6)),
        "maximize": dict(maximize=True),
    }),
    Case("ASGD", ASGD, "asgd", torch="ASGD", buffers=3, configs={
        "default": dict(),
        "averaged": dict(lr=0.02, lambd=0.1, t0=3),
        "weight_decay": dict(weight_decay=0.1, t0=2, alpha=0.5),
        "maximize": dict(weight_decay=0.1, maximize=True),
    }),
    Case("Lion", Lion, "lion", torch=None, buffers=3, configs={
        "default": dict(lr=0.01),
        "weight_decay": dict(lr=0.01, weight_decay=0.1),
        "betas": dict(lr=0.01, betas=(0.5, 0.9), maximize=True),
    }),
    Case("LAMB", LAMB, "lamb", torch=None, buffers=4, elementwise=False, configs={
        "default": dict(lr=0.01),
        "no_decay": dict(lr=0.01, weight_decay=0.0),
        "trust_clip": dict(lr=0.01, weight_decay=0.0, always_adapt=True, trust_clip=True),
        "options": dict(lr=0.01, weight_decay=0.1, bias_correction=False, grad_averaging=False, betas=(0.5, 0.9),
                        eps=1e-4, maximize=True),
    }),
    Case("ScheduleFreeAdamW", ScheduleFreeAdamW, "sfadamw", torch=None, buffers=4, configs={
        "default": dict(lr=0.01),
        "warmup": dict(lr=0.01, warmup_steps=5, weight_decay=0.1),
        "weights": dict(lr=0.01, betas=(0.5, 0.99), r=1.0, weight_lr_power=1.0, eps=1e-6, maximize=True),
    }),
    Case("Adagrad", Adagrad, "adagrad", torch="Adagrad", buffers=3, configs={
        "default": dict(lr=0.05),
        "lr_decay": dict(lr=0.05, lr_decay=0.1),
        "weight_decay": dict(lr=0.05, weight_decay=0.1),
        "initial_accumulator": dict(lr=0.05, initial_accumulator_value=0.1, eps=1e-6),
        "maximize": dict(lr=0.05, maximize=True),
    }),
    Case("Adadelta", Adadelta, "adadelta", torch="Adadelta", buffers=4, configs={
        "default": dict(),
        "weight_decay": dict(lr=0.5, weight_decay=0.1),
        "rho": dict(rho=0.5, eps=1e-4),
        "maximize": dict(maximize=True),
    }),
    Case("RMSprop", RMSprop, "rmsprop", torch="RMSprop", buffers=3, configs={
        "default": dict(lr=0.01),
        "centered": dict(lr=0.01, centered=True),
        "momentum": dict(lr=0.01, momentum=0.9),
        "centered_momentum": dict(lr=0.01, centered=True, momentum=0.5),
        "weight_decay": dict(lr=0.01, alpha=0.9, weight_decay=0.1, maximize=True),
    }),
]

BY_NAME = {case.name: case for case in CASES}

# Optimizers whose step takes a closure (the loss and gradients at points of their own choosing) rather
# than this step's gradients: outside the kernel suites above, with their own (tests/test_lbfgs.py).
CLOSURE_CASES = [
    Case("LBFGS", LBFGS, None, torch="LBFGS", configs={
        "default": dict(),
        "strong_wolfe": dict(line_search_fn="strong_wolfe"),
        "history": dict(history_size=3, max_iter=7, line_search_fn="strong_wolfe"),
    }),
]
