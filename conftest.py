# Root conftest: keeps pytest's rootdir at the repository top so `pytest suites/` and
# `pytest tests/` share pyproject.toml's settings. The plugin itself loads via its entry point.
