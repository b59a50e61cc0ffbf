"""`python -m course_utils open` (what `make course` runs): JupyterLab on the course notebooks.

Listens on 127.0.0.1 only, with a fresh token; picks the next free port when the asked one is
taken; works as root (adds --allow-root); turns off JupyterLab's update and news checks so a
live demo never waits on the internet; prints the URL once the server answers.
Taught in: 00_environment_check.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from ..errors import CourseError
from ..paths import notebooks_dir

__all__ = ["free_port", "jupyterlab_command"]


def free_port(start: int = 8888, attempts: int = 50) -> int:
    """The first port from `start` that 127.0.0.1 can listen on (0 = let the OS choose).

    Taught in: 00_environment_check.
    """
    candidates = [0] if start == 0 else range(start, start + attempts)
    for port in candidates:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise CourseError(f"No free port in {start}-{start + attempts - 1}; pass --port 0 for any free port.")


def jupyterlab_command(port: int, token: str) -> list[str]:
    """The JupyterLab command line the course uses (127.0.0.1, no browser, no web checks).

    Plumbing: run by `make course`.
    """
    command = [
        sys.executable, "-m", "jupyterlab",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        "--ServerApp.open_browser=False", f"--ServerApp.root_dir={notebooks_dir()}",
        f"--IdentityProvider.token={token}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.news_url=None",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers and classroom VMs often run as root
    return command


def _wait_until_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return True
        except OSError:
            time.sleep(0.3)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils open", description=__doc__)
    parser.add_argument("--port", type=int, default=8888, help="first port to try (0 = any free)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for the server")
    args = parser.parse_args(argv)
    port = free_port(args.port)
    if args.port not in (0, port):
        print(f"Port {args.port} is busy; using {port}.")
    token = secrets.token_hex(16)
    process = subprocess.Popen(jupyterlab_command(port, token))

    def stop(signum: int, _frame: object) -> None:
        process.terminate()

    signal.signal(signal.SIGTERM, stop)
    base = f"http://127.0.0.1:{port}"
    if not _wait_until_ready(f"{base}/api/status?token={token}", process, args.timeout):
        process.terminate()
        process.wait(timeout=30)
        print(f"JupyterLab did not start within {args.timeout:.0f} s; see its messages above.",
              file=sys.stderr)
        return 1
    print(f"\nThe course is open at:  {base}/lab/tree/00_environment_check.ipynb?token={token}\n"
          "Paste that address into your browser. Stop with Ctrl+C.\n", flush=True)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        return process.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
