"""``servebench report``."""

from __future__ import annotations

import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

from pytest_servebench.cli import main
from pytest_servebench.history import History

from .report_data import study_runs

needs_matplotlib = pytest.mark.skipif(
    find_spec("matplotlib") is None,
    reason="matplotlib is not installed (the [report] extra; [dev] includes it)")


def test_the_report_group_adds_its_command() -> None:
    import argparse

    from pytest_servebench.cli import report

    sub = argparse.ArgumentParser().add_subparsers()
    report.add_parser(sub)
    assert sorted(sub.choices or ()) == ["report"]


@pytest.fixture
def history(tmp_path: Path) -> Path:
    path = tmp_path / "history.json"
    h = History.at(path)
    for i, run in enumerate(study_runs(3)):
        h.append(run if i != 1 else type(run)(**{**run.__dict__, "name": "second"}))
    return path


@needs_matplotlib
def test_report_of_the_newest_run_compared_with_the_one_before(
        history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.html"
    assert main(["report", "--history", str(history), "--fail", "p50:10%", "-o",
                 str(out)]) == 0
    assert f"servebench: wrote {out} (run run02, 9 results," in capsys.readouterr().out
    page = out.read_text()
    assert "<b>run</b> run02" in page
    assert "Baseline: <b>last</b>. 9 result(s) compared" in page
    # 30% slower; the one cold request cannot bound its p50.
    assert "Metrics: 8 regression, 0 improvement, 0 unchanged, 1 inconclusive" in page
    assert page.count('<span class="badge regression">regression</span>') == 8
    assert "the interval is unbounded at this sample size" in page


@needs_matplotlib
def test_report_of_a_named_run_without_comparison(history: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    assert main(["report", "--history", str(history), "--run", "second", "--baseline", "none",
                 "--trend-runs", "2", "-o", str(out)]) == 0
    page = out.read_text()
    assert "<b>run</b> run01 (second)" in page and "Comparison with the baseline" not in page
    assert "<h3>History</h3>" in page  # run00 and run01


@needs_matplotlib
def test_the_first_run_has_nothing_to_compare_with(history: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    assert main(["report", "--history", str(history), "--run", "run00", "-o", str(out)]) == 0
    page = out.read_text()
    assert "Comparison with the baseline" not in page and "<h3>History</h3>" not in page


@needs_matplotlib
@pytest.mark.parametrize(("args", "message"), [
    (["--run", "nope"], "no run with id or name 'nope' in the history"),
    (["--trend-runs", "0"], "--trend-runs needs N >= 1"),
    (["--baseline", "median:x"], "cannot read 'median:x': expected median:N"),
])
def test_usage_errors(history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                      args: list[str], message: str) -> None:
    out = tmp_path / "r.html"
    with pytest.raises(SystemExit) as exc:
        main(["report", "--history", str(history), *args, "-o", str(out)])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@needs_matplotlib
def test_an_empty_or_unreadable_history(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["report", "--history", str(tmp_path / "none.json"), "-o", str(tmp_path / "r")])
    assert "holds no runs: nothing to report" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["report", "--history", str(bad), "-o", str(tmp_path / "r")]) == 2
    assert "is not valid JSON" in capsys.readouterr().err


def test_without_matplotlib_the_command_says_what_to_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # find_spec then finds nothing
    assert main(["report", "--history", str(tmp_path / "h.json"), "-o",
                 str(tmp_path / "r.html")]) == 2
    assert "pip install 'pytest-servebench[report]'" in capsys.readouterr().err
