"""The inference core shared by both front doors: parse and validate a request, run the model,
answer in one schema. Imports numpy, Pillow and the model's runtime only; never torch for an ONNX
target."""

from .errors import BadInput
from .inputs import Limits, Request, from_event, from_http
from .runtime import Core, load_core

__all__ = ["BadInput", "Core", "Limits", "Request", "from_event", "from_http", "load_core"]
