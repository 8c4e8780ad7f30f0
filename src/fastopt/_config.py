"""Threads and build configuration: ``set_num_threads``, ``get_num_threads``, ``show_config``."""
import os
import platform

import numpy as np

from . import _kernels

from ._kernels import _runtime

__version__ = "0.1.0"  # fastopt.__version__ (pyproject.toml has the same)

_BUILD = {**_kernels.modules["adam"].BUILD, **_runtime.BUILD}


def _threads_from(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a positive int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return int(value)


def _default_threads():
    env = os.environ.get("FASTOPT_NUM_THREADS", "").strip()
    if env:
        try:
            return _threads_from(int(env), "FASTOPT_NUM_THREADS")
        except ValueError:
            raise ValueError(f"FASTOPT_NUM_THREADS must be a positive int, got {env!r}") from None
    try:
        return len(os.sched_getaffinity(0))  # the CPUs this process may use
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_num_threads = _default_threads()


def set_num_threads(n):
    """Use up to ``n`` threads per step, the calling thread included.

    The default is the CPUs this process may use (its affinity), or ``FASTOPT_NUM_THREADS`` when set.
    Steps over fewer than ``parallel_min_elements`` elements (``show_config``) stay on the calling thread;
    results are bit-identical for any thread count. Every optimizer, clip and EMA call reads it.

    Parameters
    ----------
    n : int
        The most threads per step, >= 1 (a bool or a float is a TypeError, 0 a ValueError).

    Examples
    --------
    >>> import fastopt
    >>> previous = fastopt.get_num_threads()
    >>> fastopt.set_num_threads(1)
    >>> fastopt.get_num_threads()
    1
    >>> fastopt.set_num_threads(previous)
    """
    global _num_threads
    _num_threads = _threads_from(n, "n")


def get_num_threads():
    """The threads a step may use, the calling thread included (``set_num_threads``).

    Returns
    -------
    int
        At least 1.

    Examples
    --------
    >>> import fastopt
    >>> fastopt.get_num_threads() >= 1
    True
    """
    return _num_threads


def show_config(file=None):
    """Print and return what this fastopt runs: the kernel variant chosen for this CPU (and why), the
    variants built, threads, compiler and flags.

    Parameters
    ----------
    file : file-like, default None
        Where to print (None: ``sys.stdout``).

    Returns
    -------
    dict
        The printed values by key: ``isa`` (the variant running: baseline, avx2 or avx512),
        ``isa_selected_by``, ``cpu_supports``, ``built``, ``num_threads``, ``threads``,
        ``parallel_min_elements``, ``compiler``, ``cflags``, and the fastopt, numpy and Python versions.

    Examples
    --------
    >>> import io
    >>> import fastopt
    >>> config = fastopt.show_config(file=io.StringIO())
    >>> config["isa"] in config["built"], config["isa"] in config["cpu_supports"]
    (True, True)
    """
    forced = os.environ.get("FASTOPT_ISA", "").strip().lower() or None
    config = {
        "fastopt": __version__,
        "isa": _kernels.ISA,
        "isa_selected_by": f"FASTOPT_ISA={forced}" if forced else "best the CPU supports",
        "cpu_supports": _kernels.supported(),
        "built": list(_kernels.BUILT),
        "num_threads": get_num_threads(),
        "threads": _BUILD["threads"],
        "parallel_min_elements": _BUILD["parallel_min"],
        "compiler": _BUILD["compiler"],
        "cflags": _BUILD["cflags"],
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    width = max(map(len, config))
    for key, value in config.items():
        print(f"{key:<{width}}  {', '.join(value) if isinstance(value, list) else value}", file=file)
    return config
