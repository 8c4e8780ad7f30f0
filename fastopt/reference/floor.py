"""Pure-NumPy twin of ``fastopt/_kernels/floor.pyx``: the memory traffic of a step with no math."""
from ._util import check_dtypes, check_size, tensors


def floor(param, grad, s1=None, s2=None, s3=None, *, n_threads=1):
    """``p += g`` and ``s += g`` for each given state buffer (fill them in order: s1, s2, s3)."""
    if (s3 is not None and s2 is None) or (s2 is not None and s1 is None):
        raise ValueError("give the state buffers in order: s1, then s2, then s3")
    check_dtypes(param, grad=grad, s1=s1, s2=s2, s3=s3)
    for buf, name in ((grad, "grad"), (s1, "s1"), (s2, "s2"), (s3, "s3")):
        if buf is not None:
            check_size(param.size, buf, name)
    for buf in (param, s1, s2, s3):
        if buf is not None:
            buf += grad


def floor_group(params, grads, s1=None, s2=None, s3=None, *, n_threads=1):
    """``floor`` on every tensor of a list."""
    if (s3 is not None and s2 is None) or (s2 is not None and s1 is None):
        raise ValueError("give the state buffers in order: s1, then s2, then s3")
    for _, *args in tensors(params, grads, s1=s1, s2=s2, s3=s3):
        floor(*args)
