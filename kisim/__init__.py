"""kisim: which autoscaling and placement policy serves a Triton model fastest and cheapest.

The core package: config schema, load patterns, the `Window` record, the
`Backend` protocol, the Gymnasium environment and the CLI.

Importing kisim registers ``kisim/Autoscale-v0`` with Gymnasium (the twin and the
default scenario) by an entry-point string: nothing of the env, the twin or numba is
imported until ``gymnasium.make("kisim/Autoscale-v0")``.
"""

__version__ = "0.1.0"


def _register_envs() -> None:
    try:
        import gymnasium
    except ImportError:  # the env is optional for users of the config and patterns only
        return
    if "kisim/Autoscale-v0" not in gymnasium.registry:
        gymnasium.register(id="kisim/Autoscale-v0", entry_point="kisim.env.environment:make_default")


_register_envs()
