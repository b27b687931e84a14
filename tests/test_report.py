"""The end-of-session table: it fits its width, groups rows by module, shortens ids without
making two read the same, shows cold-start and cost columns only when a result has them, and
the wide table keeps everything."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import pytest

from pytest_servebench.cost import CostEstimate
from pytest_servebench.history import Entry, StoredColdStarts, make_entry
from pytest_servebench.report import render_summary, shorten, shorten_unique

from .loopback import LoopbackServer
from .synthetic import result

SWEEP = "suites/test_000_mobilenet_cost.py::test_concurrency_sweep"


def _entry(nodeid: str, *, target: str = "ec2:t4g.medium:mobilenet_v2",
           workload: str = "closed(c=16, 64 req)") -> Entry:
    made = make_entry(nodeid, result([0.01, 0.02, 0.03] * 20), [], "local")
    return replace(made, target=target, workload={"str": workload})


def _sweep() -> list[Entry]:
    return [_entry(f"{SWEEP}[{kind}-{size}-concurrency={c}]", target=f"{kind}:{size}:mobilenet")
            for kind, size in (("ec2", "c5.large"), ("ec2", "t4g.medium"),
                               ("lambda", "1024"))
            for c in (1, 4, 16)]


def test_the_table_fits_120_columns_and_groups_by_module() -> None:
    entries = [*_sweep(), _entry("suites/test_003_lambda_vs_fargate.py::test_cold_starts")]
    lines = render_summary(entries)
    assert max(len(line) for line in lines) <= 120
    wide = render_summary(entries, verbose=True)
    assert max(len(line) for line in wide) > 120  # the wide table is the one that overflows
    assert "suites/test_000_mobilenet_cost.py" in lines
    assert "suites/test_003_lambda_vs_fargate.py" in lines
    assert "  test_concurrency_sweep" in lines  # the function once, its cases under it
    rows = [line for line in lines if line.startswith("    [")]
    assert len(rows) == 9
    ids = [row.split()[0] for row in rows]
    assert len(set(ids)) == 9, ids  # shortened, still one id per case
    assert ids[:3] == ["[ec2-c5.large-c=1]", "[ec2-c5.large-c=4]", "[ec2-c5.large-c=16]"]


def test_a_narrow_terminal_shortens_ids_in_the_middle_without_ambiguity() -> None:
    lines = render_summary(_sweep(), width=80)
    rows = [line for line in lines if line.startswith("    [")]
    ids = [row.split()[0] for row in rows]
    assert len(set(ids)) == len(ids) == 9
    assert all(line == line.rstrip() for line in lines)


def test_shorten_unique_grows_only_what_would_collide() -> None:
    texts = ["test_a[alpha-concurrency=16]", "test_a[gamma-concurrency=16]", "test_b"]
    out = shorten_unique(texts, 12)
    assert len(set(out)) == 3 and out[2] == "test_b"
    assert shorten("abcdefghij", 5) == "a…hij" and shorten("abc", 5) == "abc"
    assert shorten("abcdefghij", 8, keep_end=False) == "abcd…hij"


def test_cold_start_and_cost_columns_appear_when_a_result_has_them() -> None:
    plain = _entry("t.py::test_a")
    header = render_summary([plain])[0]
    assert "cold p50" not in header and "$/M req" not in header
    cold = replace(_entry("t.py::test_b"), cold_starts=StoredColdStarts(3, 0.812),
                   cost=CostEstimate(2.5e-6, "lambda", "by hand", "2024-01-01"))
    lines = render_summary([plain, cold])
    assert "cold p50" in lines[0] and "$/M req" in lines[0]
    (row_b,) = [line for line in lines if "test_b" in line]
    assert "812ms" in row_b and "$2.5" in row_b
    wide = render_summary([plain, cold], verbose=True)
    assert "cold n" in wide[0] and " 3 " in next(line for line in wide if "test_b" in line)
    (row_a,) = [line for line in lines if "test_a" in line]
    assert row_a.split()[-3:] == ["-", "-", "-"]  # no cold start, no cost, no verdict


def test_the_slo_column_shows_the_worst_verdict_and_repeats_are_numbered() -> None:
    r = result([0.01] * 50)
    verdicts = r.check("p50 < 1s")
    first = make_entry("t.py::test_twice", r, verdicts, "local")
    second = make_entry("t.py::test_twice", r, verdicts, "local", repeat=1)
    lines = render_summary([first, second])
    assert lines[2:4] == ["t.py", "  test_twice"]  # one test, two results: a heading
    assert [line.split()[0] for line in lines[4:6]] == ["#1", "#2"]
    assert lines[4].endswith("pass") and lines[5].endswith("pass")


def test_success_is_never_rounded_up_to_100_percent() -> None:
    almost = replace(_entry("t.py::test_a"), success_ratio=0.9996)
    none = replace(_entry("t.py::test_b"), success_ratio=math.nan)
    lines = render_summary([almost, none])
    assert "99.9%" in lines[3] and "100%" not in lines[3] and " n/a " in lines[4]
    assert lines[2] == "t.py" and lines[3].startswith("  test_a ")


LONG_IDS = """
import pytest
from pytest_servebench import ClosedLoop

@pytest.mark.parametrize("concurrency", [1, 2])
@pytest.mark.parametrize("a_rather_long_parameter_name", ["first-long-value", "second-value"])
def test_a_function_with_a_long_name_for_a_sweep(servebench, concurrency,
                                                  a_rather_long_parameter_name):
    servebench.run(ClosedLoop(concurrency=concurrency, requests=20), payload=b"x").check(
        "success_ratio >= 0.5")
"""


@pytest.mark.parametrize("verbose", [False, True], ids=["default", "-v"])
def test_pytest_prints_the_narrow_table_and_the_wide_one_with_v(
        pytester: pytest.Pytester, loopback: Callable[..., LoopbackServer],
        verbose: bool) -> None:
    server = loopback()
    pytester.makepyfile(test_sweep=LONG_IDS)
    result = pytester.runpytest_subprocess("--target=http", f"--servebench-url={server.url}",
                                           *(["-v"] if verbose else []))
    result.assert_outcomes(passed=4)
    lines = result.outlines
    start = lines.index(next(line for line in lines if "servebench summary" in line)) + 1
    table = lines[start:start + 2 + (4 if verbose else 6)]
    if verbose:
        assert max(map(len, table)) > 120
        assert sum("test_sweep.py::test_a_function_with_a_long_name_for_a_sweep[" in line
                   for line in table) == 4
    else:
        assert max(map(len, table)) <= 120, table
        assert table[2:4] == ["test_sweep.py",
                              "  test_a_function_with_a_long_name_for_a_sweep"]
        assert all(line.rstrip().endswith("pass") for line in table[4:])
