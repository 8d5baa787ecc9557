"""The training-speed cuts change nothing PPO sees: the DummyVecEnv without the deep copy of
the infos returns what SB3's returns, and the learner's torch settings only drop validation."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

from stable_baselines3.common.vec_env import DummyVecEnv  # noqa: E402

from agents.training.ppo_model import torch_for_training  # noqa: E402
from agents.training.training_env import Ranges, env_factory, fresh_info_dummy_vec_env  # noqa: E402
from kisim.core.config import load_scenario, override  # noqa: E402
from kisim.env.environment import DEFAULT_SCENARIO  # noqa: E402


def _fns() -> list:
    sc = override(load_scenario(DEFAULT_SCENARIO), "test", duration_s=90.0)
    return [env_factory(sc, ["ramp", "spike"], "rotate", i, 2, Ranges()) for i in range(2)]


def test_fresh_info_vec_env_steps_as_sb3_does() -> None:
    ours, theirs = fresh_info_dummy_vec_env(_fns()), DummyVecEnv(_fns())
    ours.seed(3)
    theirs.seed(3)
    assert np.array_equal(ours.reset(), theirs.reset())
    kept: list[dict] = []  # held, so no id is reused
    for _ in range(7):  # 3 steps per 90-s episode: crosses two resets per env
        act = np.array([ours.action_space.sample() for _ in range(2)])
        ours.step_async(act)
        theirs.step_async(act)
        o1, r1, d1, i1 = ours.step_wait()
        o2, r2, d2, i2 = theirs.step_wait()
        assert np.array_equal(o1, o2) and np.array_equal(r1, r2) and np.array_equal(d1, d2)
        for a, b in zip(i1, i2, strict=True):
            assert a.keys() == b.keys()
            assert a["window"] == b["window"] and a["reward_terms"] == b["reward_terms"]
            if "terminal_observation" in a:
                assert np.array_equal(a["terminal_observation"], b["terminal_observation"])
        kept += i1
    assert len({id(x) for x in kept}) == len(kept)  # a new info dict every step: none shared


def test_torch_for_training_drops_only_validation() -> None:
    import torch

    before = torch.distributions.Distribution._validate_args
    logits = torch.tensor([0.0, 1.0, 2.0])
    torch.distributions.Distribution.set_default_validate_args(True)
    want = torch.distributions.Categorical(logits=logits).log_prob(torch.tensor(2))
    try:
        torch_for_training(1)
        assert torch.get_num_threads() == 1
        # NaN logits no longer raise at construction; valid ones give the same numbers
        torch.distributions.Categorical(logits=torch.tensor([0.0, float("nan")]))
        d = torch.distributions.Categorical(logits=logits)
        assert d.log_prob(torch.tensor(2)) == want
    finally:
        torch.distributions.Distribution.set_default_validate_args(before)
