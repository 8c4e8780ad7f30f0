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

    State: ``step`` (counted, unused by the math), ``square_avg`` (:math:`v`), ``acc_delta`` (:math:`u`).
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
