"""The registry covers the public API; the public API is what the docs say it is."""
import inspect

import fastopt
from fastopt._registry import CASES, CLOSURE_CASES


def public_optimizers():
    return {name for name in fastopt.__all__
            if inspect.isclass(getattr(fastopt, name)) and issubclass(getattr(fastopt, name), fastopt.Optimizer)
            and name != "Optimizer"}


def test_every_public_optimizer_has_a_registry_row():
    assert public_optimizers() == {case.name for case in CASES}
    # the rest of the classes with a step (closure optimizers) have rows of their own
    stepping = {name for name in fastopt.__all__ if inspect.isclass(getattr(fastopt, name))
                and hasattr(getattr(fastopt, name), "step") and name != "Optimizer"}
    assert stepping - public_optimizers() == {case.name for case in CLOSURE_CASES}


def test_every_kernel_has_a_reference_twin_with_the_same_signature():
    assert fastopt.kernels.__all__ == fastopt.reference.__all__
    for name in fastopt.kernels.__all__:
        reference = inspect.signature(getattr(fastopt.reference, name))
        compiled = inspect.signature(getattr(fastopt.kernels, name))
        # names and kinds: Cython misreports keyword-only defaults of fused functions in __defaults__
        assert [(p.name, p.kind) for p in compiled.parameters.values()] == \
            [(p.name, p.kind) for p in reference.parameters.values()], name
    rules = {name for name in fastopt.kernels.__all__
             if not name.endswith("_group") and name not in ("floor", "grad_norm", "ema_update")}
    assert {case.kernel for case in CASES} == rules
    assert {name + "_group" for name in rules} <= set(fastopt.kernels.__all__)


def test_every_group_kernel_has_a_batch_with_the_same_signature_in_both_backends():
    """``*_batch`` (what an optimizer step calls) exists for every group kernel, takes the group
    kernel's arguments in the same order (the hyperparameters positionally too) plus check_overlap and
    indexed, and is the same in the compiled kernels and the reference."""
    for name in fastopt.kernels.__all__:
        if not name.endswith("_group"):
            continue
        batch = name[:-len("_group")] + "_batch"
        group = [p for p in inspect.signature(getattr(fastopt.reference, name)).parameters if p != "n_threads"]
        for ops in (fastopt.kernels, fastopt.reference):
            names = list(inspect.signature(getattr(ops, batch)).parameters)
            assert names == group + ["check_overlap", "indexed"], (ops.__name__, batch)


def test_every_registry_row_is_a_working_configuration():
    import numpy as np
    for case in CASES:
        assert case.configs, case.name
        for label, kwargs in case.configs.items():
            p = np.ones(3)
            case.cls([p], **kwargs).step([np.ones(3)])
            assert np.all(np.isfinite(p)), (case.name, label)


def test_class_docstrings_carry_the_math():
    for case in CASES:
        doc = case.cls.__doc__
        assert doc and ".. math::" in doc, case.name


def test_every_registry_row_has_a_torch_class_with_torchs_signature():
    """fastopt.torch has one class per registry row, over that row's rule, with the NumPy class's
    arguments (less ``backend``), which are torch.optim's: names, kinds and defaults."""
    import pytest

    torch = pytest.importorskip("torch")
    import fastopt.torch as ft

    assert set(ft.__all__) == {case.name for case in CASES + CLOSURE_CASES} | {"Optimizer"}
    for case in CLOSURE_CASES:  # torch's signature over the NumPy class's algorithm
        cls = getattr(ft, case.name)
        ours = [(p.name, p.kind, p.default) for p in inspect.signature(cls.__init__).parameters.values()]
        assert ours == [(p.name, p.kind, p.default) for p in inspect.signature(case.cls.__init__).parameters.values()]
        assert ours == [(p.name, p.kind, p.default)
                        for p in inspect.signature(getattr(torch.optim, case.torch).__init__).parameters.values()]
    for case in CASES:
        cls = getattr(ft, case.name)
        assert issubclass(cls, torch.optim.Optimizer) and cls._rule is case.cls
        ours = [(p.name, p.kind, p.default) for p in inspect.signature(cls.__init__).parameters.values()
                if p.name != "options"]  # **options: the precision options, as the NumPy classes
        numpy_api = [(p.name, p.kind, p.default) for p in inspect.signature(case.cls.__init__).parameters.values()
                     if p.name not in ("backend", "options")]
        assert ours == numpy_api, case.name
        if case.torch is not None:
            theirs = [(p.name, p.kind, p.default)
                      for p in inspect.signature(getattr(torch.optim, case.torch).__init__).parameters.values()]
            assert ours == theirs, case.name


def test_layers_point_one_way():
    """The kernel layer (``_kernels/``) never imports the Python layer, and ``_config`` (which reports
    the version) does not import the package: each layer only uses the ones below it."""
    import pathlib
    import re

    root = pathlib.Path(fastopt.__file__).parent
    python_layer = {path.stem for path in root.glob("*.py") if not path.stem.startswith("__")}
    for source in (root / "_kernels").glob("*.pyx"):
        for module in re.findall(r"^\s*(?:from|import)\s+fastopt\.(\w+)", source.read_text(), re.M):
            assert module == "_kernels", f"{source.name} imports fastopt.{module}"
    assert "__import__(\"fastopt\")" not in (root / "_config.py").read_text()
    assert python_layer  # (the scan found the package)


def test_version_is_pyprojects():
    import pathlib
    import re

    pyproject = pathlib.Path(fastopt.__file__).parents[2] / "pyproject.toml"
    if not pyproject.exists():  # an installed package: its metadata holds the version
        import importlib.metadata
        assert importlib.metadata.version("fastopt") == fastopt.__version__
        return
    assert re.search(r'^version = "([^"]+)"', pyproject.read_text(), re.M).group(1) == fastopt.__version__
