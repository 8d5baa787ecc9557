"""The core: what every other layer builds on and nothing in it builds on them.

Config schema, devices, patterns, the `Window` record, the `Backend` protocol, errors,
registries, atomic run-directory io and the pure Kubernetes algorithms (HPA v2).
"""
