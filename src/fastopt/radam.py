"""RAdam: Adam with the variance of its adaptive step rectified (torch.optim.RAdam)."""
from . import _validation as check
from ._base import Optimizer


class RAdam(Optimizer):
    r"""RAdam (Liu et al., 2020, "On the Variance of the Adaptive Learning Rate and Beyond"), as
    ``torch.optim.RAdam``.

    .. math::

        m_t &\leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
        v_t \leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        \rho_\infty &= \frac{2}{1 - \beta_2} - 1, \qquad
        \rho_t = \rho_\infty - \frac{2 t \beta_2^t}{1 - \beta_2^t} \\
        p_t &\leftarrow p_{t-1} - \gamma \frac{m_t}{1 - \beta_1^t} \, r_t \,
            \frac{\sqrt{1 - \beta_2^t}}{\sqrt{v_t} + \epsilon}
            \quad \text{if } \rho_t > 5, \qquad
        p_t \leftarrow p_{t-1} - \gamma \frac{m_t}{1 - \beta_1^t} \quad \text{otherwise}

    with the rectification
    :math:`r_t = \sqrt{\frac{(\rho_t - 4)(\rho_t - 2)\rho_\infty}{(\rho_\infty - 4)(\rho_\infty - 2)\rho_t}}`.
    The first steps (the first five with the default betas) are bias-corrected momentum SGD; with
    :math:`\beta_2 \le 0.6` every step is. Weight decay is L2 (added to the gradient) or, with
    ``decoupled_weight_decay``, :math:`p \leftarrow p(1 - \gamma\lambda)` first.

    Parameters
    ----------
    params : iterable of numpy.ndarray, or iterable of dict
        The arrays to update in place, or parameter groups: dicts with a ``"params"`` list and any of
        the hyperparameters below, which override these defaults for that group.
    lr : float, default 1e-3
        Learning rate :math:`\gamma`, >= 0.
    betas : tuple of 2 floats, default (0.9, 0.999)
        :math:`(\beta_1, \beta_2)`, each in [0, 1): the decay rates of the moving averages of the
        gradient and of its square.
    eps : float, default 1e-8
        :math:`\epsilon`, for numerical stability, added to :math:`\sqrt{v_t}` (not bias-corrected,
        as torch), >= 0.
    weight_decay : float, default 0
        :math:`\lambda`, >= 0: L2 penalty added to the gradient, or with ``decoupled_weight_decay``
        the decay rate of the parameters.
    decoupled_weight_decay : bool, default False
        Decay the parameters, :math:`p \leftarrow p(1 - \gamma\lambda)`, instead of adding
        :math:`\lambda p` to the gradient (AdamW's decay).
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

    State (torch's keys): ``step``, ``exp_avg``, ``exp_avg_sq``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> p = np.array([1.0, -2.0])
    >>> opt = fastopt.RAdam([p], lr=0.1)
    >>> opt.step([2 * p])         # not rectified yet: the step is lr * m / (1 - beta1)
    >>> print(p.round(4), float(opt.state[0]["step"]))
    [ 0.8 -1.6] 1.0
    """

    _kernel = "radam"
    _buffers = ("step", "exp_avg", "exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, backend="cython", **options):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize,
                        foreach=foreach, capturable=capturable, decoupled_weight_decay=decoupled_weight_decay,
                        differentiable=differentiable)
        super().__init__(params, defaults, backend=backend, **options)

    def _check_hyperparameters(self, group):
        check.adam_family(group)
        check.flag("maximize", group["maximize"])
        check.flag("decoupled_weight_decay", group["decoupled_weight_decay"])
        check.torch_only_flags(group)

    def _state_spec(self, group):
        return {"step": (0.0, True), "exp_avg": (0.0, False), "exp_avg_sq": (0.0, False)}

    def _kernel_kwargs(self, group):
        beta1, beta2 = group["betas"]
        return dict(lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                    weight_decay=group["weight_decay"], maximize=group["maximize"],
                    decoupled_weight_decay=group["decoupled_weight_decay"])
