"""A dated price book: every price with the date and the page it came from.

The bundled book is AWS us-east-1 on-demand (``data/prices-aws-us-east-1.json``). Users point
``--servebench-prices`` (or ``SERVEBENCH_PRICES``) at their own file with the same layout, for
other regions or private pricing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

SCHEMA_VERSION = 1
Arch = Literal["x86_64", "arm64"]


class PriceBookError(ValueError):
    pass


@dataclass(frozen=True)
class Instance:
    name: str
    usd_per_hour: float
    vcpu: float
    memory_gib: float
    arch: str = "x86_64"
    gpu: str | None = None


@dataclass(frozen=True)
class PriceBook:
    """Prices read from a book file; accessors raise ``PriceBookError`` with what is missing."""

    data: Mapping[str, Any]
    path: str

    @property
    def as_of(self) -> str:
        return str(self.data["as_of"])

    @property
    def region(self) -> str:
        return str(self.data.get("region", "?"))

    def _get(self, *keys: str) -> Any:
        node: Any = self.data
        for k in keys:
            if not isinstance(node, Mapping) or k not in node:
                raise PriceBookError(f"price book {self.path} has no {'.'.join(keys)}")
            node = node[k]
        return node

    def lambda_usd_per_gb_s(self, arch: Arch = "x86_64") -> float:
        return float(self._get("lambda", "usd_per_gb_s", arch))

    def lambda_usd_per_request(self) -> float:
        return float(self._get("lambda", "usd_per_request"))

    def lambda_provisioned_usd_per_gb_s(self, arch: Arch = "x86_64") -> tuple[float, float]:
        """(price of keeping a GB warm per second, price of running on it per GB-second)."""
        return (float(self._get("lambda", "provisioned_usd_per_gb_s", arch)),
                float(self._get("lambda", "provisioned_duration_usd_per_gb_s", arch)))

    def lambda_ephemeral_usd_per_gb_s(self) -> tuple[float, int]:
        return (float(self._get("lambda", "ephemeral_storage_usd_per_gb_s")),
                int(self._get("lambda", "free_ephemeral_storage_mb")))

    def api_gateway_usd_per_request(self, kind: str) -> float:
        return float(self._get("api_gateway", "usd_per_million", kind)) / 1e6

    def instance(self, name: str) -> Instance:
        """An EC2 instance type (``c5.large``) or a SageMaker one (``ml.c5.large``)."""
        family = "sagemaker" if name.startswith("ml.") else "ec2"
        table = self._get(family)
        if name not in table:
            known = ", ".join(sorted(table))
            raise PriceBookError(f"no price for {family} instance {name!r} in {self.path} "
                                 f"(known: {known})")
        row = table[name]
        return Instance(name, float(row["usd_per_hour"]), float(row["vcpu"]),
                        float(row["memory_gib"]), str(row.get("arch", "x86_64")),
                        row.get("gpu"))

    def instance_types(self, family: Literal["ec2", "sagemaker"]) -> tuple[str, ...]:
        """The instance types the book prices for ``family`` (empty when it has none)."""
        table = self.data.get(family)
        return tuple(sorted(table)) if isinstance(table, Mapping) else ()

    def fargate_usd_per_hour(self, vcpu: float, memory_gb: float, arch: Arch = "x86_64") -> float:
        return (vcpu * float(self._get("fargate", "usd_per_vcpu_hour", arch))
                + memory_gb * float(self._get("fargate", "usd_per_gb_hour", arch)))


def bundled_path() -> Path:
    return Path(str(resources.files("pytest_servebench") / "data" / "prices-aws-us-east-1.json"))


def load_price_book(path: str | Path | None = None) -> PriceBook:
    """Read and check a price book (the bundled one when ``path`` is None)."""
    p = Path(path) if path is not None else bundled_path()
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise PriceBookError(f"price book {p} does not exist") from None
    except json.JSONDecodeError as exc:
        raise PriceBookError(f"price book {p} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PriceBookError(f"price book {p} must hold a JSON object")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise PriceBookError(f"price book {p} has schema_version {version!r}; this version of "
                             f"pytest-servebench reads {SCHEMA_VERSION}")
    for key in ("as_of", "sources"):
        if key not in data:
            raise PriceBookError(f"price book {p} must give {key!r}: every price needs its date "
                                 "and source")
    return PriceBook(data, str(p))
