"""Pure-NumPy reference implementations of every fastopt kernel.

Each function has the same signature, math and line order as its compiled twin in ``fastopt.kernels``
(1-D C-contiguous buffers of one dtype, updated in place; scalar state such as ``step`` passed as a
1-element buffer). ``backend="numpy"`` on any optimizer runs these instead of the kernels.
"""
from .adam import adam, adamax, nadam
from .rmsprop import adadelta, adagrad, rmsprop
from .sgd import momentum, sgd

__all__ = ["adadelta", "adagrad", "adam", "adamax", "momentum", "nadam", "rmsprop", "sgd"]
