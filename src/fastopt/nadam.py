"""NAdam: Adam with Nesterov momentum (torch.optim.NAdam)."""
from . import _validation as check
from ._base import Optimizer


class NAdam(Optimizer):
    r"""NAdam (Dozat, 2016), with the momentum-decay schedule, as ``torch.optim.NAdam``.

    .. math::

        \mu_t &= \beta_1 \left(1 - \tfrac12 \cdot 0.96^{t\psi}\right), \qquad
        \Pi_t = \textstyle\prod_{i \le t} \mu_i \\
        m_t &\leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
        v_t \leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        d_t &= \sqrt{v_t / (1 - \beta_2^t)} + \epsilon \\
        p_t &\leftarrow p_{t-1} - \gamma \frac{1 - \mu_t}{1 - \Pi_t} \frac{g_t}{d_t}
                                - \gamma \frac{\mu_{t+1}}{1 - \Pi_t \mu_{t+1}} \frac{m_t}{d_t}

    with momentum decay :math:`\psi` (``momentum_decay``). Weight decay is L2 (added to the gradient)
    or, with ``decoupled_weight_decay``, :math:`p \leftarrow p(1 - \gamma\lambda)` first.

    Parameters
    ----------
    params : iterable of numpy.ndarray, or iterable of dict
        The arrays to update in place, or parameter groups: dicts with a ``"params"`` list and any of
        the hyperparameters below, which override these defaults for that group.
    lr : float, default 2e-3
        Learning rate :math:`\gamma`, >= 0.
    betas : tuple of 2 floats, default (0.9, 0.999)
        :math:`(\beta_1, \beta_2)`, each in [0, 1): the decay rates of the moving averages of the
        gradient and of its square.
    eps : float, default 1e-8
        :math:`\epsilon`, for numerical stability, added to the denominator, >= 0.
    weight_decay : float, default 0
        :math:`\lambda`, >= 0: L2 penalty added to the gradient, or with ``decoupled_weight_decay``
        the decay rate of the parameters.
    momentum_decay : float, default 4e-3
        :math:`\psi`, >= 0.
    decoupled_weight_decay : bool, default False
        Decay the parameters, :math:`p \leftarrow p(1 - \gamma\lambda)`, instead of adding
        :math:`\lambda p` to the gradient.
    foreach : bool or None, default None
        Accepted for torch compatibility and inert: fastopt always runs its one fused kernel.
    maximize : bool, default False
        Maximize the objective: the update uses :math:`-g_t` in place of :math:`g_t`.
    capturable : bool, default False
        Must be False: True (torch's CUDA graphs) raises ValueError.
    differentiable : bool, default False
        Must be False: True (autograd through the step, torch's) raises ValueError.
    {options}

    Notes
    -----
    {input_rules}

    State (torch's keys): ``step``, ``mu_product`` (:math:`\Pi_t`; :class:`fastopt.NAdam` keeps it in the
    parameter's dtype, torch in the default dtype: the two agree when that is the parameters' dtype),
    ``exp_avg``, ``exp_avg_sq``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> p = np.array([1.0, -2.0])
    >>> opt = fastopt.NAdam([p], lr=0.1)
    >>> opt.step([2 * p])
    >>> print(p.round(4), round(float(opt.state[0]["mu_product"]), 4))
    [ 0.8944 -1.8944] 0.4501
    """

    _kernel = "nadam"
    _buffers = ("step", "mu_product", "exp_avg", "exp_avg_sq")

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, momentum_decay=4e-3,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, backend="cython", **options):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        momentum_decay=momentum_decay, decoupled_weight_decay=decoupled_weight_decay,
                        maximize=maximize, foreach=foreach, capturable=capturable,
                        differentiable=differentiable)
        super().__init__(params, defaults, backend=backend, **options)

    def _check_hyperparameters(self, group):
        check.adam_family(group)
        check.nonnegative("momentum_decay", group["momentum_decay"])
        check.flag("maximize", group["maximize"])
        check.flag("decoupled_weight_decay", group["decoupled_weight_decay"])
        check.torch_only_flags(group)

    def _state_spec(self, group):
        return {"step": (0.0, True), "mu_product": (1.0, True), "exp_avg": (0.0, False),
                "exp_avg_sq": (0.0, False)}

    def _kernel_kwargs(self, group):
        beta1, beta2 = group["betas"]
        return dict(lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                    weight_decay=group["weight_decay"], momentum_decay=group["momentum_decay"],
                    maximize=group["maximize"], decoupled_weight_decay=group["decoupled_weight_decay"])
