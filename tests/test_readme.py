"""The README says what is true: every ```python block runs as written, and every document it links to is
in the repository."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fastopt

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def python_blocks():
    text = README.read_text(encoding="utf-8")
    return [(text[:m.start()].count("\n") + 1, m.group(1))
            for m in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M)]


@pytest.mark.parametrize(("line", "code"), python_blocks(), ids=lambda v: f"line{v}" if isinstance(v, int) else "")
def test_python_block_runs(line, code, tmp_path):
    """Each block in a fresh interpreter, from an empty directory, with the fastopt these tests import."""
    if "import torch" in code:
        pytest.importorskip("torch")
    env = dict(os.environ, PYTHONPATH=str(Path(fastopt.__file__).resolve().parent.parent))
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"README.md line {line}:\n{proc.stderr[-2000:]}"


def test_there_are_python_blocks():
    assert len(python_blocks()) >= 4


def test_linked_documents_exist():
    """Relative links (and the files the prose names as docs/...) point into the repository."""
    text = README.read_text(encoding="utf-8")
    links = [target for target in re.findall(r"\]\(([^)#\s]+)", text) if "://" not in target]
    named = re.findall(r"\b((?:docs|examples)/[\w./-]+\.(?:md|py))", text)
    assert links, "no relative links found"
    missing = sorted({path for path in links + named if not (ROOT / path).exists()})
    assert not missing, f"README.md links to files that are not in the repository: {missing}"
    assert "BENCH.md" not in text, "README.md cites BENCH.md, which is not in the repository"
