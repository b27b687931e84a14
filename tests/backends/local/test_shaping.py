"""Shapes: Lambda's memory-to-CPU rule, cgroup limits where writable, and honesty where not."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_servebench.backends.local.shaping import LAMBDA_MB_PER_VCPU, Shape, Shaper


@pytest.mark.parametrize(("mb", "vcpu"), [(128, 128 / 1769), (1769, 1.0), (3538, 2.0),
                                          (10240, 10240 / 1769)])
def test_lambda_cpu_is_proportional_to_memory(mb: int, vcpu: float) -> None:
    assert LAMBDA_MB_PER_VCPU == 1769
    assert Shape.for_lambda(mb).vcpu == pytest.approx(min(6.0, vcpu))


@pytest.mark.parametrize("mb", [64, 127, 10241])
def test_lambda_memory_outside_the_range_is_refused(mb: int) -> None:
    with pytest.raises(ValueError, match=r"128\.\.10240"):
        Shape.for_lambda(mb)


def test_threads_fit_the_shape_and_the_machine() -> None:
    assert Shape(0.3, 512).threads(cores=8) == 1
    assert Shape(2.0, 4096).threads(cores=8) == 2
    assert Shape(2.5, 4096).threads(cores=8) == 3
    assert Shape(6.0, 10240).threads(cores=2) == 2


def test_without_cgroups_nothing_is_shaped_and_the_profile_says_so(tmp_path: Path) -> None:
    shaper = Shaper(root=tmp_path)
    assert not shaper.can_shape
    assert shaper.make(Shape(1.0, 1024), "x") is None
    profile = shaper.describe(Shape.for_lambda(1024))
    assert profile["shaped"] is False and "no cgroup" in profile["shaping"]


def test_the_switch_turns_shaping_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVEBENCH_NO_SHAPING", "1")
    assert Shaper().describe(Shape(1.0, 1024))["shaping"].startswith("shaping turned off")


def test_a_cgroup_holds_the_quota_and_the_memory_cap() -> None:
    shaper = Shaper()
    if not shaper.can_shape:
        pytest.skip(f"this machine cannot shape: {shaper.reason}")
    group = shaper.make(Shape(0.5, 512), "test")
    assert group is not None
    try:
        if group.version == 1:
            quota = int((group.dirs["cpu"] / "cpu.cfs_quota_us").read_text())
            period = int((group.dirs["cpu"] / "cpu.cfs_period_us").read_text())
            limit = int((group.dirs["memory"] / "memory.limit_in_bytes").read_text())
        else:
            q, p = (group.dirs["cpu"] / "cpu.max").read_text().split()
            quota, period = int(q), int(p)
            limit = int((group.dirs["memory"] / "memory.max").read_text())
        assert quota / period == pytest.approx(0.5)
        assert limit == 512 * 2**20
    finally:
        group.remove()
    assert not any(d.exists() for d in group.dirs.values())
