"""``python -m fastopt`` (or the ``fastopt`` console script): parses the command line and runs a command.

Commands (``python -m fastopt --help`` lists them):

- ``demo`` (the default, so ``python -m fastopt`` runs it): the texts' worked problems and an MLP on a
  real data set, trained with every optimizer; tables, figures and progress (``fastopt.cli.demo``; needs
  ``pip install "fastopt[demo]"``).
- ``bench``: the ratio table of docs/benchmarks.md: fastopt against its NumPy reference, torch.optim and the
  memory floor, on single tensors and whole models, 1 thread and all CPUs (``fastopt.cli.bench``).
- ``table``: a short speed table: every optimizer against its NumPy reference and torch.optim
  (``fastopt.cli.bench``).

This module only dispatches: the commands live in ``fastopt.cli``. A new command is one parser function
and one run function (taking the parsed arguments and the parser, returning the exit status) registered
in ``COMMANDS``.
"""
import argparse
import sys

from .cli import bench


# -- entry point ----------------------------------------------------------------------------------

def demo_parser():
    from .cli import demo

    parser = argparse.ArgumentParser(
        prog="python -m fastopt demo",
        description="The texts' worked problems and an MLP on scikit-learn's digits, trained with every "
                    "optimizer: tables, PNG figures, progress.")
    demo.add_arguments(parser)
    return parser


def run_demo(args, parser):
    from .cli import demo

    return demo.run(args)


COMMANDS = {"demo": (demo_parser, run_demo), "bench": (bench.bench_parser, bench.run_bench),
            "table": (bench.table_parser, bench.run_table)}

USAGE = """usage: python -m fastopt [command] [options]     (also: fastopt [command] [options])

commands:
  demo    (default) the worked problems and an MLP trained with every optimizer: tables, figures
  bench   the speed tables: fastopt vs its NumPy reference, torch.optim and the memory floor
  table   a short speed table: every optimizer vs the NumPy reference and torch.optim

'python -m fastopt COMMAND --help' describes a command's options."""


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    command = "demo"
    if argv and argv[0] in COMMANDS:
        command = argv.pop(0)
    make_parser, run = COMMANDS[command]
    parser = make_parser()
    return run(parser.parse_args(argv), parser)


if __name__ == "__main__":
    sys.exit(main())
