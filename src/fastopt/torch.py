"""fastopt.torch: torch.optim's optimizers, stepped by fastopt's fused kernels, for PyTorch CPU loops.

Change the import and nothing else::

    opt = fastopt.torch.Adam(model.parameters(), lr=1e-3)     # was torch.optim.Adam(...)
    for x, y in batches:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

Each class is a ``torch.optim.Optimizer`` with torch's constructor signature, defaults, param-group
keys, state (tensors with torch's keys, dtypes and shapes) and ``state_dict``, so
``torch.optim.lr_scheduler``, ``torch.amp.GradScaler``, hooks, checkpoints (loadable by torch.optim and
back, through ``torch.save``/``torch.load``), DistributedDataParallel and ZeroRedundancyOptimizer work
unchanged. The math is fastopt's (the same kernels as :mod:`fastopt`'s NumPy optimizers, one fused pass
over each parameter, its gradient and its state), so results match torch.optim's for-loop to rounding.

The step works on the tensors' memory in place (no copies), read afresh at every step from each parameter
and its ``.grad``: replaced storage (``model.share_memory()``, ``p.data = ...``, ``model.to(dtype)``,
``model.load_state_dict``) keeps training as with torch.optim. Parameters are dense CPU tensors of
float32, float64, bfloat16 (through ``ml_dtypes``: ``pip install "fastopt[bf16]"``) or float16 in any
memory format (channels_last included); 16-bit ones keep their state in their dtype, computed in float32
and rounded to nearest even, as torch's ``fused=True``; every optimizer takes the precision options
``rounding``, ``seed``, ``master_weights`` and ``state_dtype`` (docs/precision.md). A gradient or state tensor laid out
differently from its parameter is read through a copy in the parameter's layout (state is re-laid once).
Anything else is refused with a ValueError or TypeError naming ``params[i]`` (its index across the
groups, as in ``state_dict``) before anything is written: CUDA/MPS tensors, sparse gradients, complex
parameters, ``differentiable=True`` and ``capturable=True``. ``foreach`` and ``fused``
are accepted and inert: fastopt always runs its one fused kernel.

Threads: a large step runs on torch's own intra-op threads (its OpenMP team, as torch's fused step does:
after backward they are still spinning, hot, where a second pool would have to share their cores), on at
most ``torch.get_num_threads()`` and ``fastopt.get_num_threads()`` threads. Results are bit-identical for
any thread count. When that team keeps steps waiting for threads the OS is not running (a busy machine),
the next steps run on fastopt's own pool for a while; so do all steps where torch's parallel backend is
not OpenMP, and in a forked child (whose OpenMP threads are gone).

Importing this module imports torch (``pip install "fastopt[torch]"``); ``import fastopt`` does not.
"""
import ctypes
import inspect
import os
import re
import sys
import threading

import numpy as np
import torch
from torch.optim import optimizer as _torch_optimizer

from . import _validation as check
from . import kernels
from ._base import _live_value
from ._config import get_num_threads
from ._formats import QUANTIZED, STATE_KEYS, UNSIGNED_STATE, Precision, quantized
from ._kernels import _runtime
from ._kernels._runtime import Quantized
from .adadelta import Adadelta as _Adadelta
from .adagrad import Adagrad as _Adagrad
from .adam import Adam as _Adam
from .adam import AdamW as _AdamW
from .adamax import Adamax as _Adamax
from .asgd import ASGD as _ASGD
from .lamb import LAMB as _LAMB
from .lbfgs import LBFGS as _LBFGS
from .lion import Lion as _Lion
from .momentum import Momentum as _Momentum
from .nadam import NAdam as _NAdam
from .radam import RAdam as _RAdam
from .rmsprop import RMSprop as _RMSprop
from .rprop import Rprop as _Rprop
from .schedulefree import ScheduleFreeAdamW as _ScheduleFreeAdamW
from .schedulefree import switch_groups as _switch_groups
from .sgd import SGD as _SGD

__all__ = ["SGD", "ASGD", "Adadelta", "Adagrad", "Adam", "AdamW", "Adamax", "LAMB", "LBFGS", "Lion", "Momentum", "NAdam",
           "Optimizer", "RAdam", "RMSprop", "Rprop", "ScheduleFreeAdamW"]

try:  # bfloat16 tensors are stepped as ml_dtypes.bfloat16 views (the fastopt[bf16] extra)
    import ml_dtypes as _ml_dtypes
except ImportError:
    _ml_dtypes = None

_TYPENUM = {torch.float32: np.dtype(np.float32).num, torch.float64: np.dtype(np.float64).num,
            torch.float16: np.dtype(np.float16).num}
if _ml_dtypes is not None:
    _TYPENUM[torch.bfloat16] = np.dtype(_ml_dtypes.bfloat16).num


def _torch_openmp():
    """The addresses of ``GOMP_parallel`` and ``omp_get_thread_num`` as torch's CPU library resolves
    them (its own OpenMP runtime, libgomp in Linux wheels), or None where torch's parallel backend is
    not OpenMP or the runtime cannot be found."""
    if "parallel backend: OpenMP" not in torch.__config__.parallel_info() or not hasattr(os, "RTLD_NOLOAD"):
        return None
    name = "libtorch_cpu.dylib" if sys.platform == "darwin" else "libtorch_cpu.so"
    try:  # dlsym on the library's handle searches its dependencies: the runtime torch itself calls
        lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", name),
                          mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
        addresses = [ctypes.cast(getattr(lib, fn), ctypes.c_void_p).value
                     for fn in ("GOMP_parallel", "omp_get_thread_num")]
    except (OSError, AttributeError):
        return None
    return addresses if all(addresses) else None


_openmp = _torch_openmp()
if _openmp is not None:
    _runtime.use_openmp(*_openmp)


# torch.optim's step wrapper (a profiler range, the step hooks), for steps that need it
_hooked_step = torch.optim.Optimizer.profile_hook_step(lambda self, closure=None: self._step(closure))
_global_pre_hooks = _torch_optimizer._global_optimizer_pre_hooks
_global_post_hooks = _torch_optimizer._global_optimizer_post_hooks
_profiler_enabled = torch._C._autograd._profiler_enabled


def _threads():
    """The threads of a step: torch's intra-op count, capped by fastopt's (``set_num_threads``)."""
    return min(torch.get_num_threads(), get_num_threads())


_TORCH_DTYPE = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
                "bfloat16": torch.bfloat16, "int16": torch.int16}
_FORMAT = {torch.float32: "float32", torch.float64: "float64", torch.float16: "float16", torch.bfloat16: "bfloat16"}


def _numpy_dtype(dtype):
    """The NumPy dtype of a torch dtype fastopt steps (bfloat16: ml_dtypes')."""
    return np.dtype(_ml_dtypes.bfloat16) if dtype is torch.bfloat16 else np.dtype(_FORMAT[dtype])


def _scalar_dtype(fused=False):
    """torch's dtype for ``step`` and NAdam's ``mu_product``: float32, or float64 when that is torch's
    default dtype (float32 always for fused)."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 and not fused else torch.float32


def _same_layout(a, b, shape):
    """Whether strides ``a`` and ``b`` address a tensor of ``shape`` alike (size-1 dims may differ)."""
    return a == b or all(x == y or n == 1 for x, y, n in zip(a, b, shape))


def _dense(t):
    """Whether t's elements fill its memory span exactly, in some order of its dims (contiguous,
    channels_last, ...): then a flat view in memory order covers the tensor and nothing else."""
    if t.is_contiguous():
        return True
    expected = 1
    for stride, size in sorted((st, n) for st, n in zip(t.stride(), t.shape) if n != 1):
        if stride != expected:
            return False
        expected *= size
    return True


def _flat(t):
    """A 1-D NumPy view of a dense CPU tensor's memory, in memory order (element i of two tensors with
    the same strides is then the same element); a bfloat16 tensor's as ml_dtypes.bfloat16."""
    flat = t.detach().as_strided((t.numel(),), (1,))
    if flat.dtype is torch.bfloat16:  # torch has no NumPy dtype for it: its bits, viewed
        return flat.view(torch.int16).numpy().view(_ml_dtypes.bfloat16)
    return flat.numpy()


def _label(index, names):
    name = names.get(index)
    return f"params[{index}]" if name is None else f"params[{index}] ({name!r})"


def _check_param(p, what):
    """A parameter fastopt.torch can step in place (raises torch-style TypeError/ValueError)."""
    if not isinstance(p, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(p).__name__}")
    if p.device.type != "cpu":
        raise ValueError(f"{what} is on {p.device}: fastopt.torch steps CPU tensors (use torch.optim for "
                         f"{p.device.type} parameters)")
    if p.layout is not torch.strided:
        raise ValueError(f"{what} has layout {p.layout}: fastopt.torch steps dense (strided) tensors")
    if p.is_complex():
        raise TypeError(f"{what} is complex ({p.dtype}): fastopt.torch steps real float32, float64, bfloat16 "
                        "and float16 parameters (torch.optim steps complex ones)")
    if p.dtype is torch.bfloat16 and _ml_dtypes is None:
        raise TypeError(f"{what} has dtype torch.bfloat16: fastopt.torch steps bfloat16 tensors through "
                        "ml_dtypes, which is not installed (pip install \"fastopt[bf16]\")")
    if p.dtype not in _TYPENUM:
        raise TypeError(f"{what} has dtype {p.dtype}: fastopt.torch steps float32, float64, bfloat16 and "
                        "float16 parameters")
    if not _dense(p) or p.is_neg() or p.is_conj():
        raise ValueError(f"{what} is not dense in memory (shape {tuple(p.shape)}, strides {p.stride()}): "
                         "fastopt.torch updates parameters in place; make it contiguous "
                         "(p.data = p.data.contiguous())")


def _shape_error(what, value, p):
    raise ValueError(f"{what} has shape {tuple(value.shape)}, expected {tuple(p.shape)} (the parameter's)")


def _tensor_like(value, p, what, scalar, dtype=None):
    """A state tensor a step can use for param p as it is (True), or after a copy into p's layout and
    ``dtype`` (by default p's; False: laid out differently, or of another floating dtype, as after
    ``model.to(dtype)``); raises for a tensor no step should touch."""
    dtype = p.dtype if dtype is None else dtype
    if isinstance(value, Quantized) or dtype in QUANTIZED:  # quantized state: used as it is, or converted
        if isinstance(value, Quantized) and value.size != p.numel():
            _shape_error(what, value, p)
        if isinstance(value, Quantized) and value.format == dtype:
            return True
        if not isinstance(value, (Quantized, torch.Tensor)):
            raise TypeError(f"{what} must be a torch.Tensor or quantized state, got {type(value).__name__}")
        if isinstance(value, torch.Tensor) and value.shape != p.shape:
            _shape_error(what, value, p)
        return False
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(value).__name__}")
    if value.device.type != "cpu" or value.layout is not torch.strided:
        raise ValueError(f"{what} must be a dense CPU tensor, got {value.layout} on {value.device}")
    if scalar:
        if value.dtype not in (torch.float32, torch.float64) or value.numel() != 1:
            raise ValueError(f"{what} must be a float32 or float64 tensor of one element, got "
                             f"{value.dtype} of shape {tuple(value.shape)}")
        return not (value.is_neg() or value.requires_grad)
    if value.dtype != dtype:
        if value.is_floating_point() and dtype.is_floating_point:  # model.to(dtype) after state was made:
            if value.shape != p.shape:                              # it follows, as on load
                _shape_error(what, value, p)
            return False
        raise TypeError(f"{what} has dtype {value.dtype}, expected {dtype}"
                        f"{' (the parameter' + chr(39) + 's)' if dtype == p.dtype else ''}")
    if value.shape != p.shape:
        _shape_error(what, value, p)
    return (_same_layout(value.stride(), p.stride(), p.shape) and _dense(value)
            and not (value.is_neg() or value.requires_grad))


class _Plan:
    """What a step needs, checked once and kept while nothing changes (``_runtime.tensor_grads`` and
    the hyperparameter snapshots tell): the param_groups and state it was built from, the params
    stepped (with a gradient) and idle, their addresses and layouts (``meta``), the state tensors
    (``held``), per group the frozen hyperparameters, state spec, the flat NumPy views of params and
    state and the kernel's arguments; the memory a step writes (``written``); for the step that built
    it, the gradients' views (``grads``), the state it created (``created``) and SGD's first steps."""

    __slots__ = ("lists", "params", "state", "stepped", "idle", "meta", "held", "written", "frozen",
                 "specs", "bounds", "views", "buffers", "masters", "kwargs", "args", "batch", "grads", "created",
                 "first")


class Optimizer(torch.optim.Optimizer):
    """The base of fastopt.torch's optimizers: a ``torch.optim.Optimizer`` whose ``step`` runs the
    fused kernel of ``_rule`` (a :mod:`fastopt` optimizer class, which also provides the hyperparameter
    checks and the state layout). One optimizer may be used from several threads: ``step``,
    ``load_state_dict`` and ``add_param_group`` are serialized by a lock."""

    _rule = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # the fastopt class's methods that need no instance state: its hyperparameter checks, state
        # spec and kernel keywords (a bare instance, never initialized, keeps their super() calls valid)
        cls._impl = object.__new__(cls._rule) if cls._rule is not None else None

    def __init__(self, params, defaults, *, max_grad_norm=None, norm_type=2.0, skip_nonfinite=False,
                 rounding="nearest", seed=None, master_weights=None, state_dtype=None):
        self._lock = threading.RLock()
        self._plan = None
        # the gradient options, as fastopt.Optimizer's: one read pass for the norm, the clip coefficient
        # folded into the update's reads (the .grad tensors are never rewritten)
        self.max_grad_norm, self.norm_type, self.skip_nonfinite = check.gradient_options(
            max_grad_norm, norm_type, skip_nonfinite)
        self.last_grad_norm, self.skipped_steps = None, 0
        self._precision = Precision(rounding, seed, master_weights, state_dtype)
        self._impl._check_hyperparameters(defaults)
        super().__init__(params, defaults)

    def __setstate__(self, state):
        super().__setstate__(state)
        if "_lock" not in self.__dict__:
            self._lock = threading.RLock()
        if "_precision" not in self.__dict__:
            self._precision = Precision()
        for key, value in (("max_grad_norm", None), ("norm_type", 2.0), ("skip_nonfinite", False),
                           ("last_grad_norm", None), ("skipped_steps", 0)):  # (pickles from before these)
            self.__dict__.setdefault(key, value)
        self._plan = None
        for group in self.param_groups:  # what older or foreign state dicts lack, as torch's classes do
            for key, value in self.defaults.items():
                group.setdefault(key, value)
            spec = self._impl._state_spec(dict(zip(self.defaults, _runtime.snapshot(group, tuple(self.defaults)))))
            for p in group["params"]:
                state = self.state.get(p)
                for key, (_, scalar) in spec.items() if state else ():
                    if scalar and key in state and not torch.is_tensor(state[key]):
                        state[key] = torch.tensor(check.real(f"state {key!r}", state[key]),
                                                  dtype=_scalar_dtype(group.get("fused")))

    def add_param_group(self, param_group):
        """torch's ``add_param_group``, then fastopt's checks of the new group's hyperparameters and
        params (it is removed again if they fail)."""
        with self._lock:
            count = len(self.param_groups)
            super().add_param_group(param_group)
            try:
                group = self.param_groups[-1]
                self._impl._check_hyperparameters(group)
                start = sum(len(g["params"]) for g in self.param_groups[:-1])
                names = self._names()
                for k, p in enumerate(group["params"]):
                    _check_param(p, _label(start + k, names))
            except BaseException:
                del self.param_groups[count:]
                raise
            self._plan = None

    def load_state_dict(self, state_dict):
        """torch's ``load_state_dict`` (parameters matched by position, floating-point state cast to
        each parameter's dtype, hyperparameters replaced), also accepting fastopt's NumPy state dicts
        (their arrays become tensors)."""
        with self._lock:
            if isinstance(state_dict, dict) and isinstance(state_dict.get("state"), dict):
                state_dict = dict(state_dict)
                state_dict["state"] = {key: {k: torch.from_numpy(np.array(v)) if isinstance(v, np.ndarray) else v
                                             for k, v in entry.items()} if isinstance(entry, dict) else entry
                                       for key, entry in state_dict["state"].items()}
            super().load_state_dict(state_dict)
            self._plan = None

    def step(self, closure=None):
        """One update of every parameter whose ``.grad`` is not None (as torch.optim: the others and
        their state are left alone). ``closure``, if given, is called first with grad enabled, and its
        loss returned. Everything is checked before anything is written: a rejected step changes
        nothing. Step hooks (``register_step_pre_hook``, ``register_optimizer_step_pre_hook``, ...) and
        the profiler's ``Optimizer.step#<class>.step`` range are torch's own wrapper's; with no hook
        registered and no profiler running, the step skips that wrapper (7 us per step)."""
        if (self._optimizer_step_pre_hooks or self._optimizer_step_post_hooks or _global_pre_hooks
                or _global_post_hooks or _profiler_enabled()):
            return _hooked_step(self, closure)
        loss = self._step(closure)
        self._optimizer_step_code()  # torch's profiler entry point, as in torch's wrapper
        return loss

    step.hooked = True  # torch.optim.Optimizer.__init__ wraps only an unhooked step (its profile_hook_step)

    def _step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with self._lock:
            plan = self._current_plan()
            grads = plan.grads
            if grads is None:
                grads = _runtime.tensor_grads(plan.stepped, plan.meta, plan.idle, self.state, plan.held,
                                              plan.written, torch.strided)
                if grads is None:  # something changed since the plan was built: rebuild, re-check
                    plan = self._build_plan()
                    grads = plan.grads
            try:
                scale = 1.0
                if self.max_grad_norm is not None or self.skip_nonfinite:
                    norm, finite = kernels.grad_norm(grads, self.norm_type, _threads())
                    self.last_grad_norm = norm
                    if self.skip_nonfinite and not finite:  # changes nothing: not even new state
                        self.skipped_steps += 1
                        self._forget(plan.created)
                        return loss
                    scale = check.clip_scale(self.max_grad_norm, norm)
                batches = []
                for i, views in enumerate(plan.views):
                    lo, hi = plan.bounds[i], plan.bounds[i + 1]
                    if lo == hi:
                        continue
                    if plan.first is not None and any(plan.first[lo:hi]):
                        batches.append(plan.batch(views, grads[lo:hi], *plan.buffers[i], **plan.kwargs[i],
                                                  first_steps=plan.first[lo:hi], check_overlap=False))
                    else:
                        batches.append(plan.batch(views, grads[lo:hi], *plan.buffers[i], *plan.args[i]))
                precision = self._precision
                if plan.masters is not None:  # (one list per group that has a batch)
                    for batch, masters in zip(batches, plan.masters):
                        _runtime.attach(batch, precision.master_weights, masters)
                _runtime.run_openmp(batches, _threads(), scale, precision.rounding_seed())
                precision.advance()
                if self._rule._live:  # the groups' bookkeeping (schedule-free's step count and weights)
                    for group, kwargs in zip(self.param_groups, plan.kwargs):
                        self._impl._advance(group, kwargs)
            except BaseException:
                self._forget(plan.created)
                raise
            finally:
                plan.grads, plan.created, plan.first = None, None, None
            if plan.stepped:
                torch.autograd.graph.increment_version(plan.stepped)  # as torch's in-place updates do
        return loss

    # -- the plan -------------------------------------------------------------------------------------

    def _names(self):
        """{index: name} of the params built from ``named_parameters()`` (for messages)."""
        names, start = {}, 0
        for group in self.param_groups:
            for k, name in enumerate(group.get("param_names", ())):
                names[start + k] = name
            start += len(group["params"])
        return names

    def _current_plan(self):
        """The plan of the last step if the groups, params, state dict and state spec are the same
        (hyperparameter values may change: schedulers change ``lr`` every step); a new one otherwise."""
        plan, groups = self._plan, self.param_groups
        if (plan is None or self.state is not plan.state
                or not _runtime.same_params(groups, plan.lists, plan.params)):
            return self._build_plan()
        keys = self._snapshot_keys()
        for i, group in enumerate(groups):
            frozen = _runtime.snapshot(group, keys)
            if frozen != plan.frozen[i]:
                self._impl._check_hyperparameters(group)
                values = dict(zip(keys, frozen))
                if list(self._spec(values)) != list(plan.specs[i]):
                    return self._build_plan()
                plan.kwargs[i], plan.args[i] = self._kernel_args(values, group)
                plan.frozen[i] = frozen
            elif self._rule._live:  # the step's own scalars (schedule-free's averaging weight)
                plan.kwargs[i], plan.args[i] = self._kernel_args(dict(zip(keys, frozen)), group)
        return plan

    def _snapshot_keys(self):
        """The hyperparameters a plan is kept for (the rule's ``_live`` keys are read every step)."""
        return tuple(key for key in self.defaults if key not in self._rule._live)

    def _spec(self, values):
        """A param's state: the rule's and its master's (``master_weights``), if any."""
        return {**self._impl._state_spec(values), **self._precision.extra_spec()}

    def _entry_dtype(self, p, key, scalar):
        """The torch dtype of a state entry, or "q8"/"q4" for quantized state."""
        fmt = self._precision.entry_dtype(_numpy_dtype(p.dtype), key, scalar, p.numel())
        return fmt if fmt in QUANTIZED else _TORCH_DTYPE[fmt.name]

    def _relaid(self, old, p, key):
        """State entry ``old`` as this step wants it: in p's layout and dtype, or quantized."""
        dtype = self._entry_dtype(p, key, False)
        if isinstance(old, Quantized):
            values = old.dequantize().reshape(-1)  # (in p's memory order, as every state array)
        else:
            values = _flat(torch.empty_like(p, dtype=torch.float32, requires_grad=False).copy_(old.detach()))
        if dtype in QUANTIZED:
            return quantized(values, dtype, key not in UNSIGNED_STATE, tuple(p.shape))
        out = torch.empty_like(p, dtype=dtype, requires_grad=False)
        _flat(out)[...] = values
        return out

    def _kernel_args(self, values, group):
        values = dict(values)
        for key in self._rule._live:
            values[key] = _live_value(group, key)
        kwargs = self._impl._kernel_kwargs(values)
        return kwargs, tuple(kwargs.get(name) for name in self._rule._hyperparameter_names()) + (False,)

    def _build_plan(self):
        """Check every group's hyperparameters, every param with a gradient, its gradient and its state
        (raising before anything changes), then create the missing state and build the plan, whose
        ``grads`` are this step's."""
        self._plan = None
        groups, keys, names = self.param_groups, self._snapshot_keys(), self._names()
        frozen = [_runtime.snapshot(group, keys) for group in groups]
        for group in groups:
            self._impl._check_hyperparameters(group)
        specs = [self._spec(dict(zip(keys, values))) for values in frozen]
        stepped, idle, grads, bounds, todo, relaid = [], [], [], [0], [], []
        index = 0
        for group, spec, values in zip(groups, specs, frozen):
            fused = dict(zip(keys, values)).get("fused")
            for p in group["params"]:
                what = _label(index, names)
                index += 1
                g = p.grad
                if g is None:
                    idle.append(p)
                    continue
                _check_param(p, what)
                self._precision.check_format(_FORMAT[p.dtype], what)
                grads.append(self._grad(g, p, what))
                stepped.append(p)
                state = self.state.get(p)
                for key, (fill, scalar) in spec.items():
                    value = None if state is None else state.get(key)
                    if value is None:
                        todo.append((p, key, fill, scalar, fused))
                    elif not _tensor_like(value, p, f"{what} state {key!r}", scalar,
                                          None if scalar else self._entry_dtype(p, key, scalar)):
                        relaid.append((p, key, scalar))
            bounds.append(len(stepped))
        # everything is checked: create the missing state (zero-filled, or torch's initial values)
        created = {}
        for p, key, fill, scalar, fused in todo:
            if scalar:
                value = torch.tensor(0.0 if fill is None else fill, dtype=_scalar_dtype(fused))
            elif fill == "param":  # a copy of the param in the entry's dtype (a float32 master; schedule-free's z)
                value = torch.empty_like(p, dtype=self._entry_dtype(p, key, False),
                                         requires_grad=False).copy_(p.detach())
            elif self._entry_dtype(p, key, False) in QUANTIZED:
                value = quantized(np.float32(0.0 if fill is None else fill), self._entry_dtype(p, key, False),
                                  key not in UNSIGNED_STATE, tuple(p.shape))
            else:
                value = torch.full_like(p, 0.0 if fill is None else fill, memory_format=torch.preserve_format,
                                        dtype=self._entry_dtype(p, key, False), requires_grad=False)
            self.state[p][key] = value
            created.setdefault(p, []).append(key)
        for p, key, scalar in relaid:  # the same values, in the parameter's layout
            old = self.state[p][key]
            self.state[p][key] = old.detach().clone().reshape(()) if scalar else self._relaid(old, p, key)
        try:
            plan = self._plan_for(groups, stepped, idle, grads, bounds, specs, frozen, keys)
        except BaseException:
            self._forget(created)
            raise
        plan.created = created
        # state the step itself writes first (fill None: SGD's momentum buffer starts as the gradient)
        first = {key for spec in specs for key, (fill, _) in spec.items() if fill is None}
        plan.first = [any(key in first for key in created.get(p, ())) for p in stepped] if created else None
        self._plan = plan
        return plan

    def _grad(self, g, p, what):
        """The gradient's flat view, through a copy in the parameter's layout if it is laid out
        differently (it is only read, so the copy loses nothing)."""
        if not isinstance(g, torch.Tensor):
            raise TypeError(f"{what}.grad must be a torch.Tensor, got {type(g).__name__}")
        if g.layout is not torch.strided:
            raise ValueError(f"{what} has a sparse gradient ({g.layout}): fastopt.torch steps dense "
                             "gradients (torch.optim.SparseAdam takes sparse ones)")
        if g.device.type != "cpu":
            raise ValueError(f"{what}.grad is on {g.device}: fastopt.torch steps CPU tensors")
        if g.dtype != p.dtype:
            raise TypeError(f"{what}.grad has dtype {g.dtype}, expected {p.dtype} (the parameter's)")
        if g.shape != p.shape:
            raise ValueError(f"{what}.grad has shape {tuple(g.shape)}, expected {tuple(p.shape)} "
                             "(the parameter's)")
        if not (_same_layout(g.stride(), p.stride(), p.shape) and _dense(g)) or g.is_neg() or g.is_conj():
            g = torch.empty_like(p, requires_grad=False).copy_(g.detach())
        return _flat(g)

    def _plan_for(self, groups, stepped, idle, grads, bounds, specs, frozen, keys):
        plan = _Plan()
        plan.lists = tuple(group["params"] for group in groups)
        plan.params = tuple(p for group in groups for p in group["params"])
        plan.state, plan.stepped, plan.idle, plan.bounds = self.state, tuple(stepped), tuple(idle), bounds
        plan.frozen, plan.specs = frozen, specs
        plan.kwargs, plan.args = map(list, zip(*[self._kernel_args(dict(zip(keys, values)), group)
                                                 for values, group in zip(frozen, groups)]))
        plan.batch = getattr(kernels, self._rule._kernel + "_batch")
        views, arrays, labels, meta, held = [], [], [], [], []
        position = {id(p): i for i, p in enumerate(plan.params)}
        for p in stepped:
            view = _flat(p)
            views.append(view)
            arrays.append(view)
            labels.append(f"params[{position[id(p)]}]")
            meta.append((p.data_ptr(), p.dtype, p.shape, p.stride(), _TYPENUM[p.dtype], p.numel()))
        plan.views, plan.buffers, plan.held = [], [], [None] * len(stepped)
        kind = self._precision.master_weights
        plan.masters = None if kind is None else [
            [_flat(self.state[p][STATE_KEYS[kind]]) for p in stepped[lo:hi]]
            for lo, hi in zip(bounds, bounds[1:]) if lo != hi]  # the masters' views, as the state's
        for i, spec in enumerate(specs):
            lo, hi = bounds[i], bounds[i + 1]
            plan.views.append(views[lo:hi])
            buffers = []
            for key in self._rule._buffers:
                if key not in spec:
                    buffers.append(None)
                    continue
                column = []
                for p in stepped[lo:hi]:
                    value = self.state[p][key]
                    view = (value if isinstance(value, Quantized)
                            else value.detach().numpy() if spec[key][1] else _flat(value))
                    column.append(view)
                    arrays.append(view)
                    labels.append(f"params[{position[id(p)]}] state {key!r}")
                buffers.append(column)
            plan.buffers.append(buffers)
            for k in range(lo, hi):
                entry = self.state.get(stepped[k], {})  # .get: no empty entries (SGD without momentum)
                plan.held[k] = tuple(x for key in spec for x in (key, entry[key], entry[key].data_ptr()))
        plan.meta, plan.held = tuple(meta), tuple(plan.held)
        plan.written = _runtime.Intervals(arrays, labels)
        for k, g in enumerate(grads):
            other = plan.written.find(g)
            if other is not None:
                raise ValueError(f"params[{position[id(stepped[k])]}].grad shares memory with {other}, which "
                                 "the step writes; give each parameter a gradient of its own")
        plan.grads = grads
        return plan

    def _forget(self, created):
        """Undo the state a rejected step created."""
        for p, keys in (created or {}).items():
            state = self.state.get(p)
            for key in keys:
                state.pop(key, None)
            if not state:
                self.state.pop(p, None)
        self._plan = None


# -- the optimizers ---------------------------------------------------------------------------------

_NUMPY_ONLY = {"params", "backend"}


def _torch_doc(rule, torch_name):
    """The docstring of the class over ``rule`` (a fastopt class): ``rule``'s summary and math, its
    Parameters less those only the NumPy class takes, torch's input rules, ``rule``'s state notes and
    an example with tensors. ``torch_name``: the torch.optim class it stands in for (None: none).
    None when docstrings are stripped (``python -OO``)."""
    if rule.__doc__ is None:
        return None
    head, rest = inspect.cleandoc(rule.__doc__).split("\nParameters\n----------\n", 1)
    entries, rest = rest.split("\n\nNotes\n-----\n", 1)
    notes = rest.split("\n\nExamples\n--------\n", 1)[0].split("\n\n")[1:]  # less the NumPy input rules
    entries = [e for e in re.split(r"\n(?=\S)", entries) if e.split(" : ")[0] not in _NUMPY_ONLY]
    name = rule.__name__
    use = f"``torch.optim.{torch_name}``" if torch_name else "a torch.optim optimizer"
    return "\n".join([
        head.rstrip(), "",
        f"Use it as {use}: same arguments, defaults, param-group keys, state and ``state_dict``;",
        "``step(closure=None)`` updates every parameter whose ``.grad`` is not None.", "",
        "Parameters", "----------",
        "params : iterable of torch.Tensor, or iterable of dict",
        "    The parameters (e.g. ``model.parameters()``), or parameter groups: dicts with a ``\"params\"``",
        "    list and any of the hyperparameters below, which override these defaults for that group.",
        *entries, "",
        "Notes", "-----",
        "Parameters are dense CPU tensors of float32, float64, bfloat16 or float16 (any memory format),",
        "updated in place from their ``.grad``; a parameter whose ``.grad`` is None is left alone, with its",
        "state. Anything else (CUDA tensors, sparse gradients, complex parameters) raises ValueError or",
        "TypeError before anything is written (see :mod:`fastopt.torch`). ``state[p]`` holds each",
        "parameter's state: tensors with torch's keys, dtypes and shapes.", "",
        *[paragraph + "\n" for paragraph in notes],
        "Examples", "--------",
        ">>> import torch",
        ">>> import fastopt.torch",
        ">>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))",
        f">>> opt = fastopt.torch.{name}([w], lr=0.01)",
        ">>> for _ in range(3):",
        "...     opt.zero_grad()",
        "...     (w ** 2).sum().backward()",
        "...     opt.step()",
        ">>> print(isinstance(opt, torch.optim.Optimizer), bool((w.abs() < torch.tensor([1.0, 2.0])).all()))",
        "True True",
    ])


class SGD(Optimizer):
    __doc__ = _torch_doc(_SGD, "SGD")
    _rule = _SGD

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False, foreach=None, differentiable=False, fused=None, **options):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize, foreach=foreach,
                                      differentiable=differentiable, fused=fused), **options)


class Momentum(Optimizer):
    __doc__ = _torch_doc(_Momentum, None)
    _rule = _Momentum

    def __init__(self, params, lr=0.01, beta=0.9, **options):
        super().__init__(params, dict(lr=lr, beta=beta), **options)


class Adam(Optimizer):
    __doc__ = _torch_doc(_Adam, "Adam")
    _rule = _Adam

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 foreach=None, maximize=False, capturable=False, differentiable=False, fused=None,
                 decoupled_weight_decay=False, **options):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize, foreach=foreach, capturable=capturable,
                                      differentiable=differentiable, fused=fused,
                                      decoupled_weight_decay=decoupled_weight_decay), **options)


class AdamW(Optimizer):
    __doc__ = _torch_doc(_AdamW, "AdamW")
    _rule = _AdamW

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, foreach=None, capturable=False, differentiable=False, fused=None, **options):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize, foreach=foreach, capturable=capturable,
                                      differentiable=differentiable, fused=fused, decoupled_weight_decay=True), **options)


class Adamax(Optimizer):
    __doc__ = _torch_doc(_Adamax, "Adamax")
    _rule = _Adamax

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, foreach=None, *,
                 maximize=False, differentiable=False, capturable=False, **options):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=foreach,
                                      maximize=maximize, differentiable=differentiable, capturable=capturable), **options)


class NAdam(Optimizer):
    __doc__ = _torch_doc(_NAdam, "NAdam")
    _rule = _NAdam

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, momentum_decay=4e-3,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, **options):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      momentum_decay=momentum_decay, decoupled_weight_decay=decoupled_weight_decay,
                                      maximize=maximize, foreach=foreach, capturable=capturable,
                                      differentiable=differentiable), **options)


class Adagrad(Optimizer):
    __doc__ = _torch_doc(_Adagrad, "Adagrad")
    _rule = _Adagrad

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
                 foreach=None, *, maximize=False, differentiable=False, fused=None, **options):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, foreach=foreach,
                                      maximize=maximize, differentiable=differentiable, fused=fused), **options)
        # as torch: the state exists from construction (for the params given here)
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                state["step"] = torch.tensor(0.0, dtype=_scalar_dtype(group["fused"]))
                state["sum"] = torch.full_like(p, check.real("initial_accumulator_value",
                                                             group["initial_accumulator_value"]),
                                               memory_format=torch.preserve_format, requires_grad=False)


class Adadelta(Optimizer):
    __doc__ = _torch_doc(_Adadelta, "Adadelta")
    _rule = _Adadelta

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *, capturable=False,
                 maximize=False, differentiable=False, **options):
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
                                      capturable=capturable, foreach=foreach, differentiable=differentiable), **options)


class RMSprop(Optimizer):
    __doc__ = _torch_doc(_RMSprop, "RMSprop")
    _rule = _RMSprop

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                 capturable=False, foreach=None, maximize=False, differentiable=False, **options):
        super().__init__(params, dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                                      weight_decay=weight_decay, capturable=capturable, foreach=foreach,
                                      maximize=maximize, differentiable=differentiable), **options)


class RAdam(Optimizer):
    __doc__ = _torch_doc(_RAdam, "RAdam")
    _rule = _RAdam

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, decoupled_weight_decay=False,
                 *, foreach=None, maximize=False, capturable=False, differentiable=False, **options):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize,
                                      foreach=foreach, capturable=capturable,
                                      decoupled_weight_decay=decoupled_weight_decay,
                                      differentiable=differentiable), **options)


class Rprop(Optimizer):
    __doc__ = _torch_doc(_Rprop, "Rprop")
    _rule = _Rprop

    def __init__(self, params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *, capturable=False,
                 foreach=None, maximize=False, differentiable=False, **options):
        super().__init__(params, dict(lr=lr, etas=etas, step_sizes=step_sizes, foreach=foreach, maximize=maximize,
                                      differentiable=differentiable, capturable=capturable), **options)


class ASGD(Optimizer):
    __doc__ = _torch_doc(_ASGD, "ASGD")
    _rule = _ASGD

    def __init__(self, params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0, foreach=None,
                 maximize=False, differentiable=False, capturable=False, **options):
        super().__init__(params, dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay,
                                      foreach=foreach, maximize=maximize, differentiable=differentiable,
                                      capturable=capturable), **options)


class Lion(Optimizer):
    __doc__ = _torch_doc(_Lion, None)
    _rule = _Lion

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, *, maximize=False, **options):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay, maximize=maximize), **options)


class LAMB(Optimizer):
    __doc__ = _torch_doc(_LAMB, None)
    _rule = _LAMB

    def __init__(self, params, lr=1e-3, bias_correction=True, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01,
                 grad_averaging=True, trust_clip=False, always_adapt=False, *, maximize=False, **options):
        super().__init__(params, dict(lr=lr, bias_correction=bias_correction, betas=betas, eps=eps,
                                      weight_decay=weight_decay, grad_averaging=grad_averaging, trust_clip=trust_clip,
                                      always_adapt=always_adapt, maximize=maximize), **options)


class ScheduleFreeAdamW(Optimizer):
    __doc__ = _torch_doc(_ScheduleFreeAdamW, None)
    _rule = _ScheduleFreeAdamW

    def __init__(self, params, lr=0.0025, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, warmup_steps=0, r=0.0,
                 weight_lr_power=2.0, foreach=None, *, maximize=False, **options):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, r=r, k=0, warmup_steps=warmup_steps,
                                      train_mode=True, weight_sum=0.0, lr_max=-1.0, scheduled_lr=0.0,
                                      weight_lr_power=weight_lr_power, weight_decay=weight_decay, foreach=foreach,
                                      maximize=maximize), **options)

    def train(self):
        """Train mode: the parameters move from x to y (``lerp(p, z, 1 - beta1)``); no-op in train mode."""
        self._switch(True)

    def eval(self):
        """Eval mode: the parameters move from y back to x (``lerp(p, z, 1 - 1/beta1)``), the point to
        evaluate and checkpoint; no-op in eval mode."""
        self._switch(False)

    def _switch(self, training):
        """The NumPy class's mode switch (one lerp per element, on the masters where there are), on the
        tensors' flat views."""
        with self._lock:
            states = [self.state.get(p, {}) for group in self.param_groups for p in group["params"]]
            moved = _switch_groups(self.param_groups, states, training, self._precision.master_weights,
                                   lambda t: _flat(t.detach()))
            if moved:
                torch.autograd.graph.increment_version(moved)  # as torch's in-place lerp_ does


class LBFGS(torch.optim.Optimizer):
    """torch.optim.LBFGS's algorithm run by :class:`fastopt.LBFGS` on NumPy views of the parameters and
    their gradients (the same iterations, evaluation counts, stopping rules and state keys; the numbers
    agree with torch's to rounding: see fastopt.LBFGS).

    Use it as ``torch.optim.LBFGS``: same arguments and defaults, one parameter group, ``step(closure)``
    with a closure that zeroes the gradients, computes the loss, calls ``backward()`` and returns the
    loss; ``state_dict()`` holds torch's keys with tensors (loadable into torch.optim.LBFGS and back).

    Parameters
    ----------
    params : iterable of torch.Tensor
        Dense, C-contiguous CPU tensors of float32 or float64 (one dtype).
    lr, max_iter, max_eval, tolerance_grad, tolerance_change, history_size, line_search_fn
        As torch.optim.LBFGS (and fastopt.LBFGS).

    Examples
    --------
    >>> import torch
    >>> import fastopt.torch
    >>> x = torch.tensor([-1.2, 1.0], dtype=torch.float64, requires_grad=True)
    >>> opt = fastopt.torch.LBFGS([x], line_search_fn="strong_wolfe", max_iter=100)
    >>> def closure():
    ...     opt.zero_grad()
    ...     loss = (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
    ...     loss.backward()
    ...     return loss
    >>> loss = opt.step(closure)
    >>> print(x.detach().numpy().round(4))
    [1. 1.]
    """

    def __init__(self, params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7, tolerance_change=1e-9,
                 history_size=100, line_search_fn=None):
        if isinstance(lr, torch.Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        check.learning_rate(float(lr) if isinstance(lr, torch.Tensor) else lr)
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults = dict(lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
                        tolerance_change=tolerance_change, history_size=history_size, line_search_fn=line_search_fn)
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        self._params = self.param_groups[0]["params"]
        for k, p in enumerate(self._params):
            if p.device.type != "cpu" or p.is_sparse or p.dtype not in (torch.float32, torch.float64) \
                    or not p.is_contiguous():
                raise ValueError(f"params[{k}] must be a dense, contiguous CPU tensor of float32 or float64, got "
                                 f"{p.dtype} on {p.device}{'' if p.is_contiguous() else ', not contiguous'}")
        self._impl = _LBFGS([p.detach().numpy() for p in self._params], **{
            key: (float(value) if isinstance(value, torch.Tensor) else value) for key, value in defaults.items()})

    def _numpy_grads(self):
        grads = []
        for p in self._params:
            g = p.grad
            if g is None:
                grads.append(None)
            else:
                grads.append((g.to_dense() if g.is_sparse else g).detach().numpy())
        return grads

    @torch.no_grad()
    def step(self, closure):
        """Run up to ``max_iter`` iterations, as torch.optim.LBFGS.step.

        Parameters
        ----------
        closure : callable
            Zeroes the gradients, computes the loss, calls ``backward()`` and returns the loss.

        Returns
        -------
        The first call's loss, as the closure returned it.
        """
        group, impl = self.param_groups[0], self._impl
        views = []
        for k, p in enumerate(self._params):  # (views of the current tensors: ``p.data`` may be replaced)
            if p.device.type != "cpu" or p.dtype not in (torch.float32, torch.float64) or not p.is_contiguous():
                raise ValueError(f"params[{k}] must be a dense, contiguous CPU tensor of float32 or float64, got "
                                 f"{p.dtype} on {p.device}{'' if p.is_contiguous() else ', not contiguous'}")
            views.append(p.detach().numpy())
        if len({v.dtype for v in views}) != 1:
            raise TypeError("LBFGS keeps one flat vector of all the parameters: they must share one dtype")
        impl.param_groups[0]["params"] = views
        impl.param_groups[0].update({key: (float(value) if isinstance(value, torch.Tensor) else value)
                                     for key, value in group.items() if key != "params"})
        impl.state = {0: _lbfgs_state(self.state[self._params[0]], numpy=True)} if self.state[self._params[0]] else {}

        def numpy_closure():
            with torch.enable_grad():
                loss = closure()
            return loss, self._numpy_grads()

        try:
            return impl.step(numpy_closure)
        finally:
            if impl.state:
                self.state[self._params[0]] = _lbfgs_state(impl.state[0], numpy=False)


def _lbfgs_state(state, numpy):
    """LBFGS state with NumPy arrays and scalars (``numpy``) or torch's tensors and 0-dim tensors,
    sharing memory where both can; ints and floats stay as they are."""
    def convert(value):
        if isinstance(value, list):
            return [convert(v) for v in value]
        if numpy:
            return value.numpy() if isinstance(value, torch.Tensor) and value.dim() else \
                (value.numpy()[()] if isinstance(value, torch.Tensor) else value)
        if isinstance(value, np.ndarray):
            return torch.from_numpy(value)
        if isinstance(value, np.generic):
            return torch.tensor(value)
        return value
    return {key: convert(value) for key, value in state.items()}

