"""The session object behind the plugin's hooks, without pytester: judging a test's results into
entries, xdist hand-over, compare, save and the summary's lines."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from pytest_servebench.history import History
from pytest_servebench.result import Result
from pytest_servebench.session import BenchSession, Message, SessionOptions, SummaryLine
from pytest_servebench.slo import SLOFailure

from .synthetic import result


def _session(tmp_path: Path, **options: Any) -> BenchSession:
    return BenchSession(SessionOptions(history_path=tmp_path / "h.json", **options))


def _test(session: BenchSession, nodeid: str, results: Sequence[Result], *,
          bounds: Sequence[str] = (), error: BaseException | None = None) -> SLOFailure | None:
    for r in results:
        session.add_result(nodeid, r)
    return session.end_test(nodeid, bounds=bounds, error=error)


def test_a_test_without_results_leaves_nothing(tmp_path: Path) -> None:
    session = _session(tmp_path)
    assert session.end_test("t.py::test_a", bounds=["p99 < 1ms"], error=None) is None
    assert session.entries == [] and session.finish() is False
    assert not (tmp_path / "h.json").exists() and session.summary() == []


def test_results_are_judged_against_the_test_bounds(tmp_path: Path) -> None:
    session = _session(tmp_path)
    failure = _test(session, "t.py::test_a", [result([0.010] * 50), result([0.0001] * 50)],
                    bounds=["p50 < 1ms", "success_ratio >= 0.9"])
    assert isinstance(failure, SLOFailure) and len(failure.failed) == 1
    assert "p50 < 1ms: FAIL" in str(failure)
    slow, fast = session.entries
    assert [(v.slo, v.outcome) for v in slow.slo] == [("p50 < 1ms", "fail"),
                                                      ("success_ratio >= 0.9", "pass")]
    assert {v.outcome for v in fast.slo} == {"pass"}


def test_the_test_own_slo_failure_gives_the_verdicts(tmp_path: Path) -> None:
    session = _session(tmp_path)
    r = result([0.010] * 50)
    with pytest.raises(SLOFailure) as raised:
        r.check("p50 < 1ms")
    assert _test(session, "t.py::test_a", [r], error=raised.value) is None
    (entry,) = session.entries
    assert [(v.slo, v.outcome) for v in entry.slo] == [("p50 < 1ms", "fail")]


def test_a_workload_repeated_in_a_test_gets_a_key_per_repetition(tmp_path: Path) -> None:
    session = _session(tmp_path)
    _test(session, "t.py::test_a", [result([0.01] * 20) for _ in range(3)])
    _test(session, "t.py::test_b", [result([0.01] * 20)])
    keys = [e.key for e in session.entries]
    assert len(set(keys)) == 4
    assert [e.identity.get("repeat", 0) for e in session.entries] == [0, 1, 2, 0]


def test_forgotten_results_are_not_judged(tmp_path: Path) -> None:
    session = _session(tmp_path)
    session.add_result("t.py::test_a", result([0.01] * 20))
    session.forget("t.py::test_a")
    assert session.end_test("t.py::test_a", bounds=[], error=None) is None
    assert session.entries == []


def test_records_are_written_per_result(tmp_path: Path) -> None:
    session = _session(tmp_path, records_dir=tmp_path / "records")
    _test(session, "t.py::test_a[x]", [result([0.01] * 5), result([0.02] * 3)])
    files = sorted(p.name for p in (tmp_path / "records").iterdir())
    assert files == ["t.py__test_a_x_.0.csv", "t.py__test_a_x_.1.csv"]
    assert len((tmp_path / "records" / files[1]).read_text().splitlines()) == 1 + 3


def test_a_session_saves_one_run(tmp_path: Path) -> None:
    session = _session(tmp_path, run_name="nightly")
    _test(session, "t.py::test_a", [result([0.01] * 20)])
    asked: list[bool] = []

    def metadata() -> dict[str, Any]:
        asked.append(True)
        return {"ci": "yes"}

    assert session.finish(metadata=metadata) is False and asked == [True]
    (run,) = History.at(tmp_path / "h.json").runs()
    assert run.name == "nightly" and run.metadata == {"ci": "yes"} and len(run.entries) == 1
    (message,) = session.messages
    assert message.severity == "info" and message.text.startswith(f"saved run {run.run_id} "
                                                                   "(nightly) with 1 result(s)")
    unsaved = _session(tmp_path / "other", save=False)
    _test(unsaved, "t.py::test_a", [result([0.01] * 20)])
    assert unsaved.finish(metadata=metadata) is False and asked == [True]
    assert not (tmp_path / "other").exists()


def test_compare_without_a_baseline_follows_its_policy(tmp_path: Path) -> None:
    for policy, fails in (("warn", False), ("fail", True), ("pass", False)):
        session = _session(tmp_path / policy, compare="last", no_baseline=policy)
        _test(session, "t.py::test_a", [result([0.01] * 20)])
        assert session.finish() is fails
        texts = [m for m in session.messages if "NOT COMPARED" in m.text]
        severity = {"warn": ["warning"], "fail": ["error"], "pass": []}[policy]
        assert [m.severity for m in texts] == severity
        assert session.comparison is not None and session.comparison.compared == 0


def test_a_regression_fails_the_session_and_shows_in_the_summary(tmp_path: Path) -> None:
    first = _session(tmp_path)
    _test(first, "t.py::test_a", [result([0.010] * 300)])
    first.finish()
    second = _session(tmp_path, compare="last", thresholds="p50:10%")
    _test(second, "t.py::test_a", [result([0.020] * 300)])
    assert second.finish() is True
    lines = second.summary()
    headings = [line.text for line in lines if line.heading]
    assert headings == ["servebench summary", "servebench compare (baseline: last)"]
    assert SummaryLine("1 regression(s)", colour="red") in lines
    assert any("REGRESSION" in line.text for line in lines)
    assert lines[-1].text.startswith("servebench info: saved run")


def test_an_unusable_history_is_an_error_message(tmp_path: Path) -> None:
    (tmp_path / "h.json").mkdir()
    session = _session(tmp_path, compare="last")
    _test(session, "t.py::test_a", [result([0.01] * 20)])
    assert session.finish() is True
    (message,) = session.messages
    assert message.severity == "error" and "is a directory" in message.text
    assert SummaryLine(f"servebench error: {message.text}", colour="red") in session.summary()


def test_a_bad_baseline_reference_is_an_error_message(tmp_path: Path) -> None:
    session = _session(tmp_path, compare="nosuchrun", save=False)
    _test(session, "t.py::test_a", [result([0.01] * 20)])
    assert session.finish() is True
    assert session.messages == [Message(
        "error", "--servebench-compare: no run with id or name 'nosuchrun' in the history")]


def test_workers_hand_their_entries_to_the_controller(tmp_path: Path) -> None:
    worker = _session(tmp_path)
    _test(worker, "t.py::test_a", [result([]), result([0.01] * 20)], bounds=["p50 < 1s"])
    output = json.loads(json.dumps(worker.worker_output(), allow_nan=False))  # as execnet would
    controller = _session(tmp_path)
    controller.add_worker_output(output)
    assert [e.to_json() for e in controller.entries] == [e.to_json() for e in worker.entries]
    assert controller.finish() is False
    assert len(History.at(tmp_path / "h.json").runs()[0].entries) == 2


def test_a_passing_check_in_the_test_gives_its_verdicts(tmp_path: Path) -> None:
    """The fixture's results remember their own ``check`` calls: a test that checks its
    result itself shows "pass" (it showed "-"), and marker bounds add to them."""
    from pytest_servebench.fixture import CheckedResult

    session = _session(tmp_path)
    checked = CheckedResult.of(result([0.010] * 50))
    checked.check("p50 < 1s")
    assert _test(session, "t.py::test_a", [checked], bounds=["success_ratio >= 0.9"]) is None
    (entry,) = session.entries
    assert [(v.slo, v.outcome) for v in entry.slo] == [("success_ratio >= 0.9", "pass"),
                                                      ("p50 < 1s", "pass")]
    (row,) = [line.text for line in session.summary() if "test_a" in line.text]
    assert row.endswith("pass")
