"""Command line of the course.

    python -m course_utils doctor [--json]    what this machine can run (make doctor)
    python -m course_utils open [--port N]    JupyterLab on the notebooks (make course)
    python -m course_utils refresh [NAMES]    re-execute notebooks in place (make refresh-notebooks)
    python -m course_utils check [NAMES]      lesson shape and cleanliness of notebooks
"""

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
    if command in ("refresh", "check"):
        from .notebooks import main as notebooks_main

        return notebooks_main([command, *argv])
    print(f"unknown command {command!r}; use: doctor [--json] | open [--port N] | "
          "refresh [NAMES] | check [NAMES]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
