"""LAMB against a NumPy transcription of its reference (timm's ``Lamb``), and its two-pass reduction.

The reference step below is timm/optim/lamb.py's ``step`` (timm 1.0) line by line in NumPy, without the
global gradient clipping timm applies by default (fastopt clips only when ``max_grad_norm`` is set) and
with a per-parameter step count (timm's is per group: the same while every parameter has a gradient).
"""
import math

import numpy as np
import pytest

import fastopt
from fastopt import kernels, reference

BACKENDS = ["cython", "numpy"]


def timm_lamb_step(params, grads, state, lr=1e-3, bias_correction=True, betas=(0.9, 0.999), eps=1e-6,
                   weight_decay=0.01, grad_averaging=True, trust_clip=False, always_adapt=False):
    """timm's Lamb.step for one group, in float64 NumPy (torch ops replaced one for one)."""
    beta1, beta2 = betas
    beta3 = 1 - beta1 if grad_averaging else 1.0
    state["step"] = state.get("step", 0) + 1
    if bias_correction:
        bias_correction1 = 1 - beta1 ** state["step"]
        bias_correction2 = 1 - beta2 ** state["step"]
    else:
        bias_correction1, bias_correction2 = 1.0, 1.0
    for k, (p, grad) in enumerate(zip(params, grads)):
        exp_avg, exp_avg_sq = state.setdefault(k, (np.zeros_like(p), np.zeros_like(p)))
        exp_avg[...] = exp_avg * beta1 + beta3 * grad                      # mul_(beta1).add_(grad, alpha=beta3)
        exp_avg_sq[...] = exp_avg_sq * beta2 + (1 - beta2) * grad * grad   # mul_(beta2).addcmul_(...)
        denom = np.sqrt(exp_avg_sq) / math.sqrt(bias_correction2) + eps
        update = (exp_avg / bias_correction1) / denom
        if weight_decay != 0:
            update = update + weight_decay * p
        if weight_decay != 0 or always_adapt:
            w_norm = np.linalg.norm(p)
            g_norm = np.linalg.norm(update)
            trust_ratio = w_norm / g_norm if w_norm > 0 and g_norm > 0 else 1.0
            if trust_clip:
                trust_ratio = min(trust_ratio, 1.0)
            update = update * trust_ratio
        p[...] = p - lr * update


CONFIGS = {
    "default": dict(lr=0.01),
    "no_decay": dict(lr=0.01, weight_decay=0.0),
    "always_adapt": dict(lr=0.01, weight_decay=0.0, always_adapt=True),
    "trust_clip": dict(lr=0.02, weight_decay=0.1, trust_clip=True),
    "options": dict(lr=0.005, weight_decay=0.05, bias_correction=False, grad_averaging=False, betas=(0.5, 0.9),
                    eps=1e-4),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("config", CONFIGS, ids=list(CONFIGS))
def test_matches_timm_reference(config, backend):
    """Ten steps of a three-tensor group (one of 9000 elements: three blocks of the kernel's sums) in
    float64 agree with timm's step to 1e-12."""
    kwargs = CONFIGS[config]
    rng = np.random.default_rng(3)
    shapes = [(9000,), (40, 3), (7,)]
    start = [rng.standard_normal(s) for s in shapes]
    ours = [x.copy() for x in start]
    theirs = [x.copy() for x in start]
    opt = fastopt.LAMB(ours, backend=backend, **kwargs)
    ref_state = {}
    for _ in range(10):
        grads = [rng.standard_normal(s) for s in shapes]
        opt.step(grads)
        timm_lamb_step(theirs, grads, ref_state, **kwargs)
    for k, (a, b) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=f"param {k}")
        np.testing.assert_allclose(opt.state[k]["exp_avg"], ref_state[k][0], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(opt.state[k]["exp_avg_sq"], ref_state[k][1], rtol=1e-12, atol=1e-15)
    assert not np.allclose(ours[0], start[0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_norms_give_ratio_one(backend):
    """A zero parameter (or a zero update) leaves the ratio at 1, as timm's ``torch.where``: the step is
    lr times u, not 0 or NaN."""
    p = np.zeros(5)
    opt = fastopt.LAMB([p], lr=0.1, weight_decay=0.1, backend=backend)
    opt.step([np.ones(5)])
    np.testing.assert_allclose(p, -0.1 / (1 + 1e-6), rtol=1e-15)  # u = 1/(1 + eps): Adam's first step
    q = np.full(3, 2.0)
    opt = fastopt.LAMB([q], lr=0.1, weight_decay=0.0, always_adapt=True, backend=backend)
    opt.step([np.zeros(3)])  # m = v = 0: u = 0, the ratio's 1 moves nothing
    np.testing.assert_array_equal(q, 2.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nonfinite_gradient_makes_the_ratio_one_as_timm(backend):
    """A NaN or inf gradient element makes ||u|| NaN: the ratio falls back to 1 (timm's ``torch.where``
    on ``norm > 0``), the bad elements turn NaN/inf, the others take that step and stay finite."""
    rng = np.random.default_rng(11)
    start = rng.standard_normal(50)
    ours, theirs = start.copy(), start.copy()
    opt = fastopt.LAMB([ours], lr=0.01, backend=backend)
    ref_state = {}
    for step in range(3):
        g = rng.standard_normal(50)
        if step == 0:
            g[[3, 17]] = [np.nan, np.inf]
        with np.errstate(all="ignore"):
            opt.step([g.copy()])
            timm_lamb_step([theirs], [g], ref_state, lr=0.01)
    good = np.isfinite(theirs)
    assert good.sum() == 48 and np.array_equal(good, np.isfinite(ours))
    np.testing.assert_allclose(ours[good], theirs[good], rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_norms_are_the_same_for_any_thread_count(dtype):
    """The sums are per block of 4096 elements in fixed lanes: 1 and 2 threads, the kernel and its twin,
    give the same bits on tensors of many blocks, and tensors after others (items padded to a block)."""
    rng = np.random.default_rng(5)
    sizes = [300_007, 4097, 1, 50_000]
    start = [rng.standard_normal(n).astype(dtype) for n in sizes]
    grads = [[rng.standard_normal(n).astype(dtype) for n in sizes] for _ in range(3)]
    kwargs = dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-6, weight_decay=0.01, bias_correction=True,
                  grad_averaging=True, always_adapt=False, trust_clip=False, maximize=False)
    results = []
    for module, threads in ((kernels, 1), (kernels, 2), (reference, 1)):
        params = [x.copy() for x in start]
        steps = [np.zeros(1, dtype) for _ in sizes]
        m = [np.zeros_like(x) for x in start]
        v = [np.zeros_like(x) for x in start]
        for g in grads:
            module.lamb_group(params, g, steps, m, v, n_threads=threads, **kwargs)
        results.append(params + m + v)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_norm_is_exact_in_double_for_float32():
    """The twin's norm (the kernel's order of sums) agrees with a float64 norm to rounding: the squares
    of float32 values are exact in double."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(123_457).astype(np.float32)
    from fastopt.reference.adam import _norm
    assert _norm(x) == pytest.approx(float(np.linalg.norm(x.astype(np.float64))), rel=1e-14)
    assert _norm(np.zeros(0, np.float32)) == 0.0
    assert math.isnan(_norm(np.array([1.0, np.nan])))


def test_first_pass_writes_nothing_when_the_second_is_refused():
    """A step checks everything before either pass: a bad state entry leaves every array as it was."""
    p = np.ones(10_000, np.float32)
    opt = fastopt.LAMB([p], lr=0.1)
    opt.step([np.ones(10_000, np.float32)])
    before = (p.copy(), {k: np.array(v, copy=True) for k, v in opt.state[0].items()})
    opt.state[0]["exp_avg_sq"] = np.zeros(9_999, np.float32)
    with pytest.raises(ValueError, match="exp_avg_sq"):
        opt.step([np.ones(10_000, np.float32)])
    np.testing.assert_array_equal(p, before[0])
    np.testing.assert_array_equal(opt.state[0]["exp_avg"], before[1]["exp_avg"])
    np.testing.assert_array_equal(opt.state[0]["step"], before[1]["step"])


def test_torch_face_matches_numpy_face():
    torch = pytest.importorskip("torch")
    import fastopt.torch as fotorch

    gen = torch.Generator().manual_seed(0)
    w = torch.randn(64, 33, generator=gen)
    grads = [torch.randn(64, 33, generator=gen) for _ in range(4)]
    tw = torch.nn.Parameter(w.clone())
    topt = fotorch.LAMB([tw], lr=0.01, trust_clip=True)
    nw = w.numpy().copy()
    nopt = fastopt.LAMB([nw], lr=0.01, trust_clip=True)
    for g in grads:
        tw.grad = g.clone()
        topt.step()
        nopt.step([g.numpy().copy()])
    np.testing.assert_array_equal(tw.detach().numpy(), nw)
    assert set(topt.state[tw]) == {"step", "exp_avg", "exp_avg_sq"}
