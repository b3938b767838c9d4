"""Frequentist estimators: closed forms of the group statistics, vmapped over replications."""

from mlmbias.registry import MethodSpec

METHOD_SPECS: list[MethodSpec] = []
