"""Schedule-free AdamW (Defazio et al., 2024), as facebookresearch/schedule_free's AdamWScheduleFree."""
import numpy as np

from . import _validation as check
from ._base import Optimizer
from ._formats import STATE_KEYS
from .reference._formats import _join, _split, is_16bit, narrow_into
from .reference._util import cpow

NOT_TRAINING = ("Optimizer was not in train mode when step is called. Please insert .train() and .eval() calls "
                "on the optimizer. See documentation for details.")


def schedule(group):
    """One step's scalars for ``group`` (its hyperparameters and bookkeeping: ``k``, ``lr_max``,
    ``weight_sum``), as the reference's ``step`` computes them in double: the kernel's keywords and the
    bookkeeping after the step (``"next"``). Pure: the optimizer stores ``next`` once the step ran."""
    if group["train_mode"] is not True:
        check.flag("train_mode", group["train_mode"])
        if not group["train_mode"]:
            raise RuntimeError(NOT_TRAINING)
    k, warmup = _number(group, "k"), group["warmup_steps"]
    if not (k >= 0 and k == int(k)):
        raise ValueError(f"k (the group's step count) must be a whole number >= 0, got {group['k']!r}")
    k = int(k)
    beta1, beta2 = group["betas"]
    sched = (k + 1) / warmup if k < warmup else 1.0
    lr = group["lr"] * sched
    lr_max = max(lr, _number(group, "lr_max"))
    weight = cpow(k + 1, group["r"]) * cpow(lr_max, group["weight_lr_power"])
    weight_sum = _number(group, "weight_sum") + weight
    ckp1 = weight / weight_sum if weight_sum != 0 else 0.0
    return dict(lr=lr, beta1=beta1, beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"],
                bc2=1 - beta2 ** (k + 1), ckp1=ckp1, maximize=group["maximize"],
                next=dict(k=k + 1, scheduled_lr=lr, lr_max=lr_max, weight_sum=weight_sum))


def _number(group, key):
    """A bookkeeping entry of a group as a float (read every step: checked only off the fast path)."""
    value = group[key]
    return float(value) if type(value) in (float, int) else check.real(key, value)


def check_group(group):
    """The hyperparameters of a group (the reference checks none; its bookkeeping: ``schedule``)."""
    check.learning_rate(group["lr"])
    check.betas(group["betas"])
    check.epsilon(group["eps"])
    check.nonnegative("weight_decay", group["weight_decay"])
    check.nonnegative("warmup_steps", group["warmup_steps"])
    check.real("r", group["r"])
    check.real("weight_lr_power", group["weight_lr_power"])
    check.flag("maximize", group["maximize"])


def lerp_into(p, z, weight):
    """``p = lerp(p, z, weight)`` in place, as torch's ``lerp_`` (from the nearer end), in the param's
    math (float32 for 16-bit params, rounded to nearest even where stored)."""
    math_type = np.float64 if p.dtype == np.float64 else np.float32
    a, b = p.astype(math_type), z.astype(math_type)
    out = a + weight * (b - a) if abs(weight) < 0.5 else b + (weight - 1.0) * (b - a)
    narrow_into(p, out) if is_16bit(p) else p.__setitem__(Ellipsis, out)


def switch(p, z, weight, kind=None, master=None):
    """A mode switch of one parameter (flat NumPy views): ``lerp(p, z, weight)``, on its float32 master
    where it has one (``kind`` "float32": ``master`` the master, "split": its int16 low halves), the
    param then the master rounded to nearest."""
    if kind is None:
        lerp_into(p, z, weight)
    elif kind == "float32":
        lerp_into(master, z, weight)
        narrow_into(p, master)
    else:
        full = _join(p, master)
        lerp_into(full, z, weight)
        high, low = _split(full)
        p.view(np.uint16)[...] = high
        master.view(np.uint16)[...] = low


def switch_groups(groups, states, training, kind, flat):
    """Switch every group not yet in the mode ``training``: each parameter with a ``z`` moves (``switch``),
    and the group's ``train_mode`` flips. ``states``: each parameter's state, in the groups' order;
    ``flat``: an array's (or tensor's) flat NumPy view. Returns the parameters moved."""
    moved, index = [], 0
    for group in groups:
        params = group["params"]
        if group["train_mode"] != training:
            beta1 = group["betas"][0]
            weight = 1.0 - beta1 if training else 1.0 - 1.0 / beta1
            for p, state in zip(params, states[index:index + len(params)]):
                if "z" in state:
                    switch(flat(p), flat(state["z"]), weight, kind,
                           None if kind is None else flat(state[STATE_KEYS[kind]]))
                    moved.append(p)
            group["train_mode"] = training
        index += len(params)
    return moved


class ScheduleFreeAdamW(Optimizer):
    r"""Schedule-free AdamW (Defazio et al., 2024, "The Road Less Scheduled"), as the authors'
    ``AdamWScheduleFree`` (facebookresearch/schedule_free): no learning-rate schedule to choose, an
    average of the iterates instead.

    Three sequences start at :math:`p_0`: the base sequence :math:`z`, its running average :math:`x`
    (what to evaluate) and :math:`y = (1 - \beta_1) z + \beta_1 x`, where the gradient is taken. The
    parameters hold :math:`y` in train mode (``train()``) and :math:`x` in eval mode (``eval()``);
    the state holds :math:`z`.

    .. math::

        v_t &\leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g_t^2, \qquad
        u_t = \frac{g_t}{\sqrt{v_t / (1 - \beta_2^t)} + \epsilon} + \lambda y_t \\
        z_{t+1} &= z_t - \gamma_t u_t, \qquad x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}, \qquad
        y_{t+1} = (1 - \beta_1) z_{t+1} + \beta_1 x_{t+1}

    with :math:`\gamma_t` the lr times a linear warmup over ``warmup_steps`` and the averaging weight
    :math:`c_{t+1} = w_{t+1} / \sum_{i \le t+1} w_i`, :math:`w_t = t^r \max_{i \le t}\gamma_i^{p}`
    (:math:`p`: ``weight_lr_power``; with :math:`r = 0` and no warmup, :math:`x` is the plain average
    of the :math:`z`). The step updates :math:`y` and :math:`z` in one pass, as the reference does.

    Parameters
    ----------
    params : iterable of numpy.ndarray, or iterable of dict
        The arrays to update in place, or parameter groups: dicts with a ``"params"`` list and any of
        the hyperparameters below, which override these defaults for that group.
    lr : float, default 0.0025
        Learning rate :math:`\gamma`, >= 0 (the reference's default; schedule-free wants a larger lr
        than AdamW with a schedule).
    betas : tuple of 2 floats, default (0.9, 0.999)
        :math:`(\beta_1, \beta_2)`, each in [0, 1): the interpolation between :math:`z` and :math:`x`
        (no first moment), and the second moment's decay rate.
    eps : float, default 1e-8
        :math:`\epsilon`, added to the bias-corrected :math:`\sqrt{v_t}`, >= 0.
    weight_decay : float, default 0
        :math:`\lambda`, >= 0: decoupled weight decay, taken at :math:`y`.
    warmup_steps : int, default 0
        Steps of linear learning-rate warmup, >= 0.
    r : float, default 0.0
        The polynomial weight :math:`t^r` of the average.
    weight_lr_power : float, default 2.0
        The power :math:`p` of the largest lr so far in the average's weights.
    foreach : bool or None, default None
        Accepted for compatibility with the reference and inert: fastopt always runs its one fused kernel.
    maximize : bool, default False
        Maximize the objective: the update uses :math:`-g_t` (not in the reference).
    {options}

    Notes
    -----
    {input_rules}

    Modes: ``train()`` before training and ``eval()`` before evaluating or saving a checkpoint (the
    parameters then hold :math:`x`); ``step`` in eval mode raises RuntimeError with the reference's
    message. Unlike the reference, a new optimizer starts in train mode: before the first step
    :math:`x = y = z`, so code written for the reference (``opt.train()`` first) runs unchanged, and
    the registry's common tests apply. The mode switches interpolate every parameter with its
    :math:`z` as torch's ``lerp_`` (in float32 for 16-bit parameters, rounded to nearest; with
    ``master_weights``, the masters move and the parameters are rounded from them). Not supported: the
    reference's ``inner_momentum`` (its main branch, after the 1.4.1 release). The gradients are not
    overwritten (the reference leaves the normalized gradient in ``p.grad``).

    State (the reference's keys): ``z``, ``exp_avg_sq``; per group: ``k`` (steps taken),
    ``train_mode``, ``weight_sum``, ``lr_max``, ``scheduled_lr``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> p = np.array([1.0, -2.0])
    >>> opt = fastopt.ScheduleFreeAdamW([p], lr=0.1)
    >>> opt.train()
    >>> for _ in range(3):
    ...     opt.step([2 * p])
    >>> opt.eval()                # p now holds x, the average of the z
    >>> print(p.round(4), opt.param_groups[0]["k"])
    [ 0.8061 -1.8029] 3
    """

    _kernel = "sfadamw"
    _buffers = ("z", "exp_avg_sq")
    _live = ("k", "train_mode", "weight_sum", "lr_max", "scheduled_lr")  # the bookkeeping: read every step

    def __init__(self, params, lr=0.0025, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, warmup_steps=0, r=0.0,
                 weight_lr_power=2.0, foreach=None, *, maximize=False, backend="cython", **options):
        defaults = dict(lr=lr, betas=betas, eps=eps, r=r, k=0, warmup_steps=warmup_steps, train_mode=True,
                        weight_sum=0.0, lr_max=-1.0, scheduled_lr=0.0, weight_lr_power=weight_lr_power,
                        weight_decay=weight_decay, foreach=foreach, maximize=maximize)
        super().__init__(params, defaults, backend=backend, **options)

    def train(self):
        """Train mode: the parameters move from x to y (``lerp(p, z, 1 - beta1)``); no-op in train mode."""
        self._switch(True)

    def eval(self):
        """Eval mode: the parameters move from y back to x (``lerp(p, z, 1 - 1/beta1)``), the point to
        evaluate and checkpoint; no-op in eval mode."""
        self._switch(False)

    def _switch(self, training):
        with self._lock:
            states = [self.state.get(i, {}) for i in range(len(self._params()))]
            switch_groups(self.param_groups, states, training, self._precision.master_weights,
                          lambda a: a.reshape(-1))

    def _check_hyperparameters(self, group):
        check_group(group)

    def _state_spec(self, group):
        return {"z": ("param", False), "exp_avg_sq": (0.0, False)}

    def _kernel_kwargs(self, group):
        return schedule(group)

    def _advance(self, group, kwargs):
        group.update(kwargs["next"])
