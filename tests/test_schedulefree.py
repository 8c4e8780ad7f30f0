"""Schedule-free AdamW against NumPy transcriptions of its reference code (facebookresearch/schedule_free:
the step of ``schedulefree/adamw_schedulefree.py``, and the x/y/z form of
``schedulefree/adamw_schedulefree_reference.py``), its train/eval modes, and its group bookkeeping.
The registry row runs it through the common suites (parity, fuzz, formats, clipping, state_dict)."""
import copy

import numpy as np
import pytest

import fastopt
from fastopt.schedulefree import NOT_TRAINING

CONFIGS = {
    "default": dict(lr=0.01),
    "warmup-wd": dict(lr=0.05, warmup_steps=4, weight_decay=0.1),
    "weights": dict(lr=0.02, betas=(0.5, 0.99), r=1.0, weight_lr_power=1.0, eps=1e-6),
}


def reference_step_run(p0, grads, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, warmup_steps=0, r=0.0,
                       weight_lr_power=2.0):
    """The reference's ``step`` (its for-loop branch), line by line in float64: (y, z, bookkeeping)."""
    beta1, beta2 = betas
    y, z, v = p0.copy(), p0.copy(), np.zeros_like(p0)
    k, weight_sum, lr_max = 0, 0.0, -1.0
    for g in grads:
        sched = (k + 1) / warmup_steps if k < warmup_steps else 1.0
        bias_correction2 = 1 - beta2 ** (k + 1)
        lr_t = lr * sched
        lr_max = max(lr_t, lr_max)
        weight = ((k + 1) ** r) * (lr_max ** weight_lr_power)
        weight_sum = weight_sum + weight
        ckp1 = weight / weight_sum
        v = v * beta2 + (1 - beta2) * g * g
        grad_normalized = g / (np.sqrt(v / bias_correction2) + eps)
        if weight_decay != 0:
            grad_normalized = grad_normalized + weight_decay * y
        y = y + ckp1 * (z - y)
        y = y + lr_t * (beta1 * (1 - ckp1) - 1) * grad_normalized
        z = z - lr_t * grad_normalized
        k += 1
    return y, z, dict(k=k, weight_sum=weight_sum, lr_max=lr_max, scheduled_lr=lr_t)


@pytest.mark.parametrize("backend", ["cython", "numpy"])
@pytest.mark.parametrize("label", sorted(CONFIGS))
def test_step_matches_the_reference_step(label, backend):
    kwargs = CONFIGS[label]
    rng = np.random.default_rng(5)
    p0 = rng.standard_normal(50)
    grads = [rng.standard_normal(50) for _ in range(12)]
    y, z, book = reference_step_run(p0, grads, **kwargs)
    p = p0.copy()
    opt = fastopt.ScheduleFreeAdamW([p], backend=backend, **kwargs)
    for g in grads:
        opt.step([g])
    np.testing.assert_allclose(p, y, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(opt.state[0]["z"], z, rtol=1e-13, atol=1e-15)
    group = opt.param_groups[0]
    assert group["k"] == book["k"] and group["train_mode"] is True
    for key in ("weight_sum", "lr_max", "scheduled_lr"):
        assert group[key] == pytest.approx(book[key], rel=1e-15), key


def test_eval_gives_the_average_of_the_theory():
    """The x/y/z form (gradients at y): after eval() the parameters are x, the weighted average of the
    z iterates, and train() takes them back to y."""
    A = np.diag([1.0, 4.0, 0.25])
    b = np.array([1.0, -2.0, 0.5])
    lr, beta1, beta2, eps, steps = 0.05, 0.9, 0.999, 1e-8, 40
    x = y = z = np.array([2.0, 1.0, -1.0])
    v, weight_sum = np.zeros(3), 0.0
    for t in range(1, steps + 1):
        g = A @ y - b
        v = beta2 * v + (1 - beta2) * g * g
        z = z - lr * g / (np.sqrt(v / (1 - beta2 ** t)) + eps)
        weight_sum += lr ** 2
        c = lr ** 2 / weight_sum
        x = (1 - c) * x + c * z
        y = (1 - beta1) * z + beta1 * x
    p = np.array([2.0, 1.0, -1.0])
    opt = fastopt.ScheduleFreeAdamW([p], lr=lr)
    opt.train()
    for _ in range(steps):
        opt.step([A @ p - b])
    np.testing.assert_allclose(p, y, rtol=1e-12)
    opt.eval()
    np.testing.assert_allclose(p, x, rtol=1e-12)
    assert not np.allclose(x, y)  # the two points differ: eval() moved the parameters
    opt.train()
    np.testing.assert_allclose(p, y, rtol=1e-12)


def test_a_step_in_eval_mode_raises_and_changes_nothing():
    p = np.array([1.0, -1.0])
    opt = fastopt.ScheduleFreeAdamW([p], lr=0.1)
    opt.step([np.ones(2)])
    opt.eval()
    before = (p.copy(), copy.deepcopy(opt.state_dict()))
    with pytest.raises(RuntimeError, match="not in train mode when step is called"):
        opt.step([np.ones(2)])
    assert str(NOT_TRAINING).startswith("Optimizer was not in train mode")
    np.testing.assert_array_equal(p, before[0])
    assert opt.param_groups[0]["k"] == 1
    opt.eval()  # already in eval mode: nothing moves
    np.testing.assert_array_equal(p, before[0])
    opt.train()
    opt.step([np.ones(2)])
    assert opt.param_groups[0]["k"] == 2


def test_modes_before_the_first_step_only_flip_the_flag():
    p = np.array([1.0, -1.0])
    opt = fastopt.ScheduleFreeAdamW([p])
    assert opt.param_groups[0]["train_mode"] is True  # fastopt starts in train mode (see the class notes)
    opt.eval()
    opt.train()
    np.testing.assert_array_equal(p, [1.0, -1.0])
    assert opt.state == {} or all("z" not in s for s in opt.state.values())


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
def test_modes_in_every_format(dtype):
    """train()/eval() lerp in float32 for 16-bit params and round to nearest: eval() then train() comes
    back to y within the format's rounding."""
    if dtype == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        dtype = ml_dtypes.bfloat16
    p = np.linspace(-1, 1, 64).astype(dtype)
    opt = fastopt.ScheduleFreeAdamW([p], lr=0.05)
    for _ in range(5):
        opt.step([p.astype(np.float32).astype(dtype)])
    y = p.astype(np.float32)
    opt.eval()
    assert not np.array_equal(p.astype(np.float32), y)
    opt.train()
    spacing = np.abs(y) * (2.0 ** -7 if p.dtype != np.float32 else 2.0 ** -23) * 8 + 1e-6
    assert np.all(np.abs(p.astype(np.float32) - y) <= spacing)


@pytest.mark.parametrize("kind", ["float32", "split"])
def test_modes_move_the_masters(kind):
    """With float32 masters the mode switches interpolate the masters (in float32) and round the
    bfloat16 params from them; eval() then train() brings the masters back to y within float32
    rounding, and fastopt.torch does the same bits."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    p = np.linspace(-1, 1, 64).astype(ml_dtypes.bfloat16)
    opt = fastopt.ScheduleFreeAdamW([p], lr=0.05, master_weights=kind)
    grads = [np.linspace(0.5, -0.3, 64).astype(ml_dtypes.bfloat16) * (t + 1) for t in range(4)]
    for g in grads:
        opt.step([g])
    key = "master_param" if kind == "float32" else "param_lo"

    def master():
        if kind == "float32":
            return opt.state[0][key].copy()
        u = (p.view(np.uint16).astype(np.uint32) << 16) + opt.state[0][key].view(np.int16).astype(np.int32).view(np.uint32)
        return u.view(np.float32).copy()

    y = master()
    opt.eval()
    x = master()
    assert not np.array_equal(x, y)
    np.testing.assert_allclose(x, y + (1 - 1 / 0.9) * (opt.state[0]["z"] - y), rtol=1e-6, atol=1e-7)
    assert np.array_equal(p, x.astype(ml_dtypes.bfloat16)) or kind == "split"  # split: ties away from 0
    opt.train()
    np.testing.assert_allclose(master(), y, rtol=1e-6, atol=1e-7)
    torch = pytest.importorskip("torch")
    import fastopt.torch as fot
    w = torch.nn.Parameter(torch.linspace(-1, 1, 64).to(torch.bfloat16))
    topt = fot.ScheduleFreeAdamW([w], lr=0.05, master_weights=kind)
    for g in grads:
        w.grad = torch.from_numpy(g.astype(np.float32)).to(torch.bfloat16)
        topt.step()
    topt.eval()
    opt.eval()
    assert np.array_equal(w.detach().view(torch.int16).numpy(), p.view(np.int16))


def test_bookkeeping_survives_a_state_dict_round_trip():
    rng = np.random.default_rng(2)
    grads = [rng.standard_normal(5) for _ in range(8)]
    p, q = np.ones(5), np.ones(5)
    a = fastopt.ScheduleFreeAdamW([p], lr=0.1, warmup_steps=3)
    for g in grads[:4]:
        a.step([g])
    b = fastopt.ScheduleFreeAdamW([q], lr=0.1, warmup_steps=3)
    q[...] = p
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    assert b.param_groups[0]["k"] == 4
    for g in grads[4:]:
        a.step([g])
        b.step([g])
    np.testing.assert_array_equal(p, q)


def test_torch_face_matches_the_numpy_face_and_lerps_as_torch():
    torch = pytest.importorskip("torch")
    import fastopt.torch as fot

    rng = np.random.default_rng(3)
    p0 = rng.standard_normal(40)
    grads = [rng.standard_normal(40) for _ in range(10)]
    p = p0.copy()
    numpy_opt = fastopt.ScheduleFreeAdamW([p], lr=0.02, warmup_steps=3, weight_decay=0.1)
    w = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    torch_opt = fot.ScheduleFreeAdamW([w], lr=0.02, warmup_steps=3, weight_decay=0.1)
    torch_opt.train()
    for g in grads:
        numpy_opt.step([g])
        w.grad = torch.from_numpy(g.copy())
        torch_opt.step()
    np.testing.assert_array_equal(w.detach().numpy(), p)  # the same kernel: the same bits
    np.testing.assert_array_equal(torch_opt.state[w]["z"].numpy(), numpy_opt.state[0]["z"])
    group = torch_opt.param_groups[0]
    assert group["k"] == 10 and group["weight_sum"] == numpy_opt.param_groups[0]["weight_sum"]
    torch_opt.eval()
    numpy_opt.eval()
    np.testing.assert_allclose(w.detach().numpy(), p, rtol=1e-15, atol=1e-16)  # torch's lerp_ fuses
    with pytest.raises(RuntimeError, match="not in train mode"):
        torch_opt.step()
    saved = torch_opt.state_dict()
    assert {"k", "train_mode", "weight_sum", "lr_max", "scheduled_lr"} <= set(saved["param_groups"][0])


def test_torch_face_matches_the_reference_package():
    """Against the reference package itself, where installed (``pip install schedulefree``): a small
    model trained 15 steps in float64."""
    torch = pytest.importorskip("torch")
    schedulefree = pytest.importorskip("schedulefree")
    import fastopt.torch as fot

    for kwargs in CONFIGS.values():
        torch.manual_seed(0)
        ref_model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).double()
        model = copy.deepcopy(ref_model)
        ref = schedulefree.AdamWScheduleFree(ref_model.parameters(), foreach=False, **kwargs)
        ours = fot.ScheduleFreeAdamW(model.parameters(), **kwargs)
        ref.train()
        ours.train()
        x, target = torch.randn(32, 8, dtype=torch.float64), torch.randint(0, 3, (32,))
        for _ in range(15):
            for m, opt in ((ref_model, ref), (model, ours)):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(m(x), target).backward()
                opt.step()
        ref.eval()
        ours.eval()
        for a, b in zip(model.parameters(), ref_model.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
        for key in ("k", "weight_sum", "lr_max", "scheduled_lr", "train_mode"):
            assert ours.param_groups[0][key] == ref.param_groups[0][key], key


def test_a_parameter_added_mid_run_joins_the_groups_schedule():
    """As in the reference: the group's step count and averaging weights apply to a parameter added to
    a stepped group (its z starts at its value), so it steps as the group's t-th step, not a first one."""
    a, c = np.ones(3), np.full(3, 2.0)
    opt = fastopt.ScheduleFreeAdamW([a], lr=0.1, warmup_steps=10)
    for _ in range(3):
        opt.step([np.ones(3)])
    opt.param_groups[0]["params"].append(c)
    opt.step([np.ones(3), np.full(3, 0.5)])
    # step 4 of the group: lr 0.1 * 4/10, weights lr_max^2 for lr_max = 0.01, 0.02, 0.03, 0.04
    weights = [(0.1 * t / 10) ** 2 for t in range(1, 5)]
    ckp1, lr = weights[-1] / sum(weights), 0.04
    u = 0.5 / (np.sqrt(((1 - 0.999) * 0.25) / (1 - 0.999 ** 4)) + 1e-8)
    np.testing.assert_allclose(c, 2.0 + lr * (0.9 * (1 - ckp1) - 1) * u, rtol=1e-14)
    np.testing.assert_allclose(opt.state[1]["z"], 2.0 - lr * u, rtol=1e-14)
