"""The ``http`` backend: an endpoint that is already running somewhere.

``pytest --target=http --servebench-url=http://127.0.0.1:8080/predict`` posts each payload to
the URL as the request body.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..target import Client


@dataclass(frozen=True)
class HttpTarget:
    """Any HTTP endpoint; payloads are sent as the body of ``method`` requests.

    ``profile`` says what serves it, for cost and history, e.g.
    ``{"platform": "ec2", "instance_type": "c5.large"}``.
    """

    url: str
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    name: str = "http"
    profile: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"kind": "http", "name": self.name, "url": self.url, "method": self.method,
                **self.profile}

    def client(self, *, concurrency_hint: int) -> Client:
        from ..http_client import HttpClient

        return HttpClient(self.url, method=self.method, headers=dict(self.headers))
