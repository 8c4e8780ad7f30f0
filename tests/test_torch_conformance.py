"""Conformance with torch.optim: every registry row that names a torch class, every config, both dtypes.

fastopt and torch run side by side on the same parameters and gradients (mixed shapes including 0-d,
with gradients missing on some steps), and every parameter and every state buffer is compared after
every step. float64 runs torch with float64 as its default dtype, so that torch's ``step`` and NAdam's
``mu_product`` are float64 like fastopt's.
"""
import numpy as np
import pytest

from _helpers import CONFIGS, make_grads, make_params, ulp_tolerance
from fastopt._registry import BY_NAME, CASES

torch = pytest.importorskip("torch")

SHAPES = [(), (1,), (3,), (17,), (4, 5), (2, 3, 4), (1000,)]
STEPS = 30
# param 2 gets its first gradient at step 5; param 4 is skipped on a middle step; param 6 misses two
# steps; param 0 misses the last one.
SKIP = {(t, 2) for t in range(5)} | {(15, 4), (10, 6), (11, 6), (STEPS - 1, 0)}

TORCH_CONFIGS = [p for p in CONFIGS if p.values[0].torch is not None]
TORCH_CASES = [pytest.param(case, id=case.name) for case in CASES if case.torch is not None]


@pytest.fixture
def torch_dtype(dtype):
    """torch's default dtype set to the parameters' dtype for the test, restored afterwards."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64 if np.dtype(dtype) == np.float64 else torch.float32)
    try:
        yield dtype
    finally:
        torch.set_default_dtype(previous)


# -- running both sides ------------------------------------------------------------------------------

def torch_params(params):
    return [torch.from_numpy(p.copy()).requires_grad_(True) for p in params]


def torch_step(opt, tparams, grads):
    for tp, g in zip(tparams, grads):
        tp.grad = None if g is None else torch.from_numpy(g.copy())
    opt.step()


def flat_torch_params(groups):
    """The torch tensors of a list of params or param-group dicts, in global order."""
    if isinstance(groups[0], dict):
        return [p for g in groups for p in g["params"]]
    return list(groups)


def to_torch_groups(groups):
    """fastopt-style groups (dicts with NumPy params) -> the same groups over torch tensors."""
    return [{**g, "params": torch_params(g["params"])} for g in groups]


def tolerance(dtype, expected):
    tol = dict(ulp_tolerance(dtype))
    scale = float(np.max(np.abs(expected))) if np.size(expected) and np.all(np.isfinite(expected)) else 1.0
    tol["atol"] *= max(1.0, scale)
    return tol


def assert_matches(fast_opt, fast_params, torch_opt, tparams, dtype, where):
    """Every parameter and every state buffer of fastopt equals torch's (within the dtype's tolerance)."""
    for i, (p, tp) in enumerate(zip(fast_params, tparams)):
        expected = tp.detach().numpy()
        assert p.dtype == expected.dtype and p.shape == expected.shape
        np.testing.assert_allclose(p, expected, **tolerance(dtype, expected), err_msg=f"{where}: param {i}")
    torch_indices = {i for i, tp in enumerate(tparams) if tp in torch_opt.state}
    assert set(fast_opt.state) == torch_indices, f"{where}: params with state differ"
    for i in sorted(torch_indices):
        tstate = torch_opt.state[tparams[i]]
        fstate = fast_opt.state[i]
        assert set(fstate) == set(tstate), f"{where}: state keys of param {i}"
        for key, tvalue in tstate.items():
            expected = tvalue.detach().numpy() if torch.is_tensor(tvalue) else np.asarray(tvalue)
            actual = fstate[key]
            assert isinstance(actual, np.ndarray), f"{where}: state[{i}][{key!r}] is {type(actual)}"
            assert actual.dtype == fast_params[i].dtype, f"{where}: dtype of state[{i}][{key!r}]"
            assert actual.shape == expected.shape, f"{where}: shape of state[{i}][{key!r}]"
            np.testing.assert_allclose(actual, expected, **tolerance(dtype, expected),
                                       err_msg=f"{where}: state[{i}][{key!r}]")
        if "step" in tstate:
            assert float(fstate["step"]) == float(tstate["step"]), f"{where}: step of param {i}"


def run_both(case, fast_params, torch_groups, fast_groups, kwargs, grads, dtype, *, torch_kwargs=None,
             before_step=None):
    fast = case.cls(fast_groups, **kwargs)
    topt = getattr(torch.optim, case.torch)(torch_groups, **(kwargs if torch_kwargs is None else torch_kwargs))
    tparams = flat_torch_params(torch_groups)
    for t, step_grads in enumerate(grads):
        if before_step is not None:
            before_step(t, fast, topt)
        fast.step(step_grads)
        torch_step(topt, tparams, step_grads)
        assert_matches(fast, fast_params, topt, tparams, dtype, f"step {t + 1}")
    return fast, topt, tparams


# -- trajectories --------------------------------------------------------------------------------------

@pytest.mark.parametrize("case, label, kwargs", TORCH_CONFIGS)
def test_trajectory_matches_torch(case, label, kwargs, torch_dtype):
    dtype = torch_dtype
    params = make_params(SHAPES, dtype)
    grads = make_grads(SHAPES, dtype, STEPS, skip=SKIP)
    tparams = torch_params(params)
    fast, topt, _ = run_both(case, params, tparams, params, kwargs, grads, dtype)
    # the trajectory moved the parameters (a no-op optimizer would match a no-op torch nowhere)
    assert not np.allclose(params[-1], make_params(SHAPES, dtype)[-1])
    # the late parameter counted only the steps it had a gradient for
    if "step" in fast.state.get(2, {}):
        assert float(fast.state[2]["step"]) == STEPS - 5


PER_GROUP = {
    "SGD": (dict(lr=0.05, momentum=0.9, nesterov=True),
            dict(lr=0.02, momentum=0.5, dampening=0.2, weight_decay=0.1, maximize=True)),
    "Adam": (dict(lr=0.01),
             dict(lr=0.003, betas=(0.8, 0.99), amsgrad=True, weight_decay=0.1, eps=1e-6)),
    "AdamW": (dict(lr=0.01, weight_decay=0.02),
              dict(lr=0.003, weight_decay=0.1, amsgrad=True, maximize=True)),
    "Adamax": (dict(lr=0.01), dict(lr=0.02, betas=(0.5, 0.9), weight_decay=0.1, eps=1e-3)),
    "NAdam": (dict(lr=0.01),
              dict(lr=0.005, momentum_decay=0.01, decoupled_weight_decay=True, weight_decay=0.1)),
    # torch ignores a per-group initial_accumulator_value: only the constructor's is used, on both sides
    "Adagrad": (dict(lr=0.05), dict(lr=0.1, lr_decay=0.05, eps=1e-6, weight_decay=0.1)),
    "Adadelta": (dict(), dict(lr=0.5, rho=0.5, eps=1e-4, maximize=True)),
    "RMSprop": (dict(lr=0.01, centered=True), dict(lr=0.005, momentum=0.5, alpha=0.9, weight_decay=0.1)),
    "RAdam": (dict(lr=0.01), dict(lr=0.003, betas=(0.8, 0.99), weight_decay=0.1, decoupled_weight_decay=True)),
    "Rprop": (dict(lr=0.01), dict(lr=0.05, etas=(0.3, 1.5), step_sizes=(1e-4, 0.2), maximize=True)),
    "ASGD": (dict(lr=0.01, t0=4), dict(lr=0.02, lambd=0.05, alpha=0.5, t0=2, weight_decay=0.1)),
}
GROUP_CONSTRUCTOR = {"Adagrad": dict(initial_accumulator_value=0.1)}


def test_per_group_table_covers_every_torch_row():
    assert set(PER_GROUP) == {case.name for case in CASES if case.torch is not None}


@pytest.mark.parametrize("case", TORCH_CASES)
def test_param_groups_match_torch(case, torch_dtype):
    dtype = torch_dtype
    params = make_params(SHAPES, dtype)
    grads = make_grads(SHAPES, dtype, STEPS, skip=SKIP)
    first, second = PER_GROUP[case.name]
    fast_groups = [{"params": params[:4], **first}, {"params": params[4:], **second}]
    torch_groups = to_torch_groups(fast_groups)
    kwargs = GROUP_CONSTRUCTOR.get(case.name, {})
    fast, topt, _ = run_both(case, params, torch_groups, fast_groups, kwargs, grads, dtype)
    for fgroup, tgroup in zip(fast.param_groups, topt.param_groups):
        assert {k: v for k, v in fgroup.items() if k != "params"} == \
               {k: v for k, v in tgroup.items() if k != "params"}


@pytest.mark.parametrize("case", TORCH_CASES)
def test_changing_lr_between_steps_matches_torch(case, torch_dtype):
    dtype = torch_dtype
    kwargs = next(iter(case.configs.values()))
    params = make_params(SHAPES, dtype)
    grads = make_grads(SHAPES, dtype, STEPS, skip=SKIP)
    schedule = {8: 0.25, 16: 3.0, 24: 0.0}  # step -> factor applied to the constructor's lr

    def set_lr(t, fast, topt):
        if t in schedule:
            base = kwargs.get("lr", case.cls(make_params([(1,)], dtype)).defaults["lr"])
            fast.param_groups[0]["lr"] = base * schedule[t]
            topt.param_groups[0]["lr"] = base * schedule[t]

    run_both(case, params, torch_params(params), params, kwargs, grads, dtype, before_step=set_lr)


def test_changing_lr_is_not_a_noop(dtype):
    """A guard for the test above: after the lr change the trajectory differs from the unchanged one."""
    case = BY_NAME["Adam"]
    params_a = make_params(SHAPES, dtype)
    params_b = make_params(SHAPES, dtype)
    grads = make_grads(SHAPES, dtype, 4)
    a, b = case.cls(params_a, lr=0.01), case.cls(params_b, lr=0.01)
    for t, g in enumerate(grads):
        if t == 2:
            b.param_groups[0]["lr"] = 0.05
        a.step(g)
        b.step(g)
    assert not np.allclose(params_a[-1], params_b[-1])


# -- torch's fused implementations (float32) -------------------------------------------------------

FUSED_CONFIGS = [p for p in TORCH_CONFIGS if p.values[0].name in ("SGD", "Adam", "AdamW", "Adagrad")]


@pytest.mark.parametrize("case, label, kwargs", FUSED_CONFIGS)
def test_trajectory_matches_torch_fused_float32(case, label, kwargs):
    dtype = np.float32
    params = make_params(SHAPES, dtype)
    # torch's fused SGD crashes when a parameter's first gradient arrives after the others have
    # momentum buffers, so SGD gets every gradient on every step
    skip = set() if case.name == "SGD" else SKIP
    grads = make_grads(SHAPES, dtype, STEPS, skip=skip)
    tparams = torch_params(params)
    try:
        getattr(torch.optim, case.torch)(torch_params(params), fused=True, **kwargs)
    except (RuntimeError, ValueError, TypeError) as exc:  # pragma: no cover - depends on torch
        pytest.skip(f"torch fused {case.torch} does not support {label}: {exc}")
    run_both(case, params, tparams, params, kwargs, grads, dtype,
             torch_kwargs=dict(kwargs, fused=True))


# -- state_dict ----------------------------------------------------------------------------------------

def _groups_without_params(state_dict):
    return [{k: v for k, v in g.items() if k != "params"} for g in state_dict["param_groups"]]


@pytest.mark.parametrize("case", TORCH_CASES)
def test_state_dict_param_groups_match_torch_default_construction(case):
    params = make_params(SHAPES, np.float32)
    fast = case.cls(params)
    topt = getattr(torch.optim, case.torch)(torch_params(params))
    fsd, tsd = fast.state_dict(), topt.state_dict()
    assert len(fsd["param_groups"]) == len(tsd["param_groups"]) == 1
    fg, tg = fsd["param_groups"][0], tsd["param_groups"][0]
    assert list(fg) == list(tg)  # same keys, in torch's order
    for key in tg:
        assert fg[key] == tg[key], key
        assert type(fg[key]) is type(tg[key]) or key == "params", key
    assert fg["params"] == tg["params"] == list(range(len(SHAPES)))


@pytest.mark.parametrize("case, label, kwargs", TORCH_CONFIGS)
def test_state_dict_param_groups_match_torch_configs_and_groups(case, label, kwargs):
    params = make_params(SHAPES, np.float32)
    groups = [{"params": params[:3]}, {"params": params[3:], "lr": 0.125}]
    fast = case.cls(groups, **kwargs)
    topt = getattr(torch.optim, case.torch)(to_torch_groups(groups), **kwargs)
    fsd, tsd = fast.state_dict(), topt.state_dict()
    assert _groups_without_params(fsd) == _groups_without_params(tsd)
    assert [g["params"] for g in fsd["param_groups"]] == [g["params"] for g in tsd["param_groups"]] \
        == [[0, 1, 2], [3, 4, 5, 6]]


@pytest.mark.parametrize("case, label, kwargs", TORCH_CONFIGS)
def test_state_dict_state_entries_match_torch(case, label, kwargs, torch_dtype):
    """Which params have a state entry, and its keys, as in torch's state_dict()["state"]."""
    dtype = torch_dtype
    params = make_params(SHAPES, dtype)
    grads = make_grads(SHAPES, dtype, 3, skip={(t, 2) for t in range(3)} | {(0, 5)})
    tparams = torch_params(params)
    fast, topt, _ = run_both(case, params, tparams, params, kwargs, grads, dtype)
    fstate, tstate = fast.state_dict()["state"], topt.state_dict()["state"]
    assert sorted(fstate) == sorted(tstate)
    for i in tstate:
        assert list(fstate[i]) == list(tstate[i]), f"state keys (and their order) of param {i}"


def _torch_state_dict_as_numpy(sd):
    """torch's live state_dict with every tensor as a NumPy *view* of torch's buffer (no copy)."""
    def convert(value):
        return value.detach().numpy() if torch.is_tensor(value) else value
    return {"state": {i: {k: convert(v) for k, v in s.items()} for i, s in sd["state"].items()},
            "param_groups": sd["param_groups"]}


LOAD_SKIP = SKIP | {(t, 3) for t in range(12)}  # param 3 has no state when the state is handed over


# numpy 2 warns that torch's Tensor.__array__ takes no ``copy`` keyword when fastopt copies a tensor
@pytest.mark.parametrize("as_tensors", [False, True], ids=["numpy", "tensors"])
@pytest.mark.parametrize("case, label, kwargs", TORCH_CONFIGS)
def test_loading_torch_state_dict_continues_torch_trajectory(case, label, kwargs, as_tensors, torch_dtype):
    dtype = torch_dtype
    split = 10
    params = make_params(SHAPES, dtype)
    grads = make_grads(SHAPES, dtype, STEPS, skip=LOAD_SKIP)
    tparams = torch_params(params)
    topt = getattr(torch.optim, case.torch)(tparams, **kwargs)
    for step_grads in grads[:split]:
        torch_step(topt, tparams, step_grads)
    # live torch buffers (tensors, or NumPy views of them): fastopt must copy what it loads, or torch
    # stepping on below would also move fastopt's state and the comparison would fail
    sd = topt.state_dict()
    sd = sd if as_tensors else _torch_state_dict_as_numpy(sd)
    # fastopt built with the defaults: the loaded param_groups must bring the config's hyperparameters
    fast_params = [tp.detach().numpy().copy() for tp in tparams]
    fast = case.cls(fast_params)
    fast.load_state_dict(sd)
    assert_matches(fast, fast_params, topt, tparams, dtype, "after load")
    for t, step_grads in enumerate(grads[split:], start=split):
        fast.step(step_grads)
        torch_step(topt, tparams, step_grads)
        assert_matches(fast, fast_params, topt, tparams, dtype, f"step {t + 1} (after load)")
