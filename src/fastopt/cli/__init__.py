"""Command-line programs built on fastopt, and the aligned tables they print: ``demo`` (behind
``python -m fastopt demo``), ``bench`` (the speed tables of ``python -m fastopt bench`` and
``python -m fastopt table``) and ``loops`` (the bench's training loops). ``fastopt.__main__`` parses the
command line and dispatches to them."""


def print_row(cells, widths, left=2):
    """Left-align the first ``left`` columns (names), right-align the rest (numbers)."""
    print("  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))),
          flush=True)


def print_header(header, widths, left=2):
    """The header row and its dashed rule; widens ``widths`` in place to fit the header."""
    widths[:] = [max(w, len(h)) for w, h in zip(widths, header)]
    print_row(header, widths, left)
    print("  ".join("-" * w for w in widths))


def percentile(values, q):
    """The q-quantile (0 <= q <= 1) of ``values``: the element nearest rank q * (n - 1), no interpolation."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
