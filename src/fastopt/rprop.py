"""Rprop: resilient backpropagation (torch.optim.Rprop)."""
from . import _validation as check
from ._base import Optimizer


class Rprop(Optimizer):
    r"""Rprop (Riedmiller & Braun, 1993), as ``torch.optim.Rprop``: each element has its own step
    size, grown while its gradient keeps its sign and shrunk when the sign flips; only the gradient's
    sign moves the parameter.

    .. math::

        f_t &= \eta_+ \text{ if } g_t g_{t-1} > 0, \quad \eta_- \text{ if } g_t g_{t-1} < 0,
               \quad 1 \text{ otherwise} \\
        h_t &\leftarrow \min(\max(h_{t-1} f_t, h_{\min}), h_{\max}) \\
        g_t &\leftarrow 0 \text{ where } f_t = \eta_- \\
        p_t &\leftarrow p_{t-1} - \operatorname{sign}(g_t)\, h_t

    The gradient kept for the next step (``prev``) is the one after the masking, so the step after a
    sign flip keeps its step size; the flip step itself leaves the element where it is. ``sign`` is
    torch's: 0 for zeros and for NaN, so a NaN gradient does not move its element.

    Parameters
    ----------
    params : iterable of numpy.ndarray, or iterable of dict
        The arrays to update in place, or parameter groups: dicts with a ``"params"`` list and any of
        the hyperparameters below, which override these defaults for that group.
    lr : float, default 1e-2
        The initial step size :math:`h_0`, >= 0. As torch, it is read once, when a parameter's state is
        made: changing it later (a scheduler) changes nothing.
    etas : tuple of 2 floats, default (0.5, 1.2)
        :math:`(\eta_-, \eta_+)`, with :math:`0 < \eta_- < 1 < \eta_+`: the factors that shrink and grow
        a step size.
    step_sizes : tuple of 2 floats, default (1e-6, 50)
        :math:`(h_{\min}, h_{\max})`, the bounds of a step size (not checked, as torch).
    capturable : bool, default False
        Must be False: True (torch's CUDA graphs) raises ValueError.
    foreach : bool or None, default None
        Accepted for torch compatibility and inert: fastopt always runs its one fused kernel.
    maximize : bool, default False
        Maximize the objective: the update uses :math:`-g_t` in place of :math:`g_t`.
    differentiable : bool, default False
        Must be False: True (autograd through the step, torch's) raises ValueError.
    {options}

    Notes
    -----
    {input_rules}

    State (torch's keys): ``step`` (counted, not used), ``prev``, ``step_size``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> p = np.array([1.0, -2.0])
    >>> opt = fastopt.Rprop([p], lr=0.1)
    >>> for _ in range(3):
    ...     opt.step([2 * p])         # the sign never flips: each step size grows by 1.2
    >>> print(p.round(4), opt.state[0]["step_size"].round(4))
    [ 0.636 -1.636] [0.144 0.144]
    """

    _kernel = "rprop"
    _buffers = ("step", "prev", "step_size")

    def __init__(self, params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *, capturable=False,
                 foreach=None, maximize=False, differentiable=False, backend="cython", **options):
        defaults = dict(lr=lr, etas=etas, step_sizes=step_sizes, foreach=foreach, maximize=maximize,
                        differentiable=differentiable, capturable=capturable)
        super().__init__(params, defaults, backend=backend, **options)

    def _check_hyperparameters(self, group):
        check.learning_rate(group["lr"])
        etaminus, etaplus = check.pair("etas", group["etas"])
        if not 0.0 < etaminus < 1.0 < etaplus:
            raise ValueError(f"Invalid eta values: {group['etas'][0]}, {group['etas'][1]}")
        check.pair("step_sizes", group["step_sizes"])
        check.flag("maximize", group["maximize"])
        check.torch_only_flags(group)

    def _state_spec(self, group):
        return {"step": (0.0, True), "prev": (0.0, False), "step_size": (check.real("lr", group["lr"]), False)}

    def _kernel_kwargs(self, group):
        etaminus, etaplus = group["etas"]
        step_size_min, step_size_max = group["step_sizes"]
        return dict(etaminus=etaminus, etaplus=etaplus, step_size_min=step_size_min,
                    step_size_max=step_size_max, maximize=group["maximize"])
