"""The texts' momentum: an exponential moving average of the gradients."""
from . import _validation as check
from ._base import Optimizer


class Momentum(Optimizer):
    r"""Gradient descent with momentum in the texts' EMA form (no torch.optim equivalent).

    .. math::

        v_t &\leftarrow \beta v_{t-1} + (1 - \beta) g_t, \qquad v_0 = 0 \\
        p_t &\leftarrow p_{t-1} - \gamma v_t

    This differs from ``SGD(momentum=beta, dampening=beta)`` on the first step: torch starts its buffer
    at :math:`g_1`, this form at :math:`(1-\beta) g_1`; from then on the two agree.

    Parameters
    ----------
    params : iterable of numpy.ndarray, or iterable of dict
        The arrays to update in place, or parameter groups: dicts with a ``"params"`` list and any of
        the hyperparameters below, which override these defaults for that group.
    lr : float, default 0.01
        Learning rate :math:`\gamma`, >= 0.
    beta : float, default 0.9
        :math:`\beta`, the decay rate of the moving average, in [0, 1).
    {options}

    Notes
    -----
    {input_rules}

    State: ``momentum_buffer`` (zeros until the first step).

    In exact arithmetic this is the path of ``SGD(lr=lr * (1 - beta), momentum=beta)`` (torch's form,
    whose buffer is ``v / (1 - beta)``); the roundings differ, so the bits do.

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> p = np.array([1.0, -2.0])
    >>> opt = fastopt.Momentum([p], lr=0.1, beta=0.9)
    >>> opt.step([2 * p])         # v = 0.1 * g, then p -= 0.1 * v
    >>> print(p.round(4), opt.state[0]["momentum_buffer"].round(4))
    [ 0.98 -1.96] [ 0.2 -0.4]
    """

    _kernel = "momentum"
    _buffers = ("momentum_buffer",)

    def __init__(self, params, lr=0.01, beta=0.9, *, backend="cython", **options):
        super().__init__(params, dict(lr=lr, beta=beta), backend=backend, **options)

    def _check_hyperparameters(self, group):
        check.learning_rate(group["lr"])
        check.unit_interval("beta", group["beta"])

    def _state_spec(self, group):
        return {"momentum_buffer": (0.0, False)}

    def _kernel_kwargs(self, group):
        return dict(lr=group["lr"], beta=group["beta"])
