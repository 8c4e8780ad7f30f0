"""The registry covers the public API; the public API is what the docs say it is."""
import inspect

import fastopt
from fastopt._registry import CASES


def public_optimizers():
    return {name for name in fastopt.__all__
            if inspect.isclass(getattr(fastopt, name)) and issubclass(getattr(fastopt, name), fastopt.Optimizer)
            and name != "Optimizer"}


def test_every_public_optimizer_has_a_registry_row():
    assert public_optimizers() == {case.name for case in CASES}


def test_every_kernel_has_a_reference_twin_with_the_same_signature():
    assert fastopt.kernels.__all__ == fastopt.reference.__all__
    for name in fastopt.kernels.__all__:
        reference = inspect.signature(getattr(fastopt.reference, name))
        compiled = inspect.signature(getattr(fastopt.kernels, name))
        # names and kinds: Cython misreports keyword-only defaults of fused functions in __defaults__
        assert [(p.name, p.kind) for p in compiled.parameters.values()] == \
            [(p.name, p.kind) for p in reference.parameters.values()], name
    rules = {name for name in fastopt.kernels.__all__ if not name.endswith("_group") and name != "floor"}
    assert {case.kernel for case in CASES} == rules
    assert {name + "_group" for name in rules} <= set(fastopt.kernels.__all__)


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
