"""What a wheel install gets (issue #16): the image recipe as package data and the studies'
models registered as the model provider, so an installed plugin builds images without the
repository around it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_ships_the_dockerfile_and_registers_the_provider(tmp_path: Path) -> None:
    src = tmp_path / "src"  # a copy: setuptools builds in the source tree
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for part in ("pytest_servebench", "targets"):
        shutil.copytree(ROOT / part, src / part, ignore=skip)
    for part in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / part, src / part)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                           "--no-build-isolation", "--wheel-dir", str(tmp_path), str(src)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("pytest_servebench-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        text = z.read(entry_points).decode()
        dockerfile = z.read("targets/images/Dockerfile").decode()
    assert "targets/provider.py" in names and "pytest_servebench/provider.py" in names
    assert "[servebench.providers]\ntargets = targets.provider:provider" in text
    assert "[pytest11]\nservebench = pytest_servebench.plugin" in text
    assert dockerfile == (ROOT / "targets" / "images" / "Dockerfile").read_text()
