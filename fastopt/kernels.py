"""The compiled fused kernels, one function per update rule.

Same signatures as their pure-NumPy twins in ``fastopt.reference``: 1-D C-contiguous float32 or float64
buffers of one dtype, updated in place, scalar state (``step``, ``mu_product``) as a 1-element buffer,
hyperparameters as keywords. The GIL is released inside every loop.
"""
from ._kernels.adam import adam, adamax, nadam
from ._kernels.rmsprop import adadelta, adagrad, rmsprop
from ._kernels.sgd import momentum, sgd

__all__ = ["adadelta", "adagrad", "adam", "adamax", "momentum", "nadam", "rmsprop", "sgd"]
