"""``python -m fastopt.cli.demo`` (the ``demo`` command) run as a subprocess, as a user would: tables on
stdout, valid PNG figures, the optimizer selection, its errors, and the install hint without the extras."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")
pytest.importorskip("tqdm")

import fastopt  # noqa: E402
from fastopt._registry import CASES  # noqa: E402

NAMES = [case.name for case in CASES]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_python(args, tmp_path):
    # From an empty directory, with PYTHONPATH pointing at the fastopt these tests imported (installed, or
    # the in-place build of a checkout), so the child runs the same fastopt.
    env = dict(os.environ, PYTHONPATH=str(Path(fastopt.__file__).resolve().parent.parent))
    return subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)


def run_demo(tmp_path, *args):
    return run_python(["-m", "fastopt.cli.demo", "--quick", "--out", "out", *args], tmp_path)


def sections(stdout):
    """{number: lines} of the "== N. title ==" sections."""
    result, current = {}, None
    for line in stdout.splitlines():
        match = re.match(r"== (\d+)\. ", line)
        if match:
            current = int(match.group(1))
            result[current] = []
        elif current is not None:
            result[current].append(line)
    return result


def table(lines, first_header="optimizer"):
    """The first table in ``lines`` whose header starts with ``first_header``: {first cell: {column: cell}},
    columns cut where the dashed rule under the header puts them."""
    start = next(i for i, line in enumerate(lines) if line.startswith(first_header))
    spans = [match.span() for match in re.finditer(r"-+", lines[start + 1])]
    header = [lines[start][a:b].strip() for a, b in spans]
    rows = {}
    for line in lines[start + 2:]:
        if not line or line.startswith(" "):
            break
        cells = [line[a:b].strip() for a, b in spans]
        rows[cells[0]] = dict(zip(header, cells))
    return rows


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("demo")
    return run_demo(tmp_path), tmp_path


def test_quick_demo_writes_valid_figures_and_names_them(quick_run):
    proc, tmp_path = quick_run
    assert proc.returncode == 0, proc.stderr
    pngs = sorted((tmp_path / "out").glob("*.png"))
    assert len(pngs) >= 5, pngs
    for png in pngs:
        data = png.read_bytes()
        assert data[:8] == PNG_MAGIC, png
        assert len(data) > 5_000, png
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")  # IHDR
        assert width >= 300 and height >= 200, (png, width, height)
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("figures: "), last
    named = [tmp_path / path for path in last[len("figures: "):].split(", ")]
    assert sorted(path.resolve() for path in named) == [png.resolve() for png in pngs]


def test_quick_demo_tables_name_every_optimizer(quick_run):
    proc, _ = quick_run
    assert proc.returncode == 0, proc.stderr
    for name in NAMES:
        assert name in proc.stdout
    parts = sections(proc.stdout)
    assert sorted(parts) == [1, 2, 3, 4, 5, 6, 7], proc.stdout
    for number in (1, 2, 6):  # the tables with a row per optimizer
        assert list(table(parts[number])) == NAMES, "\n".join(parts[number])


def test_adam_finds_the_least_squares_line(quick_run):
    proc, _ = quick_run
    lines = sections(proc.stdout)[1]
    match = re.search(r"least squares \(np\.linalg\.lstsq\): theta = \[([-\d.]+), ([-\d.]+)\]", "\n".join(lines))
    assert match, "\n".join(lines)
    least_squares = [float(match.group(1)), float(match.group(2))]
    assert least_squares == pytest.approx([4.222, 2.968], abs=1e-3)  # SPEC 4.1, seed 0
    adam = table(lines)["Adam"]
    assert float(adam["theta0"]) == pytest.approx(least_squares[0], abs=0.05)
    assert float(adam["theta1"]) == pytest.approx(least_squares[1], abs=0.05)


def test_optimizers_option_limits_the_tables(tmp_path):
    proc = run_demo(tmp_path, "--optimizers", "adam", "SGD")
    assert proc.returncode == 0, proc.stderr
    parts = sections(proc.stdout)
    for number in (1, 2, 6):
        assert list(table(parts[number])) == ["SGD", "Adam"], "\n".join(parts[number])
    for name in set(NAMES) - {"SGD", "Adam"}:
        assert name not in proc.stdout
    assert len(list((tmp_path / "out").glob("*.png"))) >= 5


def test_unknown_optimizer_is_a_usage_error(tmp_path):
    proc = run_demo(tmp_path, "--optimizers", "adam", "nope")
    assert proc.returncode == 2
    assert "unknown optimizer 'nope'" in proc.stderr
    assert "RMSprop" in proc.stderr  # the valid names are listed
    assert not (tmp_path / "out").exists()


def test_missing_dependencies_print_the_install_hint(tmp_path):
    hide = ("import sys\n"
            "sys.modules['matplotlib'] = None  # import matplotlib now raises ImportError\n"
            "sys.modules['tqdm'] = None\n"
            "from fastopt.cli import demo\n"
            "sys.exit(demo.main(['--quick', '--out', 'out']))\n")
    proc = run_python(["-c", hide], tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert 'pip install "fastopt[demo]"' in proc.stderr
    assert 'pip install ".[demo]"' in proc.stderr
    assert "matplotlib" in proc.stderr and "tqdm" in proc.stderr
    assert "scikit-learn" not in proc.stderr  # only what is missing is named
    assert not (tmp_path / "out").exists()


def test_without_torch_the_demo_says_what_it_leaves_out(tmp_path):
    # a finder that refuses torch (sys.modules['torch'] = None would break scipy, which sklearn imports:
    # it looks torch up in sys.modules)
    hide = ("import sys\n"
            "class NoTorch:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.partition('.')[0] == 'torch':\n"
            "            raise ModuleNotFoundError(\"No module named 'torch'\", name=name)\n"
            "sys.meta_path.insert(0, NoTorch())\n"
            "from fastopt.cli import demo\n"
            "sys.exit(demo.main(['--quick', '--out', 'out', '--optimizers', 'Adam']))\n")
    proc = run_python(["-c", hide], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "torch is not installed" in proc.stdout
    assert "download.pytorch.org/whl/cpu" in proc.stdout
    assert "The same MLP as a torch module" not in proc.stdout  # no comparison table


def test_with_torch_fastopt_torch_trains_the_mlp_as_torch_optim(quick_run):
    pytest.importorskip("torch")
    proc, _ = quick_run
    lines = sections(proc.stdout)[6]
    start = next(i for i, line in enumerate(lines) if line.startswith("The same MLP as a torch module"))
    rows = table(lines[start + 1:])
    assert list(rows) == ["fastopt.torch.Adam", "torch.optim.Adam"], "\n".join(lines[start:])
    ours, theirs = rows["fastopt.torch.Adam"], rows["torch.optim.Adam"]
    # same start, batches and math: the same loss and accuracy to the digits printed (float32 rounding aside)
    assert float(ours["train loss"]) == pytest.approx(float(theirs["train loss"]), abs=2e-4)
    assert ours["test acc"] == theirs["test acc"]
    assert float(theirs["step ratio"]) == 1.0


def test_precision_table_shows_the_formats_and_the_stall(quick_run):
    """Section 7: every format trains (quick run), and at the small learning rate bfloat16 rounded to
    nearest ends above the others: its small updates are lost."""
    proc, _ = quick_run
    rows = table(sections(proc.stdout)[7], "variant")
    assert list(rows) == ["float32", "bf16 nearest", "bf16 stochastic", "bf16 split", "f32, q8 state"]
    small_lr = next(column for column in rows["float32"] if column.startswith("loss at lr"))
    losses = {name: float(row[small_lr]) for name, row in rows.items()}
    assert losses["bf16 nearest"] > 1.1 * max(v for k, v in losses.items() if k != "bf16 nearest")
    assert float(rows["f32, q8 state"]["state bytes"]) < 4.0


def test_precision_formats_keep_float32_accuracy():
    """The digits MLP, 20 epochs of Adam: bf16 with stochastic rounding, split masters and q8 state end
    within 0.5 points of float32's test accuracy (the issue's bar; bf16 to nearest need not)."""
    pytest.importorskip("ml_dtypes")
    from sklearn.datasets import load_digits

    from fastopt.cli import demo

    data = demo.digits_data(demo.Demo(out=Path("."), quick=False, cases=[], Figure=None, tqdm=None,
                                      load_digits=load_digits), 20)
    accuracy = {label: demo.train_precision(data, dtype, options, 20, demo.PRECISION_LR)[0][-1, 1]
                for label, dtype, options in demo.PRECISION_VARIANTS}
    for label in ("bf16 stochastic", "bf16 split", "f32, q8 state"):
        assert abs(accuracy[label] - accuracy["float32"]) <= 0.005, (label, accuracy)
