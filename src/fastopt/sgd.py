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

    State: ``momentum_buffer`` (only when momentum != 0). ``foreach`` and ``fused`` are accepted for
    torch compatibility; fastopt always runs its one fused kernel.
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
