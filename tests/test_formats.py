"""16-bit parameters (bfloat16 from ml_dtypes, NumPy's float16): every rule computes in float32 and rounds
its stores to nearest even, as torch's fused CPU optimizers; the kernels against their NumPy twins bit for
bit, the rounding against ml_dtypes' and NumPy's casts, and the precision options
(tests/test_formats_torch.py: fastopt.torch against torch.optim)."""
import numpy as np
import pytest
from _helpers import CONFIGS

import fastopt
from fastopt import kernels
from fastopt.reference import _formats as ref_formats

ml_dtypes = pytest.importorskip("ml_dtypes")

HALF = [pytest.param(ml_dtypes.bfloat16, id="bfloat16"), pytest.param(np.float16, id="float16")]


def bits(a):
    return np.ascontiguousarray(a).reshape(-1).view(np.uint16 if a.dtype.itemsize == 2 else np.uint8)


def draw(shape, dtype, seed, scale=1.0):
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32).astype(dtype)


# -- the rounding ------------------------------------------------------------------------------------

def special_floats(n=200_000, seed=0):
    """float32 values that stress rounding: random bit patterns (every exponent, subnormals, inf, NaN),
    exact ties and their neighbours for both 16-bit formats, the overflow thresholds."""
    rng = np.random.default_rng(seed)
    random_bits = rng.integers(0, 2 ** 32, n, dtype=np.uint64).astype(np.uint32)
    halves = rng.integers(0, 2 ** 16, n // 4, dtype=np.uint64).astype(np.uint32)
    ties = np.concatenate([(halves << 16) | 0x8000, (halves << 16) | 0x7FFF, (halves << 16) | 0x8001])
    f16 = rng.integers(0, 2 ** 16, n // 4, dtype=np.uint64).astype(np.uint16).view(np.float16)
    f16_ties = (f16.astype(np.float32).view(np.uint32) | np.uint32(0x1000))  # halfway to the next float16
    edges = np.array([65504.0, 65519.99, 65520.0, 3.3895e38, 3.4e38, 6e-8, 2.98e-8, 0.0, -0.0],
                     np.float32).view(np.uint32)
    return np.concatenate([random_bits, ties, f16_ties, edges]).view(np.float32)


def test_reference_rounding_is_ml_dtypes_and_numpy_casts():
    """The twin's rounding is an independent oracle's: ml_dtypes' float32 -> bfloat16 cast and NumPy's
    float32 -> float16 cast, both to nearest even, on every non-NaN value; NaN becomes one quiet NaN."""
    values = special_floats()
    finite = values == values
    with np.errstate(over="ignore", invalid="ignore"):
        for storage, dtype in (("bfloat16", ml_dtypes.bfloat16), ("float16", np.float16)):
            ours = ref_formats._narrow_bits(values, storage)
            theirs = values.astype(dtype).view(np.uint16)
            np.testing.assert_array_equal(ours[finite], theirs[finite], err_msg=storage)
            assert np.all(np.isnan(ref_formats._widen_bits(ours[~finite], storage)))


@pytest.mark.parametrize("dtype", HALF)
def test_every_16bit_value_survives_a_zero_step(dtype):
    """Widening then rounding back is exact for all 65536 bit patterns (NaNs stay NaN), in every kernel
    variant this CPU runs: SGD with lr=0 rewrites each parameter with its own value."""
    p = np.arange(2 ** 16, dtype=np.uint32).astype(np.uint16).view(dtype)
    nan = np.isnan(p.astype(np.float32))
    q = p.copy()
    kernels.sgd(q, np.zeros_like(q), None, lr=0.0, momentum=0.0, dampening=0.0, weight_decay=0.0,
                nesterov=False, maximize=False, first_step=False)
    np.testing.assert_array_equal(bits(q)[~nan], bits(p)[~nan])
    assert np.all(np.isnan(q[nan].astype(np.float32)))


# -- kernels against their NumPy twins ---------------------------------------------------------------

def _run(case, kwargs, backend, shapes, dtype, steps=5, **extra):
    params = [draw(s, dtype, seed=i) for i, s in enumerate(shapes)]
    opt = case.cls(params, backend=backend, **kwargs, **extra)
    for t in range(steps):
        opt.step([None if (t, i) == (1, 0) else draw(s, dtype, seed=100 + 10 * t + i, scale=0.5)
                  for i, s in enumerate(shapes)])
    return params, opt


@pytest.mark.parametrize(("case", "label", "kwargs"), CONFIGS)
@pytest.mark.parametrize("dtype", HALF)
def test_16bit_kernel_matches_reference_bit_for_bit(case, label, kwargs, dtype):
    """Params and every state entry, over odd sizes and one larger than a staged block (512)."""
    shapes = [(1,), (3,), (17,), (1031,), (3, 5, 2), (0,)]
    p_kernel, opt_kernel = _run(case, kwargs, "cython", shapes, dtype)
    p_ref, opt_ref = _run(case, kwargs, "numpy", shapes, dtype)
    for i, (a, b) in enumerate(zip(p_kernel, p_ref)):
        assert a.dtype == dtype
        np.testing.assert_array_equal(bits(a), bits(b), err_msg=f"params[{i}]")
    assert opt_kernel.state.keys() == opt_ref.state.keys()
    for i in opt_kernel.state:
        for key, value in opt_kernel.state[i].items():
            other = opt_ref.state[i][key]
            assert value.dtype == other.dtype
            assert value.dtype == (np.float32 if value.ndim == 0 else dtype), (key, value.dtype)
            np.testing.assert_array_equal(bits(value), bits(other), err_msg=f"state[{i}][{key!r}]")


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("name", ["Adam", "RMSprop", "Adadelta", "Adagrad"])
def test_16bit_parameters_move_and_match_float32_math(name, dtype):
    """One step from zero state equals the float32 step on the widened values, rounded once: the 16-bit
    path is float32 math with one rounding per store (not a rounding per operation). Adagrad meets lr
    and eps rounded to the param's format first, as torch's fused Adagrad."""
    p16 = draw(5000, dtype, 1)
    g16 = draw(5000, dtype, 2, scale=0.1)
    p32, g32 = p16.astype(np.float32), g16.astype(np.float32)
    before = p16.copy()
    getattr(fastopt, name)([p16], lr=0.01).step([g16])
    extra = {}
    if name == "Adagrad":
        extra = {"lr": float(np.float32(0.01).astype(dtype)), "eps": float(np.float32(1e-10).astype(dtype))}
    getattr(fastopt, name)([p32], **{"lr": 0.01, **extra}).step([g32])
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(bits(p16), bits(p32.astype(dtype)))
    if name != "Adadelta":  # its first steps (about sqrt(eps)) are below half a bfloat16 ulp: they stall
        assert np.mean(bits(p16) != bits(before)) > 0.5


@pytest.mark.parametrize("dtype", HALF)
def test_16bit_results_do_not_depend_on_threads(dtype):
    shapes = [(70_001,), (9000,)]
    case = next(c for c in fastopt._registry.CASES if c.name == "Adam")
    results = []
    previous = fastopt.get_num_threads()
    try:
        for threads in (1, 2, 3):
            fastopt.set_num_threads(threads)
            params, opt = _run(case, {"amsgrad": True}, "cython", shapes, dtype, steps=3)
            results.append([bits(p) for p in params] + [bits(opt.state[0]["exp_avg_sq"])])
    finally:
        fastopt.set_num_threads(previous)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", HALF)
def test_fused_clipping_with_16bit_gradients(dtype):
    """max_grad_norm's norm pass reads 16-bit gradients (widened exactly) and scales them in the step."""
    shapes = [(3000,), (77,)]
    case = next(c for c in fastopt._registry.CASES if c.name == "AdamW")
    p_kernel, _ = _run(case, {}, "cython", shapes, dtype, max_grad_norm=0.5)
    p_ref, _ = _run(case, {}, "numpy", shapes, dtype, max_grad_norm=0.5)
    p_plain, _ = _run(case, {}, "cython", shapes, dtype)
    for a, b, c in zip(p_kernel, p_ref, p_plain):
        np.testing.assert_array_equal(bits(a), bits(b))
    assert any(np.any(bits(a) != bits(c)) for a, c in zip(p_kernel, p_plain))
    g = [draw(s, dtype, 5) for s in shapes]
    norm = fastopt.clip.get_total_norm(g)
    assert norm == pytest.approx(np.sqrt(sum(float(np.sum(x.astype(np.float64) ** 2)) for x in g)), rel=1e-12)


# -- the precision options: rounding, master_weights, state_dtype -----------------------------------

OPTIONS = [
    pytest.param(ml_dtypes.bfloat16, {"rounding": "stochastic", "seed": 7}, id="bf16-stochastic"),
    pytest.param(ml_dtypes.bfloat16, {"master_weights": "split"}, id="bf16-split"),
    pytest.param(ml_dtypes.bfloat16, {"master_weights": "float32", "rounding": "stochastic", "seed": 3},
                 id="bf16-float32-master-stochastic"),
    pytest.param(np.float16, {"master_weights": "float32"}, id="f16-float32-master"),
    pytest.param(ml_dtypes.bfloat16, {"state_dtype": "float32"}, id="bf16-float32-state"),
    pytest.param(np.float32, {"state_dtype": "bfloat16", "rounding": "stochastic", "seed": 1}, id="f32-bf16-state"),
    pytest.param(np.float16, {"state_dtype": {"exp_avg": "bfloat16"}}, id="f16-bf16-exp_avg"),
]


@pytest.mark.parametrize(("case", "label", "kwargs"), CONFIGS)
@pytest.mark.parametrize(("dtype", "options"), OPTIONS)
def test_precision_options_kernel_matches_reference(case, label, kwargs, dtype, options):
    """Every rule with every option, the kernel against the twin: params and state bit for bit."""
    shapes = [(1,), (17,), (1031,), (3, 5, 2)]
    p_kernel, opt_kernel = _run(case, kwargs, "cython", shapes, dtype, **options)
    p_ref, opt_ref = _run(case, kwargs, "numpy", shapes, dtype, **options)
    for i, (a, b) in enumerate(zip(p_kernel, p_ref)):
        np.testing.assert_array_equal(bits(a), bits(b), err_msg=f"params[{i}]")
    for i in opt_kernel.state:
        assert list(opt_kernel.state[i]) == list(opt_ref.state[i])
        for key, value in opt_kernel.state[i].items():
            assert value.dtype == opt_ref.state[i][key].dtype
            np.testing.assert_array_equal(bits(value), bits(opt_ref.state[i][key]), err_msg=f"state[{i}][{key!r}]")


def _master(p, state):
    """The float32 master of a split bfloat16 param: its bits and its low halves."""
    u = (p.view(np.uint16).astype(np.uint32) << 16) + state["param_lo"].astype(np.int32).view(np.uint32)
    return u.view(np.float32)


@pytest.mark.parametrize(("name", "kwargs"), [("AdamW", {}), ("SGD", {"momentum": 0.9, "nesterov": True}),
                                              ("RMSprop", {"centered": True}), ("NAdam", {})])
def test_split_masters_reproduce_the_float32_run_bit_for_bit(name, kwargs):
    """A bfloat16 model with split masters and float32 state is the float32 run, exactly (the same
    gradients); the bfloat16 params are its masters rounded to nearest."""
    rng = np.random.default_rng(0)
    p32 = rng.standard_normal(5003).astype(np.float32)
    hi = np.zeros(5003, np.uint16)
    u = p32.view(np.uint32)
    hi[...] = ((u + np.uint32(0x8000)) >> np.uint32(16)).astype(np.uint16)
    p16 = hi.view(ml_dtypes.bfloat16)
    opt16 = getattr(fastopt, name)([p16], lr=1e-3, master_weights="split", **kwargs)
    opt16.state[0] = {**opt16._new_state(p16, opt16.param_groups[0])}
    opt16.state[0]["param_lo"][...] = (u - (hi.astype(np.uint32) << np.uint32(16))).astype(np.uint16).view(np.int16)
    assert np.array_equal(_master(p16, opt16.state[0]), p32)
    opt32 = getattr(fastopt, name)([p32], lr=1e-3, **kwargs)
    for t in range(30):
        g = rng.standard_normal(5003).astype(ml_dtypes.bfloat16)
        opt16.step([g])
        opt32.step([g.astype(np.float32)])
    np.testing.assert_array_equal(_master(p16, opt16.state[0]).view(np.uint32), p32.view(np.uint32))
    assert opt16.state[0]["exp_avg" if "Adam" in name else next(iter(k for k in opt16.state[0] if k not in ("step", "param_lo")))].dtype == np.float32


def test_stochastic_rounding_is_unbiased_and_reproducible():
    """1 - g with g = -5 * 2**-11 lies 5/16 of the way from 1 to the next bfloat16: rounded stochastically
    about 31.25% of 200,000 elements go up (5 sigma: 0.35 points); the same seed gives the same bits
    (also on 3 threads), another seed other bits; the twin the same bits."""
    def run(seed, backend="cython", threads=1):
        p = np.ones(200_000, ml_dtypes.bfloat16)
        previous = fastopt.get_num_threads()
        fastopt.set_num_threads(threads)
        try:
            fastopt.SGD([p], lr=1.0, rounding="stochastic", seed=seed, backend=backend).step(
                [np.full(200_000, -5 * 2.0 ** -11, ml_dtypes.bfloat16)])
        finally:
            fastopt.set_num_threads(previous)
        return p.astype(np.float32)
    first = run(11)
    assert set(np.unique(first)) == {1.0, 1.0 + 2.0 ** -7}
    assert abs(np.mean(first > 1.0) - 5 / 16) < 0.0035
    np.testing.assert_array_equal(first, run(11, threads=3))
    np.testing.assert_array_equal(first, run(11, backend="numpy"))
    assert np.mean(first != run(12)) > 0.3
    nearest = np.ones(10, ml_dtypes.bfloat16)
    fastopt.SGD([nearest], lr=1.0).step([np.full(10, -5 * 2.0 ** -11, ml_dtypes.bfloat16)])
    assert np.all(nearest.astype(np.float32) == 1.0)  # to nearest, such small steps are lost


def test_stochastic_rounding_resumes_from_a_state_dict():
    p = draw(5000, ml_dtypes.bfloat16, 0)
    opt = fastopt.Adam([p], lr=0.01, rounding="stochastic")  # a seed drawn from the OS
    opt.step([draw(5000, ml_dtypes.bfloat16, 1)])
    q = p.copy()
    resumed = fastopt.Adam([q], lr=0.01, rounding="stochastic", seed=123)
    resumed.load_state_dict(opt.state_dict())
    for t in range(3):
        g = draw(5000, ml_dtypes.bfloat16, t + 2)
        opt.step([g])
        resumed.step([g])
    np.testing.assert_array_equal(bits(p), bits(q))


def test_stochastic_rounding_keeps_small_steps_that_nearest_loses():
    """The reason stochastic rounding exists: many steps each below half an ulp."""
    results = {}
    for rounding in ("nearest", "stochastic"):
        p = np.ones(4096, ml_dtypes.bfloat16)
        opt = fastopt.SGD([p], lr=1e-4, rounding=rounding, seed=0)
        for _ in range(200):
            opt.step([np.ones(4096, ml_dtypes.bfloat16)])
        results[rounding] = float(np.mean(p.astype(np.float64)))
    assert results["nearest"] == 1.0
    assert results["stochastic"] == pytest.approx(1.0 - 200 * 1e-4, abs=2e-3)


@pytest.mark.parametrize(("dtype", "options", "message"), [
    (np.float32, {"master_weights": "split"}, r"master_weights='split' is for bfloat16 parameters, not params\[0\] \(float32\)"),
    (np.float16, {"master_weights": "split"}, r"not params\[0\] \(float16\)"),
    (np.float64, {"master_weights": "float32"}, r"master_weights='float32' is for bfloat16 and float16"),
    (np.float16, {"rounding": "stochastic"}, r"rounding='stochastic' is for bfloat16 stores"),
    (np.float64, {"state_dtype": "bfloat16"}, r"state_dtype='bfloat16' is for float32 and 16-bit"),
])
def test_options_that_do_not_fit_a_parameter(dtype, options, message):
    with pytest.raises(ValueError, match=message):
        fastopt.Adam([np.zeros(3, dtype)], **options)
    opt = fastopt.Adam([np.zeros(3, ml_dtypes.bfloat16)], **options)  # fits them all
    with pytest.raises(ValueError, match=message.replace("params\\[0\\]", "params\\[1\\]")):
        opt.add_param_group({"params": [np.zeros(3, dtype)]})


@pytest.mark.parametrize(("options", "error"), [
    ({"rounding": "up"}, ValueError), ({"master_weights": "bf16"}, ValueError), ({"state_dtype": "q16"}, ValueError),
    ({"state_dtype": {"exp_avg": "int8"}}, ValueError), ({"seed": 1.5}, TypeError), ({"seed": True}, TypeError),
])
def test_bad_precision_options(options, error):
    with pytest.raises(error):
        fastopt.SGD([np.zeros(3, np.float32)], **options)


def test_split_state_dict_round_trip_and_master_from_a_plain_checkpoint():
    opt, resumed = _resume_after(3, master_weights="split")
    assert resumed.state[0]["param_lo"].dtype == np.int16
    np.testing.assert_array_equal(opt.state[0]["param_lo"], resumed.state[0]["param_lo"])
    g = draw(300, ml_dtypes.bfloat16, 9)
    plain = fastopt.Adam([draw(300, ml_dtypes.bfloat16, 0)], lr=0.01)
    plain.step([g])
    master = fastopt.Adam([draw(300, ml_dtypes.bfloat16, 0)], lr=0.01, master_weights="float32")
    master.load_state_dict(plain.state_dict())  # the master starts as the param; bf16 state widens
    assert master.state[0]["master_param"].dtype == np.float32
    assert master.state[0]["exp_avg"].dtype == np.float32


# -- checks -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", HALF)
def test_16bit_gradient_of_another_dtype_is_rejected_before_anything_changes(dtype):
    p = draw(10, dtype, 0)
    other = draw(10, dtype, 1)
    opt = fastopt.Adam([p, other], lr=0.1)
    opt.step([draw(10, dtype, 2), draw(10, dtype, 3)])
    snapshot = (p.copy(), other.copy(), {k: v.copy() for k, v in opt.state[0].items()})
    with pytest.raises(TypeError, match=r"grads\[1\] has dtype float32, expected " + np.dtype(dtype).name):
        opt.step([draw(10, dtype, 4), draw(10, np.float32, 5)])
    np.testing.assert_array_equal(bits(p), bits(snapshot[0]))
    np.testing.assert_array_equal(bits(other), bits(snapshot[1]))
    for key, value in opt.state[0].items():
        np.testing.assert_array_equal(bits(value), bits(snapshot[2][key]))


def test_mixed_dtypes_in_one_group():
    """As torch: each parameter keeps its own dtype and its state's."""
    a, b, c = draw(7, ml_dtypes.bfloat16, 0), draw(7, np.float16, 1), draw(7, np.float32, 2)
    opt = fastopt.Adam([a, b, c], lr=0.1)
    opt.step([draw(7, ml_dtypes.bfloat16, 3), draw(7, np.float16, 4), draw(7, np.float32, 5)])
    assert [opt.state[i]["exp_avg"].dtype for i in range(3)] == [a.dtype, b.dtype, c.dtype]
    assert [opt.state[i]["step"].dtype for i in range(3)] == [np.float32] * 3


def _resume_after(steps, **options):
    """An Adam on a bfloat16 param after ``steps`` steps, and a fresh one loaded from its state_dict;
    both take one more step, which must give the same bits."""
    p = draw(300, ml_dtypes.bfloat16, 0)
    opt = fastopt.Adam([p], lr=0.01, **options)
    for t in range(steps):
        opt.step([draw(300, ml_dtypes.bfloat16, t + 1)])
    q = p.copy()
    resumed = fastopt.Adam([q], lr=0.01, **options)
    resumed.load_state_dict(opt.state_dict())
    g = draw(300, ml_dtypes.bfloat16, 99)
    opt.step([g])
    resumed.step([g])
    np.testing.assert_array_equal(bits(p), bits(q))
    return opt, resumed


def test_16bit_state_dict_round_trip():
    _, resumed = _resume_after(1)
    assert resumed.state[0]["exp_avg"].dtype == ml_dtypes.bfloat16
