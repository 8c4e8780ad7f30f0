"""Adadelta (torch.optim.Adadelta)."""
from . import _validation as check
from ._base import Optimizer


class Adadelta(Optimizer):
    r"""Adadelta (Zeiler, 2012), as ``torch.optim.Adadelta``.

    .. math::

        g_t &\leftarrow \pm g_t + \lambda p_{t-1} \\
        v_t &\leftarrow \rho v_{t-1} + (1 - \rho) g_t^2 \\
        \Delta x_t &= \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}} g_t \\
        u_t &\leftarrow \rho u_{t-1} + (1 - \rho) \Delta x_t^2 \\
        p_t &\leftarrow p_{t-1} - \gamma \Delta x_t

    ``eps`` sits inside both square roots; ``lr`` (default 1.0) scales the update, as in torch.

    Parameters
    ----------
    params : iterable of numpy.ndarray, or iterable of dict
        The arrays to update in place, or parameter groups: dicts with a ``"params"`` list and any of
        the hyperparameters below, which override these defaults for that group.
    lr : float, default 1.0
        Learning rate :math:`\gamma`, which scales the update, >= 0.
    rho : float, default 0.9
        :math:`\rho`, the decay rate of both moving averages, in [0, 1].
    eps : float, default 1e-6
        :math:`\epsilon`, for numerical stability, inside both square roots, >= 0.
    weight_decay : float, default 0
        :math:`\lambda`, >= 0: L2 penalty, added to the gradient.
    foreach : bool or None, default None
        Accepted for torch compatibility and inert: fastopt always runs its one fused kernel.
    capturable : bool, default False
        Must be False: True (torch's CUDA graphs) raises ValueError.
    maximize : bool, default False
        Maximize the objective: step along :math:`+g_t` (the :math:`\pm` above).
    differentiable : bool, default False
        Must be False: True (autograd through the step, torch's) raises ValueError.
    {options}

    Notes
    -----
    {input_rules}

    State (torch's keys): ``step`` (counted, unused by the math), ``square_avg`` (:math:`v`),
    ``acc_delta`` (:math:`u`).

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> p = np.array([1.0, -2.0])
    >>> opt = fastopt.Adadelta([p])
    >>> opt.step([2 * p])         # the first steps are small: u starts at 0
    >>> print(p.round(4), opt.state[0]["square_avg"].round(4))
    [ 0.9968 -1.9968] [0.4 1.6]
    """

    _kernel = "adadelta"
    _buffers = ("step", "square_avg", "acc_delta")

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *,
                 capturable=False, maximize=False, differentiable=False, backend="cython", **options):
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
                        capturable=capturable, foreach=foreach, differentiable=differentiable)
        super().__init__(params, defaults, backend=backend, **options)

    def _check_hyperparameters(self, group):
        check.learning_rate(group["lr"])
        check.unit_interval("rho", group["rho"], closed=True)
        check.epsilon(group["eps"])
        check.nonnegative("weight_decay", group["weight_decay"])
        check.flag("maximize", group["maximize"])
        check.torch_only_flags(group)

    def _state_spec(self, group):
        return {"step": (0.0, True), "square_avg": (0.0, False), "acc_delta": (0.0, False)}

    def _kernel_kwargs(self, group):
        return dict(lr=group["lr"], rho=group["rho"], eps=group["eps"],
                    weight_decay=group["weight_decay"], maximize=group["maximize"])
