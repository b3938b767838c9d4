"""Bayesian models in NumPyro, run as batched NUTS over replications and chains."""

from mlmbias.registry import MethodSpec

METHOD_SPECS: list[MethodSpec] = []
