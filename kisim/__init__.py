"""kisim: which autoscaling and placement policy serves a Triton model fastest and cheapest.

The core package: config schema, load patterns, the `Window` record, the
`Backend` protocol, the Gymnasium environment and the CLI.
"""

__version__ = "0.1.0"
