"""The ``flowkit`` command (issue 5): thin, parses arguments, calls the library, renders."""
from __future__ import annotations

import sys


def main(argv=None) -> int:
    from flowkit import __version__

    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--version"]:
        print(f"flowkit {__version__}")
        return 0
    print("flowkit: the command line is being built", file=sys.stderr)
    return 2
