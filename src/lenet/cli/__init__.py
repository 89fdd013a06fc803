"""The `lenet` command: parse the arguments, run the subcommand, turn its errors into messages and exit codes.

The library refuses bad values itself (with the messages printed here); the CLI only parses, prints
and sets the exit code: parser.py builds the command line, commands.py runs each subcommand,
views.py renders results, progress.py and signals.py handle a run in progress.
"""

from __future__ import annotations

import sys

from ..errors import LenetError
from .commands import COMMANDS
from .parser import build_parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv[argv.index(args.command) + 1:]  # the command's own options, for --seeds to pass on
    try:
        return COMMANDS[args.command](args)
    except LenetError as error:
        print(f"lenet: error: {_rank_prefix()}{error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except OSError as error:  # a directory that cannot be made, a file that cannot be written, ...
        where = f"{error.filename}: " if error.filename else ""
        print(f"lenet: error: {where}{error.strerror or error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lenet: interrupted", file=sys.stderr)
        return 130


def _rank_prefix() -> str:
    """'rank R: ' in a run started by torchrun, so that a failing rank says which it is."""
    from ..distributed import from_environment
    try:
        distributed = from_environment()
    except LenetError:
        return ""
    return f"rank {distributed.rank}: " if distributed and distributed.world_size > 1 else ""
