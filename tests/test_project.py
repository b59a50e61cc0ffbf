"""Project hygiene: the README's two commands, CI, conda/pip agreement, lint, docstrings."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
import tomllib

import yaml

import course_utils as cu

ROOT = cu.repo_root()


def _pyproject_pins() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = set(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        pins |= set(extra)
    return pins


def test_environment_yml_matches_pyproject() -> None:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    yml_pins = {line for line in pip_section if not line.startswith("-e")}
    # Optional extras are listed commented out ("# - name==version"), so conda users see them.
    text = (ROOT / "environment.yml").read_text()
    yml_pins |= set(re.findall(r"^\s*# - (\S+==\S+)", text, re.MULTILINE))
    assert yml_pins == _pyproject_pins(), (
        f"only in environment.yml: {sorted(yml_pins - _pyproject_pins())}; "
        f"only in pyproject.toml: {sorted(_pyproject_pins() - yml_pins)}"
    )
    assert all("==" in pin for pin in _pyproject_pins()), "pin every dependency exactly"


def test_readme_first_screen_has_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    first_screen = "\n".join(readme.splitlines()[:40])
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", first_screen, re.DOTALL)
    assert block, "the README's first screen needs a code block with the two commands"
    commands = [ln.split("#")[0].strip() for ln in block.group(1).splitlines()]
    assert [c for c in commands if c] == ["make course", "make test"]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.MULTILINE)
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: \$\(STAMP\)\n\t\$\(PY\) -m pytest --require-all-runnable", makefile,
                     re.MULTILINE)


def test_generated_folders_are_git_ignored() -> None:
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    for folder in (".venv/", "models/*", "build/"):
        assert folder in ignored


def test_ruff_is_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "course_utils", "tests",
                             "conftest.py"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_module_and_public_helper_is_documented() -> None:
    missing = []
    for path in sorted((ROOT / "course_utils").rglob("*.py")):
        dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        module = importlib.import_module(dotted)
        if not (module.__doc__ or "").strip():
            missing.append(f"{path.name}: no module docstring")
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                doc = inspect.getdoc(obj) or ""
                if not doc:
                    missing.append(f"{path.stem}.{name}: no docstring")
                elif inspect.isfunction(obj) and "Taught in:" not in doc and "Plumbing:" not in doc:
                    missing.append(f"{path.stem}.{name}: docstring names neither its notebook "
                                   "('Taught in: NN_name') nor its plumbing role ('Plumbing: ...')")
    assert not missing, "\n".join(missing)


def test_the_mutation_testing_config_names_real_files() -> None:
    # mutmut 3.8.1 reads [tool.mutmut] from pyproject.toml when it exists, else [mutmut] in setup.cfg.
    import configparser

    assert "mutmut" not in tomllib.loads((ROOT / "pyproject.toml").read_text()).get("tool", {}), (
        "pyproject.toml has [tool.mutmut]: mutmut would ignore setup.cfg; keep one of the two")
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    modules = config.get("mutmut", "only_mutate").split()
    tests = config.get("mutmut", "pytest_add_cli_args_test_selection").split()
    assert modules and tests
    for path in modules + tests + config.get("mutmut", "also_copy").split():
        assert (ROOT / path).exists(), f"setup.cfg [mutmut] names {path}, which does not exist"
    survivors = (ROOT / "tests" / "mutation" / "SURVIVORS.md").read_text()
    for module in modules:
        name = module.removeprefix("course_utils/").removesuffix(".py")
        assert re.search(rf"^## {name}\b", survivors, re.MULTILINE), f"SURVIVORS.md has no section for {name}"
