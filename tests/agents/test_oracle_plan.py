"""The oracle's ``plan`` mode: more placements for its best moves, and deferred moves."""

from __future__ import annotations

import numpy as np
import pytest

from agents.evaluation.policy_run import run_policy
from agents.policies import make_policy
from agents.policies.oracle import PLAN_DELAYS, Oracle
from kisim.core.config import load_scenario, override
from kisim.core.errors import KisimError
from kisim.core.paths import config_path


def test_plan_spec() -> None:
    assert make_policy("oracle:3:plan").plan and make_policy("oracle:3:plan").mode == "fork"
    p = make_policy("oracle:3:plan:replay")
    assert p.plan and p.mode == "replay" and p.horizon == 3
    assert not make_policy("oracle:3").plan
    for bad in ("oracle:3:plan:plan", "oracle:3:later", "oracle:3:replay:fork"):
        with pytest.raises(KisimError, match="expected oracle:H or oracle:H:replay"):
            make_policy(bad)


class _Scripted(Oracle):
    """`_score` answers from a table (plans as tuples of tuples), `_placed` keeps the best."""

    def __init__(self, table: dict[object, float]) -> None:
        super().__init__("4:plan")
        self.table = table
        self.asked: list[object] = []

    @staticmethod
    def key(c: object) -> object:
        if isinstance(c, list):
            return tuple(tuple(int(x) for x in a) for a in c)
        return tuple(int(x) for x in np.asarray(c))

    def _score(self, cands, horizon):  # type: ignore[no-untyped-def]
        self.asked += [self.key(c) for c in cands]
        return [self.table.get(self.key(c), -10.0) for c in cands]

    def _placed(self, cands, scores, top, pl, h):  # type: ignore[no-untyped-def]
        best = int(np.argmax(scores))
        return cands[best], scores[best]


HOLD, UP, DOWN = np.array([2, 0]), np.array([3, 0]), np.array([1, 0])


def test_a_deferred_move_that_scores_better_means_hold_now() -> None:
    # adding a pod now beats holding, but adding it two steps later beats both
    o = _Scripted({(3, 0): -1.0, ((2, 0), (2, 0), (3, 0)): -0.5})
    a, score = o._plan([HOLD, UP, DOWN], [-2.0, -1.0, -3.0], 0, 4)
    assert np.array_equal(a, HOLD) and score == -0.5
    # both movers deferred, the one that only removes a pod also as a round trip, at every
    # delay shorter than the horizon
    plans = [k for k in o.asked if isinstance(k[0], tuple)]
    assert len(plans) == 3 * len([d for d in PLAN_DELAYS if d < 4])
    assert ((1, 0), (2, 0), (3, 0)) in plans  # down now, back up two steps later


def test_a_round_trip_that_scores_better_means_remove_now() -> None:
    # between two surges: removing a pod and ordering it back before the next one pays
    o = _Scripted({((1, 0), (2, 0), (2, 0), (2, 0), (3, 0)): -0.2})
    a, score = o._plan([HOLD, UP, DOWN], [-0.5, -1.0, -3.0], 0, 8)
    assert np.array_equal(a, DOWN) and score == -0.2


def test_the_move_stands_when_no_deferral_beats_it() -> None:
    o = _Scripted({})
    a, score = o._plan([HOLD, UP, DOWN], [-2.0, -1.0, -3.0], 0, 4)
    assert np.array_equal(a, UP) and score == -1.0


def test_hold_stays_when_no_plan_beats_it() -> None:
    o = _Scripted({})
    a, _ = o._plan([HOLD, UP, DOWN], [-0.5, -1.0, -3.0], 0, 4)
    assert np.array_equal(a, HOLD)


@pytest.mark.slow
def test_plan_fork_and_replay_agree_on_two_pools() -> None:
    """Plans (lists of actions) are scored the same in a fork snapshot as by replay."""
    sc = override(load_scenario(config_path("scenarios", "patterns", "spike.yaml")), "t",
                  duration_s=60.0)  # fmt: skip (GPU and CPU pools: placements count)
    fork, replay = make_policy("oracle:2:plan"), make_policy("oracle:2:plan:replay")
    a, b = run_policy(fork, sc, seed=3), run_policy(replay, sc, seed=3)
    assert fork.decisions == replay.decisions
    assert a.reward == b.reward
