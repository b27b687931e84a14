from __future__ import annotations


class BadInput(Exception):
    """A request the target cannot serve: answered with ``status`` (4xx) and ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def to_dict(self) -> dict[str, object]:
        return {"error": "BadInput", "status": self.status, "message": self.message}
