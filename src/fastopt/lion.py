"""Lion: evolved sign momentum (Chen et al., 2023), as google/automl's lion_pytorch."""
from . import _validation as check
from ._base import Optimizer


class Lion(Optimizer):
    r"""Lion (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms"), as the authors'
    PyTorch reference (google/automl, ``lion/lion_pytorch.py``): every element moves by exactly
    :math:`\pm\gamma` (plus decay), in the direction of the sign of an interpolated momentum.

    .. math::

        p_t &\leftarrow p_{t-1} (1 - \gamma\lambda) \\
        c_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        p_t &\leftarrow p_t - \gamma \operatorname{sign}(c_t) \\
        m_t &\leftarrow \beta_2 m_{t-1} + (1 - \beta_2) g_t

    :math:`\beta_1` only interpolates the update's direction; :math:`\beta_2` is the momentum's decay,
    and the update uses the momentum from before this step's gradient. ``sign`` is torch's: 0 for zeros
    and NaN. Since each step has the size of ``lr``, Lion wants an ``lr`` 3-10 times smaller than AdamW's
    and a ``weight_decay`` 3-10 times larger. The reference's weight decay defaults to 0 (optax's
    ``lion`` to 1e-3); it is decoupled in both, applied to the parameter before the update.

    Parameters
    ----------
    params : iterable of numpy.ndarray, or iterable of dict
        The arrays to update in place, or parameter groups: dicts with a ``"params"`` list and any of
        the hyperparameters below, which override these defaults for that group.
    lr : float, default 1e-4
        Learning rate :math:`\gamma`, >= 0: the size of every element's step.
    betas : tuple of 2 floats, default (0.9, 0.99)
        :math:`(\beta_1, \beta_2)`, each in [0, 1): the interpolation weight of the update's direction
        and the momentum's decay rate.
    weight_decay : float, default 0
        :math:`\lambda`, >= 0: decoupled weight decay, :math:`p \leftarrow p(1 - \gamma\lambda)`.
    maximize : bool, default False
        Maximize the objective: the update uses :math:`-g_t` in place of :math:`g_t` (not in the
        reference, which only minimizes).
    {options}

    Notes
    -----
    {input_rules}

    State (the reference's keys): ``exp_avg`` (the momentum :math:`m`); there is no step counter.

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> p = np.array([1.0, -2.0, 0.0])
    >>> opt = fastopt.Lion([p], lr=0.1)
    >>> opt.step([2 * p])         # a zero gradient has sign 0: that element stays
    >>> print(p.round(4), opt.state[0]["exp_avg"].round(4))
    [ 0.9 -1.9  0. ] [ 0.02 -0.04  0.  ]
    """

    _kernel = "lion"
    _buffers = ("exp_avg",)

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, *, maximize=False,
                 backend="cython", **options):
        defaults = dict(lr=lr, betas=betas, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, backend=backend, **options)

    def _check_hyperparameters(self, group):
        check.learning_rate(group["lr"])
        check.betas(group["betas"])
        check.nonnegative("weight_decay", group["weight_decay"])
        check.flag("maximize", group["maximize"])

    def _state_spec(self, group):
        return {"exp_avg": (0.0, False)}

    def _kernel_kwargs(self, group):
        beta1, beta2 = group["betas"]
        return dict(lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"],
                    maximize=group["maximize"])
