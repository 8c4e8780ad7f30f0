"""Exponential moving average of parameters (weight EMA), one fused pass per update.

    ema = fastopt.EMA(params, decay=0.999)
    for ...:
        opt.step(grads)
        ema.update()              # shadow = decay * shadow + (1 - decay) * param, every array at once
    ema.copy_to()                 # evaluate with the averaged weights (copies them into the params)

The update is torch's ``lerp_`` of the shadow toward the parameter with weight ``1 - decay`` (as
``torch.optim.swa_utils.get_ema_multi_avg_fn`` and timm's ``ModelEmaV3``), in place, in one compiled
job over all the arrays. With ``warmup=True`` the decay of update ``t`` (counting from 0) is
``min(decay, 1 - (1 + t / warmup_gamma) ** -warmup_power)``, at least ``min_decay``, as timm's: early
averages follow the parameters closely.
"""
import numpy as np

from . import _validation as check
from . import kernels, reference
from ._config import get_num_threads

__all__ = ["EMA"]


class EMA:
    r"""Shadow copies of ``params`` (NumPy arrays, float32/float64, C-contiguous) averaged at each
    ``update()``.

    Parameters
    ----------
    params : list of numpy.ndarray
        The arrays to average (read at each update, never written except by ``copy_to()``).
    decay : float, default 0.999
        The weight of the old average, 0 <= decay <= 1.
    warmup : bool, default False
        Use ``min(decay, 1 - (1 + t / warmup_gamma) ** -warmup_power)`` at update ``t``.
    warmup_gamma, warmup_power : float, default 1.0 and 2/3
        The warm-up schedule's constants (timm's defaults), both > 0.
    min_decay : float, default 0.0
        The least decay the warm-up may use, 0 <= min_decay <= 1.
    backend : {"cython", "numpy"}, default "cython"
        ``"numpy"`` runs the pure-NumPy reference of the same update.

    Attributes
    ----------
    shadow : list of numpy.ndarray
        The averages, one per parameter (copies at construction).
    num_updates : int
        Updates so far.

    Notes
    -----
    The parameters are NumPy arrays of any shape, float32 or float64, C-contiguous and writeable (as an
    optimizer's); each shadow has its parameter's shape and dtype. ``update()`` computes

    .. math::

        s_t \leftarrow s_{t-1} + (1 - d_t) (p_t - s_{t-1})

    with :math:`d_t` = ``current_decay()``. A bad argument raises ValueError or TypeError before
    anything changes.

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> p = np.zeros(2)
    >>> ema = fastopt.EMA([p], decay=0.9)
    >>> p[...] = 1.0              # e.g. an optimizer step
    >>> ema.update()              # shadow = 0.9 * 0 + 0.1 * 1
    >>> print(ema.shadow[0].round(4), ema.num_updates)
    [0.1 0.1] 1
    >>> ema.copy_to()             # evaluate with the averaged weights
    >>> print(p.round(4))
    [0.1 0.1]
    """

    def __init__(self, params, decay=0.999, *, warmup=False, warmup_gamma=1.0, warmup_power=2 / 3,
                 min_decay=0.0, backend="cython"):
        if isinstance(params, np.ndarray) or not hasattr(params, "__iter__"):
            raise TypeError(f"params must be a list of arrays, got {type(params).__name__}")
        params = list(params)
        for i, p in enumerate(params):
            check.param(p, i)
        if backend not in ("cython", "numpy"):
            raise ValueError(f"backend must be 'cython' or 'numpy', got {backend!r}")
        self.params = params
        self._set_schedule(decay, warmup, warmup_gamma, warmup_power, min_decay)
        self.backend = backend
        self.shadow = [p.copy() for p in params]
        self.num_updates = 0

    def _set_schedule(self, decay, warmup, warmup_gamma, warmup_power, min_decay):
        """Check the decay schedule's settings, then set them (nothing changes if one is bad)."""
        check.unit_interval("decay", decay, closed=True)
        check.unit_interval("min_decay", min_decay, closed=True)
        check.flag("warmup", warmup)
        for name, value in (("warmup_gamma", warmup_gamma), ("warmup_power", warmup_power)):
            if not 0.0 < check.real(name, value) < float("inf"):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        self.decay, self.min_decay = float(decay), float(min_decay)
        self.warmup, self.warmup_gamma, self.warmup_power = bool(warmup), float(warmup_gamma), float(warmup_power)

    def current_decay(self):
        """The decay the next ``update()`` uses.

        Returns
        -------
        float
            ``decay``, or with ``warmup`` ``max(min(decay, 1 - (1 + t / warmup_gamma) **
            -warmup_power), min_decay)`` at ``t = num_updates``.

        Examples
        --------
        >>> import numpy as np
        >>> import fastopt
        >>> ema = fastopt.EMA([np.zeros(2)], decay=0.999, warmup=True)
        >>> ema.current_decay()       # the first update copies the parameters
        0.0
        >>> ema.update()
        >>> round(ema.current_decay(), 4)
        0.37
        """
        if not self.warmup:
            return self.decay
        t = self.num_updates
        warm = 1.0 - (1.0 + t / self.warmup_gamma) ** -self.warmup_power
        return max(min(self.decay, warm), self.min_decay)

    def update(self):
        """Fold the parameters' current values into the shadows (one pass over every array):
        ``shadow += (1 - current_decay()) * (param - shadow)``, then ``num_updates += 1``.

        Call it after each optimizer step; it reads the parameters and writes only the shadows.

        Examples
        --------
        >>> import numpy as np
        >>> import fastopt
        >>> w = np.zeros(2)
        >>> ema = fastopt.EMA([w], decay=0.9)
        >>> w += 1.0                  # an optimizer step
        >>> ema.update()
        >>> ema.shadow[0], ema.num_updates
        (array([0.1, 0.1]), 1)
        """
        ops = kernels if self.backend == "cython" else reference
        ops.ema_update(self.shadow, self.params, 1.0 - self.current_decay(), get_num_threads())
        self.num_updates += 1

    def copy_to(self, arrays=None):
        """Copy the shadows into ``arrays`` (default: the parameters), e.g. to evaluate the averaged
        model; arrays must have the parameters' shapes (values are cast to their dtypes).

        Parameters
        ----------
        arrays : list of numpy.ndarray, optional
            One writeable array per parameter, of its shape, of a float dtype the shadow casts to
            (same kind). Default: the parameters themselves.

        Raises
        ------
        ValueError, TypeError
            For a wrong count, shape, read-only array or dtype, before anything is written.

        Examples
        --------
        >>> import numpy as np
        >>> import fastopt
        >>> ema = fastopt.EMA([np.ones(2)], decay=0.5)
        >>> out = [np.zeros(2, dtype=np.float32)]
        >>> ema.copy_to(out)          # keep the parameters, copy the averages elsewhere
        >>> print(out[0])
        [1. 1.]
        """
        arrays = self.params if arrays is None else list(arrays)
        if len(arrays) != len(self.shadow):
            raise ValueError(f"expected {len(self.shadow)} arrays (one per parameter), got {len(arrays)}")
        for i, (a, s) in enumerate(zip(arrays, self.shadow)):
            if not isinstance(a, np.ndarray) or a.shape != s.shape:
                raise ValueError(f"arrays[{i}] must be an array of shape {s.shape}")
            if not a.flags.writeable:
                raise ValueError(f"arrays[{i}] is read-only")
            if not np.can_cast(s.dtype, a.dtype, "same_kind"):
                raise TypeError(f"arrays[{i}] has dtype {a.dtype}, which the shadow's {s.dtype} cannot be cast to")
        for a, s in zip(arrays, self.shadow):
            np.copyto(a, s, casting="same_kind")

    def state_dict(self):
        """``{"decay", "min_decay", "warmup", "warmup_gamma", "warmup_power", "num_updates", "shadow"}``
        (the shadow arrays are copies).

        Returns
        -------
        dict
            The settings, ``num_updates`` and ``shadow`` (a list of copies), for ``load_state_dict``.

        Examples
        --------
        >>> import numpy as np
        >>> import fastopt
        >>> sd = fastopt.EMA([np.ones(2)], decay=0.9).state_dict()
        >>> sd["decay"], sd["num_updates"], len(sd["shadow"])
        (0.9, 0, 1)
        """
        return {"decay": self.decay, "min_decay": self.min_decay, "warmup": self.warmup,
                "warmup_gamma": self.warmup_gamma, "warmup_power": self.warmup_power,
                "num_updates": self.num_updates, "shadow": [s.copy() for s in self.shadow]}

    def load_state_dict(self, state_dict):
        """Restore a ``state_dict()`` (shadows copied into this EMA's arrays); checked before anything
        changes.

        Parameters
        ----------
        state_dict : dict
            As ``state_dict()`` returns: ``"shadow"`` (one array per parameter, of its shape) and
            optionally the settings and ``num_updates`` (missing settings keep their values).

        Raises
        ------
        ValueError, TypeError
            For a missing or mismatched shadow or a bad setting.

        Examples
        --------
        >>> import numpy as np
        >>> import fastopt
        >>> p = np.ones(2)
        >>> ema = fastopt.EMA([p], decay=0.5)
        >>> p[...] = 3.0
        >>> ema.update()
        >>> fresh = fastopt.EMA([p], decay=0.5)
        >>> fresh.load_state_dict(ema.state_dict())
        >>> print(fresh.shadow[0], fresh.num_updates)
        [2. 2.] 1
        """
        if not isinstance(state_dict, dict) or "shadow" not in state_dict:
            raise TypeError("state_dict must be a dict with a 'shadow' list")
        shadow = list(state_dict["shadow"])
        if len(shadow) != len(self.shadow):
            raise ValueError(f"state_dict has {len(shadow)} shadows, expected {len(self.shadow)}")
        arrays = []
        for i, (s, mine) in enumerate(zip(shadow, self.shadow)):
            arr = np.asarray(s, dtype=mine.dtype)
            if arr.shape != mine.shape:
                raise ValueError(f"shadow[{i}] has shape {arr.shape}, expected {mine.shape}")
            arrays.append(arr)
        num_updates = state_dict.get("num_updates", 0)
        if isinstance(num_updates, bool) or not isinstance(num_updates, (int, np.integer)) or num_updates < 0:
            raise ValueError(f"num_updates must be a non-negative int, got {num_updates!r}")
        self._set_schedule(state_dict.get("decay", self.decay), state_dict.get("warmup", self.warmup),
                           state_dict.get("warmup_gamma", self.warmup_gamma),
                           state_dict.get("warmup_power", self.warmup_power),
                           state_dict.get("min_decay", self.min_decay))  # the last check: raises first
        for mine, arr in zip(self.shadow, arrays):
            mine[...] = arr
        self.num_updates = int(num_updates)
