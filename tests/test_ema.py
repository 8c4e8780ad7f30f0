"""``fastopt.kernels.ema_update`` (the fused lerp kernel) and ``fastopt.EMA`` (weight averaging).

The kernel is checked bit for bit against its NumPy twin (``fastopt.reference.ema_update``) on every
instruction-set variant this CPU can run, against torch's ``lerp_`` within float rounding, and for its
all-or-nothing argument checks. ``EMA`` is checked against the closed form of the average, timm's
warm-up schedule, its state_dict/pickle round trips, its NumPy backend, and in a training loop.
"""
import math
import pickle

import numpy as np
import pytest

import fastopt
from fastopt import reference
from fastopt._kernels import BUILT, load
from fastopt._kernels._runtime import supported

DTYPES = [np.float32, np.float64]
SHAPES = [(), (0,), (1,), (17,), (70000,), (3, 5)]  # 0-d, empty, 1, odd, > one block (threads), 2-d
# below 0.5 (s + w (p - s)) and at/above it (p - (p - s)(1 - w)); 0.49999999 is < 0.5 in float64 but
# rounds to 0.5 in float32 (the branch follows the weight as rounded to the dtype, as torch's)
WEIGHTS = [0.0, 1e-3, 0.25, 0.49999999, 0.5, 0.75, 0.999, 1.0, -0.25, 1.5]
ISAS = [isa for isa in supported() if isa in BUILT]


def _ema_kernels():
    return {isa: load(isa)["tools"].ema_update for isa in ISAS}


KERNELS = _ema_kernels()


def _pairs(dtype, seed=0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    shadows = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    params = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    return shadows, params


def _bits(arrays):
    return [a.tobytes() for a in arrays]


def _tol(dtype):
    return dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)


# -- the kernel ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("weight", WEIGHTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_kernel_bit_identical_to_reference(isa, weight, dtype):
    shadows, params = _pairs(dtype, seed=int(weight * 1000) % 97)
    expected = [s.copy() for s in shadows]
    reference.ema_update(expected, params, weight, 1)
    for n_threads in (1, 2):
        got = [s.copy() for s in shadows]
        params_before = _bits(params)
        KERNELS[isa](got, params, weight, n_threads)
        assert _bits(got) == _bits(expected), (isa, n_threads)
        assert _bits(params) == params_before  # params are only read
        assert [g.shape for g in got] == [s.shape for s in shadows]


def test_kernel_branch_follows_weight_rounded_to_dtype():
    """0.49999999 takes the w >= 0.5 branch in float32 (it rounds to 0.5) and the other in float64: the
    two formulas give different bits on this data, so a kernel picking the branch from the unrounded
    double weight would differ from the reference here."""
    rng = np.random.default_rng(7)
    s = rng.standard_normal(4097).astype(np.float32)
    p = rng.standard_normal(4097).astype(np.float32)
    w = np.float32(0.49999999)
    assert w == 0.5
    low = s + w * (p - s)
    high = p - (p - s) * (np.float32(1) - w)
    assert not np.array_equal(low, high)
    got = s.copy()
    fastopt.kernels.ema_update([got], [p], 0.49999999, 1)
    assert got.tobytes() == high.tobytes()


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_kernel_mixed_dtypes_in_one_call(dtype):
    other = np.float64 if dtype == np.float32 else np.float32
    s1, p1 = _pairs(dtype, seed=3)
    s2, p2 = _pairs(other, seed=4)
    shadows = [a for pair in zip(s1, s2) for a in pair]
    params = [a for pair in zip(p1, p2) for a in pair]
    expected = [s.copy() for s in shadows]
    reference.ema_update(expected, params, 0.1, 1)
    fastopt.kernels.ema_update(shadows, params, 0.1, 2)
    assert _bits(shadows) == _bits(expected)


def test_kernel_closed_form_values():
    s = np.array([0.0, 1.0, -2.0, 10.0])
    p = np.array([1.0, 1.0, 2.0, 0.0])
    for weight, want in ((0.25, [0.25, 1.0, -1.0, 7.5]), (0.75, [0.75, 1.0, 1.0, 2.5]),
                         (0.0, s), (1.0, p)):
        got = s.copy()
        fastopt.kernels.ema_update([got], [p], weight, 1)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("weight", [1e-3, 0.1, 0.3, 0.49, 0.5, 0.7, 0.999, 1.0, 0.0])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_kernel_matches_torch_lerp(weight, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    s = (rng.standard_normal(70001) * 3).astype(dtype)
    p = (rng.standard_normal(70001) * 3).astype(dtype)
    got = s.copy()
    fastopt.kernels.ema_update([got], [p], weight, 2)
    ts = torch.from_numpy(s.copy())
    ts.lerp_(torch.from_numpy(p), weight)
    want = ts.numpy()
    # torch may contract to FMA: allow a couple of roundings of the operands' magnitude
    bound = 2 * np.finfo(dtype).eps * (np.abs(s).astype(np.float64) + np.abs(p))
    assert np.all(np.abs(got.astype(np.float64) - want) <= bound)


def _assert_rejected(exc, match, make):
    """Both the kernel and the reference raise ``exc`` and write nothing. ``make()`` returns (shadows,
    params, weight, n_threads, watched) where ``watched`` are arrays that must keep their bits."""
    for ops in (fastopt.kernels, reference):
        shadows, params, weight, n_threads, watched = make()
        before = _bits(watched)
        with pytest.raises(exc, match=match):
            ops.ema_update(shadows, params, weight, n_threads)
        assert _bits(watched) == before, ops


def _good():
    return np.arange(5.0), np.full(5, 10.0)


@pytest.mark.parametrize("case", [
    "shadow_is_param", "shadow_views_param", "shadow_is_other_param", "shadows_overlap"])
def test_kernel_overlap_raises(case):
    def make():
        s0, p0 = _good()
        buf = np.arange(12.0)
        if case == "shadow_is_param":
            s1 = p1 = np.ones(4)
        elif case == "shadow_views_param":
            s1, p1 = buf[:6], buf[4:10]
        elif case == "shadow_is_other_param":
            s1, p1 = np.ones(5), np.ones(5)
            return [s0, s1], [p0, s0], 0.3, 1, [s0, s1, p0]
        else:
            s1, p1 = buf[2:7], np.zeros(5)
            return [buf[:5], s1], [p0, p1], 0.3, 1, [buf]
        return [s0, s1], [p0, p1], 0.3, 1, [s0, s1, p1, buf]
    _assert_rejected(ValueError, "overlap", make)


def test_kernel_params_may_share_memory():
    """Params are only read: one array given for two shadows is fine (no false overlap error)."""
    p = np.linspace(-1, 1, 9)
    a, b = np.zeros(9), np.ones(9)
    fastopt.kernels.ema_update([a, b], [p, p], 0.5, 2)
    np.testing.assert_array_equal(a, p * 0.5)
    np.testing.assert_array_equal(b, 0.5 + p * 0.5)


@pytest.mark.parametrize("case, exc, match", [
    ("param_none", TypeError, r"params\[1\]"),
    ("shadow_none", TypeError, r"shadows\[1\]"),
    ("param_list", TypeError, r"params\[1\]"),
    ("param_dtype", TypeError, "dtype"),
    ("shadow_int", TypeError, "dtype"),
    ("param_size", ValueError, "elements"),
    ("shadow_strided", ValueError, "contiguous"),
    ("shadow_readonly", ValueError, "read-only"),
    ("lengths", ValueError, "entries"),
    ("not_lists", TypeError, "shadows"),
    ("threads", ValueError, "n_threads"),
])
def test_kernel_bad_arguments_write_nothing(case, exc, match):
    def make():
        s0, p0 = _good()  # the valid first pair: must not be written
        s1, p1 = np.zeros(5), np.ones(5)
        threads = 1
        if case == "param_none":
            p1 = None
        elif case == "shadow_none":
            s1 = None
        elif case == "param_list":
            p1 = [1.0] * 5
        elif case == "param_dtype":
            p1 = p1.astype(np.float32)
        elif case == "shadow_int":
            s1 = np.zeros(5, dtype=np.int64)
        elif case == "param_size":
            p1 = np.ones(6)
        elif case == "shadow_strided":
            s1 = np.zeros(10)[::2]
        elif case == "shadow_readonly":
            s1.setflags(write=False)
        elif case == "threads":
            threads = 0
        shadows, params = [s0, s1], [p0, p1]
        if case == "lengths":
            params = [p0]
        if case == "not_lists":
            shadows = s0
        return shadows, params, 0.3, threads, [s0] + [a for a in (s1,) if isinstance(a, np.ndarray)]
    _assert_rejected(exc, match, make)


def test_kernel_empty_list_is_a_no_op():
    fastopt.kernels.ema_update([], [], 0.5, 2)
    reference.ema_update([], [], 0.5, 2)


# -- EMA --------------------------------------------------------------------------------------------------

def _params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for shape in [(), (0,), (1,), (17,), (4, 3), (5000,)]]


def _perturb(params, rng):
    """What an optimizer does between updates: change the params in place."""
    for p in params:
        p[...] = p + rng.standard_normal(p.shape).astype(p.dtype)


@pytest.mark.parametrize("backend", ["cython", "numpy"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_ema_matches_closed_form(dtype, backend):
    params = _params(dtype)
    decay = 0.9
    ema = fastopt.EMA(params, decay=decay, backend=backend)
    assert all(s is not p and np.array_equal(s, p) for s, p in zip(ema.shadow, params))
    expected = [p.astype(np.float64) for p in params]
    rng = np.random.default_rng(1)
    for t in range(6):
        _perturb(params, rng)
        before = _bits(params)
        ema.update()
        assert _bits(params) == before  # update() never writes the params
        expected = [decay * e + (1 - decay) * p for e, p in zip(expected, params)]
        for s, e in zip(ema.shadow, expected):
            assert s.dtype == dtype
            np.testing.assert_allclose(s, e, **_tol(dtype))
    assert ema.num_updates == 6
    # the average really lags: it is not the params
    assert not np.allclose(ema.shadow[-1], params[-1])


def test_ema_decay_extremes():
    p = np.linspace(-3, 3, 11)
    start = p.copy()
    frozen = fastopt.EMA([p], decay=1.0)
    follow = fastopt.EMA([p], decay=0.0)
    p += 5.0
    frozen.update()
    follow.update()
    np.testing.assert_array_equal(frozen.shadow[0], start)
    np.testing.assert_array_equal(follow.shadow[0], p)


def test_ema_shadow_copied_at_construction_and_update_reads_current_params():
    p = np.zeros(3)
    ema = fastopt.EMA([p], decay=0.75)
    p[...] = 4.0  # after construction, before the update: the update must read this
    np.testing.assert_array_equal(ema.shadow[0], 0.0)
    ema.update()
    np.testing.assert_array_equal(ema.shadow[0], 1.0)


def _timm_decay(t, decay, gamma, power, min_decay):
    return max(min(decay, 1 - (1 + t / gamma) ** -power), min_decay)


@pytest.mark.parametrize("decay, gamma, power, min_decay", [
    (0.999, 1.0, 2 / 3, 0.0),   # timm's defaults: still warming up after 60 updates
    (0.9, 1.0, 2 / 3, 0.0),     # the cap (decay) is reached at t = 31
    (0.9999, 10.0, 0.75, 0.3),  # the floor (min_decay) holds early on
])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_ema_warmup_schedule(dtype, decay, gamma, power, min_decay):
    params = _params(dtype, seed=2)
    ema = fastopt.EMA(params, decay=decay, warmup=True, warmup_gamma=gamma, warmup_power=power,
                      min_decay=min_decay)
    mirror = [s.copy() for s in ema.shadow]
    rng = np.random.default_rng(3)
    used = []
    for t in range(60):
        want = _timm_decay(t, decay, gamma, power, min_decay)
        assert ema.current_decay() == pytest.approx(want, rel=1e-15, abs=0)
        used.append(want)
        _perturb(params, rng)
        ema.update()
        # the update really used that decay (an off-by-one in t would use another weight)
        reference.ema_update(mirror, params, 1.0 - want, 1)
        assert _bits(ema.shadow) == _bits(mirror), t
        if t == 0 and min_decay == 0.0:  # decay 0 at t = 0: the first average is the params
            assert _bits(ema.shadow) == _bits(params)
    assert used == sorted(used)
    assert used[-1] <= decay and used[0] == max(min_decay, 0.0)
    if decay == 0.9:
        assert used[30] < 0.9 and used[31] == 0.9


def test_ema_without_warmup_uses_constant_decay():
    ema = fastopt.EMA([np.zeros(2)], decay=0.97)
    for _ in range(3):
        assert ema.current_decay() == 0.97
        ema.update()


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_ema_numpy_backend_bit_identical(dtype):
    a, b = _params(dtype, seed=4), _params(dtype, seed=4)
    ema_c = fastopt.EMA(a, decay=0.95, warmup=True, backend="cython")
    ema_n = fastopt.EMA(b, decay=0.95, warmup=True, backend="numpy")
    ra, rb = np.random.default_rng(5), np.random.default_rng(5)
    for _ in range(25):
        _perturb(a, ra)
        _perturb(b, rb)
        ema_c.update()
        ema_n.update()
        assert _bits(ema_c.shadow) == _bits(ema_n.shadow)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_ema_matches_torch_ema_multi_avg_fn(dtype):
    torch = pytest.importorskip("torch")
    from torch.optim.swa_utils import get_ema_multi_avg_fn
    params = _params(dtype, seed=6)
    ema = fastopt.EMA(params, decay=0.9)
    tshadow = [torch.from_numpy(p.copy()) for p in params]
    avg = get_ema_multi_avg_fn(0.9)
    rng = np.random.default_rng(7)
    for n in range(5):
        _perturb(params, rng)
        ema.update()
        avg(tshadow, [torch.from_numpy(p) for p in params], torch.tensor(n + 1))
    for s, t in zip(ema.shadow, tshadow):
        np.testing.assert_allclose(s, t.numpy(), **_tol(dtype))


def test_copy_to_params_and_other_arrays():
    params = _params(np.float64, seed=8)
    ema = fastopt.EMA(params, decay=0.5)
    _perturb(params, np.random.default_rng(9))
    ema.update()
    # into other arrays (float32 receives the cast values), params untouched
    out = [np.empty(p.shape, dtype=np.float32) for p in params]
    before = _bits(params)
    ema.copy_to(out)
    assert _bits(params) == before
    for o, s in zip(out, ema.shadow):
        assert o.dtype == np.float32
        np.testing.assert_array_equal(o, s.astype(np.float32))
    # into the params (default): equal values, still separate arrays
    ema.copy_to()
    assert _bits(params) == _bits(ema.shadow)
    params[0][...] = 123.0
    assert ema.shadow[0] != 123.0
    # after copy_to the next update averages the (now equal) params: nothing moves
    shadow = _bits(ema.shadow)
    params[0][...] = ema.shadow[0]
    ema.update()
    assert _bits(ema.shadow) == shadow


@pytest.mark.parametrize("case", ["count", "shape", "readonly", "not_array"])
def test_copy_to_bad_arrays_write_nothing(case):
    ema = fastopt.EMA([np.zeros(3), np.zeros((2, 2))], decay=0.5)
    first = np.full(3, 7.0)
    second = {"count": None, "shape": np.full(4, 7.0), "readonly": np.full((2, 2), 7.0),
              "not_array": [[7.0, 7.0], [7.0, 7.0]]}[case]
    if case == "readonly":
        second.setflags(write=False)
    arrays = [first] if case == "count" else [first, second]
    with pytest.raises(ValueError):
        ema.copy_to(arrays)
    np.testing.assert_array_equal(first, 7.0)


def test_copy_to_uncastable_array_writes_nothing():
    """Regression: copy_to checked shapes and writability up front but not castability, so an int
    array second in the list raised only after the first had been overwritten."""
    ema = fastopt.EMA([np.zeros(3), np.zeros(2)], decay=0.5)
    first = np.full(3, 7.0)
    with pytest.raises((TypeError, ValueError)):
        ema.copy_to([first, np.ones(2, dtype=np.int64)])
    np.testing.assert_array_equal(first, 7.0)


def _run(ema, params, rng, n):
    for _ in range(n):
        _perturb(params, rng)
        ema.update()


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_state_dict_round_trip_continues_identically(dtype):
    params = _params(dtype, seed=10)
    ema = fastopt.EMA(params, decay=0.99, warmup=True, warmup_gamma=2.0, warmup_power=0.8, min_decay=0.1)
    _run(ema, params, np.random.default_rng(11), 7)
    sd = ema.state_dict()
    assert set(sd) == {"decay", "min_decay", "warmup", "warmup_gamma", "warmup_power", "num_updates", "shadow"}
    assert sd["num_updates"] == 7
    # copies: changing the dict does not change the EMA
    sd_shadow_bits = _bits(sd["shadow"])
    sd["shadow"][2][...] = 99.0
    assert not np.any(ema.shadow[2] == 99.0)
    sd["shadow"][2][...] = np.frombuffer(sd_shadow_bits[2], dtype=dtype).reshape(sd["shadow"][2].shape)
    sd = pickle.loads(pickle.dumps(sd))

    other = fastopt.EMA(params, decay=0.5)  # different settings, replaced by the load
    other.load_state_dict(sd)
    assert other.num_updates == 7 and other.current_decay() == ema.current_decay()
    assert (other.decay, other.min_decay, other.warmup, other.warmup_gamma, other.warmup_power) == \
        (0.99, 0.1, True, 2.0, 0.8)
    assert _bits(other.shadow) == _bits(ema.shadow)
    rng = np.random.default_rng(12)
    for _ in range(5):
        _perturb(params, rng)
        ema.update()
        other.update()
        assert _bits(other.shadow) == _bits(ema.shadow)
    assert other.num_updates == ema.num_updates == 12


def test_pickled_ema_continues_identically():
    params = _params(np.float32, seed=13)
    ema = fastopt.EMA(params, decay=0.9, warmup=True)
    _run(ema, params, np.random.default_rng(14), 4)
    clone = pickle.loads(pickle.dumps(ema))
    assert clone.num_updates == 4 and _bits(clone.shadow) == _bits(ema.shadow)
    ra, rb = np.random.default_rng(15), np.random.default_rng(15)
    for _ in range(4):
        _perturb(params, ra)
        _perturb(clone.params, rb)
        ema.update()
        clone.update()
    assert _bits(clone.shadow) == _bits(ema.shadow)
    assert _bits(clone.params) == _bits(params)


@pytest.mark.parametrize("kwargs, exc", [
    (dict(decay=-0.1), ValueError), (dict(decay=1.0001), ValueError), (dict(decay=float("nan")), ValueError),
    (dict(decay=float("inf")), ValueError), (dict(decay="0.9"), TypeError), (dict(decay=True), TypeError),
    (dict(min_decay=-0.5), ValueError), (dict(min_decay=2.0), ValueError),
    (dict(warmup=1), TypeError), (dict(warmup_gamma=0.0), ValueError), (dict(warmup_power=-1.0), ValueError),
    (dict(warmup_gamma=float("inf")), ValueError), (dict(backend="torch"), ValueError),
])
def test_ema_bad_hyperparameters(kwargs, exc):
    p = np.arange(3.0)
    with pytest.raises(exc):
        fastopt.EMA([p], **kwargs)
    np.testing.assert_array_equal(p, [0.0, 1.0, 2.0])


def _readonly():
    a = np.zeros(3)
    a.setflags(write=False)
    return a


@pytest.mark.parametrize("params, exc", [
    (np.zeros(3), TypeError),                         # one array, not a list of arrays
    (3.0, TypeError),
    ([[0.0, 1.0]], TypeError),                        # a list, not an array
    ([np.zeros(3), None], TypeError),
    ([np.zeros(3, dtype=np.int64)], TypeError),
    ([np.zeros((4, 4))[:, 0]], ValueError),           # not C-contiguous
    ([_readonly()], ValueError),
], ids=["ndarray", "float", "nested_list", "none", "int", "strided", "readonly"])
def test_ema_bad_params(params, exc):
    with pytest.raises(exc):
        fastopt.EMA(params)


def _bad_state(sd, case):
    sd = dict(sd, shadow=[s.copy() for s in sd["shadow"]])
    if case == "shape":
        sd["shadow"][1] = np.zeros((3, 4))          # the second of the list: the first must stay
    elif case == "same_size_other_shape":
        sd["shadow"][1] = sd["shadow"][1].reshape(3, 4)
    elif case == "count":
        sd["shadow"] = sd["shadow"][:1]
    elif case == "num_updates":
        sd["num_updates"] = -1
    elif case == "num_updates_float":
        sd["num_updates"] = 2.5
    elif case == "decay":
        sd["decay"] = 1.5
    elif case == "gamma":
        sd["warmup_gamma"] = 0.0
    elif case == "missing":
        del sd["shadow"]
    elif case == "not_dict":
        sd = list(sd.items())
    return sd


@pytest.mark.parametrize("case, exc", [
    ("shape", ValueError), ("same_size_other_shape", ValueError), ("count", ValueError),
    ("num_updates", ValueError), ("num_updates_float", ValueError), ("decay", ValueError),
    ("gamma", ValueError), ("missing", TypeError), ("not_dict", TypeError),
])
def test_load_state_dict_bad_changes_nothing(case, exc):
    params = [np.arange(3.0), np.arange(12.0).reshape(4, 3)]
    ema = fastopt.EMA(params, decay=0.9, warmup=True)
    _run(ema, params, np.random.default_rng(16), 3)
    source = fastopt.EMA([p * 2 for p in params], decay=0.5)
    _run(source, source.params, np.random.default_rng(17), 5)
    bad = _bad_state(source.state_dict(), case)
    before = ema.state_dict()
    with pytest.raises(exc):
        ema.load_state_dict(bad)
    after = ema.state_dict()
    assert _bits(after.pop("shadow")) == _bits(before.pop("shadow"))
    assert after == before


def test_ema_of_adam_weights_beats_noisy_iterates():
    """Minibatch Adam with a constant lr on a least-squares problem rattles around the optimum; the EMA
    of its weights averages the noise away and sits much closer (with decay 0 it would equal the
    iterates: ratio 1)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 3.0]) + 0.5 * rng.standard_normal(256)
    w_star = np.linalg.lstsq(X, y, rcond=None)[0]
    w = np.zeros(4)
    opt = fastopt.Adam([w], lr=0.05)
    ema = fastopt.EMA([w], decay=0.98)
    lazy = fastopt.EMA([w], decay=0.0)
    d_iter, d_ema, d_lazy = [], [], []
    for t in range(1500):
        idx = rng.integers(0, 256, 8)
        grad = 2 / 8 * X[idx].T @ (X[idx] @ w - y[idx])
        previous = ema.shadow[0].copy()
        opt.step([grad])
        ema.update()
        lazy.update()
        # one update moves the average 2% of the way to the params, exactly
        np.testing.assert_allclose(ema.shadow[0], previous + 0.02 * (w - previous), rtol=1e-12, atol=1e-15)
        if t >= 1000:
            d_iter.append(np.linalg.norm(w - w_star))
            d_ema.append(np.linalg.norm(ema.shadow[0] - w_star))
            d_lazy.append(np.linalg.norm(lazy.shadow[0] - w_star))
    assert np.mean(d_iter) > 0.05  # the iterates really are noisy
    assert np.mean(d_ema) < 0.6 * np.mean(d_iter)
    assert d_lazy == d_iter
    assert not np.array_equal(ema.shadow[0], w)
    ema.copy_to()
    assert np.linalg.norm(w - w_star) < np.mean(d_iter)
