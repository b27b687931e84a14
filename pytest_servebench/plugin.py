"""pytest wiring only: options, markers, fixtures and hooks. Measuring code lives elsewhere and
is imported lazily so that loading the plugin costs every pytest run next to nothing."""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .deployments import servebench_deploy  # noqa: F401 - a fixture: found by being here
from .options import BUILTIN_TARGETS
from .settings import DRIVERS

if TYPE_CHECKING:
    from .cost import CostEstimate
    from .fixture import Servebench
    from .pricebook import PriceBook
    from .result import Result
    from .session import BenchSession
    from .settings import Settings
    from .target import Target


SESSION_KEY = pytest.StashKey["BenchSession"]()
PRICES_KEY = pytest.StashKey["PriceBook"]()
BACKEND_KEY = pytest.StashKey[Any]()
BACKENDS = ("local", "docker", "aws")


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
    group.addoption("--servebench-late-threshold", default="5ms", metavar="DURATION",
                    help="a scheduled (open-loop, MMPP) request that leaves later than this "
                         "after its intended time is late (default 5ms)")
    group.addoption("--servebench-max-late-share", type=float, default=0.01, metavar="SHARE",
                    help="a scheduled run with more late requests than this share (beyond "
                         "chance) is INVALID: its load generator fell behind (default 0.01)")
    group.addoption("--servebench-prices", default=None, metavar="FILE",
                    help="price book JSON for cost metrics (default: $SERVEBENCH_PRICES, else "
                         "the bundled AWS us-east-1 on-demand book)")
    group.addoption("--servebench-history", default=None, metavar="PATH",
                    help="JSON history file (default: ini servebench_history, "
                         "$SERVEBENCH_HISTORY, else .servebench/history.json)")
    group.addoption("--servebench-save", default=None, metavar="NAME",
                    help="name this run in the history (runs are saved by default)")
    group.addoption("--servebench-no-save", action="store_true",
                    help="do not add this run to the history")
    group.addoption("--servebench-keep", type=int, default=None, metavar="N",
                    help="keep the last N runs of each test in the history (default 100)")
    group.addoption("--servebench-compare", nargs="?", const="last", default=None,
                    metavar="REF",
                    help="compare with a baseline and fail on regressions: last (default), a "
                         "run id or name, or median:N")
    group.addoption("--servebench-compare-fail", default=None, metavar="SPEC",
                    help="regression thresholds, e.g. p99:10%%,throughput:-5%%,"
                         "success_ratio:-0.01 (that is the default)")
    group.addoption("--servebench-no-baseline", choices=("warn", "fail", "pass"),
                    default="warn",
                    help="what a compared test without a baseline does (default: warn)")
    group.addoption("--servebench-compare-inconclusive", choices=("warn", "fail", "pass"),
                    default="warn",
                    help="what a compared metric that could be neither shown to regress nor "
                         "shown not to (too few samples, run-to-run noise) does (default: warn)")
    group.addoption("--servebench-backend", choices=BACKENDS, default="local",
                    help="where lambda/ec2/fargate/sagemaker targets run: local processes "
                         "(default; no Docker, no cloud), docker containers shaped like the "
                         "cloud, or aws (your account, through boto3: costs money)")
    group.addoption("--servebench-aws-region", default=None, metavar="REGION",
                    help="aws backend: the region (default: boto3's, e.g. AWS_REGION)")
    group.addoption("--servebench-aws-profile", default=None, metavar="PROFILE",
                    help="aws backend: a named profile of ~/.aws (default: boto3's chain)")
    group.addoption("--servebench-aws-role-arn", default=None, metavar="ARN",
                    help="aws backend: the functions' execution role (default: one made for "
                         "the run, logs only, removed at the end)")
    group.addoption("--servebench-aws-plan", action="store_true",
                    help="aws backend: deploy and send nothing; estimate what each test's runs "
                         "would cost (servebench aws plan)")
    group.addoption("--servebench-aws-budget-usd", type=float, default=1.0, metavar="USD",
                    help="aws backend: refuse any run whose estimated cost would take the "
                         "session past this many dollars (default 1.00)")
    group.addoption("--servebench-base-image", default=None, metavar="IMAGE",
                    help="BASE_IMAGE of the docker backend's images (default: python:3.11-slim "
                         "if present, else the offline base from `servebench base-image`)")
    group.addoption("--servebench-model", default="mobilenet_v2", metavar="TARGET",
                    help="what --target=lambda|ec2|fargate|sagemaker serves (default "
                         "mobilenet_v2; see `servebench build --help`)")
    group.addoption("--servebench-memory-mb", type=int, default=1024, metavar="MB",
                    help="memory size of --target=lambda (128..10240, default 1024)")
    group.addoption("--servebench-instance-type", default="c5.large", metavar="TYPE",
                    help="instance type of --target=ec2|sagemaker (default c5.large)")
    group.addoption("--servebench-task-size", default="1/2", metavar="VCPU/GB",
                    help="vCPU/memory GB of --target=fargate (default 1/2)")
    parser.addini("servebench_history", "path of the servebench JSON history", default="")
    group.addoption("--servebench-report", default=None, metavar="FILE",
                    help="write an HTML report of the session's results to FILE: figures, "
                         "SLO verdicts, the comparison, trends (needs matplotlib: the "
                         "[report] extra)")
    group.addoption("--servebench-records", default=None, metavar="DIR",
                    help="write each benchmarked test's per-request records as CSV into DIR")
    group.addoption("--servebench-xdist-group", choices=("module", "off"), default="module",
                    help="under xdist, keep each benchmark module on one worker (module, "
                         "default: -n switches --dist=load to loadgroup) or not (off)")
    group.addoption("--servebench-driver", choices=DRIVERS, default="inprocess",
                    help="who sends the requests: this process's engine (inprocess, default) "
                         "or Locust's master and workers (locust)")
    group.addoption("--servebench-workers", type=int, default=1, metavar="N",
                    help="Locust workers for --servebench-driver=locust (default 1), started "
                         "on this machine")
    group.addoption("--servebench-locust-master", default=None, metavar="HOST:PORT",
                    help="bind the Locust master there and start no local workers: run "
                         "'python -m pytest_servebench.locust_driver.runner worker --master "
                         "HOST:PORT' on the load machines (Locust's workers do not "
                         "authenticate: a private network only)")
    group.addoption("--servebench-locust-csv", default=None, metavar="PREFIX",
                    help="also write Locust's own CSV statistics (its rounded figures) to "
                         "PREFIX_stats.csv ...")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "slo(*bounds): service-level objectives every servebench result of the test must meet, "
        "e.g. @pytest.mark.slo('p99 < 200ms', 'success_ratio >= 0.999')",
    )
    config.addinivalue_line("markers", "docker: needs a Docker engine (container backend)")
    config.addinivalue_line("markers", "aws: needs real AWS: runs only with "
                                       "--servebench-backend=aws, skips otherwise")
    if config.getoption("servebench_aws_plan"):  # stand-ins are not measurements
        config.option.servebench_no_save = True
        config.option.servebench_compare = None
        config.option.servebench_report = None
    config.stash[SESSION_KEY] = _new_session(config)
    _settings(config)  # a bad setting is a usage error before anything is deployed
    from .options import check_options

    check_options(config, price_book=_price_book)
    from . import xdist

    config.pluginmanager.register(xdist, "servebench-xdist")


def _settings(config: pytest.Config) -> Settings:
    from .pacing import mode as pacing_mode
    from .settings import Settings
    from .workloads import parse_duration_s

    try:
        pacing_mode()  # SERVEBENCH_PACING
        return Settings(
            timeout_s=config.getoption("servebench_timeout"),
            time_limit_s=config.getoption("servebench_time_limit"),
            confidence=config.getoption("servebench_confidence"),
            point_estimates=config.getoption("servebench_slo_estimate") == "point",
            late_threshold_s=parse_duration_s(config.getoption("servebench_late_threshold")),
            max_late_share=config.getoption("servebench_max_late_share"),
            driver=config.getoption("servebench_driver"),
            workers=config.getoption("servebench_workers"),
            locust_master=config.getoption("servebench_locust_master"),
            locust_csv=config.getoption("servebench_locust_csv"),
        )
    except ValueError as exc:
        raise pytest.UsageError(f"servebench: {exc}") from exc


@pytest.hookimpl(tryfirst=True)  # before xdist's worker sends its collection to the controller
def pytest_collection_finish(session: pytest.Session) -> None:
    """``--target=NAME`` that nothing can provide is a usage error once collection has loaded
    every conftest. Asking the hook would deploy the target, so this only looks at who
    implements it: when no plugin or conftest other than this one does, only the built-in
    names can exist. Otherwise a name none of them provides is reported when the target
    fixture asks for it (the same usage error, at the first test that uses it)."""
    config = session.config
    name = config.getoption("servebench_target")
    if not name or name in BUILTIN_TARGETS:
        return
    others = [impl for impl in config.pluginmanager.hook.pytest_servebench_make_target
              .get_hookimpls()
              if impl.function is not pytest_servebench_make_target
              and not (impl.hookwrapper or impl.wrapper)]
    if others:
        return
    from .options import unknown_target

    if hasattr(config, "workerinput"):
        # A usage error raised in an xdist worker reaches the controller as an INTERNALERROR.
        # Instead the worker hands over no tests and asks the session to stop with the message;
        # the controller turns that stop into the usage error's exit status (sessionfinish).
        session.items.clear()
        session.shouldstop = unknown_target(name)
        return
    raise pytest.UsageError(unknown_target(name))


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str,
                              obj: object) -> Generator[None, Any, Any]:
    """A test with a malformed ``@pytest.mark.slo`` becomes a collection error of its own,
    reported once with the bound and why (as pytest reports a malformed ``parametrize``), so
    the session stops before anything is deployed instead of failing every test after its
    benchmark has run. The module's other tests are still collected, so every bad marker is
    reported in the same run."""
    made = yield
    if not isinstance(made, list):
        return made
    from .options import BadSLOMarker, slo_marker_problems

    good: list[Any] = []
    bad: list[tuple[str, list[str]]] = []
    for node in made:
        problems = slo_marker_problems(node) if isinstance(node, pytest.Item) else []
        if problems:
            bad.append((node.nodeid.partition("::")[2], problems))
        else:
            good.append(node)
    if not bad:
        return made
    if not good and all(problems == bad[0][1] for _, problems in bad):
        # The function's own marker: once, not once per parameter.
        test = f"{collector.nodeid}::{name}".partition("::")[2]
        bad = [(test, bad[0][1])]
    lines = [f"{test}: {problem}" for test, problems in bad for problem in problems]
    return [*good, BadSLOMarker.from_parent(collector, name=name, problems=lines)]


def _backend(config: pytest.Config) -> Any:
    """The session's backend, started on first use and closed when pytest exits (Ctrl-C
    included: ``pytest_unconfigure`` runs then too)."""
    if BACKEND_KEY not in config.stash:
        config.stash[BACKEND_KEY] = _new_backend(config)
    return config.stash[BACKEND_KEY]


def _new_backend(config: pytest.Config) -> Any:
    if config.getoption("servebench_backend") == "aws":
        from .backends.aws import AwsBackend, AwsBackendError
        from .backends.aws.budget import Budget

        try:
            return AwsBackend(region=config.getoption("servebench_aws_region"),
                              profile=config.getoption("servebench_aws_profile"),
                              role_arn=config.getoption("servebench_aws_role_arn"),
                              budget=Budget(config.getoption("servebench_aws_budget_usd")),
                              price_book=_price_book(config),
                              plan=config.getoption("servebench_aws_plan"))
        except (AwsBackendError, ValueError) as exc:
            raise pytest.UsageError(f"--servebench-backend=aws: {exc}") from exc
        except Exception as exc:  # botocore's ProfileNotFound, NoRegionError...
            raise pytest.UsageError(f"--servebench-backend=aws: {type(exc).__name__}: "
                                    f"{exc}") from exc
    if config.getoption("servebench_backend") == "docker":
        from .backends.docker import DockerBackend
        from .backends.docker.engine import EngineError

        try:
            return DockerBackend(base_image=config.getoption("servebench_base_image"))
        except EngineError as exc:
            raise pytest.UsageError(f"--servebench-backend=docker: {exc}") from exc
    from .backends.local import LocalBackend

    return LocalBackend()


def pytest_sessionstart(session: pytest.Session) -> None:
    from .progress import set_status_lines

    set_status_lines(_status_lines(session.config))


def pytest_unconfigure(config: pytest.Config) -> None:
    from .progress import set_status_lines

    set_status_lines(None)
    backend = config.stash.get(BACKEND_KEY, None)
    if backend is not None:
        del config.stash[BACKEND_KEY]
        backend.close()


def _backend_target(config: pytest.Config, name: str) -> Target:
    backend = _backend(config)
    model = config.getoption("servebench_model")
    try:
        if name == "lambda":
            target: Target = backend.function(model,
                                              memory_mb=config.getoption("servebench_memory_mb"))
            return target
        if name == "fargate":
            from .options import task_size

            vcpu, gb = task_size(config.getoption("servebench_task_size"))
            target = backend.server(model, platform="fargate", vcpu=vcpu, memory_gb=gb)
            return target
        target = backend.server(model, platform=name,
                                instance_type=config.getoption("servebench_instance_type"))
        return target
    except (ValueError, LookupError) as exc:
        raise pytest.UsageError(f"--target={name}: {exc}") from exc


@pytest.hookimpl(trylast=True)
def pytest_servebench_make_target(
    config: pytest.Config, name: str
) -> contextlib.AbstractContextManager[Target] | None:
    if name in ("lambda", "ec2", "fargate", "sagemaker"):
        return contextlib.nullcontext(_backend_target(config, name))
    if name != "http":
        return None
    url = config.getoption("servebench_url")
    if not url:
        raise pytest.UsageError("--target=http needs --servebench-url=URL")
    from .backends.http import HttpTarget

    return contextlib.nullcontext(HttpTarget(url))


def _price_book(config: pytest.Config) -> PriceBook:
    if PRICES_KEY not in config.stash:
        from .options import prices_source
        from .pricebook import PriceBookError, load_price_book

        source, path = prices_source(config)
        try:
            config.stash[PRICES_KEY] = load_price_book(path)
        except PriceBookError as exc:
            raise pytest.UsageError(f"{source}: {exc}" if path else f"servebench: {exc}") \
                from exc
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
        from .options import unknown_target

        raise pytest.UsageError(unknown_target(name))
    with manager as target:
        yield target


@pytest.fixture(scope="session")
def servebench_backend(pytestconfig: pytest.Config) -> Any:
    """The session's backend (``--servebench-backend``, default local) for tests that deploy
    their own targets::

        def test_memory_sizes(servebench, servebench_backend):
            for mb in (512, 1024, 2048):
                fn = servebench_backend.function("mobilenet_v2", memory_mb=mb)
                servebench.run(ClosedLoop(concurrency=1, requests=50), payload=jpeg, target=fn)

    Everything it starts is stopped when the session ends.
    """
    return _backend(pytestconfig)


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

    guard = None
    if config.getoption("servebench_backend") == "aws":
        # The budget guard: a run on AWS is estimated and admitted before anything is sent.
        guard = _backend(config).guard(nodeid)
    return Servebench(target=servebench_target, settings=servebench_settings,
                      on_result=on_result, pricer=pricer, guard=guard,
                      progress=_progress(config, nodeid))


def _status_lines(config: pytest.Config) -> Any:
    """Progress lines by label for long steps outside a run (model and image builds), on the
    same terms as a run's progress; None where they would not show."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or config.get_verbosity() < 0 or hasattr(config, "workerinput"):
        return None
    capture = config.pluginmanager.get_plugin("capturemanager")

    def line(label: str) -> Any:
        from .progress import on_terminal

        return on_terminal(reporter, capture, label)

    return line


def _progress(config: pytest.Config, nodeid: str) -> Any:
    """Live progress of a test's runs through the terminal reporter; none under -q or in an
    xdist worker (whose output the controller does not show as it comes)."""
    lines = _status_lines(config)
    if lines is None:
        return None

    def show(workload: str) -> Any:
        return lines(f"{nodeid} {workload}")

    return show


def pytest_runtest_setup(item: pytest.Item) -> None:
    if (item.get_closest_marker("aws") is not None
            and item.config.getoption("servebench_backend") != "aws"):
        pytest.skip("needs real AWS: run with --servebench-backend=aws (credentials and region "
                    "from boto3's chain, or --servebench-aws-profile/--servebench-aws-region; "
                    "see the README's AWS section)")


@pytest.hookimpl(trylast=True)
def pytest_servebench_result(config: pytest.Config, nodeid: str, result: Result) -> None:
    """The plugin's own use of its hook: the result waits in the session for its test's
    verdicts, and becomes a history entry when the test's call ends (``pytest_runtest_call``)."""
    config.stash[SESSION_KEY].add_result(nodeid, result)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[
        None, object, object]:
    # Results a test leaves uncollected (from its teardown, or a setup that failed before its
    # call) are dropped with it.
    bench = item.config.stash[SESSION_KEY]
    bench.forget(item.nodeid)
    try:
        return (yield)
    finally:
        bench.forget(item.nodeid)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    error: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        error = exc
    bounds = [b for mark in item.iter_markers("slo") for b in mark.args]
    bench = item.config.stash[SESSION_KEY]
    before = len(bench.entries)
    failure = bench.end_test(item.nodeid, bounds=bounds, error=error)
    if len(bench.entries) > before:  # JUnit XML <properties>, as record_property adds them
        from .ci import item_properties

        item.user_properties.extend(item_properties(bench.entries[before:]))
    if error is not None:
        from .backends.base import Unsupported

        if isinstance(error, Unsupported):  # a limit of where the run happens, said as such
            pytest.skip(str(error))
        raise error
    if failure is not None:
        raise failure
    return None


def _history_path(config: pytest.Config) -> Path:
    import os

    from .history import DEFAULT_PATH

    raw = (config.getoption("servebench_history") or config.getini("servebench_history")
           or os.environ.get("SERVEBENCH_HISTORY") or DEFAULT_PATH)
    path = Path(raw)
    return path if path.is_absolute() else Path(config.rootpath) / path


def _new_session(config: pytest.Config) -> BenchSession:
    from .session import BenchSession, SessionOptions

    records = config.getoption("servebench_records")
    return BenchSession(SessionOptions(
        history_path=_history_path(config),
        compare=config.getoption("servebench_compare"),
        thresholds=config.getoption("servebench_compare_fail"),
        no_baseline=config.getoption("servebench_no_baseline"),
        inconclusive=config.getoption("servebench_compare_inconclusive"),
        save=not config.getoption("servebench_no_save"),
        run_name=config.getoption("servebench_save"),
        keep=config.getoption("servebench_keep"),
        records_dir=Path(records) if records else None,
        report_path=_report_path(config)))


def _report_path(config: pytest.Config) -> Path | None:
    """``--servebench-report``'s file (from the invocation directory); without matplotlib,
    a usage error now rather than a missing report at the end."""
    raw = config.getoption("servebench_report")
    if not raw:
        return None
    from .htmlreport import MissingMatplotlib, require_matplotlib

    try:
        require_matplotlib()
    except MissingMatplotlib as exc:
        raise pytest.UsageError(f"--servebench-report: {exc}") from None
    if Path(raw).is_dir():
        raise pytest.UsageError(f"--servebench-report={raw}: expected a file, but that is a "
                                "directory")
    return Path(raw).resolve()


def _metadata(config: pytest.Config) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    config.hook.pytest_servebench_update_metadata(config=config, metadata=metadata)
    return metadata


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    dsession = config.pluginmanager.getplugin("dsession")  # the xdist controller
    if dsession is not None and str(getattr(dsession, "shouldstop", "")).startswith(
            "--target="):  # a worker found the target unknown (pytest_collection_finish)
        session.exitstatus = pytest.ExitCode.USAGE_ERROR
    bench = config.stash[SESSION_KEY]
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller writes the one run
        workeroutput["servebench_entries"] = bench.worker_output()
        return
    if bench.finish(metadata=lambda: _metadata(config)) \
            and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    import os

    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary and bench.entries:  # GitHub Actions' job summary
        from .ci import append_step_summary

        try:
            append_step_summary(step_summary, bench.entries)
        except OSError as exc:
            from .session import Message

            bench.messages.append(Message("warning", f"GITHUB_STEP_SUMMARY: {exc}"))


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_json(config: pytest.Config, benchmarks: Any,
                                 output_json: dict[str, Any]) -> None:
    """pytest-benchmark's JSON (``--benchmark-json``, ``--benchmark-autosave``) also holds
    this session's servebench results, group ``servebench`` (see ``ci``)."""
    bench = config.stash.get(SESSION_KEY, None)
    if bench is not None and bench.entries:
        from .ci import pytest_benchmark_entries

        output_json.setdefault("benchmarks", []).extend(pytest_benchmark_entries(bench.entries))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    output = getattr(node, "workeroutput", {})
    node.config.stash[SESSION_KEY].add_worker_output(output.get("servebench_entries", []))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if (item.config.getoption("servebench_aws_plan") and report.when == "call"
            and not report.skipped):
        # A plan hands the test stand-ins, not measurements: what it asserts means nothing,
        # passed or failed.
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0,
                           "planned (the test's checks do not apply to a plan's stand-ins)")
    return report


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    backend = config.stash.get(BACKEND_KEY, None)
    if config.getoption("servebench_aws_plan") and backend is not None:
        from .backends.aws.plan import plan_lines

        terminalreporter.write_sep("=", "servebench aws plan (nothing was deployed or sent)")
        for text in plan_lines(backend.planned, budget_usd=backend.budget.limit_usd):
            terminalreporter.write_line(text)
        return  # the session's table would show the stand-ins as if measured
    if SESSION_KEY not in config.stash:
        return
    import sys

    from .report import DEFAULT_WIDTH

    # A terminal narrower than 120 columns would wrap the table; a log or a pipe does not.
    width = DEFAULT_WIDTH
    if sys.stdout.isatty():
        width = min(width, config.get_terminal_writer().fullwidth)
    bills = getattr(backend, "bills", ())  # servers terminated by now: launch to termination
    for line in config.stash[SESSION_KEY].summary(width=width,
                                                  verbose=config.get_verbosity() > 0,
                                                  bills=bills):
        if line.heading:
            terminalreporter.write_sep("=", line.text)
        else:
            terminalreporter.write_line(line.text, **({line.colour: True} if line.colour
                                                      else {}))
