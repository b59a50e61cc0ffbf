# The course's commands. Each one sets up the project-local environment (.venv) first;
# the install is skipped when pyproject.toml has not changed since the last one.
#   make course             set up, then open JupyterLab on notebooks/ (127.0.0.1)
#   make test               set up, then run every unit test and every notebook
#   make refresh-notebooks  re-execute notebooks in place (refuses uncommitted edits)
#   make student            the student edition (no worked solutions) in build/student/
#   make doctor             what this machine can run
#   make mutation           mutation testing of the numeric modules (slow, not in make test)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
EXTRAS ?= dev,rtx
comma  := ,
STAMP  := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
PORT   ?= 8888

.PHONY: setup course test refresh-notebooks student doctor lint clean gpu-lane wheelhouse verification-table mutation

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed (found " + sys.version.split()[0] + "); set PYTHON=python3.11")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing the course into $(VENV) (first time: about 2-3 minutes) ..."
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[$(EXTRAS)]"
	@# JupyterLab's news prompt would try the internet; live demos must not.
	@$(VENV)/bin/jupyter labextension disable --level=sys_prefix "@jupyterlab/apputils-extension:announcements" >/dev/null 2>&1
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

course: $(STAMP)
	@$(PY) -m course_utils open --port $(PORT)

test: $(STAMP)
	$(PY) -m pytest --require-all-runnable $(TEST_ARGS)

refresh-notebooks: $(STAMP)
	$(PY) -m course_utils refresh $(NOTEBOOKS)

student: $(STAMP)  # the student edition (worked solutions removed) in build/student/
	$(PY) -m course_utils student $(NOTEBOOKS)

# The GPU lane: every notebook under nbval on this machine. With WHEELHOUSE=dir (an offline GPU
# machine, its own Python and torch) nothing is installed into .venv: see the README, "For instructors".
PYVER ?= 3.12
gpu-lane:
ifdef WHEELHOUSE
	python3 -m course_utils gpu-lane --wheelhouse $(WHEELHOUSE)
else
	$(MAKE) --no-print-directory $(STAMP)
	$(PY) -m course_utils gpu-lane
endif

wheelhouse: $(STAMP)  # HAVE=freeze.txt (pip freeze of the GPU machine), PYVER=3.12
	$(PY) -m course_utils wheelhouse --python-version $(PYVER) $(if $(HAVE),--have $(HAVE)) --out wheelhouse

verification-table: $(STAMP)
	$(PY) -m course_utils verification-table

# Mutation testing (setup.cfg, tests/mutation/): about 20 minutes on 2 cores; results in mutants/.
mutation:
	$(MAKE) --no-print-directory setup EXTRAS=$(EXTRAS),mutation
	rm -rf mutants
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/mutmut run --max-children $$(nproc)
	$(PY) tests/mutation/score.py

doctor: $(STAMP)
	$(PY) -m course_utils doctor

lint: $(STAMP)
	$(PY) -m ruff check course_utils tests

clean:  # everything the notebooks and tests generated; models/README.md stays
	rm -rf build
	find models -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
