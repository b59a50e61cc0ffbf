"""`python -m course_utils open` (what `make course` runs): JupyterLab on the course notebooks.

Listens on 127.0.0.1 only, with a fresh token; picks the next free port when the asked one is
taken; works as root (adds --allow-root); turns off JupyterLab's update and news checks and its
PyPI extension manager so a live demo never waits on the internet. The server's own log goes
to `build/jupyterlab.log`; the terminal shows one line, the address to open, once the server
answers (or the log's last lines if it does not start).

Opening a notebook leaves its file as it was. When a kernel connects, JupyterLab writes the
kernel's `language_info` (Python version included) into the notebook's metadata and, if that
changes anything, marks the notebook unsaved, and autosave rewrites the file. The committed
notebooks carry what ipykernel reports (`clean_notebook`); for a learner whose Python version
differs, the server (`CourseContentsManager`) hands JupyterLab the notebook with this
machine's `language_info` already in it, so the kernel's report changes nothing, and puts the
file's own back when JupyterLab saves it, so even a save with nothing changed (Ctrl+S out of
habit) writes the file byte for byte as it was. Kernels use Unix sockets (`ipc`), not TCP.
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

__all__ = ["free_port", "jupyterlab_command", "kernel_language_info", "match_kernel_metadata",
           "restore_file_language_info"]

_CONTENTS_MANAGER = "course_utils.tooling.launch.CourseContentsManager"


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
        f"--ServerApp.contents_manager_class={_CONTENTS_MANAGER}",  # opening never dirties a notebook
        # Kernels talk to the server over Unix sockets, not TCP ports: no port race when several
        # kernels start at once (a kernel that lost one never started), and no "Kernel is
        # running over TCP without encryption" warning at every start.
        "--KernelManager.transport=ipc",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers and classroom VMs often run as root
    return command


def kernel_language_info() -> dict:
    """The `language_info` this machine's Python kernel (ipykernel) reports to JupyterLab.

    Plumbing: `make course` (and `clean_notebook`'s shape).
    """
    import copy

    from ipykernel.ipkernel import IPythonKernel

    return copy.deepcopy(IPythonKernel.language_info)


def match_kernel_metadata(nb: dict) -> dict:
    """Put this machine's kernel `language_info` into a Python notebook (in place) and return it.

    Exactly what JupyterLab itself writes once the kernel connects; done before JupyterLab
    sees the notebook, the kernel's report changes nothing and the notebook stays unmodified.
    Notebooks of other kernels are left alone. Plumbing: `make course`.
    """
    metadata = nb.get("metadata", {})
    kernel = metadata.get("kernelspec", {}).get("name")
    language = metadata.get("language_info", {}).get("name", "python")
    if kernel == "python3" and language == "python":
        metadata["language_info"] = kernel_language_info()
    return nb


def restore_file_language_info(nb: dict, path: str | os.PathLike[str]) -> dict:
    """Undo `match_kernel_metadata` before a save: keep the file's own `language_info`.

    Only when the notebook to save still carries exactly this kernel's `language_info` and the
    file on disk has a Python one; the rest of the notebook is saved as JupyterLab sends it.
    Plumbing: `make course`.
    """
    import json

    metadata = nb.get("metadata", {})
    if metadata.get("language_info") != kernel_language_info():
        return nb
    try:
        with open(path, encoding="utf-8") as file:
            on_disk = json.load(file).get("metadata", {}).get("language_info")
    except (OSError, ValueError, AttributeError):
        return nb  # a new file, or one that is not JSON: nothing to keep
    if isinstance(on_disk, dict) and on_disk.get("name") == "python":
        metadata["language_info"] = on_disk
    return nb


def __getattr__(name: str) -> type:
    # The contents manager is built on first use, inside the JupyterLab server, so importing
    # this module (the tests, `make course` itself) does not import jupyter_server.
    if name != "CourseContentsManager":
        raise AttributeError(name)
    from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager

    class CourseContentsManager(AsyncLargeFileManager):
        """The default contents manager, but a notebook is read with this kernel's language_info."""

        async def get(self, path, content=True, type=None, format=None, **kwargs):  # noqa: A002
            model = await super().get(path, content=content, type=type, format=format, **kwargs)
            if content and model.get("type") == "notebook" and model.get("content") is not None:
                match_kernel_metadata(model["content"])
            return model

        async def save(self, model, path=""):
            # Undo what get() did: a notebook saved with nothing else changed (Ctrl+S out of
            # habit) is written byte for byte as it was, whatever Python this machine has.
            if model.get("type") == "notebook" and isinstance(model.get("content"), dict):
                restore_file_language_info(model["content"], self._get_os_path(path.strip("/")))
            return await super().save(model, path)

    CourseContentsManager.__module__ = __name__
    globals()["CourseContentsManager"] = CourseContentsManager
    return CourseContentsManager


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
