"""Adam, AMSGrad and AdamW (torch.optim.Adam and torch.optim.AdamW)."""
from . import _validation as check
from ._base import Optimizer


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015), with AMSGrad and decoupled weight decay, as ``torch.optim.Adam``.

    .. math::

        g_t &\leftarrow \pm g_t + \lambda p_{t-1} \quad\text{(or } p_{t-1} \leftarrow p_{t-1}(1 - \gamma\lambda)
              \text{ with decoupled weight decay)} \\
        m_t &\leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        v_t &\leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        \hat v_t &\leftarrow \max(\hat v_{t-1}, v_t) \text{ (AMSGrad)}, \quad v_t \text{ (otherwise)} \\
        p_t &\leftarrow p_{t-1} - \frac{\gamma}{1 - \beta_1^t} \,
              \frac{m_t}{\sqrt{\hat v_t} / \sqrt{1 - \beta_2^t} + \epsilon}

    As in torch, ``eps`` is added after bias-correcting :math:`\sqrt{v_t}` (not the paper's
    :math:`\hat\epsilon` form), AMSGrad keeps the maximum of the raw :math:`v_t`, and the step count is
    per parameter.

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
        :math:`\epsilon`, for numerical stability, added to the denominator, >= 0.
    weight_decay : float, default 0
        :math:`\lambda`, >= 0: L2 penalty added to the gradient, or with ``decoupled_weight_decay``
        the decay rate of the parameters.
    amsgrad : bool, default False
        The AMSGrad variant (the maximum of :math:`v_t`, state ``max_exp_avg_sq``).
    foreach : bool or None, default None
        Accepted for torch compatibility and inert: fastopt always runs its one fused kernel.
    maximize : bool, default False
        Maximize the objective: step along :math:`+g_t` (the :math:`\pm` above).
    capturable : bool, default False
        Must be False: True (torch's CUDA graphs) raises ValueError.
    differentiable : bool, default False
        Must be False: True (autograd through the step, torch's) raises ValueError.
    fused : bool or None, default None
        Accepted for torch compatibility and inert, as ``foreach``.
    decoupled_weight_decay : bool, default False
        Decay the parameters, :math:`p \leftarrow p(1 - \gamma\lambda)`, instead of adding
        :math:`\lambda p` to the gradient (:class:`AdamW`).
    {options}

    Notes
    -----
    {input_rules}

    State (torch's keys): ``step``, ``exp_avg``, ``exp_avg_sq``, and ``max_exp_avg_sq`` with amsgrad.
    ``foreach``, ``fused`` are accepted for torch compatibility; fastopt always runs its one fused
    kernel.

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> p = np.array([1.0, -2.0])
    >>> opt = fastopt.Adam([p], lr=0.1)
    >>> opt.step([2 * p])         # the first step moves each element by about lr
    >>> print(p.round(4))
    [ 0.9 -1.9]
    >>> sorted(opt.state[0]), float(opt.state[0]["step"])
    (['exp_avg', 'exp_avg_sq', 'step'], 1.0)
    >>> for _ in range(200):      # a training loop: the gradient at the current p
    ...     opt.step([2 * p])
    >>> print(bool(np.abs(p).max() < 0.05))
    True
    """

    _kernel = "adam"
    _buffers = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 foreach=None, maximize=False, capturable=False, differentiable=False, fused=None,
                 decoupled_weight_decay=False, backend="cython", **options):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, foreach=foreach, capturable=capturable,
                        differentiable=differentiable, fused=fused,
                        decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults, backend=backend, **options)

    def _check_hyperparameters(self, group):
        check.adam_family(group)
        for name in ("amsgrad", "maximize", "decoupled_weight_decay"):
            check.flag(name, group[name])
        check.torch_only_flags(group)

    def _state_spec(self, group):
        spec = {"step": (0.0, True), "exp_avg": (0.0, False), "exp_avg_sq": (0.0, False)}
        if group["amsgrad"]:
            spec["max_exp_avg_sq"] = (0.0, False)
        return spec

    def _kernel_kwargs(self, group):
        beta1, beta2 = group["betas"]
        return dict(lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                    weight_decay=group["weight_decay"], maximize=group["maximize"],
                    decoupled_weight_decay=group["decoupled_weight_decay"])


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as ``torch.optim.AdamW``.

    Every parameter is decayed before the Adam update, with the group's current learning rate:

    .. math::

        p_{t-1} &\leftarrow p_{t-1} (1 - \gamma\lambda) \\
        p_t &\leftarrow \text{Adam}(p_{t-1}, g_t) \quad \text{(without L2 term)}

    Defaults to ``weight_decay=1e-2``; ``decoupled_weight_decay`` is
    always True. State and math otherwise as :class:`Adam`.

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
        :math:`\epsilon`, for numerical stability, added to the denominator, >= 0.
    weight_decay : float, default 1e-2
        :math:`\lambda`, >= 0: the decay rate of the parameters.
    amsgrad : bool, default False
        The AMSGrad variant (the maximum of :math:`v_t`, state ``max_exp_avg_sq``).
    maximize : bool, default False
        Maximize the objective: step along :math:`+g_t` (the :math:`\pm` above).
    foreach : bool or None, default None
        Accepted for torch compatibility and inert: fastopt always runs its one fused kernel.
    capturable : bool, default False
        Must be False: True (torch's CUDA graphs) raises ValueError.
    differentiable : bool, default False
        Must be False: True (autograd through the step, torch's) raises ValueError.
    fused : bool or None, default None
        Accepted for torch compatibility and inert, as ``foreach``.
    {options}

    Notes
    -----
    {input_rules}

    State (torch's keys): ``step``, ``exp_avg``, ``exp_avg_sq``, and ``max_exp_avg_sq`` with amsgrad.
    A group or loaded state dict with ``decoupled_weight_decay=False`` is rejected (ValueError).

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> p = np.array([1.0, -2.0])
    >>> opt = fastopt.AdamW([p], lr=0.1, weight_decay=0.5)
    >>> opt.step([np.zeros(2)])   # a zero gradient: only the decay, p *= 1 - 0.1 * 0.5
    >>> print(p.round(4))
    [ 0.95 -1.9 ]
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
                 *, maximize=False, foreach=None, capturable=False, differentiable=False, fused=None,
                 backend="cython", **options):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, foreach=foreach, maximize=maximize, capturable=capturable,
                         differentiable=differentiable, fused=fused, decoupled_weight_decay=True,
                         backend=backend, **options)

    def _check_hyperparameters(self, group):
        super()._check_hyperparameters(group)
        if not group["decoupled_weight_decay"]:
            raise ValueError("AdamW always uses decoupled weight decay (decoupled_weight_decay=True)")
