"""Pure-NumPy reference implementations of every fastopt kernel.

Each function has the same signature, math and line order as its compiled twin in ``fastopt.kernels``
(``adam`` on one tensor's 1-D C-contiguous buffers of one dtype, updated in place, scalar state such as
``step`` passed as a 1-element buffer; ``adam_group`` on lists of tensors; ``adam_batch`` checks a list
and returns its work for ``run``). ``n_threads`` is checked and ignored. ``backend="numpy"`` on any optimizer runs these instead of the kernels.
"""
from ._util import Batch, attach, run
from .tools import ema_update, grad_norm
from .adam import (adam, adam_batch, adam_group, adamax, adamax_batch, adamax_group, lamb, lamb_batch, lamb_group,
                   nadam, nadam_batch, nadam_group, radam, radam_batch, radam_group, sfadamw, sfadamw_batch, sfadamw_group)
from .floor import floor, floor_batch, floor_group
from .rmsprop import (adadelta, adadelta_batch, adadelta_group, adagrad, adagrad_batch, adagrad_group, rmsprop,
                      rmsprop_batch, rmsprop_group)
from .sgd import (asgd, asgd_batch, asgd_group, lion, lion_batch, lion_group, momentum, momentum_batch,
                  momentum_group, rprop, rprop_batch, rprop_group, sgd, sgd_batch, sgd_group)

__all__ = [
    "adadelta", "adadelta_group", "adagrad", "adagrad_group", "adam", "adam_group", "adamax",
    "adamax_group", "asgd", "asgd_group", "ema_update", "floor", "floor_group", "grad_norm", "lamb", "lamb_group",
    "lion", "lion_group", "momentum", "momentum_group", "nadam", "nadam_group", "radam", "radam_group", "rmsprop", "rmsprop_group",
    "rprop", "rprop_group", "sfadamw", "sfadamw_group", "sgd", "sgd_group",
]

from .._kernel_docs import document as _document

_document(globals(), __name__)
