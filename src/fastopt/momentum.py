"""The texts' momentum: an exponential moving average of the gradients."""
from . import _validation as check
from ._base import Optimizer


class Momentum(Optimizer):
    r"""Gradient descent with momentum in the texts' EMA form (no torch.optim equivalent).

    .. math::

        v_t &\leftarrow \beta v_{t-1} + (1 - \beta) g_t, \qquad v_0 = 0 \\
        p_t &\leftarrow p_{t-1} - \gamma v_t

    This differs from ``SGD(momentum=beta, dampening=beta)`` on the first step: torch starts its buffer
    at :math:`g_1`, this form at :math:`(1-\beta) g_1`; from then on the two agree.

    State: ``momentum_buffer`` (zeros until the first step).
    """

    _kernel = "momentum"
    _buffers = ("momentum_buffer",)

    def __init__(self, params, lr=0.01, beta=0.9, *, backend="cython", **options):
        super().__init__(params, dict(lr=lr, beta=beta), backend=backend, **options)

    def _check_hyperparameters(self, group):
        check.learning_rate(group["lr"])
        check.unit_interval("beta", group["beta"])

    def _state_spec(self, group):
        return {"momentum_buffer": (0.0, False)}

    def _kernel_kwargs(self, group):
        return dict(lr=group["lr"], beta=group["beta"])
