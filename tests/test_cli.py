"""Smoke tests of ``python -m fastopt table``, ``python -m fastopt bench`` and ``--help``, run as a
subprocess like a user would."""
import os
import subprocess
import sys
from pathlib import Path

import fastopt


def run_cli(*args, tmp_path):
    # Run from an empty directory, with PYTHONPATH pointing at the fastopt these tests imported (the
    # installed package, or the in-place build of a checkout), so the child runs the same fastopt.
    env = dict(os.environ, PYTHONPATH=str(Path(fastopt.__file__).resolve().parent.parent))
    return subprocess.run([sys.executable, "-m", "fastopt", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def test_table_has_a_row_per_optimizer_and_dtype(tmp_path):
    proc = run_cli("table", "--quick", "--sizes", "1000", "--optimizers", "Adam", "SGD", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = {tuple(line.split()[:3]) for line in proc.stdout.splitlines() if line.strip()}
    for name in ("Adam", "SGD"):
        for dtype in ("float32", "float64"):
            assert (name, dtype, "1000") in rows, proc.stdout
    assert not any(row[0] == "AdamW" for row in rows), proc.stdout  # only what was asked for
    assert "median" in proc.stdout


def test_unknown_optimizer_is_a_clear_error(tmp_path):
    proc = run_cli("table", "--quick", "--optimizers", "Nope", tmp_path=tmp_path)
    assert proc.returncode != 0
    assert "unknown optimizer(s): Nope" in proc.stderr
    assert "Adam" in proc.stderr  # the message lists the valid names


def test_bench_quick_has_rows_models_and_overhead(tmp_path):
    proc = run_cli("bench", "--quick", "--sizes", "1000", "--optimizers", "Adam", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    rows = {tuple(line.split()[:4]) for line in lines if line.strip()}
    threads = {1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()}
    for dtype in ("float32", "float64"):
        for n in threads:
            assert ("Adam", dtype, "1000", str(n)) in rows, proc.stdout
    assert not any(row[0] in ("SGD", "AdamW") for row in rows), proc.stdout  # only what was asked for
    assert "fastopt/floor" in proc.stdout and "GB/s" in proc.stdout
    assert any(line.startswith("Whole models") for line in lines), proc.stdout
    for model in ("small", "large"):
        assert (model, "Adam", "1") in {row[:3] for row in rows}, proc.stdout
    assert any("overhead" in line for line in lines), proc.stdout
    assert any("per extra tensor" in line for line in lines), proc.stdout
    assert "Legend:" in proc.stdout and "below 1" in proc.stdout
    assert lines[-1].startswith("Summary (below 1: fastopt faster): "), lines[-1]
    assert "small model Adam 1 thread: fastopt/floor" in lines[-1], lines[-1]
    # the training loops: NumPy always, PyTorch when torch is installed (else a line saying so)
    numpy_loop = lines.index(next(line for line in lines if line.startswith("Training loop, NumPy")))
    assert {row[0] for row in map(str.split, lines[numpy_loop + 4:numpy_loop + 4 + len(threads)])} == \
        {str(n) for n in threads}, proc.stdout
    assert "NumPy loop step/back to back (1 thread)" in lines[-1], lines[-1]
    # the precision table (ml_dtypes is in the test extra): every format on every thread count, with
    # the bfloat16 step against its floor and its arithmetic alone
    start = lines.index(next(line for line in lines if line.startswith("Precision: Adam")))
    table = [line.split() for line in lines[start:] if line[:1].isdigit()]
    for n in threads:
        for variant in (["float32"], ["bf16"], ["bf16", "math"], ["bf16", "floor"], ["f32,", "q8", "state"]):
            assert [str(n), *variant] in [row[:1 + len(variant)] for row in table], (n, variant, proc.stdout)
    assert "precision 1 thread: bf16/f32" in lines[-1] and "bf16/its math" in lines[-1], lines[-1]
    # the busy machine: three loads, fastopt on every thread count
    for load in ("quiet", "light", "busy"):
        assert any(line.startswith(load) or (load == "busy" and "busy processes" in line.split("  ")[0])
                   for line in lines if "fastopt " in line), (load, proc.stdout)
    try:
        import torch  # noqa: F401
    except ImportError:
        assert "Training loops, PyTorch: not installed, no table" in lines, proc.stdout
        return
    for model in ("5.8M", "small"):
        for rule in ("Adam", "AdamW", "SGD", "Adagrad"):
            for variant in (["torch", "fused"], ["torch", "foreach"], ["fastopt.torch"]):
                assert [model, rule, *variant] in [line.split()[:2 + len(variant)] for line in lines], \
                    (model, rule, variant, proc.stdout)
    assert "5.8M MLP loop fastopt.torch.Adam step p50/torch fused" in lines[-1], lines[-1]
    assert any(line.split()[:2] == ["quiet", "fastopt.torch"] for line in lines), proc.stdout


def test_help_lists_the_commands(tmp_path):
    proc = run_cli("--help", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    commands = [line.split()[0] for line in proc.stdout.splitlines() if line.startswith("  ")]
    assert commands == ["demo", "bench", "table"], proc.stdout
    assert "(default)" in proc.stdout
