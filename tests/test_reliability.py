"""Reliability (issue #6): no crash reachable from Python, atomic steps, state that follows its parameter,
memory overlap rejected, concurrent steps serialized, hyperparameters read as Python floats, wrong input
as TypeError/ValueError only, caches that never outlive what they describe, FlatParams through pickle and
deepcopy, and fork safety.

Crash and hang cases run in a subprocess (a segfault is returncode -11 there, not a dead test session).
"""
import copy
import gc
import inspect
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import tracemalloc
import warnings
import weakref

import numpy as np
import pytest
from _helpers import CASES, CONFIGS, make_grads, make_params

import fastopt

try:
    import torch
except ImportError:  # the expected exception types then come from the table recorded from torch 2.13.0
    torch = None

HUGE = 10**400  # a Python int no double can hold


def first_config(case):
    return dict(next(iter(case.configs.values())))


def _keeps_array_state(case):
    opt = case.cls([np.zeros(2)], **first_config(case))
    opt.step([np.ones(2)])
    return any(v.shape == (2,) for v in opt.state.get(0, {}).values())


STATEFUL = [case for case in CASES if _keeps_array_state(case)]  # the first config keeps state arrays


@pytest.fixture
def threads():
    """Set the thread count for one test and restore it afterwards."""
    before = fastopt.get_num_threads()
    yield fastopt.set_num_threads
    fastopt.set_num_threads(before)


# -- helpers -------------------------------------------------------------------------------------------


def run_python(code, timeout=60, **env):
    """tests/test_runtime.py's run_python: the child runs in the directory that holds the fastopt this
    session imported (site-packages for an installed fastopt, the checkout for an in-place build), so it
    imports the same build. Plus a timeout: a hang kills the child's whole process group (its forked
    children too) and fails the test instead of hanging the suite."""
    environment = {**os.environ, **env}
    posix = os.name == "posix"
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=environment,
                            cwd=os.path.dirname(os.path.dirname(fastopt.__file__)), start_new_session=posix)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        if posix:
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover
            proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"timed out after {timeout} s (a hang)\n--- stdout\n{out[-4000:]}\n--- stderr\n{err[-4000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def assert_clean_exit(out, done="DONE failures=0"):
    """The child exited 0 (a segfault is -11) and printed ``done``; the report keeps its FAIL lines and
    the CASE it was running when it died."""
    lines = out.stdout.splitlines()
    shown = [line for line in lines if not line.startswith("CASE ")]
    if out.returncode != 0 and lines and lines[-1].startswith("CASE "):
        shown.append(f"died during: {lines[-1]}")
    report = "\n".join([f"returncode {out.returncode} (-11: segfault)", "--- stdout", *shown[-80:],
                         "--- stderr", out.stderr[-3000:]])
    assert out.returncode == 0 and done in lines, report


def two_groups(params):
    return [{"params": params[:2]}, {"params": params[2:]}]


def copy_state(opt):
    return {i: {k: np.array(v, copy=True) for k, v in s.items()} for i, s in opt.state.items()}


def assert_same_state(actual, expected):
    """Two ``{index: {key: array}}`` mappings: same entries, keys, shapes, dtypes and bits."""
    assert sorted(actual) == sorted(expected)
    for i in expected:
        assert sorted(actual[i]) == sorted(expected[i]), f"state[{i}]"
        for key in expected[i]:
            a, b = np.asarray(actual[i][key]), np.asarray(expected[i][key])
            assert a.shape == b.shape and a.dtype == b.dtype, f"state[{i}][{key!r}]"
            np.testing.assert_array_equal(a, b, err_msg=f"state[{i}][{key!r}]")


def assert_arrays_equal(actual, expected):
    for k, (a, b) in enumerate(zip(actual, expected)):
        np.testing.assert_array_equal(a, b, err_msg=f"params[{k}]")


def snapshot(params, opt):
    return [p.copy() for p in params], copy_state(opt)


def assert_unchanged(params, opt, before):
    assert_arrays_equal(params, before[0])
    assert_same_state(opt.state, before[1])


# =======================================================================================================
# 1. No crash reachable from Python
# =======================================================================================================

REPLACEMENTS = {
    "str": "'not an array'",
    "none": "None",
    "list": "[1.0, 2.0]",
    "float64": "np.zeros(4, np.float64)",
    "read-only": "readonly(np.zeros(4, np.float32))",
    "strided": "np.zeros(8, np.float32)[::2]",
}

REPLACED_PARAM_CODE = """
import numpy as np
from fastopt._registry import CASES

def readonly(a):
    a.flags.writeable = False
    return a

failures = 0
def fail(*args):
    global failures
    failures += 1
    print("FAIL", *args, flush=True)

for case in CASES:
    print("CASE", case.name, flush=True)
    kwargs = next(iter(case.configs.values()))
    params = [np.linspace(-1, 1, 4).astype(np.float32), np.linspace(1, 2, 3).astype(np.float32),
              np.linspace(0, 1, 5).astype(np.float32)]
    opt = case.cls([{"params": params[:2]}, {"params": params[2:]}], **kwargs)
    grads = [np.full(p.shape, 0.5, np.float32) for p in params]
    if WHEN == "after-a-step":
        opt.step(grads)
    params_before = [p.copy() for p in params]
    state_before = {i: {k: v.copy() for k, v in s.items()} for i, s in opt.state.items()}
    opt.param_groups[0]["params"][0] = REPLACEMENT
    try:
        opt.step(grads)
    except (TypeError, ValueError) as exc:
        if "params[0]" not in str(exc):
            fail(case.name, "the message does not name params[0]:", repr(exc))
    except BaseException as exc:
        fail(case.name, "raised", type(exc).__name__, exc)
    else:
        fail(case.name, "the step was accepted")
    for k in (1, 2):
        if not np.array_equal(params[k], params_before[k]):
            fail(case.name, f"params[{k}] changed")
    # state[0] described the replaced parameter (state follows its parameter): only the others must stay
    others_before, others_now = sorted(set(state_before) - {0}), sorted(set(opt.state) - {0})
    if others_now != others_before:
        fail(case.name, "opt.state entries changed:", others_before, "->", others_now)
    for i in others_before:
        s, now = state_before[i], opt.state.get(i, {})
        if list(now) != list(s) or any(not np.array_equal(now[k], v) for k, v in s.items()):
            fail(case.name, f"state[{i}] changed")
print(f"DONE failures={failures}")
"""


@pytest.mark.parametrize("when", ["first-step", "after-a-step"])
@pytest.mark.parametrize("kind", list(REPLACEMENTS))
def test_replaced_parameter_is_rejected_without_crash(kind, when):
    """``opt.param_groups[0]["params"][0] = <not a usable array>``: the step raises TypeError/ValueError
    naming params[0] and changes nothing, for every registry optimizer."""
    code = REPLACED_PARAM_CODE.replace("REPLACEMENT", REPLACEMENTS[kind]).replace("WHEN", repr(when))
    assert_clean_exit(run_python(code))


CONTAINER_MUTATIONS = {
    "params-tuple": "opt.param_groups[0]['params'] = tuple(opt.param_groups[0]['params'])",
    "params-none": "opt.param_groups[0]['params'] = None",
    "params-ndarray": "opt.param_groups[0]['params'] = np.zeros(4, np.float32)",
    "params-str": "opt.param_groups[0]['params'] = 'ab'",
    "group-str": "opt.param_groups[0] = 'not a group'",
    "group-none": "opt.param_groups[1] = None",
}


@pytest.mark.parametrize("kind", list(CONTAINER_MUTATIONS))
def test_replaced_parameter_containers_never_crash(kind):
    """The containers the step walks (a group's "params", a group itself) replaced by other types: no
    crash; an exception, if any, is a TypeError/ValueError (a tuple of params may be accepted)."""
    code = """
    import numpy as np
    from fastopt._registry import CASES
    failures = 0
    for case in CASES:
        print("CASE", case.name, flush=True)
        params = [np.ones(4, np.float32), np.ones(3, np.float32), np.ones(5, np.float32)]
        opt = case.cls([{"params": params[:2]}, {"params": params[2:]}], **next(iter(case.configs.values())))
        grads = [np.full(p.shape, 0.5, np.float32) for p in params]
        opt.step(grads)
        MUTATION
        try:
            opt.step(grads)
        except (TypeError, ValueError):
            pass
        except BaseException as exc:
            failures += 1
            print("FAIL", case.name, type(exc).__name__, exc, flush=True)
    print(f"DONE failures={failures}")
    """
    code = textwrap.dedent(code).replace("MUTATION", CONTAINER_MUTATIONS[kind])
    assert_clean_exit(run_python(code))


RACE_CODE = """
import sys, threading, time
import numpy as np
import fastopt

MODE = {mode!r}
fastopt.set_num_threads(2)
sys.setswitchinterval(1.0)  # the GIL changes hands when a kernel releases it, not in between
N = 2_000_000
# the optimizer holds the only references to its parameters, the gradient list the only ones to its arrays
opt = fastopt.Adam([np.zeros(N, np.float32), np.zeros(N, np.float32)], lr=1e-3)
opt.step([np.ones(N, np.float32), np.ones(N, np.float32)])  # state exists: the next steps go straight to the kernel
holder = {{}}
stop = threading.Event()
errors = []

def stepper():
    try:
        for _ in range(20):
            grads = [np.ones(N, np.float32), np.ones(N, np.float32)]
            holder["grads"] = grads
            del grads
            try:
                opt.step(holder["grads"])
            except Exception as exc:
                errors.append(exc)
    finally:
        stop.set()

def mutator():
    while not stop.is_set():
        time.sleep(0.0002)
        if MODE == "clear-grads":
            grads = holder.get("grads")
            if grads is not None:
                grads.clear()
        elif MODE == "replace-param":
            opt.param_groups[0]["params"][0] = np.zeros(N, np.float32)
        elif MODE == "delete-state":
            opt.state.pop(0, None)
            state = opt.state.get(1)
            if state:
                state.pop("exp_avg", None)

threads = [threading.Thread(target=stepper), threading.Thread(target=mutator)]
for t in threads:
    t.start()
for t in threads:
    t.join()
try:
    opt.step([np.ones(N, np.float32), np.ones(N, np.float32)])  # and once more, in peace
except Exception as exc:
    errors.append(exc)
bad = [e for e in errors if not isinstance(e, (TypeError, ValueError, RuntimeError))]
for e in bad:
    print("FAIL", type(e).__name__, e)
print("errors:", sorted({{type(e).__name__ for e in errors}}))
print(f"DONE failures={{len(bad)}}")
"""


@pytest.mark.parametrize("mode", ["clear-grads", "replace-param", "delete-state"])
def test_mutation_from_another_thread_during_a_step_does_not_crash(mode):
    """A large step releases the GIL; another thread then clears the gradient list, replaces the
    parameter or deletes state. Large arrays are mmap'ed (MALLOC_MMAP_THRESHOLD_), so a kernel still
    using a freed array faults instead of silently reading reused memory."""
    out = run_python(RACE_CODE.format(mode=mode), timeout=120, MALLOC_MMAP_THRESHOLD_="131072")
    assert_clean_exit(out)


ADAM_KW = dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1, maximize=False,
               decoupled_weight_decay=False)
KERNEL_KW = {
    "adadelta": dict(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.1, maximize=False),
    "adagrad": dict(lr=0.01, lr_decay=0.01, eps=1e-10, weight_decay=0.1, maximize=False),
    "adam": ADAM_KW,
    "adamax": dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1, maximize=False),
    "asgd": dict(lr=0.01, lambd=1e-4, alpha=0.75, t0=2.0, weight_decay=0.1, maximize=False),
    "floor": {},
    "lamb": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-6, weight_decay=0.01, bias_correction=True,
                 grad_averaging=True, always_adapt=False, trust_clip=False, maximize=False),
    "lion": dict(lr=1e-3, beta1=0.9, beta2=0.99, weight_decay=0.1, maximize=False),
    "radam": ADAM_KW,
    "rprop": dict(etaminus=0.5, etaplus=1.2, step_size_min=1e-6, step_size_max=50.0, maximize=False),
    "sfadamw": dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1, bc2=0.001, ckp1=1.0,
                    maximize=False),
    "momentum": dict(lr=0.1, beta=0.9),
    "nadam": dict(ADAM_KW, momentum_decay=4e-3),
    "rmsprop": dict(lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.1, momentum=0.9, maximize=False),
    "sgd": dict(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.1, nesterov=False, maximize=False),
}
# (required buffers after param and grad, optional buffers), in fastopt/kernels.pyi's order
KERNEL_BUFFERS = {
    "adadelta": (("step", "square_avg", "acc_delta"), ()),
    "adagrad": (("step", "state_sum"), ()),
    "adam": (("step", "exp_avg", "exp_avg_sq"), ("max_exp_avg_sq",)),
    "adamax": (("step", "exp_avg", "exp_inf"), ()),
    "asgd": (("step", "eta", "mu", "ax"), ()),
    "floor": ((), ("s1", "s2", "s3")),
    "lamb": (("step", "exp_avg", "exp_avg_sq"), ()),
    "lion": (("exp_avg",), ()),
    "radam": (("step", "exp_avg", "exp_avg_sq"), ()),
    "rprop": (("step", "prev", "step_size"), ()),
    "sfadamw": (("z", "exp_avg_sq"), ()),
    "momentum": (("momentum_buffer",), ()),
    "nadam": (("step", "mu_product", "exp_avg", "exp_avg_sq"), ()),
    "rmsprop": (("step", "square_avg"), ("momentum_buffer", "grad_avg")),
    "sgd": ((), ("momentum_buffer",)),
}
GROUP_LISTS = {  # the *_group kernels' list arguments, as named in kernels.pyi and in their messages
    "adadelta": ("steps", "square_avgs", "acc_deltas"),
    "adagrad": ("steps", "state_sums"),
    "adam": ("steps", "exp_avgs", "exp_avg_sqs", "max_exp_avg_sqs"),
    "adamax": ("steps", "exp_avgs", "exp_infs"),
    "asgd": ("steps", "etas", "mus", "axs"),
    "floor": ("s1", "s2", "s3"),
    "lamb": ("steps", "exp_avgs", "exp_avg_sqs"),
    "lion": ("exp_avgs",),
    "radam": ("steps", "exp_avgs", "exp_avg_sqs"),
    "rprop": ("steps", "prevs", "step_sizes"),
    "sfadamw": ("zs", "exp_avg_sqs"),
    "momentum": ("momentum_buffers",),
    "nadam": ("steps", "mu_products", "exp_avgs", "exp_avg_sqs"),
    "rmsprop": ("steps", "square_avgs", "momentum_buffers", "grad_avgs"),
    "sgd": ("momentum_buffers",),
}
COUNTERS = ("step", "mu_product", "eta", "mu", "steps", "mu_products", "etas", "mus")


def test_kernel_tables_cover_every_public_kernel():
    """The tables above follow fastopt/kernels.pyi: every rule, with its signature."""
    rules = sorted(name[:-len("_group")] for name in fastopt.kernels.__all__ if name.endswith("_group"))
    assert sorted(KERNEL_KW) == rules
    assert all(callable(getattr(fastopt.kernels, rule)) for rule in rules)
    for rule, (required, optional) in KERNEL_BUFFERS.items():
        assert len(GROUP_LISTS[rule]) == len(required) + len(optional)
        for name in required + optional:
            assert name in fastopt.reference.__dict__[rule].__code__.co_varnames


KERNEL_ABUSE_CODE = """
import numpy as np
import fastopt

RULE, GROUP, KWARGS, REQUIRED, OPTIONAL, EXTRA = {args}
COUNTERS = {counters!r}
DT = np.float32
SIZES = [5, 3]
failures = 0

def fail(*args):
    global failures
    failures += 1
    print("FAIL", *args, flush=True)

def fresh():
    args = {{}}
    if GROUP:
        args["params"] = [np.linspace(-1, 1, n).astype(DT) for n in SIZES]
        args["grads"] = [np.linspace(0.5, -0.5, n).astype(DT) for n in SIZES]
        for name in REQUIRED + OPTIONAL:
            if name in COUNTERS:
                args[name] = [np.full(1, 1.0 if name == "mu_products" else 0.0, DT) for _ in SIZES]
            else:
                args[name] = [np.full(n, 0.25, DT) for n in SIZES]
    else:
        n = SIZES[0]
        args["param"] = np.linspace(-1, 1, n).astype(DT)
        args["grad"] = np.linspace(0.5, -0.5, n).astype(DT)
        for name in REQUIRED + OPTIONAL:
            fill = 1.0 if name == "mu_product" else 0.0
            args[name] = np.full(1, fill, DT) if name in COUNTERS else np.full(n, 0.25, DT)
    for name, value in EXTRA.items():
        args[name] = list(value)
    return args

POSITIONAL = (["params", "grads"] if GROUP else ["param", "grad"]) + list(REQUIRED + OPTIONAL)
kernel = getattr(fastopt.kernels, RULE + ("_group" if GROUP else ""))

def call(args):
    kernel(*[args[name] for name in POSITIONAL], **{{k: args[k] for k in EXTRA}}, **KWARGS)

def arrays_of(args):
    out = []
    for value in args.values():
        for item in (value if isinstance(value, list) else [value]):
            if isinstance(item, np.ndarray):
                out.append((item, item.copy()))
    return out

def case(label, mutate, must_raise):
    print("CASE", label, flush=True)
    args = fresh()
    before = arrays_of(args)
    mutate(args)
    try:
        call(args)
    except (TypeError, ValueError):
        if any(not np.array_equal(a, b) for a, b in before):
            fail(label, "a rejected call changed an array")
        return
    except BaseException as exc:
        fail(label, "raised", type(exc).__name__, exc)
        return
    if must_raise:
        fail(label, "was accepted")

def setitem(name, value):
    def mutate(args):
        args[name] = value(args[name]) if callable(value) else value
    return mutate

def setelement(name, k, value):
    def mutate(args):
        args[name][k] = value(args[name][k])
    return mutate

def readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a

args0 = fresh()
call(args0)  # the valid call works

if GROUP:
    for name in POSITIONAL + list(EXTRA):
        required = name in ("params", "grads") or name in REQUIRED
        case(f"{{name}}=None", setitem(name, None), required)
        case(f"{{name}} one short", setitem(name, lambda v: v[:-1]), True)
        case(f"{{name}} one too many", setitem(name, lambda v: v + [v[-1]]), True)
        case(f"{{name}} as tuple", setitem(name, tuple), False)
        case(f"{{name}} as iterator", setitem(name, iter), False)
        case(f"{{name}} as dict", setitem(name, lambda v: dict(enumerate(v))), False)
        case(f"{{name}} as str", setitem(name, "ab"), name not in EXTRA)  # "ab" is a sequence of true flags
        case(f"{{name}} as int", setitem(name, 2), True)
        if name in EXTRA:
            continue
        written = name != "grads"
        n = 1 if name in COUNTERS else SIZES[1]
        case(f"{{name}}[1]='x'", setelement(name, 1, lambda a: "x"), True)
        case(f"{{name}}[1]=list", setelement(name, 1, lambda a: a.tolist()), True)
        case(f"{{name}}[1]=None", setelement(name, 1, lambda a: None), name != "grads")
        # a counter (step, mu_product) may be float32 or float64 whatever its param (torch's float32 step)
        case(f"{{name}}[1]=float64", setelement(name, 1, lambda a: a.astype(np.float64)), name not in COUNTERS)
        case(f"{{name}}[1]=int32", setelement(name, 1, lambda a: a.astype(np.int32)), True)
        case(f"{{name}}[1] one element more", setelement(name, 1, lambda a: np.zeros(n + 1, DT)), True)
        case(f"{{name}}[1] empty", setelement(name, 1, lambda a: np.zeros(0, DT)), True)
        case(f"{{name}}[1] strided", setelement(name, 1, lambda a: np.repeat(a, 2)[::2]), n > 1)
        case(f"{{name}}[1] read-only", setelement(name, 1, readonly), written)
        case(f"{{name}}[1]=numpy scalar", setelement(name, 1, lambda a: DT(1.0)), written)
else:
    for name in POSITIONAL:
        required = name in ("param", "grad") or name in REQUIRED
        written = name != "grad"
        n = 1 if name in COUNTERS else SIZES[0]
        case(f"{{name}}=None", setitem(name, None), required)
        def empty_then_none(args, name=name):
            for other in POSITIONAL:
                if other not in COUNTERS:
                    args[other] = np.zeros(0, DT)
            args[name] = None
        case(f"{{name}}=None, empty buffers", empty_then_none, required)
        case(f"{{name}}='x'", setitem(name, "x"), True)
        case(f"{{name}}=list", setitem(name, lambda a: a.tolist()), True)
        case(f"{{name}}=float64", setitem(name, lambda a: a.astype(np.float64)), name not in COUNTERS)
        case(f"{{name}}=int32", setitem(name, lambda a: a.astype(np.int32)), True)
        case(f"{{name}} one element more", setitem(name, lambda a: np.zeros(n + 1, DT)), True)
        case(f"{{name}} empty", setitem(name, lambda a: np.zeros(0, DT)), True)
        case(f"{{name}} 2-D", setitem(name, lambda a: a.reshape(1, -1)), False)
        case(f"{{name}} strided", setitem(name, lambda a: np.repeat(a, 2)[::2]), n > 1)
        case(f"{{name}} read-only", setitem(name, readonly), written)
        case(f"{{name}}=numpy scalar", setitem(name, lambda a: DT(1.0)), written)
print(f"DONE failures={{failures}}")
"""


@pytest.mark.parametrize("group", [True, False], ids=["group", "single"])
@pytest.mark.parametrize("rule", sorted(KERNEL_KW))
def test_public_kernels_reject_bad_arguments_without_crash(rule, group):
    """``fastopt.kernels.<rule>[_group]`` with None lists or buffers, wrong lengths, tuples and other
    iterables, non-array elements, wrong dtypes and sizes, 2-element step buffers: TypeError/ValueError
    (containers other than lists may also be accepted), never a crash, and a rejected call writes
    nothing."""
    required, optional = KERNEL_BUFFERS[rule]
    kwargs = dict(KERNEL_KW[rule])
    extra = {}
    if group:
        lists = GROUP_LISTS[rule]
        required, optional = lists[:len(required)], lists[len(required):]
        if rule == "sgd":
            extra = {"first_steps": [True, False]}
    elif rule == "sgd":
        kwargs["first_step"] = False
    spec = (rule, group, kwargs, tuple(required), tuple(optional), extra)
    code = KERNEL_ABUSE_CODE.format(args=repr(spec), counters=COUNTERS)
    assert_clean_exit(run_python(code))


# =======================================================================================================
# 2. Atomic steps; state follows its parameter
# =======================================================================================================

SHAPES = [(3,), (2, 2), (5,)]


def break_step(kind, params, opt, grads):
    """Make the next step invalid in the way ``kind`` says; returns (grads to pass, undo)."""
    if kind == "grad-shape-in-group-1":
        bad = list(grads)
        bad[2] = grads[2].reshape(5, 1)
        return bad, lambda: None
    if kind in ("read-only-param-in-group-1", "read-only-param-in-group-0"):
        p = params[2] if kind.endswith("1") else params[1]
        p.flags.writeable = False

        def undo():
            p.flags.writeable = True
        return grads, undo
    if kind == "bad-state-in-group-1":
        key = next(k for k, v in opt.state[2].items() if v.shape == params[2].shape)
        saved = opt.state[2][key]
        opt.state[2][key] = np.zeros(saved.size + 1, saved.dtype)

        def undo():
            opt.state[2][key] = saved
        return grads, undo
    raise AssertionError(kind)


@pytest.mark.parametrize("when", ["first-step", "after-a-step"])
@pytest.mark.parametrize("kind", ["grad-shape-in-group-1", "read-only-param-in-group-1",
                                  "read-only-param-in-group-0", "bad-state-in-group-1"])
@pytest.mark.parametrize(("case", "label", "kwargs"), CONFIGS)
def test_rejected_step_is_atomic(case, label, kwargs, kind, when):
    """A step rejected in its second group (or at its second tensor) leaves parameters, state entries,
    state keys and step counts as they were, and creates no state; the next valid step gives exactly
    what an optimizer that never saw the rejected step gives (SGD with momentum used to read an
    uninitialised momentum buffer after a rejected first step)."""
    params = make_params(SHAPES, np.float64)
    twin_params = [p.copy() for p in params]
    opt = case.cls(two_groups(params), **kwargs)
    twin = case.cls(two_groups(twin_params), **kwargs)
    grads = make_grads(SHAPES, np.float64, steps=3)
    if when == "after-a-step":
        opt.step(grads[0])
        twin.step(grads[0])
    elif kind == "bad-state-in-group-1":
        pytest.skip("there is no state to break before the first step")
    if kind == "bad-state-in-group-1" and 2 not in opt.state:
        pytest.skip("this configuration keeps no state")
    before = snapshot(params, opt)
    bad, undo = break_step(kind, params, opt, grads[1])
    with pytest.raises((TypeError, ValueError)):
        opt.step(bad)
    undo()
    assert_unchanged(params, opt, before)
    for g in grads[1:]:
        opt.step(g)
        twin.step(g)
    assert_arrays_equal(params, twin_params)
    assert_same_state(opt.state, twin.state)


def test_rejected_parameter_is_named_by_its_position_across_groups():
    """Messages name a parameter by its index across the groups (as grads[i] and opt.state[i] do)."""
    params = make_params(SHAPES, np.float64)
    opt = fastopt.Adam(two_groups(params))
    opt.step(make_grads(SHAPES, np.float64, steps=1)[0])
    params[2].flags.writeable = False
    with pytest.raises(ValueError, match=r"params\[2\]"):
        opt.step(make_grads(SHAPES, np.float64, steps=1)[0])


BAD_GROUPS = {
    "negative-lr": lambda new: {"params": [new], "lr": -1.0},
    "huge-lr": lambda new: {"params": [new], "lr": HUGE},
    "str-lr": lambda new: {"params": [new], "lr": "0.1"},
    "existing-param": None,  # filled in the test: a parameter already in group 0
    "non-array-second": lambda new: {"params": [new, "x"]},
    "read-only": lambda new: {"params": [np.zeros(2)] + [_readonly(new)]},
    "params-none": lambda new: {"params": None},
    "not-a-dict": lambda new: [new],
}


def _readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("bad", list(BAD_GROUPS))
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_rejected_add_param_group_changes_nothing(case, bad):
    kwargs = first_config(case)
    params = make_params(SHAPES, np.float64)
    twin_params = [p.copy() for p in params]
    opt, twin = case.cls(two_groups(params), **kwargs), case.cls(two_groups(twin_params), **kwargs)
    grads = make_grads(SHAPES, np.float64, steps=2)
    opt.step(grads[0])
    twin.step(grads[0])
    before = snapshot(params, opt)
    groups_before = [dict(g) for g in opt.param_groups]
    defaults_before = dict(opt.defaults)
    new = np.ones(2)
    group = {"params": [new, params[0]]} if bad == "existing-param" else BAD_GROUPS[bad](new)
    with pytest.raises((TypeError, ValueError)):
        opt.add_param_group(group)
    assert_unchanged(params, opt, before)
    assert len(opt.param_groups) == len(groups_before)
    for g, old in zip(opt.param_groups, groups_before):
        assert g.keys() == old.keys()
        assert g["params"] is old["params"] and all(g[k] is old[k] for k in g)
    assert opt.defaults == defaults_before
    opt.step(grads[1])
    twin.step(grads[1])
    assert_arrays_equal(params, twin_params)
    assert_same_state(opt.state, twin.state)


def solo(case, kwargs, param):
    """An oracle: an optimizer over this one parameter alone (state is per parameter, so its trajectory
    is exactly that parameter's trajectory in a shared optimizer)."""
    return case.cls([param], **kwargs)


# schedule-free's step count and averaging weights belong to its param groups (as in the reference): a
# parameter joining a stepped group takes the group's schedule, not a fresh optimizer's
GROUP_SCHEDULE = "the rule's schedule is per param group: a new parameter joins it (tests/test_schedulefree.py)"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_appended_parameter_starts_fresh_and_state_stays_with_its_parameter(case):
    """Adam([{"params": [a]}, {"params": [b]}]); step; group 0 gets c appended; step with grads for
    a, c, b: a and b continue their own trajectories, c starts fresh, and opt.state is indexed by the new
    positions (state[0] a's, state[1] c's, state[2] b's)."""
    if case.cls._live:
        pytest.skip(GROUP_SCHEDULE)
    kwargs = first_config(case)
    a, b, c = make_params([(3,), (4,), (4,)], np.float64)
    oa, ob, oc = (solo(case, kwargs, x.copy()) for x in (a, b, c))
    opt = case.cls([{"params": [a]}, {"params": [b]}], **kwargs)
    g = make_grads([(3,), (4,), (4,)], np.float64, steps=3)
    opt.step([g[0][0], g[0][1]])
    oa.step([g[0][0]])
    ob.step([g[0][1]])
    opt.param_groups[0]["params"].append(c)
    for t in (1, 2):
        opt.step([g[t][0], g[t][2], g[t][1]])
        oa.step([g[t][0]])
        oc.step([g[t][2]])
        ob.step([g[t][1]])
        if t == 1 and "step" in oa.state.get(0, {}):
            assert float(opt.state[0]["step"]) == 2
            assert float(opt.state[1]["step"]) == 1
            assert float(opt.state[2]["step"]) == 2
    for x, oracle in zip((a, c, b), (oa, oc, ob)):
        np.testing.assert_array_equal(x, oracle.param_groups[0]["params"][0])
    expected = {i: o.state[0] for i, o in enumerate((oa, oc, ob)) if 0 in o.state}
    assert_same_state(opt.state, expected)
    assert [g["params"] for g in opt.state_dict()["param_groups"]] == [[0, 1], [2]]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_parameter_replaced_in_place_starts_fresh(case):
    """``params[0] = new_array`` (same shape): the new array gets fresh state, as in torch (state is keyed
    by the parameter object); the other parameter continues."""
    if case.cls._live:
        pytest.skip(GROUP_SCHEDULE)
    kwargs = first_config(case)
    a, b, new = make_params([(4,), (3,), (4,)], np.float64)
    ob, onew = solo(case, kwargs, b.copy()), solo(case, kwargs, new.copy())
    opt = case.cls([a, b], **kwargs)
    g = make_grads([(4,), (3,)], np.float64, steps=3)
    opt.step(g[0])
    ob.step([g[0][1]])
    opt.param_groups[0]["params"][0] = new
    for t in (1, 2):
        opt.step(g[t])
        onew.step([g[t][0]])
        ob.step([g[t][1]])
    np.testing.assert_array_equal(new, onew.param_groups[0]["params"][0])
    np.testing.assert_array_equal(b, ob.param_groups[0]["params"][0])
    assert_same_state(opt.state, {i: o.state[0] for i, o in enumerate((onew, ob)) if 0 in o.state})


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_reordered_parameters_keep_their_state(case):
    """``params.reverse()`` (two parameters of one shape, so a positional mix-up would go unnoticed):
    each parameter keeps its own state, which moves to its new index."""
    kwargs = first_config(case)
    a, b = make_params([(5,), (5,)], np.float64)
    oa, ob = solo(case, kwargs, a.copy()), solo(case, kwargs, b.copy())
    opt = case.cls([a, b], **kwargs)
    g = make_grads([(5,), (5,)], np.float64, steps=3)
    opt.step(g[0])
    oa.step([g[0][0]])
    ob.step([g[0][1]])
    opt.param_groups[0]["params"].reverse()
    for t in (1, 2):
        opt.step([g[t][1], g[t][0]])
        oa.step([g[t][0]])
        ob.step([g[t][1]])
    np.testing.assert_array_equal(a, oa.param_groups[0]["params"][0])
    np.testing.assert_array_equal(b, ob.param_groups[0]["params"][0])
    assert_same_state(opt.state, {i: o.state[0] for i, o in enumerate((ob, oa)) if 0 in o.state})


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_removed_parameter_drops_its_state(case):
    """``params.pop(0)``: the removed parameter's state is dropped (and freed); the others keep theirs,
    at their new indices."""
    kwargs = first_config(case)
    a, b, c = make_params([(4,), (3,), (2,)], np.float64)
    ob, oc = solo(case, kwargs, b.copy()), solo(case, kwargs, c.copy())
    opt = case.cls([a, b, c], **kwargs)
    g = make_grads([(4,), (3,), (2,)], np.float64, steps=3)
    opt.step(g[0])
    ob.step([g[0][1]])
    oc.step([g[0][2]])
    refs = [weakref.ref(v) for v in opt.state.get(0, {}).values()]
    opt.param_groups[0]["params"].pop(0)
    for t in (1, 2):
        opt.step(g[t][1:])
        ob.step([g[t][1]])
        oc.step([g[t][2]])
    np.testing.assert_array_equal(b, ob.param_groups[0]["params"][0])
    np.testing.assert_array_equal(c, oc.param_groups[0]["params"][0])
    assert_same_state(opt.state, {i: o.state[0] for i, o in enumerate((ob, oc)) if 0 in o.state})
    assert_freed(refs, "state arrays of the removed parameter")


# =======================================================================================================
# 3. Memory overlap
# =======================================================================================================


def assert_overlap_error(excinfo, *names):
    message = str(excinfo.value)
    assert "overlap" in message, message
    for name in names:
        assert name in message, f"{name!r} not in {message!r}"


@pytest.mark.parametrize("how", ["same-array", "overlapping-view"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_gradient_overlapping_its_parameter_is_rejected(case, how):
    kwargs = first_config(case)
    other = make_params([(3,)], np.float64)[0]
    buf = np.linspace(-1, 1, 12)
    p = buf[:8]
    grad = p if how == "same-array" else buf[4:]
    opt = case.cls([other, p], **kwargs)
    opt.step([np.ones(3), np.full(8, 0.5)])
    before = snapshot([other, p], opt)
    with pytest.raises(ValueError) as excinfo:
        opt.step([np.ones(3), grad])
    assert_overlap_error(excinfo, "params[1]", "grads[1]")
    assert_unchanged([other, p], opt, before)


@pytest.mark.parametrize("how", ["one-group", "two-groups", "add_param_group", "replaced"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_overlapping_parameters_are_rejected(case, how):
    """Two parameters that are overlapping views of one buffer: ValueError naming both, at construction
    (or add_param_group) or at the first step; a rejected step writes nothing."""
    kwargs = first_config(case)
    buf = np.linspace(-1, 1, 12)
    v1, v2 = buf[:8], buf[4:]
    before = buf.copy()
    grads = [np.full(8, 0.5), np.full(8, 0.25)]
    with pytest.raises(ValueError) as excinfo:
        if how == "one-group":
            opt = case.cls([v1, v2], **kwargs)
        elif how == "two-groups":
            opt = case.cls([{"params": [v1]}, {"params": [v2]}], **kwargs)
        elif how == "add_param_group":
            opt = case.cls([v1], **kwargs)
            opt.add_param_group({"params": [v2]})
        else:
            opt = case.cls([v1, np.zeros(8)], **kwargs)
            opt.param_groups[0]["params"][1] = v2
        opt.step(grads)
    assert_overlap_error(excinfo, "params[0]", "params[1]")
    np.testing.assert_array_equal(buf, before)


@pytest.mark.parametrize("how", ["own-param", "other-param", "other-state-key", "grad-is-state"])
@pytest.mark.parametrize("case", STATEFUL, ids=lambda c: c.name)
def test_state_buffer_aliasing_another_array_is_rejected(case, how):
    """``opt.state[i][key]`` replaced by a parameter (its own or another), by another state buffer, or a
    gradient that is a state buffer: ValueError naming both arrays (``state[0]['exp_avg']``)."""
    kwargs = first_config(case)
    params = make_params([(6,), (6,)], np.float64)
    opt = case.cls(params, **kwargs)
    opt.step(make_grads([(6,), (6,)], np.float64, steps=1)[0])
    keys = [k for k, v in opt.state[0].items() if v.shape == (6,)]
    key = keys[0]
    grads = [np.full(6, 0.5), np.full(6, 0.25)]
    if how == "own-param":
        opt.state[0][key] = params[0]
        names = ("params[0]", f"state[0][{key!r}]")
    elif how == "other-param":
        opt.state[1][key] = params[0]
        names = ("params[0]", f"state[1][{key!r}]")
    elif how == "other-state-key":
        if len(keys) < 2:
            pytest.skip("one state buffer per parameter")
        opt.state[0][keys[1]] = opt.state[0][key]
        names = (f"state[0][{key!r}]", f"state[0][{keys[1]!r}]")
    else:
        grads[0] = opt.state[0][key]
        names = ("grads[0]", f"state[0][{key!r}]")
    before = snapshot(params, opt)
    with pytest.raises(ValueError) as excinfo:
        opt.step(grads)
    assert_overlap_error(excinfo, *names)
    assert_unchanged(params, opt, before)


def group_call_args(rule, dtype=np.float64, n=6):
    """Valid arguments for ``<rule>_group`` over two tensors of n elements, as a dict of lists."""
    args = {"params": [np.linspace(-1, 1, n).astype(dtype), np.linspace(1, 2, n).astype(dtype)],
            "grads": [np.full(n, 0.5, dtype), np.full(n, -0.25, dtype)]}
    for name in GROUP_LISTS[rule]:
        fill = 1.0 if name == "mu_products" else 0.0
        args[name] = [np.full(1 if name in COUNTERS else n, fill, dtype) for _ in range(2)]
    return args


def call_group(ops, rule, args):
    kwargs = dict(KERNEL_KW[rule])
    if rule == "sgd":
        kwargs["first_steps"] = [True, True]
    lists = [args[name] for name in ("params", "grads") + GROUP_LISTS[rule]]
    getattr(ops, rule + "_group")(*lists, **kwargs)


OVERLAPS = ["grads[0] is params[0]", "params[1] overlaps params[0]", "state[0] is params[0]",
            "state[1] overlaps params[0]", "two state lists share an array", "step is a view of params[0]"]


@pytest.mark.parametrize("how", OVERLAPS)
@pytest.mark.parametrize("rule", sorted(KERNEL_KW))
@pytest.mark.parametrize("ops", [fastopt.kernels, fastopt.reference], ids=["kernels", "reference"])
def test_group_kernel_rejects_overlapping_buffers(ops, rule, how):
    """Across the tensors of one group call, an array written by the kernel may overlap no other array:
    ValueError naming both (``params[0]``, ``grads[0]``, ``exp_avgs[0]``); nothing is written."""
    n = 6
    args = group_call_args(rule, n=n)
    buf = np.linspace(-1, 1, n + n // 2)
    states = [name for name in GROUP_LISTS[rule] if name not in COUNTERS]
    if how == "grads[0] is params[0]":
        args["grads"][0] = args["params"][0]
        names = ("params[0]", "grads[0]")
    elif how == "params[1] overlaps params[0]":
        args["params"] = [buf[:n], buf[n // 2:]]
        names = ("params[0]", "params[1]")
    elif how == "state[0] is params[0]":
        args[states[0]][0] = args["params"][0]
        names = ("params[0]", f"{states[0]}[0]")
    elif how == "state[1] overlaps params[0]":
        args["params"][0] = buf[:n]
        args[states[0]][1] = buf[n // 2:]
        names = ("params[0]", f"{states[0]}[1]")
    elif how == "two state lists share an array":
        if len(states) < 2:
            pytest.skip("one state list")
        args[states[1]][0] = args[states[0]][0]
        names = (f"{states[0]}[0]", f"{states[1]}[0]")
    else:
        counters = [name for name in GROUP_LISTS[rule] if name in COUNTERS]
        if not counters:
            pytest.skip("no step counter")
        args[counters[0]][0] = args["params"][0][2:3]
        names = ("params[0]", f"{counters[0]}[0]")
    before = [(a, a.copy()) for v in args.values() for a in v] + [(buf, buf.copy())]
    with pytest.raises(ValueError) as excinfo:
        call_group(ops, rule, args)
    assert_overlap_error(excinfo, *names)
    for a, b in before:
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("ops", [fastopt.kernels, fastopt.reference], ids=["kernels", "reference"])
def test_single_tensor_kernel_rejects_overlapping_buffers(ops):
    n = 6
    p, m, v = np.linspace(-1, 1, n), np.zeros(n), np.zeros(n)
    step = np.zeros(1)
    for args, names in [((p, p, step, m, v), ("param", "grad")),
                        ((p, np.ones(n), step, p, v), ("param", "exp_avg")),
                        ((p, np.ones(n), step, m, m), ("exp_avg", "exp_avg_sq"))]:
        before = [a.copy() for a in (p, m, v, step)]
        with pytest.raises(ValueError) as excinfo:
            ops.adam(*args, **ADAM_KW)
        assert_overlap_error(excinfo, *names)
        for a, b in zip((p, m, v, step), before):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_non_overlapping_views_and_shared_gradients_are_fine(case, dtype):
    """FlatParams' views (disjoint views of one buffer) as separate parameters, and one gradient array
    passed for two parameters of one shape (gradients are only read): accepted, and exactly the result of
    separate arrays."""
    kwargs = first_config(case)
    shapes = [(4, 3), (3,), (), (5,), (5,)]
    separate = make_params(shapes, dtype)
    flat = fastopt.FlatParams(separate)
    opt_sep, opt_views = case.cls(separate, **kwargs), case.cls(flat.params, **kwargs)
    for grads in make_grads(shapes, dtype, steps=3):
        grads[4] = grads[3]  # one gradient array for two parameters
        opt_sep.step([g.copy() for g in grads])
        for view, g in zip(flat.grads, grads):
            view[...] = g
        opt_views.step(flat.grads[:3] + [grads[3], grads[3]])
    for view, p in zip(flat.params, separate):
        np.testing.assert_array_equal(view, p)


@pytest.mark.parametrize("ops", [fastopt.kernels, fastopt.reference], ids=["kernels", "reference"])
def test_group_kernel_accepts_disjoint_views_and_a_shared_gradient(ops):
    buf = np.zeros(12)
    params, g = [buf[:6], buf[6:]], np.ones(6)
    steps, ms, vs = [np.zeros(1), np.zeros(1)], [np.zeros(6), np.zeros(6)], [np.zeros(6), np.zeros(6)]
    ops.adam_group(params, [g, g], steps, ms, vs, None, **ADAM_KW)
    assert (buf != 0).all() and [float(s[0]) for s in steps] == [1.0, 1.0]


def test_concurrent_steps_on_one_optimizer_are_serialized(threads):
    """2 threads x 50 steps on one Adam (1e6 float32, constant gradient): the step count is exactly 100
    and the parameters are bit-identical to 100 sequential steps."""
    threads(2)
    n = 1_000_000
    start = np.linspace(-1, 1, n, dtype=np.float32)
    g = np.cos(np.arange(n, dtype=np.float32))
    p = start.copy()
    opt = fastopt.Adam([p], lr=1e-3)
    barrier, errors = threading.Barrier(2), []

    def worker():
        try:
            barrier.wait()
            for _ in range(50):
                opt.step([g])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=worker) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors, errors
    q = start.copy()
    ref = fastopt.Adam([q], lr=1e-3)
    for _ in range(100):
        ref.step([g])
    assert float(opt.state[0]["step"]) == 100
    np.testing.assert_array_equal(p, q)
    np.testing.assert_array_equal(opt.state[0]["exp_avg_sq"], ref.state[0]["exp_avg_sq"])


# =======================================================================================================
# 4. Hyperparameters
# =======================================================================================================


def constructor_hyperparameters(case, kwargs):
    """Every hyperparameter the constructor takes, with the config's values over the defaults."""
    sig = inspect.signature(case.cls.__init__).parameters
    full = {k: p.default for k, p in sig.items()
            if k not in ("self", "params", "backend") and p.default is not inspect.Parameter.empty}
    full.update(kwargs)
    return full


CONVERTERS = {
    "np.float32": np.float32,
    "np.float64": np.float64,
    "np.float16": np.float16,
    "0-d float64 array": np.array,
    "0-d float32 array": lambda v: np.array(v, np.float32),
}


def as_numpy(value, conv):
    if isinstance(value, bool):
        return np.bool_(value)
    if isinstance(value, int):
        return np.array(value) if "array" in conv else np.int64(value)
    if isinstance(value, float):
        return CONVERTERS[conv](value)
    if isinstance(value, tuple):
        return tuple(as_numpy(v, conv) for v in value)
    return value


def as_python(value):
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.ndarray, np.generic)):
        return float(value)
    if isinstance(value, tuple):
        return tuple(as_python(v) for v in value)
    return value


def run_steps(case, kwargs, backend, dtype=np.float32, steps=3):
    shapes = [(5,), (2, 3)]
    params = make_params(shapes, dtype)
    opt = case.cls(params, backend=backend, **kwargs)
    for grads in make_grads(shapes, dtype, steps=steps):
        opt.step(grads)
    return params, opt


@pytest.mark.parametrize("conv", list(CONVERTERS))
@pytest.mark.parametrize(("case", "label", "kwargs"), CONFIGS)
def test_numpy_scalar_hyperparameters_are_read_as_python_floats(case, label, kwargs, conv):
    """NumPy scalars (float32/float64/float16, int64 weight decay, bool_ flags) and 0-d arrays: accepted,
    bit-identical between backend="cython" and backend="numpy", and identical to the same values given as
    Python floats (float(np.float32(0.01)))."""
    numpy_kwargs = {k: as_numpy(v, conv) for k, v in constructor_hyperparameters(case, kwargs).items()}
    python_kwargs = {k: as_python(v) for k, v in numpy_kwargs.items()}
    runs = {(kind, backend): run_steps(case, kw, backend)
            for kind, kw in (("numpy values", numpy_kwargs), ("python floats", python_kwargs))
            for backend in ("cython", "numpy")}
    expected_params, expected_opt = runs[("python floats", "cython")]
    for params, opt in runs.values():
        assert_arrays_equal(params, expected_params)
        assert_same_state(opt.state, expected_opt.state)


BETAS_CASES = [case for case in CASES if "betas" in inspect.signature(case.cls.__init__).parameters]


@pytest.mark.parametrize("backend", ["cython", "numpy"])
@pytest.mark.parametrize("case", BETAS_CASES, ids=lambda c: c.name)
def test_betas_list_edited_in_place_takes_effect(case, backend):
    """betas given as a list: ``opt.param_groups[0]["betas"][0] = 0.5`` between steps is the same as
    replacing the whole tuple at that point; an invalid in-place edit is caught at the next step."""
    kwargs = {k: v for k, v in first_config(case).items() if k != "betas"}
    shapes = [(5,), (2, 3)]
    grads = make_grads(shapes, np.float64, steps=4)
    edited, replaced = make_params(shapes, np.float64), make_params(shapes, np.float64)
    opt = case.cls(edited, betas=[0.9, 0.999], backend=backend, **kwargs)
    twin = case.cls(replaced, betas=(0.9, 0.999), backend=backend, **kwargs)
    opt.step(grads[0])
    twin.step(grads[0])
    opt.param_groups[0]["betas"][0] = 0.5
    twin.param_groups[0]["betas"] = (0.5, 0.999)
    opt.step(grads[1])
    twin.step(grads[1])
    opt.param_groups[0]["betas"][1] = 0.9
    twin.param_groups[0]["betas"] = (0.5, 0.9)
    opt.step(grads[2])
    twin.step(grads[2])
    assert_arrays_equal(edited, replaced)
    assert_same_state(opt.state, twin.state)
    opt.param_groups[0]["betas"][1] = 1.5
    before = snapshot(edited, opt)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1"):
        opt.step(grads[3])
    assert_unchanged(edited, opt, before)


@pytest.mark.parametrize("backend", ["cython", "numpy"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_0d_array_lr_edited_in_place_takes_effect(case, backend):
    kwargs = {k: v for k, v in first_config(case).items() if k != "lr"}
    shapes = [(5,), (2, 3)]
    grads = make_grads(shapes, np.float64, steps=3)
    edited, replaced = make_params(shapes, np.float64), make_params(shapes, np.float64)
    lr = np.array(0.01)
    opt = case.cls(edited, lr=lr, backend=backend, **kwargs)
    twin = case.cls(replaced, lr=0.01, backend=backend, **kwargs)
    opt.step(grads[0])
    twin.step(grads[0])
    lr[...] = 0.001
    twin.param_groups[0]["lr"] = 0.001
    opt.step(grads[1])
    twin.step(grads[1])
    assert_arrays_equal(edited, replaced)
    assert_same_state(opt.state, twin.state)
    lr[...] = -1.0
    before = snapshot(edited, opt)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        opt.step(grads[2])
    assert_unchanged(edited, opt, before)


BAD_VALUES = {
    "lr": {"huge-int": HUGE, "str": "0.1", "none": None, "complex": 0.1 + 0.2j, "np-complex": np.complex128(0.1),
           "vector": np.array([0.1, 0.2]), "nan": float("nan"), "timedelta": np.timedelta64(1),
           "str-array": np.array("0.1"), "bytes": b"0.1", "1-element-2d": np.array([[0.01]]),
           "1-element": np.array([0.01])},
    "betas": {"short": (0.9,), "scalar": 0.9, "str-element": (0.9, "x"), "three": (0.9, 0.999, 0.5),
              "none": None, "huge": (HUGE, 0.9), "1-element-array": (np.array([0.9]), 0.99),
              "none-element": [0.9, None]},
    "momentum": {"vector": np.array([0.1, 0.2]), "huge-int": HUGE, "str": "x", "none": None, "nan": float("nan")},
    "nesterov": {"str": "yes", "int": 1, "none": None},
    "weight_decay": {"nan": float("nan"), "huge-int": HUGE, "str": "0", "none": None},
    "eps": {"inf": float("inf"), "nan": float("nan"), "huge-int": HUGE, "none": None},
    "dampening": {"huge-int": HUGE, "none": None, "str": "x"},
    "maximize": {"str": "yes", "int": 2},
    "amsgrad": {"str": "yes", "int": 2},
    "centered": {"str": "yes", "int": 2},
    "decoupled_weight_decay": {"str": "yes", "int": 2},
    "foreach": {"str": "yes"},
    "fused": {"str": "yes"},
    **{name: {"huge-int": HUGE, "none": None, "nan": float("nan"), "str": "x"}
       for name in ("alpha", "rho", "lr_decay", "initial_accumulator_value", "momentum_decay", "beta")},
}

# What torch.optim 2.13.0's constructor raises (only TypeError/ValueError recorded; anything else, and
# acceptance, leave fastopt free to accept or to raise TypeError/ValueError). Used when torch is absent.
_T, _V = "TypeError", "ValueError"
_ALL = ["SGD", "Adam", "AdamW", "Adamax", "NAdam", "Adagrad", "Adadelta", "RMSprop"]
TORCH_213 = {
    **{(n, "lr", v): e for n in _ALL for v, e in [("str", _T), ("none", _T), ("complex", _T), ("vector", _V),
                                                  ("timedelta", _T), ("str-array", _T), ("bytes", _T)]},
    **{(n, "lr", "nan"): _V for n in _ALL if n != "SGD"},
    **{(n, "betas", v): e for n in ["Adam", "AdamW", "Adamax", "NAdam"]
       for v, e in [("scalar", _T), ("str-element", _T), ("none", _T), ("huge", _V), ("none-element", _T)]},
    ("SGD", "momentum", "vector"): _V, ("SGD", "momentum", "str"): _T, ("SGD", "momentum", "none"): _T,
    ("RMSprop", "momentum", "vector"): _V, ("RMSprop", "momentum", "str"): _T,
    ("RMSprop", "momentum", "none"): _T, ("RMSprop", "momentum", "nan"): _V,
    **{(n, "weight_decay", v): e for n in _ALL for v, e in [("str", _T), ("none", _T)]},
    **{(n, "weight_decay", "nan"): _V for n in _ALL if n != "SGD"},
    **{(n, "eps", v): e for n in _ALL if n != "SGD" for v, e in [("nan", _V), ("none", _T)]},
    **{(n, hp, v): e for n, hp in [("NAdam", "momentum_decay"), ("Adagrad", "lr_decay"),
                                   ("Adagrad", "initial_accumulator_value"), ("Adadelta", "rho"),
                                   ("RMSprop", "alpha")]
       for v, e in [("none", _T), ("nan", _V), ("str", _T)]},
    ("Adadelta", "rho", "huge-int"): _V,
}


# torch rejects these for a torch-only reason: betas must be "both floats or both Tensors" (it rejects
# (np.float32(0.9), 0.99) the same way, which issue #6 requires fastopt to accept), so fastopt may accept
NOT_TORCH_TYPE = {("betas", "1-element-array")}


def torch_constructor_error(name, kwargs):
    """The TypeError/ValueError torch.optim's constructor raises for these arguments, or None."""
    key = kwargs.pop("_key")
    if key[1:] in NOT_TORCH_TYPE:
        return None
    if torch is None:
        return TORCH_213.get(key)
    cls = getattr(torch.optim, name, None)
    if cls is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cls([torch.zeros(3, requires_grad=True)], **kwargs)
    except (TypeError, ValueError) as exc:
        return "TypeError" if isinstance(exc, TypeError) else "ValueError"
    except Exception:
        return None
    return None


BAD_HYPERPARAMETERS = [
    pytest.param(case, hp, vid, id=f"{case.name}-{hp}-{vid}")
    for case in CASES
    for hp, values in BAD_VALUES.items() if hp in inspect.signature(case.cls.__init__).parameters
    for vid in values
]


def _bad_kwargs(case, hp, vid):
    kwargs = {hp: BAD_VALUES[hp][vid]}
    if case.name == "SGD" and hp in ("nesterov", "dampening"):
        kwargs["momentum"] = 0.9
    return kwargs


def _outcome(fn, *args, **kwargs):
    """``(result, None)`` or ``(None, the exception)`` of ``fn(*args, **kwargs)``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs), None
    except Exception as exc:  # noqa: BLE001 - the type is what is checked
        return None, exc


def _construct_and_step(case, params, backend, kwargs):
    case.cls(params, backend=backend, **kwargs).step([np.full(p.shape, 0.5, p.dtype) for p in params])


@pytest.mark.parametrize(("case", "hp", "vid"), BAD_HYPERPARAMETERS)
def test_bad_hyperparameter_is_a_value_or_type_error(case, hp, vid):
    """A bad hyperparameter, given to the constructor or set in a group later: TypeError/ValueError,
    never KeyError/AttributeError/SystemError/OverflowError/IndexError; torch's type where torch's
    constructor raises TypeError/ValueError. A value fastopt accepts steps the same on both backends."""
    kwargs = _bad_kwargs(case, hp, vid)
    expected = torch_constructor_error(case.name, {**kwargs, "_key": (case.name, hp, vid)})
    params = [np.ones(3, np.float32)]
    opt, exc = _outcome(case.cls, params, **kwargs)
    if exc is not None:
        assert isinstance(exc, (TypeError, ValueError)), f"{type(exc).__name__}: {exc}"
    if expected is not None:
        assert exc is not None, f"accepted; torch raises {expected}"
        assert isinstance(exc, {"TypeError": TypeError, "ValueError": ValueError}[expected]), \
            f"{type(exc).__name__}: {exc}; torch raises {expected}"
    rejected_at_construction = type(exc).__name__ if exc is not None else None
    if not rejected_at_construction:
        results = {}
        for backend in ("cython", "numpy"):
            p = [np.ones(3, np.float32)]
            _, step_exc = _outcome(_construct_and_step, case, p, backend, kwargs)
            if step_exc is not None:
                assert isinstance(step_exc, (TypeError, ValueError)), \
                    f"{backend}: {type(step_exc).__name__}: {step_exc}"
                assert np.array_equal(p[0], np.ones(3, np.float32)), f"{backend}: a rejected step changed params[0]"
            results[backend] = (None if step_exc is None else "TypeError" if isinstance(step_exc, TypeError)
                                else "ValueError", p[0])
        assert results["cython"][0] == results["numpy"][0], results
        if results["cython"][0] is None:
            np.testing.assert_array_equal(results["cython"][1], results["numpy"][1])
    # the same value set in a group after construction, then a step
    params = make_params(SHAPES, np.float32)
    base = {k: v for k, v in kwargs.items() if k != hp}
    opt = case.cls(two_groups(params), **base)
    opt.step(make_grads(SHAPES, np.float32, steps=1)[0])
    before = snapshot(params, opt)
    opt.param_groups[1][hp] = BAD_VALUES[hp][vid]
    _, exc = _outcome(opt.step, make_grads(SHAPES, np.float32, steps=1, seed=4)[0])
    if exc is not None:
        assert isinstance(exc, (TypeError, ValueError)), f"set later: {type(exc).__name__}: {exc}"
        assert_unchanged(params, opt, before)
    elif rejected_at_construction:
        pytest.fail(f"rejected by the constructor ({rejected_at_construction}) but accepted when set in a group")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_deleted_group_key_is_a_value_or_type_error(case):
    """A group dict whose "lr" (or "params", or any hyperparameter) was deleted after construction:
    the step raises TypeError/ValueError (never KeyError) and changes nothing. Deleting a torch-only
    switch (foreach, fused, ...) or another hyperparameter may also be accepted."""
    kwargs = first_config(case)
    keys = ["lr", "params"] + [k for k in case.cls([np.zeros(1)], **kwargs).defaults if k != "lr"]
    for key in keys:
        params = make_params(SHAPES, np.float32)
        opt = case.cls(two_groups(params), **kwargs)
        opt.step(make_grads(SHAPES, np.float32, steps=1)[0])
        before = snapshot(params, opt)
        del opt.param_groups[1][key]
        _, exc = _outcome(opt.step, make_grads(SHAPES, np.float32, steps=1, seed=4)[0])
        if exc is None:
            assert key not in ("lr", "params"), f"deleting {key!r} was accepted"
            continue
        assert isinstance(exc, (TypeError, ValueError)), f"del {key!r}: {type(exc).__name__}: {exc}"
        assert_unchanged(params, opt, before)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_group_appended_without_hyperparameters(case):
    """``opt.param_groups.append({"params": [x]})`` (bypassing add_param_group): the step either fills
    the defaults in or raises TypeError/ValueError, never KeyError, and a rejected step changes nothing."""
    params = make_params(SHAPES, np.float32)
    opt = case.cls(params[:2], **first_config(case))
    opt.step(make_grads(SHAPES[:2], np.float32, steps=1)[0])
    before = snapshot(params[:2], opt)
    opt.param_groups.append({"params": [params[2]]})
    _, exc = _outcome(opt.step, make_grads(SHAPES, np.float32, steps=1)[0])
    if exc is not None:
        assert isinstance(exc, (TypeError, ValueError)), f"{type(exc).__name__}: {exc}"
        assert_unchanged(params[:2], opt, before)


@pytest.mark.parametrize("n", [2**70, 2**63, 2**31, np.int64(2**40), np.uint64(2**64 - 1)],
                         ids=["2**70", "2**63", "2**31", "int64-2**40", "uint64-max"])
def test_set_num_threads_with_a_huge_count(n, threads):
    """Rejected with TypeError/ValueError (the count unchanged), or accepted and every step still works
    (capped by the kernels): never an OverflowError at the next step."""
    before = fastopt.get_num_threads()
    _, exc = _outcome(threads, n)
    if exc is not None:
        assert isinstance(exc, (TypeError, ValueError)), f"{type(exc).__name__}: {exc}"
        assert fastopt.get_num_threads() == before
        return
    assert fastopt.get_num_threads() >= 1
    for case in CASES:
        params = make_params([(40_000,)], np.float32)
        case.cls(params, **first_config(case)).step(make_grads([(40_000,)], np.float32, steps=1)[0])


MALFORMED_STATE_DICTS = {
    "state-is-a-list": lambda sd: sd.__setitem__("state", []),
    "state-is-none": lambda sd: sd.__setitem__("state", None),
    "state-is-pairs": lambda sd: sd.__setitem__("state", list(sd["state"].items())),
    "param_groups-is-a-dict": lambda sd: sd.__setitem__("param_groups", dict(enumerate(sd["param_groups"]))),
    "param_groups-is-none": lambda sd: sd.__setitem__("param_groups", None),
    "param_groups-is-a-str": lambda sd: sd.__setitem__("param_groups", "ab"),
    "param_groups-is-an-int": lambda sd: sd.__setitem__("param_groups", 2),
    "group-without-params": lambda sd: sd["param_groups"][0].pop("params"),
    "group-is-a-list": lambda sd: sd["param_groups"].__setitem__(0, [0, 1]),
    "group-is-a-str": lambda sd: sd["param_groups"].__setitem__(0, "params"),
    "group-is-none": lambda sd: sd["param_groups"].__setitem__(0, None),
    "group-params-is-an-int": lambda sd: sd["param_groups"][0].__setitem__("params", 0),
    "group-params-is-none": lambda sd: sd["param_groups"][0].__setitem__("params", None),
    "group-params-unhashable": lambda sd: sd["param_groups"][0].__setitem__("params", [[0], [1]]),
    "group-lr-huge": lambda sd: sd["param_groups"][0].__setitem__("lr", HUGE),
    "group-betas-short": lambda sd: sd["param_groups"][0].__setitem__("betas", (0.9,)),
    "state-value-is-a-str": lambda sd: sd["state"].__setitem__(0, "abc"),
    "state-value-is-none": lambda sd: sd["state"].__setitem__(0, None),
    "step-of-shape-2": lambda sd: sd["state"][0].__setitem__("step", np.zeros(2)),
    "exp_avg-is-a-str": lambda sd: sd["state"][0].__setitem__("exp_avg", "abc"),
    "exp_avg-ragged": lambda sd: sd["state"][0].__setitem__("exp_avg", [[1.0], [1.0, 2.0]]),
    "exp_avg-huge-ints": lambda sd: sd["state"][0].__setitem__("exp_avg", [HUGE] * 3),
    "exp_avg-objects": lambda sd: sd["state"][0].__setitem__("exp_avg", np.array([object()] * 3)),
    "not-a-dict": None,
}


@pytest.mark.parametrize("kind", list(MALFORMED_STATE_DICTS))
def test_malformed_state_dict_is_a_value_or_type_error(kind):
    """load_state_dict with a malformed dict: TypeError/ValueError (torch raises AttributeError or
    KeyError for some of these; fastopt must not), and nothing changes."""
    params = make_params(SHAPES, np.float64)
    opt = fastopt.Adam([{"params": params[:1]}, {"params": params[1:], "lr": 0.1}], amsgrad=True)
    opt.step(make_grads(SHAPES, np.float64, steps=1)[0])
    sd = copy.deepcopy(opt.state_dict())
    if kind == "not-a-dict":
        sd = [sd["state"], sd["param_groups"]]
    else:
        MALFORMED_STATE_DICTS[kind](sd)
    before = snapshot(params, opt)
    groups_before = copy.deepcopy([{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups])
    param_lists = [g["params"] for g in opt.param_groups]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises((TypeError, ValueError)):
            opt.load_state_dict(sd)
    assert_unchanged(params, opt, before)
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == groups_before
    assert [g["params"] for g in opt.param_groups] == param_lists


def test_flat_params_with_a_huge_shape_is_a_value_error():
    with pytest.raises((TypeError, ValueError)):
        fastopt.FlatParams([(HUGE,)])


# =======================================================================================================
# 5. Caches never outlive what they describe
# =======================================================================================================


def assert_freed(refs, what="old state arrays"):
    """Every weakref dead, after a gc.collect() (only run when some are still alive: a full collection
    costs 0.2 s once torch is imported, and these arrays should go with their last reference)."""
    if any(r() is not None for r in refs):
        gc.collect()
    alive = [r() for r in refs if r() is not None]
    assert not alive, f"{len(alive)} of {len(refs)} {what} are still alive"


def _state_refs(opt):
    return [weakref.ref(v) for s in opt.state.values() for v in s.values()]


CYCLES = ["load_state_dict", "new-group-dict-then-load", "new-group-dict-then-reset", "reset-state"]


@pytest.mark.parametrize("cycle", CYCLES)
@pytest.mark.parametrize("case", STATEFUL, ids=lambda c: c.name)
def test_replaced_state_arrays_are_freed(case, cycle):
    """After ``opt.load_state_dict(deepcopy(opt.state_dict()))``, or a group dict replaced by a new one
    followed by new state, and a step, the old state arrays are garbage: no cache keeps them alive."""
    kwargs = first_config(case)
    params = make_params(SHAPES, np.float32)
    opt = case.cls(two_groups(params), **kwargs)
    grads = make_grads(SHAPES, np.float32, steps=4)
    opt.step(grads[0])
    opt.step(grads[1])
    refs = _state_refs(opt)
    assert refs
    if cycle.startswith("new-group-dict"):
        opt.param_groups[0] = dict(opt.param_groups[0])
        opt.step(grads[2])
    if cycle.endswith("load") or cycle == "load_state_dict":
        opt.load_state_dict(copy.deepcopy(opt.state_dict()))
    else:
        opt.state = {}
    opt.step(grads[3])
    assert_freed(refs)


def test_load_state_dict_cycles_keep_memory_flat():
    """50 load_state_dict cycles (deep-copied state dicts) of a 1e6-element float32 Adam, a step in
    between: traced memory stays flat (growth under the size of 2 arrays)."""
    n = 1_000_000
    limit = 2 * n * 4
    p = np.linspace(-1, 1, n, dtype=np.float32)
    g = np.cos(np.arange(n, dtype=np.float32))
    opt = fastopt.Adam([p], lr=1e-3)
    opt.step([g])
    gc.collect()
    tracemalloc.start()
    try:
        base = None
        for cycle in range(50):
            sd = copy.deepcopy(opt.state_dict())
            opt.load_state_dict(sd)
            del sd
            opt.step([g])
            if cycle == 2:
                gc.collect()
                base = tracemalloc.get_traced_memory()[0]
            elif base is not None and (cycle == 49 or tracemalloc.get_traced_memory()[0] - base >= limit):
                gc.collect()  # at the end, and before calling anything a leak (it stops a leak early)
                growth = tracemalloc.get_traced_memory()[0] - base
                assert growth < limit, f"cycle {cycle}: {growth / 2**20:.1f} MiB more than after cycle 2"
        assert base is not None
    finally:
        tracemalloc.stop()


# =======================================================================================================
# 6. FlatParams through pickle and deepcopy
# =======================================================================================================

ROUND_TRIPS = {"pickle": lambda obj: pickle.loads(pickle.dumps(obj)), "deepcopy": copy.deepcopy}
FLAT_SHAPES = [(4, 3), (3,), (), (5,)]


@pytest.mark.parametrize("how", list(ROUND_TRIPS))
def test_flat_params_survive_pickle_and_deepcopy(how, dtype):
    flat = fastopt.FlatParams(make_params(FLAT_SHAPES, dtype))
    for view, g in zip(flat.grads, make_grads(FLAT_SHAPES, dtype, steps=1)[0]):
        view[...] = g
    flat2 = ROUND_TRIPS[how](flat)
    assert flat2.data is not flat.data and not np.shares_memory(flat2.data, flat.data)
    np.testing.assert_array_equal(flat2.data, flat.data)
    np.testing.assert_array_equal(flat2.grad, flat.grad)
    for i, shape in enumerate(FLAT_SHAPES):
        assert flat2.params[i].shape == shape and flat2.grads[i].shape == shape
        assert np.shares_memory(flat2.params[i], flat2.data), f"params[{i}] is not a view into data"
        assert np.shares_memory(flat2.grads[i], flat2.grad), f"grads[{i}] is not a view into grad"
        np.testing.assert_array_equal(flat2.params[i], flat.params[i])
        np.testing.assert_array_equal(flat2.grads[i], flat.grads[i])
    # training the copy through its views: gradients written into grads[i] move params[i]
    opt, opt2 = fastopt.Adam([flat.data], lr=0.1), fastopt.Adam([flat2.data], lr=0.1)
    for grads in make_grads(FLAT_SHAPES, dtype, steps=2, seed=9):
        for target in (flat, flat2):
            for view, g in zip(target.grads, grads):
                view[...] = g
        opt.step([flat.grad])
        opt2.step([flat2.grad])
    for i in range(len(FLAT_SHAPES)):
        np.testing.assert_array_equal(flat2.params[i], flat.params[i])


@pytest.mark.parametrize("how", list(ROUND_TRIPS))
def test_flat_params_and_optimizer_copied_together_stay_linked(how):
    flat = fastopt.FlatParams(make_params(FLAT_SHAPES, np.float32))
    opt = fastopt.Adam([flat.data], lr=0.1)
    grads = make_grads(FLAT_SHAPES, np.float32, steps=4)
    for g in grads[:2]:
        for view, x in zip(flat.grads, g):
            view[...] = x
        opt.step([flat.grad])
    flat2, opt2 = ROUND_TRIPS[how]((flat, opt))
    assert opt2.param_groups[0]["params"][0] is flat2.data
    for g in grads[2:]:
        for target, o in ((flat, opt), (flat2, opt2)):
            for view, x in zip(target.grads, g):
                view[...] = x
            o.step([target.grad])
    for i in range(len(FLAT_SHAPES)):
        assert np.shares_memory(flat2.params[i], flat2.data)
        np.testing.assert_array_equal(flat2.params[i], flat.params[i])
    assert_same_state(opt2.state, opt.state)


# =======================================================================================================
# 7. fork
# =======================================================================================================

needs_fork = pytest.mark.skipif(sys.platform in ("win32", "darwin") or not hasattr(os, "fork"),
                                reason="fork is unavailable (Windows) or unsafe (macOS)")

FORK_PRELUDE = """
import os, signal, sys, time
import numpy as np
import fastopt

fastopt.set_num_threads(2)
N = 1_000_000
CHILD_TIMEOUT = 15  # a child's 3 steps take well under 0.1 s

def run(seed=0, steps=3):
    p = np.linspace(-1, 1, N, dtype=np.float32) + np.float32(seed)
    opt = fastopt.Adam([p], lr=1e-3)
    g = np.cos(np.arange(N, dtype=np.float32) + np.float32(seed))
    for _ in range(steps):
        opt.step([g])  # 1e6 elements: split over 2 OpenMP threads
    return p
"""


@needs_fork
def test_threaded_steps_in_a_forked_child():
    """A threaded step in the parent, then os.fork(): the child's threaded steps finish (no deadlock in
    the OpenMP runtime) with the parent's results, and the parent keeps stepping correctly."""
    code = FORK_PRELUDE + """
parent = run()
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    status = 3
    try:
        os.close(r)
        os.write(w, b"equal" if np.array_equal(run(), parent) else b"differ")
        status = 0
    finally:
        os._exit(status)
os.close(w)
deadline = time.monotonic() + CHILD_TIMEOUT
while True:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        break
    if time.monotonic() > deadline:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        print(f"HUNG: the forked child's threaded steps did not finish in {CHILD_TIMEOUT} s", flush=True)
        sys.exit(1)
    time.sleep(0.01)
print("child", os.waitstatus_to_exitcode(status), os.read(r, 16).decode())
print("parent", "equal" if np.array_equal(run(), parent) else "differ")
print("DONE")
"""
    out = run_python(code, timeout=60)
    assert_clean_exit(out, done="DONE")
    assert "child 0 equal" in out.stdout and "parent equal" in out.stdout, out.stdout


@needs_fork
def test_threaded_steps_in_a_fork_pool():
    code = FORK_PRELUDE + """
import multiprocessing

expected = [run(seed) for seed in (0, 1)]  # threaded steps in the parent first
pool = multiprocessing.get_context("fork").Pool(2)
try:
    results = pool.map_async(run, [0, 1]).get(timeout=CHILD_TIMEOUT)
except multiprocessing.TimeoutError:
    print(f"HUNG: the pool's threaded steps did not finish in {CHILD_TIMEOUT} s", flush=True)
    pool.terminate()
    pool.join()
    sys.exit(1)
pool.close()
pool.join()
print("pool", "equal" if all(np.array_equal(a, b) for a, b in zip(results, expected)) else "differ")
print("DONE")
"""
    out = run_python(code, timeout=60)
    assert_clean_exit(out, done="DONE")
    assert "pool equal" in out.stdout, out.stdout
