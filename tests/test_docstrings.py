"""The docstrings: numpydoc sections on the public API, every optimizer argument documented, and every
example run as a doctest (one test per module)."""
import doctest
import importlib
import inspect
import re

import numpy as np
import pytest

import fastopt
from fastopt._registry import CASES

# the modules whose public classes and functions carry numpydoc docstrings with examples
MODULES = ["sgd", "momentum", "adam", "adamax", "nadam", "adagrad", "adadelta", "rmsprop", "radam", "rprop", "asgd",
           "lion", "lamb", "lbfgs", "schedulefree", "_base", "flat",
           "clip", "ema", "minimize", "lr_scheduler", "_config"]
# what every NumPy optimizer takes besides its own hyperparameters (``backend`` and ``**options``)
PRECISION = {"rounding", "seed", "master_weights", "state_dtype"}
OPTIONS = {"backend", "max_grad_norm", "norm_type", "skip_nonfinite"} | PRECISION
# NumPy's default print options: the examples' expected output assumes them
PRINT_DEFAULTS = dict(precision=8, threshold=1000, edgeitems=3, linewidth=75, suppress=False, nanstr="nan",
                      infstr="inf", sign="-", floatmode="maxprec", legacy=False)


def run_doctests(module):
    """(examples run, failures, report) of every docstring example in ``module``."""
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, module.__name__)
    runner = doctest.DocTestRunner(verbose=False)
    report = []
    with np.printoptions(**PRINT_DEFAULTS):
        for test in sorted(tests, key=lambda t: t.name):
            runner.run(test, out=report.append)
    return runner.tries, runner.failures, "".join(report)


@pytest.mark.parametrize("name", MODULES + ["torch"])
def test_docstring_examples_run(name):
    if name == "torch":
        pytest.importorskip("torch")
    # importlib: ``fastopt.minimize`` is the function, the module is ``sys.modules["fastopt.minimize"]``
    module = importlib.import_module(f"fastopt.{name}")
    attempted, failed, report = run_doctests(module)
    assert attempted > 0, f"fastopt.{name} has no examples"
    assert failed == 0, f"{failed} of {attempted} examples of fastopt.{name} failed:\n{report}"


def sections(doc):
    """{title: body} of a numpydoc docstring's sections ("Parameters", "Examples", ...)."""
    parts = re.split(r"^([A-Z]\w*(?: \w+)*)\n-{3,}\n", inspect.cleandoc(doc or ""), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def documented(doc):
    """The names the Parameters section describes (``a, b : float`` names both; ``**options`` is
    ``options``)."""
    names = set()
    for line in sections(doc).get("Parameters", "").splitlines():
        if line and not line[0].isspace():
            names.update(name.strip().lstrip("*") for name in line.split(" : ")[0].split(","))
    return names


def arguments(cls):
    """The constructor's arguments, less self, params and ``**options``."""
    return [name for name, p in inspect.signature(cls.__init__).parameters.items()
            if name not in ("self", "params") and p.kind is not inspect.Parameter.VAR_KEYWORD]


def assert_numpydoc(obj, *required):
    found = sections(obj.__doc__)
    missing = [title for title in required if title not in found]
    assert not missing, f"{obj.__qualname__}'s docstring lacks {missing} (has {list(found)})"
    if "Examples" in required:
        assert ">>>" in found["Examples"], f"{obj.__qualname__}'s Examples has no doctest"


def public_classes():
    return [getattr(fastopt, name) for name in fastopt.__all__ if inspect.isclass(getattr(fastopt, name))]


@pytest.mark.parametrize("cls", public_classes(), ids=lambda cls: cls.__name__)
def test_public_classes_have_parameters_and_examples(cls):
    assert_numpydoc(cls, "Parameters", "Examples")


@pytest.mark.parametrize("name", [name for name in fastopt.__all__
                                  if inspect.isfunction(getattr(fastopt, name))
                                  and getattr(fastopt, name).__module__.rpartition(".")[2] in MODULES])
def test_public_functions_have_parameters_and_examples(name):
    function = getattr(fastopt, name)
    takes = set(inspect.signature(function).parameters)
    assert_numpydoc(function, *(["Parameters"] if takes else []), "Examples")
    assert takes <= documented(function.__doc__), f"{name}: undocumented {takes - documented(function.__doc__)}"


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_optimizer_docstrings_name_every_argument(case):
    """Every constructor argument and every option has an entry, nothing else has one, and the input
    rules and the math are there."""
    assert_numpydoc(case.cls, "Parameters", "Notes", "Examples")
    names = documented(case.cls.__doc__)
    expected = set(arguments(case.cls)) | OPTIONS | {"params"}
    assert expected <= names, f"{case.name}: undocumented {sorted(expected - names)}"
    assert names <= expected, f"{case.name}: documents {sorted(names - expected)}, which it does not take"
    assert ".. math::" in case.cls.__doc__
    assert "C-contiguous" in sections(case.cls.__doc__)["Notes"]


def test_base_optimizer_docstring_names_every_argument():
    names = documented(fastopt.Optimizer.__doc__)
    assert set(arguments(fastopt.Optimizer)) | {"params"} <= names


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_torch_optimizer_docstrings(case):
    """fastopt.torch's classes: the NumPy class's math and arguments, less what only the NumPy class
    takes, and an example with tensors."""
    pytest.importorskip("torch")
    import fastopt.torch as ft

    cls = getattr(ft, case.name)
    assert_numpydoc(cls, "Parameters", "Notes", "Examples")
    names = documented(cls.__doc__)
    # the gradient and precision options: through **options
    expected = set(arguments(cls)) | {"params", "max_grad_norm", "norm_type", "skip_nonfinite"} | PRECISION
    assert names == expected, f"fastopt.torch.{case.name}: {sorted(names ^ expected)}"
    assert ".. math::" in cls.__doc__
    assert f"fastopt.torch.{case.name}(" in sections(cls.__doc__)["Examples"]


# fastopt.lr_scheduler: its examples run with the modules' above (test_docstring_examples_run)
SCHEDULERS = [getattr(fastopt.lr_scheduler, name) for name in fastopt.lr_scheduler.__all__
              if inspect.isclass(getattr(fastopt.lr_scheduler, name))]
SCHEDULER_METHODS = ["step", "get_last_lr", "state_dict", "load_state_dict"]


def constructor_arguments(cls):
    """Every argument of the constructor but self (``optimizer`` included)."""
    return [name for name in inspect.signature(cls.__init__).parameters if name != "self"]


@pytest.mark.parametrize("cls", SCHEDULERS, ids=lambda cls: cls.__name__)
def test_scheduler_docstrings_name_every_argument(cls):
    """Parameters names every constructor argument and nothing else; Examples builds the scheduler on a
    fastopt optimizer and reads its lrs."""
    assert_numpydoc(cls, "Parameters", "Examples")
    names = documented(cls.__doc__)
    expected = set(constructor_arguments(cls))
    assert "optimizer" in expected
    assert expected <= names, f"{cls.__name__}: undocumented {sorted(expected - names)}"
    assert names <= expected, f"{cls.__name__}: documents {sorted(names - expected)}, which it does not take"
    examples = sections(cls.__doc__)["Examples"]
    assert f"{cls.__name__}(" in examples or f"({cls.__name__})" in examples, cls.__name__
    assert "fastopt." in examples and "get_last_lr()" in examples, cls.__name__


@pytest.mark.parametrize("cls", SCHEDULERS, ids=lambda cls: cls.__name__)
def test_scheduler_methods_have_docstrings(cls):
    """step, get_last_lr, state_dict and load_state_dict (as each class resolves them) have a docstring
    whose Parameters names their arguments."""
    for method in SCHEDULER_METHODS:
        function = getattr(cls, method)
        assert function.__doc__, f"{cls.__name__}.{method} has no docstring"
        args = [name for name in inspect.signature(function).parameters if name != "self"]
        if args:
            assert set(args) <= documented(function.__doc__), f"{cls.__name__}.{method}: {args}"


# fastopt.kernels and fastopt.reference: one docstring per kernel and its twin (fastopt/_kernel_docs.py)
def kernel_functions(module):
    """(name, function) of every documented function of ``module``: ``__all__``, ``run`` and the
    ``*_batch`` functions."""
    names = list(module.__all__) + ["run"] + [name for name in dir(module) if name.endswith("_batch")]
    return [(name, getattr(module, name)) for name in names]


@pytest.mark.parametrize("module_name", ["fastopt.kernels", "fastopt.reference"])
def test_kernel_docstring_examples_run(module_name):
    """Every example runs against the module it imports from (both give the same bits)."""
    module = importlib.import_module(module_name)
    runner = doctest.DocTestRunner(verbose=False)
    report = []
    with np.printoptions(**PRINT_DEFAULTS):
        for name, function in kernel_functions(module):
            for test in doctest.DocTestFinder().find(function, name, globs={}):
                if not test.examples:  # *_batch: See Also run
                    continue
                assert f"from {module_name} import" in test.docstring, name
                runner.run(test, out=report.append)
    assert runner.tries > 100, runner.tries
    assert runner.failures == 0, "".join(report)


@pytest.mark.parametrize("module_name", ["fastopt.kernels", "fastopt.reference"])
def test_kernel_docstrings_name_every_argument(module_name):
    module = importlib.import_module(module_name)
    for name, function in kernel_functions(module):
        assert_numpydoc(function, *(("Parameters", "Returns", "See Also") if name.endswith("_batch")
                                    else ("Parameters", "Examples")))
        args = set(inspect.signature(function).parameters)
        assert documented(function.__doc__) == args, f"{module_name}.{name}: {documented(function.__doc__) ^ args}"


def test_kernel_and_twin_share_their_docstring():
    """Same text but the module name: a signature that drifts between kernel and twin (an argument, a
    default) shows here."""
    import fastopt.kernels as kernels
    import fastopt.reference as reference

    for name, function in kernel_functions(kernels):
        twin = getattr(reference, name)
        assert function.__doc__.replace("fastopt.kernels", "fastopt.reference") == twin.__doc__, name


@pytest.mark.parametrize("cls", public_classes(), ids=lambda cls: cls.__name__)
def test_public_methods_document_their_arguments(cls):
    """Every public method of fastopt's public classes has a docstring whose Parameters names its
    arguments (torch's methods on fastopt.torch's classes are torch's business)."""
    for name, method in inspect.getmembers(cls, inspect.isfunction):
        if name.startswith("_") or not method.__module__.startswith("fastopt"):
            continue
        assert method.__doc__, f"{cls.__name__}.{name} has no docstring"
        args = [arg for arg in inspect.signature(method).parameters if arg != "self"]
        if args:
            assert set(args) <= documented(method.__doc__), f"{cls.__name__}.{name}: {args}"
