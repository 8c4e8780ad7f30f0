"""fastopt: machine-learning optimizers as fused, single-pass Cython kernels over NumPy arrays.

Every optimizer has torch.optim's name, arguments, defaults, state names and semantics; ``step(grads)``
updates NumPy parameters in place. ``backend="numpy"`` runs the pure-NumPy reference of the same math
(``fastopt.reference``); the compiled kernels are in ``fastopt.kernels``.
"""
from . import kernels, lr_scheduler, reference
from ._base import Optimizer
from ._config import __version__, get_num_threads, set_num_threads, show_config
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adamax import Adamax
from .asgd import ASGD
from .clip import clip_grad_norm_, clip_grad_value_, get_total_norm
from .ema import EMA
from .flat import FlatParams
from .lamb import LAMB
from .lbfgs import LBFGS
from .lion import Lion
from .minimize import OptimizeResult, minimize
from .momentum import Momentum
from .nadam import NAdam
from .radam import RAdam
from .rmsprop import RMSprop
from .rprop import Rprop
from .schedulefree import ScheduleFreeAdamW
from .sgd import SGD


__all__ = [
    "SGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "ASGD",
    "EMA",
    "FlatParams",
    "clip_grad_norm_",
    "clip_grad_value_",
    "get_total_norm",
    "Momentum",
    "OptimizeResult",
    "minimize",
    "NAdam",
    "RAdam",
    "Rprop",
    "LAMB",
    "LBFGS",
    "Lion",
    "ScheduleFreeAdamW",
    "Optimizer",
    "RMSprop",
    "kernels",
    "lr_scheduler",
    "reference",
    "get_num_threads",
    "set_num_threads",
    "show_config",
    "__version__",
]
