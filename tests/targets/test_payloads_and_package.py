from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from targets import package
from targets.payloads import STUDY_003_SIZES, jpeg, jpeg_of_size, texts


@pytest.mark.parametrize("label", list(STUDY_003_SIZES))
def test_jpeg_of_a_requested_size(label: str) -> None:
    want = STUDY_003_SIZES[label]
    data = jpeg_of_size(want)
    assert abs(len(data) - want) <= 0.03 * want
    assert data[:2] == b"\xff\xd8" and data == jpeg_of_size(want)


def test_payloads_are_deterministic() -> None:
    assert jpeg(100, 80, seed=1) == jpeg(100, 80, seed=1) != jpeg(100, 80, seed=2)
    assert texts(5, seed=3) == texts(5, seed=3) and len(texts(5)) == 5


def test_mobilenet_function_package_fits_lambda_without_torch() -> None:
    rep = package.report("mobilenet_v2")
    assert rep.fits_lambda, rep.to_dict()
    assert "onnxruntime" in rep.distributions and "torch" not in rep.distributions
    assert rep.model_bytes > 13e6  # 3.5 M float32 parameters


def test_torch_runtime_package_is_heavier() -> None:
    pytest.importorskip("torch")
    onnx, torch_pkg = package.report("mobilenet_v2"), package.report("mobilenet_v2_torch")
    assert torch_pkg.total_bytes > 2 * onnx.total_bytes
    assert "torch" in torch_pkg.distributions


def test_a_built_package_serves_from_its_folder(tmp_path: Path) -> None:
    """The folder holds everything: a python with only the package on its path serves a request
    (site-packages hidden with -S -E and PYTHONPATH set to the package)."""
    out = tmp_path / "pkg"
    rep = package.build("mobilenet_v2", out)
    on_disk = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert abs(on_disk - rep.total_bytes) / rep.total_bytes < 0.02
    model = next((out / "model").glob("*.onnx"))
    script = ("import base64,sys; sys.path.insert(0, sys.argv[1]); "
              "from targets.handler import handler; from targets.payloads import jpeg; "
              "r = handler({'image_b64': base64.b64encode(jpeg()).decode()}, None); "
              "import json; print(json.dumps(sorted(r)))")
    env = {"PATH": os.environ["PATH"], "SERVEBENCH_TARGET": "mobilenet_v2",
           "SERVEBENCH_MODEL_PATH": str(model), "HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, "-S", "-E", "-c", script, str(out)], env=env,
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "classes" in json.loads(proc.stdout.splitlines()[-1])


def test_the_handler_writes_only_to_tmp(tmp_path: Path) -> None:
    """Study 000's lesson: HOME and the code's folder are read-only on Lambda. Load and invoke in
    a fresh python with HOME, the working folder and the cache in watched folders; only the
    temporary folder may change."""
    from targets.build import ensure

    art = ensure("mobilenet_v2", "onnx")
    home, work, tmp = tmp_path / "home", tmp_path / "work", tmp_path / "tmp"
    for d in (home, work, tmp):
        d.mkdir()
    code_before = {p: p.stat().st_mtime_ns for p in Path("targets").rglob("*")}
    script = ("import base64; from targets.handler import handler; "
              "from targets.payloads import jpeg; "
              "handler({'image_b64': base64.b64encode(jpeg()).decode()}, None)")
    env = {**os.environ, "HOME": str(home), "TMPDIR": str(tmp), "SERVEBENCH_TARGET":
           "mobilenet_v2", "SERVEBENCH_MODEL_PATH": str(art.path),
           "PYTHONPATH": str(Path.cwd()), "PYTHONDONTWRITEBYTECODE": "1"}
    for var in ("XDG_CACHE_HOME", "TORCH_HOME", "MPLCONFIGDIR"):
        env.pop(var, None)
    proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=work,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert list(home.iterdir()) == [] and list(work.iterdir()) == []
    assert {p: p.stat().st_mtime_ns for p in Path("targets").rglob("*")} == code_before
