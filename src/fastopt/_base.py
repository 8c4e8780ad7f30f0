"""The Optimizer base class: parameter groups, lazy per-parameter state, the step loop, state_dict.

Subclasses are thin: they name their kernel, list their state, check their hyperparameters and map a
group's hyperparameters onto the kernel's keywords. They do no array arithmetic.

A step is checked whole before anything is written: the hyperparameters of every group, every param and
gradient (types, shapes, layout, memory overlap), the state; then the missing state is created and each
group's kernel builds its work items (``*_batch``, which checks its arrays again); only then does one
``run`` update every group. What a step needs that does not change from step to step is kept in a
``_Plan``, rebuilt when the params, the state entries or the hyperparameters change.
"""
import copy
import inspect
import threading
from collections.abc import Hashable

import numpy as np

from . import _validation as check
from . import kernels, reference
from ._config import get_num_threads
from ._formats import Precision
from ._kernels import _runtime

BACKENDS = {"cython": kernels, "numpy": reference}

# The two docstring parts every optimizer shares (its class docstring says "{options}" and
# "{input_rules}" where they go; Optimizer.__init_subclass__ puts them in).
_OPTIONS_DOC = """backend : {"cython", "numpy"}, default "cython"
        ``"numpy"`` runs the pure-NumPy reference of the same math (:mod:`fastopt.reference`).
    max_grad_norm : float or None, default None
        Through ``**options``, as every optimizer: clip the gradients to this global norm inside the
        step (a positive, finite number; None: no clipping), as ``torch.nn.utils.clip_grad_norm_``
        before the step would, without rewriting them (see :class:`fastopt.Optimizer`).
    norm_type : float, default 2.0
        Through ``**options``: the norm of ``max_grad_norm``, 2, 1, ``inf`` or any other p > 0.
    skip_nonfinite : bool, default False
        Through ``**options``: a step whose gradients hold NaN or inf changes nothing (parameters,
        state, step counts) and is counted in ``skipped_steps``.
    rounding, seed, master_weights, state_dtype
        Through ``**options``: the precision of 16-bit parameters and of the state
        (see :class:`fastopt.Optimizer` and docs/precision.md)."""

_INPUT_RULES_DOC = """Parameters are NumPy arrays of any shape, float32, float64, bfloat16 (ml_dtypes) or float16,
    C-contiguous and writeable: the step updates them in place (16-bit ones computed in float32). ``step(grads)`` takes a list aligned with the parameters (groups in
    order): for each, an array of its shape and dtype (C-contiguous, sharing no memory with the
    parameters or the state), or None to leave that parameter and its state alone. Bad input (a
    hyperparameter, a parameter, a gradient, the list's length) raises ValueError or TypeError before
    anything changes. ``state[i]`` is the state of the parameter at position ``i`` across the groups
    (arrays of its shape and dtype; counters such as ``step`` are 0-d)."""


class _State(dict):
    """``opt.state`` and each parameter's state dict: a dict that counts its replacements, so the
    step's cached plan (which holds the state arrays) is rebuilt when an entry is replaced or removed,
    e.g. ``opt.state[0]["exp_avg"] = np.zeros_like(p)``. Updating an array in place changes nothing
    here. Values put into ``opt.state`` become ``_State`` dicts themselves."""

    def __init__(self, version, items=()):
        super().__init__()
        self._version = version  # a one-element list shared with the optimizer
        self.update(items)

    def _wrap(self, value):
        return _State(self._version, value) if type(value) is dict else value

    def __setitem__(self, key, value):
        super().__setitem__(key, self._wrap(value))
        self._version[0] += 1

    def __delitem__(self, key):
        super().__delitem__(key)
        self._version[0] += 1

    def update(self, *args, **kwargs):
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return self[key]

    def pop(self, key, *default):
        self._version[0] += 1
        return super().pop(key, *default)

    def popitem(self):
        self._version[0] += 1
        return super().popitem()

    def clear(self):
        self._version[0] += 1
        super().clear()

    def __reduce__(self):
        return _State, (self._version, dict(self))



class _Plan:
    """What a step needs from the params, state and hyperparameters, checked once: ``groups`` and
    ``lists`` (the param_groups and their params lists it was built from: ``same_params`` compares
    them), ``params`` (flat), ``starts`` (each group's first position), per group its ``frozen``
    hyperparameters (``_runtime.snapshot``), state ``spec`` and kernel ``kwargs``, ``buffers`` (per
    group, the state arrays in the kernel's order) once every param has its state (``complete``), and
    ``written`` (the memory a step writes, for the gradients' overlap check; ``checked``: the gradients
    of the last step, already checked against it)."""

    __slots__ = ("version", "lists", "params", "starts", "frozen", "specs", "kwargs", "args", "buffers",
                 "complete", "written", "checked", "batch", "run")


def _live_value(group, key):
    """A group's ``_live`` entry (read every step), or the ValueError of a missing hyperparameter."""
    try:
        return group[key]
    except KeyError:
        raise ValueError(f"a param group has no {key!r} (the optimizer keeps it in every group: restore it "
                         "or load a state_dict)") from None


def _saved(value):
    """A state entry as ``state_dict`` gives it: the live array, or a quantized entry's arrays."""
    if isinstance(value, _runtime.Quantized):
        return {"codes": value.codes, "absmax": value.absmax, "qmap": value.qmap, "block_size": value.block_size,
                "signed": value.is_signed, "shape": value.shape}
    return value


class Optimizer:
    """Base class of fastopt's optimizers, with torch.optim.Optimizer's structure.

    Parameters are NumPy arrays (any shape, C-contiguous, writeable; float32, float64, bfloat16 from
    ml_dtypes, or float16: docs/precision.md), given as a
    list or as a list of parameter groups (dicts with a ``"params"`` list and per-group hyperparameters).
    ``step(grads)`` takes one gradient per parameter (groups in order; None skips that parameter) and
    updates the parameters in place.

    ``state`` maps each parameter's index (its position across the groups, as in ``state_dict()``) to
    its state dict, with torch's key names; counters such as ``step`` are 0-d arrays of the parameter's
    dtype (float32 for a 16-bit parameter). Parameters never stepped have no entry. State belongs to its parameter, as in torch: a
    parameter added to, removed from or moved within ``param_groups`` takes its state along, and one that
    is new to the optimizer starts with none.

    Options every optimizer takes (keywords, after its own hyperparameters):

    - ``max_grad_norm=None``, ``norm_type=2.0``: clip the gradients to this global norm inside the
      step, as ``torch.nn.utils.clip_grad_norm_`` before it (scale ``min(1, max_grad_norm / (norm +
      1e-6))``): one read pass computes the norm of all the gradients, and the update pass multiplies
      each gradient as it reads it, so the gradients are never rewritten. ``last_grad_norm``: the norm
      of the last step (before clipping).
    - ``skip_nonfinite=False``: a step whose gradients hold NaN or inf anywhere changes nothing
      (parameters, state, step counts) and is counted in ``skipped_steps``; with clipping it shares the
      norm's pass.
    - ``rounding="nearest"``, ``seed=None``: ``"stochastic"`` rounds bfloat16 stores up with the
      probability of the dropped bits, from a hash of (seed, step, tensor, element): reproducible for a
      seed and any thread count.
    - ``master_weights=None``: ``"split"`` keeps a bfloat16 param's low halves (state ``param_lo``,
      int16), together an exact float32 master; ``"float32"`` a float32 copy (``master_param``) rounded
      into the 16-bit param at every step.
    - ``state_dtype=None`` (the param's dtype; float32 with a master), ``"float32"``, ``"bfloat16"``,
      ``"q8"``, ``"q4"`` (blockwise 8- and 4-bit codes, bitsandbytes' maps; tensors under 4096
      elements keep float32), or a dict of them per state key.
    - ``backend="cython"``: ``"numpy"`` runs the pure-NumPy reference of the same math.

    One optimizer may be used from several threads: its methods are serialized by a lock.

    Parameters
    ----------
    params : iterable of numpy.ndarray, or iterable of dict
        The arrays to update in place (not empty), or parameter groups: dicts with a ``"params"`` list
        (or a single array) and any hyperparameters, which override ``defaults`` for that group.
    defaults : dict
        The subclass's hyperparameters by name (torch's), used where a group gives none; checked by
        the subclass (ValueError/TypeError for a bad value).
    backend : {"cython", "numpy"}, default "cython"
        Keyword-only. ``"numpy"`` runs the pure-NumPy reference of the same math
        (:mod:`fastopt.reference`).
    max_grad_norm : float or None, default None
        Keyword-only. Clip the gradients to this global norm inside the step (a positive, finite
        number; None: no clipping), as described above.
    norm_type : float, default 2.0
        Keyword-only. The norm ``max_grad_norm`` (and ``last_grad_norm``) uses: 2, 1, ``inf`` or any
        other p > 0.
    skip_nonfinite : bool, default False
        Keyword-only. Skip (change nothing, count in ``skipped_steps``) a step whose gradients hold NaN
        or inf.
    rounding : {"nearest", "stochastic"}, default "nearest"
        Keyword-only. How bfloat16 stores round (parameters and bfloat16 state), as described above.
    seed : int or None, default None
        Keyword-only. The seed of stochastic rounding (None: drawn from the OS).
    master_weights : {None, "split", "float32"}, default None
        Keyword-only. A float32 master for 16-bit parameters, as described above.
    state_dtype : None, "float32", "bfloat16", "q8", "q4" or dict, default None
        Keyword-only. The dtype of the state arrays, as described above.

    Attributes
    ----------
    param_groups : list of dict
        The groups: ``"params"`` (the arrays) and every hyperparameter. Hyperparameters may be changed
        between steps (a learning-rate scheduler does); they are checked at the next step.
    state : dict
        ``{index: {key: numpy.ndarray}}``, each parameter's state (see above).
    defaults : dict
        The constructor's hyperparameters.
    last_grad_norm : float or None
        The gradients' norm at the last step, when ``max_grad_norm`` or ``skip_nonfinite`` is set
        (NaN or inf for non-finite gradients); None before.
    skipped_steps : int
        Steps skipped by ``skip_nonfinite``.

    Notes
    -----
    Gradients are arrays of their parameter's shape and dtype, C-contiguous, sharing no memory with
    the parameters or the state. A bad hyperparameter, parameter, gradient or gradient list raises
    ValueError or TypeError (torch's messages for hyperparameters) before anything is written: a
    rejected constructor, step or ``load_state_dict`` changes nothing.

    Examples
    --------
    Two parameter groups, the second with its own learning rate:

    >>> import numpy as np
    >>> import fastopt
    >>> w, b = np.ones((2, 3), dtype=np.float32), np.zeros(3, dtype=np.float32)
    >>> opt = fastopt.SGD([{"params": [w]}, {"params": [b], "lr": 0.5}], lr=0.1)
    >>> opt.step([np.ones((2, 3), np.float32), np.ones(3, np.float32)])
    >>> print(w[0], b)
    [0.9 0.9 0.9] [-0.5 -0.5 -0.5]

    Clipping and skipping inside the step, and a rejected step:

    >>> p = np.zeros(4)
    >>> opt = fastopt.SGD([p], lr=1.0, max_grad_norm=1.0, skip_nonfinite=True)
    >>> opt.step([np.full(4, 2.0)])            # norm 4: the gradient is scaled by 1/4
    >>> print(opt.last_grad_norm, p.round(4))
    4.0 [-0.5 -0.5 -0.5 -0.5]
    >>> opt.step([np.array([np.nan, 0.0, 0.0, 0.0])])    # skipped: nothing changes
    >>> print(opt.skipped_steps, p.round(4))
    1 [-0.5 -0.5 -0.5 -0.5]
    >>> opt.step([np.ones(3)])
    Traceback (most recent call last):
        ...
    ValueError: grads[0] has shape (3,), expected (4,) (the shape of params[0])
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("__doc__"):  # (None under python -OO)
            cls.__doc__ = cls.__doc__.replace("{options}", _OPTIONS_DOC).replace("{input_rules}", _INPUT_RULES_DOC)

    def __init__(self, params, defaults, *, backend="cython", max_grad_norm=None, norm_type=2.0,
                 skip_nonfinite=False, rounding="nearest", seed=None, master_weights=None, state_dtype=None):
        if not isinstance(backend, str) or backend not in BACKENDS:
            raise ValueError(f"backend must be one of {sorted(BACKENDS)}, got {backend!r}")
        self.max_grad_norm, self.norm_type, self.skip_nonfinite = check.gradient_options(
            max_grad_norm, norm_type, skip_nonfinite)
        self.last_grad_norm, self.skipped_steps = None, 0
        self.backend = backend
        self._precision = Precision(rounding, seed, master_weights, state_dtype)
        self._lock = threading.RLock()
        self._check_hyperparameters(defaults)
        self.defaults = defaults
        self._keys = tuple(key for key in defaults if key not in self._live)  # the snapshot's keys
        self._version = [0]  # bumped whenever state entries are created, replaced or removed
        self._layout = ()    # the params that the positions of ``state`` refer to
        self._plan = None
        self.state = {}
        self.param_groups = []
        if isinstance(params, (np.ndarray, dict)) or not hasattr(params, "__iter__"):
            raise TypeError("params argument given to the optimizer should be an iterable of arrays "
                            f"or dicts, but got {type(params).__name__}")
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    @property
    def state(self):
        """Each parameter's state: ``{index: {key: numpy.ndarray}}`` with torch's keys, the index being
        the parameter's position across the groups. Arrays may be updated in place or replaced (by
        arrays of the parameter's shape and dtype; a step checks them)."""
        self._sync_layout()
        return self._state

    @state.setter
    def state(self, value):
        if not isinstance(value, dict):
            raise TypeError(f"state must be a dict, got {type(value).__name__}")
        self._state = _State(self._version, value)
        self._version[0] += 1

    # -- parameter groups ---------------------------------------------------------------------------

    def _params(self):
        return tuple(p for group in self.param_groups for p in group["params"])

    def add_param_group(self, param_group):
        """Add a group of parameters (a dict with ``"params"`` and optional hyperparameters; missing
        hyperparameters come from the constructor's defaults). Nothing changes if it is rejected.

        Parameters
        ----------
        param_group : dict
            ``"params"``: an array or a list of arrays (as the constructor's), none already in a
            group; any other entries are the group's hyperparameters.

        Raises
        ------
        ValueError, TypeError
            For a bad or repeated parameter or a bad hyperparameter.

        Examples
        --------
        >>> import numpy as np
        >>> import fastopt
        >>> opt = fastopt.Adam([np.zeros(3)], lr=1e-3)
        >>> opt.add_param_group({"params": [np.zeros(2)], "lr": 1e-2})
        >>> [group["lr"] for group in opt.param_groups]
        [0.001, 0.01]
        """
        with self._lock:
            if not isinstance(param_group, dict):
                raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
            params = param_group.get("params")
            if isinstance(params, np.ndarray):
                params = [params]
            elif isinstance(params, set):
                raise TypeError("optimizer parameters need to be organized in ordered collections, but "
                                "the ordering of tensors in sets will change between runs. Please use a list instead.")
            elif params is None:
                raise ValueError("param_group must have a 'params' entry")
            elif not hasattr(params, "__iter__") or isinstance(params, (str, bytes, dict)):
                raise TypeError("param_group['params'] must be an array or a list of arrays, got "
                                f"{type(params).__name__}")
            else:
                params = list(params)
            self._sync_layout()
            existing = self._layout
            for offset, p in enumerate(params):
                check.param(p, len(existing) + offset)
                self._precision.check_param(p, len(existing) + offset)
            ids = {id(p) for p in existing}
            if any(id(p) in ids for p in params):
                raise ValueError("some parameters appear in more than one parameter group")
            if len({id(p) for p in params}) != len(params):
                raise ValueError("a parameter appears twice in one parameter group")
            _runtime.Intervals(existing + tuple(params), [f"params[{i}]" for i in range(len(existing) + len(params))])
            group = {"params": params}
            for name, default in self.defaults.items():
                group[name] = param_group.get(name, default)
            for name, value in param_group.items():
                group.setdefault(name, value)
            self._check_hyperparameters(group)
            self.param_groups.append(group)
            self._layout = existing + tuple(params)

    # -- the step -----------------------------------------------------------------------------------

    def step(self, grads):
        """Update every parameter whose gradient is not None, in place.

        ``grads`` is a list aligned with the parameters (groups in order). Everything is checked before
        any array is touched: a rejected step changes nothing. All groups run as one kernel job.

        Parameters
        ----------
        grads : list of (numpy.ndarray or None)
            One entry per parameter: an array of the parameter's shape and dtype, C-contiguous and
            sharing no memory with the parameters or the state, or None to leave that parameter (and
            its state) alone.

        Raises
        ------
        ValueError, TypeError
            For a gradient list of the wrong length, a bad gradient, or a bad hyperparameter, parameter
            or state entry (changed since the last step).

        Examples
        --------
        >>> import numpy as np
        >>> import fastopt
        >>> p, q = np.ones(2), np.ones(3)
        >>> opt = fastopt.SGD([p, q], lr=0.5)
        >>> opt.step([np.ones(2), None])        # q has no gradient: left alone
        >>> print(p, q)
        [0.5 0.5] [1. 1. 1.]
        """
        with self._lock:
            plan = self._current_plan()
            grads = _runtime.check_grads(grads, plan.params, plan.written, plan.checked)
            plan.checked = tuple(grads)
            scale = 1.0
            if self.max_grad_norm is not None or self.skip_nonfinite:
                # one read pass over the gradients; the clip coefficient folds into the update's
                norm, finite = BACKENDS[self.backend].grad_norm(grads, self.norm_type, get_num_threads())
                self.last_grad_norm = norm
                if self.skip_nonfinite and not finite:
                    self.skipped_steps += 1
                    return
                scale = check.clip_scale(self.max_grad_norm, norm)
            created = None if plan.complete else self._create_state(plan, grads)
            precision = self._precision
            try:
                if len(plan.lists) == 1 and not created:  # the common case, in short
                    batches = plan.batch(plan.lists[0], grads, *plan.buffers[0], *plan.args[0])
                else:
                    batches = [self._batch(plan, i, grads, created) for i in range(len(plan.lists))]
                if precision.master_weights is not None:
                    self._attach_masters(plan, batches, grads)
            except BaseException:
                self._forget(created)
                raise
            try:
                plan.run(batches, get_num_threads(), scale, precision.rounding_seed())
            except Exception:  # MemoryError, raised before anything is written (a KeyboardInterrupt
                self._forget(created)  # arrives after the update: the new state is in use then)
                raise
            precision.advance()
            if self._live:  # the groups' bookkeeping (schedule-free's step count and weights)
                for group, kwargs in zip(self.param_groups, plan.kwargs):
                    self._advance(group, kwargs)

    def _attach_masters(self, plan, batches, grads):
        """Give each group's batch its params' float32 masters (``master_weights``)."""
        kind = self._precision.master_weights
        key = "param_lo" if kind == "split" else "master_param"
        attach = BACKENDS[self.backend].attach
        for i, batch in enumerate(batches if isinstance(batches, list) else [batches]):
            start = plan.starts[i]
            attach(batch, kind, [None if grads[start + k] is None else self._state[start + k][key]
                                 for k in range(len(plan.lists[i]))])

    def _batch(self, plan, i, grads, created):
        """Group i's checked work items: ``batch(params, grads, *buffers, *hyperparameters)``."""
        start, params = plan.starts[i], plan.lists[i]
        return plan.batch(params, grads[start:start + len(params)], *plan.buffers[i], *plan.args[i])

    @classmethod
    def _hyperparameter_names(cls):
        """The names of the kernel's hyperparameters, in the order its ``*_batch`` takes them (after
        the params, grads and ``_buffers``; up to ``check_overlap``, which the plan passes as False)."""
        names = cls.__dict__.get("_batch_hyperparameters")
        if names is None:
            signature = inspect.signature(getattr(kernels, cls._kernel + "_batch"))
            names = list(signature.parameters)
            names = tuple(names[2 + len(cls._buffers):names.index("check_overlap")])
            cls._batch_hyperparameters = names
        return names

    def _kernel_args(self, frozen, group):
        """A group's kernel keywords (``_kernel_kwargs`` of its frozen hyperparameters and its ``_live``
        keys) and, from them, the batch's positional hyperparameter arguments (ending with
        check_overlap=False)."""
        values = dict(zip(self._keys, frozen))
        for key in self._live:
            values[key] = _live_value(group, key)
        kwargs = self._kernel_kwargs(values)
        return kwargs, tuple(kwargs.get(name) for name in self._hyperparameter_names()) + (False,)

    def _current_plan(self):
        """The plan for the current params, state and hyperparameters (rebuilt when they changed)."""
        plan, groups = self._plan, self.param_groups
        if (plan is None or plan.version != self._version[0]
                or not _runtime.same_params(groups, plan.lists, plan.params)):
            return self._build_plan()
        for i, group in enumerate(groups):  # hyperparameters, by value
            frozen = _runtime.snapshot(group, self._keys)
            if frozen != plan.frozen[i]:
                self._check_hyperparameters(group)
                spec = self._spec(group)
                plan.kwargs[i], plan.args[i] = self._kernel_args(frozen, group)
                plan.frozen[i] = frozen
                if list(spec) != list(plan.specs[i]):
                    plan.specs[i], plan.complete = spec, False
                    plan.buffers = self._group_buffers(plan)
                else:
                    plan.specs[i] = spec
            elif self._live:  # the step's own scalars (schedule-free's averaging weight), every step
                plan.kwargs[i], plan.args[i] = self._kernel_args(frozen, group)
        return plan

    def _build_plan(self):
        """Check the param_groups, the params, their hyperparameters and their state, then build the
        plan. Raises (changing nothing) for a bad group, param, hyperparameter or state entry, or for
        two of the arrays a step writes sharing memory."""
        groups = self.param_groups
        if not isinstance(groups, list):
            raise TypeError(f"param_groups must be a list of dicts, got {type(groups).__name__}")
        for i, group in enumerate(groups):
            if not isinstance(group, dict):
                raise TypeError(f"param_groups[{i}] must be a dict, got {type(group).__name__}")
            if not isinstance(group.get("params"), list):
                raise TypeError(f"param_groups[{i}]['params'] must be a list of arrays, got "
                                f"{type(group.get('params')).__name__}")
        params = self._params()
        for i, p in enumerate(params):
            check.param(p, i)
            self._precision.check_param(p, i)
        if len({id(p) for p in params}) != len(params):
            raise ValueError("some parameters appear more than once in param_groups")
        frozen = [_runtime.snapshot(group, self._keys) for group in groups]
        for group in groups:
            self._check_hyperparameters(group)
        state = self._remapped(params)
        specs = [self._spec(group) for group in groups]
        starts, arrays, names = [], list(params), [f"params[{i}]" for i in range(len(params))]
        position = 0
        for group, spec in zip(groups, specs):
            starts.append(position)
            for p in group["params"]:
                for key, value in state.get(position, {}).items():
                    if key in spec:
                        check.state_entry(value, p, position, key, spec[key][1],
                                          self._precision.entry_dtype(p.dtype, key, spec[key][1], p.size))
                        arrays.append(value)
                        names.append(f"state[{position}][{key!r}]")
                position += 1
        written = _runtime.Intervals(arrays, names)
        if state is not self._state:
            self.state = state
        self._layout = params
        plan = _Plan()
        plan.lists = tuple(group["params"] for group in groups)
        plan.params, plan.starts, plan.frozen, plan.specs = params, starts, frozen, specs
        plan.kwargs, plan.args = map(list, zip(*[self._kernel_args(values, group)
                                                 for values, group in zip(frozen, groups)]))
        backend = BACKENDS[self.backend]
        plan.batch, plan.run = getattr(backend, self._kernel + "_batch"), backend.run
        plan.written, plan.checked = written, None
        plan.buffers = self._group_buffers(plan)
        plan.version = self._version[0]
        self._plan = plan
        return plan

    def _group_buffers(self, plan):
        """Per group, the state arrays in the kernel's order (``_buffers``): a list aligned with the
        group's params (None: no state yet), or None for a key the group's spec does not use. Sets
        ``plan.complete``."""
        state, out, complete = self._state, [], True
        for start, params, spec in zip(plan.starts, plan.lists, plan.specs):
            entries = [state.get(start + k, {}) for k in range(len(params))]
            complete = complete and all(key in entry for entry in entries for key in spec)
            out.append([[entry.get(name) for entry in entries] if name in spec else None
                        for name in self._buffers])
        plan.complete = complete
        return out

    def _create_state(self, plan, grads):
        """Create the missing state of every param that has a gradient (fresh arrays: nothing to check)
        and put it into the plan's buffers; returns {position: keys created}."""
        created = {}
        for i, (start, params, spec) in enumerate(zip(plan.starts, plan.lists, plan.specs)):
            for k, param in enumerate(params):
                if grads[start + k] is None:
                    continue
                state = self._state.get(start + k)
                missing = [key for key in spec if state is None or key not in state]
                if not missing:
                    continue
                if state is None:
                    state = self._state[start + k] = {}
                    state = self._state[start + k]
                for key in missing:
                    fill, scalar = spec[key]
                    state[key] = self._precision.new_entry(param, key, fill, scalar)
                    if key in self._buffers:  # (a master's entry is not a kernel argument)
                        plan.buffers[i][self._buffers.index(key)][k] = state[key]
                created[start + k] = missing
        # the new arrays are in this step's buffers; creating them bumped the state's version, so the
        # next step rebuilds the plan (their memory joins the overlap index)
        return created

    def _forget(self, created):
        """Undo ``_create_state`` (a step rejected after creating state)."""
        for position, keys in (created or {}).items():
            state = self._state[position]
            for key in keys:
                del state[key]
            if not state:
                del self._state[position]
        self._plan = None

    # -- state follows its parameter ----------------------------------------------------------------

    def _remapped(self, params):
        """``state`` re-keyed for the positions of ``params`` (the current layout): each param keeps
        its own state; a param new to the optimizer has none; the state of a param no longer present
        is dropped. The same dict when the layout has not changed."""
        old = self._layout
        if len(old) == len(params) and all(a is b for a, b in zip(old, params)):
            return self._state
        where = {id(p): i for i, p in enumerate(old)}
        state = {}
        for i, p in enumerate(params):
            j = where.get(id(p))
            if j is not None and j in self._state:
                state[i] = self._state[j]
        return state

    def _sync_layout(self):
        """Re-key ``state`` for the current param_groups (see ``_remapped``), unless they hold something
        a step would reject: then nothing moves (the step says what is wrong, and restoring the param
        finds its state where it was)."""
        try:
            params = self._params()
            for i, p in enumerate(params):
                check.param(p, i)
        except (TypeError, ValueError, KeyError, AttributeError):
            return
        state = self._remapped(params)
        if state is not self._state:
            self.state = state
        self._layout = params

    # -- what subclasses provide --------------------------------------------------------------------

    _kernel = None  # the rule's name in fastopt.kernels / fastopt.reference (its batch: + "_batch")
    _live = ()      # group keys read afresh every step (schedule-free's step count), not in the snapshot
    _buffers = ()   # the state keys the kernel takes after (params, grads), in its order

    def _check_hyperparameters(self, group):
        """Raise torch's ValueError/TypeError for a bad hyperparameter in ``group``."""
        raise NotImplementedError

    def _state_spec(self, group):
        """The state of one parameter, in torch's key order: ``{key: (fill, scalar)}``. ``fill`` is the
        initial value (None: the step itself writes it first); ``scalar`` marks 0-d counters."""
        raise NotImplementedError

    def _kernel_kwargs(self, group):
        """The kernel's hyperparameter keywords for ``group`` (its values frozen: Python scalars)."""
        raise NotImplementedError

    def _advance(self, group, kwargs):
        """After a step ran: update ``group``'s own bookkeeping from its ``kwargs`` (schedule-free's step
        count and averaging weights live in its param groups); nothing for the other rules."""

    # -- state --------------------------------------------------------------------------------------

    def _new_state(self, param, group):
        return {key: self._precision.new_entry(param, key, fill, scalar)
                for key, (fill, scalar) in self._spec(group).items()}

    def _spec(self, group):
        """The state of one parameter: the rule's (``_state_spec``) and its master's, if any."""
        return {**self._state_spec(group), **self._precision.extra_spec()}

    def state_dict(self):
        """torch's structure: ``{"state": {index: {key: array}}, "param_groups": [{..., "params": [index, ...]}]}``.

        As in torch the arrays are the live state (not copies): pickle it or ``copy.deepcopy`` it to
        keep a snapshot.

        Returns
        -------
        dict
            ``"state"`` (each stepped parameter's state by index) and ``"param_groups"`` (each group's
            hyperparameters, with ``"params"`` its parameters' indices).

        Examples
        --------
        >>> import numpy as np
        >>> import fastopt
        >>> opt = fastopt.Adam([np.ones(2)], lr=0.1)
        >>> opt.step([np.ones(2)])
        >>> sd = opt.state_dict()
        >>> sorted(sd["state"][0]), sd["param_groups"][0]["params"], sd["param_groups"][0]["lr"]
        (['exp_avg', 'exp_avg_sq', 'step'], [0], 0.1)
        """
        groups, start = [], 0
        for group in self.param_groups:
            packed = {key: value for key, value in group.items() if key != "params"}
            packed["params"] = list(range(start, start + len(group["params"])))
            start += len(group["params"])
            groups.append(packed)
        out = {"state": {index: {key: _saved(value) for key, value in state.items()}
                         for index, state in self.state.items()}, "param_groups": groups}
        if self._precision.rounding == "stochastic":  # to resume the same random bits
            out["rounding"] = {"seed": self._precision.seed, "steps": self._precision.steps}
        return out

    def load_state_dict(self, state_dict):
        """Load a ``state_dict()`` (from fastopt, or torch.optim's with tensors): parameters are matched
        by position, hyperparameters replace the current ones and state arrays are copied into the
        parameters' dtype. Everything is checked first: a rejected load changes nothing.

        Parameters
        ----------
        state_dict : dict
            ``{"state": ..., "param_groups": ...}`` as ``state_dict()`` returns, with as many groups
            and parameters per group as this optimizer; state keys this optimizer does not use are
            dropped.

        Raises
        ------
        ValueError, TypeError
            For a state dict that does not match (groups, sizes, state shapes) or a bad hyperparameter.

        Examples
        --------
        >>> import copy
        >>> import numpy as np
        >>> import fastopt
        >>> opt = fastopt.Adam([np.ones(2)], lr=0.1)
        >>> opt.step([np.ones(2)])
        >>> saved = copy.deepcopy(opt.state_dict())
        >>> resumed = fastopt.Adam([np.ones(2, dtype=np.float32)])
        >>> resumed.load_state_dict(saved)
        >>> resumed.param_groups[0]["lr"], resumed.state[0]["exp_avg"].dtype
        (0.1, dtype('float32'))
        """
        with self._lock:
            if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
                raise TypeError("state_dict must be a dict with 'state' and 'param_groups' entries")
            saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
            if not isinstance(saved_groups, (list, tuple)):
                raise TypeError("state_dict['param_groups'] must be a list of dicts, got "
                                f"{type(saved_groups).__name__}")
            if not isinstance(saved_state, dict):
                raise TypeError(f"state_dict['state'] must be a dict, got {type(saved_state).__name__}")
            for i, saved in enumerate(saved_groups):
                if not isinstance(saved, dict) or not isinstance(saved.get("params"), (list, tuple)):
                    raise TypeError(f"state_dict['param_groups'][{i}] must be a dict with a 'params' list")
            self._sync_layout()
            if len(saved_groups) != len(self.param_groups):
                raise ValueError("loaded state dict has a different number of parameter groups")
            if any(len(g["params"]) != len(s["params"]) for g, s in zip(self.param_groups, saved_groups)):
                raise ValueError("loaded state dict contains a parameter group that doesn't match the size "
                                 "of optimizer's group")
            new_groups = []
            for group, saved in zip(self.param_groups, saved_groups):
                new_group = {key: value for key, value in group.items() if key != "params"}
                new_group.update(copy.deepcopy({k: check.plain(v) for k, v in saved.items()
                                                 if k not in ("params", "param_names")}))
                self._check_hyperparameters(new_group)
                new_groups.append({"params": group["params"], **new_group})
            params = self._params()
            owner = [group for group in new_groups for _ in group["params"]]
            position = {}
            for i, saved_id in enumerate(i for g in saved_groups for i in g["params"]):
                if not isinstance(saved_id, Hashable):
                    raise TypeError(f"parameter ids in state_dict['param_groups'] must be ints, got "
                                    f"{type(saved_id).__name__}")
                position[saved_id] = i
            new_state = {}
            for saved_id, saved in saved_state.items():
                if saved_id not in position:
                    raise ValueError(f"loaded state dict has state for parameter id {saved_id!r}, which no "
                                     "parameter group lists")
                index = position[saved_id]
                new_state[index] = self._load_state(saved, params[index], index, owner[index])
            rounding = state_dict.get("rounding")
            if rounding is not None and self._precision.rounding == "stochastic":
                seed, steps = int(rounding["seed"]), int(rounding["steps"])
            else:
                seed, steps = self._precision.seed, self._precision.steps
            self.param_groups[:] = [{**g} for g in new_groups]
            self.state = new_state
            self._layout, self._plan = params, None
            self._precision.seed, self._precision.steps = seed, steps

    def _load_state(self, saved, param, index, group):
        if not isinstance(saved, dict):
            raise TypeError(f"state of params[{index}] must be a dict, got {type(saved).__name__}")
        spec = self._spec(group)
        state = {}
        for key, (fill, scalar) in spec.items():
            if key in saved:
                state[key] = check.state_buffer(saved[key], param, index, key, scalar,
                                                self._precision.entry_dtype(param.dtype, key, scalar, param.size))
            elif fill == "param":  # a master from a checkpoint without one: the param itself
                state[key] = self._precision.new_entry(param, key, fill, scalar)
            elif fill is not None:
                raise ValueError(f"state of params[{index}] has no {key!r} (expected keys: {list(spec)})")
        return state  # keys this optimizer does not use are dropped

    def __getstate__(self):
        state = dict(self.__dict__)
        del state["_lock"]
        state["_plan"] = None  # rebuilt by the first step of the copy
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.RLock()
        if "_precision" not in state:  # pickled before the precision options
            self._precision = Precision()

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {key}: {group[key]}" for key in sorted(group) if key != "params"]
        return "\n".join(lines + [")"])
