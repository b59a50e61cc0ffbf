"""Command line of the course.

    python -m course_utils doctor [--json]    what this machine can run (make doctor)
    python -m course_utils open [--port N]    JupyterLab on the notebooks (make course)
    python -m course_utils refresh [NAMES]    re-execute notebooks in place (make refresh-notebooks)
    python -m course_utils check [NAMES]      lesson shape and cleanliness of notebooks
    python -m course_utils student [NAMES]    the student edition (no worked solutions) in build/student
    python -m course_utils wheelhouse ...     wheels for an offline GPU machine (make wheelhouse)
    python -m course_utils gpu-lane ...       every notebook under nbval on a GPU machine (make gpu-lane)
    python -m course_utils verification-table the README's notebook x lane table from reports/runs
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
        from .tooling.launch import main as open_main

        return open_main(argv)
    if command in ("wheelhouse", "gpu-lane"):
        from .tooling.gpu_lane import main as gpu_lane_main

        return gpu_lane_main([command, *argv])
    if command == "verification-table":
        from .tooling.verification import main as verification_main

        return verification_main(argv)
    if command == "student":
        from .tooling.student import main as student_main

        return student_main(argv)
    if command in ("refresh", "check"):
        from .tooling.notebooks import main as notebooks_main

        return notebooks_main([command, *argv])
    print(f"unknown command {command!r}; use: doctor [--json] | open [--port N] | refresh [NAMES] | "
          "check [NAMES] | student [NAMES] | wheelhouse | gpu-lane | verification-table", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
