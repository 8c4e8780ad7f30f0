"""Like tests/conftest.py: the benchmarks time the *installed* fastopt; without its compiled kernels they
stop here, with the fix, instead of failing per benchmark."""
try:
    import fastopt  # noqa: F401
    import fastopt._kernels  # noqa: F401  (loads the compiled kernel variant for this CPU)
except ImportError as exc:  # pragma: no cover - a broken install
    raise ImportError(
        f"fastopt's compiled kernels do not import ({exc}). Install it first: pip install '.[bench]' "
        "(or build in place, python setup.py build_ext --inplace, and run python -m pytest bench/ "
        "from the checkout)") from exc
