"""SGD with momentum, dampening, Nesterov momentum and weight decay (torch.optim.SGD)."""
from . import _validation as check
from ._base import Optimizer


class SGD(Optimizer):
    r"""Stochastic gradient descent, optionally with momentum, as ``torch.optim.SGD``.

    For each parameter, with gradient :math:`g_t`:

    .. math::

        g_t &\leftarrow \pm g_t + \lambda p_{t-1}                          \\
        b_t &\leftarrow g_t \text{ (first step)}, \quad
              \mu b_{t-1} + (1 - \tau) g_t \text{ (after)}                   \\
        g_t &\leftarrow g_t + \mu b_t \text{ (Nesterov)}, \quad b_t \text{ (otherwise)} \\
        p_t &\leftarrow p_{t-1} - \gamma g_t

    with learning rate :math:`\gamma` (``lr``), momentum :math:`\mu`, dampening :math:`\tau` and
    weight decay :math:`\lambda`. Mini-batch SGD is this with the batch-mean gradient.

    Like torch, the momentum buffer starts at the first gradient (no dampening on the first step) and
    the learning rate multiplies the buffer (``v = mu*v + g; p -= lr*v``), unlike Sutskever's
    ``v = mu*v + lr*g``. For the texts' EMA form ``v = beta*v + (1-beta)*g`` see :class:`Momentum`.

    Parameters
    ----------
    params : iterable of numpy.ndarray, or iterable of dict
        The arrays to update in place, or parameter groups: dicts with a ``"params"`` list and any of
        the hyperparameters below, which override these defaults for that group.
    lr : float, default 1e-3
        Learning rate :math:`\gamma`, >= 0.
    momentum : float, default 0
        Momentum factor :math:`\mu`, >= 0 (0: plain SGD, no momentum buffer).
    dampening : float, default 0
        Dampening :math:`\tau` of the momentum, a real number (unchecked, as in torch; usually in
        [0, 1]); must be 0 with ``nesterov``.
    weight_decay : float, default 0
        :math:`\lambda`, >= 0: L2 penalty, added to the gradient.
    nesterov : bool, default False
        Nesterov momentum; needs ``momentum > 0`` and ``dampening == 0`` (ValueError otherwise).
    maximize : bool, default False
        Maximize the objective: step along :math:`+g_t` (the :math:`\pm` above).
    foreach : bool or None, default None
        Accepted for torch compatibility and inert: fastopt always runs its one fused kernel.
    differentiable : bool, default False
        Must be False: True (autograd through the step, torch's) raises ValueError.
    fused : bool or None, default None
        Accepted for torch compatibility and inert, as ``foreach``.
    {options}

    Notes
    -----
    {input_rules}

    State (torch's keys): ``momentum_buffer`` (only when momentum != 0). ``foreach`` and ``fused`` are
    accepted for torch compatibility; fastopt always runs its one fused kernel.

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> p = np.array([1.0, -2.0])
    >>> opt = fastopt.SGD([p], lr=0.1, momentum=0.9)
    >>> opt.step([2 * p])         # the gradient of sum(p ** 2); the buffer starts at g
    >>> print(p.round(4), opt.state[0]["momentum_buffer"])
    [ 0.8 -1.6] [ 2. -4.]
    >>> opt.step([2 * p])         # b = 0.9 * b + g
    >>> print(p.round(4))
    [ 0.46 -0.92]
    """

    _kernel = "sgd"
    _buffers = ("momentum_buffer",)

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False, foreach=None, differentiable=False, fused=None, backend="cython", **options):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize, foreach=foreach,
                        differentiable=differentiable, fused=fused)
        super().__init__(params, defaults, backend=backend, **options)

    def _check_hyperparameters(self, group):
        check.learning_rate(group["lr"])
        check.nonnegative("momentum", group["momentum"])
        check.real("dampening", group["dampening"])
        check.nonnegative("weight_decay", group["weight_decay"])
        check.flag("nesterov", group["nesterov"])
        check.flag("maximize", group["maximize"])
        check.torch_only_flags(group)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def _state_spec(self, group):
        return {"momentum_buffer": (None, False)} if group["momentum"] != 0 else {}

    def _kernel_kwargs(self, group):
        return dict(lr=group["lr"], momentum=group["momentum"], dampening=group["dampening"],
                    weight_decay=group["weight_decay"], nesterov=group["nesterov"],
                    maximize=group["maximize"])

    def _batch(self, plan, i, grads, created):
        # torch's first-step rule: a new momentum buffer starts as the gradient itself
        if not created:
            return super()._batch(plan, i, grads, created)
        start, params = plan.starts[i], plan.lists[i]
        first_steps = ["momentum_buffer" in created.get(start + k, ()) for k in range(len(params))]
        return plan.batch(params, grads[start:start + len(params)], *plan.buffers[i], **plan.kwargs[i],
                          first_steps=first_steps, check_overlap=False)
