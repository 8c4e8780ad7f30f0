"""state_dict / load_state_dict in torch's structure, pickling, param groups and their live edits."""
import copy
import pickle

import numpy as np
import pytest
from _helpers import CONFIGS, make_grads, make_params

import fastopt

SHAPES = [(3,), (2, 4), (), (5,)]


@pytest.mark.parametrize(("case", "label", "kwargs"), CONFIGS)
def test_round_trip_through_pickle_continues_identically(case, label, kwargs, dtype):
    grads = make_grads(SHAPES, dtype, steps=8, skip={(0, 3), (1, 3), (4, 0)})
    params = make_params(SHAPES, dtype)
    opt = case.cls([{"params": params[:2]}, {"params": params[2:]}], **kwargs)
    for g in grads[:4]:
        opt.step(g)
    saved = pickle.loads(pickle.dumps(opt.state_dict()))
    resumed_params = [p.copy() for p in params]
    resumed = case.cls([{"params": resumed_params[:2]}, {"params": resumed_params[2:]}], lr=123.0)
    resumed.load_state_dict(saved)
    assert resumed.param_groups[0]["lr"] == opt.param_groups[0]["lr"]  # hyperparameters come back
    for g in grads[4:]:
        opt.step(g)
        resumed.step(g)
    for a, b in zip(params, resumed_params):
        np.testing.assert_array_equal(a, b)
    for i in opt.state:
        for key in opt.state[i]:
            np.testing.assert_array_equal(opt.state[i][key], resumed.state[i][key])


def test_structure_matches_torch():
    params = make_params(SHAPES, np.float32)
    opt = fastopt.Adam([{"params": params[:2]}, {"params": params[2:], "lr": 0.1}], amsgrad=True)
    opt.step([np.ones(s, np.float32) for s in SHAPES[:3]] + [None])
    sd = opt.state_dict()
    assert list(sd) == ["state", "param_groups"]
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2, 3]]
    assert sd["param_groups"][1]["lr"] == 0.1 and sd["param_groups"][0]["betas"] == (0.9, 0.999)
    assert list(sd["param_groups"][0])[-1] == "params"
    assert sorted(sd["state"]) == [0, 1, 2]  # params[3] never had a gradient: no entry
    assert list(sd["state"][1]) == ["step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
    step = sd["state"][1]["step"]
    assert isinstance(step, np.ndarray) and step.shape == () and step.dtype == np.float32 and step == 1
    assert sd["state"][1]["exp_avg"].shape == (2, 4)
    # as in torch, the arrays are the live state, not copies
    assert sd["state"][0]["exp_avg"] is opt.state[0]["exp_avg"]


def test_load_casts_state_to_the_parameters_dtype():
    p32 = make_params([(6,)], np.float32)
    opt32 = fastopt.NAdam(p32)
    opt32.step([np.ones(6, np.float32)])
    p64 = [p32[0].astype(np.float64)]
    opt64 = fastopt.NAdam(p64)
    opt64.load_state_dict(opt32.state_dict())
    assert all(v.dtype == np.float64 for v in opt64.state[0].values())
    assert opt64.state[0]["mu_product"].shape == ()
    assert opt64.state[0]["exp_avg"] is not opt32.state[0]["exp_avg"]  # loading copies
    opt64.step([np.ones(6)])
    assert float(opt64.state[0]["step"]) == 2.0


def test_sgd_without_momentum_has_no_state_and_adagrad_has_state_from_the_start():
    p = make_params([(3,)], np.float64)
    sgd = fastopt.SGD(p, lr=0.1)
    sgd.step([np.ones(3)])
    assert sgd.state_dict()["state"] == {}
    ada = fastopt.Adagrad([{"params": [np.zeros(2)]}, {"params": [np.zeros(3)], "initial_accumulator_value": 0.5}],
                          initial_accumulator_value=0.1)
    state = ada.state_dict()["state"]
    assert float(state[0]["step"]) == 0.0
    np.testing.assert_array_equal(state[0]["sum"], [0.1, 0.1])
    np.testing.assert_array_equal(state[1]["sum"], [0.5, 0.5, 0.5])  # the group's own value


def test_lr_change_takes_effect_at_the_next_step():
    p = np.zeros(3)
    opt = fastopt.SGD([p], lr=0.1)
    g = np.array([1.0, 2.0, 3.0])
    opt.step([g])
    opt.param_groups[0]["lr"] = 0.01
    opt.step([g])
    np.testing.assert_allclose(p, -0.11 * g, rtol=1e-15)


def test_add_param_group_fills_defaults_and_steps_in_order():
    a, b = np.zeros(2), np.zeros(3)
    opt = fastopt.SGD([a], lr=0.1, momentum=0.5)
    opt.add_param_group({"params": b, "lr": 1.0})
    assert opt.param_groups[1]["momentum"] == 0.5 and opt.param_groups[1]["lr"] == 1.0
    opt.step([np.ones(2), np.ones(3)])
    np.testing.assert_allclose(a, -0.1)
    np.testing.assert_allclose(b, -1.0)


def test_skipped_parameter_keeps_its_own_step_count():
    a, b = np.zeros(2), np.zeros(2)
    opt = fastopt.Adam([a, b])
    opt.step([np.ones(2), None])
    opt.step([np.ones(2), np.ones(2)])
    opt.step([np.ones(2), None])
    assert float(opt.state[0]["step"]) == 3 and float(opt.state[1]["step"]) == 1
    # b's single step is Adam's first step: -lr * g / (|g| + eps)
    np.testing.assert_allclose(b, -1e-3 / (1 + 1e-8), rtol=1e-12)


@pytest.mark.parametrize("case", fastopt._registry.CASES, ids=lambda c: c.name)
def test_optimizer_pickles_and_deepcopies_with_its_params(case):
    params = make_params(SHAPES, np.float64)
    initial = [p.copy() for p in params]
    opt = case.cls(params, **next(iter(case.configs.values())))
    grads = make_grads(SHAPES, np.float64, steps=3)
    opt.step(grads[0])
    for clone_params, clone in [pickle.loads(pickle.dumps((params, opt))), copy.deepcopy((params, opt))]:
        assert clone.backend == opt.backend
        for g in grads[1:]:
            clone.step(g)
        assert clone_params[0] is clone.param_groups[0]["params"][0]  # the clone trains its own copies
        reference = [p.copy() for p in initial]
        ref_opt = case.cls(reference, **next(iter(case.configs.values())))
        for g in grads:
            ref_opt.step(g)
        for x, y in zip(clone_params, reference):
            np.testing.assert_array_equal(x, y)


def test_zero_size_and_0d_parameters():
    empty, scalar = np.zeros((0, 3)), np.array(2.0)
    opt = fastopt.Adam([empty, scalar], lr=0.1)
    opt.step([np.zeros((0, 3)), np.float64(4.0)])  # a NumPy scalar is a 0-d gradient
    assert empty.shape == (0, 3) and float(opt.state[0]["step"]) == 1
    np.testing.assert_allclose(scalar, 2.0 - 0.1 * 4.0 / (4.0 + 1e-8), rtol=1e-12)


def test_loads_torch_state_dict_with_tensor_hyperparameters():
    """torch's state_dicts may carry a tensor ``lr`` and tensor ``betas`` (torch accepts them): the NumPy
    optimizers load them as Python floats and continue torch's trajectory."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    start = rng.standard_normal(6).astype(np.float32)
    grads = [rng.standard_normal(6).astype(np.float32) for _ in range(6)]
    tp = torch.nn.Parameter(torch.from_numpy(start.copy()))
    topt = torch.optim.Adam([tp], lr=torch.tensor(0.05), betas=(torch.tensor(0.8), torch.tensor(0.99)))
    for g in grads[:3]:
        tp.grad = torch.from_numpy(g.copy())
        topt.step()
    param = tp.detach().numpy().copy()
    opt = fastopt.Adam([param], lr=0.5)
    opt.load_state_dict(topt.state_dict())
    group = opt.param_groups[0]
    assert type(group["lr"]) is float and group["lr"] == pytest.approx(0.05)
    assert all(type(b) is float for b in group["betas"]) and group["betas"][0] == pytest.approx(0.8)
    for g in grads[3:]:
        tp.grad = torch.from_numpy(g.copy())
        topt.step()
        opt.step([g])
    np.testing.assert_allclose(param, tp.detach().numpy(), rtol=1e-5, atol=1e-6)
