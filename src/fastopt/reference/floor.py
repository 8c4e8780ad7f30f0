"""Pure-NumPy twin of ``fastopt/_kernels/floor.pyx``: the memory traffic of a step with no math."""
from ._util import Batch, run, tensors


def _floor(param, grad, s1, s2, s3, *, grad_scale=1.0):
    """``p += g`` and ``s += g`` for each given state buffer, on flat views."""
    for buf in (param, s1, s2, s3):
        if buf is not None:
            buf += grad


FLOOR_NAMES = ("params", "grads", "s1", "s2", "s3")


def floor_batch(params, grads, s1, s2, s3, check_overlap=True, indexed=True):
    """The checked work of a ``floor_group`` call, for ``run``."""
    if (s3 is not None and s2 is None) or (s2 is not None and s1 is None):
        raise ValueError("give the state buffers in order: s1, then s2, then s3")
    work = tensors(FLOOR_NAMES, (params, grads, s1, s2, s3), 2, check_overlap, indexed)
    return Batch(_floor, [args[1:] for args in work], {})


def floor(param, grad, s1=None, s2=None, s3=None, *, n_threads=1):
    """``p += g`` and ``s += g`` for each given state buffer (fill them in order: s1, s2, s3)."""
    run(floor_batch([param], [grad], *[None if s is None else [s] for s in (s1, s2, s3)], indexed=False),
        n_threads)


def floor_group(params, grads, s1=None, s2=None, s3=None, *, n_threads=1):
    """``floor`` on every tensor of a list."""
    run(floor_batch(params, grads, s1, s2, s3), n_threads)
