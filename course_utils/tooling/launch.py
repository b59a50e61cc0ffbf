"""`python -m course_utils open` (what `make course` runs): JupyterLab on the course notebooks.

Listens on 127.0.0.1 only, with a fresh token; picks the next free port when the asked one is
taken; works as root (adds --allow-root); turns off JupyterLab's update and news checks and its
PyPI extension manager so a live demo never waits on the internet. The server's own log goes
to `build/jupyterlab.log`; the terminal shows one line, the address to open, once the server
answers (or the log's last lines if it does not start).
Plumbing: `make course`.
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
from ..paths import build_dir, notebooks_dir

__all__ = ["free_port", "jupyterlab_command"]


def free_port(start: int = 8888, attempts: int = 50) -> int:
    """The first port from `start` that 127.0.0.1 can listen on (0 = let the OS choose).

    Plumbing: `make course`.
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
        "--LabApp.extension_manager=readonly",  # no PyPI queries from the extension manager
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
    log_path = build_dir("logs") / f"jupyterlab-{port}.log"
    log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - kept open for the server's lifetime
    process = subprocess.Popen(jupyterlab_command(port, token), stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL)

    def stop(signum: int, _frame: object) -> None:
        process.terminate()

    signal.signal(signal.SIGTERM, stop)
    base = f"http://127.0.0.1:{port}"
    if not _wait_until_ready(f"{base}/api/status?token={token}", process, args.timeout):
        process.terminate()
        process.wait(timeout=30)
        log.close()
        tail = "\n".join(log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-15:])
        print(f"JupyterLab did not start within {args.timeout:.0f} s. The end of its log "
              f"({log_path.relative_to(build_dir().parent)}):\n{tail}", file=sys.stderr)
        return 1
    print(f"Open the course at:  {base}/lab/tree/00_environment_check.ipynb?token={token}", flush=True)
    print(f"(Stop with Ctrl+C. JupyterLab's log: {log_path.relative_to(build_dir().parent)})", flush=True)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        return process.wait(timeout=30)
    finally:
        log.close()


if __name__ == "__main__":
    sys.exit(main())
