"""How commands print a summary: aligned ``key: value`` lines, or one JSON object."""

from __future__ import annotations

import json
from collections.abc import Mapping


def print_summary(data: Mapping[str, object], as_json: bool) -> None:
    if as_json:
        print(json.dumps(data))
        return
    for key, value in data.items():
        if isinstance(value, float):
            value = f"{value:.6g}"
        print(f"{key:>18}: {value}")
