"""LAMB: layer-wise adaptive moments (You et al., 2020), as timm's Lamb (after NVIDIA apex's FusedLAMB)."""
from . import _validation as check
from ._base import Optimizer


class LAMB(Optimizer):
    r"""LAMB (You et al., 2020, "Large Batch Optimization for Deep Learning: Training BERT in 76
    minutes"), as timm's ``Lamb`` (``timm/optim/lamb.py``, itself after NVIDIA apex's ``FusedLAMB``):
    Adam's direction plus decoupled weight decay, rescaled per tensor so that its step is proportional
    to the tensor's own norm (the trust ratio).

    .. math::

        m_t &\leftarrow \beta_1 m_{t-1} + \beta_3 g_t,
            \qquad \beta_3 = 1 - \beta_1 \text{ (1 without grad averaging)} \\
        v_t &\leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        u_t &= \frac{m_t / (1 - \beta_1^t)}{\sqrt{v_t} / \sqrt{1 - \beta_2^t} + \epsilon}
            + \lambda p_{t-1} \\
        r_t &= \frac{\lVert p_{t-1} \rVert}{\lVert u_t \rVert}
            \text{ (1 if either norm is 0; at most 1 with trust\_clip)} \\
        p_t &\leftarrow p_{t-1} - \gamma r_t u_t

    The norms are over the whole tensor (a "layer"), in double. Without weight decay (and without
    ``always_adapt``) there is no trust ratio (:math:`r_t = 1`): the step is Adam's, as in timm and
    apex. The kernel makes two passes over each tensor that uses the ratio: one reads and sums the
    squares of :math:`p` and :math:`u`, the next computes :math:`u` again (the same bits) and writes; the
    norms are the same for any thread count (docs/precision.md, "Reductions").

    How the reference implementations differ (fastopt follows timm): apex's ``FusedLAMB`` has the same
    math, with eps added to :math:`\sqrt{v_t / (1 - \beta_2^t)}` (the same up to rounding), no clamp, and
    global gradient clipping to a norm of 1 by default (``max_grad_norm=1.0``); timm clips likewise by
    default, and ``trust_clip`` caps the ratio at 1. DeepSpeed's ``FusedLamb`` puts eps on the
    uncorrected :math:`\sqrt{v_t}`, clamps the ratio to [0.01, 10] and applies it with weight decay 0
    too. optax's ``lamb`` always applies the ratio, with weight decay 0 by default. The paper's BERT
    settings are betas (0.9, 0.999), eps 1e-6, weight decay 0.01: these defaults. fastopt clips only when
    asked (``max_grad_norm=1.0`` here gives timm's and apex's default clipping, with
    ``torch.nn.utils.clip_grad_norm_``'s coefficient).

    Parameters
    ----------
    params : iterable of numpy.ndarray, or iterable of dict
        The arrays to update in place, or parameter groups: dicts with a ``"params"`` list and any of
        the hyperparameters below, which override these defaults for that group.
    lr : float, default 1e-3
        Learning rate :math:`\gamma`, >= 0.
    bias_correction : bool, default True
        Divide the moments by :math:`1 - \beta^t`.
    betas : tuple of 2 floats, default (0.9, 0.999)
        :math:`(\beta_1, \beta_2)`, each in [0, 1): the moments' decay rates.
    eps : float, default 1e-6
        :math:`\epsilon`, >= 0, added to the denominator.
    weight_decay : float, default 0.01
        :math:`\lambda`, >= 0: decoupled weight decay, added to the update inside the trust ratio.
    grad_averaging : bool, default True
        The gradient enters :math:`m` with weight :math:`1 - \beta_1` (False: weight 1).
    trust_clip : bool, default False
        Cap the trust ratio at 1.
    always_adapt : bool, default False
        Apply the trust ratio with ``weight_decay=0`` too (apex's ``use_nvlamb``).
    maximize : bool, default False
        Maximize the objective: the update uses :math:`-g_t` in place of :math:`g_t` (not in timm).
    {options}

    Notes
    -----
    {input_rules}

    State: ``step`` (per parameter, as torch.optim's Adam: timm counts per group), ``exp_avg``,
    ``exp_avg_sq``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> p = np.array([3.0, 4.0])
    >>> opt = fastopt.LAMB([p], lr=0.1, weight_decay=0.0, always_adapt=True)
    >>> opt.step([np.array([1.0, -1.0])])  # ||p|| = 5, ||u|| = sqrt(2): a step of 0.5 along u
    >>> print(p.round(4))
    [2.6464 4.3536]
    """

    _kernel = "lamb"
    _buffers = ("step", "exp_avg", "exp_avg_sq")

    def __init__(self, params, lr=1e-3, bias_correction=True, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01,
                 grad_averaging=True, trust_clip=False, always_adapt=False, *, maximize=False, backend="cython",
                 **options):
        defaults = dict(lr=lr, bias_correction=bias_correction, betas=betas, eps=eps, weight_decay=weight_decay,
                        grad_averaging=grad_averaging, trust_clip=trust_clip, always_adapt=always_adapt,
                        maximize=maximize)
        super().__init__(params, defaults, backend=backend, **options)

    def _check_hyperparameters(self, group):
        check.adam_family(group)
        for key in ("bias_correction", "grad_averaging", "trust_clip", "always_adapt", "maximize"):
            check.flag(key, group[key])

    def _state_spec(self, group):
        return {"step": (0.0, True), "exp_avg": (0.0, False), "exp_avg_sq": (0.0, False)}

    def _kernel_kwargs(self, group):
        beta1, beta2 = group["betas"]
        return dict(lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                    weight_decay=group["weight_decay"], bias_correction=group["bias_correction"],
                    grad_averaging=group["grad_averaging"], always_adapt=group["always_adapt"],
                    trust_clip=group["trust_clip"], maximize=group["maximize"])
