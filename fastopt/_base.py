"""The Optimizer base class: parameter groups, lazy per-parameter state, the step loop, state_dict.

Subclasses are thin: they name their kernel, list their state, check their hyperparameters and map a
group's hyperparameters onto the kernel's keywords. They do no array arithmetic.
"""
import copy
import operator

import numpy as np

from . import _validation as check
from . import kernels, reference
from ._config import get_num_threads

BACKENDS = {"cython": kernels, "numpy": reference}


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


class Optimizer:
    """Base class of fastopt's optimizers, with torch.optim.Optimizer's structure.

    Parameters are NumPy arrays (any shape, C-contiguous, writeable, float32 or float64), given as a
    list or as a list of parameter groups (dicts with a ``"params"`` list and per-group hyperparameters).
    ``step(grads)`` takes one gradient per parameter (groups in order; None skips that parameter) and
    updates the parameters in place.

    ``state`` maps each parameter's index (its position across the groups, as in ``state_dict()``) to
    its state dict, with torch's key names; counters such as ``step`` are 0-d arrays of the parameter's
    dtype. Parameters never stepped have no entry.
    """

    def __init__(self, params, defaults, *, backend="cython"):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {sorted(BACKENDS)}, got {backend!r}")
        self.backend = backend
        self._check_hyperparameters(defaults)
        self.defaults = defaults
        self._hyperparameters = operator.itemgetter(*defaults)  # a group's values, in one C call
        self._version = [0]  # bumped whenever state entries are created, replaced or removed
        self.state = {}
        self.param_groups = []
        self._prepared = {}  # id(group) -> its cache entry: see _prepare and _group_state
        if isinstance(params, np.ndarray) or isinstance(params, dict):
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
        return self._state

    @state.setter
    def state(self, value):
        self._state = _State(self._version, value)
        self._version[0] += 1

    # -- parameter groups ---------------------------------------------------------------------------

    def _params(self):
        return [p for group in self.param_groups for p in group["params"]]

    def add_param_group(self, param_group):
        """Add a group of parameters (a dict with ``"params"`` and optional hyperparameters; missing
        hyperparameters come from the constructor's defaults)."""
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
        else:
            params = list(params)
        existing = self._params()
        for offset, p in enumerate(params):
            check.param(p, len(existing) + offset)
        ids = {id(p) for p in existing}
        if any(id(p) in ids for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("a parameter appears twice in one parameter group")
        group = {"params": params}
        for name, default in self.defaults.items():
            group[name] = param_group.get(name, default)
        for name, value in param_group.items():
            group.setdefault(name, value)
        self._check_hyperparameters(group)
        self.param_groups.append(group)

    # -- the step -----------------------------------------------------------------------------------

    def step(self, grads):
        """Update every parameter whose gradient is not None, in place.

        ``grads`` is a list aligned with the parameters (groups in order). Everything is checked before
        any array is touched: a rejected step changes nothing. Each group is one kernel call.
        """
        groups = self.param_groups
        entries = list(map(self._prepare, groups))
        grads = check.grads(grads, groups)
        n_threads = get_num_threads()
        start = 0
        for group, entry in zip(groups, entries):
            params = group["params"]
            count = len(params)
            group_grads = grads if count == len(grads) else grads[start:start + count]
            plan = entry[5]
            if (plan is not None and plan[0] is params and plan[1] == count and plan[2] == start
                    and plan[3] == self._version[0]):
                buffers, created = plan[4], None  # the hot path: every param has its state
            else:
                buffers, created = self._group_state(group, entry, start, group_grads)
            kwargs = entry[3]
            kwargs["n_threads"] = n_threads
            self._run(entry[4], params, group_grads, buffers, created, kwargs)
            start += count

    def _prepare(self, group):
        """The group's cache entry ``[hyperparameters, spec, spec keys, kernel keywords, kernel, plan]``,
        checking its hyperparameters first: only when they changed since the last step (a step must not
        pay for a dozen checks)."""
        snapshot = self._hyperparameters(group)
        entry = self._prepared.get(id(group))
        if entry is None or entry[0] != snapshot:
            self._check_hyperparameters(group)
            spec = self._state_spec(group)
            kernel = getattr(BACKENDS[self.backend], self._kernel + "_group")
            plan = entry[5] if entry is not None and entry[2] == tuple(spec) else None
            entry = self._prepared[id(group)] = [snapshot, spec, tuple(spec), self._kernel_kwargs(group),
                                                 kernel, plan]
        return entry

    def _group_state(self, group, entry, start, grads):
        """The group's state buffers in the kernel's order (``_buffers``), each a list aligned with the
        params (None: not used), creating what is missing for the params that have a gradient. Once every
        param has its state the lists are cached in the group's entry (the plan ``step`` checks), so a
        step does no per-tensor Python work. ``created``: per param, the state keys this step allocated
        (None when none were)."""
        params, spec = group["params"], entry[1]
        created, complete = [], True
        for k, (param, grad) in enumerate(zip(params, grads)):
            state = self.state.get(start + k, {})
            added = self._complete_state(state, spec, param) if grad is not None else []
            if state and start + k not in self.state:  # SGD without momentum keeps no state, as in torch
                self.state[start + k] = state
            created.append(added)
            complete = complete and all(name in state for name in spec)
        buffers = [[self.state.get(start + k, {}).get(name) for k in range(len(params))] if name in spec
                   else None for name in self._buffers]
        if any(created):
            self._version[0] += 1
        entry[5] = (params, len(params), start, self._version[0], buffers) if complete else None
        return buffers, (created if any(created) else None)

    def _run(self, kernel, params, grads, buffers, created, kwargs):
        """One kernel call for a group: ``kernel(params, grads, *buffers, **kwargs)``."""
        kernel(params, grads, *buffers, **kwargs)

    # -- what subclasses provide --------------------------------------------------------------------

    _kernel = None  # the rule's name in fastopt.kernels / fastopt.reference (its group kernel: + "_group")
    _buffers = ()   # the state keys the kernel takes after (params, grads), in its order

    def _check_hyperparameters(self, group):
        """Raise torch's ValueError/TypeError for a bad hyperparameter in ``group``."""
        raise NotImplementedError

    def _state_spec(self, group):
        """The state of one parameter, in torch's key order: ``{key: (fill, scalar)}``. ``fill`` is the
        initial value (None: created by the step itself); ``scalar`` marks 0-d counters."""
        raise NotImplementedError

    def _kernel_kwargs(self, group):
        """The kernel's hyperparameter keywords for ``group`` (computed when they change)."""
        raise NotImplementedError

    # -- state --------------------------------------------------------------------------------------

    def _new_state(self, param, group):
        state = {}
        self._complete_state(state, self._state_spec(group), param)
        return state

    @staticmethod
    def _complete_state(state, spec, param):
        """Add the spec's missing keys to ``state`` (fill None: uninitialised, the kernel writes it);
        returns the keys added. Keys appear lazily, e.g. ``max_exp_avg_sq`` when amsgrad is turned on."""
        created = []
        for key, (fill, scalar) in spec.items():
            if key not in state:
                shape = () if scalar else param.shape
                state[key] = (np.empty(shape, param.dtype) if fill is None
                              else np.full(shape, fill, dtype=param.dtype))
                created.append(key)
        return created

    def state_dict(self):
        """torch's structure: ``{"state": {index: {key: array}}, "param_groups": [{..., "params": [index, ...]}]}``.

        As in torch the arrays are the live state (not copies): pickle it or ``copy.deepcopy`` it to
        keep a snapshot.
        """
        groups, start = [], 0
        for group in self.param_groups:
            packed = {key: value for key, value in group.items() if key != "params"}
            packed["params"] = list(range(start, start + len(group["params"])))
            start += len(group["params"])
            groups.append(packed)
        return {"state": {index: dict(state) for index, state in self.state.items()},
                "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Load a ``state_dict()`` (from fastopt, or torch.optim's with tensors): parameters are matched
        by position, hyperparameters replace the current ones and state arrays are copied into the
        parameters' dtype. Everything is checked first: a rejected load changes nothing."""
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise TypeError("state_dict must be a dict with 'state' and 'param_groups' entries")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(self.param_groups, saved_groups)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match the size "
                             "of optimizer's group")
        new_groups = []
        for group, saved in zip(self.param_groups, saved_groups):
            new_group = {key: value for key, value in group.items() if key != "params"}
            new_group.update(copy.deepcopy({k: v for k, v in saved.items() if k not in ("params", "param_names")}))
            self._check_hyperparameters(new_group)
            new_groups.append({"params": group["params"], **new_group})
        params = self._params()
        owner = [group for group in new_groups for _ in group["params"]]
        position = {saved_id: i for i, saved_id in enumerate(i for g in saved_groups for i in g["params"])}
        new_state = {}
        for saved_id, saved in state_dict["state"].items():
            if saved_id not in position:
                raise ValueError(f"loaded state dict has state for parameter id {saved_id!r}, which no "
                                 "parameter group lists")
            index = position[saved_id]
            new_state[index] = self._load_state(saved, params[index], index, owner[index])
        self.param_groups[:] = [{**g} for g in new_groups]
        self.state = new_state
        self._version[0] += 1

    def _load_state(self, saved, param, index, group):
        if not isinstance(saved, dict):
            raise TypeError(f"state of params[{index}] must be a dict, got {type(saved).__name__}")
        spec = self._state_spec(group)
        state = {}
        for key, (fill, scalar) in spec.items():
            if key in saved:
                state[key] = check.state_buffer(saved[key], param, index, key, scalar)
            elif fill is not None:
                raise ValueError(f"state of params[{index}] has no {key!r} (expected keys: {list(spec)})")
        return state  # keys this optimizer does not use are dropped

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_prepared"] = {}  # keyed by object ids, holds kernels: rebuilt after a copy
        return state

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {key}: {group[key]}" for key in sorted(group) if key != "params"]
        return "\n".join(lines + [")"])
