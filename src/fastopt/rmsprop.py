"""RMSprop, plain, centered and with momentum (torch.optim.RMSprop)."""
from . import _validation as check
from ._base import Optimizer


class RMSprop(Optimizer):
    r"""RMSprop (Hinton, 2012), as ``torch.optim.RMSprop``.

    .. math::

        g_t &\leftarrow \pm g_t + \lambda p_{t-1} \\
        v_t &\leftarrow \alpha v_{t-1} + (1 - \alpha) g_t^2 \\
        \tilde v_t &= v_t - \bar g_t^2 \text{ with } \bar g_t \leftarrow \alpha \bar g_{t-1} + (1 - \alpha) g_t
                      \text{ (centered)}, \quad v_t \text{ (otherwise)} \\
        b_t &\leftarrow \mu b_{t-1} + \frac{g_t}{\sqrt{\tilde v_t} + \epsilon}, \quad
        p_t \leftarrow p_{t-1} - \gamma b_t \quad \text{(momentum } \mu > 0) \\
        p_t &\leftarrow p_{t-1} - \gamma \frac{g_t}{\sqrt{\tilde v_t} + \epsilon} \quad \text{(otherwise)}

    The texts' ``rho`` is torch's ``alpha`` (default 0.99); ``eps`` sits outside the square root; there is
    no bias correction and the momentum buffer starts at zero.

    Parameters
    ----------
    params : iterable of numpy.ndarray, or iterable of dict
        The arrays to update in place, or parameter groups: dicts with a ``"params"`` list and any of
        the hyperparameters below, which override these defaults for that group.
    lr : float, default 1e-2
        Learning rate :math:`\gamma`, >= 0.
    alpha : float, default 0.99
        :math:`\alpha`, the decay rate of the moving averages, >= 0 (torch's check; meaningful in
        [0, 1]).
    eps : float, default 1e-8
        :math:`\epsilon`, for numerical stability, added to the denominator, >= 0.
    weight_decay : float, default 0
        :math:`\lambda`, >= 0: L2 penalty, added to the gradient.
    momentum : float, default 0
        Momentum factor :math:`\mu`, >= 0 (0: no momentum buffer).
    centered : bool, default False
        Divide by the estimated variance :math:`v_t - \bar g_t^2` instead of :math:`v_t`.
    capturable : bool, default False
        Must be False: True (torch's CUDA graphs) raises ValueError.
    foreach : bool or None, default None
        Accepted for torch compatibility and inert: fastopt always runs its one fused kernel.
    maximize : bool, default False
        Maximize the objective: step along :math:`+g_t` (the :math:`\pm` above).
    differentiable : bool, default False
        Must be False: True (autograd through the step, torch's) raises ValueError.
    {options}

    Notes
    -----
    {input_rules}

    State (torch's keys): ``step`` (counted, unused by the math), ``square_avg``, ``momentum_buffer``
    (momentum > 0), ``grad_avg`` (centered).

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> p = np.array([1.0, -2.0])
    >>> opt = fastopt.RMSprop([p], lr=0.01)
    >>> opt.step([2 * p])         # v = 0.01 * g ** 2: the first step moves each element by 10 * lr
    >>> print(p.round(4), opt.state[0]["square_avg"].round(4))
    [ 0.9 -1.9] [0.04 0.16]
    >>> opt = fastopt.RMSprop([p], lr=0.01, momentum=0.9, centered=True)
    >>> opt.step([2 * p])
    >>> sorted(opt.state[0])
    ['grad_avg', 'momentum_buffer', 'square_avg', 'step']
    """

    _kernel = "rmsprop"
    _buffers = ("step", "square_avg", "momentum_buffer", "grad_avg")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                 capturable=False, foreach=None, maximize=False, differentiable=False, *,
                 backend="cython", **options):
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, capturable=capturable, foreach=foreach,
                        maximize=maximize, differentiable=differentiable)
        super().__init__(params, defaults, backend=backend, **options)

    def _check_hyperparameters(self, group):
        check.learning_rate(group["lr"])
        check.epsilon(group["eps"])
        check.nonnegative("momentum", group["momentum"])
        check.nonnegative("weight_decay", group["weight_decay"])
        check.nonnegative("alpha", group["alpha"])
        check.flag("centered", group["centered"])
        check.flag("maximize", group["maximize"])
        check.torch_only_flags(group)

    def _state_spec(self, group):
        spec = {"step": (0.0, True), "square_avg": (0.0, False)}
        if group["momentum"] > 0:
            spec["momentum_buffer"] = (0.0, False)
        if group["centered"]:
            spec["grad_avg"] = (0.0, False)
        return spec

    def _kernel_kwargs(self, group):
        return dict(lr=group["lr"], alpha=group["alpha"], eps=group["eps"],
                    weight_decay=group["weight_decay"], momentum=group["momentum"],
                    maximize=group["maximize"])
