"""pytest wiring only: options, markers, fixtures and hooks. Measuring code lives elsewhere and
is imported lazily so that loading the plugin costs every pytest run next to nothing."""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .cost import CostEstimate
    from .fixture import Servebench
    from .pricebook import PriceBook
    from .report import SummaryRow
    from .result import Result
    from .settings import Settings
    from .slo import Verdict
    from .target import Target


@dataclass
class _SessionState:
    rows: list[SummaryRow] = field(default_factory=list)


STATE_KEY = pytest.StashKey[_SessionState]()
PRICES_KEY = pytest.StashKey["PriceBook"]()
BENCH_KEY = pytest.StashKey["Servebench"]()
BUILTIN_TARGETS = ("http",)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspec

    pluginmanager.add_hookspecs(hookspec)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("servebench", "model-serving benchmarks (pytest-servebench)")
    group.addoption("--target", dest="servebench_target", default=None, metavar="NAME",
                    help="serving target for the servebench fixture, e.g. http, lambda, ec2")
    group.addoption("--servebench-url", default=None, metavar="URL",
                    help="endpoint for --target=http; each payload is POSTed to it")
    group.addoption("--servebench-timeout", type=float, default=30.0, metavar="SECONDS",
                    help="per-request timeout (default 30)")
    group.addoption("--servebench-time-limit", type=float, default=600.0, metavar="SECONDS",
                    help="upper bound on the length of one run (default 600)")
    group.addoption("--servebench-confidence", type=float, default=0.95, metavar="LEVEL",
                    help="confidence level of percentile intervals and SLO verdicts (0.95)")
    group.addoption("--servebench-slo-estimate", choices=("interval", "point"),
                    default="interval",
                    help="judge percentile SLOs on the whole confidence interval (default) or "
                         "on the point estimate")
    group.addoption("--servebench-prices", default=None, metavar="FILE",
                    help="price book JSON for cost metrics (default: $SERVEBENCH_PRICES, else "
                         "the bundled AWS us-east-1 on-demand book)")
    group.addoption("--servebench-records", default=None, metavar="DIR",
                    help="write each benchmarked test's per-request records as CSV into DIR")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "slo(*bounds): service-level objectives every servebench result of the test must meet, "
        "e.g. @pytest.mark.slo('p99 < 200ms', 'success_ratio >= 0.999')",
    )
    config.addinivalue_line("markers", "docker: needs a Docker engine (container backend)")
    config.addinivalue_line("markers", "aws: talks to AWS (or moto standing in for it)")
    config.stash[STATE_KEY] = _SessionState()


def _settings(config: pytest.Config) -> Settings:
    from .settings import Settings

    try:
        return Settings(
            timeout_s=config.getoption("servebench_timeout"),
            time_limit_s=config.getoption("servebench_time_limit"),
            confidence=config.getoption("servebench_confidence"),
            point_estimates=config.getoption("servebench_slo_estimate") == "point",
        )
    except ValueError as exc:
        raise pytest.UsageError(f"servebench: {exc}") from exc


@pytest.hookimpl(trylast=True)
def pytest_servebench_make_target(
    config: pytest.Config, name: str
) -> contextlib.AbstractContextManager[Target] | None:
    if name != "http":
        return None
    url = config.getoption("servebench_url")
    if not url:
        raise pytest.UsageError("--target=http needs --servebench-url=URL")
    from .backends.http import HttpTarget

    return contextlib.nullcontext(HttpTarget(url))


def _price_book(config: pytest.Config) -> PriceBook:
    if PRICES_KEY not in config.stash:
        import os

        from .pricebook import PriceBookError, load_price_book

        path = config.getoption("servebench_prices") or os.environ.get("SERVEBENCH_PRICES")
        try:
            config.stash[PRICES_KEY] = load_price_book(path)
        except PriceBookError as exc:
            raise pytest.UsageError(f"servebench: {exc}") from exc
    return config.stash[PRICES_KEY]


@pytest.hookimpl(trylast=True)
def pytest_servebench_price(config: pytest.Config, result: Result) -> CostEstimate | None:
    from .cost import price_result

    return price_result(result, _price_book(config))


@pytest.fixture(scope="session")
def servebench_settings(pytestconfig: pytest.Config) -> Settings:
    """The session's run settings (timeouts, confidence, SLO judging)."""
    return _settings(pytestconfig)


@pytest.fixture(scope="session")
def servebench_target(pytestconfig: pytest.Config) -> Iterator[Target | None]:
    """The target chosen with ``--target``, provisioned once per session; None without one."""
    name = pytestconfig.getoption("servebench_target")
    if not name:
        yield None
        return
    manager = pytestconfig.hook.pytest_servebench_make_target(config=pytestconfig, name=name)
    if manager is None:
        raise pytest.UsageError(
            f"--target={name}: no backend provides this target "
            f"(built in: {', '.join(BUILTIN_TARGETS)}; plugins add more)"
        )
    with manager as target:
        yield target


@pytest.fixture
def servebench(
    request: pytest.FixtureRequest, servebench_settings: Settings,
    servebench_target: Target | None,
) -> Servebench:
    """Run workloads against a serving target; results are judged against ``@pytest.mark.slo``
    and listed in the session summary.

    Example::

        @pytest.mark.slo("p99 < 50ms", "success_ratio >= 0.99")
        def test_ping(servebench):
            servebench.run(ClosedLoop(concurrency=4, requests=500), payload=b"ping")
    """
    from .fixture import Servebench

    config = request.config
    nodeid = request.node.nodeid

    def on_result(result: Any) -> None:
        config.hook.pytest_servebench_result(config=config, nodeid=nodeid, result=result)

    def pricer(result: Result) -> CostEstimate | None:
        estimate: CostEstimate | None = config.hook.pytest_servebench_price(config=config,
                                                                            result=result)
        return estimate

    bench = Servebench(target=servebench_target, settings=servebench_settings,
                       on_result=on_result, pricer=pricer)
    request.node.stash[BENCH_KEY] = bench
    return bench


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    error: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        error = exc
    bench = item.stash.get(BENCH_KEY, None)
    if bench is None or not bench.results:
        if error is not None:
            raise error
        return None
    from .report import SummaryRow
    from .slo import SLOFailure

    bounds = [b for mark in item.iter_markers("slo") for b in mark.args]
    state = item.config.stash[STATE_KEY]
    failed: list[Verdict] = []
    for result in bench.results:
        verdicts: list[Verdict] = []
        if bounds:
            try:
                verdicts = result.check(*bounds)
            except SLOFailure as exc:
                verdicts, failed = exc.verdicts, failed + exc.failed
        elif isinstance(error, SLOFailure):
            verdicts = error.verdicts
        state.rows.append(SummaryRow.of(item.nodeid, result, verdicts))
    _export_records(item, bench)
    if error is not None:
        raise error
    if failed:
        raise SLOFailure(failed, failed)
    return None


def _export_records(item: pytest.Item, bench: Servebench) -> None:
    out = item.config.getoption("servebench_records")
    if not out:
        return
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in item.nodeid)
    for i, result in enumerate(bench.results):
        (directory / f"{safe}.{i}.csv").write_text(result.records_csv())


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: hand our rows to the controller
        workeroutput["servebench_rows"] = [r.to_dict() for r in
                                           session.config.stash[STATE_KEY].rows]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    from .report import SummaryRow

    rows = getattr(node, "workeroutput", {}).get("servebench_rows", [])
    node.config.stash[STATE_KEY].rows.extend(SummaryRow.from_dict(r) for r in rows)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    rows = config.stash[STATE_KEY].rows if STATE_KEY in config.stash else []
    if not rows:
        return
    from .report import render_table

    terminalreporter.write_sep("=", "servebench summary")
    for line in render_table(sorted(rows, key=lambda r: r.nodeid)):
        terminalreporter.write_line(line)
