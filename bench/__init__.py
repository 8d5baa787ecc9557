"""Benchmarks: the twin's speed against a naive SimPy reference, measured in the same run."""
