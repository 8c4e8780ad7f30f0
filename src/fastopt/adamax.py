"""Adamax: Adam with the infinity norm (torch.optim.Adamax)."""
from . import _validation as check
from ._base import Optimizer


class Adamax(Optimizer):
    r"""AdaMax (Kingma & Ba, 2015, section 7), as ``torch.optim.Adamax``.

    .. math::

        g_t &\leftarrow \pm g_t + \lambda p_{t-1} \\
        m_t &\leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        u_t &\leftarrow \max(\beta_2 u_{t-1}, |g_t| + \epsilon) \\
        p_t &\leftarrow p_{t-1} - \frac{\gamma}{1 - \beta_1^t} \frac{m_t}{u_t}

    .. warning:: Like torch, ``eps`` is added to :math:`|g_t|` inside the max; the texts add it to the
       denominator instead (:math:`m_t / (u_t + \epsilon)` with :math:`u_t = \max(\beta_2 u_{t-1}, |g_t|)`).
       The two differ only while :math:`|g_t|` is comparable to ``eps``.

    State: ``step``, ``exp_avg``, ``exp_inf``.
    """

    _kernel = "adamax"
    _buffers = ("step", "exp_avg", "exp_inf")

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, foreach=None, *,
                 maximize=False, differentiable=False, capturable=False, backend="cython", **options):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, capturable=capturable)
        super().__init__(params, defaults, backend=backend, **options)

    def _check_hyperparameters(self, group):
        check.learning_rate(group["lr"])
        check.epsilon(group["eps"])
        check.betas(group["betas"])
        check.nonnegative("weight_decay", group["weight_decay"])
        check.flag("maximize", group["maximize"])
        check.torch_only_flags(group)

    def _state_spec(self, group):
        return {"step": (0.0, True), "exp_avg": (0.0, False), "exp_inf": (0.0, False)}

    def _kernel_kwargs(self, group):
        beta1, beta2 = group["betas"]
        return dict(lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                    weight_decay=group["weight_decay"], maximize=group["maximize"])
