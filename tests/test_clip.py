"""Gradient clipping: the ``grad_norm`` kernel against its NumPy twin (bit for bit, any thread count),
its accuracy, ``clip_grad_norm_`` / ``clip_grad_value_`` / ``get_total_norm`` against torch.nn.utils,
the optimizers' fused ``max_grad_norm`` (bit-identical to clipping first, then stepping),
``skip_nonfinite``, and every argument check (a rejected call writes nothing)."""
import copy
import math

import numpy as np
import pytest
from _helpers import CONFIGS, DTYPES, make_grads, make_params

import fastopt
from fastopt import kernels, reference
from fastopt._registry import CASES

# the NumPy reference warns on NaN/inf arithmetic (the non-finite cases are the point here)
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

INF, NAN = math.inf, math.nan
NORM_TYPES = (1, 2, 3, 0.5, INF)


def bits(x):
    """A float's exact bits (every NaN counts as one value: its payload carries no meaning)."""
    x = float(x)
    return "nan" if math.isnan(x) else x.hex()


def mixed_grads(shapes, seed=0, scale=1.0):
    """float32/float64 alternating, values of varied magnitude."""
    rng = np.random.default_rng(seed)
    out = []
    for k, shape in enumerate(shapes):
        dtype = np.float32 if k % 2 == 0 else np.float64
        out.append(np.asarray(rng.standard_normal(shape) * scale * (1 + k), dtype=dtype))
    return out


def exact_norm(grads, p):
    """The p-norm of the concatenation, computed independently (double, NumPy)."""
    flat = np.concatenate([np.asarray(g, dtype=np.float64).reshape(-1) for g in grads if g is not None] + [np.zeros(0)])
    a = np.abs(flat)
    if p == INF:
        return float(a.max()) if a.size else 0.0
    if p == 1:
        return math.fsum(a)
    if p == 2:
        return math.sqrt(math.fsum(a * a))
    return math.fsum(a ** p) ** (1.0 / p)


# ---------------------------------------------------------------------------------------------------
# 1. grad_norm: kernel vs reference, bit for bit, for every thread count

BIG_SHAPES = [(), (0,), (1,), (17,), (4097,), (3, 5000), (70000,)]


@pytest.mark.parametrize("p", NORM_TYPES, ids=str)
@pytest.mark.parametrize("order", ["forward", "reversed"])
def test_grad_norm_kernel_matches_reference_bitwise(p, order):
    shapes = BIG_SHAPES if order == "forward" else BIG_SHAPES[::-1]
    grads = mixed_grads(shapes, seed=3)
    grads.insert(2, None)  # None entries are skipped
    ref_norm, ref_finite = reference.grad_norm(grads, p)
    assert ref_finite is True
    results = {n: kernels.grad_norm(grads, p, n_threads=n) for n in (1, 2, 3, 4)}
    for n, (norm, finite) in results.items():
        assert finite is True, n
        assert isinstance(norm, float)
        assert bits(norm) == bits(ref_norm), (n, norm, ref_norm)
    # the shared value is the right one (guards against kernel and reference agreeing on a wrong sum)
    assert math.isclose(ref_norm, exact_norm(grads, p), rel_tol=1e-12)
    # and the None entry did not stop the scan
    assert not math.isclose(ref_norm, exact_norm(grads[:2], p), rel_tol=1e-3)


@pytest.mark.parametrize("p", NORM_TYPES, ids=str)
def test_grad_norm_single_dtype_lists_and_tuples(p):
    for dtype in DTYPES:
        grads = [g.astype(dtype) for g in mixed_grads([(5,), (4096,), (4095,), (9000,)], seed=4)]
        expected = reference.grad_norm(grads, p)
        assert bits(kernels.grad_norm(tuple(grads), p)[0]) == bits(expected[0])
        assert bits(kernels.grad_norm(grads, p, n_threads=2)[0]) == bits(expected[0])
        assert math.isclose(expected[0], exact_norm(grads, p), rel_tol=1e-12)


def test_grad_norm_empty_and_zero():
    for p in NORM_TYPES:
        for grads in ([], [None], [np.zeros(0, np.float32)], [np.zeros((3, 4))], (None, np.zeros(()))):
            assert kernels.grad_norm(grads, p) == (0.0, True) == reference.grad_norm(grads, p)


# (tensor index in BIG_SHAPES, flat element index) where a non-finite value goes
PLACES = [(0, 0), (2, 0), (3, 16), (4, 4096), (4, 7), (5, 7777), (6, 69999), (6, 32768)]


@pytest.mark.parametrize("p", NORM_TYPES, ids=str)
@pytest.mark.parametrize("bad", [NAN, INF, -INF], ids=["nan", "inf", "-inf"])
def test_grad_norm_nonfinite(p, bad):
    torch = pytest.importorskip("torch")
    base = mixed_grads(BIG_SHAPES, seed=5)
    for tensor, index in PLACES:
        grads = [g.copy() for g in base]
        grads[tensor].reshape(-1)[index] = bad
        want = NAN if math.isnan(bad) else INF
        ref = reference.grad_norm(grads, p)
        assert ref[1] is False and bits(ref[0]) == bits(want), (tensor, index, ref)
        for n in (1, 2, 3):
            norm, finite = kernels.grad_norm(grads, p, n_threads=n)
            assert finite is False and bits(norm) == bits(want), (tensor, index, n, norm)
        # what torch gives for the same gradients (its inf-norm rejects empty tensors)
        total = torch.nn.utils.get_total_norm([torch.from_numpy(g.astype(np.float64)) for g in grads if g.size], p)
        assert bits(total.item()) == bits(want)


@pytest.mark.parametrize("p", NORM_TYPES, ids=str)
def test_grad_norm_nan_and_inf_together(p):
    grads = mixed_grads(BIG_SHAPES, seed=6)
    grads[6][123] = INF
    grads[3][5] = NAN            # NaN before the inf
    grads[5][2, 4999] = -INF
    for n in (1, 2, 3):
        norm, finite = kernels.grad_norm(grads, p, n_threads=n)
        assert math.isnan(norm) and finite is False
    norm, finite = reference.grad_norm(grads, p)
    assert math.isnan(norm) and finite is False
    # inf first, NaN after (max must not drop the NaN)
    grads = [np.array([INF, 1.0]), np.array([2.0, NAN], np.float32)]
    for g in (grads, grads[::-1]):
        assert math.isnan(kernels.grad_norm(g, p)[0]) and math.isnan(reference.grad_norm(g, p)[0])


def test_grad_norm_finite_flag_is_about_elements_not_the_norm():
    """Huge finite gradients overflow the sum of squares: the norm is inf, but every element is finite."""
    grads = [np.full(10, 1e200), np.ones(3, np.float32)]
    for impl in (kernels.grad_norm, reference.grad_norm):
        assert impl(grads, 2) == (INF, True)
        assert impl(grads, INF) == (1e200, True)
    tiny = [np.full(9000, 1e-300)]
    assert kernels.grad_norm(tiny, 1) == reference.grad_norm(tiny, 1)
    assert kernels.grad_norm(tiny, 1)[1] is True


# ---------------------------------------------------------------------------------------------------
# 2. accuracy: double accumulation over ~2e6 float32 elements


@pytest.mark.parametrize("p", [1, 2])
def test_grad_norm_accuracy_float32(p):
    rng = np.random.default_rng(7)
    grads = [(rng.random(n) * 3 + 1).astype(np.float32) * np.where(rng.random(n) < 0.5, -1, 1).astype(np.float32)
             for n in (1_000_003, 999_989, 17)]
    assert sum(g.size for g in grads) > 2_000_000
    a = np.concatenate([np.abs(g.astype(np.float64)) for g in grads])
    exact = math.fsum(a) if p == 1 else math.sqrt(math.fsum(a * a))  # float32 squares are exact in double
    for n in (1, 2):
        norm, finite = kernels.grad_norm(grads, p, n_threads=n)
        assert finite
        assert abs(norm - exact) / exact < 1e-12, (n, norm, exact)
    assert abs(fastopt.get_total_norm(grads, p) - exact) / exact < 1e-12


# ---------------------------------------------------------------------------------------------------
# 3. against torch.nn.utils

TORCH_SHAPES = [(), (1,), (17,), (3, 5), (4100,), (2, 3, 4)]
# fastopt accumulates in double; torch sums float32 gradients in float32 (its own error reaches ~2e-6
# over these 4100+ elements for p=1), so against torch's float32 result the tolerance is 1e-5, and 1e-6
# (in fact 1e-12) against torch run on the same values upcast to float64.
RTOL = {np.float32: 1e-5, np.float64: 1e-12}


def to_torch(grads):
    torch = pytest.importorskip("torch")
    params = []
    for g in grads:
        p = torch.zeros(g.shape, dtype=torch.float32 if g.dtype == np.float32 else torch.float64)
        p.grad = torch.from_numpy(g.copy())
        params.append(p)
    return params


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("p", [1, 2, 3, INF], ids=str)
def test_clip_grad_norm_matches_torch(dtype, p):
    torch = pytest.importorskip("torch")
    base = [g.astype(dtype) for g in mixed_grads(TORCH_SHAPES, seed=8)]
    norm0 = exact_norm(base, p)
    for max_norm in (0.01 * norm0, 0.5 * norm0, 0.999 * norm0, 2 * norm0, 1e9):
        grads = [g.copy() for g in base]
        tparams = to_torch(base)
        total = fastopt.clip_grad_norm_(grads, max_norm, norm_type=p)
        ttotal = torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type=p)
        assert isinstance(total, float)
        assert math.isclose(total, ttotal.item(), rel_tol=RTOL[dtype]), (max_norm, total, ttotal.item())
        t64 = torch.nn.utils.get_total_norm([torch.from_numpy(b.astype(np.float64)) for b in base], p).item()
        assert math.isclose(total, t64, rel_tol=1e-12)
        assert math.isclose(total, norm0, rel_tol=1e-12)
        assert total == fastopt.get_total_norm(base, p)
        coef = max_norm / (total + 1e-6)
        for g, b, tp in zip(grads, base, tparams):
            assert g.dtype == dtype
            # exactly torch's formula, from fastopt's norm: g * dtype(min(1, coef))
            expected = b if coef >= 1 else b * dtype(coef)
            assert g.tobytes() == expected.tobytes()
            np.testing.assert_allclose(g, tp.grad.numpy(), rtol=2 * RTOL[dtype], atol=0)
            if coef >= 1:
                assert g.tobytes() == b.tobytes()
        if coef < 1:
            assert math.isclose(exact_norm(grads, p), norm0 * coef, rel_tol=1e-6 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("p", [1, 2, 3, INF], ids=str)
def test_get_total_norm_matches_torch(dtype, p):
    torch = pytest.importorskip("torch")
    if not hasattr(torch.nn.utils, "get_total_norm"):
        pytest.skip("torch without get_total_norm")
    grads = [g.astype(dtype) for g in mixed_grads(TORCH_SHAPES, seed=9)]
    want = torch.nn.utils.get_total_norm([torch.from_numpy(g) for g in grads], p).item()
    got = fastopt.get_total_norm(grads, p)
    assert math.isclose(got, want, rel_tol=RTOL[dtype])
    want64 = torch.nn.utils.get_total_norm([torch.from_numpy(g.astype(np.float64)) for g in grads], p).item()
    assert math.isclose(got, want64, rel_tol=1e-12)
    assert got == fastopt.get_total_norm(tuple(grads) + (None,), p)
    # one array on its own
    assert fastopt.get_total_norm(grads[4], p) == kernels.grad_norm([grads[4]], p)[0]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("p", [1, 2, INF], ids=str)
@pytest.mark.parametrize("bad", [NAN, INF, -INF], ids=["nan", "inf", "-inf"])
def test_clip_grad_norm_nonfinite_like_torch(dtype, p, bad):
    torch = pytest.importorskip("torch")
    base = [g.astype(dtype) for g in mixed_grads(TORCH_SHAPES, seed=10)]
    base[3][1, 2] = bad
    grads = [g.copy() for g in base]
    tparams = to_torch(base)
    total = fastopt.clip_grad_norm_(grads, 1.0, norm_type=p)
    ttotal = torch.nn.utils.clip_grad_norm_(tparams, 1.0, norm_type=p).item()
    assert bits(total) == bits(ttotal)
    for g, tp in zip(grads, tparams):
        t = tp.grad.numpy()
        np.testing.assert_array_equal(np.isnan(g), np.isnan(t))
        np.testing.assert_array_equal(g, t)              # zeros where torch has zeros, NaN where NaN
        np.testing.assert_array_equal(np.signbit(g[~np.isnan(g)]), np.signbit(t[~np.isnan(t)]))
    if math.isnan(bad):
        assert all(np.isnan(g).all() for g in grads)
    else:
        assert np.isnan(grads[3][1, 2]) and (grads[3][~np.isnan(grads[3])] == 0).all()
    # error_if_nonfinite: RuntimeError, as torch, and nothing written
    grads = [g.copy() for g in base]
    with pytest.raises(RuntimeError):
        fastopt.clip_grad_norm_(grads, 1.0, norm_type=p, error_if_nonfinite=True)
    with pytest.raises(RuntimeError):
        torch.nn.utils.clip_grad_norm_(to_torch(base), 1.0, norm_type=p, error_if_nonfinite=True)
    for g, b in zip(grads, base):
        assert g.tobytes() == b.tobytes()
    with pytest.raises(RuntimeError):
        fastopt.get_total_norm(base, p, error_if_nonfinite=True)
    # finite gradients: no error
    fine = [g.copy() for g in mixed_grads(TORCH_SHAPES, seed=11)]
    assert math.isfinite(fastopt.clip_grad_norm_(fine, 1.0, norm_type=p, error_if_nonfinite=True))


def test_clip_grad_norm_single_array_and_mixed_dtypes():
    g = np.arange(1.0, 5.0, dtype=np.float32)
    b = g.copy()
    total = fastopt.clip_grad_norm_(g, 1.0)
    assert total == math.sqrt(30.0)
    assert g.tobytes() == (b * np.float32(1.0 / (total + 1e-6))).tobytes()
    grads = mixed_grads(TORCH_SHAPES, seed=12)  # float32 and float64 in one list
    base = [x.copy() for x in grads]
    total = fastopt.clip_grad_norm_(grads + [None], 0.5, norm_type=3)
    assert math.isclose(total, exact_norm(base, 3), rel_tol=1e-12)
    coef = 0.5 / (total + 1e-6)
    for x, y in zip(grads, base):
        assert x.dtype == y.dtype and x.tobytes() == (y * y.dtype.type(coef)).tobytes()


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_clip_grad_value_matches_torch(dtype):
    torch = pytest.importorskip("torch")
    base = [g.astype(dtype) for g in mixed_grads(TORCH_SHAPES, seed=13)]
    base[2][3], base[2][4], base[2][5] = NAN, INF, -INF
    base[0][()] = 0.25
    for clip in (0.5, 1.0, 0.25, 100.0):
        grads = [g.copy() for g in base]
        tparams = to_torch(base)
        assert fastopt.clip_grad_value_(grads, clip) is None
        torch.nn.utils.clip_grad_value_(tparams, clip)
        for g, tp in zip(grads, tparams):
            assert g.dtype == dtype
            np.testing.assert_array_equal(g, tp.grad.numpy())
        assert np.isnan(grads[2][3]) and grads[2][4] == clip and grads[2][5] == -clip
    g = base[4].copy()
    fastopt.clip_grad_value_(g, 0.1)  # one array
    assert g.max() == dtype(0.1) and g.min() == dtype(-0.1)


# ---------------------------------------------------------------------------------------------------
# 4. fused clipping in every optimizer

FUSED_SHAPES = [(17,), (), (0,), (3, 5), (1031,), (2, 4100)]
SKIP = {(0, 1), (2, 0), (3, 4), (4, 0), (4, 5)}
SCALES = [1.0, 3.0, 0.02, 1.0, 2.0]
FUSED_P = [2.0, 1.0, INF, 3.0]


def snapshot(params, opt):
    return ([p.tobytes() for p in params],
            {i: {k: (v.dtype, v.shape, v.tobytes()) for k, v in s.items()} for i, s in opt.state.items()})


def fused_grads(dtype, seed=1):
    steps = make_grads(FUSED_SHAPES, dtype, steps=len(SCALES), seed=seed, skip=SKIP)
    return [[None if g is None else np.asarray(g * dtype(s), dtype=dtype) for g in gs]
            for gs, s in zip(steps, SCALES)]


@pytest.mark.parametrize(("case", "label", "kwargs"), CONFIGS)
def test_fused_clipping_is_clip_then_step(case, label, kwargs, dtype):
    p = FUSED_P[[c.id for c in CONFIGS].index(f"{case.name}-{label}") % len(FUSED_P)]
    steps = fused_grads(dtype)
    max_norm = 0.3 * fastopt.get_total_norm(steps[0], p)
    results = {}
    for backend in ("cython", "numpy"):
        fused_params = make_params(FUSED_SHAPES, dtype)
        plain_params = make_params(FUSED_SHAPES, dtype)
        free_params = make_params(FUSED_SHAPES, dtype)
        fused = case.cls(fused_params, backend=backend, max_grad_norm=max_norm, norm_type=p, **kwargs)
        plain = case.cls(plain_params, backend=backend, **kwargs)
        free = case.cls(free_params, backend=backend, **kwargs)  # never clipped
        active = 0
        for t, grads in enumerate(steps):
            kept = [None if g is None else g.copy() for g in grads]
            fused.step(grads)
            for g, k in zip(grads, kept):  # the gradients are never written
                assert (g is None and k is None) or g.tobytes() == k.tobytes()
            clipped = [None if g is None else g.copy() for g in grads]
            total = fastopt.clip_grad_norm_(clipped, max_norm, norm_type=p)
            assert bits(fused.last_grad_norm) == bits(total) == bits(fastopt.get_total_norm(grads, p)), t
            active += max_norm / (total + 1e-6) < 1
            plain.step(clipped)
            free.step(grads)
            assert snapshot(fused_params, fused) == snapshot(plain_params, plain), (backend, t)
        assert active >= 3 and active < len(steps)  # clipping on most steps, not all
        # it did clip (Rprop moves by sign(g) * its step sizes: only the gradient it keeps shows it)
        assert snapshot(fused_params, fused)[0 if case.name != "Rprop" else 1] != \
            snapshot(free_params, free)[0 if case.name != "Rprop" else 1]
        results[backend] = snapshot(fused_params, fused)
    assert results["cython"] == results["numpy"]


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_fused_clipping_mixed_dtypes_and_groups(backend):
    """float32 and float64 params in two groups: one norm over every gradient, the coefficient rounded
    to each gradient's dtype."""
    shapes = FUSED_SHAPES
    steps = [mixed_grads(shapes, seed=20 + t, scale=s) for t, s in enumerate(SCALES)]
    steps[1][2] = None

    def params():
        return [np.asarray(g * 0.5 + 1, dtype=g.dtype) for g in mixed_grads(shapes, seed=99)]

    a, b = params(), params()
    groups = lambda ps: [{"params": ps[:3]}, {"params": ps[3:], "lr": 0.003}]  # noqa: E731
    fused = fastopt.Adam(groups(a), lr=0.01, backend=backend, max_grad_norm=2.0, amsgrad=True)
    plain = fastopt.Adam(groups(b), lr=0.01, backend=backend, amsgrad=True)
    for grads in steps:
        fused.step(grads)
        clipped = [None if g is None else g.copy() for g in grads]
        assert fused.last_grad_norm == fastopt.clip_grad_norm_(clipped, 2.0)
        plain.step(clipped)
        assert snapshot(a, fused) == snapshot(b, plain)


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_fused_clipping_accepts_read_only_grads(backend):
    steps = fused_grads(np.float32)
    a, b = make_params(FUSED_SHAPES, np.float32), make_params(FUSED_SHAPES, np.float32)
    o1 = fastopt.Adam(a, lr=0.01, backend=backend, max_grad_norm=1.0)
    o2 = fastopt.Adam(b, lr=0.01, backend=backend, max_grad_norm=1.0)
    for grads in steps:
        ro = []
        for g in grads:
            if g is not None:
                g = g.copy()
                g.flags.writeable = False
            ro.append(g)
        o1.step(ro)
        o2.step(grads)
    assert snapshot(a, o1) == snapshot(b, o2)


def test_fused_adam_matches_torch_float64():
    torch = pytest.importorskip("torch")
    shapes = [(17,), (3, 5), (1031,), ()]
    steps = [mixed_grads(shapes, seed=30 + t, scale=s) for t, s in enumerate([1.0, 5.0, 0.01, 1.0, 2.0, 3.0])]
    steps = [[g.astype(np.float64) for g in gs] for gs in steps]
    init = [g.astype(np.float64) for g in mixed_grads(shapes, seed=40)]
    max_norm = 3.0
    for kwargs in (dict(lr=0.01), dict(lr=0.01, amsgrad=True, weight_decay=0.1)):
        params = [x.copy() for x in init]
        opt = fastopt.Adam(params, max_grad_norm=max_norm, **kwargs)
        tparams = [torch.tensor(x, requires_grad=True) for x in init]
        topt = torch.optim.Adam(tparams, **kwargs)
        active = 0
        for grads in steps:
            opt.step(grads)
            for tp, g in zip(tparams, grads):
                tp.grad = torch.from_numpy(g.copy())
            tnorm = torch.nn.utils.clip_grad_norm_(tparams, max_norm).item()
            active += tnorm > max_norm
            topt.step()
            assert math.isclose(opt.last_grad_norm, tnorm, rel_tol=1e-12)
            for p, tp in zip(params, tparams):
                np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-10, atol=1e-14)
        assert active >= 3
        for i, tp in enumerate(tparams):
            tstate = topt.state[tp]
            for key in ("exp_avg", "exp_avg_sq"):
                np.testing.assert_allclose(opt.state[i][key], tstate[key].numpy(), rtol=1e-10, atol=1e-14)


# ---------------------------------------------------------------------------------------------------
# 5. skip_nonfinite

SKIP_SHAPES = [(17,), (), (3, 5), (1031,), (4100,)]


def poison(grads, where, value):
    out = [None if g is None else g.copy() for g in grads]
    tensor, index = where
    out[tensor].reshape(-1)[index] = value
    return out


@pytest.mark.parametrize(("case", "label", "kwargs"), CONFIGS)
@pytest.mark.parametrize("clip", [None, 1.5], ids=["noclip", "clip"])
def test_skip_nonfinite(case, label, kwargs, clip, dtype):
    steps = make_grads(SKIP_SHAPES, dtype, steps=5, seed=50, skip={(1, 0), (3, 2)})
    bad_first = poison(steps[0], (3, 1030), NAN)              # tail element
    bad_first[0] = None
    bad_mid = poison(steps[2], (4, 4097), INF)                 # past the first block
    bad_late = poison(steps[3], (1, 0), -INF)                  # a 0-d gradient
    extra = dict(kwargs, max_grad_norm=clip)
    for backend in ("cython", "numpy"):
        params = make_params(SKIP_SHAPES, dtype)
        opt = case.cls(params, backend=backend, skip_nonfinite=True, **extra)
        before = snapshot(params, opt)
        opt.step(bad_first)
        assert opt.skipped_steps == 1
        assert snapshot(params, opt) == before  # no state created (Adagrad's exists from the start, as torch)
        assert (dict(opt.state) == {}) == (case.name != "Adagrad")
        opt.step(steps[0])
        opt.step(steps[1])
        for bad in (bad_mid, bad_late):
            before = snapshot(params, opt)
            opt.step(bad)
            assert snapshot(params, opt) == before
        assert opt.skipped_steps == 3
        opt.step(steps[2])
        opt.step(steps[3])
        assert opt.skipped_steps == 3
        # an optimizer that never saw the bad steps (and has no skip_nonfinite)
        ref_params = make_params(SKIP_SHAPES, dtype)
        ref = case.cls(ref_params, backend=backend, **extra)
        for grads in steps[:4]:
            ref.step(grads)
        assert snapshot(params, opt) == snapshot(ref_params, ref)
        assert ref.skipped_steps == 0
        if clip is not None:
            assert bits(opt.last_grad_norm) == bits(ref.last_grad_norm)
        # without skip_nonfinite a non-finite step does go through
        ref.step(bad_mid)
        assert snapshot(ref_params, ref) != snapshot(params, opt)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_skip_nonfinite_large_grads_are_finite(case):
    """Gradients whose norm overflows are still finite: the step runs (clipped to zero coefficient)."""
    kwargs = next(iter(case.configs.values()))
    params = [np.ones(10)]
    ref_params = [np.ones(10)]
    opt = case.cls(params, skip_nonfinite=True, max_grad_norm=1.0, **kwargs)
    ref = case.cls(ref_params, max_grad_norm=1.0, **kwargs)
    grads = [np.full(10, 1e200)]
    opt.step(grads)
    ref.step(grads)
    assert opt.skipped_steps == 0 and opt.last_grad_norm == INF
    assert snapshot(params, opt) == snapshot(ref_params, ref)
    assert len(opt.state) == 1


# ---------------------------------------------------------------------------------------------------
# 6. bad arguments; rejected calls write nothing

BAD_NORM_VALUES = [0, 0.0, -1, -2.5, NAN, -INF]
BAD_NORM_TYPES = [True, False, np.bool_(True), "2", None, [2], complex(2, 0)]


@pytest.mark.parametrize("impl", [kernels.grad_norm, reference.grad_norm], ids=["kernel", "reference"])
def test_grad_norm_bad_arguments(impl):
    grads = [np.ones(3), np.ones(2, np.float32)]
    for p in BAD_NORM_VALUES:
        with pytest.raises(ValueError):
            impl(grads, p)
    for p in BAD_NORM_TYPES:
        with pytest.raises(TypeError):
            impl(grads, p)
    for bad in ([np.ones(3), [1.0, 2.0]], [np.ones(3), 1.0], [np.ones(3), "x"]):
        with pytest.raises(TypeError):
            impl(bad)
    for dtype in (np.int32, np.int64, np.int16, np.complex128, bool):
        with pytest.raises(TypeError):
            impl([np.ones(3), np.ones(4, dtype=dtype)])
    with pytest.raises((TypeError, ValueError)):
        impl([np.ones((4, 4))[:, ::2]])  # not C-contiguous
    assert impl(grads, np.float32(2))[0] == impl(grads, 2)[0] == math.sqrt(5)
    assert impl(grads, np.int64(1))[0] == 5.0


def _error(call):
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - the type is what is compared
        return type(exc)
    return None


def test_grad_norm_twins_check_n_threads_alike():
    """The reference is the kernel's twin: a bad ``n_threads`` is rejected by both with the same error
    (every other reference function checks ``n_threads`` as its kernel does)."""
    grads = [np.ones(3), np.ones(2, np.float32)]
    for n in (0, -1, True, "2", None, 2.5):
        got = {impl.__module__: _error(lambda impl=impl: impl(grads, 2, n))
               for impl in (kernels.grad_norm, reference.grad_norm)}
        assert len(set(got.values())) == 1 and None not in got.values(), (n, got)


def test_grad_norm_twins_reject_bad_layouts_alike():
    """Byte-swapped, misaligned and strided gradients: the kernel's ValueError, from both twins."""
    for arr in (np.ones(5).astype(">f8"), np.ones(5, np.float32).astype(">f4"),
                np.zeros(81, np.uint8)[1:].view(np.float64), np.ones((4, 4))[:, ::2]):
        got = {impl.__module__: _error(lambda impl=impl: impl([np.ones(2), arr]))
               for impl in (kernels.grad_norm, reference.grad_norm)}
        assert set(got.values()) == {ValueError}, (arr.dtype, arr.flags, got)


def test_clip_functions_bad_arguments_write_nothing():
    base = [np.linspace(-3, 3, 7), np.linspace(-2, 2, 5).astype(np.float32)]
    grads = [g.copy() for g in base]

    def unchanged():
        for g, b in zip(grads, base):
            assert g.tobytes() == b.tobytes()

    for p in BAD_NORM_VALUES:
        with pytest.raises(ValueError):
            fastopt.clip_grad_norm_(grads, 0.1, norm_type=p)
        with pytest.raises(ValueError):
            fastopt.get_total_norm(grads, p)
    for p in BAD_NORM_TYPES:
        with pytest.raises(TypeError):
            fastopt.clip_grad_norm_(grads, 0.1, norm_type=p)
    for m in ("1", None, True, [1.0]):
        with pytest.raises(TypeError):
            fastopt.clip_grad_norm_(grads, m)
        with pytest.raises(TypeError):
            fastopt.clip_grad_value_(grads, m)
    unchanged()
    for bad in (grads + [[1.0]], grads + [np.ones(3, np.int64)], "abc", 3.0, {0: grads[0]}):
        with pytest.raises(TypeError):
            fastopt.clip_grad_norm_(bad, 0.1)
        with pytest.raises(TypeError):
            fastopt.get_total_norm(bad)
    with pytest.raises(TypeError):
        fastopt.clip_grad_value_(grads + [np.arange(3)], 0.1)
    unchanged()
    # a read-only gradient: ValueError before any gradient is written (the writeable one comes first)
    ro = base[1].copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError):
        fastopt.clip_grad_norm_([grads[0], ro], 0.1)
    with pytest.raises(ValueError):
        fastopt.clip_grad_value_([grads[0], ro], 0.1)
    with pytest.raises(ValueError):
        fastopt.clip_grad_norm_(ro, 0.1)
    unchanged()
    # ... even when clipping would not change it
    with pytest.raises(ValueError):
        fastopt.clip_grad_norm_([grads[0], ro], 1e9)
    # reading a read-only gradient is fine
    assert fastopt.get_total_norm([grads[0], ro]) == fastopt.get_total_norm(base)
    # the good calls do write (the checks above are not vacuous)
    fastopt.clip_grad_norm_(grads, 0.1)
    assert grads[0].tobytes() != base[0].tobytes()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_optimizer_bad_clip_options(case):
    kwargs = next(iter(case.configs.values()))
    params = [np.ones(3)]
    for m in (0, 0.0, -1.0, INF, NAN, -INF):
        with pytest.raises(ValueError):
            case.cls(params, max_grad_norm=m, **kwargs)
    for m in ("1", True, [1.0], complex(1, 0)):
        with pytest.raises(TypeError):
            case.cls(params, max_grad_norm=m, **kwargs)
    for p in BAD_NORM_VALUES:
        with pytest.raises(ValueError):
            case.cls(params, max_grad_norm=1.0, norm_type=p, **kwargs)
        with pytest.raises(ValueError):
            case.cls(params, norm_type=p, **kwargs)
    for p in BAD_NORM_TYPES:
        with pytest.raises(TypeError):
            case.cls(params, max_grad_norm=1.0, norm_type=p, **kwargs)
    for flag in (1, 0, "yes", None, 1.0):
        with pytest.raises(TypeError):
            case.cls(params, skip_nonfinite=flag, **kwargs)
    # the good ones are accepted
    opt = case.cls(params, max_grad_norm=np.float32(2), norm_type=INF, skip_nonfinite=True, **kwargs)
    assert opt.max_grad_norm == 2.0 and opt.norm_type == INF and opt.skip_nonfinite is True
    assert opt.last_grad_norm is None and opt.skipped_steps == 0
    assert case.cls(params, max_grad_norm=3, norm_type=1, **kwargs).max_grad_norm == 3.0
    assert np.all(params[0] == 1.0)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_rejected_clipped_step_writes_nothing(case, backend):
    kwargs = next(iter(case.configs.values()))
    params = make_params([(5,), (3, 2)], np.float64)
    opt = case.cls(params, backend=backend, max_grad_norm=0.1, skip_nonfinite=True, **kwargs)
    good = make_grads([(5,), (3, 2)], np.float64, steps=2)
    opt.step(good[0])
    before = copy.deepcopy(snapshot(params, opt))
    norm = opt.last_grad_norm
    for bad in ([good[1][0], np.ones((3, 2), np.int64)],    # int gradient
                [good[1][0], np.ones((2, 3))],              # wrong shape
                [good[1][0], np.ones(6)],                   # wrong shape, same size
                [good[1][0]],                               # too few
                [good[1][0], good[1][1], good[1][1]],       # too many
                [good[1][0], np.ones((3, 2), np.float32)],  # wrong dtype
                [good[1][0], [[1.0, 2.0]] * 3]):            # not an array
        with pytest.raises((TypeError, ValueError)):
            opt.step(bad)
        assert snapshot(params, opt) == before
        assert opt.last_grad_norm == norm and opt.skipped_steps == 0
    opt.step(good[1])
    assert snapshot(params, opt) != before


# -- fastopt.torch: the same options --------------------------------------------------------------

@pytest.mark.parametrize("name", ["Adam", "SGD", "LAMB", "RAdam"])
def test_torch_face_clipping_is_the_numpy_faces_and_clip_then_step(name):
    """fastopt.torch's ``max_grad_norm``: the same bits as the NumPy face's (the same norm kernel and
    coefficient); against torch's ``clip_grad_norm_`` then the step, equal to float32 rounding; the
    ``.grad`` tensors are not rewritten."""
    torch = pytest.importorskip("torch")
    import fastopt.torch as ft

    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(300, generator=gen), torch.randn(20, 7, generator=gen)]
    grads = [[3 * torch.randn(p.shape, generator=gen) for p in start] for _ in range(3)]
    kwargs = dict(lr=0.01, momentum=0.9) if name == "SGD" else dict(lr=0.01)
    tparams = [torch.nn.Parameter(p.clone()) for p in start]
    topt = getattr(ft, name)(tparams, max_grad_norm=1.0, **kwargs)
    nparams = [p.numpy().copy() for p in start]
    nopt = getattr(fastopt, name)(nparams, max_grad_norm=1.0, **kwargs)
    for step in grads:
        for p, g in zip(tparams, step):
            p.grad = g.clone()
        topt.step()
        assert all(torch.equal(p.grad, g) for p, g in zip(tparams, step))  # not rewritten
        nopt.step([g.numpy().copy() for g in step])
    for a, b in zip(tparams, nparams):
        np.testing.assert_array_equal(a.detach().numpy(), b)
    assert topt.last_grad_norm == nopt.last_grad_norm > 1.0
    if hasattr(torch.optim, name):
        rparams = [torch.nn.Parameter(p.clone()) for p in start]
        ropt = getattr(torch.optim, name)(rparams, **kwargs)
        for step in grads:
            for p, g in zip(rparams, step):
                p.grad = g.clone()
            torch.nn.utils.clip_grad_norm_(rparams, 1.0)
            ropt.step()
        for a, b in zip(tparams, rparams):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_torch_face_skip_nonfinite_changes_nothing():
    torch = pytest.importorskip("torch")
    import fastopt.torch as ft

    p = torch.nn.Parameter(torch.ones(5))
    opt = ft.Adam([p], lr=0.1, skip_nonfinite=True)
    p.grad = torch.tensor([1.0, float("nan"), 1.0, 1.0, 1.0])
    opt.step()  # the first step: not even the state is created
    assert torch.equal(p.detach(), torch.ones(5)) and len(opt.state) == 0
    assert opt.skipped_steps == 1 and math.isnan(opt.last_grad_norm)
    p.grad = torch.ones(5)
    opt.step()
    assert not torch.equal(p.detach(), torch.ones(5)) and float(opt.state[p]["step"]) == 1.0
    p.grad = torch.tensor([float("inf")] * 5)
    before = (p.detach().clone(), {k: v.clone() for k, v in opt.state[p].items()})
    opt.step()
    assert torch.equal(p.detach(), before[0]) and opt.skipped_steps == 2
    assert all(torch.equal(opt.state[p][k], v) for k, v in before[1].items())
    with pytest.raises(ValueError, match="max_grad_norm"):
        ft.Adam([p], max_grad_norm=0.0)
    with pytest.raises(ValueError, match="norm_type"):
        ft.Adam([p], norm_type=-1.0)
