"""Baselines match by identity, never by measurement: for every backend and target kind a user
can pick, two deployments of the same target (other ports, URLs, pids, ready times) give one
history key, and a second run of the same tests finds its baseline."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from pytest_servebench.history import (
    IDENTITY_FIELDS,
    History,
    entry_key,
    identity,
    make_entry,
    new_run,
)

from .loopback import LoopbackServer
from .synthetic import result

# Fields that are measured or ephemeral: none may ever reach a key.
MEASURED = {"url", "endpoint_url", "port", "pid", "ready_s", "container", "sandbox_id",
            "shaping", "rie", "arch_note", "cpu_capped_at_cores"}
WORKLOAD = {"str": "closed(c=1, 10 req)", "kind": "closed", "concurrency": 1, "requests": 10}


def _key(target: Any, backend: str = "local") -> str:
    return entry_key(identity("t.py::test_x", target.name, target.describe(), backend, WORKLOAD))


def test_identity_fields_are_not_measurements() -> None:
    assert not MEASURED & set(IDENTITY_FIELDS)


def test_measured_and_ephemeral_fields_never_enter_a_key() -> None:
    profile = {"kind": "server", "platform": "ec2", "instance_type": "c5.large"}
    base = identity("t::x", "ec2:c5.large:m", profile, "local", WORKLOAD)
    for name in MEASURED:
        noisy = identity("t::x", "ec2:c5.large:m", {**profile, name: "12345"}, "local",
                         WORKLOAD)
        assert entry_key(noisy) == entry_key(base), name
    # What the target IS does change the key, and so do the workload and the backend.
    assert entry_key(identity("t::x", "ec2:c5.large:m", {**profile, "instance_type": "t2.small"},
                              "local", WORKLOAD)) != entry_key(base)
    assert entry_key(identity("t::x", "ec2:c5.large:m", profile, "local",
                              {**WORKLOAD, "concurrency": 2})) != entry_key(base)
    assert entry_key(identity("t::x", "ec2:c5.large:m", profile, "docker",
                              WORKLOAD)) != entry_key(base)
    # A target may name more identity explicitly.
    tagged = identity("t::x", "ec2:c5.large:m", {**profile, "identity": {"model_rev": 3}},
                      "local", WORKLOAD)
    assert entry_key(tagged) != entry_key(base)


def test_http_targets_on_other_ports_share_a_key(
        loopback: Callable[..., LoopbackServer]) -> None:
    from pytest_servebench import HttpTarget

    a, b = loopback(), loopback()
    assert a.url != b.url
    assert _key(HttpTarget(a.url)) == _key(HttpTarget(b.url))


@pytest.mark.parametrize("kind", ["lambda", "ec2", "fargate", "sagemaker"])
def test_local_targets_deployed_twice_share_a_key(kind: str) -> None:
    pytest.importorskip("onnxruntime", reason="the targets need the [targets] extra")
    pytest.importorskip("awslambdaric", reason="the local Lambda platform needs [functions]")
    from pytest_servebench.backends.local import LocalBackend

    keys, profiles = [], []
    for _ in range(2):  # two sessions: a new platform port, new server ports and pids
        with LocalBackend() as backend:
            if kind == "lambda":
                target: Any = backend.function("text_rf", memory_mb=512)
            elif kind == "fargate":
                target = backend.server("text_rf", platform="fargate", vcpu=0.5, memory_gb=1)
            else:
                size = "c5.large" if kind == "sagemaker" else "t3.medium"
                target = backend.server("text_rf", platform=kind, instance_type=size)
            keys.append(_key(target))
            profiles.append(target.describe())
    differing = {k for k in profiles[0] if profiles[0].get(k) != profiles[1].get(k)}
    assert differing, "the two deployments should differ somewhere (a port, a ready time)"
    assert keys[0] == keys[1], f"measured fields reached the key: {differing}"


TESTS = """
import pytest
from pytest_servebench import ClosedLoop

def test_run(servebench):
    servebench.run(ClosedLoop(concurrency=1, requests=30), payload={"text": "you are kind"})
"""


@pytest.mark.parametrize("kind", ["lambda", "ec2"])
def test_a_second_local_run_finds_its_baseline(pytester: pytest.Pytester, kind: str) -> None:
    """The bug this guards: on the local backend every run's key held a random port, so
    --servebench-compare never compared anything."""
    pytest.importorskip("onnxruntime", reason="the targets need the [targets] extra")
    pytest.importorskip("awslambdaric", reason="the local Lambda platform needs [functions]")
    pytester.makepyfile(TESTS)
    args = [f"--target={kind}", "--servebench-model=text_rf", "--servebench-compare",
            "-p", "no:cacheprovider"]
    first = pytester.runpytest_subprocess(*args)
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines(["*MOST RESULTS WERE NOT COMPARED: 1 of 1 have no baseline*"])
    second = pytester.runpytest_subprocess(*args)
    second.assert_outcomes(passed=1)
    second.stdout.fnmatch_lines(["*1 result(s) compared, 0 without a baseline*"])
    assert "no baseline" not in second.stdout.str()


def test_version_1_histories_get_identity_keys(tmp_path: Path) -> None:
    """A schema-1 history keyed on the whole profile (a port in it) is migrated: its keys are
    recomputed, so the old runs become baselines."""
    def v1_entry(port: int) -> dict[str, Any]:
        e = make_entry("t.py::test_x", result([0.01] * 50), [], "local").to_json()
        e["target_profile"] = {"kind": "function", "platform": "lambda", "memory_mb": 512,
                               "endpoint_url": f"http://127.0.0.1:{port}"}
        e["key"] = json.dumps(["t.py::test_x", e["target_profile"], "local"], sort_keys=True)
        del e["identity"]
        return e

    path = tmp_path / "h.json"
    runs = [{**new_run([], backend="local").to_json(), "entries": [v1_entry(port)]}
            for port in (40001, 40002)]
    path.write_text(json.dumps({"schema_version": 1, "runs": runs}))
    assert runs[0]["entries"][0]["key"] != runs[1]["entries"][0]["key"]
    migrated = History.at(path).runs()
    keys = {r.entries[0].key for r in migrated}
    assert len(keys) == 1
    ident: Mapping[str, Any] = migrated[0].entries[0].identity
    assert "endpoint_url" not in ident["target"] and ident["target"]["memory_mb"] == 512
    assert path.read_text().startswith('{"schema_version": 1')  # reading never rewrites


REPEATS = """
from pytest_servebench import ClosedLoop

def test_three_times(servebench):
    for _ in range(3):
        servebench.run(ClosedLoop(concurrency=1, requests=30), payload=b"x")
"""


def test_a_workload_run_three_times_in_a_test_keeps_three_keys(
        pytester: pytest.Pytester, loopback: Callable[..., LoopbackServer]) -> None:
    server = loopback()
    pytester.makepyfile(REPEATS)
    args = ["--target=http", f"--servebench-url={server.url}", "--servebench-compare",
            "--servebench-compare-fail=p50:50%"]
    pytester.runpytest(*args).assert_outcomes(passed=1)
    second = pytester.runpytest(*args)
    second.stdout.fnmatch_lines(["*3 result(s) compared, 0 without a baseline*"])
    entries = json.loads((pytester.path / ".servebench" / "history.json").read_text()
                         )["runs"][-1]["entries"]
    assert len({e["key"] for e in entries}) == 3
    assert [e["identity"].get("repeat", 0) for e in entries] == [0, 1, 2]
