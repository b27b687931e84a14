"""Shared fixtures for the study suites: the backend, the SLO config (``slo.toml``), quick or
full sizes, payloads, and a per-session store so each study's final test can compare the
results its cases measured in the same run.

``pytest suites/ --target=lambda`` (or ``ec2``, ``fargate``, ``sagemaker``) keeps only the cases
of that target; a finding that needs another target then skips and says which.
``--target=http --servebench-url=URL`` measures a running endpoint with the cases that can
(study 000's sweep).
"""

from __future__ import annotations

import os
import tomllib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from pytest_servebench import Estimate, Result

SLO_FILE = Path(__file__).with_name("slo.toml")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("servebench").addoption(
        "--servebench-full", action="store_true",
        help="study suites at the studies' own sizes (default: quick sizes for CI)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With --target, keep the cases of that target and the findings (which skip when their
    inputs were not measured)."""
    wanted = config.getoption("servebench_target")
    if not wanted:
        return
    keep, drop = [], []
    for item in items:
        marker = item.get_closest_marker("study_target")
        if marker is None or marker.args[0] == wanted:
            keep.append(item)
        else:
            drop.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "study_target(name): the platform a suite case measures "
                                       "(lambda, ec2, fargate, sagemaker, http); --target "
                                       "filters on it")


def merge_slo(doc: dict[str, Any], backend: str, mode: str, *,
              source: str = "slo.toml") -> dict[str, Any]:
    """The bounds and sizes of one backend and mode: ``[defaults]`` overlaid by the backend's
    section, each with its ``quick``/``full`` table. A key the backend names that the defaults
    do not know is a usage error (a misspelt bound would otherwise be ignored silently)."""
    if "defaults" not in doc:
        raise pytest.UsageError(f"{source} has no [defaults] section")
    defaults = dict(doc["defaults"])
    section = dict(doc.get(backend, {}))
    merged: dict[str, Any] = {}
    for sizes in ("quick", "full"):
        base = dict(defaults.pop(sizes, {}))
        override = dict(section.pop(sizes, {}))
        unknown = sorted(set(override) - set(base))
        if unknown:
            raise pytest.UsageError(f"{source} [{backend}.{sizes}] sets {', '.join(unknown)}, "
                                    f"which [defaults.{sizes}] does not have (misspelt?)")
        if sizes == mode:
            merged.update({**base, **override})
    unknown = sorted(set(section) - set(defaults))
    if unknown:
        raise pytest.UsageError(f"{source} [{backend}] sets {', '.join(unknown)}, which "
                                "[defaults] does not have (misspelt?)")
    return {**defaults, **section, **merged, "mode": mode}


def offline_aws_pair(environ: Mapping[str, str] | None = None) -> bool:
    """Whether boto3's endpoint variables point the aws backend's Lambda somewhere other than
    AWS (the offline pair: moto and the local Lambda platform on this machine).

    >>> offline_aws_pair({"AWS_ENDPOINT_URL_LAMBDA": "http://127.0.0.1:9001"})
    True
    >>> offline_aws_pair({})
    False
    """
    from urllib.parse import urlsplit

    env = os.environ if environ is None else environ
    url = env.get("AWS_ENDPOINT_URL_LAMBDA") or env.get("AWS_ENDPOINT_URL")
    if not url:
        return False  # boto3's own endpoints: AWS
    host = urlsplit(url).hostname or ""
    return not host.endswith((".amazonaws.com", ".amazonaws.com.cn", ".api.aws"))


def load_slo(config: pytest.Config) -> dict[str, Any]:
    """The bounds and sizes for this backend and mode from ``slo.toml``. The aws backend
    against the offline pair runs on the defaults: its ``[aws]`` sizes assume the cloud's
    elasticity (003's 200 users), which sandboxes on this machine do not have."""
    backend = config.getoption("servebench_backend")
    if backend == "aws" and offline_aws_pair():
        backend = "aws-offline-pair"
    mode = "full" if config.getoption("servebench_full") else "quick"
    try:
        doc = tomllib.loads(SLO_FILE.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise pytest.UsageError(f"{SLO_FILE}: not valid TOML ({exc})") from None
    return merge_slo(doc, backend, mode, source=str(SLO_FILE))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Sweeps whose points depend on the mode come from ``slo.toml``."""
    sizes = load_slo(metafunc.config)
    for name, key in (("concurrency", "concurrency"), ("users", "users"),
                      ("payload_bytes", "payload_sizes"), ("batch", "batch_sizes")):
        if name in metafunc.fixturenames:
            metafunc.parametrize(name, sizes[key], ids=[f"{name}={v}" for v in sizes[key]])


@pytest.fixture(scope="session")
def slo(pytestconfig: pytest.Config) -> dict[str, Any]:
    return load_slo(pytestconfig)


# Findings compare what two cases measured in the same run, on a machine that other work
# shares: a point estimate moves with that load, so a finding asserts on the 95% intervals
# (``Estimate.low``/``high``). "A is faster than B" holds when A's interval lies wholly below
# B's (``a.high < b.low``); "A is about as fast as B" fails only when A is decidedly slower
# (``a.low > factor * b.high``, the factor in slo.toml). Test modules reach these helpers
# through the ``findings`` fixture (``findings.shown(...)``): a conftest is not importable.


def shown(e: Estimate, scale: float = 1000.0, unit: str = "ms") -> str:
    """An estimate and its interval for a failure message: ``12.3 ms [11, 14.1] (n=40)``."""
    return (f"{e.value * scale:.4g} {unit} [{e.low * scale:.4g}, {e.high * scale:.4g}] "
            f"(n={e.n})")


def median_of(values: Iterable[float]) -> Estimate:
    """The median of raw samples (billed durations, cold starts) with its distribution-free
    95% interval (-inf/inf on a side that too few samples cannot bound)."""
    from pytest_servebench.stats import quantile_estimate

    return quantile_estimate(sorted(values), 0.5)


class Findings:
    """Results measured by a study's cases, keyed by whatever the study compares."""

    shown = staticmethod(shown)
    median_of = staticmethod(median_of)

    def __init__(self) -> None:
        self.results: dict[str, dict[Any, Result]] = defaultdict(dict)
        self.values: dict[str, dict[Any, Any]] = defaultdict(dict)

    def need(self, study: str, keys: list[Any], what: str) -> list[Result]:
        got = self.results.get(study, {})
        missing = [k for k in keys if k not in got]
        if missing:
            pytest.skip(f"{what} needs {missing} measured in this run (deselected or failed; "
                        "run the whole suite file)")
        return [got[k] for k in keys]


@pytest.fixture(scope="session")
def findings() -> Findings:
    return Findings()


@pytest.fixture(scope="session")
def image() -> bytes:
    """The one standard JPEG every classification request sends (studies 000, 003, 004)."""
    from targets.payloads import jpeg

    return jpeg(224, 224, seed=0)
