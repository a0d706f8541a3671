"""Command line: ``gandistill train|distill|baseline|evaluate|compare|benchmark|sample``.

User mistakes end in one ``gandistill: error: ...`` line on stderr and exit status 2; an
interrupted run says how to continue it. The parser lives in :mod:`~gandistill.cli.parser`, what
each subcommand does in :mod:`~gandistill.cli.commands`.
"""

from __future__ import annotations

import shlex
import sys

from gandistill.cli.commands import check_inputs
from gandistill.cli.parser import build_parser
from gandistill.errors import EXIT_USER_ERROR, GandistillError, Interrupted

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C'd command
RESUMABLE_COMMANDS = ("train", "distill")  # continue with --resume
SELF_RESUMING_COMMANDS = ("quickstart",)  # continue when run again as it was

__all__ = ["build_parser", "main"]


def _continue_command(command: str, argv: list[str]) -> str | None:
    """The command line that continues an interrupted run (``None``: there is none)."""
    args = [a for a in argv if a != "--overwrite"]
    if command in RESUMABLE_COMMANDS and "--resume" not in args:
        args.append("--resume")
    elif command not in RESUMABLE_COMMANDS + SELF_RESUMING_COMMANDS:
        return None
    return shlex.join(["gandistill", *args])


def main(argv: list[str] | None = None) -> int:
    """Run one ``gandistill`` command line.

    Args:
        argv: the arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0, 2 for a user error, 128 + the signal's number when interrupted.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    try:
        check_inputs(args)
        return args.func(args)
    except GandistillError as exc:
        print(f"gandistill: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Interrupted as exc:  # stopped between iterations, state saved
        line, again = f"gandistill: {exc}", _continue_command(args.command, argv)
        print(line + (f"; continue with: {again}" if again else ""), file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("gandistill: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
