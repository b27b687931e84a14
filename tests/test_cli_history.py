"""``servebench history show`` prints a table people read (``--json`` for machines) and
``history export --format`` writes what github-action-benchmark and pytest-benchmark read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_servebench.cli import main
from pytest_servebench.cost import CostEstimate
from pytest_servebench.history import History, make_entry, new_run

from .synthetic import result


def _history(tmp_path: Path) -> Path:
    path = tmp_path / "h.json"
    fast = result([0.010, 0.012, 0.011] * 100)
    h = History.at(path)
    h.append(new_run([
        make_entry("suites/test_a.py::test_sweep[lambda-1024-concurrency=1]", fast,
                   fast.check("p50 < 1s"), "local"),
        make_entry("suites/test_a.py::test_sweep[lambda-1024-concurrency=16]",
                   result([0.020] * 300).with_cost(
                       CostEstimate(3e-6, "lambda", "by hand", "2024-01-01")), [], "local"),
        make_entry("suites/test_b.py::test_down", result([], errors=5), [], "local"),
    ], backend="local", name="base"))
    return path


def test_show_prints_a_table_grouped_by_module(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = _history(tmp_path)
    assert main(["history", "show", "base", "--history", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("run ") and "(base)" in out[0] and "backend local" in out[0]
    assert "suites/test_a.py" in out and "suites/test_b.py" in out
    assert "  test_sweep" in out
    (row,) = [line for line in out if "[lambda-1024-c=1]" in line or
              "[lambda-1024-concurrency=1]" in line]
    assert row.endswith("pass")
    assert max(len(line) for line in out) <= 120 and len(out) < 20


def test_show_json_is_strict_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _history(tmp_path)
    assert main(["history", "show", "base", "--history", str(path), "--json"]) == 0

    def refuse(name: str) -> None:
        raise AssertionError(f"bare {name}")

    run = json.loads(capsys.readouterr().out, parse_constant=refuse)
    down = run["entries"][2]
    assert down["latency_s"]["p50"] == {"value": None, "low": None, "high": None, "n": 0}


def test_export_github_action_benchmark(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = _history(tmp_path)
    assert main(["history", "export", "--format", "github-action-benchmark",
                 "--history", str(path)]) == 0
    items = json.loads(capsys.readouterr().out)
    names = [i["name"] for i in items]
    first = "suites/test_a.py::test_sweep[lambda-1024-concurrency=1]"
    assert names[:2] == [f"{first} p50", f"{first} p99"]
    assert all(set(i) >= {"name", "unit", "value"} for i in items)
    assert {i["unit"] for i in items} == {"ms", "USD"}
    cost = [i for i in items if i["unit"] == "USD"]
    assert [i["value"] for i in cost] == [pytest.approx(3.0)]
    assert not any("test_down" in n for n in names)  # no value measured: not made up
    p50 = items[0]["value"]
    assert p50 == pytest.approx(11.0, rel=0.02)


def test_export_pytest_benchmark_is_read_by_pytest_benchmark(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pytest_benchmark")
    from pytest_benchmark.storage.file import FileStorage

    path = _history(tmp_path)
    assert main(["history", "export", "--format", "pytest-benchmark", "base",
                 "--history", str(path)]) == 0
    out = tmp_path / "store" / "Linux" / "0001_servebench.json"
    out.parent.mkdir(parents=True)
    out.write_text(capsys.readouterr().out)

    class Logger:
        def warning(self, *args: object, **kwargs: object) -> None:
            raise AssertionError(args)

        info = debug = error = warning

    storage = FileStorage(str(tmp_path / "store"),  # type: ignore[no-untyped-call]
                          default_machine_id="Linux", logger=Logger())
    benches = list(storage.load_benchmarks(str(out)))  # type: ignore[no-untyped-call]
    assert [b["group"] for b in benches] == ["servebench"] * 3
    first = benches[0]
    assert first["median"] == pytest.approx(0.011, rel=0.02)
    assert first["rounds"] == 300 and first["extra_info"]["verdict"] == "pass"
    assert benches[1]["extra_info"]["usd_per_million"] == pytest.approx(3.0)
