"""fastopt.torch's 16-bit parameters against torch.optim (fused=True, and the for-loop where torch's fused
kernel is broken) and against fastopt's NumPy classes, with and without the precision options."""
import copy

import numpy as np
import pytest

import fastopt

ml_dtypes = pytest.importorskip("ml_dtypes")
torch = pytest.importorskip("torch")
import fastopt.torch as fotorch  # noqa: E402

ULP = {"bfloat16": 2.0 ** -7, "float16": 2.0 ** -10}  # the spacing of [1, 2)


def bits(a):
    return np.ascontiguousarray(a).reshape(-1).view(np.uint16 if a.dtype.itemsize == 2 else np.uint8)


# -- fastopt.torch against torch.optim ---------------------------------------------------------------

TORCH_HALF = [pytest.param(torch.bfloat16, id="bfloat16"), pytest.param(torch.float16, id="float16")]
FUSED = [("Adam", {}), ("Adam", {"amsgrad": True, "weight_decay": 0.1, "maximize": True}),
         ("AdamW", {"weight_decay": 0.1}), ("Adagrad", {}), ("Adagrad", {"lr_decay": 0.01, "weight_decay": 0.1})]


def _torch_run(cls, dtype, steps, n=20_011, **kwargs):
    gen = torch.Generator().manual_seed(0)
    p = torch.randn(n, generator=gen).to(dtype).requires_grad_()
    opt = cls([p], **{"lr": 0.01, **kwargs})
    for _ in range(steps):
        p.grad = (0.1 * torch.randn(n, generator=gen)).to(dtype)
        opt.step()
    return p.detach(), opt


def _ulps(a, b, dtype, n=20_011):
    """|a - b| in units of the 16-bit format's spacing at the larger of b and the parameter before the
    step (where a step cancels a parameter to near 0, float32's rounding of the step shows at b's
    scale)."""
    start = torch.randn(n, generator=torch.Generator().manual_seed(0)).to(dtype)
    a, b = a.double(), b.double()
    scale = torch.maximum(b.abs(), start.double().abs()).clamp_min(1e-30)
    spacing = torch.exp2(torch.floor(torch.log2(scale))) * ULP[str(dtype).split(".")[1]]
    return ((a - b).abs() / spacing).max().item()


@pytest.mark.parametrize("dtype", TORCH_HALF)
@pytest.mark.parametrize(("name", "kwargs"), FUSED, ids=[f"{n}-{i}" for i, (n, _) in enumerate(FUSED)])
def test_torch_fused_bits(name, kwargs, dtype):
    """fastopt.torch against torch.optim(fused=True) on 16-bit params: at least 99.9% of parameters
    bit-identical after 20 steps, state in the param's dtype; one step from the same state within one
    ulp (torch's vectorized exp_avg update is a fused multiply-add that fastopt keeps as two roundings)."""
    ours, opt = _torch_run(getattr(fotorch, name), dtype, 20, **kwargs)
    theirs, ref = _torch_run(getattr(torch.optim, name), dtype, 20, fused=True, **kwargs)
    same = (ours.view(torch.int16) == theirs.view(torch.int16)).double().mean().item()
    assert same >= 0.999, same
    for key, value in opt.state[opt.param_groups[0]["params"][0]].items():
        other = ref.state[ref.param_groups[0]["params"][0]][key]
        assert value.dtype == other.dtype and value.shape == other.shape, key
    one, _ = _torch_run(getattr(fotorch, name), dtype, 1, **kwargs)
    two, _ = _torch_run(getattr(torch.optim, name), dtype, 1, fused=True, **kwargs)
    assert _ulps(one, two, dtype) <= 1.0


@pytest.mark.parametrize("dtype", TORCH_HALF)
def test_torch_sgd_16bit_follows_torch_for_loop(dtype):
    """torch 2.13's fused SGD on 16-bit CPU params does not update them in its vectorized loop (see
    docs/precision.md); fastopt.torch.SGD follows torch's for-loop SGD within its per-operation rounding:
    one step within one ulp of it."""
    for kwargs in ({"momentum": 0.9}, {"momentum": 0.9, "nesterov": True, "weight_decay": 0.01}, {}):
        ours, _ = _torch_run(fotorch.SGD, dtype, 1, **kwargs)
        theirs, _ = _torch_run(torch.optim.SGD, dtype, 1, foreach=False, **kwargs)
        assert _ulps(ours, theirs, dtype) <= 1.0
        assert (ours.view(torch.int16) == theirs.view(torch.int16)).double().mean().item() >= 0.9


@pytest.mark.parametrize("dtype", TORCH_HALF)
@pytest.mark.parametrize("name", ["Adam", "SGD", "Adagrad", "RMSprop", "NAdam", "Adadelta", "Adamax", "RAdam",
                                  "Rprop", "ASGD", "Lion", "LAMB", "ScheduleFreeAdamW"])
def test_torch_face_matches_numpy_face(name, dtype):
    """fastopt.torch and fastopt's NumPy classes run the same kernels: the same bits."""
    kwargs = {"momentum": 0.9} if name == "SGD" else {}
    p, _ = _torch_run(getattr(fotorch, name), dtype, 4, n=3001, **kwargs)
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(3001, generator=gen).to(dtype)
    as_numpy = fotorch._flat(start).copy()
    opt = getattr(fastopt, name)([as_numpy], lr=0.01, **kwargs)
    for _ in range(4):
        opt.step([fotorch._flat((0.1 * torch.randn(3001, generator=gen)).to(dtype)).copy()])
    np.testing.assert_array_equal(bits(fotorch._flat(p)), bits(as_numpy))


@pytest.mark.parametrize("options", [{"master_weights": "split"}, {"master_weights": "float32"},
                                     {"rounding": "stochastic", "seed": 2}, {"state_dtype": "float32"},
                                     {"master_weights": "float32", "rounding": "stochastic", "seed": 9}],
                         ids=["split", "float32-master", "stochastic", "float32-state", "master-stochastic"])
@pytest.mark.parametrize("name", ["AdamW", "SGD", "RMSprop"])
def test_torch_face_precision_options_match_numpy_face(name, options):
    """The options on fastopt.torch: the same bits as the NumPy class, state in torch's dtypes."""
    kwargs = {"momentum": 0.9} if name == "SGD" else {}
    gen = torch.Generator().manual_seed(0)
    p = torch.randn(3001, generator=gen).to(torch.bfloat16).requires_grad_()
    start = fotorch._flat(p.detach()).copy()
    grads = [(0.1 * torch.randn(3001, generator=gen)).to(torch.bfloat16) for _ in range(4)]
    opt = getattr(fotorch, name)([p], lr=0.01, **kwargs, **options)
    for g in grads:
        p.grad = g
        opt.step()
    twin = getattr(fastopt, name)([start], lr=0.01, **kwargs, **options)
    for g in grads:
        twin.step([fotorch._flat(g).copy()])
    np.testing.assert_array_equal(bits(fotorch._flat(p.detach())), bits(start))
    for key, value in opt.state[p].items():
        mine = twin.state[0][key]
        assert str(value.dtype).split(".")[1] == mine.dtype.name, key
        np.testing.assert_array_equal(fotorch._flat(value.reshape(-1)).view(np.uint8), mine.reshape(-1).view(np.uint8))


def test_torch_face_rejects_options_that_do_not_fit():
    p = torch.zeros(3, requires_grad=True)
    p.grad = torch.ones(3)
    opt = fotorch.Adam([p], master_weights="split")
    with pytest.raises(ValueError, match=r"master_weights='split' is for bfloat16 parameters, not params\[0\]"):
        opt.step()
    assert torch.equal(p.detach(), torch.zeros(3)) and not opt.state[p]
    with pytest.raises(ValueError, match="rounding must be"):
        fotorch.SGD([p], rounding="down")


@pytest.mark.parametrize(("dtype", "state_dtype"), [(torch.float32, "q8"), (torch.bfloat16, "q4"),
                                                    (torch.float16, {"exp_avg": "q8", "exp_avg_sq": "q4"})])
def test_torch_face_quantized_state(dtype, state_dtype):
    """q8/q4 state in fastopt.torch: the NumPy class's bits, a torch.save/torch.load round trip that
    resumes exactly, and a model.to(dtype) after it (the state follows, dequantized and requantized)."""
    from fastopt._kernels._runtime import Quantized

    gen = torch.Generator().manual_seed(0)
    p = torch.randn(64, 100, generator=gen).to(dtype).requires_grad_()
    start = fotorch._flat(p.detach()).copy()
    grads = [(0.1 * torch.randn(64, 100, generator=gen)).to(dtype) for _ in range(4)]
    opt = fotorch.AdamW([p], lr=0.01, state_dtype=state_dtype)
    twin = fastopt.AdamW([start], lr=0.01, state_dtype=state_dtype)
    for g in grads:
        p.grad = g
        opt.step()
        twin.step([fotorch._flat(g).copy()])
    np.testing.assert_array_equal(bits(fotorch._flat(p.detach())), bits(start))
    for key in ("exp_avg", "exp_avg_sq"):
        mine, theirs = opt.state[p][key], twin.state[0][key]
        assert isinstance(mine, Quantized)
        np.testing.assert_array_equal(mine.codes, theirs.codes)
        np.testing.assert_array_equal(mine.absmax, theirs.absmax)
    import io
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    q = p.detach().clone().requires_grad_()
    resumed = fotorch.AdamW([q], lr=0.01, state_dtype=state_dtype)
    resumed.load_state_dict(torch.load(buffer, weights_only=False))
    p.grad, q.grad = grads[0], grads[0].clone()
    opt.step()
    resumed.step()
    assert torch.equal(p, q)
    plain = fotorch.AdamW([p], lr=0.01)
    plain.load_state_dict(opt.state_dict())  # quantized state into a plain optimizer: dequantized
    plain.step()
    assert plain.state[p]["exp_avg"].dtype == dtype and torch.is_tensor(plain.state[p]["exp_avg"])


def test_torch_face_16bit_state_loads_into_torch_optim_and_back():
    """bfloat16 state from fastopt.torch.AdamW loads into torch.optim.AdamW(fused=True) and back; the
    next steps of both stay within the fused-kernel agreement of test_torch_fused_bits."""
    gen = torch.Generator().manual_seed(3)
    p = torch.randn(5000, generator=gen).to(torch.bfloat16).requires_grad_()
    ours = fotorch.AdamW([p], lr=0.01)
    for _ in range(3):
        p.grad = (0.1 * torch.randn(5000, generator=gen)).to(torch.bfloat16)
        ours.step()
    q = p.detach().clone().requires_grad_()
    theirs = torch.optim.AdamW([q], lr=0.01, fused=True)
    theirs.load_state_dict(copy.deepcopy(ours.state_dict()))  # (torch keeps same-dtype tensors as given)
    theirs.param_groups[0]["fused"] = True  # (the loaded group says None: torch's for-loop)
    assert theirs.state[q]["exp_avg"].dtype == torch.bfloat16
    g = (0.1 * torch.randn(5000, generator=gen)).to(torch.bfloat16)
    p.grad, q.grad = g, g.clone()
    ours.step()
    theirs.step()
    assert (p.view(torch.int16) == q.view(torch.int16)).double().mean().item() >= 0.999
    back = fotorch.AdamW([q], lr=0.01)
    back.load_state_dict(copy.deepcopy(theirs.state_dict()))
    q.grad = g.clone()
    back.step()
    assert back.state[q]["exp_avg"].dtype == torch.bfloat16 and float(back.state[q]["step"]) == 5.0


@pytest.mark.parametrize(("name", "kwargs"), [("RMSprop", {"lr": 0.01}),
                                              ("RMSprop", {"lr": 0.01, "centered": True, "momentum": 0.9}),
                                              ("Adadelta", {"lr": 1.0}), ("Adamax", {"lr": 0.01}),
                                              ("NAdam", {"lr": 0.01}), ("RAdam", {"lr": 0.01}),
                                              ("RAdam", {"lr": 0.01, "betas": (0.5, 0.6)}),
                                              ("Rprop", {"lr": 0.01}), ("ASGD", {"lr": 0.01, "t0": 0})])
def test_rules_without_a_fused_torch_kernel_follow_torchs_for_loop(name, kwargs):
    """The rules torch has no fused kernel for, on bfloat16: one step from the same state within 4 ulps
    of torch's for-loop, which rounds to bfloat16 after every operation (fastopt once, at the store;
    torch's own bits also vary with the CPU's vector instructions: 3 ulps here, 4 on a CPU without AVX).
    (In float16 torch's for-loop meets eps rounded to float16, 0 for RMSprop's 1e-8, and divides 0 by
    0 where a squared gradient underflows; fastopt's float32 math does not.)"""
    ours = _torch_run(getattr(fotorch, name), torch.bfloat16, 1, **kwargs)[0]
    theirs = _torch_run(getattr(torch.optim, name), torch.bfloat16, 1, foreach=False, **kwargs)[0]
    assert _ulps(ours, theirs, torch.bfloat16) <= 4.0
    assert (ours.view(torch.int16) == theirs.view(torch.int16)).double().mean().item() >= 0.75
