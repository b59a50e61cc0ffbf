"""course_utils.paths: folders resolved from anywhere, created on demand, clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import course_utils as cu


def test_repo_root_holds_the_course() -> None:
    root = cu.repo_root()
    assert (root / "course_utils" / "__init__.py").is_file()
    assert cu.notebooks_dir() == root / "notebooks"


def test_model_path_creates_folders_from_any_working_directory(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(cu.MODELS_DIR_ENV, str(tmp_path / "models"))
    monkeypatch.chdir(tmp_path)  # the seed's '../models' failed exactly here
    path = cu.model_path("deep/er/linear.onnx")
    assert path == tmp_path / "models" / "deep" / "er" / "linear.onnx"
    assert path.parent.is_dir() and not path.exists()


def test_models_dir_defaults_to_the_repository(monkeypatch) -> None:
    monkeypatch.delenv(cu.MODELS_DIR_ENV, raising=False)
    assert cu.models_dir() == cu.repo_root() / "models"


@pytest.mark.parametrize("name", ["", "../escape.onnx", "/abs/path.onnx"])
def test_model_path_rejects_names_outside_models(name: str) -> None:
    with pytest.raises(cu.CourseError, match="relative file name"):
        cu.model_path(name)


def test_a_file_where_the_folder_should_be(tmp_path, monkeypatch) -> None:
    blocker = tmp_path / "models"
    blocker.write_text("not a folder")
    monkeypatch.setenv(cu.MODELS_DIR_ENV, str(blocker))
    with pytest.raises(cu.CourseError, match="is a file, not a folder"):
        cu.models_dir()


def test_read_only_models_folder_gives_a_clear_message(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    folder.chmod(0o555)
    monkeypatch.setenv(cu.MODELS_DIR_ENV, str(folder))
    try:
        if os.geteuid() == 0:  # root ignores permission bits: make the write probe fail instead
            def refuse(*args, **kwargs):
                raise PermissionError(13, "Permission denied")

            monkeypatch.setattr(cu.paths.tempfile, "NamedTemporaryFile", refuse)
        with pytest.raises(cu.CourseError) as caught:
            cu.model_path("x.onnx")
    finally:
        folder.chmod(0o755)
    message = str(caught.value)
    assert "Cannot write to" in message and str(folder) in message
    assert "COURSE_MODELS_DIR" in message and "Permission denied" in message


def test_build_dir_is_git_ignored() -> None:
    folder = cu.build_dir("tests")
    assert folder.is_dir() and Path(cu.repo_root(), ".gitignore").read_text().count("build/")


def test_shown_path_is_what_a_learner_would_type(tmp_path, monkeypatch) -> None:
    assert cu.shown_path(cu.repo_root() / "models" / "a.onnx") == "models/a.onnx"
    monkeypatch.setenv(cu.MODELS_DIR_ENV, str(tmp_path / "scratch"))
    assert cu.shown_path(tmp_path / "scratch" / "lesson" / "b.onnx") == "$COURSE_MODELS_DIR/lesson/b.onnx"
    assert cu.shown_path(tmp_path / "elsewhere" / "c.onnx") == "c.onnx"  # never an absolute path
