"""ASGD: averaged stochastic gradient descent (torch.optim.ASGD)."""
from . import _validation as check
from ._base import Optimizer


class ASGD(Optimizer):
    r"""Averaged SGD (Polyak & Juditsky, 1992), as ``torch.optim.ASGD``: SGD with a decaying step size
    :math:`\eta_t`, and ``ax``, the average of the iterates from step :math:`t_0` on.

    .. math::

        g_t &\leftarrow \pm g_t + \lambda_{wd} p_{t-1} \\
        p_t &\leftarrow p_{t-1}(1 - \lambda \eta_t) - \eta_t g_t \\
        \bar{x}_t &\leftarrow p_t \text{ if } \mu_t = 1, \qquad
            \bar{x}_{t-1} + \mu_t (p_t - \bar{x}_{t-1}) \text{ otherwise} \\
        \eta_{t+1} &= \frac{\gamma}{(1 + \lambda \gamma t)^\alpha}, \qquad
        \mu_{t+1} = \frac{1}{\max(1, t - t_0)}

    with :math:`\eta_1 = \gamma` and :math:`\mu_1 = 1`. As torch, :math:`\eta` and :math:`\mu` are
    stored at the end of a step for the next one, so a change of ``lr`` (a scheduler) reaches the
    parameters one step later, and even a zero gradient shrinks them by :math:`1 - \lambda\eta_t`.

    Parameters
    ----------
    params : iterable of numpy.ndarray, or iterable of dict
        The arrays to update in place, or parameter groups: dicts with a ``"params"`` list and any of
        the hyperparameters below, which override these defaults for that group.
    lr : float, default 1e-2
        Learning rate :math:`\gamma`, >= 0.
    lambd : float, default 1e-4
        :math:`\lambda`, the decay term.
    alpha : float, default 0.75
        :math:`\alpha`, the power of the step size's decay.
    t0 : float, default 1e6
        :math:`t_0`, the step at which averaging starts.
    weight_decay : float, default 0
        :math:`\lambda_{wd}`, >= 0: L2 penalty, added to the gradient.
    foreach : bool or None, default None
        Accepted for torch compatibility and inert: fastopt always runs its one fused kernel.
    maximize : bool, default False
        Maximize the objective: step along :math:`+g_t` (the :math:`\pm` above).
    differentiable : bool, default False
        Must be False: True (autograd through the step, torch's) raises ValueError.
    capturable : bool, default False
        Must be False: True (torch's CUDA graphs) raises ValueError.
    {options}

    Notes
    -----
    {input_rules}

    State (torch's keys): ``step``, ``eta`` and ``mu`` (1-element counters, in the parameter's dtype;
    torch keeps them in its default dtype, so its first step uses ``lr`` rounded to float32 unless
    that is float64), ``ax``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> p = np.array([1.0, -2.0])
    >>> opt = fastopt.ASGD([p], lr=0.1, t0=1)
    >>> for _ in range(4):    # ax copies p for 3 steps, then averages it with weight mu = 1/2
    ...     opt.step([2 * p])
    >>> print(p.round(4), opt.state[0]["ax"].round(4), round(float(opt.state[0]["mu"]), 4))
    [ 0.4096 -0.8192] [ 0.4608 -0.9216] 0.3333
    """

    _kernel = "asgd"
    _buffers = ("step", "eta", "mu", "ax")

    def __init__(self, params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0, foreach=None,
                 maximize=False, differentiable=False, capturable=False, *, backend="cython", **options):
        defaults = dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, capturable=capturable)
        super().__init__(params, defaults, backend=backend, **options)

    def _check_hyperparameters(self, group):
        check.learning_rate(group["lr"])
        check.nonnegative("weight_decay", group["weight_decay"])
        for name in ("lambd", "alpha", "t0"):
            check.real(name, group[name])
        check.flag("maximize", group["maximize"])
        check.torch_only_flags(group)

    def _state_spec(self, group):
        return {"step": (0.0, True), "eta": (check.real("lr", group["lr"]), True), "mu": (1.0, True),
                "ax": (0.0, False)}

    def _kernel_kwargs(self, group):
        return dict(lr=group["lr"], lambd=group["lambd"], alpha=group["alpha"], t0=group["t0"],
                    weight_decay=group["weight_decay"], maximize=group["maximize"])
