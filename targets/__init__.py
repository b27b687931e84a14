"""What gets deployed: the studies' models behind one inference core with two front doors.

- ``targets.models``: architectures in torch (build time only).
- ``targets.build``: export to ONNX (and torch / scikit-learn artifacts), cached by content hash.
- ``targets.core``: the inference core (numpy, ONNX Runtime, Pillow; no torch unless a torch-runtime
  target is served), its request schema and its input validation.
- ``targets.handler``: the Lambda front door, ``handler(event, context)``.
- ``targets.app``: the HTTP front door, an ASGI app (Starlette) for uvicorn.
- ``targets.payloads``: deterministic JPEGs and text samples.
- ``targets.package``: a function package per target and its size against Lambda's limit.
"""

from .registry import TARGETS, TargetSpec, get

__all__ = ["TARGETS", "TargetSpec", "get"]
