"""CI conventions, end to end through pytest: JUnit XML properties per test, the Markdown job
summary in ``$GITHUB_STEP_SUMMARY``, and servebench results in pytest-benchmark's JSON."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest

from pytest_servebench.ci import item_properties, markdown_summary
from pytest_servebench.history import make_entry
from pytest_servebench.slo import SLOFailure

from .loopback import LoopbackServer
from .synthetic import result

TESTS = """
import pytest
from pytest_servebench import ClosedLoop

@pytest.mark.slo("p50 < 1s")
def test_one(servebench):
    servebench.run(ClosedLoop(concurrency=2, requests=60), payload=b"x")

def test_two_runs(servebench):
    for c in (1, 2):
        servebench.run(ClosedLoop(concurrency=c, requests=40), payload=b"x").check("p50 < 1s")
"""


def test_properties_number_a_tests_later_results() -> None:
    a = make_entry("t.py::test_a", result([0.01] * 40), [], "local")
    props = dict(item_properties([a, a]))
    assert props["servebench_p50_ms"] == props["servebench_p50_ms_2"] == "10"
    assert props["servebench_verdict"] == "-" and "servebench_usd_per_million" not in props


def test_markdown_escapes_pipes_and_marks_failures() -> None:
    r = result([0.01] * 40)
    with pytest.raises(SLOFailure) as failed:
        r.check("p50 < 1ms")
    bad = make_entry("t.py::test_a[x|y]", r, failed.value.verdicts, "local")
    text = markdown_summary([bad])
    assert "`t.py::test_a[x\\|y]`" in text and text.count("\n| ") == 2
    assert text.rstrip().endswith("| **fail** |")


def test_junit_xml_has_servebench_properties(
        pytester: pytest.Pytester, plugin_args: list[str],
        loopback: Callable[..., LoopbackServer]) -> None:
    server = loopback()
    pytester.makepyfile(TESTS)
    out = pytester.runpytest_subprocess("--target=http", f"--servebench-url={server.url}",
                                        "--junitxml=junit.xml", *plugin_args)
    out.assert_outcomes(passed=2)
    root = ET.parse(pytester.path / "junit.xml").getroot()
    props = {case.get("name"): {p.get("name"): p.get("value")
                                for p in case.iter("property")}
             for case in root.iter("testcase")}
    one, two = props["test_one"], props["test_two_runs"]
    assert one["servebench_verdict"] == "pass" and float(one["servebench_p50_ms"] or "nan") > 0
    assert {"servebench_p99_ms", "servebench_throughput_per_s"} <= set(one)
    assert two["servebench_workload"] == "closed(c=1, 40 req)"
    assert two["servebench_workload_2"] == "closed(c=2, 40 req)"
    assert two["servebench_verdict_2"] == "pass"


def test_github_step_summary_gets_a_markdown_table(
        pytester: pytest.Pytester, loopback: Callable[..., LoopbackServer],
        monkeypatch: pytest.MonkeyPatch) -> None:
    server = loopback()
    summary = pytester.path / "step_summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    pytester.makepyfile(TESTS)
    out = pytester.runpytest_subprocess("--target=http", f"--servebench-url={server.url}")
    out.assert_outcomes(passed=2)
    text = summary.read_text()
    assert text.startswith("earlier step\n### servebench")  # appended, not overwritten
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) == 3 and all(line.endswith("| pass |") for line in rows)


def test_pytest_benchmark_json_holds_servebench_results(
        pytester: pytest.Pytester, loopback: Callable[..., LoopbackServer]) -> None:
    pytest.importorskip("pytest_benchmark")
    server = loopback()
    pytester.makepyfile(TESTS + """
def test_micro(benchmark):
    benchmark(sum, range(100))
""")
    out = pytester.runpytest_subprocess("--target=http", f"--servebench-url={server.url}",
                                        "--benchmark-json=bench.json")
    out.assert_outcomes(passed=3)
    data = json.loads((pytester.path / "bench.json").read_text())
    groups = [b["group"] for b in data["benchmarks"]]
    assert groups.count("servebench") == 3 and len(groups) == 4
    ours = [b for b in data["benchmarks"] if b["group"] == "servebench"]
    assert all(b["stats"]["rounds"] in (40, 60) and b["stats"]["median"] > 0 for b in ours)
    compared = pytester.run("pytest-benchmark", "compare", str(pytester.path / "bench.json"))
    assert compared.ret == 0
    compared.stdout.fnmatch_lines(["*benchmark 'servebench': 3 tests*"])
