from __future__ import annotations

import json
import math
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_servebench.history import (
    SCHEMA_VERSION,
    Entry,
    History,
    HistoryError,
    make_entry,
    new_run,
    retain,
)

from .synthetic import result


def entry(nodeid: str = "t.py::test_a", latency_s: float = 0.01) -> Entry:
    return make_entry(nodeid, result([latency_s] * 50), [], "local")


def _writer(path: str, worker: int, runs: int) -> None:
    history = History.at(path)
    for i in range(runs):
        history.append(new_run([entry(f"t.py::w{worker}_{i}")], backend="local"), keep=0)


def test_parallel_writers_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "h.json")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 10)) for w in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    runs = History.at(path).runs()
    ids = {e.nodeid for r in runs for e in r.entries}
    assert len(runs) == 80 and len(ids) == 80


def test_writer_killed_mid_write_leaves_history_valid(tmp_path: Path) -> None:
    path = tmp_path / "h.json"
    History.at(path).append(new_run([entry()], backend="local"))
    before = path.read_text()
    # A writer that takes the lock and writes a huge run slowly, killed while writing.
    code = f"""
import json, os, time
from pytest_servebench import history as h
orig = json.dump
def slow_dump(obj, f, **kw):
    f.write('{{"schema_version": 1, "runs": [')
    f.flush()
    print("writing", flush=True)
    time.sleep(30)
json.dump = slow_dump
h.History.at({str(path)!r}).append(h.new_run([], backend="local"))
"""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert path.read_text() == before
    assert len(History.at(path).runs()) == 1
    # The lock died with the writer: the next writer goes through.
    History.at(path).append(new_run([entry()], backend="local"))
    assert len(History.at(path).runs()) == 2
    leftovers = [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]
    assert len(leftovers) <= 1  # the killed writer's temp file, never the history itself


@pytest.mark.parametrize(("content", "message"), [
    ("{broken", "is not valid JSON"),
    ('{"schema_version": 99, "runs": []}', "newer pytest-servebench"),
    ('{"runs": []}', "no schema_version"),
])
def test_unusable_history_is_reported_and_kept(tmp_path: Path, content: str,
                                               message: str) -> None:
    path = tmp_path / "h.json"
    path.write_text(content)
    history = History.at(path)
    with pytest.raises(HistoryError, match=message):
        history.runs()
    with pytest.raises(HistoryError, match=message):
        history.append(new_run([entry()], backend="local"))
    assert path.read_text() == content


def test_version_0_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "h.json"
    old_run = new_run([entry()], backend="local")
    path.write_text(json.dumps([old_run.to_json()]))  # version 0: a bare list of runs
    history = History.at(path)
    assert history.runs()[0].run_id == old_run.run_id
    history.append(new_run([entry()], backend="local"))
    data = json.loads(path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION and len(data["runs"]) == 2


def test_retention_keeps_last_n_per_key() -> None:
    runs = [new_run([entry("a"), entry("b")] if i % 2 else [entry("a")], backend="local")
            for i in range(10)]
    kept = retain(runs, 3)
    per_key: dict[str, int] = {}
    for r in kept:
        for e in r.entries:
            per_key[e.nodeid] = per_key.get(e.nodeid, 0) + 1
    assert per_key == {"a": 3, "b": 3}
    assert kept[-1].run_id == runs[-1].run_id


def test_run_metadata(tmp_path: Path) -> None:
    run = new_run([entry()], backend="local", name="nightly", metadata={"ci": "yes"})
    assert run.name == "nightly" and run.metadata == {"ci": "yes"}
    for key in ("cpu", "cores", "memory_gib", "os", "python", "packages"):
        assert key in run.machine
    assert set(run.git) == {"commit", "branch", "dirty"}
    e = run.entries[0]
    assert e.latency_s["p99"].value == pytest.approx(0.01)
    assert e.to_json()["histogram"]["counts"] == [50]
    assert time.strptime(run.created_utc[:19], "%Y-%m-%dT%H:%M:%S")


def test_history_under_a_file_is_reported_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the history's folder should be")
    history = History.at(blocker / "history.json")
    with pytest.raises(HistoryError, match=r"cannot be written.*was not saved"):
        history.append(new_run([entry()], backend="local"))
    assert blocker.read_text() == "a file where the history's folder should be"


def test_held_lock_is_reported_not_raised(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from filelock import FileLock

    import pytest_servebench.history as history_module

    path = tmp_path / "history.json"
    History.at(path).append(new_run([entry()], backend="local"))
    before = path.read_bytes()
    monkeypatch.setattr(history_module, "LOCK_TIMEOUT_S", 0.2)
    with FileLock(str(path) + ".lock"), pytest.raises(HistoryError, match="held its lock"):
        History.at(path).append(new_run([entry("t.py::other")], backend="local"))
    assert path.read_bytes() == before


def _no_bare_constants(text: str) -> Any:
    def refuse(name: str) -> None:
        raise AssertionError(f"the history holds a bare {name}: not strict JSON")

    return json.loads(text, parse_constant=refuse)


def test_the_history_is_strict_json(tmp_path: Path) -> None:
    """Undefined and unbounded numbers (a run that measured nothing: every percentile and its
    success ratio NaN, its intervals open) are written as null and read back as NaN and
    -inf/+inf."""
    failed = make_entry("t.py::test_down", result([]), [], "local")
    small = make_entry("t.py::test_small", result([0.01] * 3), [], "local")
    assert math.isnan(failed.latency_s["p50"].value) and math.isnan(failed.success_ratio)
    assert small.latency_s["p99"].high == math.inf
    path = tmp_path / "h.json"
    History.at(path).append(new_run([failed, small], backend="local"))
    stored = _no_bare_constants(path.read_text())["runs"][0]["entries"]
    assert stored[0]["latency_s"]["p50"] == {"value": None, "low": None, "high": None, "n": 0}
    assert stored[1]["latency_s"]["p99"]["high"] is None
    (run,) = History.at(path).runs()
    down, three = run.entries
    p50 = down.latency_s["p50"]
    assert math.isnan(p50.value) and p50.low == -math.inf and p50.high == math.inf
    assert math.isnan(down.success_ratio) and three.latency_s["p99"].high == math.inf
    assert three.latency_s["p50"] == small.latency_s["p50"]
    assert [e.to_json() for e in run.entries] == [failed.to_json(), small.to_json()]


def test_entries_read_back_as_they_were_written() -> None:
    from pytest_servebench.cost import CostEstimate
    from pytest_servebench.slo import parse_slo

    measured = result([0.01, 0.02, 0.03] * 20, errors=2).with_cost(
        CostEstimate(2e-6, "lambda", "by hand", "2024-01-01"))
    verdicts = measured.check(parse_slo("p50 < 1s"))
    e = make_entry("t.py::test_a", measured, verdicts, "local", repeat=2)
    again = Entry.from_json(json.loads(json.dumps(e.to_json(), allow_nan=False)))
    assert again.to_json() == e.to_json() and again.identity["repeat"] == 2
    assert again.histogram.count == e.histogram.count == 60
    assert again.value("p50") == e.value("p50")
    assert again.value("usd_per_million") == pytest.approx(2.0)
    assert [(v.slo, v.outcome) for v in again.slo] == [("p50 < 1s", "pass")]


def test_schema_2_with_bare_infinity_is_migrated(tmp_path: Path) -> None:
    """Schema 2 wrote NaN and Infinity bare; reading takes them as they were meant, the file
    is left as it is until the next run is added, which writes schema 3, strict."""
    run = new_run([entry("t.py::test_a")], backend="local").to_json()
    e = run["entries"][0]
    e["latency_s"]["max"]["high"] = math.inf
    e["latency_s"]["p999"] = {"value": 0.01, "low": 0.009, "high": math.inf, "n": 50}
    e["throughput_window"]["width_s"] = math.nan
    e["throughput"] = math.nan
    path = tmp_path / "h.json"
    path.write_text(json.dumps({"schema_version": 2, "runs": [run]}))
    before = path.read_text()
    assert "Infinity" in before and "NaN" in before
    (old,) = History.at(path).runs()
    assert old.entries[0].latency_s["p999"].high == math.inf
    assert math.isnan(old.entries[0].throughput) and old.entries[0].throughput_window is not None
    assert old.entries[0].throughput_window.rates() == []
    assert path.read_text() == before  # reading never rewrites
    History.at(path).append(new_run([entry("t.py::test_a")], backend="local"))
    data = _no_bare_constants(path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION == 3
    assert [r["run_id"] for r in data["runs"]] == [old.run_id, History.at(path).runs()[1].run_id]
    migrated = data["runs"][0]["entries"][0]
    assert migrated["latency_s"]["p999"]["high"] is None and migrated["throughput"] is None
    assert migrated["key"] == e["key"]


def test_an_entry_of_the_wrong_type_is_reported_when_used_and_kept(tmp_path: Path) -> None:
    from pytest_servebench.compare import compare_run, parse_thresholds

    run = new_run([entry()], backend="local").to_json()
    run["entries"][0]["count"] = "fifty"
    path = tmp_path / "h.json"
    path.write_text(json.dumps({"schema_version": SCHEMA_VERSION, "runs": [run]}))
    before = path.read_text()
    (old,) = History.at(path).runs()
    assert old.entries.key(0) == run["entries"][0]["key"]  # found without reading it
    with pytest.raises(HistoryError, match=r"h.json is not a pytest-servebench history: run 0: "
                                           r"entry 0: count is 'fifty', not a count; it was "
                                           r"left as it is"):
        old.entries[0]
    with pytest.raises(HistoryError, match="not a count"):
        compare_run([entry()], History.at(path).runs(), thresholds=parse_thresholds("p50:10%"))
    assert path.read_text() == before
    # Adding a run keeps what nobody read as it was (another version may know better).
    History.at(path).append(new_run([entry("t.py::test_b")], backend="local"))
    assert json.loads(path.read_text())["runs"][0]["entries"][0]["count"] == "fifty"


def test_a_run_is_found_by_id_or_newest_of_its_name(tmp_path: Path) -> None:
    from pytest_servebench.history import Entries, History, Run, find_run

    runs = [Run("id-old", "2026-11-25T10:00:00Z", Entries([entry()]), name="nightly"),
            Run("id-mid", "2026-11-25T11:00:00Z", Entries([entry()]), name="pr"),
            Run("id-new", "2026-11-25T12:00:00Z", Entries([entry()]), name="nightly")]
    assert find_run(runs, "nightly") == 2 and find_run(runs, "id-old") == 0
    assert find_run(runs, "pr") == 1 and find_run(runs, None) == 2
    with pytest.raises(LookupError, match="no run with id or name 'nope'"):
        find_run(runs, "nope")
    with pytest.raises(LookupError, match="holds no runs"):
        find_run([], None)
    history = History.at(tmp_path / "h.json")
    for run in runs:
        history.append(run)
    assert history.find("nightly").run_id == "id-new" and history.find().run_id == "id-new"
    with pytest.raises(LookupError, match=r"h\.json: no run with id or name 'x'"):
        history.find("x")
