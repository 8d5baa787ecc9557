"""Baseline policies, the oracle and PPO, by name: ``make_policy("hpa:0.5")``.

A spec is ``name`` or ``name:ARG`` (``hpa:0.5``, ``static-cpu:4``, ``static-a10g:2``,
``oracle:3``, ``ppo:models/a.zip``). The registry maps names to ``module:Class`` strings so that
looking a policy up imports only that policy (PPO's torch stays unloaded otherwise).
See docs/baselines.md for what each one does.
"""

from __future__ import annotations

import importlib

from agents.policies.base import InClusterPolicy, Policy
from kisim.core.config import POOL_NAME
from kisim.core.errors import KisimError

POLICIES: dict[str, str] = {
    "static": "agents.policies.static:Static",
    "static-gpu": "agents.policies.static:StaticGPU",
    "static-cpu": "agents.policies.static:StaticCPU",
    "hpa": "agents.policies.hpa:HPA",
    "threshold": "agents.policies.threshold:Threshold",
    "kpa": "agents.policies.kpa:KPA",
    "triton-hpa": "agents.policies.metric_hpa:TritonHPA",
    "keda": "agents.policies.metric_hpa:KEDA",
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
    name, sep, arg = spec.partition(":")
    cls = policy_class(name.strip())
    if sep and not arg:
        raise KisimError(f"policy '{spec}': empty argument after ':'")
    pol = cls(arg if sep else None)
    pol.trust_model = trust_model
    return pol


__all__ = ["POLICIES", "Policy", "InClusterPolicy", "known_policies", "make_policy", "policy_class"]
