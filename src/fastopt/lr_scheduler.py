r"""Learning-rate schedulers with torch.optim.lr_scheduler's names, signatures, numbers and state_dicts.

A scheduler drives ``group["lr"]`` (and, for CyclicLR/OneCycleLR, ``group["momentum"]`` or
``group["betas"][0]``) of every param group of any object with a ``param_groups`` list of dicts: a
fastopt optimizer (which reads its hyperparameters afresh at every step), a ``fastopt.torch`` or a
``torch.optim`` optimizer. Pure Python; torch is never imported.

With ``e = last_epoch`` (the number of ``step()`` calls; the constructor performs step 0),
``b = base_lr`` (``group["initial_lr"]``) and ``lr`` the group's current lr:

=========================== ======================================================================
LambdaLR                    ``b * f(e)``
MultiplicativeLR            ``lr * f(e)`` for ``e > 0``
StepLR                      ``b * gamma ** (e // step_size)``
MultiStepLR                 ``b * gamma ** #{milestones <= e}`` (repeated milestones count repeatedly)
ConstantLR                  ``b * factor`` for ``e < total_iters``, then ``b``
LinearLR                    ``b * (s + (t - s) * min(e, T) / T)``
ExponentialLR               ``b * gamma ** e``
PolynomialLR                ``b * (1 - min(e, T) / T) ** power``
CosineAnnealingLR           ``m + (b - m) * (1 + cos(pi * e / T_max)) / 2`` (not clamped at T_max)
CosineAnnealingWarmRestarts ``m + (b - m) * (1 + cos(pi * T_cur / T_i)) / 2``, ``T_i *= T_mult`` at restarts
CyclicLR                    triangle between base_lr and max_lr, times a scale (mode / scale_fn)
OneCycleLR                  warm-up to max_lr, anneal to max_lr / div_factor / final_div_factor
SequentialLR                scheduler i between milestones i-1 and i (restarted at epoch 0)
ChainedScheduler            every scheduler stepped each step (their factors multiply)
ReduceLROnPlateau           ``lr = max(lr * factor, min_lr)`` after more than ``patience`` bad epochs
PiecewiseConstantLR         ``values[i]`` for ``boundaries[i-1] <= t < boundaries[i]``
ExponentialDecayLR          ``b * exp(-decay * t)``
InverseTimeDecayLR          ``b * (beta * t + 1) ** (-alpha)``
=========================== ======================================================================

Like torch, MultiplicativeLR, StepLR, MultiStepLR, ConstantLR, LinearLR, ExponentialLR, PolynomialLR
and CosineAnnealingLR update the lr *recursively* (the current lr times a ratio, so schedulers on one
optimizer compose); LambdaLR, CosineAnnealingWarmRestarts, CyclicLR, OneCycleLR and the texts' three
compute it from ``b`` and ``e`` alone. ``step(epoch)`` (deprecated, it warns) uses the closed form
where torch has one. The numbers are torch's to the last bit: the same arithmetic in the same order.

Checkpoints: ``state_dict()`` holds plain values only (the keys of torch's, so the two load each
other's), as a snapshot; lambdas are saved only as the ``__dict__`` of callable objects. As in torch,
build a scheduler *before* loading the optimizer's state into it (the constructor writes the lrs);
SequentialLR and ChainedScheduler restore the lr themselves, so for them either order resumes exactly.

Where fastopt differs from torch 2.13 (each class says more):

* Values written into param groups are Python floats (never NumPy scalars); a Tensor lr is filled in
  place, as torch does.
* No ``optimizer.step`` patching, hence no "lr_scheduler.step() before optimizer.step()" warning: a
  fastopt optimizer is left exactly as it was (picklable, unchanged ``step``).
* The optimizer is duck-typed (anything with ``param_groups``); a clear TypeError otherwise.
* ``load_state_dict`` never mutates its argument and copies what it loads (torch pops and puts back
  keys, and aliases the lists); ``state_dict`` returns a copy.
* Arguments that make torch divide by zero later (StepLR ``step_size=0``, CosineAnnealingLR
  ``T_max=0``, CyclicLR ``step_size_up <= 0`` or ``step_size_down < 0``) and a LambdaLR
  ``lr_lambda`` that is not callable are rejected up front with a ValueError/TypeError; CyclicLR
  checks all its arguments before writing any group (torch writes the lrs first); a ReduceLROnPlateau
  ``mode``/``threshold_mode`` that is not a string is a ValueError (torch: a TypeError from ``+``).
* SequentialLR resumes exactly, whatever the load order, and honours ``last_epoch``; ChainedScheduler
  resumes exactly whatever the load order too (see their docs).
"""
import copy
import math
import numbers
import types
import warnings
from bisect import bisect_right
from collections import Counter

__all__ = [
    "LambdaLR",
    "MultiplicativeLR",
    "StepLR",
    "MultiStepLR",
    "ConstantLR",
    "LinearLR",
    "ExponentialLR",
    "SequentialLR",
    "CosineAnnealingLR",
    "ChainedScheduler",
    "ReduceLROnPlateau",
    "CyclicLR",
    "CosineAnnealingWarmRestarts",
    "OneCycleLR",
    "PolynomialLR",
    "LRScheduler",
    "PiecewiseConstantLR",
    "ExponentialDecayLR",
    "InverseTimeDecayLR",
]

EPOCH_DEPRECATION_WARNING = (
    "The epoch parameter in `scheduler.step()` was not necessary and is being "
    "deprecated where possible. Please use `scheduler.step()` to step the "
    "scheduler. During the deprecation, if epoch is different from None, the "
    "closed form is used instead of the new chainable form, where available. "
    "Please open an issue if you are unable to replicate your use case: "
    "https://github.com/pytorch/pytorch/issues/new/choose."
)


# ---------------------------------------------------------------------------------------------------
# helpers (torch-free: tensors are recognised by their type's module)


def _is_tensor(value):
    return type(value).__module__.startswith("torch") and hasattr(value, "fill_")


def _copy(value):
    """A copy of a Tensor value (never aliasing a group's tensor lr); other values as they are."""
    return value.clone() if _is_tensor(value) else value


def _plain(value):
    """What goes into a param group: a real number as a Python float (never a NumPy scalar)."""
    if _is_tensor(value) or isinstance(value, bool) or not isinstance(value, numbers.Real):
        return value
    return float(value)


def _check_optimizer(optimizer):
    groups = getattr(optimizer, "param_groups", None)
    if not isinstance(groups, (list, tuple)) or not all(isinstance(g, dict) for g in groups):
        raise TypeError(f"{type(optimizer).__name__} is not an Optimizer: a scheduler needs an object "
                        "with a `param_groups` list of dicts (a fastopt, fastopt.torch or torch.optim "
                        "optimizer)")


def _optimizer_keys(optimizer):
    """The hyperparameter names of an optimizer (its ``defaults``, as torch reads them)."""
    defaults = getattr(optimizer, "defaults", None)
    if isinstance(defaults, dict):
        return defaults
    groups = optimizer.param_groups
    return groups[0] if groups else {}


def _format_param(name, optimizer, param):
    """One value per param group (a scalar broadcast, or a list/tuple of the groups' length)."""
    if isinstance(param, (list, tuple)):
        if len(param) != len(optimizer.param_groups):
            raise ValueError(
                f"{name} must have the same length as optimizer.param_groups. "
                f"{name} has {len(param)} values, param_groups has {len(optimizer.param_groups)}."
            )
    else:
        param = [param] * len(optimizer.param_groups)
    return [_copy(p) for p in param]


def _param_groups_val_list(optimizer, key):
    return [_copy(group[key]) for group in optimizer.param_groups]


def _update_param_group_val(param_group, key, value):
    current = param_group[key]
    if _is_tensor(current):
        current.fill_(value.reshape(()) if _is_tensor(value) else value)
    else:
        param_group[key] = _plain(value)


def _set_momentum(group, momentum, use_beta1):
    if use_beta1:
        group["betas"] = (_plain(momentum), *group["betas"][1:])
    else:
        group["momentum"] = _plain(momentum)


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not value > 0:
        raise ValueError(f"Expected positive {name}, but got {value}")


def _check_real(name, value, minimum=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and not value >= minimum:
        raise ValueError(f"Expected {name} >= {minimum}, but got {value}")


def _lambda_states(lr_lambdas):
    """torch's rule: a lambda or function is not saved (None); a callable object saves its __dict__."""
    return [None if isinstance(fn, types.FunctionType) or not hasattr(fn, "__dict__")
            else copy.deepcopy(fn.__dict__) for fn in lr_lambdas]


def _load_lambda_states(lr_lambdas, states):
    for fn, state in zip(lr_lambdas, states):
        if state is not None:
            fn.__dict__.update(copy.deepcopy(state))


def _check_state_dict(state_dict):
    if not isinstance(state_dict, dict):
        raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")


# ---------------------------------------------------------------------------------------------------


class LRScheduler:
    r"""Base class: ``step()`` sets ``last_epoch += 1`` and ``group["lr"] = get_lr()[i]``.

    The constructor records ``group["initial_lr"]`` (when ``last_epoch == -1``; with ``last_epoch
    >= 0`` every group must already have it: KeyError otherwise), ``base_lrs`` from it, and performs
    the first step (``last_epoch`` becomes 0). Subclasses implement ``get_lr()`` (and optionally
    ``_get_closed_form_lr()``, used by the deprecated ``step(epoch)``).

    Unlike torch, the optimizer's ``step`` is not wrapped (no call-order warning), and the optimizer
    only needs ``param_groups``.

    Parameters
    ----------
    optimizer : Optimizer
        The wrapped optimizer: a fastopt, ``fastopt.torch`` or ``torch.optim`` optimizer, or any object
        with a ``param_groups`` list of dicts (TypeError otherwise).
    last_epoch : int, default -1
        The index of the last epoch. -1 starts the schedule from the beginning; ``N >= 0`` resumes it:
        every param group must then hold ``initial_lr`` (KeyError otherwise), and the constructor's step
        makes ``last_epoch`` ``N + 1``, as in torch.

    Examples
    --------
    A scheduler subclass only computes the lrs of step ``last_epoch`` (here halving every step):

    >>> import numpy as np
    >>> import fastopt
    >>> from fastopt.lr_scheduler import LRScheduler
    >>> class Halving(LRScheduler):
    ...     def get_lr(self):
    ...         return [base_lr * 0.5 ** self.last_epoch for base_lr in self.base_lrs]
    >>> opt = fastopt.SGD([np.zeros(2)], lr=0.1)
    >>> sched = Halving(opt)                    # the constructor performs step 0
    >>> sched.last_epoch, sched.get_last_lr()
    (0, [0.1])
    >>> for _ in range(3):
    ...     sched.step()
    >>> sched.last_epoch, [round(lr, 4) for lr in sched.get_last_lr()], opt.param_groups[0]["lr"]
    (3, [0.0125], 0.0125)

    A checkpoint holds plain values; a scheduler built on the restored optimizer resumes from it:

    >>> state = sched.state_dict()
    >>> opt2 = fastopt.SGD([np.zeros(2)], lr=0.1)
    >>> opt2.load_state_dict(opt.state_dict())
    >>> resumed = Halving(opt2)
    >>> resumed.load_state_dict(state)
    >>> resumed.step()
    >>> resumed.last_epoch, [round(lr, 5) for lr in resumed.get_last_lr()]
    (4, [0.00625])
    """

    _get_lr_called_within_step = False
    _is_initial = False

    def __init__(self, optimizer, last_epoch=-1):
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", _plain(_copy(group["lr"])))
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(
                        f"param 'initial_lr' is not specified in param_groups[{i}] when resuming "
                        "scheduler with last_epoch >= 0.\n"
                        "This typically happens when:\n"
                        "1. You're trying to resume training from a checkpoint but haven't properly "
                        "loaded the optimizer state\n"
                        "2. You're using last_epoch >= 0 for a fresh training run (not recommended)"
                    )
        self.base_lrs = _param_groups_val_list(optimizer, "initial_lr")
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self):
        """Reset the step count and perform the constructor's step."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def state_dict(self):
        """Every attribute but the optimizer (a copy: later steps do not change it).

        Returns
        -------
        dict
            Plain values under torch's keys, so that torch's scheduler loads it too.
        """
        return {key: copy.deepcopy(value) for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict):
        """Load a ``state_dict()`` (fastopt's or torch's); the argument is not modified.

        Parameters
        ----------
        state_dict : dict
            A ``state_dict()`` of this scheduler class, fastopt's or torch's.
        """
        _check_state_dict(state_dict)
        self.__dict__.update(copy.deepcopy({k: v for k, v in state_dict.items() if k != "optimizer"}))

    def get_last_lr(self):
        """The lrs written by the last step (Tensor lrs as copies).

        Returns
        -------
        list
            One lr per param group (Python floats, or Tensors for Tensor lrs).
        """
        return self._last_lr

    def get_lr(self):
        """The lrs of step ``last_epoch`` (called by ``step()``; use ``get_last_lr()`` to read them)."""
        raise NotImplementedError

    def _warn_outside_step(self):
        if not self._get_lr_called_within_step:
            warnings.warn("To get the last learning rate computed by the scheduler, "
                          "please use `get_last_lr()`.", UserWarning, stacklevel=3)

    def step(self, epoch=None):
        """Advance one step (``epoch`` given: deprecated, jump to it using the closed form if any).

        Parameters
        ----------
        epoch : int or None, default None
            None: ``last_epoch += 1``. An int (deprecated, it warns, as in torch): ``last_epoch =
            epoch``, the lrs from the closed form where the scheduler has one.
        """
        self._step_count += 1
        if epoch is not None:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _update_lr(self, epoch=None):
        self._get_lr_called_within_step = True
        try:
            if epoch is None:
                self.last_epoch += 1
                values = self.get_lr()
            else:
                self.last_epoch = epoch
                if hasattr(self, "_get_closed_form_lr"):
                    values = self._get_closed_form_lr()
                else:
                    values = self.get_lr()
        finally:
            self._get_lr_called_within_step = False
        values = list(values)
        groups = self.optimizer.param_groups
        if len(values) != len(groups):
            raise ValueError(f"{type(self).__name__} computed {len(values)} learning rates for "
                             f"{len(groups)} param groups")
        for group, lr in zip(groups, values):
            _update_param_group_val(group, "lr", lr)
        self._last_lr = _param_groups_val_list(self.optimizer, "lr")

    def _restore_groups(self):
        """Write what this scheduler had written at its last step back into the optimizer (used by
        SequentialLR/ChainedScheduler on load): its lrs and, if it cycles momentum, the momentum."""
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            _update_param_group_val(group, "lr", _copy(lr))


class _LRScheduler(LRScheduler):
    """Backward-compatible name of :class:`LRScheduler` (as in torch)."""


def _lambda_list(optimizer, lr_lambda):
    if not isinstance(lr_lambda, (list, tuple)):
        lambdas = [lr_lambda] * len(optimizer.param_groups)
    else:
        if len(lr_lambda) != len(optimizer.param_groups):
            raise ValueError(f"Expected {len(optimizer.param_groups)} lr_lambdas, but got {len(lr_lambda)}")
        lambdas = list(lr_lambda)
    for fn in lambdas:
        if not callable(fn):
            raise TypeError(f"lr_lambda should be a function, but got {type(fn).__name__}")
    return lambdas


class LambdaLR(LRScheduler):
    r"""``lr = base_lr * lr_lambda(e)`` (one function, or a list with one per group).

    Functions and lambdas are not saved by ``state_dict()``; callable objects save their ``__dict__``.
    Unlike torch, a non-callable ``lr_lambda`` is a TypeError at construction.

    Parameters
    ----------
    optimizer : Optimizer
        The wrapped optimizer: a fastopt, ``fastopt.torch`` or ``torch.optim`` optimizer, or any object
        with a ``param_groups`` list of dicts (TypeError otherwise).
    lr_lambda : callable or list of callable
        A function computing a multiplicative factor from an integer ``epoch``, or a list of such
        functions, one per param group (ValueError if the length differs). Each must be callable
        (TypeError otherwise).
    last_epoch : int, default -1
        The index of the last epoch. -1 starts the schedule from the beginning; ``N >= 0`` resumes it:
        every param group must then hold ``initial_lr`` (KeyError otherwise), and the constructor's step
        makes ``last_epoch`` ``N + 1``, as in torch.

    Examples
    --------
    A linear warm-up over the first four epochs:

    >>> import numpy as np
    >>> import fastopt
    >>> from fastopt.lr_scheduler import LambdaLR
    >>> opt = fastopt.SGD([np.zeros(2)], lr=0.1)
    >>> sched = LambdaLR(opt, lr_lambda=lambda epoch: min(1.0, (epoch + 1) / 4))
    >>> lrs = []
    >>> for epoch in range(6):
    ...     opt.step([np.ones(2)])             # an epoch of training at the current lr
    ...     lrs.append(round(sched.get_last_lr()[0], 4))
    ...     sched.step()
    >>> lrs
    [0.025, 0.05, 0.075, 0.1, 0.1, 0.1]
    """

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        self.lr_lambdas = _lambda_list(optimizer, lr_lambda)
        super().__init__(optimizer, last_epoch)

    def state_dict(self):
        """Every attribute but the optimizer; ``lr_lambdas`` as torch saves them: None for a function
        or lambda, the ``__dict__`` of a callable object.

        Returns
        -------
        dict
            Plain values under torch's keys, so that torch's scheduler loads it too.
        """
        state = {key: copy.deepcopy(value) for key, value in self.__dict__.items()
                 if key not in ("optimizer", "lr_lambdas")}
        state["lr_lambdas"] = _lambda_states(self.lr_lambdas)
        return state

    def load_state_dict(self, state_dict):
        """Load a ``state_dict()`` (fastopt's or torch's): callable objects among the lambdas get their
        saved ``__dict__`` back. The argument is not modified.

        Parameters
        ----------
        state_dict : dict
            A ``state_dict()`` of this scheduler class, fastopt's or torch's.
        """
        _check_state_dict(state_dict)
        LRScheduler.load_state_dict(self, {k: v for k, v in state_dict.items() if k != "lr_lambdas"})
        _load_lambda_states(self.lr_lambdas, state_dict.get("lr_lambdas", ()))

    def get_lr(self):
        self._warn_outside_step()
        return [base_lr * lmbda(self.last_epoch) for lmbda, base_lr in zip(self.lr_lambdas, self.base_lrs)]


class MultiplicativeLR(LRScheduler):
    r"""``lr = lr * lr_lambda(e)`` for ``e > 0`` (unchanged at construction).

    Parameters
    ----------
    optimizer : Optimizer
        The wrapped optimizer: a fastopt, ``fastopt.torch`` or ``torch.optim`` optimizer, or any object
        with a ``param_groups`` list of dicts (TypeError otherwise).
    lr_lambda : callable or list of callable
        A function computing the factor of epoch ``epoch`` (an int) by which the current lr is
        multiplied, or a list of such functions, one per param group (ValueError if the length
        differs). Each must be callable (TypeError otherwise).
    last_epoch : int, default -1
        The index of the last epoch. -1 starts the schedule from the beginning; ``N >= 0`` resumes it:
        every param group must then hold ``initial_lr`` (KeyError otherwise), and the constructor's step
        makes ``last_epoch`` ``N + 1``, as in torch.

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> from fastopt.lr_scheduler import MultiplicativeLR
    >>> opt = fastopt.SGD([np.zeros(2)], lr=0.1)
    >>> sched = MultiplicativeLR(opt, lr_lambda=lambda epoch: 0.9)
    >>> lrs = []
    >>> for epoch in range(5):
    ...     opt.step([np.ones(2)])             # an epoch of training at the current lr
    ...     lrs.append(round(sched.get_last_lr()[0], 4))
    ...     sched.step()
    >>> lrs
    [0.1, 0.09, 0.081, 0.0729, 0.0656]
    """

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        self.lr_lambdas = _lambda_list(optimizer, lr_lambda)
        super().__init__(optimizer, last_epoch)

    state_dict = LambdaLR.state_dict
    load_state_dict = LambdaLR.load_state_dict

    def get_lr(self):
        self._warn_outside_step()
        if not self._is_initial:
            return [group["lr"] * lmbda(self.last_epoch)
                    for lmbda, group in zip(self.lr_lambdas, self.optimizer.param_groups)]
        return _param_groups_val_list(self.optimizer, "lr")


class StepLR(LRScheduler):
    r"""``lr = base_lr * gamma ** (e // step_size)`` (recursively: times gamma every step_size steps).

    Unlike torch (which divides by zero later), ``step_size <= 0`` is a ValueError.

    Parameters
    ----------
    optimizer : Optimizer
        The wrapped optimizer: a fastopt, ``fastopt.torch`` or ``torch.optim`` optimizer, or any object
        with a ``param_groups`` list of dicts (TypeError otherwise).
    step_size : int
        Period of learning rate decay, in epochs: > 0 (ValueError otherwise; TypeError if not a real
        number).
    gamma : float, default 0.1
        Multiplicative factor of learning rate decay.
    last_epoch : int, default -1
        The index of the last epoch. -1 starts the schedule from the beginning; ``N >= 0`` resumes it:
        every param group must then hold ``initial_lr`` (KeyError otherwise), and the constructor's step
        makes ``last_epoch`` ``N + 1``, as in torch.

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> from fastopt.lr_scheduler import StepLR
    >>> opt = fastopt.SGD([np.zeros(2)], lr=0.1)
    >>> sched = StepLR(opt, step_size=2, gamma=0.5)
    >>> lrs = []
    >>> for epoch in range(6):
    ...     opt.step([np.ones(2)])             # an epoch of training at the current lr
    ...     lrs.append(round(sched.get_last_lr()[0], 4))
    ...     sched.step()
    >>> lrs
    [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
    """

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        _check_optimizer(optimizer)
        _check_positive("step_size", step_size)
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        self._warn_outside_step()
        if (self.last_epoch == 0) or (self.last_epoch % self.step_size != 0):
            return _param_groups_val_list(self.optimizer, "lr")
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [base_lr * self.gamma ** (self.last_epoch // self.step_size) for base_lr in self.base_lrs]


class MultiStepLR(LRScheduler):
    r"""``lr = base_lr * gamma ** k``, k the number of milestones ``<= e`` (a milestone listed n times
    multiplies by ``gamma ** n``).

    Parameters
    ----------
    optimizer : Optimizer
        The wrapped optimizer: a fastopt, ``fastopt.torch`` or ``torch.optim`` optimizer, or any object
        with a ``param_groups`` list of dicts (TypeError otherwise).
    milestones : iterable of int
        Epoch indices at which the lr is multiplied by ``gamma`` (increasing, as torch asks; a
        milestone listed n times multiplies by ``gamma ** n``).
    gamma : float, default 0.1
        Multiplicative factor of learning rate decay.
    last_epoch : int, default -1
        The index of the last epoch. -1 starts the schedule from the beginning; ``N >= 0`` resumes it:
        every param group must then hold ``initial_lr`` (KeyError otherwise), and the constructor's step
        makes ``last_epoch`` ``N + 1``, as in torch.

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> from fastopt.lr_scheduler import MultiStepLR
    >>> opt = fastopt.SGD([np.zeros(2)], lr=0.1)
    >>> sched = MultiStepLR(opt, milestones=[2, 5], gamma=0.1)
    >>> lrs = []
    >>> for epoch in range(7):
    ...     opt.step([np.ones(2)])             # an epoch of training at the current lr
    ...     lrs.append(round(sched.get_last_lr()[0], 4))
    ...     sched.step()
    >>> lrs
    [0.1, 0.1, 0.01, 0.01, 0.01, 0.001, 0.001]
    """

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        _check_optimizer(optimizer)
        self.milestones = Counter(milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        self._warn_outside_step()
        if self.last_epoch not in self.milestones:
            return _param_groups_val_list(self.optimizer, "lr")
        return [group["lr"] * self.gamma ** self.milestones[self.last_epoch]
                for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        milestones = sorted(self.milestones.elements())
        return [base_lr * self.gamma ** bisect_right(milestones, self.last_epoch) for base_lr in self.base_lrs]


class ConstantLR(LRScheduler):
    r"""``lr = base_lr * factor`` for ``e < total_iters``, then ``base_lr`` (factor in [0, 1]).

    Parameters
    ----------
    optimizer : Optimizer
        The wrapped optimizer: a fastopt, ``fastopt.torch`` or ``torch.optim`` optimizer, or any object
        with a ``param_groups`` list of dicts (TypeError otherwise).
    factor : float, default 1/3
        The number the lr is multiplied by until ``total_iters``: in [0, 1] (ValueError otherwise).
    total_iters : int, default 5
        The number of steps during which the lr is multiplied by ``factor``.
    last_epoch : int, default -1
        The index of the last epoch. -1 starts the schedule from the beginning; ``N >= 0`` resumes it:
        every param group must then hold ``initial_lr`` (KeyError otherwise), and the constructor's step
        makes ``last_epoch`` ``N + 1``, as in torch.

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> from fastopt.lr_scheduler import ConstantLR
    >>> opt = fastopt.SGD([np.zeros(2)], lr=0.1)
    >>> sched = ConstantLR(opt, factor=0.5, total_iters=3)
    >>> lrs = []
    >>> for epoch in range(5):
    ...     opt.step([np.ones(2)])             # an epoch of training at the current lr
    ...     lrs.append(round(sched.get_last_lr()[0], 4))
    ...     sched.step()
    >>> lrs
    [0.05, 0.05, 0.05, 0.1, 0.1]
    """

    def __init__(self, optimizer, factor=1.0 / 3, total_iters=5, last_epoch=-1):
        _check_optimizer(optimizer)
        if factor > 1.0 or factor < 0:
            raise ValueError("Constant multiplicative factor expected to be between 0 and 1.")
        self.factor = factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        self._warn_outside_step()
        if self.last_epoch == 0:
            return [group["lr"] * self.factor for group in self.optimizer.param_groups]
        if self.last_epoch != self.total_iters:
            return _param_groups_val_list(self.optimizer, "lr")
        return [group["lr"] * (1.0 / self.factor) for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [base_lr * (self.factor + (self.last_epoch >= self.total_iters) * (1 - self.factor))
                for base_lr in self.base_lrs]


class LinearLR(LRScheduler):
    r"""``lr = base_lr * (s + (t - s) * min(e, T) / T)`` with ``s = start_factor`` in (0, 1],
    ``t = end_factor`` in [0, 1], ``T = total_iters``.

    Parameters
    ----------
    optimizer : Optimizer
        The wrapped optimizer: a fastopt, ``fastopt.torch`` or ``torch.optim`` optimizer, or any object
        with a ``param_groups`` list of dicts (TypeError otherwise).
    start_factor : float, default 1/3
        The number the lr is multiplied by at epoch 0; the factor then changes linearly towards
        ``end_factor``. In (0, 1] (ValueError otherwise).
    end_factor : float, default 1.0
        The number the lr is multiplied by from ``total_iters`` on: in [0, 1] (ValueError otherwise).
    total_iters : int, default 5
        The number of steps over which the factor goes from ``start_factor`` to ``end_factor``.
    last_epoch : int, default -1
        The index of the last epoch. -1 starts the schedule from the beginning; ``N >= 0`` resumes it:
        every param group must then hold ``initial_lr`` (KeyError otherwise), and the constructor's step
        makes ``last_epoch`` ``N + 1``, as in torch.

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> from fastopt.lr_scheduler import LinearLR
    >>> opt = fastopt.SGD([np.zeros(2)], lr=0.1)
    >>> sched = LinearLR(opt, start_factor=0.25, end_factor=1.0, total_iters=3)
    >>> lrs = []
    >>> for epoch in range(5):
    ...     opt.step([np.ones(2)])             # an epoch of training at the current lr
    ...     lrs.append(round(sched.get_last_lr()[0], 4))
    ...     sched.step()
    >>> lrs
    [0.025, 0.05, 0.075, 0.1, 0.1]
    """

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5, last_epoch=-1):
        _check_optimizer(optimizer)
        if start_factor > 1.0 or start_factor <= 0:
            raise ValueError("Starting multiplicative factor expected to be greater than 0 and less or equal to 1.")
        if end_factor > 1.0 or end_factor < 0:
            raise ValueError("Ending multiplicative factor expected to be between 0 and 1.")
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        self._warn_outside_step()
        if self.last_epoch == 0:
            return [group["lr"] * self.start_factor for group in self.optimizer.param_groups]
        if self._is_initial or self.last_epoch > self.total_iters:
            return _param_groups_val_list(self.optimizer, "lr")
        ratio = 1.0 + (self.end_factor - self.start_factor) / (
            self.total_iters * self.start_factor + (self.last_epoch - 1) * (self.end_factor - self.start_factor))
        return [group["lr"] * ratio for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [base_lr * (self.start_factor + (self.end_factor - self.start_factor)
                           * min(self.total_iters, self.last_epoch) / self.total_iters)
                for base_lr in self.base_lrs]


class ExponentialLR(LRScheduler):
    r"""``lr = base_lr * gamma ** e`` (recursively: times gamma every step).

    Parameters
    ----------
    optimizer : Optimizer
        The wrapped optimizer: a fastopt, ``fastopt.torch`` or ``torch.optim`` optimizer, or any object
        with a ``param_groups`` list of dicts (TypeError otherwise).
    gamma : float
        Multiplicative factor of learning rate decay, applied at every step.
    last_epoch : int, default -1
        The index of the last epoch. -1 starts the schedule from the beginning; ``N >= 0`` resumes it:
        every param group must then hold ``initial_lr`` (KeyError otherwise), and the constructor's step
        makes ``last_epoch`` ``N + 1``, as in torch.

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> from fastopt.lr_scheduler import ExponentialLR
    >>> opt = fastopt.SGD([np.zeros(2)], lr=0.1)
    >>> sched = ExponentialLR(opt, gamma=0.5)
    >>> lrs = []
    >>> for epoch in range(4):
    ...     opt.step([np.ones(2)])             # an epoch of training at the current lr
    ...     lrs.append(round(sched.get_last_lr()[0], 4))
    ...     sched.step()
    >>> lrs
    [0.1, 0.05, 0.025, 0.0125]
    """

    def __init__(self, optimizer, gamma, last_epoch=-1):
        _check_optimizer(optimizer)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        self._warn_outside_step()
        if self._is_initial:
            return _param_groups_val_list(self.optimizer, "lr")
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [base_lr * self.gamma ** self.last_epoch for base_lr in self.base_lrs]


class PolynomialLR(LRScheduler):
    r"""``lr = base_lr * (1 - min(e, T) / T) ** power`` (0 from ``e = T`` on).

    Parameters
    ----------
    optimizer : Optimizer
        The wrapped optimizer: a fastopt, ``fastopt.torch`` or ``torch.optim`` optimizer, or any object
        with a ``param_groups`` list of dicts (TypeError otherwise).
    total_iters : int, default 5
        The number of steps over which the lr decays to 0 (> 0: it divides).
    power : float, default 1.0
        The power of the polynomial (1: linear decay).
    last_epoch : int, default -1
        The index of the last epoch. -1 starts the schedule from the beginning; ``N >= 0`` resumes it:
        every param group must then hold ``initial_lr`` (KeyError otherwise), and the constructor's step
        makes ``last_epoch`` ``N + 1``, as in torch.

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> from fastopt.lr_scheduler import PolynomialLR
    >>> opt = fastopt.SGD([np.zeros(2)], lr=0.1)
    >>> sched = PolynomialLR(opt, total_iters=4, power=2.0)
    >>> lrs = []
    >>> for epoch in range(6):
    ...     opt.step([np.ones(2)])             # an epoch of training at the current lr
    ...     lrs.append(round(sched.get_last_lr()[0], 5))
    ...     sched.step()
    >>> lrs
    [0.1, 0.05625, 0.025, 0.00625, 0.0, 0.0]
    """

    def __init__(self, optimizer, total_iters=5, power=1.0, last_epoch=-1):
        _check_optimizer(optimizer)
        self.total_iters = total_iters
        self.power = power
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        self._warn_outside_step()
        if self._is_initial or self.last_epoch > self.total_iters:
            return _param_groups_val_list(self.optimizer, "lr")
        decay_factor = ((1.0 - self.last_epoch / self.total_iters)
                        / (1.0 - (self.last_epoch - 1) / self.total_iters)) ** self.power
        return [group["lr"] * decay_factor for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [base_lr * (1.0 - min(self.total_iters, self.last_epoch) / self.total_iters) ** self.power
                for base_lr in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    r"""``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * e / T_max)) / 2``.

    As torch: ``step()`` applies the recursive form
    ``lr_e = eta_min + (lr_{e-1} - eta_min) * (1 + cos(pi e / T)) / (1 + cos(pi (e-1) / T))``
    (with torch's special case at the trough, ``e - 1 - T`` a multiple of ``2T``), which is not
    clamped: past ``T_max`` the lr rises again (period ``2 T_max``). ``step(epoch)`` and the first
    step of a scheduler resumed with ``last_epoch > 0`` use the closed form. ``T_max = 0`` is a
    ValueError (torch divides by zero at the second step).

    Parameters
    ----------
    optimizer : Optimizer
        The wrapped optimizer: a fastopt, ``fastopt.torch`` or ``torch.optim`` optimizer, or any object
        with a ``param_groups`` list of dicts (TypeError otherwise).
    T_max : int
        Maximum number of iterations: half the cosine's period. A non-zero real number (ValueError
        for 0, TypeError if not a real number).
    eta_min : float, default 0.0
        Minimum learning rate.
    last_epoch : int, default -1
        The index of the last epoch. -1 starts the schedule from the beginning; ``N >= 0`` resumes it:
        every param group must then hold ``initial_lr`` (KeyError otherwise), and the constructor's step
        makes ``last_epoch`` ``N + 1``, as in torch.

    Examples
    --------
    Not clamped: past ``T_max`` the lr rises again.

    >>> import numpy as np
    >>> import fastopt
    >>> from fastopt.lr_scheduler import CosineAnnealingLR
    >>> opt = fastopt.SGD([np.zeros(2)], lr=0.1)
    >>> sched = CosineAnnealingLR(opt, T_max=4, eta_min=0.01)
    >>> lrs = []
    >>> for epoch in range(6):
    ...     opt.step([np.ones(2)])             # an epoch of training at the current lr
    ...     lrs.append(round(sched.get_last_lr()[0], 4))
    ...     sched.step()
    >>> lrs
    [0.1, 0.0868, 0.055, 0.0232, 0.01, 0.0232]
    """

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        _check_optimizer(optimizer)
        if isinstance(T_max, bool) or not isinstance(T_max, numbers.Real):
            raise TypeError(f"T_max must be a real number, got {type(T_max).__name__}")
        if T_max == 0:
            raise ValueError("Expected non-zero T_max, but got 0")
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        self._warn_outside_step()
        if self._is_initial:
            return _param_groups_val_list(self.optimizer, "lr")
        if self._step_count == 1 and self.last_epoch > 0:
            return [self.eta_min
                    + (base_lr - self.eta_min) * (1 + math.cos((self.last_epoch) * math.pi / self.T_max)) / 2
                    for base_lr in self.base_lrs]
        if (self.last_epoch - 1 - self.T_max) % (2 * self.T_max) == 0:
            return [group["lr"] + (base_lr - self.eta_min) * (1 - math.cos(math.pi / self.T_max)) / 2
                    for base_lr, group in zip(self.base_lrs, self.optimizer.param_groups)]
        return [(1 + math.cos(math.pi * self.last_epoch / self.T_max))
                / (1 + math.cos(math.pi * (self.last_epoch - 1) / self.T_max))
                * (group["lr"] - self.eta_min) + self.eta_min
                for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for base_lr in self.base_lrs]


class CosineAnnealingWarmRestarts(LRScheduler):
    r"""``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2``.

    ``T_cur`` counts steps since the last restart; at a restart ``T_cur`` wraps and ``T_i``
    becomes ``T_i * T_mult`` (``T_0`` a positive int, ``T_mult`` an int >= 1). ``step(epoch)`` jumps
    to ``epoch``, which may be fractional (no deprecation warning here, as in torch).

    Parameters
    ----------
    optimizer : Optimizer
        The wrapped optimizer: a fastopt, ``fastopt.torch`` or ``torch.optim`` optimizer, or any object
        with a ``param_groups`` list of dicts (TypeError otherwise).
    T_0 : int
        Number of iterations until the first restart: a positive int (ValueError otherwise).
    T_mult : int, default 1
        The factor by which ``T_i`` grows after a restart: an int >= 1 (ValueError otherwise).
    eta_min : float, default 0.0
        Minimum learning rate: a float or an int (ValueError otherwise).
    last_epoch : int, default -1
        The index of the last epoch. -1 starts the schedule from the beginning; ``N >= 0`` resumes it:
        every param group must then hold ``initial_lr`` (KeyError otherwise), and the constructor's step
        makes ``last_epoch`` ``N + 1``, as in torch.

    Examples
    --------
    Restarts after 2 epochs, then after 4 more:

    >>> import numpy as np
    >>> import fastopt
    >>> from fastopt.lr_scheduler import CosineAnnealingWarmRestarts
    >>> opt = fastopt.SGD([np.zeros(2)], lr=0.1)
    >>> sched = CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=2)
    >>> lrs = []
    >>> for epoch in range(7):
    ...     opt.step([np.ones(2)])             # an epoch of training at the current lr
    ...     lrs.append(round(sched.get_last_lr()[0], 4))
    ...     sched.step()
    >>> lrs
    [0.1, 0.05, 0.1, 0.0854, 0.05, 0.0146, 0.1]
    """

    def __init__(self, optimizer, T_0, T_mult=1, eta_min=0.0, last_epoch=-1):
        _check_optimizer(optimizer)
        if T_0 <= 0 or not isinstance(T_0, int):
            raise ValueError(f"Expected positive integer T_0, but got {T_0}")
        if T_mult < 1 or not isinstance(T_mult, int):
            raise ValueError(f"Expected integer T_mult >= 1, but got {T_mult}")
        if not isinstance(eta_min, (float, int)):
            raise ValueError(f"Expected float or int eta_min, but got {eta_min} of type {type(eta_min)}")
        self.T_0 = T_0
        self.T_i = T_0
        self.T_mult = T_mult
        self.eta_min = eta_min
        self.T_cur = last_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        self._warn_outside_step()
        return [self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2
                for base_lr in self.base_lrs]

    def step(self, epoch=None):
        """Advance one step, or jump to ``epoch`` (an int or a float).

        Parameters
        ----------
        epoch : int, float or None, default None
            None: one step. A number >= 0 (ValueError otherwise): jump to that (possibly fractional)
            epoch, without a deprecation warning (as in torch).
        """
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        else:
            if epoch < 0:
                raise ValueError(f"Expected non-negative epoch, but got {epoch}")
            if epoch >= self.T_0:
                if self.T_mult == 1:
                    self.T_cur = epoch % self.T_0
                else:
                    n = int(math.log((epoch / self.T_0 * (self.T_mult - 1) + 1), self.T_mult))
                    self.T_cur = epoch - self.T_0 * (self.T_mult ** n - 1) / (self.T_mult - 1)
                    self.T_i = self.T_0 * self.T_mult ** (n)
            else:
                self.T_i = self.T_0
                self.T_cur = epoch
        self.last_epoch = math.floor(epoch)
        self._get_lr_called_within_step = True
        try:
            values = self.get_lr()
        finally:
            self._get_lr_called_within_step = False
        for group, lr in zip(self.optimizer.param_groups, values):
            _update_param_group_val(group, "lr", lr)
        self._last_lr = _param_groups_val_list(self.optimizer, "lr")


class CyclicLR(LRScheduler):
    r"""Cyclical learning rate (Smith, 2017), cycling momentum inversely.

    With ``total = step_size_up + step_size_down``, ``cycle = floor(1 + e / total)``,
    ``x = 1 + e / total - cycle`` and ``r = step_size_up / total``: the height is ``x / r`` while
    ``x <= r``, then ``(x - 1) / (r - 1)``, and

    ``lr = base_lr + (max_lr - base_lr) * height * scale``,
    ``momentum = max_momentum - (max_momentum - base_momentum) * height * scale``,

    ``scale = 1`` (triangular), ``1 / 2 ** (cycle - 1)`` (triangular2), ``gamma ** e`` (exp_range), or
    ``scale_fn(cycle or e)`` per ``scale_mode``. The constructor sets every group's lr to base_lr.
    The momentum is ``group["momentum"]``, or ``group["betas"][0]`` when the optimizer has ``betas``
    (as torch); an optimizer with neither needs ``cycle_momentum=False``. A ``scale_fn`` function is
    not saved in ``state_dict()`` (a callable object saves its ``__dict__``). Unlike torch,
    ``step_size_up <= 0`` or ``step_size_down < 0`` is a ValueError.

    Parameters
    ----------
    optimizer : Optimizer
        The wrapped optimizer: a fastopt, ``fastopt.torch`` or ``torch.optim`` optimizer, or any object
        with a ``param_groups`` list of dicts (TypeError otherwise).
    base_lr : float or list of float
        Initial learning rate, the lower boundary of the cycle, for each param group (a list: one per
        group, ValueError if the length differs).
    max_lr : float or list of float
        Upper learning rate boundaries of the cycle for each param group. It defines the cycle's
        amplitude ``max_lr - base_lr``; the lr is ``base_lr`` plus a scaling of the amplitude, so
        ``max_lr`` may not be reached, depending on the scaling.
    step_size_up : int, default 2000
        Number of training iterations in the increasing half of a cycle: > 0 (ValueError otherwise).
    step_size_down : int or None, default None
        Number of training iterations in the decreasing half of a cycle, >= 0 (ValueError otherwise);
        None: ``step_size_up``.
    mode : {'triangular', 'triangular2', 'exp_range'}, default 'triangular'
        The scaling policy (see above); ignored if ``scale_fn`` is given. Another value without a
        ``scale_fn`` is a ValueError.
    gamma : float, default 1.0
        Constant of the 'exp_range' scaling: ``gamma ** (cycle iterations)``.
    scale_fn : callable or None, default None
        Custom scaling policy: a function of one argument with ``0 <= scale_fn(x) <= 1`` for all
        ``x >= 0``. If given, ``mode`` is ignored.
    scale_mode : {'cycle', 'iterations'}, default 'cycle'
        Whether ``scale_fn`` is evaluated on the cycle number or on the iterations since the start.
        Without a ``scale_fn``, ``mode`` decides ('cycle' for the triangular modes, 'iterations' for
        'exp_range').
    cycle_momentum : bool, default True
        Cycle the momentum (``group["momentum"]``, or ``group["betas"][0]``) inversely to the lr,
        between ``base_momentum`` and ``max_momentum``. The optimizer must then have a momentum or betas
        (ValueError otherwise).
    base_momentum : float or list of float, default 0.8
        Lower momentum boundaries of the cycle for each param group: the momentum at the peak of a
        cycle, where the lr is ``max_lr``.
    max_momentum : float or list of float, default 0.9
        Upper momentum boundaries of the cycle for each param group: the momentum at the start of a
        cycle, where the lr is ``base_lr``. Functionally it defines the cycle's amplitude
        ``max_momentum - base_momentum``.
    last_epoch : int, default -1
        The index of the last batch (``step()`` is called after every batch, so this counts batches, not
        epochs). -1 starts the schedule from the beginning; ``N >= 0`` resumes a training job: the groups
        must then hold the keys the constructor writes (``initial_lr`` and, when cycling momentum,
        ``max_momentum``/``base_momentum``), which it leaves alone.

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> from fastopt.lr_scheduler import CyclicLR
    >>> opt = fastopt.SGD([np.zeros(2)], lr=0.1, momentum=0.9)
    >>> sched = CyclicLR(opt, base_lr=0.01, max_lr=0.1, step_size_up=2)
    >>> lrs, momenta = [], []
    >>> for batch in range(6):
    ...     opt.step([np.ones(2)])             # one batch
    ...     lrs.append(round(sched.get_last_lr()[0], 4))
    ...     momenta.append(round(opt.param_groups[0]["momentum"], 4))
    ...     sched.step()
    >>> lrs
    [0.01, 0.055, 0.1, 0.055, 0.01, 0.055]
    >>> momenta
    [0.9, 0.85, 0.8, 0.85, 0.9, 0.85]
    """

    def __init__(self, optimizer, base_lr, max_lr, step_size_up=2000, step_size_down=None,
                 mode="triangular", gamma=1.0, scale_fn=None, scale_mode="cycle", cycle_momentum=True,
                 base_momentum=0.8, max_momentum=0.9, last_epoch=-1):
        _check_optimizer(optimizer)
        # everything is checked before a group is written
        base_lrs = _format_param("base_lr", optimizer, base_lr)
        max_lrs = _format_param("max_lr", optimizer, max_lr)
        _check_positive("step_size_up", step_size_up)
        if step_size_down is not None:
            _check_real("step_size_down", step_size_down, 0)
        if mode not in ["triangular", "triangular2", "exp_range"] and scale_fn is None:
            raise ValueError("mode is invalid and scale_fn is None")
        if cycle_momentum:
            keys = _optimizer_keys(optimizer)
            if "momentum" not in keys and "betas" not in keys:
                raise ValueError("optimizer must support momentum or beta1 with `cycle_momentum` option enabled")
            base_momentums = _format_param("base_momentum", optimizer, base_momentum)
            max_momentums = _format_param("max_momentum", optimizer, max_momentum)
        self.optimizer = optimizer
        if last_epoch == -1:
            for lr, group in zip(base_lrs, optimizer.param_groups):
                _update_param_group_val(group, "lr", lr)
        self.max_lrs = max_lrs
        step_size_up = float(step_size_up)
        step_size_down = float(step_size_down) if step_size_down is not None else step_size_up
        self.total_size = step_size_up + step_size_down
        self.step_ratio = step_size_up / self.total_size
        self.mode = mode
        self.gamma = gamma
        self._scale_fn_custom = scale_fn
        self.scale_mode = scale_mode
        self._init_scale_fn()
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self.use_beta1 = "betas" in keys
            self.base_momentums = base_momentums
            self.max_momentums = max_momentums
            if last_epoch == -1:
                for m_momentum, b_momentum, group in zip(self.max_momentums, self.base_momentums,
                                                         optimizer.param_groups):
                    _set_momentum(group, m_momentum, self.use_beta1)
                    group["max_momentum"] = _plain(m_momentum)
                    group["base_momentum"] = _plain(b_momentum)
        super().__init__(optimizer, last_epoch)
        self.base_lrs = base_lrs

    def _init_scale_fn(self):
        if self._scale_fn_custom is not None:
            return
        if self.mode in ("triangular", "triangular2"):
            self.scale_mode = "cycle"
        elif self.mode == "exp_range":
            self.scale_mode = "iterations"

    def scale_fn(self, x):
        """The scale at ``x`` (the cycle number or the iteration, per ``scale_mode``)."""
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        if self.mode == "triangular":
            return 1.0
        if self.mode == "triangular2":
            return 1 / (2.0 ** (x - 1))
        return self.gamma ** x

    def _position(self):
        cycle = math.floor(1 + self.last_epoch / self.total_size)
        x = 1.0 + self.last_epoch / self.total_size - cycle
        if x <= self.step_ratio:
            scale_factor = x / self.step_ratio
        else:
            scale_factor = (x - 1) / (self.step_ratio - 1)
        return cycle, scale_factor

    def _momentums(self, cycle, scale_factor):
        momentums = []
        for base_momentum, max_momentum in zip(self.base_momentums, self.max_momentums):
            base_height = (max_momentum - base_momentum) * scale_factor
            if self.scale_mode == "cycle":
                momentums.append(max_momentum - base_height * self.scale_fn(cycle))
            else:
                momentums.append(max_momentum - base_height * self.scale_fn(self.last_epoch))
        return momentums

    def get_lr(self):
        self._warn_outside_step()
        cycle, scale_factor = self._position()
        lrs = []
        for base_lr, max_lr in zip(self.base_lrs, self.max_lrs):
            base_height = (max_lr - base_lr) * scale_factor
            if self.scale_mode == "cycle":
                lrs.append(base_lr + base_height * self.scale_fn(cycle))
            else:
                lrs.append(base_lr + base_height * self.scale_fn(self.last_epoch))
        if self.cycle_momentum:
            for group, momentum in zip(self.optimizer.param_groups, self._momentums(cycle, scale_factor)):
                _set_momentum(group, momentum, self.use_beta1)
        return lrs

    def _restore_groups(self):
        super()._restore_groups()
        if self.cycle_momentum:
            for group, momentum in zip(self.optimizer.param_groups, self._momentums(*self._position())):
                _set_momentum(group, momentum, self.use_beta1)

    def state_dict(self):
        """Every attribute but the optimizer; a custom ``scale_fn`` as torch saves it: None for a
        function or lambda, the ``__dict__`` of a callable object.

        Returns
        -------
        dict
            Plain values under torch's keys, so that torch's scheduler loads it too.
        """
        state = {key: copy.deepcopy(value) for key, value in self.__dict__.items()
                 if key not in ("optimizer", "_scale_fn_custom")}
        fn = self._scale_fn_custom
        state["_scale_fn_custom"] = _lambda_states([fn])[0] if fn is not None else None
        return state

    def load_state_dict(self, state_dict):
        """Load a ``state_dict()`` (fastopt's or torch's): a callable-object ``scale_fn`` gets its saved
        ``__dict__`` back. The argument is not modified.

        Parameters
        ----------
        state_dict : dict
            A ``state_dict()`` of this scheduler class, fastopt's or torch's.
        """
        _check_state_dict(state_dict)
        super().load_state_dict({k: v for k, v in state_dict.items()
                                 if k not in ("_scale_fn_custom", "_scale_fn_ref")})
        fn = state_dict.get("_scale_fn_custom")
        if fn is not None and self._scale_fn_custom is not None:
            _load_lambda_states([self._scale_fn_custom], [fn])
        self._init_scale_fn()


class OneCycleLR(LRScheduler):
    r"""The 1cycle policy (Smith & Topin, 2018), momentum running inversely.

    ``initial_lr = max_lr / div_factor``, ``min_lr = initial_lr / final_div_factor``. Phase 1
    anneals ``initial_lr -> max_lr`` over steps ``0 .. pct_start*T - 1``, phase 2 ``max_lr -> min_lr``
    up to ``T - 1`` (three_phase: ``max_lr -> initial_lr`` up to ``2*pct_start*T - 2``, then
    ``initial_lr -> min_lr``); momentum goes ``max -> base -> max``. Annealing is
    ``end + (start - end) * (1 + cos(pi * pct)) / 2`` (``'cos'``) or ``start + (end - start) * pct``
    (``'linear'``). As in torch the T-th ``step()`` is allowed and extrapolates past min_lr; the
    (T+1)-th raises ValueError. The momentum is ``group["momentum"]`` or ``group["betas"][0]``.

    Parameters
    ----------
    optimizer : Optimizer
        The wrapped optimizer: a fastopt, ``fastopt.torch`` or ``torch.optim`` optimizer, or any object
        with a ``param_groups`` list of dicts (TypeError otherwise).
    max_lr : float or list of float
        Upper learning rate boundaries of the cycle for each param group (a list: one per group,
        ValueError if the length differs).
    total_steps : int or None, default None
        The total number of steps of the cycle: a positive int (ValueError otherwise). None: inferred
        as ``epochs * steps_per_epoch``.
    epochs : int or None, default None
        The number of epochs to train for, a positive int; with ``steps_per_epoch``, gives
        ``total_steps`` when that is None (ValueError if neither is given).
    steps_per_epoch : int or None, default None
        The number of steps per epoch to train for, a positive int; used with ``epochs``.
    pct_start : float, default 0.3
        The fraction of the cycle (in steps) spent increasing the lr: a float in [0, 1] (ValueError
        otherwise, an int included).
    anneal_strategy : {'cos', 'linear'}, default 'cos'
        Cosine or linear annealing (ValueError otherwise).
    cycle_momentum : bool, default True
        Cycle the momentum (``group["momentum"]``, or ``group["betas"][0]``) inversely to the lr,
        between ``base_momentum`` and ``max_momentum``. The optimizer must then have a momentum or betas
        (ValueError otherwise).
    base_momentum : float or list of float, default 0.85
        Lower momentum boundaries of the cycle for each param group: the momentum at the peak, where
        the lr is ``max_lr``.
    max_momentum : float or list of float, default 0.95
        Upper momentum boundaries of the cycle for each param group: the momentum at the start and the
        end, where the lr is ``initial_lr``. Functionally it defines the cycle's amplitude
        ``max_momentum - base_momentum``.
    div_factor : float, default 25.0
        Determines the initial learning rate: ``initial_lr = max_lr / div_factor``.
    final_div_factor : float, default 1e4
        Determines the minimum learning rate: ``min_lr = initial_lr / final_div_factor``.
    three_phase : bool, default False
        Use a third phase to annihilate the lr down to ``min_lr`` instead of modifying the second phase
        (the first two phases are then symmetrical about the step ``pct_start`` indicates).
    last_epoch : int, default -1
        The index of the last batch (``step()`` is called after every batch, so this counts batches, not
        epochs). -1 starts the schedule from the beginning; ``N >= 0`` resumes a training job: the groups
        must then hold the keys the constructor writes (``initial_lr`` and, when cycling momentum,
        ``max_momentum``/``base_momentum``), which it leaves alone.

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> from fastopt.lr_scheduler import OneCycleLR
    >>> opt = fastopt.SGD([np.zeros(2)], lr=0.1, momentum=0.9)
    >>> sched = OneCycleLR(opt, max_lr=0.1, total_steps=6, pct_start=0.5)
    >>> lrs, momenta = [], []
    >>> for batch in range(6):
    ...     opt.step([np.ones(2)])             # one batch
    ...     lrs.append(round(sched.get_last_lr()[0], 4))
    ...     momenta.append(round(opt.param_groups[0]["momentum"], 4))
    ...     sched.step()
    >>> lrs                                    # up to max_lr, down to max_lr / 25 / 1e4
    [0.004, 0.052, 0.1, 0.075, 0.025, 0.0]
    >>> momenta
    [0.95, 0.9, 0.85, 0.875, 0.925, 0.95]
    """

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None,
                 pct_start=0.3, anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85,
                 max_momentum=0.95, div_factor=25.0, final_div_factor=1e4, three_phase=False,
                 last_epoch=-1):
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        if total_steps is not None:
            if total_steps <= 0 or not isinstance(total_steps, int):
                raise ValueError(f"Expected positive integer total_steps, but got {total_steps}")
            self.total_steps = total_steps
        elif epochs is not None and steps_per_epoch is not None:
            if not isinstance(epochs, int) or epochs <= 0:
                raise ValueError(f"Expected positive integer epochs, but got {epochs}")
            if not isinstance(steps_per_epoch, int) or steps_per_epoch <= 0:
                raise ValueError(f"Expected positive integer steps_per_epoch, but got {steps_per_epoch}")
            self.total_steps = epochs * steps_per_epoch
        else:
            raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")
        if three_phase:
            self._schedule_phases = [
                {"end_step": float(pct_start * self.total_steps) - 1, "start_lr": "initial_lr",
                 "end_lr": "max_lr", "start_momentum": "max_momentum", "end_momentum": "base_momentum"},
                {"end_step": float(2 * pct_start * self.total_steps) - 2, "start_lr": "max_lr",
                 "end_lr": "initial_lr", "start_momentum": "base_momentum", "end_momentum": "max_momentum"},
                {"end_step": self.total_steps - 1, "start_lr": "initial_lr", "end_lr": "min_lr",
                 "start_momentum": "max_momentum", "end_momentum": "max_momentum"},
            ]
        else:
            self._schedule_phases = [
                {"end_step": float(pct_start * self.total_steps) - 1, "start_lr": "initial_lr",
                 "end_lr": "max_lr", "start_momentum": "max_momentum", "end_momentum": "base_momentum"},
                {"end_step": self.total_steps - 1, "start_lr": "max_lr", "end_lr": "min_lr",
                 "start_momentum": "base_momentum", "end_momentum": "max_momentum"},
            ]
        if pct_start < 0 or pct_start > 1 or not isinstance(pct_start, float):
            raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start}")
        if anneal_strategy not in ["cos", "linear"]:
            raise ValueError(f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}")
        self._anneal_func_type = anneal_strategy
        max_lrs = _format_param("max_lr", self.optimizer, max_lr)
        if last_epoch == -1:
            for idx, group in enumerate(self.optimizer.param_groups):
                group["initial_lr"] = _plain(max_lrs[idx] / div_factor)
                group["max_lr"] = _plain(max_lrs[idx])
                group["min_lr"] = _plain(group["initial_lr"] / final_div_factor)
        self.cycle_momentum = cycle_momentum
        if self.cycle_momentum:
            keys = _optimizer_keys(optimizer)
            if "momentum" not in keys and "betas" not in keys:
                raise ValueError("optimizer must support momentum or beta1 with `cycle_momentum` option enabled")
            self.use_beta1 = "betas" in keys
            max_momentums = _format_param("max_momentum", optimizer, max_momentum)
            base_momentums = _format_param("base_momentum", optimizer, base_momentum)
            if last_epoch == -1:
                for m_momentum, b_momentum, group in zip(max_momentums, base_momentums, optimizer.param_groups):
                    _set_momentum(group, m_momentum, self.use_beta1)
                    group["max_momentum"] = _plain(m_momentum)
                    group["base_momentum"] = _plain(b_momentum)
        super().__init__(optimizer, last_epoch)

    def _anneal_func(self, start, end, pct):
        if self._anneal_func_type == "cos":
            cos_out = math.cos(math.pi * pct) + 1
            return end + (start - end) / 2.0 * cos_out
        return (end - start) * pct + start

    def _at(self, group, step_num):
        """(lr, momentum or None) of ``group`` at step ``step_num``."""
        start_step = 0.0
        for i, phase in enumerate(self._schedule_phases):
            end_step = phase["end_step"]
            if step_num <= end_step or i == len(self._schedule_phases) - 1:
                pct = (step_num - start_step) / (end_step - start_step)
                lr = self._anneal_func(group[phase["start_lr"]], group[phase["end_lr"]], pct)
                momentum = None
                if self.cycle_momentum:
                    momentum = self._anneal_func(group[phase["start_momentum"]], group[phase["end_momentum"]], pct)
                return lr, momentum
            start_step = phase["end_step"]

    def get_lr(self):
        self._warn_outside_step()
        step_num = self.last_epoch
        if step_num > self.total_steps:
            raise ValueError(f"Tried to step {step_num} times. "
                             f"The specified number of total steps is {self.total_steps}")
        lrs = []
        for group in self.optimizer.param_groups:
            lr, momentum = self._at(group, step_num)
            lrs.append(lr)
            if self.cycle_momentum:
                _set_momentum(group, momentum, self.use_beta1)
        return lrs

    def _restore_groups(self):
        super()._restore_groups()
        if self.cycle_momentum and 0 <= self.last_epoch <= self.total_steps:
            for group in self.optimizer.param_groups:
                _set_momentum(group, self._at(group, self.last_epoch)[1], self.use_beta1)


def _is_plateau(scheduler):
    return isinstance(scheduler, ReduceLROnPlateau) or type(scheduler).__name__ == "ReduceLROnPlateau"


def _check_children(owner, optimizer, schedulers):
    name = type(owner).__name__
    for idx, scheduler in enumerate(schedulers):
        if not hasattr(scheduler, "optimizer"):
            raise TypeError(f"{name} at index {idx} should have `optimizer` as its attribute.")
        if _is_plateau(scheduler):
            raise ValueError(
                f"{name} does not support `ReduceLROnPlateau` scheduler as it "
                "requires additional kwargs to be specified when calling `step`, "
                f"but got one at index {idx} in the given schedulers sequence.")
        if scheduler.optimizer is not optimizer:
            raise ValueError(
                f"{name} expects all schedulers to belong to the same optimizer, but "
                f"got scheduler {type(scheduler).__name__} at index {idx} has {scheduler.optimizer}, "
                f"which is different from {type(optimizer).__name__}.")


class SequentialLR(LRScheduler):
    r"""Scheduler ``i`` runs for ``milestones[i-1] <= e < milestones[i]``; at a milestone the next one
    restarts from its epoch 0 (its closed form at 0, where it has one).

    The constructor resets every lr to ``initial_lr``, undoes the children's constructor steps and
    performs the first child's initial step, as torch. ReduceLROnPlateau and schedulers of another
    optimizer are rejected.

    Where fastopt differs from torch 2.13 (both about resuming):

    * ``load_state_dict`` writes the saved lrs (``_last_lr``, a torch key) and the active child's
      cycled momentum back into the optimizer, so resuming is exact whether the optimizer's state is
      loaded before or after the SequentialLR is built. What goes wrong in torch 2.13: its
      constructor overwrites every group's lr with ``initial_lr`` and re-runs the first child's
      initial step (``LinearLR``: ``initial_lr * start_factor``), and its ``load_state_dict`` restores
      only counters (its ``last_epoch``, the children's states), never that lr, although it saved it.
      torch is exact only if the optimizer's state is loaded *after* the SequentialLR is built. Loaded
      before (``opt.load_state_dict``, build the schedulers, ``sched.load_state_dict``: the order in
      which single chainable torch schedulers such as ExponentialLR or StepLR do resume exactly), the
      group keeps the constructor's lr, and since the children are chainable (``lr_e = lr_{e-1} *
      ratio``) the error stays until the next milestone. Example: lr 0.1,
      ``SequentialLR([LinearLR(0.5, 1, 2), ExponentialLR(0.5)], [3])`` checkpointed after 5 steps
      (lr 0.025): torch resumes with 0.05 (what its constructor wrote), then 0.025, 0.0125, ...: twice
      the uninterrupted 0.025, 0.0125, 0.00625, ... for the rest of the run.
    * ``last_epoch = N >= 0`` (children freshly built): fastopt replays N steps, giving the lrs and
      state of step N of the uninterrupted run. torch sets ``last_epoch = N + 1`` but leaves the lr at
      the first child's epoch-0 value and the children at epoch 0 (pytorch issue 162591).

    As in torch, a child restarted at a milestone needs ``_update_lr`` with a usable ``get_lr``:
    ChainedScheduler or SequentialLR children after the first raise NotImplementedError there.

    Parameters
    ----------
    optimizer : Optimizer
        The wrapped optimizer: a fastopt, ``fastopt.torch`` or ``torch.optim`` optimizer, or any object
        with a ``param_groups`` list of dicts (TypeError otherwise).
    schedulers : list of LRScheduler
        The schedulers to run in turn (at least one), all built on ``optimizer`` (ValueError
        otherwise); a ReduceLROnPlateau is a ValueError.
    milestones : list of int
        The epochs at which the next scheduler takes over: one fewer than the schedulers (ValueError
        otherwise).
    last_epoch : int, default -1
        The index of the last epoch. -1 starts from the beginning; ``N >= 0`` replays ``N`` steps (see
        above).

    Examples
    --------
    A linear warm-up over two epochs, then exponential decay:

    >>> import numpy as np
    >>> import fastopt
    >>> from fastopt.lr_scheduler import ExponentialLR, LinearLR, SequentialLR
    >>> opt = fastopt.SGD([np.zeros(2)], lr=0.1)
    >>> warmup = LinearLR(opt, start_factor=0.5, total_iters=2)
    >>> decay = ExponentialLR(opt, gamma=0.5)
    >>> sched = SequentialLR(opt, schedulers=[warmup, decay], milestones=[2])
    >>> lrs = []
    >>> for epoch in range(6):
    ...     opt.step([np.ones(2)])             # an epoch of training at the current lr
    ...     lrs.append(round(sched.get_last_lr()[0], 4))
    ...     sched.step()
    >>> lrs
    [0.05, 0.075, 0.1, 0.05, 0.025, 0.0125]
    """

    def __init__(self, optimizer, schedulers, milestones, last_epoch=-1):
        _check_optimizer(optimizer)
        if len(schedulers) < 1:
            raise ValueError(f"{type(self).__name__} expects at least one scheduler, but got no scheduler.")
        _check_children(self, optimizer, schedulers)
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(
                "Sequential Schedulers expects number of schedulers provided to be one more "
                f"than the number of milestone points, but got number of schedulers {len(schedulers)} and the "
                f"number of milestones to be equal to {len(milestones)}")
        self._schedulers = schedulers
        self._milestones = milestones
        self.last_epoch = 0
        self.optimizer = optimizer
        for group in self.optimizer.param_groups:
            _update_param_group_val(group, "lr", group["initial_lr"])
        self.recursive_undo()
        idx = bisect_right(self._milestones, 0)
        self._schedulers[idx]._initial_step()
        self._last_lr = schedulers[idx].get_last_lr()
        for _ in range(max(last_epoch, 0)):
            self.step()

    def recursive_undo(self, sched=None):
        """Undo the constructor step of every (nested) child: ``last_epoch -= 1``."""
        scheds = self if sched is None else sched
        if hasattr(scheds, "_schedulers"):
            for s in scheds._schedulers:
                self.recursive_undo(s)
        elif hasattr(scheds, "last_epoch"):
            scheds.last_epoch -= 1

    def _active(self):
        return self._schedulers[bisect_right(self._milestones, self.last_epoch)]

    def step(self):
        """Advance one step: the active child steps, or restarts at epoch 0 at its milestone."""
        self.last_epoch += 1
        idx = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            if not hasattr(scheduler, "_update_lr"):
                raise NotImplementedError(f"{type(scheduler).__name__} cannot be restarted by SequentialLR")
            scheduler._update_lr(0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()

    def state_dict(self):
        """Every attribute but the optimizer; ``_schedulers`` holds the children's ``state_dict()``.

        Returns
        -------
        dict
            Plain values under torch's keys, so that torch's scheduler loads it too.
        """
        state = {key: copy.deepcopy(value) for key, value in self.__dict__.items()
                 if key not in ("optimizer", "_schedulers")}
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def load_state_dict(self, state_dict):
        """Load the counters and the children's states, then restore the saved lrs (and the active
        child's cycled momentum) into the optimizer: exact whether the optimizer's state was loaded
        before or after this scheduler was built.

        Parameters
        ----------
        state_dict : dict
            A ``state_dict()`` of this scheduler class, fastopt's or torch's.
        """
        _check_state_dict(state_dict)
        LRScheduler.load_state_dict(self, {k: v for k, v in state_dict.items() if k != "_schedulers"})
        for scheduler, state in zip(self._schedulers, state_dict["_schedulers"]):
            scheduler.load_state_dict(state)
        self._restore_groups()

    def _restore_groups(self):
        active = self._active()
        if isinstance(active, (CyclicLR, OneCycleLR, SequentialLR, ChainedScheduler)):
            active._restore_groups()
        LRScheduler._restore_groups(self)


class ChainedScheduler(LRScheduler):
    r"""Steps every scheduler at each ``step()``; the chainable ones compose multiplicatively
    (e.g. ``ConstantLR(0.5, 2)`` and ``ExponentialLR(0.9)``: ``b * 0.5``, ``b * 0.45``, ``b * 0.81``, ...).

    ReduceLROnPlateau and schedulers of another optimizer are rejected. Unlike torch,
    ``load_state_dict`` also restores the lrs (and cycled momentum) it had written, so resuming is
    exact whether the optimizer's state is loaded before or after this scheduler is built (torch's is
    off by the children's construction factors, e.g. ConstantLR's, when the optimizer is loaded first).

    Parameters
    ----------
    schedulers : sequence of LRScheduler
        The schedulers to step together (at least one), all built on the same optimizer (ValueError
        otherwise); a ReduceLROnPlateau is a ValueError.
    optimizer : Optimizer or None, default None
        The wrapped optimizer; None: the first scheduler's.

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> from fastopt.lr_scheduler import ChainedScheduler, ConstantLR, ExponentialLR
    >>> opt = fastopt.SGD([np.zeros(2)], lr=1.0)
    >>> sched = ChainedScheduler([ConstantLR(opt, factor=0.5, total_iters=2),
    ...                           ExponentialLR(opt, gamma=0.9)])
    >>> lrs = []
    >>> for epoch in range(4):
    ...     opt.step([np.ones(2)])             # an epoch of training at the current lr
    ...     lrs.append(round(sched.get_last_lr()[0], 4))
    ...     sched.step()
    >>> lrs
    [0.5, 0.45, 0.81, 0.729]
    """

    def __init__(self, schedulers, optimizer=None):
        if len(schedulers) < 1:
            raise ValueError(f"{type(self).__name__} expects at least one scheduler to be chained, "
                             "but got no scheduler.")
        if optimizer is None:
            if not hasattr(schedulers[0], "optimizer"):
                raise TypeError(f"{type(self).__name__} at index 0 should have `optimizer` as its attribute.")
            optimizer = schedulers[0].optimizer
        _check_optimizer(optimizer)
        _check_children(self, optimizer, schedulers)
        self._schedulers = schedulers
        self.optimizer = optimizer
        self._last_lr = _param_groups_val_list(self._schedulers[-1].optimizer, "lr")

    def step(self):
        """Step every scheduler, in order."""
        for scheduler in self._schedulers:
            scheduler.step()
        self._last_lr = _param_groups_val_list(self._schedulers[-1].optimizer, "lr")

    state_dict = SequentialLR.state_dict

    def load_state_dict(self, state_dict):
        """Load the children's states, then restore the saved lrs (and cycled momentum).

        Parameters
        ----------
        state_dict : dict
            A ``state_dict()`` of this scheduler class, fastopt's or torch's.
        """
        SequentialLR.load_state_dict(self, state_dict)

    def _restore_groups(self):
        for scheduler in self._schedulers:
            if isinstance(scheduler, (CyclicLR, OneCycleLR, SequentialLR, ChainedScheduler)):
                scheduler._restore_groups()
        LRScheduler._restore_groups(self)


class ReduceLROnPlateau(LRScheduler):
    r"""``step(metrics)``: after more than ``patience`` consecutive bad epochs,
    ``lr = max(lr * factor, min_lr)`` (applied only if it changes the lr by more than ``eps``), then
    ``cooldown`` epochs during which bad epochs are not counted.

    An epoch is good if ``a < best * (1 - threshold)`` (min, rel), ``a < best - threshold`` (min, abs),
    ``a > best * (1 + threshold)`` (max, rel) or ``a > best + threshold`` (max, abs). ``min_lr`` is a
    scalar or one value per group.

    Parameters
    ----------
    optimizer : Optimizer
        The wrapped optimizer: a fastopt, ``fastopt.torch`` or ``torch.optim`` optimizer, or any object
        with a ``param_groups`` list of dicts (TypeError otherwise).
    mode : {'min', 'max'}, default 'min'
        'min': the lr is reduced when the metric has stopped decreasing; 'max': when it has stopped
        increasing (ValueError otherwise).
    factor : float, default 0.1
        The factor by which the lr is reduced, ``new_lr = lr * factor``: < 1 (ValueError otherwise).
    patience : int, default 10
        The number of epochs with no improvement allowed before the lr is reduced: with ``patience =
        2`` the first 2 bad epochs are ignored and the lr is reduced after the 3rd (if there is still no
        improvement).
    threshold : float, default 1e-4
        Threshold for measuring the new optimum, to only focus on significant changes.
    threshold_mode : {'rel', 'abs'}, default 'rel'
        'rel': the best is ``best * (1 -/+ threshold)`` ('min'/'max' mode); 'abs': ``best -/+
        threshold`` (ValueError otherwise).
    cooldown : int, default 0
        The number of epochs to wait after a reduction before resuming normal operation.
    min_lr : float or list of float, default 0
        A lower bound on the lr of all param groups, or one per group (ValueError if the length
        differs).
    eps : float, default 1e-8
        Minimal decay applied to the lr: a reduction smaller than ``eps`` is not applied.

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> from fastopt.lr_scheduler import ReduceLROnPlateau
    >>> opt = fastopt.SGD([np.zeros(2)], lr=0.1)
    >>> sched = ReduceLROnPlateau(opt, factor=0.5, patience=1)
    >>> lrs = []
    >>> for loss in [1.0, 0.8, 0.8, 0.8, 0.8, 0.8]:    # the validation loss of each epoch
    ...     sched.step(loss)
    ...     lrs.append(round(sched.get_last_lr()[0], 4))
    >>> lrs
    [0.1, 0.1, 0.1, 0.05, 0.05, 0.025]
    """

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
                 cooldown=0, min_lr=0, eps=1e-8):
        if factor >= 1.0:
            raise ValueError("Factor should be < 1.0.")
        self.factor = factor
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != len(optimizer.param_groups):
                raise ValueError(f"expected {len(optimizer.param_groups)} min_lrs, got {len(min_lr)}")
            self.default_min_lr = None
            self.min_lrs = list(min_lr)
        else:
            self.default_min_lr = min_lr
            self.min_lrs = [min_lr] * len(optimizer.param_groups)
        self.patience = patience
        self.cooldown = cooldown
        self.eps = eps
        self.last_epoch = 0
        self._last_lr = _param_groups_val_list(self.optimizer, "lr")
        self._init_is_better(mode=mode, threshold=threshold, threshold_mode=threshold_mode)
        self._reset()

    def _reset(self):
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def step(self, metrics, epoch=None):
        """Record one epoch's metric (a number or a 0-d tensor/array) and maybe reduce the lrs.

        Parameters
        ----------
        metrics : float
            The epoch's value of the monitored quantity (anything ``float()`` accepts).
        epoch : int or None, default None
            Deprecated (it warns, as in torch): the epoch number; None: ``last_epoch + 1``.
        """
        current = float(metrics)
        if epoch is None:
            epoch = self.last_epoch + 1
        else:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self.last_epoch = epoch
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            self._reduce_lr(epoch)
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = _param_groups_val_list(self.optimizer, "lr")

    def _reduce_lr(self, epoch):
        if len(self.optimizer.param_groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise RuntimeError(
                    "The number of param groups in the `optimizer` "
                    f"({len(self.optimizer.param_groups)}) differs "
                    f"from when `ReduceLROnPlateau` was initialized "
                    f"({len(self.min_lrs)}), usually due to a new "
                    "param group being added to the optimizer. Please "
                    "modify the `min_lrs` field to match the length "
                    "of the `optimizer` param groups.")
            self.min_lrs = [self.default_min_lr] * len(self.optimizer.param_groups)
        for i, param_group in enumerate(self.optimizer.param_groups):
            old_lr = float(param_group["lr"])
            new_lr = max(old_lr * self.factor, self.min_lrs[i])
            if old_lr - new_lr > self.eps:
                _update_param_group_val(param_group, "lr", new_lr)

    @property
    def in_cooldown(self):
        return self.cooldown_counter > 0

    def _is_better(self, a, best):
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min" and self.threshold_mode == "abs":
            return a < best - self.threshold
        if self.mode == "max" and self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    def _init_is_better(self, mode, threshold, threshold_mode):
        if mode not in {"min", "max"}:
            raise ValueError("mode " + str(mode) + " is unknown!")
        if threshold_mode not in {"rel", "abs"}:
            raise ValueError("threshold mode " + str(threshold_mode) + " is unknown!")
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.mode = mode
        self.threshold = threshold
        self.threshold_mode = threshold_mode

    def load_state_dict(self, state_dict):
        """Load a ``state_dict()`` (fastopt's or torch's); the argument is not modified.

        Parameters
        ----------
        state_dict : dict
            A ``state_dict()`` of this scheduler class, fastopt's or torch's.
        """
        super().load_state_dict(state_dict)
        self._init_is_better(mode=self.mode, threshold=self.threshold, threshold_mode=self.threshold_mode)


# ---------------------------------------------------------------------------------------------------
# the texts' schedules (closed forms of t = last_epoch, the number of step() calls)


class PiecewiseConstantLR(LRScheduler):
    r"""``lr(t) = values[i]`` for ``boundaries[i-1] <= t < boundaries[i]`` (``values[0]`` before the
    first boundary, ``values[-1]`` from the last one on).

    ``boundaries`` strictly increase; ``len(values) == len(boundaries) + 1``. A value is a number
    (every group) or a list/tuple with one lr per param group. The optimizer's own lr is replaced
    (it is kept as ``initial_lr``/``base_lrs``).

    Parameters
    ----------
    optimizer : Optimizer
        The wrapped optimizer: a fastopt, ``fastopt.torch`` or ``torch.optim`` optimizer, or any object
        with a ``param_groups`` list of dicts (TypeError otherwise).
    boundaries : sequence of float
        The steps at which the lr changes: finite real numbers, strictly increasing (ValueError
        otherwise).
    values : sequence of (float or sequence of float)
        The lrs, one more than ``boundaries`` (ValueError otherwise): each a number >= 0 (every group)
        or a list/tuple with one lr per param group.
    last_epoch : int, default -1
        The index of the last epoch. -1 starts the schedule from the beginning; ``N >= 0`` resumes it:
        every param group must then hold ``initial_lr`` (KeyError otherwise), and the constructor's step
        makes ``last_epoch`` ``N + 1``, as in torch.

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> from fastopt.lr_scheduler import PiecewiseConstantLR
    >>> opt = fastopt.SGD([np.zeros(2)], lr=0.1)
    >>> sched = PiecewiseConstantLR(opt, boundaries=[2, 4], values=[0.1, 0.05, 0.01])
    >>> lrs = []
    >>> for epoch in range(6):
    ...     opt.step([np.ones(2)])             # an epoch of training at the current lr
    ...     lrs.append(round(sched.get_last_lr()[0], 4))
    ...     sched.step()
    >>> lrs
    [0.1, 0.1, 0.05, 0.05, 0.01, 0.01]
    """

    def __init__(self, optimizer, boundaries, values, last_epoch=-1):
        _check_optimizer(optimizer)
        boundaries, values = list(boundaries), list(values)
        for i, b in enumerate(boundaries):
            _check_real(f"boundaries[{i}]", b)
        for i in range(1, len(boundaries)):
            if not boundaries[i] > boundaries[i - 1]:
                raise ValueError(f"boundaries must be strictly increasing, but boundaries[{i - 1}] = "
                                 f"{boundaries[i - 1]} and boundaries[{i}] = {boundaries[i]}")
        if len(values) != len(boundaries) + 1:
            raise ValueError(f"values must have one more entry than boundaries, but got {len(values)} "
                             f"values and {len(boundaries)} boundaries")
        n = len(optimizer.param_groups)
        table = []
        for i, value in enumerate(values):
            per_group = list(value) if isinstance(value, (list, tuple)) else [value] * n
            if len(per_group) != n:
                raise ValueError(f"values[{i}] must be a number or have one lr per param group ({n}), "
                                 f"got {len(per_group)}")
            for v in per_group:
                _check_real(f"values[{i}]", v, 0)
            table.append([float(v) for v in per_group])
        self.boundaries = boundaries
        self.values = table
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        self._warn_outside_step()
        return list(self.values[bisect_right(self.boundaries, self.last_epoch)])

    _get_closed_form_lr = get_lr


class ExponentialDecayLR(LRScheduler):
    r"""``lr(t) = lr0 * exp(-decay * t)`` (``decay >= 0``; ``lr0 = initial_lr``).

    Parameters
    ----------
    optimizer : Optimizer
        The wrapped optimizer: a fastopt, ``fastopt.torch`` or ``torch.optim`` optimizer, or any object
        with a ``param_groups`` list of dicts (TypeError otherwise).
    decay : float
        The decay rate: a finite real number >= 0 (ValueError otherwise; TypeError if not a real
        number).
    last_epoch : int, default -1
        The index of the last epoch. -1 starts the schedule from the beginning; ``N >= 0`` resumes it:
        every param group must then hold ``initial_lr`` (KeyError otherwise), and the constructor's step
        makes ``last_epoch`` ``N + 1``, as in torch.

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> from fastopt.lr_scheduler import ExponentialDecayLR
    >>> opt = fastopt.SGD([np.zeros(2)], lr=0.1)
    >>> sched = ExponentialDecayLR(opt, decay=0.5)
    >>> lrs = []
    >>> for epoch in range(4):
    ...     opt.step([np.ones(2)])             # an epoch of training at the current lr
    ...     lrs.append(round(sched.get_last_lr()[0], 4))
    ...     sched.step()
    >>> lrs
    [0.1, 0.0607, 0.0368, 0.0223]
    """

    def __init__(self, optimizer, decay, last_epoch=-1):
        _check_optimizer(optimizer)
        _check_real("decay", decay, 0)
        self.decay = decay
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        self._warn_outside_step()
        return [base_lr * math.exp(-self.decay * self.last_epoch) for base_lr in self.base_lrs]

    _get_closed_form_lr = get_lr


class InverseTimeDecayLR(LRScheduler):
    r"""``lr(t) = lr0 * (beta * t + 1) ** (-alpha)`` (``alpha, beta >= 0``; ``lr0 = initial_lr``).

    Parameters
    ----------
    optimizer : Optimizer
        The wrapped optimizer: a fastopt, ``fastopt.torch`` or ``torch.optim`` optimizer, or any object
        with a ``param_groups`` list of dicts (TypeError otherwise).
    alpha : float
        The exponent: a finite real number >= 0 (ValueError otherwise; TypeError if not a real number).
    beta : float
        The time scale: a finite real number >= 0 (ValueError otherwise; TypeError if not a real
        number).
    last_epoch : int, default -1
        The index of the last epoch. -1 starts the schedule from the beginning; ``N >= 0`` resumes it:
        every param group must then hold ``initial_lr`` (KeyError otherwise), and the constructor's step
        makes ``last_epoch`` ``N + 1``, as in torch.

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> from fastopt.lr_scheduler import InverseTimeDecayLR
    >>> opt = fastopt.SGD([np.zeros(2)], lr=0.1)
    >>> sched = InverseTimeDecayLR(opt, alpha=1.0, beta=1.0)
    >>> lrs = []
    >>> for epoch in range(4):
    ...     opt.step([np.ones(2)])             # an epoch of training at the current lr
    ...     lrs.append(round(sched.get_last_lr()[0], 4))
    ...     sched.step()
    >>> lrs
    [0.1, 0.05, 0.0333, 0.025]
    """

    def __init__(self, optimizer, alpha, beta, last_epoch=-1):
        _check_optimizer(optimizer)
        _check_real("alpha", alpha, 0)
        _check_real("beta", beta, 0)
        self.alpha = alpha
        self.beta = beta
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        self._warn_outside_step()
        return [base_lr * (self.beta * self.last_epoch + 1) ** (-self.alpha) for base_lr in self.base_lrs]

    _get_closed_form_lr = get_lr
