"""The boot script of a GPU instance (``ec2.user_data``): ONNX Runtime's CUDA build goes first on
the path, and the server must run on the GPU; other instances stay on the CPU. (A real g4dn boot
was not run: AWS is unreachable here; moto stores the script the tests in test_servers.py read.)"""

from __future__ import annotations

import pytest

from pytest_servebench.backends.aws import ec2

from .conftest import Moto, left_in_moto


def _script(**kw: object) -> str:
    args: dict[str, object] = dict(package_url="https://b/p.zip", code_url="https://b/c.zip",
                                   model_file="m.onnx", port=8080, workers=1, threads=None,
                                   arch="x86_64")
    args.update(kw)
    return ec2.user_data("mobilenet_v2", **args)  # type: ignore[arg-type]


def test_a_gpu_instance_installs_the_cuda_runtime_first_and_serves_on_the_gpu() -> None:
    script = _script(gpu="T4")
    install = ("python3.11 -m pip install --quiet --target /opt/servebench/arch "
               "'onnxruntime-gpu[cuda,cudnn]'")
    assert install in script
    assert "export SERVEBENCH_DEVICE=cuda\n" in script
    assert "PYTHONPATH=/opt/servebench/arch:" in script  # before the package's CPU build
    assert script.index(install) < script.index("nohup ")


def test_other_instances_stay_on_the_cpu() -> None:
    script = _script()
    assert "onnxruntime-gpu" not in script
    assert "export SERVEBENCH_DEVICE=cpu\n" in script
    # The caller's environment is kept beside it.
    assert "export SERVEBENCH_MODEL_URL=s3://b/k\n" in _script(
        environment={"SERVEBENCH_MODEL_URL": "s3://b/k"})


def test_a_gpu_instance_on_the_stand_in_needs_a_gpu_here_and_provisions_nothing_without(
        loopback_servers: Moto, monkeypatch: pytest.MonkeyPatch) -> None:
    """Control plane: moto. On AWS a g4dn has its GPU; the loopback stand-in would serve it
    on this machine, which has none (faked here, as CI has none): the case skips before anything
    is launched, saying so."""
    import boto3

    from pytest_servebench import gpu
    from pytest_servebench.backends.aws import AwsBackend
    from pytest_servebench.gpu import GpuProbe, GpuUnavailable

    monkeypatch.setattr(gpu, "probe", lambda: GpuProbe((), "no CUDA driver (libcuda.so.1 not "
                                                           "found)"))
    with AwsBackend() as backend, pytest.raises(
            GpuUnavailable, match=r"g4dn.xlarge \(an NVIDIA T4\) served by the loopback "
                                  r"stand-in on this machine needs a GPU, and this machine has "
                                  r"none"):
        backend.server("mobilenet_v2", platform="ec2", instance_type="g4dn.xlarge")
    # moto's server is shared by the module's tests: this run's instances, by its tag
    reservations = boto3.client("ec2").describe_instances(Filters=[
        {"Name": "tag:servebench:run-id", "Values": [backend.tags.run_id]}])["Reservations"]
    assert [i for r in reservations for i in r["Instances"]] == []
    assert left_in_moto(backend.tags.run_id) == []
