"""The instruction-set dispatcher: FASTOPT_ISA forces a kernel variant, an impossible or unknown one is a
clear ImportError, and every variant the CPU can run computes bit-identical results.

The variant is chosen once, at import, so each case runs in a fresh interpreter. FASTOPT_TEST_LAUNCHER,
if set, is a command prefix for those interpreters: .ci/qemu sets it to ``qemu-x86_64 -cpu <model>`` so
they run on the emulated CPU too (a child of a qemu-user process would otherwise run on the host CPU).
"""
import functools
import json
import os
import shlex
import subprocess
import sys
import tempfile

import pytest
from _fingerprint import fingerprint

import fastopt
from fastopt._kernels import BUILT, VARIANTS
from fastopt._kernels._runtime import supported

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNABLE = [isa for isa in supported() if isa in BUILT]
# the flags that show in show_config()["cflags"] for each variant, GCC/clang or MSVC (baseline: none)
ISA_FLAGS = {"avx2": ("-mavx2", "/arch:AVX2"), "avx512": ("-mavx512f", "/arch:AVX512")}

CONFIG = """
import json, os
import fastopt, fastopt._kernels
with open(os.devnull, "w") as devnull:
    config = fastopt.show_config(file=devnull)
config["file"] = fastopt.__file__
config["modules"] = sorted(m.__name__ for m in fastopt._kernels.modules.values())
print(json.dumps(config))
"""


def python(args, isa=None):
    """Run a fresh interpreter (outside the checkout, so the installed fastopt is imported)."""
    env = {k: v for k, v in os.environ.items() if k != "FASTOPT_ISA"}
    # the fastopt these tests import (installed, or an in-place build), not whatever a bare cwd finds
    package_root = os.path.dirname(os.path.dirname(fastopt.__file__))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    if isa is not None:
        env["FASTOPT_ISA"] = isa
    launcher = shlex.split(os.environ.get("FASTOPT_TEST_LAUNCHER", ""))
    return subprocess.run(launcher + [sys.executable, *args], capture_output=True, text=True, env=env,
                          cwd=tempfile.gettempdir(), timeout=600)


def json_of(out):
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@functools.lru_cache(maxsize=None)
def config(isa):
    return json_of(python(["-c", CONFIG], isa))


@functools.lru_cache(maxsize=None)
def variant_fingerprint(isa):
    return json_of(python([os.path.join(HERE, "_fingerprint.py")], isa))


def test_default_is_the_best_variant_the_cpu_runs():
    got = config(None)
    assert got["file"] == fastopt.__file__  # the children import the fastopt under test
    assert got["isa"] == RUNNABLE[-1]
    assert got["cpu_supports"] == supported()
    assert got["isa_selected_by"] == "best the CPU supports"


@pytest.mark.parametrize("isa", VARIANTS)
def test_forcing_a_variant_loads_it(isa):
    if isa not in RUNNABLE:
        pytest.skip(f"{isa}: not built or not supported by this CPU (runnable: {', '.join(RUNNABLE)})")
    got = config(isa)
    assert got["isa"] == isa and got["isa_selected_by"] == f"FASTOPT_ISA={isa}"
    assert got["modules"] and all(m.startswith(f"fastopt._kernels.{isa}.") for m in got["modules"])
    for other, flags in ISA_FLAGS.items():
        has = any(flag in got["cflags"] for flag in flags)
        assert has == (VARIANTS.index(isa) >= VARIANTS.index(other)), (other, got["cflags"])


def test_the_variable_is_case_and_space_insensitive():
    assert config(f" {RUNNABLE[0].upper()} ")["isa"] == RUNNABLE[0]


def test_an_unknown_variant_is_a_clear_import_error():
    out = python(["-c", "import fastopt"], "sse9")
    assert out.returncode != 0
    assert "ImportError: FASTOPT_ISA='sse9': expected one of baseline, avx2, avx512" in out.stderr


@pytest.mark.parametrize("isa", VARIANTS)
def test_a_variant_the_cpu_cannot_run_is_a_clear_import_error(isa):
    if isa not in BUILT or isa in supported():
        pytest.skip(f"{isa}: not built, or this CPU runs it")
    out = python(["-c", "import fastopt"], isa)
    assert out.returncode != 0
    assert f"ImportError: FASTOPT_ISA='{isa}': this CPU cannot run {isa} code" in out.stderr
    assert "Illegal instruction" not in out.stderr and out.returncode > 0  # an error, not a signal


def test_every_variant_the_cpu_runs_computes_bit_identical_results():
    results = {isa: variant_fingerprint(isa) for isa in RUNNABLE}
    for isa, result in results.items():
        assert result["isa"] == isa
    first = results[RUNNABLE[0]]
    for isa, result in results.items():
        differ = sorted(run for run in first["runs"] if result["runs"][run] != first["runs"][run])
        assert not differ, f"{isa} differs from {RUNNABLE[0]} in {differ}"
    # and the compiled kernels compute exactly what the pure-NumPy reference computes
    reference = fingerprint(backend="numpy")
    differ = sorted(run for run in first["runs"] if reference["runs"][run] != first["runs"][run])
    assert not differ, f"the kernels differ from the NumPy reference in {differ}"
