"""Root conftest: load the course's pytest plugin (notebook lanes, guard, leftovers check)."""

pytest_plugins = ["course_utils.tooling.pytest_plugin"]
