"""Threads, multi-tensor group calls, the floor kernels and the thread/ISA configuration."""
import os
import subprocess
import sys

import numpy as np
import pytest
from _helpers import CASES, CONFIGS, make_grads, make_params

import fastopt

PARALLEL_MIN = fastopt.show_config.__globals__["_BUILD"]["parallel_min"]


@pytest.fixture
def threads():
    """Set the thread count for one test and restore it afterwards."""
    before = fastopt.get_num_threads()
    yield fastopt.set_num_threads
    fastopt.set_num_threads(before)


def run_case(case, kwargs, shapes, dtype, steps=3):
    params = make_params(shapes, dtype)
    opt = case.cls(params, **kwargs)
    for grads in make_grads(shapes, dtype, steps=steps, skip={(1, 0)}):
        opt.step(grads)
    return params, opt


@pytest.mark.parametrize(("case", "label", "kwargs"), CONFIGS)
def test_results_are_bit_identical_for_any_thread_count(case, label, kwargs, threads):
    # one large tensor, and many tensors whose boundaries straddle the threads' ranges
    shapes = [(3 * PARALLEL_MIN + 7,), (5,)] + [(PARALLEL_MIN // 3 + i,) for i in range(7)]
    results = []
    for n in (1, 2, 3):
        threads(n)
        results.append(run_case(case, kwargs, shapes, np.float32))
    (p1, opt1) = results[0]
    for params, opt in results[1:]:
        for a, b in zip(p1, params):
            np.testing.assert_array_equal(a, b)
        for i in opt1.state:
            for key in opt1.state[i]:
                np.testing.assert_array_equal(opt1.state[i][key], opt.state[i][key])


def test_a_large_step_really_runs_on_several_threads(threads):
    from fastopt._kernels._runtime import pool_stats
    threads(2)
    assert fastopt.get_num_threads() == 2
    p = np.zeros(8 * PARALLEL_MIN, np.float32)
    opt = fastopt.SGD([p], lr=0.1)
    before = pool_stats()
    opt.step([np.ones_like(p)])
    after = pool_stats()
    assert after["helpers"] >= 1 and after["jobs"] == before["jobs"] + 1
    np.testing.assert_array_equal(p, np.float32(-0.1))
    threads(1)  # one thread: no job for the pool
    opt.step([np.ones_like(p)])
    assert pool_stats()["jobs"] == after["jobs"]


@pytest.mark.parametrize(("bad", "error"), [(0, ValueError), (-1, ValueError), ("2", TypeError),
                                            (True, TypeError), (2.0, TypeError)])
def test_set_num_threads_rejects_bad_values(bad, error, threads):
    before = fastopt.get_num_threads()
    with pytest.raises(error, match="must be a positive int"):
        threads(bad)
    assert fastopt.get_num_threads() == before


def run_python(code, **env):
    environment = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment,
                          cwd=os.path.dirname(os.path.dirname(fastopt.__file__)))


def test_fastopt_num_threads_environment_variable():
    out = run_python("import fastopt; print(fastopt.get_num_threads())", FASTOPT_NUM_THREADS="1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"
    out = run_python("import fastopt", FASTOPT_NUM_THREADS="many")
    assert out.returncode != 0 and "FASTOPT_NUM_THREADS must be a positive int, got 'many'" in out.stderr


def test_show_config_reports_the_running_configuration(capsys):
    config = fastopt.show_config()
    printed = capsys.readouterr().out
    assert config["isa"] in config["built"] and config["isa"] in config["cpu_supports"]
    assert config["num_threads"] == fastopt.get_num_threads()
    assert config["threads"] in ("pthreads", "win32")
    assert "-ffp-contract=off" in config["cflags"] and "-ffast-math" not in config["cflags"]
    for key in ("isa", "num_threads", "threads", "compiler", "cflags"):
        assert key in printed
    # the chosen variant is the best the CPU supports unless FASTOPT_ISA forces one
    if not os.environ.get("FASTOPT_ISA"):
        runnable = [isa for isa in config["cpu_supports"] if isa in config["built"]]
        assert config["isa"] == runnable[-1]


# -- group kernels and single-tensor kernels --------------------------------------------------------

ADAM = dict(lr=0.01, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=0.1, maximize=False,
            decoupled_weight_decay=True)


@pytest.mark.parametrize("ops", [fastopt.kernels, fastopt.reference], ids=["kernels", "reference"])
def test_group_call_equals_one_call_per_tensor(ops, dtype):
    shapes = [(7,), (3, 4), (), (1000,)]
    grads = make_grads(shapes, dtype, steps=1)[0]
    grads[2] = None
    grouped = make_params(shapes, dtype)
    steps = [np.zeros((), dtype) for _ in shapes]
    exp_avgs, exp_avg_sqs, max_exp_avg_sqs = ([np.zeros(s, dtype) for s in shapes] for _ in range(3))
    ops.adam_group(grouped, grads, steps, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, **ADAM)
    single = make_params(shapes, dtype)
    for k, (p, g) in enumerate(zip(single, grads)):
        if g is None:
            continue
        st, m, v, vmax = (np.zeros(1, dtype), np.zeros(p.size, dtype), np.zeros(p.size, dtype),
                          np.zeros(p.size, dtype))
        ops.adam(p.reshape(-1), g.reshape(-1), st, m, v, vmax, **ADAM)
        np.testing.assert_array_equal(exp_avgs[k].reshape(-1), m)
        np.testing.assert_array_equal(exp_avg_sqs[k].reshape(-1), v)
        np.testing.assert_array_equal(max_exp_avg_sqs[k].reshape(-1), vmax)
        assert float(steps[k]) == 1.0
    for a, b in zip(grouped, single):
        np.testing.assert_array_equal(a, b)
    assert float(steps[2]) == 0.0 and not exp_avgs[2].any()  # the skipped tensor is untouched


def test_compiled_single_tensor_kernels_match_reference_with_threads(dtype):
    n = 2 * PARALLEL_MIN + 3
    rng = np.random.default_rng(5)
    runs = {}
    for name, ops, n_threads in [("ref", fastopt.reference, 1), ("k1", fastopt.kernels, 1),
                                 ("k2", fastopt.kernels, 2)]:
        if name == "ref":
            start = rng.standard_normal(n).astype(dtype)
        p = start.copy()
        st, mu, m, v = np.zeros(1, dtype), np.ones(1, dtype), np.zeros(n, dtype), np.zeros(n, dtype)
        for t in range(3):
            g = np.random.default_rng(t).standard_normal(n).astype(dtype)
            ops.nadam(p, g, st, mu, m, v, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                      momentum_decay=4e-3, maximize=False, decoupled_weight_decay=False, n_threads=n_threads)
        runs[name] = (p, mu, m, v)
    for name in ("k1", "k2"):
        for a, b in zip(runs["ref"], runs[name]):
            np.testing.assert_array_equal(a, b)


# -- floor kernels ------------------------------------------------------------------------------------

@pytest.mark.parametrize("states", [0, 1, 2, 3])
@pytest.mark.parametrize("ops", [fastopt.kernels, fastopt.reference], ids=["kernels", "reference"])
def test_floor_adds_the_gradient_to_every_buffer(ops, states, dtype, threads):
    threads(2)
    n = PARALLEL_MIN + 5
    g = np.arange(n, dtype=dtype) % 7
    p = np.ones(n, dtype)
    bufs = [np.full(n, i, dtype) for i in range(states)]
    ops.floor(p, g, *bufs, n_threads=2)
    np.testing.assert_array_equal(p, 1 + g)
    for i, buf in enumerate(bufs):
        np.testing.assert_array_equal(buf, i + g)
    group = [np.ones(3, dtype), np.ones(4, dtype)]
    states_ = [[np.zeros(3, dtype), np.zeros(4, dtype)] for _ in range(states)]
    ops.floor_group(group, [np.ones(3, dtype), None], *states_)
    np.testing.assert_array_equal(group[0], 2)
    np.testing.assert_array_equal(group[1], 1)
    for state in states_:
        np.testing.assert_array_equal(state[0], 1)
        np.testing.assert_array_equal(state[1], 0)


# -- the cached per-group plan ------------------------------------------------------------------------

def test_plan_follows_hyperparameter_and_group_changes():
    """The step caches each group's state lists; turning amsgrad on, appending a parameter, or loading
    a state dict must be seen at the next step (compared with the reference backend doing the same)."""
    results = []
    for backend in ("cython", "numpy"):
        params = make_params([(5,), (3,)], np.float64)
        extra = make_params([(4,)], np.float64, seed=9)[0]
        opt = fastopt.Adam(params, lr=0.1, backend=backend)
        grads = make_grads([(5,), (3,), (4,)], np.float64, steps=6)
        opt.step(grads[0][:2])
        opt.param_groups[0]["amsgrad"] = True
        opt.step(grads[1][:2])
        assert "max_exp_avg_sq" in opt.state[0]
        opt.param_groups[0]["params"].append(extra)
        opt.step(grads[2])
        saved = opt.state_dict()
        snapshot = {i: {k: v.copy() for k, v in s.items()} for i, s in saved["state"].items()}
        opt.step(grads[3])
        opt.load_state_dict({"state": snapshot, "param_groups": saved["param_groups"]})
        opt.step(grads[4])
        results.append([p.copy() for p in params + [extra]] + [opt.state[2]["exp_avg"].copy()])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


# -- the flat-buffer API ------------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_flat_params_step_equals_per_tensor_steps(case, dtype):
    if not case.elementwise:  # LAMB's trust ratio is per tensor: the flat buffer is one tensor (FlatParams' docs)
        pytest.skip("per-tensor reductions see the flat buffer as one tensor")
    shapes = [(4, 3), (3,), (), (17,)]
    separate = make_params(shapes, dtype)
    flat = fastopt.FlatParams(separate)
    assert flat.data.dtype == dtype and flat.data.size == 12 + 3 + 1 + 17
    kwargs = next(iter(case.configs.values()))
    opt_sep, opt_flat = case.cls(separate, **kwargs), case.cls([flat.data], **kwargs)
    for grads in make_grads(shapes, dtype, steps=4):
        opt_sep.step(grads)
        for view, g in zip(flat.grads, grads):
            view[...] = g
        opt_flat.step([flat.grad])
    for view, p in zip(flat.params, separate):
        assert view.shape == p.shape and np.shares_memory(view, flat.data)
        np.testing.assert_array_equal(view, p)


def test_flat_params_from_shapes_and_bad_input():
    flat = fastopt.FlatParams([(2, 3), 4], dtype=np.float64)
    assert [p.shape for p in flat.params] == [(2, 3), (4,)] and flat.data.dtype == np.float64
    flat.params[1][...] = 7
    assert flat.data[6:].tolist() == [7, 7, 7, 7]
    with pytest.raises(TypeError, match="float32 or float64"):
        fastopt.FlatParams([(2,)], dtype=np.int32)
    with pytest.raises(ValueError, match="at least one"):
        fastopt.FlatParams([])
    with pytest.raises(TypeError, match="not both"):
        fastopt.FlatParams([np.zeros(2), (3,)])


def test_replacing_state_arrays_takes_effect_at_the_next_step():
    """torch users reset moments by assigning new tensors; the step's cached plan must see that (and a
    whole new ``opt.state``, and a deleted entry), exactly as the reference backend does."""
    results = []
    for backend in ("cython", "numpy"):
        params = make_params([(6,), (2, 3)], np.float32)
        opt = fastopt.Adam(params, lr=0.1, backend=backend)
        grads = make_grads([(6,), (2, 3)], np.float32, steps=5)
        opt.step(grads[0])
        opt.step(grads[1])
        opt.state[0]["exp_avg"] = np.zeros(6, np.float32)     # replace one array
        opt.step(grads[2])
        assert opt.state[0]["exp_avg"].any()                  # the new array was stepped
        del opt.state[1]                                      # forget one parameter's state
        opt.step(grads[3])
        assert float(opt.state[1]["step"]) == 1.0
        opt.state = {}                                        # forget everything
        opt.step(grads[4])
        assert float(opt.state[0]["step"]) == 1.0
        results.append(params)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    # and the first replacement really restarted the moment: compare with an in-place reset
    params = make_params([(6,), (2, 3)], np.float32)
    opt = fastopt.Adam(params, lr=0.1)
    grads = make_grads([(6,), (2, 3)], np.float32, steps=3)
    opt.step(grads[0])
    opt.step(grads[1])
    opt.state[0]["exp_avg"][...] = 0
    opt.step(grads[2])
    replaced = make_params([(6,), (2, 3)], np.float32)
    opt2 = fastopt.Adam(replaced, lr=0.1)
    opt2.step(grads[0])
    opt2.step(grads[1])
    opt2.state[0]["exp_avg"] = np.zeros(6, np.float32)
    opt2.step(grads[2])
    np.testing.assert_array_equal(params[0], replaced[0])


# -- the thread pool on its own ------------------------------------------------------------------------

def test_pool_under_thread_sanitizer(tmp_path):
    """fastopt/_kernels/_pool.h, compiled with -fsanitize=thread into tests/c/pool_stress.c: concurrent
    submitters, changing thread counts, uneven items, jobs on the pool's helpers and on a stand-in OpenMP
    team; no data race reported, every element updated once per job; a team whose members start late
    makes the next calls run on the pool (skips where gcc cannot build a ThreadSanitizer program)."""
    import shutil
    root = os.path.dirname(os.path.abspath(__file__))
    header = os.path.join(os.path.dirname(fastopt.__file__), "_kernels", "_pool.h")
    if sys.platform != "linux" or shutil.which("gcc") is None or not os.path.exists(header):
        pytest.skip("needs gcc on Linux and fastopt/_kernels/_pool.h")
    probe = tmp_path / "probe.c"
    probe.write_text("int main(void) { return 0; }\n")
    if subprocess.run(["gcc", "-fsanitize=thread", str(probe), "-o", str(tmp_path / "probe")],
                      capture_output=True).returncode != 0:
        pytest.skip("gcc cannot build a -fsanitize=thread program here")
    exe = str(tmp_path / "pool_stress")
    build = subprocess.run(["gcc", "-O1", "-g", "-fsanitize=thread", "-I", os.path.dirname(header),
                            os.path.join(root, "c", "pool_stress.c"), "-o", exe, "-lpthread"],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]  # the stress program itself must build
    env = {key: value for key, value in os.environ.items() if key != "LD_PRELOAD"}  # not under .ci/sanitize's ASan
    run = subprocess.run([exe], capture_output=True, text=True, timeout=300,
                         env={**env, "TSAN_OPTIONS": "halt_on_error=1"})
    assert run.returncode == 0, run.stdout + run.stderr
    assert "WARNING: ThreadSanitizer" not in run.stderr
    counters = dict(zip(run.stdout.split()[::2], map(int, run.stdout.split()[1::2])))
    assert counters["jobs"] > 0 and counters["omp_jobs"] > 0 and counters["helpers"] >= 1, run.stdout
    assert counters["omp_fallbacks"] >= 1, run.stdout


@pytest.mark.parametrize("ops", [fastopt.kernels, fastopt.reference], ids=["kernels", "reference"])
def test_run_takes_only_built_batches(ops):
    """``run`` (what a step calls after building every group's batch) rejects anything else before
    writing; a batch runs its work once per call."""
    p, g = np.zeros(3, np.float32), np.ones(3, np.float32)
    batch = ops.floor_batch([p], [g], None, None, None)
    for bad, error in [(object(), TypeError), ([batch, "x"], TypeError), (None, TypeError)]:
        with pytest.raises(error):
            ops.run(bad)
    with pytest.raises(ValueError, match="n_threads"):
        ops.run(batch, n_threads=0)
    np.testing.assert_array_equal(p, 0)
    if ops is fastopt.kernels:
        with pytest.raises(ValueError, match="empty Batch"):
            ops.run(ops.Batch())
        assert ops.Batch().elements == 0 and len(ops.Batch()) == 0
    ops.run([batch, batch], n_threads=2)
    np.testing.assert_array_equal(p, 2)
