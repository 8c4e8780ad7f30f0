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

    State: ``step``, ``mu_product`` (:math:`\Pi_t`, a 0-d array of the parameter's dtype: torch keeps it
    in the default dtype, so the two agree when that is the parameters' dtype), ``exp_avg``, ``exp_avg_sq``.
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
        check.learning_rate(group["lr"])
        check.epsilon(group["eps"])
        check.betas(group["betas"])
        check.nonnegative("weight_decay", group["weight_decay"])
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
