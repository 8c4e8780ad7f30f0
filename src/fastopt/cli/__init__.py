"""Command-line programs built on fastopt (the ``demo`` behind ``python -m fastopt demo``)."""
