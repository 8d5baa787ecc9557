"""Fault randomisation in training: `domain_randomization.faults_per_hour` gives every
training episode random faults drawn from its seed."""

from __future__ import annotations

from agents.training.ppo_model import ranges
from agents.training.train_config import load_train_config
from agents.training.training_env import RandomizedBackend, Ranges, with_random_faults
from kisim.core.config import load_scenario
from kisim.core.faults import random_events
from kisim.env.environment import DEFAULT_SCENARIO
from twin.backend import TwinBackend


def test_faults_per_hour_reaches_the_twin() -> None:
    sc = load_scenario(DEFAULT_SCENARIO)
    b = RandomizedBackend(TwinBackend(), Ranges(faults_per_hour=60.0))
    assert b.ranges.active
    b.reset(sc, 1_000_123)
    want = random_events(with_random_faults(sc, 60.0), 1_000_123)
    assert want and b.inner.faults is not None and b.inner.faults.events == want
    plain = RandomizedBackend(TwinBackend(), Ranges(service_time=(1.1, 1.1)))
    plain.reset(sc, 1_000_123)
    assert plain.inner.faults is None  # no faults unless asked


def test_train_config_field() -> None:
    cfg = load_train_config("configs/train/faults/gpu-fleet-random-faults.yaml",
                            **{"domain_randomization.enabled": True,
                               "domain_randomization.faults_per_hour": 6.0})  # fmt: skip
    assert ranges(cfg).faults_per_hour == 6.0
