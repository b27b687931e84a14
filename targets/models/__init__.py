"""The studies' model architectures, defined in torch (build time only; serving uses ONNX Runtime).

Weights are random from a fixed seed: nothing can be downloaded here, and a serving benchmark's cost
depends on the architecture, not on the weights. Parameter counts match the published
architectures (checked in tests/targets/test_models.py).
"""
