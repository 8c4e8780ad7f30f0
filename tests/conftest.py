"""Shared fixtures. The tests run against the *installed* fastopt (pytest's importlib mode keeps the bare
source folder off sys.path); a fastopt without its compiled kernels fails here, loudly, not per test."""
import numpy as np
import pytest

try:
    import fastopt
    import fastopt._kernels  # noqa: F401  (loads the compiled kernel variant for this CPU)
except ImportError as exc:  # pragma: no cover - a broken install
    raise ImportError(
        f"fastopt's compiled kernels do not import ({exc}). Install it first: pip install '.[test]' "
        "(or build in place: python setup.py build_ext --inplace)") from exc

from _helpers import DTYPES


@pytest.fixture(params=DTYPES, ids=lambda d: np.dtype(d).name)
def dtype(request):
    return request.param
