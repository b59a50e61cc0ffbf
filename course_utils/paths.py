"""Where the course reads and writes files, resolved from anywhere and created on demand.

Notebooks never type `../models/...`: they call `cu.model_path("linear.onnx")`, which
works from any working directory and creates `models/` first, so the seed's
"No such file or directory: '../models/example.onnx'" cannot happen.
Taught in: 00_environment_check (used by every notebook).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from .errors import CourseError

__all__ = [
    "repo_root", "notebooks_dir", "ensure_writable_dir", "models_dir", "model_path", "build_dir",
    "MODELS_DIR_ENV", "list_notebooks", "shown_path",
]

#: Environment variable that moves every generated model somewhere else (e.g. a scratch disk).
MODELS_DIR_ENV = "COURSE_MODELS_DIR"


def repo_root() -> Path:
    """The repository root: the folder holding `course_utils/` and `notebooks/`.

    Taught in: 00_environment_check.
    """
    return Path(__file__).resolve().parent.parent


def notebooks_dir() -> Path:
    """The folder with the course notebooks. Taught in: 00_environment_check."""
    return repo_root() / "notebooks"


_NOTEBOOK_NAME = re.compile(r"^\d\d_[a-z0-9_]+\.ipynb$")


def list_notebooks(folder: Path | None = None) -> list[Path]:
    """The course notebooks (`NN_snake_case.ipynb`) in order. Taught in: 00_environment_check."""
    folder = folder or notebooks_dir()
    return sorted(p for p in folder.glob("*.ipynb") if _NOTEBOOK_NAME.match(p.name))


def ensure_writable_dir(path: str | os.PathLike[str]) -> Path:
    """Create `path` (and its parents) if needed and check that files can be written there.

    Raises `CourseError` naming the folder and the fix when it is a file, cannot be
    created, or is read-only. Taught in: 00_environment_check.
    """
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise CourseError(
            f"{folder} exists but is a file, not a folder. Move or rename that file, "
            f"or set {MODELS_DIR_ENV} to another folder."
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # A real write probe: os.access() lies for root and on some network mounts.
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-probe-"):
            pass
    except OSError as error:
        raise CourseError(
            f"Cannot write to {folder} ({error.strerror or error}). Make it writable "
            f"(chmod u+w {folder}) or point {MODELS_DIR_ENV} at a folder you can write to."
        ) from None
    return folder


def models_dir() -> Path:
    """The folder where notebooks write the models they make (git-ignored), created on demand.

    `$COURSE_MODELS_DIR` overrides the default `<repo>/models`. Taught in: 00_environment_check.
    """
    override = os.environ.get(MODELS_DIR_ENV)
    return ensure_writable_dir(override if override else repo_root() / "models")


def model_path(name: str) -> Path:
    """Path of a file called `name` inside `models_dir()`; sub-folders in `name` are created.

    Taught in: 00_environment_check (used by every notebook that saves a model).
    """
    if not name or Path(name).is_absolute() or ".." in Path(name).parts:
        raise CourseError(
            f"model_path() takes a relative file name such as 'linear.onnx', got {name!r}."
        )
    path = models_dir() / name
    ensure_writable_dir(path.parent)
    return path


def build_dir(*parts: str) -> Path:
    """A git-ignored scratch folder under `<repo>/build` (screenshots, test artifacts).

    Taught in: 00_environment_check.
    """
    return ensure_writable_dir(repo_root().joinpath("build", *parts))


def shown_path(path: str | os.PathLike[str]) -> str:
    """How a notebook prints a path: relative to the repository (what you would type), or
    `$COURSE_MODELS_DIR/...` when the models folder was moved outside it; never this machine's
    absolute path. Taught in: 00_environment_check (used wherever a notebook prints a file).
    """
    target = Path(path).resolve()
    moved = os.environ.get(MODELS_DIR_ENV)
    if moved and target.is_relative_to(Path(moved).expanduser().resolve()):
        return f"${MODELS_DIR_ENV}/{target.relative_to(Path(moved).expanduser().resolve())}"
    if target.is_relative_to(repo_root()):
        return str(target.relative_to(repo_root()))
    return Path(path).name
