"""Quantized optimizer state (``state_dtype="q8"`` and ``"q4"``): bitsandbytes' maps, the kernels' exact
nearest-code lookup against searchsorted, kernels against their NumPy twins bit for bit, any thread
count, bitsandbytes' own 8-bit accuracy test, state_dict round trips and the bytes it saves."""
import pickle

import numpy as np
import pytest
from _helpers import CONFIGS

import fastopt
from fastopt import _formats
from fastopt._kernels._runtime import Quantized
from fastopt.reference import _formats as twin

ml_dtypes = pytest.importorskip("ml_dtypes")


def state_bits(value):
    if isinstance(value, Quantized):
        return np.concatenate([value.codes.view(np.uint8), value.absmax.view(np.uint8)])
    return np.ascontiguousarray(value).reshape(-1).view(np.uint8)


# -- the maps and the lookup -------------------------------------------------------------------------

def test_maps_are_bitsandbytes():
    """The embedded maps are bitsandbytes' create_dynamic_map, bit for bit (regenerated with its own
    code when it is installed, else its formula with torch's linspace), and k/16 for unsigned 4 bits."""
    for bits, signed in ((8, True), (8, False), (4, True), (4, False)):  # (what holds on any CPU)
        q = _formats.qmap(bits, signed)
        assert q.dtype == np.float32 and q.size == 2 ** bits and np.all(np.diff(q) > 0)
        assert q[-1] == 1.0 and (0.0 in q) == (bits == 8 or signed)
    np.testing.assert_array_equal(_formats.qmap(4, False), np.arange(1, 17, dtype=np.float32) / 16)
    torch = pytest.importorskip("torch")
    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        # torch's linspace and multiply round differently in their pre-AVX2 kernels (FMA or not): on such
        # a CPU bitsandbytes' own maps differ in the last bit (fastopt keeps the common one, and every
        # quantized state carries its map)
        pytest.skip(f"torch computes bitsandbytes' maps with other roundings on {torch.backends.cpu.get_cpu_capability()}")
    try:
        import bitsandbytes.functional as F
        make = F.create_dynamic_map
    except Exception:  # noqa: BLE001 - not installed, or it failed to load
        make = _torch_dynamic_map(torch)
    for args, (bits, signed) in (((True, 7, 8), (8, True)), ((False, 7, 8), (8, False)), ((True, 3, 4), (4, True))):
        theirs = np.unique(make(*args).cpu().numpy())  # (4 bits: without bitsandbytes' zero padding)
        np.testing.assert_array_equal(theirs.view(np.uint32), _formats.qmap(bits, signed).view(np.uint32))


def _torch_dynamic_map(torch):
    """bitsandbytes' create_dynamic_map, as its source writes it (for machines without it)."""
    def make(signed=True, max_exponent_bits=7, total_bits=8):
        data, non_sign_bits = [], total_bits - 1
        for i in range(max_exponent_bits):
            items = int(2 ** (i + non_sign_bits - max_exponent_bits) + 1 if signed
                        else 2 ** (i + non_sign_bits - max_exponent_bits + 1) + 1)
            boundaries = torch.linspace(0.1, 1, items, dtype=torch.float32)
            means = (boundaries[:-1] + boundaries[1:]) / 2.0
            data += ((10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
            if signed:
                data += (-(10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
        data += [0, 1.0]
        return torch.tensor(sorted(data), dtype=torch.float32)
    return make


def _stress_values(n=300_000, seed=0):
    """Values in [-1.1, 1.1] that stress the lookup: uniform, tiny magnitudes, every midpoint of every
    map and its float32 neighbours, zeros, NaN and inf, and a sweep of float32 bit patterns."""
    rng = np.random.default_rng(seed)
    parts = [rng.uniform(-1.1, 1.1, n).astype(np.float32),
             (rng.standard_normal(n) * 10.0 ** rng.uniform(-8, 0, n)).astype(np.float32)]
    for bits, signed in ((8, True), (8, False), (4, True), (4, False)):  # (what holds on any CPU)
        q = _formats.qmap(bits, signed)
        mid = (q[:-1] + q[1:]) * np.float32(0.5)
        parts += [mid, np.nextafter(mid, np.float32(-2)), np.nextafter(mid, np.float32(2)), q]
    parts.append(np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1.0, -1.0], np.float32))
    sweep = np.arange(0, 0x3F800001, 4093, dtype=np.uint32).view(np.float32)  # [0, 1] at every low-bit phase
    parts += [sweep, -sweep]
    return np.concatenate(parts)


@pytest.mark.parametrize(("bits", "signed"), [(8, True), (8, False), (4, True), (4, False)])
def test_kernel_lookup_is_nearest_code_ties_up(bits, signed):
    """The kernels' one-load, two-compare lookup gives searchsorted's nearest code (ties up) on every
    stressed value: each block starts with a 1.0, so its absmax is 1 and the values are coded as they
    are."""
    values = _stress_values()
    block = 256 if bits == 8 else 128
    x = np.clip(values, -1, 1)  # |x| <= 1: each block's absmax is then set by a 1.0 in it
    x = x[np.isfinite(x)]
    count = x.size // (block - 1) * (block - 1)
    blocks = np.concatenate([np.ones((count // (block - 1), 1), np.float32),
                             x[:count].reshape(-1, block - 1)], axis=1).reshape(-1)
    q = _formats.quantized(np.zeros(blocks.size, np.float32), "q8" if bits == 8 else "q4", signed, blocks.shape)
    q.quantize_from(blocks)
    mine = twin._codes(q)
    mid = (q.qmap[:-1] + q.qmap[1:]) * np.float32(0.5)
    np.testing.assert_array_equal(mine, np.searchsorted(mid, blocks, side="right"))
    reference = _formats.quantized(np.zeros(blocks.size, np.float32), q.format, signed, blocks.shape)
    twin.quantize_into(reference, blocks)
    np.testing.assert_array_equal(state_bits(q), state_bits(reference))


# -- kernels against their twins ---------------------------------------------------------------------

QUANT_OPTIONS = [
    pytest.param(np.float32, {"state_dtype": "q8"}, id="f32-q8"),
    pytest.param(np.float32, {"state_dtype": "q4"}, id="f32-q4"),
    pytest.param(ml_dtypes.bfloat16, {"state_dtype": "q8", "rounding": "stochastic", "seed": 5}, id="bf16-q8-sr"),
    pytest.param(ml_dtypes.bfloat16, {"master_weights": "split", "state_dtype": "q8"}, id="bf16-split-q8"),
    pytest.param(np.float16, {"state_dtype": {"exp_avg": "q4", "exp_avg_sq": "q8", "momentum_buffer": "q8",
                                              "square_avg": "q4", "sum": "q8"}}, id="f16-mixed"),
]


def _run(case, kwargs, backend, shapes, dtype, steps=4, **options):
    rng = np.random.default_rng(0)
    params = [rng.standard_normal(s).astype(np.float32).astype(dtype) for s in shapes]
    opt = case.cls(params, backend=backend, **kwargs, **options)
    for t in range(steps):
        opt.step([None if (t, i) == (1, 0) else (0.3 * rng.standard_normal(s)).astype(np.float32).astype(dtype)
                  for i, s in enumerate(shapes)])
    return params, opt


@pytest.mark.parametrize(("case", "label", "kwargs"), CONFIGS)
@pytest.mark.parametrize(("dtype", "options"), QUANT_OPTIONS)
def test_quantized_kernel_matches_reference(case, label, kwargs, dtype, options):
    """Quantized state on tensors of 4096+ elements (a partial last block, a small tensor that keeps
    float32 state before it), the kernel against the twin: params, codes and absmax bit for bit."""
    shapes = [(3,), (4100,), (64, 70)]
    p_kernel, opt_kernel = _run(case, kwargs, "cython", shapes, dtype, **options)
    p_ref, opt_ref = _run(case, kwargs, "numpy", shapes, dtype, **options)
    for a, b in zip(p_kernel, p_ref):
        np.testing.assert_array_equal(state_bits(a), state_bits(b))
    for i in opt_kernel.state:
        for key, value in opt_kernel.state[i].items():
            assert type(value) is type(opt_ref.state[i][key])
            np.testing.assert_array_equal(state_bits(value), state_bits(opt_ref.state[i][key]), err_msg=f"{i} {key}")
    assert not any(isinstance(v, Quantized) for v in opt_kernel.state.get(0, {}).values())  # under 4096: float32


def test_quantized_results_do_not_depend_on_threads():
    """Quantized items start on whole blocks whatever precedes them in the job, so any thread count
    gives the same codes."""
    shapes = [(1001,), (70_001,), (5,), (33_333,)]
    case = fastopt._registry.BY_NAME["Adam"]
    previous = fastopt.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            fastopt.set_num_threads(threads)
            params, opt = _run(case, {"amsgrad": True}, "cython", shapes, np.float32, state_dtype="q4")
            results.append([state_bits(p) for p in params] + [state_bits(v) for s in opt.state.values()
                                                               for v in s.values()])
    finally:
        fastopt.set_num_threads(previous)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


# -- accuracy: bitsandbytes' acceptance test ---------------------------------------------------------

@pytest.mark.parametrize("dim2", [32, 1024, 4097])
@pytest.mark.parametrize("dtype", [np.float32, ml_dtypes.bfloat16], ids=["float32", "bfloat16"])
def test_bitsandbytes_8bit_acceptance(dim2, dtype):
    """bitsandbytes' test_optimizer8bit for Adam, with its tolerances: p ~ 0.1 N(0,1) of shape
    (1024, dim2), 50 steps with g ~ 0.01 N(0,1) against float32 Adam; after every step fewer than 20
    state elements outside atol 3e-3 / rtol 1e-3, and the parameters' mean error below 6e-5 (float32)
    or 1.7e-4 (bfloat16) and mean relative error below 6e-4 or 1.6e-3; then, as that test does, the
    float32 run takes the 8-bit run's parameters and dequantized state."""
    rng = np.random.default_rng(0)
    p8 = (0.1 * rng.standard_normal((1024, dim2))).astype(np.float32).astype(dtype)
    p32 = p8.astype(np.float32)
    opt8 = fastopt.Adam([p8], state_dtype="q8")
    opt32 = fastopt.Adam([p32])
    err_limit, rel_limit = (6e-5, 6e-4) if dtype == np.float32 else (1.7e-4, 1.6e-3)
    for _ in range(50):
        g = (0.01 * rng.standard_normal((1024, dim2))).astype(np.float32).astype(dtype)
        opt8.step([g])
        opt32.step([g.astype(np.float32)])
        for key in ("exp_avg", "exp_avg_sq"):
            state = np.asarray(opt8.state[0][key])
            assert np.sum(~np.isclose(opt32.state[0][key], state, atol=3e-3, rtol=1e-3)) < 20
            opt32.state[0][key][...] = state
        err = np.abs(p32 - p8.astype(np.float32))
        assert err.mean() < err_limit
        assert (err / (np.abs(p32) + 1e-9)).mean() < rel_limit
        p32[...] = p8.astype(np.float32)


# -- state ---------------------------------------------------------------------------------------------

def test_quantized_state_dict_round_trips_and_converts():
    rng = np.random.default_rng(1)
    p = rng.standard_normal(5000).astype(np.float32)
    opt = fastopt.Adam([p], lr=0.01, state_dtype="q8")
    for _ in range(3):
        opt.step([rng.standard_normal(5000).astype(np.float32)])
    saved = pickle.loads(pickle.dumps(opt.state_dict()))
    entry = saved["state"][0]["exp_avg"]
    assert entry["codes"].dtype == np.uint8 and entry["absmax"].dtype == np.float32 and entry["qmap"].size == 256
    q = p.copy()
    resumed = fastopt.Adam([q], lr=0.01, state_dtype="q8")
    resumed.load_state_dict(saved)
    g = rng.standard_normal(5000).astype(np.float32)
    opt.step([g])
    resumed.step([g])
    np.testing.assert_array_equal(p, q)
    np.testing.assert_array_equal(state_bits(opt.state[0]["exp_avg"]), state_bits(resumed.state[0]["exp_avg"]))
    plain = fastopt.Adam([p.copy()], lr=0.01)
    plain.load_state_dict(opt.state_dict())  # q8 -> float32: dequantized
    np.testing.assert_array_equal(plain.state[0]["exp_avg"], np.asarray(opt.state[0]["exp_avg"]))
    again = fastopt.Adam([p.copy()], lr=0.01, state_dtype="q4")
    again.load_state_dict(plain.state_dict())  # float32 -> q4: quantized
    assert again.state[0]["exp_avg"].format == "q4"
    np.testing.assert_allclose(np.asarray(again.state[0]["exp_avg"]), plain.state[0]["exp_avg"],
                               atol=0.2 * np.abs(plain.state[0]["exp_avg"]).max())


def test_bytes_per_parameter():
    """Adam's persistent state per parameter: 2 + 8/256 bytes with q8, 1 + 8/128 with q4 (and the
    float32 step), against 8 for float32 state."""
    def state_bytes(opt):
        return sum(v.codes.nbytes + v.absmax.nbytes if isinstance(v, Quantized) else v.nbytes
                   for v in opt.state[0].values())
    n = 1_000_000
    for fmt, limit in (("q8", 2.1), ("q4", 1.1)):
        opt = fastopt.Adam([np.zeros(n, np.float32)], state_dtype=fmt)
        opt.step([np.ones(n, np.float32)])
        assert state_bytes(opt) / n <= limit


def test_quantized_options_that_do_not_fit():
    with pytest.raises(ValueError, match=r"state_dtype='q8' is for float32 and 16-bit parameters, not params\[0\]"):
        fastopt.Adam([np.zeros(5000)], state_dtype="q8")
    opt = fastopt.Adam([np.zeros(5000, np.float32)], state_dtype="q8")
    opt.step([np.ones(5000, np.float32)])
    opt.state[0]["exp_avg"] = np.zeros(5000, np.float32)  # replaced by hand with the wrong kind
    before = state_bits(opt.state[0]["exp_avg_sq"])
    with pytest.raises(TypeError, match=r"state\[0\]\['exp_avg'\] must be q8 state"):
        opt.step([np.ones(5000, np.float32)])
    np.testing.assert_array_equal(state_bits(opt.state[0]["exp_avg_sq"]), before)
