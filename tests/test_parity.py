"""Kernel vs NumPy reference: the same math in the same order, so float32 and float64 results must be
bit-identical, for the parameter and every state buffer, over odd sizes and several steps."""
import numpy as np
import pytest
from _helpers import CONFIGS, make_grads, make_params

import fastopt

SIZES = [1, 3, 17, 1031]


def run(case, kwargs, backend, shapes, grads, dtype):
    params = make_params(shapes, dtype)
    opt = case.cls(params, backend=backend, **kwargs)
    for step_grads in grads:
        opt.step(step_grads)
    return params, opt


@pytest.mark.parametrize(("case", "label", "kwargs"), CONFIGS)
def test_kernel_matches_reference_bit_for_bit(case, label, kwargs, dtype):
    shapes = [(n,) for n in SIZES] + [(), (0,), (3, 5, 2)]
    grads = make_grads(shapes, dtype, steps=7, skip={(0, 1), (3, 2)})
    p_kernel, opt_kernel = run(case, kwargs, "cython", shapes, grads, dtype)
    p_ref, opt_ref = run(case, kwargs, "numpy", shapes, grads, dtype)
    for i, (a, b) in enumerate(zip(p_kernel, p_ref)):
        np.testing.assert_array_equal(a, b, err_msg=f"params[{i}]")
    assert opt_kernel.state.keys() == opt_ref.state.keys()
    for i in opt_kernel.state:
        assert list(opt_kernel.state[i]) == list(opt_ref.state[i])
        for key, value in opt_kernel.state[i].items():
            assert value.dtype == dtype and value.shape == opt_ref.state[i][key].shape
            np.testing.assert_array_equal(value, opt_ref.state[i][key], err_msg=f"state[{i}][{key!r}]")


@pytest.mark.parametrize(("case", "label", "kwargs"), CONFIGS[:1] + [c for c in CONFIGS if c.id.startswith("Adam-")])
def test_parameters_actually_move(case, label, kwargs, dtype):
    """Guards the parity test against a vacuous pass (both backends doing nothing)."""
    shapes = [(17,)]
    before = make_params(shapes, dtype)[0]
    after, _ = run(case, kwargs, "cython", shapes, make_grads(shapes, dtype, steps=3), dtype)
    assert np.all(after[0] != before)


@pytest.mark.parametrize("case", fastopt._registry.CASES, ids=lambda c: c.name)
def test_kernels_accept_read_only_and_memory_mapped_grads(case, tmp_path):
    """Same call, same result whether the gradient is writeable, read-only or an np.memmap."""
    name = case.name
    kwargs = next(iter(case.configs.values()))
    shapes = [(4, 33)]
    grad = make_grads(shapes, np.float32, steps=1)[0][0]
    results = []
    for variant in ("writeable", "read-only", "memmap"):
        g = grad.copy()
        if variant == "read-only":
            g.flags.writeable = False
        elif variant == "memmap":
            path = tmp_path / f"{name}.bin"
            grad.tofile(path)
            g = np.memmap(path, dtype=np.float32, mode="r", shape=grad.shape)
        params = make_params(shapes, np.float32)
        opt = case.cls(params, **kwargs)
        opt.step([g])
        opt.step([g])
        results.append(params[0])
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


def test_each_element_is_independent_of_its_neighbours(dtype):
    """A fused elementwise kernel: stepping a slice of the data gives that slice of the full result
    (catches a loop that reads the wrong index or mishandles the vector tail). Not for rules with
    per-tensor reductions (LAMB: tests/test_lamb.py checks its tails and blocks against the twin)."""
    for case in fastopt._registry.CASES:
        if not case.elementwise:
            continue
        kwargs = next(iter(case.configs.values()))
        full = make_params([(1037,)], dtype)[0]
        grads = make_grads([(1037,)], dtype, steps=3)
        part = full[5:36].copy()
        opt_full, opt_part = case.cls([full], **kwargs), case.cls([part], **kwargs)
        for (g,) in grads:
            opt_full.step([g])
            opt_part.step([np.ascontiguousarray(g[5:36])])
        np.testing.assert_array_equal(full[5:36], part, err_msg=case.name)


def test_float32_math_stays_in_float32():
    """The float32 kernel computes in float32 (as torch does), not through double: the float64 result
    rounded to float32 differs from it somewhere over a few steps of Adam."""
    p32 = make_params([(4096,)], np.float32)[0]
    p64 = p32.astype(np.float64)
    opt32, opt64 = fastopt.Adam([p32], lr=0.01), fastopt.Adam([p64], lr=0.01)
    for (g,) in make_grads([(4096,)], np.float32, steps=5):
        opt32.step([g])
        opt64.step([g.astype(np.float64)])
    assert not np.array_equal(p32, p64.astype(np.float32))
    np.testing.assert_allclose(p32, p64, rtol=1e-5, atol=1e-6)


def test_nadam_mu_product_rounding_to_one_gives_inf_on_both_backends():
    """betas[0] just below 1 and a large momentum_decay: float32 rounds the first mu (and so the stored
    mu_product) to exactly 1, and NAdam's step coefficient divides by 1 - mu_product = 0. The kernel's C
    doubles give -inf, as torch would; the reference must too (found by tests/test_fuzz.py)."""
    results = []
    for backend in ("cython", "numpy"):
        p = np.zeros(1, np.float32)
        opt = fastopt.NAdam([p], betas=(1 - 2**-26, 0.999), momentum_decay=1e4, backend=backend)
        opt.step([np.ones(1, np.float32)])
        results.append((p.copy(), opt.state[0]["mu_product"].copy()))
    (p1, mu1), (p2, mu2) = results
    assert mu1 == 1.0 and np.isneginf(p1[0])
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(mu1, mu2)


COUNTER_KERNELS = {  # kernel -> (state buffers after params and grads: "scalar" counters and arrays, kwargs)
    "adam": (["scalar", "array", "array"], dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                                                maximize=False, decoupled_weight_decay=False)),
    "adamax": (["scalar", "array", "array"], dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                                                  maximize=False)),
    "nadam": (["scalar", "scalar", "array", "array"], dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8,
                                                          weight_decay=0.0, momentum_decay=4e-3, maximize=False,
                                                          decoupled_weight_decay=False)),
    "adagrad": (["scalar", "array"], dict(lr=0.1, lr_decay=0.01, eps=1e-10, weight_decay=0.0, maximize=False)),
    "adadelta": (["scalar", "array", "array"], dict(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False)),
    "rmsprop": (["scalar", "array"], dict(lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                                          maximize=False)),
    "radam": (["scalar", "array", "array"], dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                                                 maximize=False, decoupled_weight_decay=False)),
    "rprop": (["scalar", "array", "array"], dict(etaminus=0.5, etaplus=1.2, step_size_min=1e-6,
                                                 step_size_max=50.0, maximize=False)),
    "asgd": (["scalar", "scalar", "scalar", "array"], dict(lr=0.01, lambd=0.1, alpha=0.75, t0=2.0,
                                                          weight_decay=0.0, maximize=False)),
    "lamb": (["scalar", "array", "array"], dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-6, weight_decay=0.01,
                                                bias_correction=True, grad_averaging=True, always_adapt=False,
                                                trust_clip=False, maximize=False)),
}
COUNTER_START = {("nadam", 1): 1.0, ("asgd", 1): 0.01, ("asgd", 2): 1.0}  # mu_product; ASGD's eta = lr, mu


@pytest.mark.parametrize("kernel", sorted(COUNTER_KERNELS))
@pytest.mark.parametrize("counter_dtype", [np.float32, np.float64])
def test_counters_keep_their_own_dtype(kernel, counter_dtype, dtype):
    """Step counts (and NAdam's mu_product) may have another dtype than the parameter, as torch's float32
    ``step`` of a float64 parameter (fastopt.torch steps torch's state): both backends update them in the
    counter's own dtype, bit-identically, and the parameter's math is unchanged."""
    layout, kwargs = COUNTER_KERNELS[kernel]
    rng = np.random.default_rng(7)
    grads = [rng.standard_normal(33).astype(dtype) for _ in range(5)]
    results = []
    for backend in (fastopt.kernels, fastopt.reference):
        param = np.linspace(-1, 1, 33, dtype=dtype)
        buffers = [np.full((), COUNTER_START.get((kernel, i), 0.0), counter_dtype) if kind == "scalar"
                   else np.zeros(33, dtype) for i, kind in enumerate(layout)]
        for g in grads:
            getattr(backend, kernel)(param, g, *buffers, **kwargs)
        results.append((param, buffers))
    (p_kernel, b_kernel), (p_ref, b_ref) = results
    np.testing.assert_array_equal(p_kernel, p_ref)
    for a, b in zip(b_kernel, b_ref):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert b_kernel[0].dtype == counter_dtype and float(b_kernel[0]) == len(grads)
    if kernel == "nadam":  # the product of the momentum coefficients, rounded to its dtype every step
        expected = counter_dtype(1.0)
        for t in range(1, len(grads) + 1):
            expected = counter_dtype(expected * counter_dtype(0.9 * (1 - 0.5 * 0.96 ** (t * 4e-3))))
        assert b_kernel[1] == expected
    if kernel == "asgd":  # the next step's eta and mu, rounded to their dtype (torch: its default dtype's)
        t = len(grads)
        assert b_kernel[1] == counter_dtype(0.01 / (1 + 0.1 * 0.01 * t) ** 0.75)
        assert b_kernel[2] == counter_dtype(1 / max(1, t - 2.0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("beta2", "step"), [(0.999, 0), (0.5, 3), (0.999999, 1000), (1 - 2.0 ** -40, 0)])
def test_adam_denominator_over_every_kind_of_second_moment(dtype, beta2, step):
    """Adam's sqrt(v) / sqrt(bc2), which the kernel computes by a corrected reciprocal where the CPU
    has FMA, against the NumPy twin's division: v swept over bit patterns of every exponent (subnormals,
    zeros of both signs, infinities, NaN) and bias corrections from 1e-6 to 1; bit for bit."""
    from fastopt import kernels, reference
    if dtype is np.float32:
        bits = np.arange(0, 0x80000000, 4099, dtype=np.uint32)
        v0 = np.concatenate([bits, bits | 0x80000000]).view(np.float32)
    else:
        bits = np.arange(0, 0x7FF0000000000000, 0x7FF0000000000000 // 400_000 + 17, dtype=np.uint64)
        v0 = np.concatenate([bits, bits | np.uint64(1 << 63)]).view(np.float64)
    v0 = np.concatenate([v0, np.array([0.0, -0.0, np.inf, -np.inf, np.nan], dtype)])
    rng = np.random.default_rng(step)
    p0 = rng.standard_normal(v0.size).astype(dtype)
    g = rng.standard_normal(v0.size).astype(dtype) * dtype(1e-3)
    m0 = rng.standard_normal(v0.size).astype(dtype)
    results = []
    for module in (kernels, reference):
        p, m, v, t = p0.copy(), m0.copy(), v0.copy(), np.array([step], dtype)
        with np.errstate(all="ignore"):  # (the twin's NumPy warns of the NaN and inf it propagates)
            module.adam(p, g, t, m, v, lr=0.01, beta1=0.9, beta2=beta2, eps=1e-8, weight_decay=0.0,
                        maximize=False, decoupled_weight_decay=False)
        results.append((p, m, v))
    for mine, twin in zip(*results):
        np.testing.assert_array_equal(mine.view(f"u{mine.itemsize}"), twin.view(f"u{twin.itemsize}"))
