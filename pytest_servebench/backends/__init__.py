"""Backends: where targets run. One module per backend."""
