"""Adagrad (torch.optim.Adagrad)."""
from . import _validation as check
from ._base import Optimizer


class Adagrad(Optimizer):
    r"""Adagrad (Duchi et al., 2011), as ``torch.optim.Adagrad``.

    .. math::

        g_t &\leftarrow \pm g_t + \lambda p_{t-1}, \qquad
        \tilde\gamma_t = \frac{\gamma}{1 + (t - 1)\eta} \\
        s_t &\leftarrow s_{t-1} + g_t^2 \\
        p_t &\leftarrow p_{t-1} - \tilde\gamma_t \frac{g_t}{\sqrt{s_t} + \epsilon}

    with learning-rate decay :math:`\eta` (``lr_decay``) and :math:`s_0` = ``initial_accumulator_value``;
    ``eps`` sits outside the square root.

    As in torch the state is created when the optimizer is built (``state_dict()`` holds ``step = 0``
    and ``sum`` before the first step). Unlike torch, a parameter group's own
    ``initial_accumulator_value`` is honoured (torch uses the constructor's value for every group).

    Parameters
    ----------
    params : iterable of numpy.ndarray, or iterable of dict
        The arrays to update in place, or parameter groups: dicts with a ``"params"`` list and any of
        the hyperparameters below, which override these defaults for that group.
    lr : float, default 1e-2
        Learning rate :math:`\gamma`, >= 0.
    lr_decay : float, default 0
        :math:`\eta`, >= 0.
    weight_decay : float, default 0
        :math:`\lambda`, >= 0: L2 penalty, added to the gradient.
    initial_accumulator_value : float, default 0
        :math:`s_0`, the initial value of every element of ``sum``, >= 0.
    eps : float, default 1e-10
        :math:`\epsilon`, for numerical stability, added to the denominator, >= 0.
    foreach : bool or None, default None
        Accepted for torch compatibility and inert: fastopt always runs its one fused kernel.
    maximize : bool, default False
        Maximize the objective: step along :math:`+g_t` (the :math:`\pm` above).
    differentiable : bool, default False
        Must be False: True (autograd through the step, torch's) raises ValueError.
    fused : bool or None, default None
        Accepted for torch compatibility and inert, as ``foreach``.
    {options}

    Notes
    -----
    {input_rules}

    State (torch's keys): ``step``, ``sum``, made by the constructor (see above).

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> p = np.array([1.0, -2.0])
    >>> opt = fastopt.Adagrad([p], lr=0.1)
    >>> sorted(opt.state[0]), float(opt.state[0]["step"])   # made by the constructor
    (['step', 'sum'], 0.0)
    >>> opt.step([2 * p])         # s = g ** 2: the first step moves each element by lr
    >>> print(p.round(4), opt.state[0]["sum"])
    [ 0.9 -1.9] [ 4. 16.]
    """

    _kernel = "adagrad"
    _buffers = ("step", "sum")

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, foreach=None, *, maximize=False, differentiable=False, fused=None,
                 backend="cython", **options):
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, fused=fused)
        super().__init__(params, defaults, backend=backend, **options)

    def add_param_group(self, param_group):
        """:meth:`Optimizer.add_param_group`, then the new parameters' state (``step = 0`` and ``sum``
        filled with the group's ``initial_accumulator_value``), as the constructor makes it.

        Parameters
        ----------
        param_group : dict
            ``"params"`` (an array or a list of arrays) and optional hyperparameters.
        """
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        start = sum(len(g["params"]) for g in self.param_groups[:-1])
        for offset, param in enumerate(group["params"]):
            self.state[start + offset] = self._new_state(param, group)

    def _check_hyperparameters(self, group):
        check.learning_rate(group["lr"])
        check.nonnegative("lr_decay", group["lr_decay"])
        check.nonnegative("weight_decay", group["weight_decay"])
        check.nonnegative("initial_accumulator_value", group["initial_accumulator_value"])
        check.epsilon(group["eps"])
        check.flag("maximize", group["maximize"])
        check.torch_only_flags(group)

    def _state_spec(self, group):
        return {"step": (0.0, True), "sum": (float(group["initial_accumulator_value"]), False)}

    def _kernel_kwargs(self, group):
        return dict(lr=group["lr"], lr_decay=group["lr_decay"], eps=group["eps"],
                    weight_decay=group["weight_decay"], maximize=group["maximize"])
