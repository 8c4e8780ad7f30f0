"""fastopt.torch: the torch.optim face of fastopt's kernels, tested against torch.optim itself.

fastopt.torch's optimizers must be drop-in replacements for torch.optim's in a CPU training loop: same
constructor, defaults, param_groups, state and state_dict, stepping the tensors' own memory in place.
Every test below runs a real ``nn.Module`` training loop twice, once with torch.optim (the reference) and
once with fastopt.torch (the candidate), on identical models and data, and compares the results.

1. conformance: every registry config (fastopt._registry.CASES), float32 and float64, params and state;
   Momentum (no torch twin) against the NumPy ``fastopt.Momentum``; signatures and defaults;
2. torch's own optimizer configurations (torch.testing's ``optim_db``), their construction errors,
   and the ``differentiable``/``capturable`` configs fastopt rejects;
3. regressions, one per item of the original bug report (generator params, zero_grad, closures, StepLR,
   GradScaler, share_memory, ``.data =``, model.load_state_dict, model.to(float64), state_dict round trips
   through torch.save/torch.load(weights_only=True), channels_last, tensor lr);
4. every lr_scheduler drives fastopt.torch as it drives torch.optim;
5. hooks, add_param_group, named parameters, deepcopy/pickle, several groups;
6. errors: raised before anything changes;
7. the autograd version counter.

Tolerances: float64 runs (torch's default dtype set to float64, so torch's ``step`` tensors are float64)
must agree to 1e-10 relative; float32 runs to ``FLOAT32_TOL`` (see there for the measurements: fastopt's
fused loops round differently from torch's sequence of tensor ops, and a training loop feeds those
roundings back through the gradients). Absolute tolerances are a fraction of the compared quantity's
scale: the largest magnitude over all the params, or over one state key (e.g. ``exp_avg_sq``) of all
params, so small state buffers are compared as strictly as the parameters.
"""
import contextlib
import copy
import inspect
import pickle
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from torch.optim.optimizer import (register_optimizer_step_post_hook,  # noqa: E402
                                   register_optimizer_step_pre_hook)

import fastopt  # noqa: E402
import fastopt.torch as fot  # noqa: E402
from fastopt._registry import BY_NAME, CASES  # noqa: E402

# float32: fastopt's fused loops evaluate each update as one expression per element where torch applies a
# chain of tensor ops, each rounding to float32: a step differs from torch's by a few ulp, and a training
# loop feeds those differences back through the gradients. How much the loop amplifies them was measured
# on these very loops (15 steps, max over elements of |a - b| / (|b| + 0.1 max|b|)):
#   torch fused vs torch for-loop (Adam, AdamW, Adagrad):          up to 4e-6
#   torch foreach vs for-loop (NAdam; the others are bit-identical): up to 4e-6
#   fastopt vs torch for-loop: up to 2e-6 (SGD, Adam, AdamW, Adamax, Adadelta), 6e-6 (NAdam),
#     7e-6 (Adagrad), 7e-5 (RMSprop)
#   torch vs torch after a 1-ulp perturbation of the initial params: up to 1e-5, and 6e-4 for RMSprop
#     (its first steps are ~sign(g) * lr / sqrt(1 - alpha): near-zero gradient elements decide them)
# So: 2e-5 relative (and 2e-6 of the compared quantity's scale absolute), 10x for RMSprop, whose loops
# are chaotic enough that one ulp anywhere moves the trajectory by 6e-4.
FLOAT32_TOL = (2e-5, 2e-6)
FLOAT32_TOL_RMSPROP = (2e-4, 2e-5)
FLOAT64_TOL = (1e-10, 1e-12)


def tol(name, dtype=torch.float32):
    """(rtol, atol as a fraction of the compared quantity's scale) for optimizer ``name``'s runs in dtype."""
    if dtype == torch.float64:
        return FLOAT64_TOL
    return FLOAT32_TOL_RMSPROP if name == "RMSprop" else FLOAT32_TOL


STEPS = 15
TWIN_CASES = [case for case in CASES if case.torch is not None]
TWIN_NAMES = [case.name for case in TWIN_CASES]
TWIN_CONFIGS = [pytest.param(case.name, kwargs, id=f"{case.name}-{label}")
                for case in TWIN_CASES for label, kwargs in case.configs.items()]
MOMENTUM_CONFIGS = [pytest.param(kwargs, id=f"Momentum-{label}")
                    for label, kwargs in BY_NAME["Momentum"].configs.items()]
# one config per optimizer exercising most of its state (for the tests that are not about configs)
RICH_CONFIG = {
    "SGD": dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    "Adam": dict(lr=0.01, amsgrad=True, weight_decay=0.1),
    "AdamW": dict(lr=0.01, amsgrad=True, weight_decay=0.1),
    "Adamax": dict(lr=0.01, weight_decay=0.1),
    "NAdam": dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True),
    "Adagrad": dict(lr=0.05, lr_decay=0.01, initial_accumulator_value=0.1),
    "Adadelta": dict(lr=0.5, weight_decay=0.1),
    "RMSprop": dict(lr=0.01, centered=True, momentum=0.5),
    "RAdam": dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True),
    "Rprop": dict(lr=0.01, etas=(0.4, 1.3), maximize=True),
    "ASGD": dict(lr=0.02, lambd=0.01, t0=3, weight_decay=0.01),
}


def test_rich_config_table_covers_every_torch_twin():
    assert set(RICH_CONFIG) == set(TWIN_NAMES)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """One intra-op thread: faster for these small models, and the same reductions in both runs."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@contextlib.contextmanager
def default_dtype(dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def tdtype(request):
    """torch's default dtype set to the run's dtype for the test (models and ``step`` tensors follow)."""
    with default_dtype(request.param):
        yield request.param


# -- the model, the data, the loop ----------------------------------------------------------------------

class Net(nn.Module):
    """Conv2d (channels_last weight, bias) -> Linear, a 0-d scale, and a Linear used on some steps only.

    3.3k parameters in the default dtype; ``parameters()`` order (the module's own first): scale,
    conv.weight, conv.bias, fc.weight, fc.bias, side.weight, side.bias.
    """

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 6 * 6, 10)
        self.side = nn.Linear(3, 10)
        self.scale = nn.Parameter(torch.tensor(1.0))
        self.conv.to(memory_format=torch.channels_last)

    def forward(self, x, side=True):
        h = torch.tanh(self.conv(x)).flatten(1)
        out = self.fc(h) * self.scale
        if side:
            out = out + self.side(x.mean(dim=(2, 3)))
        return out


FC_BIAS, SIDE_WEIGHT = 4, 5  # indices in parameters() (and in the state_dict)


def uses_side(t):
    """side's params get no gradient (None after zero_grad()) on steps 0, 1 and every third step."""
    return t >= 2 and t % 3 != 0


def make_batches(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    dtype = torch.get_default_dtype()
    return [(torch.randn(8, 3, 6, 6, generator=g, dtype=dtype).contiguous(memory_format=torch.channels_last),
             torch.randn(8, 10, generator=g, dtype=dtype)) for _ in range(n)]


def make_models(seed=0):
    """(reference, candidate): two identical Nets in the default dtype."""
    torch.manual_seed(seed)
    ref = Net()
    cand = copy.deepcopy(ref)
    assert cand.conv.weight.is_contiguous(memory_format=torch.channels_last)
    return ref, cand


def loss_at(model, batch, t):
    x, y = batch
    return F.mse_loss(model(x, side=uses_side(t)), y)


def train(model, opt, batches, start=0, set_to_none=True):
    """zero_grad, forward, backward, step; a ``maximize`` optimizer climbs the negated loss (no blow-up)."""
    sign = -1.0 if opt.param_groups[0].get("maximize") else 1.0
    for t, batch in enumerate(batches, start):
        opt.zero_grad(set_to_none=set_to_none)
        (sign * loss_at(model, batch, t)).backward()
        opt.step()


def both(name, ref_model, cand_model, *args, **kwargs):
    """torch.optim.<name> over the reference model, fastopt.torch.<name> over the candidate."""
    ref = getattr(torch.optim, name)(ref_model.parameters(), *args, **copy.deepcopy(kwargs))
    cand = getattr(fot, name)(cand_model.parameters(), *args, **copy.deepcopy(kwargs))
    return ref, cand


# -- comparisons ------------------------------------------------------------------------------------------

def assert_close(actual, expected, tol, what, scale=None):
    """Close within (rtol, atol * scale); ``scale`` defaults to expected's largest magnitude."""
    assert torch.is_tensor(actual), f"{what}: {type(actual).__name__}, not a tensor"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != torch's {expected.dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    assert actual.device.type == "cpu", f"{what}: on {actual.device}"
    rtol, atol = tol
    expected = expected.detach()
    assert torch.isfinite(expected).all(), f"{what}: torch's run is not finite (a test bug)"
    if scale is None:
        scale = expected.abs().max().item() if expected.numel() else 0.0
    torch.testing.assert_close(actual.detach(), expected, rtol=rtol, atol=atol * scale,
                               msg=lambda m: f"{what}: {m}")


def _key_scales(ref_opt, ref_params):
    """Per state key, the largest magnitude over all params (the scale of the absolute tolerance)."""
    scales = {}
    for q in ref_params:
        for key, value in (ref_opt.state[q] if q in ref_opt.state else {}).items():
            if torch.is_tensor(value) and value.numel():
                scales[key] = max(scales.get(key, 0.0), value.detach().abs().max().item())
    return scales


def assert_state_close(cand_opt, cand_params, ref_opt, ref_params, tol, where="", step_dtype=None):
    """The live ``opt.state[p]`` of every param: same keys, dtypes, shapes, values; same ``step`` (of
    dtype ``step_dtype`` if given, else torch's)."""
    scales = _key_scales(ref_opt, ref_params)
    for i, (p, q) in enumerate(zip(cand_params, ref_params)):
        rs = ref_opt.state[q] if q in ref_opt.state else {}
        cs = cand_opt.state[p] if p in cand_opt.state else {}
        assert bool(cs) == bool(rs), f"{where}state of params[{i}]: {sorted(cs)} vs torch's {sorted(rs)}"
        assert set(cs) == set(rs), f"{where}state keys of params[{i}]: {sorted(cs)} vs torch's {sorted(rs)}"
        for key, rv in rs.items():
            cv = cs[key]
            what = f"{where}state[{i}][{key!r}]"
            if not torch.is_tensor(rv):
                assert cv == rv, what
            elif key == "step":
                expected_dtype = rv.dtype if step_dtype is None else step_dtype
                assert torch.is_tensor(cv) and cv.dtype == expected_dtype and cv.shape == rv.shape, \
                    f"{what}: {cv!r} vs torch's {rv!r}"
                assert float(cv) == float(rv), f"{what}: {float(cv)} vs torch's {float(rv)}"
            else:
                assert_close(cv, rv, tol, what, scales[key])


def assert_models_close(cand_model, ref_model, tol, where=""):
    scale = max(q.detach().abs().max().item() for q in ref_model.parameters())
    for (name, p), (_, q) in zip(cand_model.named_parameters(), ref_model.named_parameters()):
        assert_close(p, q, tol, f"{where}param {name}", scale)


def assert_training_matches(cand_model, cand_opt, ref_model, ref_opt, tol, where="", step_dtype=None):
    assert_models_close(cand_model, ref_model, tol, where)
    assert_state_close(cand_opt, list(cand_model.parameters()), ref_opt, list(ref_model.parameters()), tol,
                       where, step_dtype)


def test_net_parameter_order():
    names = [n for n, _ in Net().named_parameters()]
    assert names.index("fc.bias") == FC_BIAS and names.index("side.weight") == SIDE_WEIGHT
    assert len(names) == 7


def same_value(a, b):
    if torch.is_tensor(a) or torch.is_tensor(b):
        return torch.is_tensor(a) and torch.is_tensor(b) and a.dtype == b.dtype and a.shape == b.shape \
            and torch.equal(a, b)
    if isinstance(a, (tuple, list)) or isinstance(b, (tuple, list)):
        return isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)) and len(a) == len(b) \
            and all(same_value(x, y) for x, y in zip(a, b))
    return a == b


def assert_same_state_dict_format(csd, rsd, skip_group_keys=(), step_dtype=None):
    """Same param_groups (keys and values) and state (indices, keys, tensor dtypes and shapes; the
    ``step`` dtype is ``step_dtype`` if given)."""
    assert set(csd) == set(rsd) == {"state", "param_groups"}
    assert len(csd["param_groups"]) == len(rsd["param_groups"])
    for gi, (cg, rg) in enumerate(zip(csd["param_groups"], rsd["param_groups"])):
        assert set(cg) == set(rg), f"param_groups[{gi}] keys: {sorted(set(cg) ^ set(rg))} differ"
        for key in rg:
            if key not in skip_group_keys:
                assert same_value(cg[key], rg[key]), f"param_groups[{gi}][{key!r}]: {cg[key]!r} vs {rg[key]!r}"
    assert sorted(csd["state"]) == sorted(rsd["state"]), "params with state"
    for i, rs in rsd["state"].items():
        cs = csd["state"][i]
        assert set(cs) == set(rs), f"state[{i}] keys"
        for key, rv in rs.items():
            cv = cs[key]
            assert torch.is_tensor(cv) == torch.is_tensor(rv), f"state[{i}][{key!r}]: {type(cv)} vs {type(rv)}"
            if torch.is_tensor(rv):
                if key == "step" and step_dtype is not None:
                    rv = rv.to(step_dtype)
                assert (cv.dtype, cv.shape) == (rv.dtype, rv.shape), \
                    f"state[{i}][{key!r}]: {cv.dtype} {tuple(cv.shape)} vs torch's {rv.dtype} {tuple(rv.shape)}"


def param_ptrs(model):
    return [p.data_ptr() for p in model.parameters()]


def dense_perm(t):
    """The dims of a dense tensor ordered by decreasing stride: ``t.permute(perm)`` is C-contiguous."""
    perm = sorted(range(t.dim()), key=lambda d: -t.stride(d))
    assert t.permute(perm).is_contiguous()
    return perm


# == 1. conformance on training loops ======================================================================

@pytest.mark.parametrize("name, kwargs", TWIN_CONFIGS)
def test_training_loop_matches_torch(name, kwargs, tdtype):
    ref_model, cand_model = make_models()
    ref_opt, cand_opt = both(name, ref_model, cand_model, **kwargs)
    initial = [p.detach().clone() for p in cand_model.parameters()]
    ptrs = param_ptrs(cand_model)
    batches = make_batches(STEPS)
    train(ref_model, ref_opt, batches)
    train(cand_model, cand_opt, batches)
    assert_training_matches(cand_model, cand_opt, ref_model, ref_opt, tol(name, tdtype))
    assert_same_state_dict_format(cand_opt.state_dict(), ref_opt.state_dict())
    # stepped in place: the same memory, and it moved
    assert param_ptrs(cand_model) == ptrs
    assert not torch.equal(initial[2], cand_model.fc.weight.detach())
    # ``step`` follows torch's default dtype (float32 unless the default is float64)
    for s in cand_opt.state_dict()["state"].values():
        if "step" in s:
            assert s["step"].dtype == tdtype


@pytest.mark.parametrize("kwargs", MOMENTUM_CONFIGS)
def test_momentum_training_loop_matches_numpy_fastopt(kwargs, tdtype):
    """fastopt.torch.Momentum against the NumPy fastopt.Momentum stepping NumPy views of an identical model."""
    ref_model, cand_model = make_models()
    ref_params = list(ref_model.parameters())
    perms = [dense_perm(p) for p in ref_params]
    ref_opt = fastopt.Momentum([p.detach().permute(perm).numpy() for p, perm in zip(ref_params, perms)],
                               **kwargs)
    cand_opt = fot.Momentum(cand_model.parameters(), **kwargs)
    batches = make_batches(STEPS)
    for t, batch in enumerate(batches):
        ref_model.zero_grad(set_to_none=True)
        loss_at(ref_model, batch, t).backward()
        ref_opt.step([None if p.grad is None else p.grad.detach().permute(perm).contiguous().numpy()
                      for p, perm in zip(ref_params, perms)])
    train(cand_model, cand_opt, batches)
    tolerance = tol("Momentum", tdtype)
    assert_models_close(cand_model, ref_model, tolerance)
    cand_params = list(cand_model.parameters())
    assert {i for i, p in enumerate(cand_params) if cand_opt.state.get(p)} == set(ref_opt.state)
    scale = max(np.abs(s["momentum_buffer"]).max() for s in ref_opt.state.values())
    for i, (p, perm) in enumerate(zip(cand_params, perms)):
        if i not in ref_opt.state:
            continue
        cs = cand_opt.state[p]
        assert set(cs) == set(ref_opt.state[i]) == {"momentum_buffer"}
        expected = torch.from_numpy(ref_opt.state[i]["momentum_buffer"]).permute(np.argsort(perm).tolist())
        assert_close(cs["momentum_buffer"], expected, tolerance, f"state[{i}]['momentum_buffer']", scale)
    groups = cand_opt.state_dict()["param_groups"]
    assert groups[0]["lr"] == kwargs["lr"] and groups[0]["beta"] == kwargs.get("beta", 0.9)


def test_momentum_defaults():
    sig = inspect.signature(fot.Momentum)
    assert list(sig.parameters)[:3] == ["params", "lr", "beta"]
    assert sig.parameters["lr"].default == 0.01 and sig.parameters["beta"].default == 0.9
    opt = fot.Momentum(Net().parameters())
    assert isinstance(opt, torch.optim.Optimizer)
    assert opt.param_groups[0]["lr"] == 0.01 and opt.param_groups[0]["beta"] == 0.9


@pytest.mark.parametrize("name", TWIN_NAMES)
def test_signature_matches_torch(name):
    """Every parameter of torch's constructor, with its kind and default (extra keyword-only ones allowed)."""
    cand = inspect.signature(getattr(fot, name)).parameters
    ref = inspect.signature(getattr(torch.optim, name)).parameters
    positional = [p.name for p in ref.values() if p.kind is not p.KEYWORD_ONLY]
    assert [p.name for p in cand.values() if p.kind not in (p.KEYWORD_ONLY, p.VAR_KEYWORD)] == positional
    for pname, rp in ref.items():
        assert pname in cand, f"{name}: no {pname!r} parameter"
        assert cand[pname].kind == rp.kind, f"{name}({pname}): {cand[pname].kind} vs torch's {rp.kind}"
        assert same_value(cand[pname].default, rp.default), \
            f"{name}({pname}=...): default {cand[pname].default!r} vs torch's {rp.default!r}"
    for pname, cp in cand.items():
        if pname not in ref and cp.kind is not cp.VAR_KEYWORD:  # **options: the precision options
            assert cp.kind is cp.KEYWORD_ONLY and cp.default is not cp.empty, f"{name}: extra {pname!r}"


@pytest.mark.parametrize("name", TWIN_NAMES)
def test_default_construction_matches_torch(name):
    ref_model, cand_model = make_models()
    ref_opt, cand_opt = both(name, ref_model, cand_model)
    assert isinstance(cand_opt, torch.optim.Optimizer)
    assert cand_opt.defaults == ref_opt.defaults
    assert_same_state_dict_format(cand_opt.state_dict(), ref_opt.state_dict())
    assert cand_opt.state_dict()["param_groups"][0]["params"] == list(range(7))


@pytest.mark.parametrize("name", TWIN_NAMES)
def test_hyperparameters_read_from_param_groups_every_step(name, tdtype):
    """lr, weight_decay and momentum/betas/rho/alpha changed in param_groups mid-run, as torch reads them."""
    ref_model, cand_model = make_models()
    ref_opt, cand_opt = both(name, ref_model, cand_model, **RICH_CONFIG[name])
    batches = make_batches(12)
    changes = dict(lr=0.5, weight_decay=0.03, momentum=0.6, betas=(0.7, 0.95), rho=0.7, alpha=0.8,
                   lr_decay=0.05, momentum_decay=0.01, dampening=0.1, eps=1e-3)
    train(ref_model, ref_opt, batches[:5])
    train(cand_model, cand_opt, batches[:5])
    for opt in (ref_opt, cand_opt):
        group = opt.param_groups[0]
        for key, value in changes.items():
            if key == "lr":
                group["lr"] = group["lr"] * value
            elif key == "dampening" and group.get("nesterov"):
                continue
            elif key in group:
                group[key] = value
    train(ref_model, ref_opt, batches[5:], start=5)
    train(cand_model, cand_opt, batches[5:], start=5)
    assert_training_matches(cand_model, cand_opt, ref_model, ref_opt, tol(name, tdtype))


@pytest.mark.parametrize("name", TWIN_NAMES)
def test_grads_zeroed_in_place(name):
    """zero_grad(set_to_none=False): the same grad tensors every step, refilled by backward in place
    (side's are zeros on the steps it is unused, and still stepped, as torch does)."""
    ref_model, cand_model = make_models()
    ref_opt, cand_opt = both(name, ref_model, cand_model, **RICH_CONFIG[name])
    batches = make_batches(8)
    train(ref_model, ref_opt, batches, set_to_none=False)
    train(cand_model, cand_opt, batches, set_to_none=False)
    assert_training_matches(cand_model, cand_opt, ref_model, ref_opt, tol(name))


INERT_FLAGS = [pytest.param(name, flag, id=f"{name}-{flag}") for name in TWIN_NAMES for flag in ("foreach", "fused")
               if flag in inspect.signature(getattr(torch.optim, name)).parameters]


@pytest.mark.parametrize("name, flag", INERT_FLAGS)
def test_foreach_and_fused_are_inert(name, flag):
    """foreach=True / fused=True: recorded in param_groups like torch's, the same steps as without."""
    ref_model, cand_model = make_models()
    plain = getattr(fot, name)(ref_model.parameters(), **RICH_CONFIG[name])
    flagged = getattr(fot, name)(cand_model.parameters(), **RICH_CONFIG[name], **{flag: True})
    assert flagged.param_groups[0][flag] is True
    batches = make_batches(6)
    train(ref_model, plain, batches)
    train(cand_model, flagged, batches)
    for p, q in zip(cand_model.parameters(), ref_model.parameters()):
        assert torch.equal(p, q)


# == 2. torch's own optimizer configurations (optim_db) ===================================================

try:
    from torch.testing._internal import common_optimizers as _tco
    _DB_SKIP = None
except ImportError as exc:  # torch.testing._internal needs the expecttest package
    _tco = None
    _DB_SKIP = f"torch's optim_db is unavailable ({exc}); install expecttest to run these"

FLAGS = ("differentiable", "capturable")


def _db_inputs(device, info):
    helper = getattr(_tco, "_get_optim_inputs_including_global_cliquey_kwargs", None)
    if helper is not None:
        return helper(device, torch.float32, info)
    inputs = info.optim_inputs_func(device=device, dtype=torch.float32)
    return inputs + [_tco.OptimizerInput(params=None, kwargs={**oi.kwargs, "differentiable": True},
                                         desc=f"{oi.desc} & differentiable") for oi in inputs]


def _db_id(name, desc, device):
    text = re.sub(r"[^0-9A-Za-z]+", "_", desc).strip("_")
    return f"{name}-{text}" + ("" if device == "cpu" else f"-{device}_config")


def _db_key(name, kwargs):
    return name, repr(sorted((k, v) for k, v in kwargs.items() if v is not False))


def _collect_optim_db():
    """(configs to run, configs to reject, construction errors) for the optimizers with a fastopt twin.

    Runs: every CPU config, plus the CUDA/MPS-only configs with a tensor hyperparameter (tensor lr must
    work on CPU too). Rejections: every config with differentiable=True or capturable=True (CPU and
    CUDA's capturable ones).
    """
    if _tco is None:
        skip = [pytest.param(None, None, id="optim_db", marks=pytest.mark.skip(reason=_DB_SKIP))]
        return skip, skip, skip
    run, reject, errors, seen = [], [], [], set()
    for info in _tco.optim_db:
        name = info.optim_cls.__name__
        if name not in TWIN_NAMES:
            continue
        for device in ("cpu", "cuda", "mps"):
            for oi in _db_inputs(device, info):
                kwargs = oi.kwargs
                flagged = [f for f in FLAGS if kwargs.get(f)]
                if device != "cpu" and not flagged and not any(
                        torch.is_tensor(v) or isinstance(v, tuple) and any(map(torch.is_tensor, v))
                        for v in kwargs.values()):
                    continue
                key = _db_key(name, kwargs)
                if key in seen:
                    continue
                seen.add(key)
                param = pytest.param(name, kwargs, id=_db_id(name, oi.desc, device))
                (reject if flagged else run).append(param)
        for i, ei in enumerate(info.optim_error_inputs_func(device="cpu", dtype=torch.float32)):
            oi = ei.optimizer_error_input
            if ei.error_on != _tco.OptimizerErrorEnum.CONSTRUCTION_ERROR:
                continue
            # foreach is inert in fastopt (torch's tensor-lr/foreach conflicts do not apply), and mixed
            # tensor/float betas are torch's capturable machinery
            if "foreach" in oi.kwargs or any(isinstance(v, tuple) and any(map(torch.is_tensor, v))
                                             for v in oi.kwargs.values()):
                continue
            errors.append(pytest.param(name, ei, id=f"{name}-{i}-{ei.error_type.__name__}"))
    return run, reject, errors


DB_RUN, DB_REJECT, DB_ERRORS = _collect_optim_db()


@pytest.mark.parametrize("name, kwargs", DB_RUN)
def test_optim_db_config_matches_torch(name, kwargs, tdtype):
    # the reference runs torch's for-loop (foreach/fused off): fastopt's flags are inert, except that,
    # as torch's, a fused optimizer keeps its ``step`` in float32 (torch.optim.optimizer._get_scalar_dtype)
    ref_kwargs = {k: (False if k in ("foreach", "fused") else v) for k, v in kwargs.items()}
    step_dtype = torch.float32 if kwargs.get("fused") else None
    # tensor hyperparameters in the run's dtype (optim_db's are float32; in a float64 run torch would
    # round lr / bias_correction to float32 where fastopt does not)
    kwargs = {k: v.to(tdtype) if torch.is_tensor(v) else v for k, v in kwargs.items()}
    ref_kwargs = {k: v.to(tdtype) if torch.is_tensor(v) else v for k, v in ref_kwargs.items()}
    ref_model, cand_model = make_models()
    ref_opt = getattr(torch.optim, name)(ref_model.parameters(), **copy.deepcopy(ref_kwargs))
    cand_opt = getattr(fot, name)(cand_model.parameters(), **copy.deepcopy(kwargs))
    batches = make_batches(8)
    train(ref_model, ref_opt, batches)
    train(cand_model, cand_opt, batches)
    assert_training_matches(cand_model, cand_opt, ref_model, ref_opt, tol(name, tdtype), step_dtype=step_dtype)
    assert_same_state_dict_format(cand_opt.state_dict(), ref_opt.state_dict(),
                                  skip_group_keys=("foreach", "fused"), step_dtype=step_dtype)
    for flag in ("foreach", "fused"):
        if flag in kwargs:
            assert cand_opt.param_groups[0][flag] == kwargs[flag]
    if torch.is_tensor(kwargs.get("lr")):
        assert torch.is_tensor(cand_opt.param_groups[0]["lr"])


@pytest.mark.parametrize("name, kwargs", DB_REJECT)
def test_optim_db_differentiable_or_capturable_rejected(name, kwargs):
    flags = [f for f in FLAGS if kwargs.get(f)]
    with pytest.raises(ValueError, match="|".join(flags)):
        getattr(fot, name)(Net().parameters(), **copy.deepcopy(kwargs))


@pytest.mark.parametrize("name, error_input", DB_ERRORS)
def test_optim_db_construction_errors_as_torch(name, error_input):
    """torch's construction-time errors (bad params, duplicates, invalid hyperparameters): same type."""
    oi = error_input.optimizer_error_input
    params = oi.params if oi.params is not None else [nn.Parameter(torch.randn(3))]
    cls = getattr(fot, name)
    if issubclass(error_input.error_type, Warning):
        with pytest.warns(error_input.error_type, match=error_input.error_regex):
            cls(params, **oi.kwargs)
    else:
        with pytest.raises(error_input.error_type):
            cls(params, **oi.kwargs)


# == 3. regressions: one per item of the bug report ========================================================

def test_generator_params_zero_grad_and_closure():
    ref_model, cand_model = make_models()
    # model.parameters() is a generator: consumed once, every param kept
    ref_opt, cand_opt = torch.optim.Adam(ref_model.parameters()), fot.Adam(cand_model.parameters())
    assert len(cand_opt.param_groups[0]["params"]) == 7
    batches = make_batches(6)
    train(ref_model, ref_opt, batches[:3])
    train(cand_model, cand_opt, batches[:3])
    assert_training_matches(cand_model, cand_opt, ref_model, ref_opt, tol("Adam"))

    # zero_grad(): grads set to None
    loss_at(cand_model, batches[3], 3).backward()
    cand_opt.zero_grad()
    assert all(p.grad is None for p in cand_model.parameters())
    # zero_grad(set_to_none=False): the same grad tensors, zeroed
    loss_at(cand_model, batches[3], 4).backward()
    grads = [p.grad for p in cand_model.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    cand_opt.zero_grad(set_to_none=False)
    for p, g in zip(cand_model.parameters(), grads):
        assert p.grad is g and not p.grad.any()

    # step(closure) under no_grad: the closure runs with grad enabled, its loss is returned
    for model, opt in ((ref_model, ref_opt), (cand_model, cand_opt)):
        for t in (4, 5):
            seen = []

            def closure(model=model, opt=opt, t=t, seen=seen):
                seen.append(torch.is_grad_enabled())
                opt.zero_grad()
                loss = loss_at(model, batches[t], t)
                loss.backward()
                seen.append(loss)
                return loss

            with torch.no_grad():
                result = opt.step(closure)
            assert seen[0] is True
            assert result is seen[1]
    assert_training_matches(cand_model, cand_opt, ref_model, ref_opt, tol("Adam"))


def test_step_lr_scheduler():
    ref_model, cand_model = make_models()
    ref_opt, cand_opt = both("Adam", ref_model, cand_model, lr=0.02)
    ref_s = torch.optim.lr_scheduler.StepLR(ref_opt, step_size=3, gamma=0.5)
    cand_s = torch.optim.lr_scheduler.StepLR(cand_opt, step_size=3, gamma=0.5)
    for t, batch in enumerate(make_batches(10)):
        for model, opt, sched in ((ref_model, ref_opt, ref_s), (cand_model, cand_opt, cand_s)):
            train(model, opt, [batch], start=t)
            sched.step()
        assert cand_opt.param_groups[0]["lr"] == ref_opt.param_groups[0]["lr"]
        assert cand_s.get_last_lr() == ref_s.get_last_lr()
    assert cand_opt.param_groups[0]["lr"] == 0.02 * 0.5 ** 3
    assert_training_matches(cand_model, cand_opt, ref_model, ref_opt, tol("Adam"))


INF_STEP = 4


def _train_with_scaler(model, opt, batches):
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    scales, skipped_ok = [], None
    for t, batch in enumerate(batches):
        opt.zero_grad()
        scaler.scale(loss_at(model, batch, t)).backward()
        if t == INF_STEP:
            model.fc.weight.grad[0, 0] = float("inf")
            before = [p.detach().clone() for p in model.parameters()]
        scaler.step(opt)
        scaler.update()
        if t == INF_STEP:
            skipped_ok = all(torch.equal(a, p) for a, p in zip(before, model.parameters()))
        scales.append(scaler.get_scale())
    return scales, skipped_ok


@pytest.mark.parametrize("fused", [False, True], ids=["plain", "fused"])
def test_grad_scaler_with_inf_step(fused):
    ref_model, cand_model = make_models()
    ref_opt = torch.optim.Adam(ref_model.parameters(), lr=0.01)
    cand_opt = fot.Adam(cand_model.parameters(), lr=0.01, fused=fused)
    batches = make_batches(10)
    ref_scales, ref_skipped = _train_with_scaler(ref_model, ref_opt, batches)
    cand_scales, cand_skipped = _train_with_scaler(cand_model, cand_opt, batches)
    assert ref_skipped and cand_skipped, "the step with an inf gradient must be skipped"
    assert cand_scales == ref_scales
    assert ref_scales[INF_STEP] == ref_scales[INF_STEP - 1] / 2
    assert_training_matches(cand_model, cand_opt, ref_model, ref_opt, tol("Adam"))
    assert float(cand_opt.state[cand_model.fc.weight]["step"]) == len(batches) - 1


def test_share_memory_mid_run():
    ref_model, cand_model = make_models()
    ref_opt, cand_opt = both("Adam", ref_model, cand_model, lr=0.01)
    batches = make_batches(10)
    train(ref_model, ref_opt, batches[:4])
    train(cand_model, cand_opt, batches[:4])
    old = param_ptrs(cand_model)
    ref_model.share_memory()
    cand_model.share_memory()
    new = param_ptrs(cand_model)
    assert new != old  # share_memory moved the storages: the optimizer must follow
    before = [p.detach().clone() for p in cand_model.parameters()]
    train(ref_model, ref_opt, batches[4:], start=4)
    train(cand_model, cand_opt, batches[4:], start=4)
    assert all(p.is_shared() for p in cand_model.parameters())
    assert param_ptrs(cand_model) == new
    assert not torch.equal(before[2], cand_model.fc.weight.detach())
    assert_training_matches(cand_model, cand_opt, ref_model, ref_opt, tol("Adam"))


@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_weight_data_replaced_mid_run(layout):
    ref_model, cand_model = make_models()
    ref_opt, cand_opt = both("Adam", ref_model, cand_model, lr=0.01)
    batches = make_batches(10)
    train(ref_model, ref_opt, batches[:4])
    train(cand_model, cand_opt, batches[:4])
    new = torch.randn(10, 8 * 6 * 6) * 0.05
    if layout == "transposed":  # dense, not contiguous
        new = new.t().contiguous().t()
    ref_model.fc.weight.data = new.clone(memory_format=torch.preserve_format)
    cand_model.fc.weight.data = new.clone(memory_format=torch.preserve_format)
    ptr, stride = cand_model.fc.weight.data_ptr(), cand_model.fc.weight.stride()
    train(ref_model, ref_opt, batches[4:], start=4)
    train(cand_model, cand_opt, batches[4:], start=4)
    assert cand_model.fc.weight.data_ptr() == ptr and cand_model.fc.weight.stride() == stride
    assert not torch.allclose(cand_model.fc.weight, new), "the new weight did not train"
    assert_training_matches(cand_model, cand_opt, ref_model, ref_opt, tol("AdamW"))


def test_model_load_state_dict_mid_run():
    ref_model, cand_model = make_models()
    ref_opt, cand_opt = both("AdamW", ref_model, cand_model, lr=0.01, weight_decay=0.1)
    batches = make_batches(10)
    train(ref_model, ref_opt, batches[:4])
    train(cand_model, cand_opt, batches[:4])
    torch.manual_seed(7)
    other = Net().state_dict()
    ref_model.load_state_dict(other)
    cand_model.load_state_dict(other)
    for p, (k, v) in zip(cand_model.parameters(), other.items()):
        assert torch.equal(p, v), k
    train(ref_model, ref_opt, batches[4:], start=4)
    train(cand_model, cand_opt, batches[4:], start=4)
    assert not torch.allclose(cand_model.fc.weight, other["fc.weight"])
    assert_training_matches(cand_model, cand_opt, ref_model, ref_opt, tol("AdamW"))


# torch steps these on after model.to(float64) (in-place ops write the float64 grads into the float32
# state); the others raise in torch (lerp_: "expected dtype float for `end`") until the optimizer's state
# is re-loaded (load_state_dict casts it to the params' dtype)
TORCH_SURVIVES_TO_FLOAT64 = {"SGD", "Adagrad", "Adadelta", "Rprop", "ASGD"}


@pytest.mark.parametrize("name", TWIN_NAMES)
def test_model_to_float64_mid_run(name):
    """model.to(torch.float64) mid-run: where torch.optim steps on, fastopt must too, with the same
    trajectory; where torch raises, fastopt may refuse too (TypeError/ValueError naming params[i],
    nothing changed) and must then step on after ``opt.load_state_dict(opt.state_dict())``, as torch."""
    ref_model, cand_model = make_models()
    ref_opt, cand_opt = both(name, ref_model, cand_model, **RICH_CONFIG[name])
    batches = make_batches(10)
    train(ref_model, ref_opt, batches[:4])
    train(cand_model, cand_opt, batches[:4])
    ref_model.to(torch.float64)
    cand_model.to(torch.float64)
    batches64 = [(x.double(), y.double()) for x, y in batches[4:]]
    ptrs = param_ptrs(cand_model)
    before = cand_model.fc.weight.detach().clone()
    start = 0
    if name not in TORCH_SURVIVES_TO_FLOAT64:
        with pytest.raises(RuntimeError):  # torch cannot step on (the premise of this branch)
            probe_model, probe_opt = copy.deepcopy((ref_model, ref_opt))
            train(probe_model, probe_opt, batches64[:1], start=4)
        ref_opt.load_state_dict(ref_opt.state_dict())
        cand_opt.zero_grad()
        loss_at(cand_model, batches64[0], 4).backward()
        unchanged = snapshot(cand_opt)
        try:
            cand_opt.step()
        except (TypeError, ValueError) as exc:
            assert re.search(r"params\[\d+\]", str(exc)), str(exc)
            assert_unchanged(unchanged, cand_opt)
            cand_opt.load_state_dict(cand_opt.state_dict())
        else:  # fastopt stepped on by itself: torch (re-loaded) takes the same step
            train(ref_model, ref_opt, batches64[:1], start=4)
            start = 1
    train(ref_model, ref_opt, batches64[start:], start=4 + start)
    train(cand_model, cand_opt, batches64[start:], start=4 + start)
    assert all(p.dtype == torch.float64 for p in cand_model.parameters())
    assert param_ptrs(cand_model) == ptrs
    assert not torch.equal(before, cand_model.fc.weight.detach())
    # float32 tolerance: the first steps ran in float32, and torch (or fastopt) may keep float32 state
    assert_models_close(cand_model, ref_model, tol(name))
    ref_params = list(ref_model.parameters())
    scales = _key_scales(ref_opt, ref_params)
    for p, q in zip(cand_model.parameters(), ref_params):
        for key, rv in ref_opt.state[q].items():
            if key != "step":
                assert_close(cand_opt.state[p][key].double(), rv.double(), tol(name), f"state {key!r}",
                             scales[key])
            else:
                assert float(cand_opt.state[p][key]) == float(rv)


SPLIT = 6
ROUNDTRIP = ([pytest.param(name, direction, id=f"{name}-{direction}")
              for name in TWIN_NAMES for direction in ("fastopt_to_torch", "torch_to_fastopt")]
             + [pytest.param("Momentum", "fastopt_to_fastopt", id="Momentum-fastopt_to_fastopt")])


@pytest.mark.parametrize("name, direction", ROUNDTRIP)
def test_state_dict_round_trip_through_torch_save(name, direction, tmp_path):
    """state_dict -> torch.save -> torch.load(path) (default: weights_only=True) -> the other side's
    load_state_dict continues the uninterrupted trajectory of the saving side."""
    kwargs = RICH_CONFIG.get(name, dict(lr=0.05, beta=0.8))
    fast_cls = getattr(fot, name)
    torch_cls = getattr(torch.optim, name, fast_cls)
    src_cls, dst_cls = {"fastopt_to_torch": (fast_cls, torch_cls), "torch_to_fastopt": (torch_cls, fast_cls),
                        "fastopt_to_fastopt": (fast_cls, fast_cls)}[direction]
    full_model, split_model = make_models()
    batches = make_batches(12)
    full_opt = src_cls(full_model.parameters(), **kwargs)
    train(full_model, full_opt, batches)

    first = src_cls(split_model.parameters(), **kwargs)
    train(split_model, first, batches[:SPLIT])
    path = tmp_path / "optimizer.pt"
    torch.save(first.state_dict(), path)
    loaded = torch.load(path)
    second = dst_cls(split_model.parameters())  # defaults: the hyperparameters come from the state_dict
    second.load_state_dict(loaded)
    params = list(split_model.parameters())
    assert_state_close(second, params, first, params, (0, 0), "after load: ")
    for key, value in kwargs.items():
        assert same_value(second.param_groups[0][key], value), key
    train(split_model, second, batches[SPLIT:], start=SPLIT)
    assert_training_matches(split_model, second, full_model, full_opt, tol(name))


LAYOUT_CONFIGS = [pytest.param(name, RICH_CONFIG[name], id=name) for name in TWIN_NAMES] + \
                 [pytest.param("Momentum", dict(lr=0.05), id="Momentum")]


@pytest.mark.parametrize("name, kwargs", LAYOUT_CONFIGS)
def test_channels_last_and_transposed_weights_stepped_in_place(name, kwargs):
    """channels_last conv weights and a transposed Linear weight: stepped in place, layout kept, state
    in the param's layout (as torch's zeros_like(preserve_format)), values as torch's."""
    ref_model, cand_model = make_models()
    for model in (ref_model, cand_model):
        model.fc.weight.data = model.fc.weight.data.t().contiguous().t()
    ref_opt = getattr(torch.optim, name)(ref_model.parameters(), **kwargs) if name != "Momentum" else None
    cand_opt = getattr(fot, name)(cand_model.parameters(), **kwargs)
    layouts = [(p.stride(), p.data_ptr()) for p in cand_model.parameters()]
    batches = make_batches(8)
    train(cand_model, cand_opt, batches)
    assert [(p.stride(), p.data_ptr()) for p in cand_model.parameters()] == layouts
    w = cand_model.conv.weight
    assert w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
    for p in (w, cand_model.fc.weight):
        for key, value in cand_opt.state[p].items():
            if torch.is_tensor(value) and value.dim():
                assert value.stride() == p.stride(), f"state {key!r} of a {tuple(p.shape)} param: layout"
    if ref_opt is not None:
        train(ref_model, ref_opt, batches)
        assert_training_matches(cand_model, cand_opt, ref_model, ref_opt, tol(name))
        for p, q in zip(cand_model.parameters(), ref_model.parameters()):
            for key, rv in ref_opt.state[q].items():
                if torch.is_tensor(rv) and rv.dim():
                    assert cand_opt.state[p][key].stride() == rv.stride(), key


@pytest.mark.parametrize("shape", [(), (1,)], ids=["0d", "1elem"])
@pytest.mark.parametrize("name", TWIN_NAMES)
def test_tensor_lr_matches_torch(name, shape):
    kwargs = dict(RICH_CONFIG[name], lr=torch.full(shape, RICH_CONFIG[name]["lr"]))
    ref_model, cand_model = make_models()
    ref_opt, cand_opt = both(name, ref_model, cand_model, **kwargs)
    assert torch.is_tensor(cand_opt.param_groups[0]["lr"])
    ref_s = torch.optim.lr_scheduler.StepLR(ref_opt, step_size=3, gamma=0.5)
    cand_s = torch.optim.lr_scheduler.StepLR(cand_opt, step_size=3, gamma=0.5)
    for t, batch in enumerate(make_batches(8)):
        for model, opt, sched in ((ref_model, ref_opt, ref_s), (cand_model, cand_opt, cand_s)):
            train(model, opt, [batch], start=t)
            sched.step()
        assert same_value(cand_opt.param_groups[0]["lr"], ref_opt.param_groups[0]["lr"])
    assert_training_matches(cand_model, cand_opt, ref_model, ref_opt, tol(name))


# == 4. every lr_scheduler =================================================================================

S = torch.optim.lr_scheduler
SCHED_STEPS = 30
SGD_M = ("SGD", dict(lr=0.1, momentum=0.9))
ADAM = ("Adam", dict(lr=0.01))
SCHEDULERS = {
    "LambdaLR": (SGD_M, lambda o: S.LambdaLR(o, lambda e: 0.95 ** e)),
    "MultiplicativeLR": (SGD_M, lambda o: S.MultiplicativeLR(o, lambda e: 0.9)),
    "StepLR": (SGD_M, lambda o: S.StepLR(o, step_size=5, gamma=0.5)),
    "MultiStepLR": (SGD_M, lambda o: S.MultiStepLR(o, milestones=[5, 12, 20], gamma=0.3)),
    "ConstantLR": (SGD_M, lambda o: S.ConstantLR(o, factor=0.25, total_iters=6)),
    "LinearLR": (SGD_M, lambda o: S.LinearLR(o, start_factor=0.1, total_iters=10)),
    "ExponentialLR": (SGD_M, lambda o: S.ExponentialLR(o, gamma=0.9)),
    "PolynomialLR": (SGD_M, lambda o: S.PolynomialLR(o, total_iters=20, power=2.0)),
    "CosineAnnealingLR": (SGD_M, lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=1e-3)),
    "CosineAnnealingWarmRestarts": (SGD_M, lambda o: S.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2)),
    "CyclicLR-SGD-momentum": (SGD_M, lambda o: S.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=5,
                                                           base_momentum=0.8, max_momentum=0.95)),
    "CyclicLR-Adam-no_momentum": (ADAM, lambda o: S.CyclicLR(o, base_lr=0.001, max_lr=0.02, step_size_up=4,
                                                              mode="triangular2", cycle_momentum=False)),
    "CyclicLR-Adam-betas": (ADAM, lambda o: S.CyclicLR(o, base_lr=0.001, max_lr=0.02, step_size_up=4,
                                                        mode="exp_range", gamma=0.99)),
    "OneCycleLR-SGD-momentum": (SGD_M, lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=SCHED_STEPS)),
    "OneCycleLR-Adam-betas": (ADAM, lambda o: S.OneCycleLR(o, max_lr=0.02, total_steps=SCHED_STEPS,
                                                           anneal_strategy="linear")),
    "SequentialLR": (ADAM, lambda o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.1, total_iters=5),
                                                        S.ExponentialLR(o, gamma=0.9)], milestones=[5])),
    "ChainedScheduler": (SGD_M, lambda o: S.ChainedScheduler([S.ConstantLR(o, factor=0.5, total_iters=5),
                                                               S.ExponentialLR(o, gamma=0.95)])),
    "ReduceLROnPlateau": (ADAM, lambda o: S.ReduceLROnPlateau(o, mode="min", factor=0.5, patience=2)),
}


def plateau_metric(t):
    """Improves for 5 steps, then plateaus (ReduceLROnPlateau halves the lr every 3 steps)."""
    return max(1.0, 6.0 - t)


def _hyper(opt):
    return [(g["lr"], g.get("momentum"), g.get("betas")) for g in opt.param_groups]


@pytest.mark.parametrize("sched_name", list(SCHEDULERS))
def test_lr_scheduler_drives_fastopt_like_torch(sched_name):
    (name, kwargs), factory = SCHEDULERS[sched_name]
    ref_model, cand_model = make_models()
    # two groups: the schedulers handle each group's lr
    ref_opt = getattr(torch.optim, name)([{"params": ref_model.conv.parameters()},
                                          {"params": list(ref_model.fc.parameters()) + [ref_model.scale]},
                                          {"params": ref_model.side.parameters()}], **kwargs)
    cand_opt = getattr(fot, name)([{"params": cand_model.conv.parameters()},
                                   {"params": list(cand_model.fc.parameters()) + [cand_model.scale]},
                                   {"params": cand_model.side.parameters()}], **kwargs)
    ref_s, cand_s = factory(ref_opt), factory(cand_opt)
    assert _hyper(cand_opt) == _hyper(ref_opt)
    seen = {tuple(_hyper(ref_opt))}
    for t, batch in enumerate(make_batches(SCHED_STEPS)):
        for model, opt, sched in ((ref_model, ref_opt, ref_s), (cand_model, cand_opt, cand_s)):
            train(model, opt, [batch], start=t)
            if isinstance(sched, S.ReduceLROnPlateau):
                sched.step(plateau_metric(t))
            else:
                sched.step()
        assert _hyper(cand_opt) == _hyper(ref_opt), f"step {t}"
        seen.add(tuple(_hyper(ref_opt)))
    assert len(seen) >= 2, "the scheduler changed nothing: not a test"
    assert_training_matches(cand_model, cand_opt, ref_model, ref_opt, tol(name))


# == 5. hooks, add_param_group, named parameters, copies, groups ===========================================

def test_step_hooks_fire():
    _, model = make_models()
    opt = fot.SGD(model.parameters(), lr=0.1, momentum=0.9)
    calls = []

    def pre(o, args, kwargs):
        calls.append(("pre", o is opt, model.fc.weight.detach().clone()))

    def post(o, args, kwargs):
        calls.append(("post", o is opt, model.fc.weight.detach().clone()))

    def global_pre(o, args, kwargs):
        calls.append(("global_pre", o is opt, None))

    def global_post(o, args, kwargs):
        calls.append(("global_post", o is opt, None))

    handles = [opt.register_step_pre_hook(pre), opt.register_step_post_hook(post),
               register_optimizer_step_pre_hook(global_pre), register_optimizer_step_post_hook(global_post)]
    try:
        batches = make_batches(3)
        for t, batch in enumerate(batches):
            opt.zero_grad()
            loss_at(model, batch, t).backward()
            before = model.fc.weight.detach().clone()
            opt.step()
            after = model.fc.weight.detach().clone()
            assert [c[0] for c in calls] == ["global_pre", "pre", "post", "global_post"]
            assert all(c[1] for c in calls)
            assert torch.equal(calls[1][2], before) and torch.equal(calls[2][2], after)
            assert not torch.equal(before, after)
            calls.clear()
    finally:
        for h in handles:
            h.remove()
    train(model, opt, make_batches(1))
    assert calls == []


def test_a_pre_hook_can_replace_the_closure():
    """torch's wrapper passes a pre-hook's (args, kwargs) on to the step (the hooked path)."""
    _, model = make_models()
    opt = fot.Adam(model.parameters(), lr=0.01)
    batch = make_batches(1)[0]

    def closure():
        opt.zero_grad()
        loss = loss_at(model, batch, 0)
        loss.backward()
        return loss
    handle = opt.register_step_pre_hook(lambda o, args, kwargs: ((o,), {"closure": closure}))
    try:
        before = model.fc.weight.detach().clone()
        loss = opt.step()  # no closure given: the hook's runs
    finally:
        handle.remove()
    assert torch.is_tensor(loss) and not torch.equal(before, model.fc.weight)


@pytest.mark.parametrize("name", ["Adam", "SGD"])
def test_profiler_sees_the_step_as_torch_names_it(name):
    _, model = make_models()
    opt = getattr(fot, name)(model.parameters(), lr=0.01)
    train(model, opt, make_batches(1))
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        train(model, opt, make_batches(1))
    names = {event.name for event in prof.events()}
    assert f"Optimizer.step#{name}.step" in names, sorted(names)[:20]


def test_state_dict_hooks_fire():
    _, model = make_models()
    opt = fot.Adam(model.parameters(), lr=0.01)
    train(model, opt, make_batches(2))
    calls = []

    def sd_pre(o):
        calls.append("sd_pre")

    def sd_post(o, sd):
        calls.append("sd_post")
        sd["extra"] = "post-hook"
        return sd

    def load_pre(o, sd):
        calls.append("load_pre")
        sd = copy.deepcopy(sd)
        sd.pop("extra", None)
        sd["param_groups"][0]["lr"] = 0.123
        return sd

    def load_post(o):
        calls.append(("load_post", o.param_groups[0]["lr"]))

    opt.register_state_dict_pre_hook(sd_pre)
    opt.register_state_dict_post_hook(sd_post)
    opt.register_load_state_dict_pre_hook(load_pre)
    opt.register_load_state_dict_post_hook(load_post)
    sd = opt.state_dict()
    assert calls == ["sd_pre", "sd_post"] and sd["extra"] == "post-hook"
    calls.clear()
    opt.load_state_dict(sd)
    assert calls == ["load_pre", ("load_post", 0.123)]
    assert opt.param_groups[0]["lr"] == 0.123


@pytest.mark.parametrize("name", TWIN_NAMES)
def test_add_param_group_mid_run(name):
    ref_model, cand_model = make_models()
    kwargs = RICH_CONFIG[name]

    def core(m):
        return [m.conv.weight, m.conv.bias, m.fc.weight, m.fc.bias, m.scale]

    ref_opt = getattr(torch.optim, name)(core(ref_model), **kwargs)
    cand_opt = getattr(fot, name)(core(cand_model), **kwargs)
    batches = make_batches(10)
    train(ref_model, ref_opt, batches[:4])
    train(cand_model, cand_opt, batches[:4])
    side_before = cand_model.side.weight.detach().clone()
    new_lr = kwargs["lr"] * 2
    ref_opt.add_param_group({"params": ref_model.side.parameters(), "lr": new_lr})
    cand_opt.add_param_group({"params": cand_model.side.parameters(), "lr": new_lr})
    assert len(cand_opt.param_groups) == 2 and cand_opt.param_groups[1]["lr"] == new_lr
    for model in (ref_model, cand_model):
        model.side.zero_grad()  # grads accumulated while the layer was not optimized
    train(ref_model, ref_opt, batches[4:], start=4)
    train(cand_model, cand_opt, batches[4:], start=4)
    assert not torch.allclose(side_before, cand_model.side.weight)
    assert cand_model.side.weight in cand_opt.state
    assert_training_matches(cand_model, cand_opt, ref_model, ref_opt, tol(name))
    assert_same_state_dict_format(cand_opt.state_dict(), ref_opt.state_dict())


@pytest.mark.parametrize("name", TWIN_NAMES)
def test_named_parameters(name):
    ref_model, cand_model = make_models()
    ref_opt = getattr(torch.optim, name)(ref_model.named_parameters(), **RICH_CONFIG[name])
    cand_opt = getattr(fot, name)(cand_model.named_parameters(), **RICH_CONFIG[name])
    batches = make_batches(5)
    train(ref_model, ref_opt, batches)
    train(cand_model, cand_opt, batches)
    csd, rsd = cand_opt.state_dict(), ref_opt.state_dict()
    assert csd["param_groups"][0]["param_names"] == [n for n, _ in cand_model.named_parameters()]
    assert_same_state_dict_format(csd, rsd)
    assert_training_matches(cand_model, cand_opt, ref_model, ref_opt, tol(name))


def _deepcopy(obj):
    return copy.deepcopy(obj)


def _pickle(obj):
    return pickle.loads(pickle.dumps(obj))


@pytest.mark.parametrize("clone", [_deepcopy, _pickle], ids=["deepcopy", "pickle"])
@pytest.mark.parametrize("name", TWIN_NAMES + ["Momentum"])
def test_copied_optimizer_steps_its_own_params(name, clone):
    _, model = make_models()
    opt = getattr(fot, name)(model.parameters(), **RICH_CONFIG.get(name, dict(lr=0.05)))
    batches = make_batches(7)
    train(model, opt, batches[:3])
    model2, opt2 = clone((model, opt))
    params2 = list(model2.parameters())
    assert [p for g in opt2.param_groups for p in g["params"]] == params2
    assert all(a is b for a, b in zip([p for g in opt2.param_groups for p in g["params"]], params2))
    assert set(param_ptrs(model2)).isdisjoint(param_ptrs(model))
    # stepping the copy moves the copy's params only
    original = [p.detach().clone() for p in model.parameters()]
    train(model2, opt2, batches[3:4], start=3)
    assert all(torch.equal(a, p) for a, p in zip(original, model.parameters()))
    assert not torch.equal(original[2], model2.fc.weight)
    # and the original and the copy, given the same steps, stay equal
    train(model, opt, batches[3:4], start=3)
    train(model, opt, batches[4:], start=4)
    train(model2, opt2, batches[4:], start=4)
    for p, q in zip(model.parameters(), model2.parameters()):
        assert torch.equal(p, q)
    for p, q in zip(model.parameters(), model2.parameters()):
        for key, value in opt.state[p].items():
            assert torch.equal(opt2.state[q][key], value), key


@pytest.mark.parametrize("name", TWIN_NAMES)
def test_two_groups_with_different_lr(name, tdtype):
    ref_model, cand_model = make_models()
    kwargs = RICH_CONFIG[name]

    def groups(m):
        return [{"params": m.conv.parameters(), "lr": kwargs["lr"] * 3},
                {"params": [m.fc.weight, m.fc.bias, m.scale, m.side.weight, m.side.bias]}]

    ref_opt = getattr(torch.optim, name)(groups(ref_model), **kwargs)
    cand_opt = getattr(fot, name)(groups(cand_model), **kwargs)
    batches = make_batches(8)
    train(ref_model, ref_opt, batches)
    train(cand_model, cand_opt, batches)
    assert_training_matches(cand_model, cand_opt, ref_model, ref_opt, tol(name, tdtype))
    assert_same_state_dict_format(cand_opt.state_dict(), ref_opt.state_dict())
    assert cand_opt.state_dict()["param_groups"][1]["params"] == [2, 3, 4, 5, 6]


# == 6. errors: raised before anything changes =============================================================

def snapshot(opt):
    params = [p for g in opt.param_groups for p in g["params"]]
    return dict(
        values=[p.detach().clone() for p in params],
        meta=[(p.dtype, p.shape, p.stride(), p.device, p.data_ptr()) for p in params],
        grads=[None if p.grad is None else p.grad.clone() for p in params],
        state=copy.deepcopy(opt.state_dict()),
        groups=len(opt.param_groups),
    )


def _same_nested(a, b):
    if isinstance(a, dict):
        return isinstance(b, dict) and set(a) == set(b) and all(_same_nested(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(_same_nested, a, b))
    if torch.is_tensor(a):
        if not (torch.is_tensor(b) and a.dtype == b.dtype and a.shape == b.shape and a.layout == b.layout):
            return False
        if a.device.type == "meta":
            return True
        return torch.equal(a.to_dense(), b.to_dense()) if a.is_sparse else torch.equal(a, b)
    return a == b


def assert_unchanged(before, opt):
    after = snapshot(opt)
    assert after["groups"] == before["groups"], "param_groups changed"
    assert after["meta"] == before["meta"], "params' dtype/shape/layout/memory changed"
    for i, (a, b) in enumerate(zip(after["values"], before["values"])):
        assert a.device.type == "meta" or torch.equal(a, b), f"params[{i}] changed"
    for i, (a, b) in enumerate(zip(after["grads"], before["grads"])):
        assert (a is None) == (b is None) and (a is None or _same_nested(a, b)), f"grad of params[{i}] changed"
    assert _same_nested(after["state"], before["state"]), "state changed"


def assert_rejected(opt, exc_type, *patterns):
    """``opt.step()`` raises exc_type whose message matches every pattern; nothing changed."""
    before = snapshot(opt)
    with pytest.raises(exc_type) as info:
        opt.step()
    message = str(info.value)
    for pattern in patterns:
        assert re.search(pattern, message), f"{message!r} does not match {pattern!r}"
    assert_unchanged(before, opt)


def rejected_at_construction_or_step(make, exc_type, *patterns):
    """Either ``make()`` raises, or the first step does (and changes nothing)."""
    try:
        opt = make()
    except exc_type as exc:
        for pattern in patterns:
            assert re.search(pattern, str(exc)), f"{str(exc)!r} does not match {pattern!r}"
        return None
    assert_rejected(opt, exc_type, *patterns)
    return opt


def trained(name="Adam", steps=3):
    """A candidate model and optimizer after a few steps, grads of the last step kept (state everywhere)."""
    _, model = make_models()
    opt = getattr(fot, name)(model.parameters(), **RICH_CONFIG.get(name, dict(lr=0.05)))
    batches = make_batches(steps + 1)
    train(model, opt, batches[:steps], start=2)
    opt.zero_grad()
    loss_at(model, batches[steps], 2).backward()
    assert all(p.grad is not None for p in model.parameters())
    return model, opt


FLAG_CASES = [pytest.param(name, flag, id=f"{name}-{flag}") for name in TWIN_NAMES for flag in FLAGS
              if flag in inspect.signature(getattr(torch.optim, name)).parameters]


@pytest.mark.parametrize("name, flag", FLAG_CASES)
def test_differentiable_and_capturable_rejected(name, flag):
    with pytest.raises(ValueError, match=flag):
        getattr(fot, name)(Net().parameters(), **{flag: True})
    # False (torch's default) is accepted
    getattr(fot, name)(Net().parameters(), **{flag: False})


@pytest.mark.parametrize("name", TWIN_NAMES + ["Momentum"])
def test_param_not_on_cpu_rejected_at_construction_or_step(name):
    model = Net()
    meta = nn.Parameter(torch.randn(4, 5, device="meta"))
    meta.grad = torch.randn(4, 5, device="meta")
    loss_at(model, make_batches(1)[0], 2).backward()
    groups = [{"params": [model.conv.weight, model.conv.bias]},
              {"params": [model.fc.weight, meta, model.fc.bias]}]
    rejected_at_construction_or_step(lambda: getattr(fot, name)(groups), ValueError,
                                     r"params\[3\]", "CPU")


@pytest.mark.parametrize("name", TWIN_NAMES + ["Momentum"])
def test_param_not_on_cpu_added_mid_run_rejected(name):
    model, opt = trained(name)
    meta = nn.Parameter(torch.randn(4, 5, device="meta"))
    meta.grad = torch.randn(4, 5, device="meta")
    before = snapshot(opt)
    try:
        opt.add_param_group({"params": [meta]})
    except ValueError as exc:
        assert re.search(r"params\[7\]", str(exc)) and "CPU" in str(exc), str(exc)
        assert_unchanged(before, opt)
        return
    assert_rejected(opt, ValueError, r"params\[7\]", "CPU")


UNSUPPORTED = [torch.complex64, torch.float8_e5m2]


@pytest.mark.parametrize("dtype", UNSUPPORTED, ids=["complex64", "float8_e5m2"])
@pytest.mark.parametrize("name", TWIN_NAMES + ["Momentum"])
def test_unsupported_dtype_at_construction_or_step(name, dtype):
    good = nn.Parameter(torch.randn(3, 4))
    bad = nn.Parameter(torch.randn(5).to(dtype), requires_grad=dtype.is_complex)
    good.grad, bad.grad = torch.randn(3, 4), torch.randn(5).to(dtype)
    dtype_name = "complex" if dtype.is_complex else str(dtype).removeprefix("torch.")
    rejected_at_construction_or_step(lambda: getattr(fot, name)([good, bad]), TypeError,
                                     r"params\[1\]", dtype_name)


@pytest.mark.parametrize("name", TWIN_NAMES + ["Momentum"])
def test_model_half_after_construction_keeps_training(name):
    """model.half() after state was made: the state follows the params' new dtype (as on load), and
    the steps go on in float16."""
    model, opt = trained(name)
    model.half()  # params and grads in float16; the state follows at the next step
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.01)
    before = [p.detach().clone() for p in model.parameters()]
    opt.step()
    assert any(not torch.equal(a, p.detach()) for a, p in zip(before, model.parameters()))
    for p in model.parameters():
        for key, value in opt.state[p].items():
            assert value.dtype in (torch.float16, torch.float32), (key, value.dtype)
            if value.dim():
                assert value.dtype == torch.float16


@pytest.mark.parametrize("dtype", UNSUPPORTED, ids=["complex64", "float8_e5m2"])
@pytest.mark.parametrize("name", TWIN_NAMES + ["Momentum"])
def test_param_data_changed_to_unsupported_dtype_rejected(name, dtype):
    model, opt = trained(name)
    p = model.fc.bias  # params 0-3 come first, with grads and state
    p.data = p.data.to(dtype)
    p.grad = p.grad.to(dtype)
    dtype_name = "complex" if dtype.is_complex else str(dtype).removeprefix("torch.")
    assert_rejected(opt, TypeError, rf"params\[{FC_BIAS}\]", dtype_name)


class SparseNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.emb = nn.Embedding(10, 3, sparse=True)
        self.out = nn.Linear(3, 2)

    def forward(self, x, idx=None):
        h = self.fc(x)
        if idx is not None:
            h = h + self.emb(idx)
        return self.out(h)


@pytest.mark.parametrize("name", TWIN_NAMES + ["Momentum"])
def test_sparse_gradient_rejected(name):
    torch.manual_seed(0)
    model = SparseNet()
    opt = getattr(fot, name)(model.parameters(), **RICH_CONFIG.get(name, dict(lr=0.05)))
    x, idx = torch.randn(6, 4), torch.tensor([1, 2, 3, 1, 5, 9])
    for _ in range(2):  # the embedding is unused: state for the other params
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()
    opt.zero_grad()
    model(x, idx).pow(2).sum().backward()
    assert model.emb.weight.grad.is_sparse
    assert_rejected(opt, ValueError, r"params\[2\]", "sparse")
    # the optimizer is still usable once the sparse gradient is gone
    model.emb.weight.grad = None
    before = model.out.weight.detach().clone()
    opt.step()
    assert not torch.equal(before, model.out.weight)


def fresh(name="Adam"):
    """A candidate model and a new optimizer (no state yet), every param with a gradient."""
    _, model = make_models()
    opt = getattr(fot, name)(model.parameters(), **RICH_CONFIG.get(name, dict(lr=0.05)))
    loss_at(model, make_batches(1)[0], 2).backward()
    assert all(p.grad is not None for p in model.parameters())
    return model, opt


MISMATCH_CASES = [pytest.param(name, stage, id=f"{name}-{stage}") for name in TWIN_NAMES + ["Momentum"]
                  for stage in ("fresh", "trained")]


@pytest.mark.parametrize("name, stage", MISMATCH_CASES)
def test_gradient_shape_mismatch_rejected(name, stage):
    """side.weight's data gets another shape than its grad: before its first step (no state: only the
    gradient check can tell) or after a few (state of the old shape)."""
    model, opt = fresh(name) if stage == "fresh" else trained(name)
    model.side.weight.data = torch.randn(10, 4)
    assert model.side.weight.grad.shape == (10, 3)
    assert_rejected(opt, (ValueError, TypeError), rf"params\[{SIDE_WEIGHT}\]")


@pytest.mark.parametrize("name, stage", MISMATCH_CASES)
def test_gradient_dtype_mismatch_rejected(name, stage):
    model, opt = fresh(name) if stage == "fresh" else trained(name)
    model.side.weight.data = model.side.weight.data.double()  # the grad stays float32
    assert model.side.weight.grad.dtype == torch.float32
    assert_rejected(opt, (ValueError, TypeError), rf"params\[{SIDE_WEIGHT}\]")


# == 7. the autograd version counter =======================================================================

VERSION_CASES = [pytest.param(name, impl, id=f"{name}-{impl}") for name in TWIN_NAMES + ["Momentum"]
                 for impl in ("torch.optim", "fastopt.torch") if name in TWIN_NAMES or impl == "fastopt.torch"]


@pytest.mark.parametrize("name, impl", VERSION_CASES)
def test_step_between_forward_and_backward_raises_inplace(name, impl):
    """As with torch.optim (checked too: the premise), a step between forward and backward makes the
    backward raise, because the step bumps the params' version counters."""
    module = torch.optim if impl == "torch.optim" else fot
    _, model = make_models()
    opt = getattr(module, name)(model.parameters(), **RICH_CONFIG.get(name, dict(lr=0.05)))
    batch = make_batches(1)[0]
    loss_at(model, batch, 2).backward()  # grads present: the step below does update the params
    versions = [p._version for p in model.parameters()]
    out = loss_at(model, batch, 2)
    opt.step()
    assert all(p._version > v for p, v in zip(model.parameters(), versions)), "version counters not bumped"
    with pytest.raises(RuntimeError, match="inplace"):
        out.backward()
