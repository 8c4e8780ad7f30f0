"""Bad input: a clear ValueError/TypeError naming the parameter and what was expected, raised before
any buffer is touched (a rejected step or load changes nothing)."""
import copy

import numpy as np
import pytest
from _helpers import CASES, make_grads, make_params

import fastopt

try:
    import torch
except ImportError:  # the messages are still checked against the table below
    torch = None

# (optimizer, bad keyword arguments, torch's message)
BAD_HYPERPARAMETERS = [
    (name, {"lr": -1.0}, "Invalid learning rate: -1.0")
    for name in ["SGD", "Adam", "AdamW", "Adamax", "NAdam", "Adagrad", "Adadelta", "RMSprop", "Momentum", "RAdam",
                 "Rprop", "ASGD", "Lion", "LAMB", "ScheduleFreeAdamW"]
] + [
    (name, kw, msg) for name in ["Adam", "AdamW", "Adamax", "NAdam", "RAdam"] for kw, msg in [
        ({"eps": -1e-8}, "Invalid epsilon value: -1e-08"),
        ({"betas": (1.0, 0.999)}, "Invalid beta parameter at index 0: 1.0"),
        ({"betas": (0.9, -0.5)}, "Invalid beta parameter at index 1: -0.5"),
        ({"weight_decay": -0.1}, "Invalid weight_decay value: -0.1"),
    ]
] + [
    ("NAdam", {"momentum_decay": -1.0}, "Invalid momentum_decay value: -1.0"),
    ("SGD", {"momentum": -0.5}, "Invalid momentum value: -0.5"),
    ("SGD", {"weight_decay": -0.5}, "Invalid weight_decay value: -0.5"),
    ("SGD", {"nesterov": True}, "Nesterov momentum requires a momentum and zero dampening"),
    ("SGD", {"nesterov": True, "momentum": 0.9, "dampening": 0.1},
     "Nesterov momentum requires a momentum and zero dampening"),
    ("Adagrad", {"lr_decay": -1.0}, "Invalid lr_decay value: -1.0"),
    ("Adagrad", {"initial_accumulator_value": -1.0}, "Invalid initial_accumulator_value value: -1.0"),
    ("Adagrad", {"eps": -1.0}, "Invalid epsilon value: -1.0"),
    ("Adagrad", {"weight_decay": -1.0}, "Invalid weight_decay value: -1.0"),
    ("Adadelta", {"rho": 1.5}, "Invalid rho value: 1.5"),
    ("Adadelta", {"rho": -0.1}, "Invalid rho value: -0.1"),
    ("Adadelta", {"eps": -1.0}, "Invalid epsilon value: -1.0"),
    ("RMSprop", {"alpha": -0.1}, "Invalid alpha value: -0.1"),
    ("RMSprop", {"momentum": -0.1}, "Invalid momentum value: -0.1"),
    ("RMSprop", {"eps": -1.0}, "Invalid epsilon value: -1.0"),
    ("RMSprop", {"weight_decay": -1.0}, "Invalid weight_decay value: -1.0"),
    ("Rprop", {"etas": (1.0, 0.5)}, "Invalid eta values: 1.0, 0.5"),
    ("Rprop", {"etas": (0.5, 1.0)}, "Invalid eta values: 0.5, 1.0"),
    ("Rprop", {"etas": (0.0, 1.2)}, "Invalid eta values: 0.0, 1.2"),
    ("ASGD", {"weight_decay": -0.5}, "Invalid weight_decay value: -0.5"),
    ("Lion", {"betas": (1.0, 0.99)}, "Invalid beta parameter at index 0: 1.0"),
    ("Lion", {"betas": (0.9, -0.5)}, "Invalid beta parameter at index 1: -0.5"),
    ("Lion", {"weight_decay": -0.1}, "Invalid weight_decay value: -0.1"),
    ("LAMB", {"betas": (0.9, 1.0)}, "Invalid beta parameter at index 1: 1.0"),
    ("LAMB", {"eps": -1.0}, "Invalid epsilon value: -1.0"),
    ("LAMB", {"weight_decay": -0.1}, "Invalid weight_decay value: -0.1"),
    ("Momentum", {"beta": 1.0}, "Invalid beta value: 1.0"),
    ("Momentum", {"beta": -0.1}, "Invalid beta value: -0.1"),
]


@pytest.mark.parametrize(("name", "kwargs", "message"), BAD_HYPERPARAMETERS,
                         ids=[f"{n}-{'-'.join(k)}" for n, k, _ in BAD_HYPERPARAMETERS])
def test_bad_hyperparameters_raise_torchs_message(name, kwargs, message):
    with pytest.raises(ValueError) as ours:
        getattr(fastopt, name)([np.zeros(3)], **kwargs)
    assert str(ours.value) == message
    if torch is not None and hasattr(torch.optim, name):
        with pytest.raises(ValueError) as theirs:
            getattr(torch.optim, name)([torch.zeros(3, requires_grad=True)], **kwargs)
        assert str(theirs.value) == message


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_hyperparameter_in_a_group_is_rejected(case):
    with pytest.raises(ValueError, match="Invalid learning rate"):
        case.cls([{"params": [np.zeros(2)]}, {"params": [np.zeros(2)], "lr": float("nan")}])


@pytest.mark.parametrize("value", ["0.1", None, [0.1], True])
def test_non_numeric_hyperparameter_is_a_type_error(value):
    with pytest.raises(TypeError, match="lr must be a real number"):
        fastopt.Adam([np.zeros(2)], lr=value)


@pytest.mark.parametrize("flag", ["capturable", "differentiable"])
def test_unsupported_torch_flags(flag):
    with pytest.raises(ValueError, match=f"{flag}=True is not supported"):
        fastopt.Adam([np.zeros(2)], **{flag: True})


def test_unknown_backend():
    with pytest.raises(ValueError, match="backend must be one of"):
        fastopt.SGD([np.zeros(2)], backend="fortran")


# -- parameters --------------------------------------------------------------------------------------


def test_params_must_be_a_list_not_an_array():
    with pytest.raises(TypeError, match="iterable of arrays or dicts, but got ndarray"):
        fastopt.Adam(np.zeros(3))


def test_empty_parameter_list():
    with pytest.raises(ValueError, match="optimizer got an empty parameter list"):
        fastopt.Adam([])


@pytest.mark.parametrize(("param", "error", "match"), [
    ([1.0, 2.0], TypeError, r"can only optimize NumPy arrays, but params\[1\] is builtins.list"),
    (np.zeros(3, np.int64), TypeError, r"params\[1\] has dtype int64, expected float32, float64, bfloat16 \(ml_dtypes\) or float16"),
    (np.zeros(3, np.complex128), TypeError, r"params\[1\] has dtype complex128, expected float32, float64, bfloat16"),
    (np.zeros(3, np.uint16), TypeError, r"params\[1\] has dtype uint16, expected float32, float64, bfloat16"),
    (np.zeros(3, ">f8"), TypeError, r"params\[1\] has dtype >f8, expected float32, float64, bfloat16"),
    (np.zeros((4, 4))[:, 1], ValueError, r"params\[1\] must be C-contiguous"),
    (np.zeros((4, 4)).T, ValueError, r"params\[1\] must be C-contiguous"),
], ids=["list", "int", "complex", "uint16", "big-endian", "strided", "fortran"])
def test_bad_parameters(param, error, match):
    with pytest.raises(error, match=match):
        fastopt.Adam([np.zeros(2), param])


def test_read_only_parameter():
    p = np.zeros(3)
    p.flags.writeable = False
    with pytest.raises(ValueError, match=r"params\[0\] is read-only"):
        fastopt.SGD([p])


def test_parameter_in_two_groups():
    p = np.zeros(3)
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
        fastopt.Adam([{"params": [p]}, {"params": [p]}])
    opt = fastopt.Adam([p])
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [p]})
    assert len(opt.param_groups) == 1


def test_group_params_as_a_set():
    with pytest.raises(TypeError, match="ordered collections"):
        fastopt.Adam([{"params": {1}}])


# -- steps --------------------------------------------------------------------------------------------


def snapshot(params, opt):
    return [p.copy() for p in params], copy.deepcopy(opt.state)


def assert_unchanged(params, opt, before):
    old_params, old_state = before
    for p, q in zip(params, old_params):
        np.testing.assert_array_equal(p, q)
    assert opt.state.keys() == old_state.keys()
    for i, state in opt.state.items():
        assert state.keys() == old_state[i].keys()
        for key in state:
            np.testing.assert_array_equal(state[key], old_state[i][key])


SHAPES = [(3,), (2, 2), (5,)]


def bad_grads(kind, dtype):
    grads = make_grads(SHAPES, dtype, steps=1, seed=7)[0]
    # the bad entry is the last one: a lazy check would already have updated params 0 and 1
    if kind == "count":
        return grads[:2], ValueError, "expected 3 gradients .* got 2"
    if kind == "shape":
        grads[2] = grads[2].reshape(5, 1)
        return grads, ValueError, r"grads\[2\] has shape \(5, 1\), expected \(5,\) \(the shape of params\[2\]\)"
    if kind == "dtype":
        other = np.float32 if np.dtype(dtype) == np.float64 else np.float64
        grads[2] = grads[2].astype(other)
        return grads, TypeError, rf"grads\[2\] has dtype {np.dtype(other)}, expected {np.dtype(dtype)}"
    if kind == "int":
        grads[2] = np.ones(5, np.int32)
        return grads, TypeError, r"grads\[2\] has dtype int32"
    if kind == "float16":
        grads[2] = grads[2].astype(np.float16)
        return grads, TypeError, r"grads\[2\] has dtype float16"
    if kind == "strided":
        grads[2] = np.repeat(grads[2], 2)[::2]
        return grads, ValueError, r"grads\[2\] must be C-contiguous"
    if kind == "misaligned":  # C-contiguous, at an odd byte offset: ascontiguousarray would return it as is
        raw = np.zeros(grads[2].nbytes + 1, np.uint8)[1:].view(grads[2].dtype)
        raw[...] = grads[2]
        grads[2] = raw
        assert grads[2].flags.c_contiguous and not grads[2].flags.aligned
        return grads, ValueError, r"grads\[2\] is not aligned .* np.require\(g, requirements='CA'\)"
    if kind == "list":
        grads[2] = [0.0] * 5
        return grads, TypeError, r"grads\[2\] must be a numpy.ndarray or None, got list"
    if kind == "array":
        return np.zeros(3), TypeError, "grads must be a list"
    raise AssertionError(kind)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("kind", ["count", "shape", "dtype", "int", "float16", "strided", "misaligned", "list",
                                  "array"])
def test_rejected_step_changes_nothing(case, kind, dtype):
    params = make_params(SHAPES, dtype)
    opt = case.cls(params, **next(iter(case.configs.values())))
    opt.step(make_grads(SHAPES, dtype, steps=1, seed=3)[0])  # state exists, counters at 1
    before = snapshot(params, opt)
    grads, error, match = bad_grads(kind, dtype)
    with pytest.raises(error, match=match):
        opt.step(grads)
    assert_unchanged(params, opt, before)


def test_the_misaligned_gradient_remedy_works(dtype):
    """The message's remedies (a copy, np.require(g, requirements='CA')) make a gradient the step takes;
    np.ascontiguousarray does not (it returns the misaligned array itself)."""
    params = make_params(SHAPES, dtype)
    opt = fastopt.Adam(params)
    grads, _, _ = bad_grads("misaligned", dtype)
    assert np.ascontiguousarray(grads[2]) is grads[2]
    for remedy in (grads[2].copy(), np.require(grads[2], requirements="CA")):
        assert remedy.flags.aligned
        opt.step(grads[:2] + [remedy])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_hyperparameter_broken_between_steps_is_caught_before_the_step(case):
    params = make_params(SHAPES, np.float64)
    opt = case.cls([{"params": params[:2]}, {"params": params[2:]}])
    opt.step(make_grads(SHAPES, np.float64, steps=1)[0])
    before = snapshot(params, opt)
    opt.param_groups[1]["lr"] = -0.5
    with pytest.raises(ValueError, match="Invalid learning rate: -0.5"):
        opt.step(make_grads(SHAPES, np.float64, steps=1)[0])
    assert_unchanged(params, opt, before)


# -- state dicts --------------------------------------------------------------------------------------


def stepped_adam():
    params = make_params(SHAPES, np.float64)
    opt = fastopt.Adam([{"params": params[:2]}, {"params": params[2:], "lr": 0.1}], amsgrad=True)
    opt.step(make_grads(SHAPES, np.float64, steps=1)[0])
    return params, opt


@pytest.mark.parametrize(("mutate", "error", "match"), [
    (lambda sd: sd["param_groups"].pop(), ValueError, "different number of parameter groups"),
    (lambda sd: sd["param_groups"][0]["params"].pop(), ValueError, "doesn't match the size of optimizer's group"),
    (lambda sd: sd["state"][1].__setitem__("exp_avg", np.zeros(3)), ValueError,
     r"state of params\[1\]: 'exp_avg' has shape \(3,\), expected \(2, 2\)"),
    (lambda sd: sd["state"][2].pop("exp_avg_sq"), ValueError, r"state of params\[2\] has no 'exp_avg_sq'"),
    (lambda sd: sd["state"][0].__setitem__("step", np.zeros(2)), ValueError, r"'step' must be a scalar"),
    (lambda sd: sd["state"][0].__setitem__("exp_avg", "abc"), TypeError, r"'exp_avg' is not a numeric array"),
    (lambda sd: sd["state"].__setitem__(9, {}), ValueError, "no parameter group lists"),
    (lambda sd: sd["param_groups"][1].__setitem__("lr", -1.0), ValueError, "Invalid learning rate: -1.0"),
    (lambda sd: sd.pop("state"), TypeError, "'state' and 'param_groups'"),
], ids=["groups", "group-size", "shape", "missing-key", "step-shape", "non-numeric", "unknown-id",
        "bad-lr", "not-a-state-dict"])
def test_rejected_load_changes_nothing(mutate, error, match):
    params, opt = stepped_adam()
    sd = copy.deepcopy(opt.state_dict())
    opt.step(make_grads(SHAPES, np.float64, steps=1, seed=5)[0])
    before = snapshot(params, opt)
    groups_before = copy.deepcopy(opt.param_groups)
    mutate(sd)
    with pytest.raises(error, match=match):
        opt.load_state_dict(sd)
    assert_unchanged(params, opt, before)
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == \
        [{k: v for k, v in g.items() if k != "params"} for g in groups_before]


@pytest.mark.parametrize("backend", ["kernels", "reference"])
def test_kernels_check_buffer_sizes_and_dtypes(backend):
    """The compiled kernels are public too, and run with bounds checks off: they refuse buffers that do
    not fit, as their NumPy twins do; the group kernels check every tensor before writing any."""
    ops = getattr(fastopt, backend)
    hyper = dict(lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, maximize=False,
                 decoupled_weight_decay=False)
    p, st, m, v = np.zeros(4), np.zeros(1), np.zeros(4), np.zeros(4)
    with pytest.raises(ValueError, match="grad has 3 elements, expected 4"):
        ops.adam(p, np.zeros(3), st, m, v, **hyper)
    with pytest.raises((TypeError, ValueError), match="dtype"):
        ops.adam(p, np.zeros(4, np.float32), st, m, v, **hyper)
    params = [np.zeros(4), np.zeros(2)]
    steps, ms, vs = [np.zeros(()), np.zeros(())], [np.zeros(4), np.zeros(2)], [np.zeros(4), np.zeros(2)]
    for grads, error, match in [
        ([np.ones(4), np.ones(3)], ValueError, r"grads\[1\] has 3 elements, expected 2"),
        ([np.ones(4), np.ones(2, np.float32)], TypeError, r"grads\[1\] has dtype float32, expected float64"),
        ([np.ones(4), [1.0, 1.0]], TypeError, r"grads\[1\] must be a numpy.ndarray"),
        ([np.ones(4)], ValueError, "grads has 1 entries, expected 2"),
    ]:
        with pytest.raises(error, match=match):
            ops.adam_group(params, grads, steps, ms, vs, None, **hyper)
        assert float(steps[0]) == 0 and not ms[0].any()  # tensor 0 was not touched
    ro = np.zeros(2)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"exp_avgs\[1\] is read-only"):
        ops.adam_group(params, [np.ones(4), np.ones(2)], steps, [ms[0], ro], vs, None, **hyper)
