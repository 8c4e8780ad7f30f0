"""The compiled fused kernels, one function per update rule, from the instruction-set variant chosen at
import (``fastopt.show_config()`` says which).

Same signatures as their pure-NumPy twins in ``fastopt.reference``. ``adam(param, grad, step, ...)``
updates one tensor (C-contiguous arrays of one dtype and the param's size); ``adam_group(params, grads,
steps, ...)`` updates a list of tensors in one call (a None gradient skips its tensor); both check every
array, its size and writability, and that no written array shares memory with another, before anything
is written. Scalar state (``step``, ``mu_product``) is a 1-element array, hyperparameters are keywords,
``n_threads`` caps the threads of fastopt's pool (the caller works too); the GIL is released in every
large call. ``adam_batch`` checks a group call and returns its work items; ``run(batches, n_threads)``
executes several as one job (an optimizer step: every group checked before any is written), its
``grad_scale`` multiplying every gradient as it is read (a clip coefficient). ``grad_norm(grads,
norm_type)`` is the norm of a list of gradients, in one deterministic read pass. ``floor``
and ``floor_group`` are the memory-floor kernels the benchmarks compare against (a step's traffic, no
math).
"""
from . import _kernel_docs
from ._kernels import modules as _modules
from ._kernels._runtime import Batch, attach, run

__all__ = [
    "adadelta", "adadelta_group", "adagrad", "adagrad_group", "adam", "adam_group", "adamax",
    "adamax_group", "asgd", "asgd_group", "ema_update", "floor", "floor_group", "grad_norm", "lamb", "lamb_group",
    "lion", "lion_group", "momentum", "momentum_group", "nadam", "nadam_group", "radam", "radam_group", "rmsprop", "rmsprop_group",
    "rprop", "rprop_group", "sfadamw", "sfadamw_group", "sgd", "sgd_group",
]

# ``<rule>_batch`` (checked work items) and ``run`` (one job for several batches) are what the optimizers
# call: every group of a step is checked before ``run`` writes anything.
_BATCHES = [name[:-len("_group")] + "_batch" for name in __all__ if name.endswith("_group")]
_where = {name: module for module in _modules.values() for name in __all__ + _BATCHES if hasattr(module, name)}
globals().update({name: getattr(_where[name], name) for name in __all__ + _BATCHES})
_kernel_docs.document(globals(), __name__)
