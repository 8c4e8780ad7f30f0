"""Adamax: Adam with the infinity norm (torch.optim.Adamax)."""
from . import _validation as check
from ._base import Optimizer


class Adamax(Optimizer):
    r"""AdaMax (Kingma & Ba, 2015, section 7), as ``torch.optim.Adamax``.

    .. math::

        g_t &\leftarrow \pm g_t + \lambda p_{t-1} \\
        m_t &\leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        u_t &\leftarrow \max(\beta_2 u_{t-1}, |g_t| + \epsilon) \\
        p_t &\leftarrow p_{t-1} - \frac{\gamma}{1 - \beta_1^t} \frac{m_t}{u_t}

    .. warning:: Like torch, ``eps`` is added to :math:`|g_t|` inside the max; the texts add it to the
       denominator instead (:math:`m_t / (u_t + \epsilon)` with :math:`u_t = \max(\beta_2 u_{t-1}, |g_t|)`).
       The two differ only while :math:`|g_t|` is comparable to ``eps``.

    Parameters
    ----------
    params : iterable of numpy.ndarray, or iterable of dict
        The arrays to update in place, or parameter groups: dicts with a ``"params"`` list and any of
        the hyperparameters below, which override these defaults for that group.
    lr : float, default 2e-3
        Learning rate :math:`\gamma`, >= 0.
    betas : tuple of 2 floats, default (0.9, 0.999)
        :math:`(\beta_1, \beta_2)`, each in [0, 1): the decay rates of the moving average of the
        gradient and of the infinity norm.
    eps : float, default 1e-8
        :math:`\epsilon`, for numerical stability, added to :math:`|g_t|`, >= 0.
    weight_decay : float, default 0
        :math:`\lambda`, >= 0: L2 penalty, added to the gradient.
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

    State (torch's keys): ``step``, ``exp_avg``, ``exp_inf``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> p = np.array([1.0, -2.0])
    >>> opt = fastopt.Adamax([p], lr=0.1)
    >>> opt.step([2 * p])         # the first step moves each element by lr
    >>> print(p.round(4), opt.state[0]["exp_inf"].round(4))
    [ 0.9 -1.9] [2. 4.]
    """

    _kernel = "adamax"
    _buffers = ("step", "exp_avg", "exp_inf")

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, foreach=None, *,
                 maximize=False, differentiable=False, capturable=False, backend="cython", **options):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, capturable=capturable)
        super().__init__(params, defaults, backend=backend, **options)

    def _check_hyperparameters(self, group):
        check.adam_family(group)
        check.flag("maximize", group["maximize"])
        check.torch_only_flags(group)

    def _state_spec(self, group):
        return {"step": (0.0, True), "exp_avg": (0.0, False), "exp_inf": (0.0, False)}

    def _kernel_kwargs(self, group):
        beta1, beta2 = group["betas"]
        return dict(lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                    weight_decay=group["weight_decay"], maximize=group["maximize"])
