"""Adagrad (torch.optim.Adagrad)."""
from . import _validation as check
from ._base import Optimizer


class Adagrad(Optimizer):
    r"""Adagrad (Duchi et al., 2011), as ``torch.optim.Adagrad``.

    .. math::

        g_t &\leftarrow \pm g_t + \lambda p_{t-1}, \qquad
        \tilde\gamma_t = \frac{\gamma}{1 + (t - 1)\eta} \\
        s_t &\leftarrow s_{t-1} + g_t^2 \\
        p_t &\leftarrow p_{t-1} - \tilde\gamma_t \frac{g_t}{\sqrt{s_t} + \epsilon}

    with learning-rate decay :math:`\eta` (``lr_decay``) and :math:`s_0` = ``initial_accumulator_value``;
    ``eps`` sits outside the square root.

    As in torch the state is created when the optimizer is built (``state_dict()`` holds ``step = 0``
    and ``sum`` before the first step). Unlike torch, a parameter group's own
    ``initial_accumulator_value`` is honoured (torch uses the constructor's value for every group).

    State: ``step``, ``sum``.
    """

    _kernel = "adagrad"
    _buffers = ("step", "sum")

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, foreach=None, *, maximize=False, differentiable=False, fused=None,
                 backend="cython", **options):
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, fused=fused)
        super().__init__(params, defaults, backend=backend, **options)

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        start = sum(len(g["params"]) for g in self.param_groups[:-1])
        for offset, param in enumerate(group["params"]):
            self.state[start + offset] = self._new_state(param, group)

    def _check_hyperparameters(self, group):
        check.learning_rate(group["lr"])
        check.nonnegative("lr_decay", group["lr_decay"])
        check.nonnegative("weight_decay", group["weight_decay"])
        check.nonnegative("initial_accumulator_value", group["initial_accumulator_value"])
        check.epsilon(group["eps"])
        check.flag("maximize", group["maximize"])
        check.torch_only_flags(group)

    def _state_spec(self, group):
        return {"step": (0.0, True), "sum": (float(group["initial_accumulator_value"]), False)}

    def _kernel_kwargs(self, group):
        return dict(lr=group["lr"], lr_decay=group["lr_decay"], eps=group["eps"],
                    weight_decay=group["weight_decay"], maximize=group["maximize"])
