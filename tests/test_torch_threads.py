"""fastopt.torch's threads: a large step runs on torch's own intra-op OpenMP team (the threads that are
still spinning after backward), with the same bits as on one thread, on fastopt's pool and in NumPy.

1. the step is an OpenMP job when torch's backend is OpenMP (pool_stats' ``omp_jobs``), and stays on the
   caller for one thread (``torch.set_num_threads(1)`` or ``fastopt.set_num_threads(1)``);
2. bit-identical params and state for torch threads 1 and 2, on torch's team or fastopt's pool, and
   equal to fastopt's NumPy optimizer on the same data;
3. steps from two Python threads at once (one runs on the team, the other on its caller);
4. fork: the child forgets torch's team (its threads are not in the child) and steps on fastopt's pool,
   with the parent's results, without hanging.
"""
import os
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastopt  # noqa: E402
import fastopt.torch as fot  # noqa: E402
from fastopt._kernels import _runtime  # noqa: E402

needs_openmp = pytest.mark.skipif(fot._openmp is None, reason="torch's parallel backend is not OpenMP here")
needs_fork = pytest.mark.skipif(sys.platform in ("win32", "darwin") or not hasattr(os, "fork"),
                                reason="fork is unavailable (Windows) or unsafe (macOS)")

SHAPES = [(200, 200), (200,), (200, 200), (200,)]  # 80400 elements: a threaded step (from 32768)


@pytest.fixture
def threads():
    """Sets torch's and fastopt's thread counts, restored afterwards."""
    before = torch.get_num_threads(), fastopt.get_num_threads()

    def set_threads(torch_threads, fastopt_threads=2):
        torch.set_num_threads(torch_threads)
        fastopt.set_num_threads(fastopt_threads)
    yield set_threads
    torch.set_num_threads(before[0])
    fastopt.set_num_threads(before[1])


@pytest.fixture
def own_pool():
    """fastopt.torch's steps on fastopt's pool instead of torch's team, for the duration of the test."""
    _runtime.use_openmp(0, 0)
    yield
    if fot._openmp is not None:
        _runtime.use_openmp(*fot._openmp)


def params_and_grads(dtype=torch.float32, steps=3):
    """NumPy's generator (torch's is slow under the emulated CPUs of .ci/qemu)."""
    rng = np.random.default_rng(0)
    np_dtype = np.float32 if dtype == torch.float32 else np.float64

    def tensor(shape):
        return torch.from_numpy(rng.standard_normal(shape).astype(np_dtype))
    return [tensor(shape) for shape in SHAPES], [[tensor(shape) for shape in SHAPES] for _ in range(steps)]


def train(name, kwargs, dtype=torch.float32, steps=3):
    params, grads = params_and_grads(dtype, steps)
    params = [torch.nn.Parameter(p) for p in params]
    opt = getattr(fot, name)(params, **kwargs)
    for step in grads:
        for p, g in zip(params, step):
            p.grad = g.clone()
        opt.step()
    return [p.detach().numpy().copy() for p in params], opt


def assert_same_bits(a, b):
    (pa, oa), (pb, ob) = a, b
    for x, y in zip(pa, pb):
        np.testing.assert_array_equal(x, y)
    for sa, sb in zip(oa.state.values(), ob.state.values()):
        assert sa.keys() == sb.keys()
        for key in sa:
            assert torch.equal(sa[key], sb[key]), key


CONFIGS = [("Adam", {"lr": 1e-2}), ("AdamW", {"lr": 1e-2, "amsgrad": True}),
           ("SGD", {"lr": 1e-2, "momentum": 0.9, "nesterov": True}), ("Adagrad", {"lr": 1e-2}),
           ("RMSprop", {"lr": 1e-3, "centered": True, "momentum": 0.5}), ("NAdam", {"lr": 1e-3})]


@needs_openmp
def test_a_large_step_runs_on_torchs_openmp_team(threads):
    threads(2)
    assert _runtime.openmp_in_use()
    _runtime.use_openmp(*fot._openmp)  # no pause left by an earlier late team: the next step is the team's
    before = _runtime.pool_stats()
    train("Adam", {"lr": 1e-3}, steps=1)
    after = _runtime.pool_stats()
    assert after["omp_jobs"] == before["omp_jobs"] + 1
    assert after["jobs"] == before["jobs"]  # fastopt's own helpers sat it out


@pytest.mark.parametrize("torch_threads, fastopt_threads", [(1, 2), (2, 1)])
def test_one_thread_either_way_keeps_the_step_on_the_caller(threads, torch_threads, fastopt_threads):
    threads(torch_threads, fastopt_threads)
    before = _runtime.pool_stats()
    train("Adam", {"lr": 1e-3}, steps=2)
    after = _runtime.pool_stats()
    assert (after["omp_jobs"], after["jobs"]) == (before["omp_jobs"], before["jobs"])


@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=[c[0] for c in CONFIGS])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_bits_do_not_depend_on_threads_or_executor(threads, name, kwargs, dtype):
    threads(1)
    single = train(name, kwargs, dtype)
    threads(2)
    team = train(name, kwargs, dtype)
    assert_same_bits(single, team)
    _runtime.use_openmp(0, 0)
    try:
        pool = train(name, kwargs, dtype)
    finally:
        if fot._openmp is not None:
            _runtime.use_openmp(*fot._openmp)
    assert_same_bits(single, pool)


def test_threaded_step_equals_numpy_fastopt(threads):
    threads(2)
    params, _ = train("Adam", {"lr": 1e-2, "weight_decay": 0.1})
    start, grads = params_and_grads()
    arrays = [p.numpy().copy() for p in start]
    opt = fastopt.Adam(arrays, lr=1e-2, weight_decay=0.1)
    for step in grads:
        opt.step([g.numpy() for g in step])
    for a, b in zip(arrays, params):
        np.testing.assert_array_equal(a, b)


def test_steps_from_two_python_threads_at_once(threads):
    threads(2)
    expected = train("Adam", {"lr": 1e-2}, steps=10)
    results, errors = [None, None], []

    def worker(k):
        try:
            results[k] = train("Adam", {"lr": 1e-2}, steps=10)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
    workers = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert not errors and all(not w.is_alive() for w in workers)
    for result in results:
        assert_same_bits(expected, result)


def test_openmp_runtime_found_as_torch_reports_it():
    backend_is_openmp = "parallel backend: OpenMP" in torch.__config__.parallel_info()
    assert (fot._openmp is not None) == (backend_is_openmp and hasattr(os, "RTLD_NOLOAD"))
    assert _runtime.openmp_in_use() == (fot._openmp is not None)


def run_python(code, timeout=90):
    """A child Python in the directory holding this session's fastopt; a hang kills its process group."""
    posix = os.name == "posix"
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(fastopt.__file__)), start_new_session=posix)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"timed out after {timeout} s (a hang)\n{out[-3000:]}\n{err[-3000:]}")
    return proc.returncode, out, err


@needs_fork
@needs_openmp
def test_fork_after_steps_on_torchs_team():
    """Steps on torch's team in the parent, then os.fork(): the child's 2-thread steps run on fastopt's
    pool (torch's OpenMP threads are not in the child; GNU libgomp would wait for them forever), finish,
    and give the parent's bits; the parent keeps stepping on its team."""
    code = """
    import hashlib, os, signal, sys, time
    import numpy as np, torch, fastopt, fastopt.torch as fot
    from fastopt._kernels import _runtime
    torch.set_num_threads(2); fastopt.set_num_threads(2)

    # Only fastopt's step runs in the child: torch's own parallel ops (torch.full_like of a large
    # tensor, say) hang in a forked child of a process that used them (GNU libgomp), fastopt's or not.
    rng = np.random.default_rng(0)
    p = torch.nn.Parameter(torch.from_numpy(rng.standard_normal(1_000_000, np.float32)))
    grads = [torch.from_numpy(rng.standard_normal(1_000_000, np.float32)) for _ in range(3)]
    opt = fot.Adam([p], lr=1e-3)
    p.grad = grads[0]
    opt.step()  # the state exists before the fork
    assert _runtime.pool_stats()["omp_jobs"] >= 1

    def run():  # the next two steps
        for g in grads[1:]:
            p.grad = g
            opt.step()
        return p.detach().numpy().copy()

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 3
        try:
            os.close(r)
            child = run()
            stats = _runtime.pool_stats()
            digest = hashlib.sha256(child.tobytes()).hexdigest()
            os.write(w, f"{digest} {_runtime.openmp_in_use()} {stats['omp_jobs']} {stats['jobs']}".encode())
            status = 0
        finally:
            os._exit(status)
    os.close(w)
    deadline = time.monotonic() + 30
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            print("HUNG", flush=True)
            sys.exit(1)
        time.sleep(0.01)
    answer = b""
    while chunk := os.read(r, 65536):
        answer += chunk
    parent = run()
    digest, _, rest = answer.decode().partition(" ")
    print("child", os.waitstatus_to_exitcode(status), digest == hashlib.sha256(parent.tobytes()).hexdigest(), rest)
    print("parent", _runtime.openmp_in_use())
    """
    code_, out, err = run_python(code)
    assert code_ == 0, out + err
    # the child: the parent's bits, no OpenMP runtime, its 2 steps on fastopt's own pool
    assert "child 0 True False 0 2" in out, out + err
    assert "parent True" in out, out + err
