"""Command line: `python -m course_utils doctor [--json]` and `python -m course_utils open`."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv else "doctor"
    if command == "doctor":
        from .environment import main as doctor_main

        return doctor_main(argv)
    if command == "open":
        from .launch import main as open_main

        return open_main(argv)
    print(f"unknown command {command!r}; use: doctor [--json] | open [--port N]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
