"""fastopt.torch under torch.distributed: DDP, ZeroRedundancyOptimizer, its checkpoints, lr schedulers.

The module starts 2 worker processes once (this file, run as a script; the start-up, torch's import,
is most of the cost) that form a gloo process group on 127.0.0.1 through a TCPStore held by the test
process (its port is picked by the OS and held, so nothing can take it in between). The workers
go through RUNS in order: every rank trains the same small float32 MLP on its half of each global
batch, with DDP alone or with ZeroRedundancyOptimizer, and saves each run's results to a file as soon
as the run is done. The tests compare them with single-process runs over the whole global batches,
with fastopt.torch and with torch.optim.

Hangs and crashes fail instead of blocking CI: the workers run in their own process groups; a
worker that fails exits at once, and then, or after LAUNCH_TIMEOUT seconds, every worker is killed.
The runs completed by then are still checked; the others fail with the workers' output.

Tolerance: DDP averages the two half-batch gradients where the single-process run takes the mean over
the whole batch, so the gradients differ by float32 rounding. After 10 steps the parameters (|p| < 1)
differ by at most 6e-8 (Adam, AdamW, SGD with Nesterov momentum, measured); RTOL/ATOL allow about
1e-6 + 1e-5 |p|, 15x to 80x that, while a real difference is far larger (Adam's eps 1e-6 instead of
1e-8 alone moves a parameter by 3e-4; a skipped step, a stale lr or a lost state by more). Optimizer
state is compared relative to each tensor's scale (exp_avg_sq is ~1e-5 here): STATE_TOL = 1e-4, where
1e-6 was measured. What both ranks compute from the same reduced gradients (DDP's parameters and
optimizer states, ZeRO's broadcast parameters) must be bit-identical across the ranks.
"""
import copy
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from datetime import timedelta
from pathlib import Path

import pytest

THIS_FILE = Path(__file__).resolve()
WORLD_SIZE = 2
LAUNCH_TIMEOUT = 90.0  # seconds for all the runs (about 10 s on an idle 2-core machine)
COLLECTIVE_TIMEOUT = 45  # seconds; a worker whose peer died stops waiting on its own

# the model, the data and the run: shared by the workers and the single-process references
SIZES = (8, 32, 32, 4)  # Linear(8, 32) Tanh Linear(32, 32) Tanh Linear(32, 4)
GLOBAL_BATCH = 16
STEPS = 10
RESUME_STEPS = 4  # steps taken after loading a consolidated checkpoint
RTOL, ATOL = 1e-5, 1e-6  # parameters (|p| < 1): observed differences <= 6e-8
STATE_TOL = 1e-4  # optimizer state, relative to each tensor's largest value: observed <= 1e-6

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")  # torch.distributed.optim

OPTIMIZERS = {  # name -> (class name, kwargs), the same for fastopt.torch and torch.optim
    "adam": ("Adam", dict(lr=1e-2)),
    "adamw": ("AdamW", dict(lr=1e-2, weight_decay=0.1)),
    "sgd_momentum": ("SGD", dict(lr=5e-2, momentum=0.9, nesterov=True)),
    "radam": ("RAdam", dict(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True)),
    "lamb": ("LAMB", dict(lr=1e-2, weight_decay=0.1)),  # not in torch.optim: the trust ratio's two passes
}
SCHEDULE = dict(step_size=3, gamma=0.5)  # StepLR


# -- shared by workers and references ----------------------------------------------------------------

def candidate_module():
    """The optimizers under test: fastopt.torch."""
    import fastopt.torch
    return fastopt.torch


def make_model(torch):
    torch.manual_seed(0)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        if i:
            layers.append(torch.nn.Tanh())
        layers.append(torch.nn.Linear(n_in, n_out))
    return torch.nn.Sequential(*layers)


def global_batch(torch, step):
    g = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(GLOBAL_BATCH, SIZES[0], generator=g)
    y = torch.randn(GLOBAL_BATCH, SIZES[-1], generator=g)
    return x, y


def shard(tensor, rank, world_size):
    n = tensor.shape[0] // world_size
    return tensor[rank * n:(rank + 1) * n]


def make_optimizer(module, name, params):
    cls_name, kwargs = OPTIMIZERS[name]
    return getattr(module, cls_name)(params, **kwargs)


def train(torch, model, opt, steps, first_step=0, rank=0, world_size=1, scheduler=None, lrs=None):
    """``steps`` steps on this rank's share of the global batches ``first_step``, ...; returns the
    losses. ``lrs`` collects the lr of the optimizer that does the update (a ZeRO rank's local one)."""
    losses = []
    for step in range(first_step, first_step + steps):
        x, y = (shard(t, rank, world_size) for t in global_batch(torch, step))
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        if lrs is not None:
            lrs.append(getattr(opt, "optim", opt).param_groups[0]["lr"])
        if scheduler is not None:
            scheduler.step()
        losses.append(loss.item())
    return losses


def params_of(model):
    model = getattr(model, "module", model)
    return {name: p.detach().clone() for name, p in model.named_parameters()}


# -- the worker (this file run as a script) ----------------------------------------------------------

def worker(config):
    """One rank: every run of ``config["runs"]`` in order, each run's results saved to its own file as
    soon as it is done. Any error ends the process at once (exit code 1, traceback in the log)."""
    try:
        import torch
        import torch.distributed as dist

        import fastopt

        torch.set_num_threads(1)
        fastopt.set_num_threads(1)
        if os.path.abspath(fastopt.__file__) != config["fastopt_file"]:
            raise RuntimeError(f"imported {fastopt.__file__}, expected {config['fastopt_file']}")

        rank, world_size = config["rank"], config["world_size"]
        timeout = timedelta(seconds=COLLECTIVE_TIMEOUT)
        store = dist.TCPStore("127.0.0.1", config["port"], world_size, is_master=False, timeout=timeout)
        dist.init_process_group("gloo", store=store, rank=rank, world_size=world_size, timeout=timeout)
        for run_id, spec in config["runs"].items():
            out = run(spec, rank, world_size, Path(config["dir"]) / f"{run_id}.checkpoint.pt")
            # DDP and ZeRO are gone (run() returned) before the process group is destroyed below:
            # the group's last reference must not be DDP's reducer, whose release holds the GIL
            # while gloo's threads are joined (a deadlock at exit if one of them is still releasing
            # a tensor)
            gc.collect()
            path = Path(config["dir"]) / f"{run_id}.rank{rank}.pt"
            torch.save(out, path.with_suffix(".tmp"))
            os.replace(path.with_suffix(".tmp"), path)
            print(f"rank {rank}: {run_id} done", flush=True)
        dist.destroy_process_group()
    except BaseException:
        traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)  # not a normal exit: a peer may be blocked in a collective with us


def run(spec, rank, world_size, checkpoint):
    """One training on this rank; returns its results (tensors and plain data only)."""
    import torch
    import torch.distributed as dist
    from torch.distributed.optim import ZeroRedundancyOptimizer
    from torch.nn.parallel import DistributedDataParallel as DDP

    module = candidate_module()
    cls_name, kwargs = OPTIMIZERS[spec["optimizer"]]
    out = {"rank": rank}
    ddp = DDP(make_model(torch), gradient_as_bucket_view=spec.get("gradient_as_bucket_view", False))
    if spec["kind"] == "ddp":
        opt = getattr(module, cls_name)(ddp.parameters(), **kwargs)
    else:
        opt = ZeroRedundancyOptimizer(
            ddp.parameters(), optimizer_class=getattr(module, cls_name),
            parameters_as_bucket_view=spec.get("parameters_as_bucket_view", False), **kwargs)
        out["local_optimizer"] = type(opt.optim).__module__ + "." + type(opt.optim).__name__
        out["local_params"] = sum(len(g["params"]) for g in opt.optim.param_groups)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, **SCHEDULE) if spec.get("scheduler") else None
    out["lrs"] = []
    out["losses"] = train(torch, ddp, opt, STEPS, rank=rank, world_size=world_size,
                          scheduler=scheduler, lrs=out["lrs"])
    out["params"] = params_of(ddp)
    if spec["kind"] == "ddp":
        out["state_dict"] = copy.deepcopy(opt.state_dict())
    if spec.get("checkpoint"):
        # consolidated on rank 0 (a collective), saved by rank 0, loaded by every rank into a fresh
        # model + ZeRO optimizer that continue training
        opt.consolidate_state_dict(to=0)
        if rank == 0:
            state = opt.state_dict()
            torch.save({"optimizer": state, "params": out["params"]}, checkpoint)
            out["consolidated"] = copy.deepcopy(state)
        dist.barrier()
        saved = torch.load(checkpoint, weights_only=False)
        model2 = make_model(torch)
        model2.load_state_dict(saved["params"])
        ddp2 = DDP(model2)
        opt2 = ZeroRedundancyOptimizer(ddp2.parameters(), optimizer_class=getattr(module, cls_name),
                                       **kwargs)
        opt2.load_state_dict(saved["optimizer"])
        train(torch, ddp2, opt2, RESUME_STEPS, first_step=STEPS, rank=rank, world_size=world_size)
        out["resumed_params"] = params_of(ddp2)
    dist.barrier()
    return out


# -- launching the workers ---------------------------------------------------------------------------

def child_env(fastopt_file):
    """The parent's environment, minus LD_PRELOAD, with this fastopt first on the path, 1 thread."""
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    root = str(Path(fastopt_file).parent.parent)
    inherited = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([root] + inherited)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", FASTOPT_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    if sys.platform.startswith("linux") and "GLOO_SOCKET_IFNAME" not in env:
        if "lo" in {name for _, name in socket.if_nameindex()}:
            env["GLOO_SOCKET_IFNAME"] = "lo"  # gloo on the loopback device, like the store
    return env


def kill(proc):
    """Kill the worker's process group (the worker and anything it started, even after the worker
    itself exited), then reap the worker."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def launch(directory, runs):
    """Run ``runs`` ({run id: spec}) on WORLD_SIZE worker processes. Returns ({run id: [result of
    rank 0, rank 1]} for the runs that completed on every rank, None or what went wrong: a worker
    failed (the others are killed at once) or the workers took more than LAUNCH_TIMEOUT seconds)."""
    import torch
    import torch.distributed as dist

    import fastopt

    fastopt_file = os.path.abspath(fastopt.__file__)
    # the rendezvous store, in this process: its port is picked by the OS and held until the end
    store = dist.TCPStore("127.0.0.1", 0, None, is_master=True, wait_for_workers=False,
                          timeout=timedelta(seconds=COLLECTIVE_TIMEOUT))
    env = child_env(fastopt_file)
    procs, logs = [], []
    problem = None
    try:
        for rank in range(WORLD_SIZE):
            cfg = directory / f"rank{rank}.json"
            cfg.write_text(json.dumps(dict(runs=runs, rank=rank, world_size=WORLD_SIZE, port=store.port,
                                           dir=str(directory), fastopt_file=fastopt_file)))
            logs.append(open(directory / f"rank{rank}.log", "wb"))
            procs.append(subprocess.Popen([sys.executable, str(THIS_FILE), str(cfg)], env=env,
                                          stdout=logs[-1], stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True))
        deadline = time.monotonic() + LAUNCH_TIMEOUT
        while True:
            codes = [p.poll() for p in procs]
            if all(c == 0 for c in codes):
                break
            failed = [r for r, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                problem = f"rank {failed[0]} exited with code {codes[failed[0]]}"
                break
            if time.monotonic() > deadline:
                problem = f"the workers were still running after {LAUNCH_TIMEOUT:.0f} s (killed)"
                break
            time.sleep(0.05)
    finally:
        for p in procs:
            kill(p)
        for log in logs:
            log.close()
        del store
    if problem is not None:
        for r in range(len(procs)):
            tail = (directory / f"rank{r}.log").read_text(errors="replace")[-4000:]
            problem += f"\n--- rank {r} output (tail) ---\n{tail}"
    results = {}
    for run_id in runs:
        paths = [directory / f"{run_id}.rank{r}.pt" for r in range(WORLD_SIZE)]
        if all(p.exists() for p in paths):
            results[run_id] = [torch.load(p, weights_only=False) for p in paths]
    return results, problem


# -- single-process references -----------------------------------------------------------------------

def reference(torch, module, name, steps=STEPS, scheduler=False):
    """The same training in one process over the whole global batches: (params, optimizer)."""
    model = make_model(torch)
    opt = make_optimizer(module, name, model.parameters())
    sched = torch.optim.lr_scheduler.StepLR(opt, **SCHEDULE) if scheduler else None
    train(torch, model, opt, steps, scheduler=sched)
    return params_of(model), opt


def assert_params_close(actual, expected, what):
    import torch
    assert actual.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=RTOL, atol=ATOL,
                                   msg=lambda m, key=key: f"{what}, parameter {key}: {m}")


def assert_params_equal(a, b, what):
    import torch
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{what}: parameter {key} differs between the ranks"


def assert_state_close(actual, expected, what, exact=False):
    """Optimizer states (``state_dict()["state"]`` or ``opt.state`` values in order): same keys,
    tensors close (or equal), scalars equal."""
    import torch
    assert len(actual) == len(expected), what
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert set(a) == set(e), f"{what}: state {i} has keys {sorted(a)}, expected {sorted(e)}"
        for key in e:
            va, ve = a[key], e[key]
            if torch.is_tensor(ve) and ve.dim() > 0:
                if exact:
                    assert torch.equal(va, ve), f"{what}: state {i} {key!r} differs"
                else:  # relative to the tensor's scale: exp_avg_sq is ~1e-5 here
                    atol = STATE_TOL * ve.abs().max().item()
                    torch.testing.assert_close(va, ve, rtol=STATE_TOL, atol=atol,
                                               msg=lambda m, i=i, key=key: f"{what}: state {i} {key!r}: {m}")
            else:
                assert float(va) == float(ve), f"{what}: state {i} {key!r}: {va} != {ve}"


def assert_differs(actual, expected, what):
    worst = max((actual[k] - expected[k]).abs().max().item() for k in expected)
    assert worst > 100 * ATOL, f"{what}: the runs should differ, max difference {worst:.3g}"


# -- fixtures ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def torch():
    torch = pytest.importorskip("torch")
    import torch.distributed as dist
    if not dist.is_available():
        pytest.skip("torch.distributed is not available in this torch build")
    if not dist.is_gloo_available():
        pytest.skip("torch.distributed has no gloo backend in this torch build")
    if not hasattr(os, "killpg"):
        pytest.skip("the worker harness needs POSIX process groups")
    try:
        import torch.distributed.optim  # noqa: F401  (ZeroRedundancyOptimizer)
        import torch.nn.parallel  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"torch.distributed.optim does not import: {exc}")
    return torch


@pytest.fixture(scope="module")
def ft(torch):
    return candidate_module()


RUNS = {  # run id -> spec; all of them run in one launch of the 2 workers, in this order
    "ddp-adam": dict(kind="ddp", optimizer="adam"),
    "ddp-adam-gradient_as_bucket_view": dict(kind="ddp", optimizer="adam", gradient_as_bucket_view=True),
    "ddp-adamw": dict(kind="ddp", optimizer="adamw"),
    "ddp-sgd_momentum-gradient_as_bucket_view": dict(kind="ddp", optimizer="sgd_momentum",
                                                     gradient_as_bucket_view=True),
    "ddp-radam": dict(kind="ddp", optimizer="radam"),
    "ddp-lamb": dict(kind="ddp", optimizer="lamb"),
    "zero-lamb": dict(kind="zero", optimizer="lamb"),
    "zero-adam": dict(kind="zero", optimizer="adam", checkpoint=True),
    "zero-adam-parameters_as_bucket_view": dict(kind="zero", optimizer="adam", checkpoint=True,
                                                parameters_as_bucket_view=True),
    "zero-adam-steplr": dict(kind="zero", optimizer="adam", scheduler=True),
}


@pytest.fixture(scope="module")
def launched(ft, tmp_path_factory):
    """The 2-rank results of every run in RUNS (one launch for the module: the workers' start-up,
    torch's import, is most of the cost)."""
    return launch(tmp_path_factory.mktemp("distributed"), RUNS)


def results(launched, run_id):
    """The results of ``run_id`` on (rank 0, rank 1); fails the test if that run did not complete."""
    done, problem = launched
    if run_id not in done:
        pytest.fail(f"run {run_id!r} did not complete: {problem}", pytrace=False)
    return done[run_id]


# -- (a) DistributedDataParallel ---------------------------------------------------------------------

@pytest.mark.parametrize("run_id", [r for r in RUNS if r.startswith("ddp-")])
def test_ddp_matches_single_process(torch, ft, launched, run_id):
    """DDP + a fastopt.torch optimizer on 2 ranks, half the global batch each: both ranks end with
    bit-identical parameters and optimizer states, equal (to float32 rounding) to one process over
    the whole batch with fastopt.torch and with torch.optim."""
    r0, r1 = results(launched, run_id)
    name = RUNS[run_id]["optimizer"]
    assert_params_equal(r0["params"], r1["params"], "DDP")
    assert_state_close(list(r0["state_dict"]["state"].values()), list(r1["state_dict"]["state"].values()),
                       "DDP optimizer state, rank 0 vs rank 1", exact=True)

    ref_params, ref_opt = reference(torch, ft, name)
    assert_params_close(r0["params"], ref_params, "DDP vs single-process fastopt.torch")
    if hasattr(torch.optim, OPTIMIZERS[name][0]):  # (LAMB is not in torch.optim)
        torch_params, _ = reference(torch, torch.optim, name)
        assert_params_close(r0["params"], torch_params, "DDP vs single-process torch.optim")
    assert_state_close(list(r0["state_dict"]["state"].values()),
                       list(ref_opt.state_dict()["state"].values()), "DDP vs single-process state")
    assert r0["state_dict"]["param_groups"][0]["lr"] == OPTIMIZERS[name][1]["lr"]


# -- (b) ZeroRedundancyOptimizer, its consolidated checkpoint ----------------------------------------

@pytest.mark.parametrize("run_id", ["zero-adam", "zero-adam-parameters_as_bucket_view"])
def test_zero_matches_single_process_and_checkpoint_loads(torch, ft, launched, run_id):
    """ZeroRedundancyOptimizer(optimizer_class=fastopt.torch.Adam) under DDP: each rank's local
    optimizer is a fastopt.torch.Adam over its shard; the parameters are bit-identical across ranks
    and match the single-process runs. ``consolidate_state_dict(to=0)`` + ``state_dict()`` on rank 0
    is the single-process state; it loads into fastopt.torch.Adam, torch.optim.Adam and a fresh 2-rank
    ZeRO, and all three continue like an uninterrupted single-process run."""
    r0, r1 = results(launched, run_id)
    for r in (r0, r1):
        assert r["local_optimizer"] == f"{ft.Adam.__module__}.{ft.Adam.__name__}"
        assert r["local_params"] > 0  # each rank owns a shard
    assert r0["local_params"] + r1["local_params"] == 2 * (len(SIZES) - 1)
    assert_params_equal(r0["params"], r1["params"], "ZeRO")

    ref_params, ref_opt = reference(torch, ft, "adam")
    torch_params, _ = reference(torch, torch.optim, "adam")
    assert_params_close(r0["params"], ref_params, "ZeRO vs single-process fastopt.torch")
    assert_params_close(r0["params"], torch_params, "ZeRO vs single-process torch.optim")

    # the consolidated state: global indices 0..5, the single-process optimizer's state
    consolidated = r0["consolidated"]
    ref_sd = ref_opt.state_dict()
    assert sorted(consolidated["state"]) == sorted(ref_sd["state"])
    indices = sorted(ref_sd["state"])
    assert_state_close([consolidated["state"][i] for i in indices], [ref_sd["state"][i] for i in indices],
                       "consolidated vs single-process state")
    assert consolidated["param_groups"][0]["params"] == ref_sd["param_groups"][0]["params"]

    # resuming from it: the uninterrupted single-process run is the reference
    full_params, _ = reference(torch, ft, "adam", steps=STEPS + RESUME_STEPS)
    assert_params_equal(r0["resumed_params"], r1["resumed_params"], "ZeRO resumed from the checkpoint")
    assert_params_close(r0["resumed_params"], full_params, "ZeRO resumed from the checkpoint")
    for module in (ft, torch.optim):
        model = make_model(torch)
        model.load_state_dict(r0["params"])
        opt = module.Adam(model.parameters(), lr=OPTIMIZERS["adam"][1]["lr"])
        opt.load_state_dict(copy.deepcopy(consolidated))
        assert_state_close([opt.state[p] for p in model.parameters()],
                           [consolidated["state"][i] for i in range(len(consolidated["state"]))],
                           f"{module.__name__}.Adam after load_state_dict", exact=True)
        train(torch, model, opt, RESUME_STEPS, first_step=STEPS)
        assert_params_close(params_of(model), full_params,
                            f"single-process {module.__name__}.Adam resumed from the consolidated checkpoint")


def test_zero_lamb_matches_single_process(torch, ft, launched):
    """ZeroRedundancyOptimizer(optimizer_class=fastopt.torch.LAMB): each rank steps its own shard of
    whole tensors, so each tensor's trust ratio is the one a single process computes over it: the
    parameters match single-process fastopt.torch.LAMB, bit-identical across the ranks."""
    r0, r1 = results(launched, "zero-lamb")
    for r in (r0, r1):
        assert r["local_optimizer"] == f"{ft.LAMB.__module__}.{ft.LAMB.__name__}" and r["local_params"] > 0
    assert_params_equal(r0["params"], r1["params"], "ZeRO LAMB")
    ref_params, _ = reference(torch, ft, "lamb")
    assert_params_close(r0["params"], ref_params, "ZeRO LAMB vs single-process fastopt.torch.LAMB")
    start = params_of(make_model(torch))
    assert any(not torch.equal(r0["params"][k], start[k]) for k in start)


# -- (c) an lr scheduler on the ZeRO optimizer -------------------------------------------------------

def test_zero_with_lr_scheduler(torch, ft, launched):
    """StepLR on the ZeroRedundancyOptimizer: the ranks' local fastopt.torch.Adam see the scheduled lr
    at every step, and the parameters match single-process fastopt.torch.Adam and torch.optim.Adam
    with the same StepLR (and differ from the run without it)."""
    r0, r1 = results(launched, "zero-adam-steplr")
    lr = OPTIMIZERS["adam"][1]["lr"]
    expected_lrs = [lr * SCHEDULE["gamma"] ** (t // SCHEDULE["step_size"]) for t in range(STEPS)]
    for r in (r0, r1):
        assert r["lrs"] == pytest.approx(expected_lrs, rel=1e-12)
    assert_params_equal(r0["params"], r1["params"], "ZeRO + StepLR")

    ref_params, _ = reference(torch, ft, "adam", scheduler=True)
    torch_params, _ = reference(torch, torch.optim, "adam", scheduler=True)
    assert_params_close(r0["params"], ref_params, "ZeRO + StepLR vs single-process fastopt.torch + StepLR")
    assert_params_close(r0["params"], torch_params, "ZeRO + StepLR vs single-process torch.optim + StepLR")
    assert_differs(r0["params"], reference(torch, ft, "adam")[0], "with and without StepLR")


if __name__ == "__main__":
    worker(json.loads(Path(sys.argv[1]).read_text()))
