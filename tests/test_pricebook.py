from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_servebench.pricebook import PriceBookError, load_price_book


def test_bundled_book_is_dated_and_sourced() -> None:
    book = load_price_book()
    assert book.as_of == "2025-06-01" and book.region == "us-east-1"
    for family in ("lambda", "api_gateway", "ec2", "fargate", "sagemaker"):
        assert book.data["sources"][family].startswith("https://")
    for name in ("c5.large", "t4g.medium", "t2.micro", "t2.small", "t2.2xlarge", "g4dn.xlarge",
                 "g4dn.2xlarge", "ml.c5.large", "ml.m5.2xlarge"):
        assert book.instance(name).usd_per_hour > 0
    assert book.instance("t4g.medium").arch == "arm64"


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not valid JSON"),
    ("[]", "JSON object"),
    ('{"schema_version": 99, "as_of": "x", "sources": {}}', "schema_version 99"),
    ('{"schema_version": 1, "sources": {}}', "'as_of'"),
])
def test_bad_books_are_reported(tmp_path: Path, content: str, message: str) -> None:
    p = tmp_path / "book.json"
    p.write_text(content)
    with pytest.raises(PriceBookError, match=message):
        load_price_book(p)
    assert p.read_text() == content  # reported, never touched


def test_missing_prices_name_what_is_missing(tmp_path: Path) -> None:
    p = tmp_path / "book.json"
    p.write_text(json.dumps({"schema_version": 1, "as_of": "2026-01-01", "sources": {},
                             "ec2": {"x1.tiny": {"usd_per_hour": 0.01, "vcpu": 1,
                                                 "memory_gib": 1}}}))
    book = load_price_book(p)
    with pytest.raises(PriceBookError, match=r"no lambda\.usd_per_gb_s"):
        book.lambda_usd_per_gb_s()
    with pytest.raises(PriceBookError, match=r"known: x1\.tiny"):
        book.instance("c5.large")
    with pytest.raises(PriceBookError, match="does not exist"):
        load_price_book(tmp_path / "nope.json")


def test_instance_types_per_family(tmp_path: Path) -> None:
    book = load_price_book()
    assert "c5.large" in book.instance_types("ec2")
    assert all(name.startswith("ml.") for name in book.instance_types("sagemaker"))
    p = tmp_path / "book.json"
    p.write_text(json.dumps({"schema_version": 1, "as_of": "2026-01-01", "sources": {}}))
    assert load_price_book(p).instance_types("sagemaker") == ()
