"""Baseline policies, the oracle and PPO, by name: ``make_policy("hpa:0.5")``.

A spec is ``name`` or ``name:ARG`` (``hpa:0.5``, ``static-cpu:4``, ``static-a10g:2``,
``oracle:3``, ``ppo:models/a.zip``), optionally with ``@SETUP`` (the traffic split and pod
floors it runs on: ``hpa:0.5@gpu-80+t4=1``, `agents.policies.setup`). The registry maps names
to ``module:Class`` strings so that looking a policy up imports only that policy (PPO's torch
stays unloaded otherwise).
See docs/baselines.md for what each one does.
"""

from __future__ import annotations

import importlib

from agents.policies import min_scale  # noqa: F401 - registers the min-scale autoscalers
from agents.policies.base import InClusterPolicy, Policy
from agents.policies.setup import Setup, split_setup
from kisim.core.config import POOL_NAME
from kisim.core.errors import KisimError

POLICIES: dict[str, str] = {
    "static": "agents.policies.static:Static",
    "static-gpu": "agents.policies.static:StaticGPU",
    "static-cpu": "agents.policies.static:StaticCPU",
    "hpa": "agents.policies.hpa:HPA",
    "threshold": "agents.policies.threshold:Threshold",
    "kpa": "agents.policies.kpa:KPA",
    "cron-kpa": "agents.policies.cron:CronKPA",
    "cron": "agents.policies.cron:Cron",
    "triton-hpa": "agents.policies.metric_hpa:TritonHPA",
    "keda": "agents.policies.metric_hpa:KEDA",
    "cron-keda": "agents.policies.cron:CronKEDA",
    "ray": "agents.policies.ray_serve:RayServe",
    "predictive": "agents.policies.predictive:Predictive",
    "fixed": "agents.policies.fixed:Fixed",
    "oracle": "agents.policies.oracle:Oracle",
    "ppo": "agents.policies.ppo:PPOPolicy",
    "platform-hpa": "agents.policies.platform:PlatformHPA",
    "platform-quota": "agents.policies.platform:PlatformQuota",
    "platform-prescaled": "agents.policies.platform:PlatformPrescaled",
    "platform-static": "agents.policies.platform:PlatformStatic",
    "platform-threshold": "agents.policies.platform:PlatformThreshold",
}


def known_policies() -> list[str]:
    return [n if n != "ppo" else "ppo:PATH" for n in POLICIES] + ["static-<pool>[:N]"]


def policy_class(name: str) -> type[Policy]:
    ref = POLICIES.get(name)
    if ref is None and name.startswith("static-") and POOL_NAME.match(name[len("static-"):]):
        from agents.policies.static import StaticPool

        pool = name[len("static-"):]
        return type(f"Static_{pool}", (StaticPool,), {  # one pool's class, made from its name
            "__init__": lambda self, arg=None: StaticPool.__init__(self, arg, pool)})
    if ref is None:
        raise KisimError(f"unknown policy '{name}' (known: {', '.join(known_policies())})")
    mod, cls = ref.split(":")
    return getattr(importlib.import_module(mod), cls)  # type: ignore[no-any-return]


def make_policy(spec: str, trust_model: bool = False) -> Policy:
    """A fresh policy object from its spec; bad names and arguments raise `KisimError`.

    `trust_model` lets a policy loaded from files (``ppo:PATH``) unpickle them."""
    base, setup = split_setup(spec)
    pol = _make(base, trust_model)
    return pol if setup is None else with_setup(pol, setup, spec)


def with_setup(pol: Policy, setup: Setup, spec: str) -> Policy:
    """`pol` running on `setup` (applied before the policy's own scenario change), on every
    backend."""
    own_scenario, own_backend = pol.scenario, pol.for_backend
    pol.scenario = lambda sc: own_scenario(setup.apply(sc, spec))  # type: ignore[method-assign]

    def for_backend(in_cluster_hpa: bool) -> Policy:
        other = own_backend(in_cluster_hpa)
        return pol if other is pol else with_setup(other, setup, spec)

    pol.for_backend = for_backend  # type: ignore[method-assign]
    return pol


def _make(spec: str, trust_model: bool) -> Policy:
    name, sep, arg = spec.partition(":")
    cls = policy_class(name.strip())
    if sep and not arg:
        raise KisimError(f"policy '{spec}': empty argument after ':'")
    pol = cls(arg if sep else None)
    pol.trust_model = trust_model
    return pol


__all__ = ["POLICIES", "Policy", "InClusterPolicy", "known_policies", "make_policy", "policy_class"]
